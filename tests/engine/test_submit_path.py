"""The one-at-a-time submit: a lone write commits on the event loop, without a thread hop.

A notebook loop awaits each submit before the next; two thread switches per submit
(to the writer thread and back) cost it more than the transaction. These tests
pin where a lone write commits and what must not change: group commit for many
writes, a held write lock that never blocks the loop, a failing write undone alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from jupyter_tasks.exceptions import IdempotencyConflict
from jupyter_tasks.models import Task, new_task_id
from jupyter_tasks.store import Store, task_sql
from jupyter_tasks.store import store as store_module
from tests.waiting import eventually


def make_task(**fields: object) -> Task:
    now = time.time()
    base: dict[str, object] = dict(id=new_task_id(), kind="function", mode="job",
                                   status="queued", created_at=now, updated_at=now,
                                   name="add", params={"a": 1})
    base.update(fields)
    return Task(**base)


def row_count(path: Path, sql: str, args: tuple[object, ...] = ()) -> int:
    """A count read by a connection of its own: what another process would see."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, args).fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def writing_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The thread of each submit's transaction, in order (each writes one event)."""
    threads: list[int] = []
    insert_event = task_sql.insert_event

    def recording(*args: object) -> None:
        threads.append(threading.get_ident())
        insert_event(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(task_sql, "insert_event", recording)
    return threads


@contextlib.asynccontextmanager
async def a_wal_copy_running(store: Store, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """The store's WAL copy started and held running until the block ends (writes
    meanwhile go to the writer thread)."""
    copying, release = threading.Event(), threading.Event()
    copy = store_module.checkpoint

    def held_copy(conn: sqlite3.Connection) -> int:
        copying.set()
        release.wait(30)
        return copy(conn)

    monkeypatch.setattr(store_module, "checkpoint", held_copy)
    running = asyncio.ensure_future(store._checkpoint())
    try:
        assert await asyncio.to_thread(copying.wait, 30), "the copy never started"
        yield
    finally:
        release.set()
        await running


async def busy_until(future: asyncio.Future[Any], most: int = 5000) -> int:
    """Keep the loop always busy (1 ms of Python holding the GIL, then a turn) until
    ``future`` is done or ``most`` steps have passed; how many steps ran."""
    steps = 0
    while not future.done() and steps < most:
        started = time.perf_counter()
        while time.perf_counter() - started < 0.001:
            pass
        steps += 1
        await asyncio.sleep(0)
    return steps


async def test_a_lone_submit_commits_on_the_event_loop_thread(
        db_path: Path, writing_threads: list[int]) -> None:
    threads = writing_threads
    async with await Store.open(db_path) as store:
        for _ in range(3):
            task, deduplicated = await store.create_task(make_task())
            assert not deduplicated
            # committed when submit returns: another connection sees the row
            assert row_count(db_path, "SELECT count(*) FROM tasks WHERE id = ?", (task.id,)) == 1
    assert threads == [threading.get_ident()] * 3


async def test_a_lone_write_commits_on_the_writer_thread_while_a_wal_copy_runs(
        db_path: Path, monkeypatch: pytest.MonkeyPatch, writing_threads: list[int]) -> None:
    # A WAL copy beside the writes ends with an fdatasync of the database, and on ext4
    # a write to the WAL meanwhile waits for it: in a million-task prune a submit's
    # pwrite returned only when the copy's 160-400 ms fdatasync did (perf trace).
    # Committed on the event loop, such a write froze every request and job of the
    # process; on the writer thread it waits alone
    threads = writing_threads
    monkeypatch.setattr(store_module, "CHECKPOINT_SECONDS", 3600)  # no copies but ours
    async with await Store.open(db_path) as store:
        async with a_wal_copy_running(store, monkeypatch):
            task, _ = await store.create_task(make_task())
            assert row_count(db_path, "SELECT count(*) FROM tasks WHERE id = ?", (task.id,)) == 1
        assert threads == [threads[0]] and threads[0] != threading.get_ident()

        # the copy done, a lone write commits on the loop again, once the writer thread
        # has let go of the connection (a CI run under load saw the next write find it
        # still finishing the copy's last one, and rightly queue behind it)
        async def lone_write_on_the_loop() -> bool:
            await store.create_task(make_task())
            return threads[-1] == threading.get_ident()

        await eventually(lone_write_on_the_loop, timeout=30,
                         what="a lone write committed on the loop after the copy")


async def test_the_writer_thread_gets_its_turn_beside_a_loop_that_is_always_busy(
        db_path: Path, monkeypatch: pytest.MonkeyPatch, writing_threads: list[int]) -> None:
    # A loop that always has work ready drops the GIL for an instant each turn and
    # takes it straight back; the writer thread, woken by each drop, found it taken
    # again and never asked for its turn: a burst of submits waited 25-154 s for it
    # (benchmarks/bench_engine_busy_loop.py). The loop now waits for the thread now
    # and then, so the write commits within a bounded number of the loop's busy steps
    quiet(monkeypatch)
    # a WAL copy running sends the writes to the writer thread
    async with await Store.open(db_path) as store, a_wal_copy_running(store, monkeypatch):
        submit = asyncio.ensure_future(store.create_task(make_task()))
        steps = await busy_until(submit)
        assert submit.done(), f"the submit still waited after {steps} busy steps"
        task, _ = submit.result()
    assert writing_threads and writing_threads[0] != threading.get_ident()
    assert row_count(db_path, "SELECT count(*) FROM tasks WHERE id = ?", (task.id,)) == 1


async def test_a_read_on_the_reader_thread_gets_its_turn_beside_a_loop_that_is_always_busy(
        db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the same starvation for aiosqlite's thread: a one-row read took about a second
    # beside such a loop, and with no WAL copy running, never
    quiet(monkeypatch)
    async with await Store.open(db_path) as store:
        await store.create_task(make_task())
        read = asyncio.ensure_future(store.count_tasks())
        steps = await busy_until(read)
        assert read.done(), f"the read still waited after {steps} busy steps"
        assert read.result() == 1


async def test_a_loop_that_blocks_does_not_wait_for_the_store_threads(
        db_path: Path, monkeypatch: pytest.MonkeyPatch, lock_tries: dict[str, int]) -> None:
    # A write waiting on the writer thread for another process's lock, beside a loop
    # that idles in its select: the thread gets the GIL whenever the loop blocks, so
    # the loop's waits for it would only tax the loop (12-30 % fewer GETs over REST
    # while another process held the lock 5 s)
    quiet(monkeypatch)
    checks: list[int | None] = []
    count_blocks = store_module.loop_thread_blocks

    def counting() -> int | None:
        checks.append(count_blocks())
        return checks[-1]

    monkeypatch.setattr(store_module, "loop_thread_blocks", counting)
    async with await Store.open(db_path) as store:
        waits: list[float | None] = []
        wait = store._helper_done.wait

        def counting_wait(timeout: float | None = None) -> bool:
            waits.append(timeout)
            return wait(timeout)

        monkeypatch.setattr(store._helper_done, "wait", counting_wait)
        await submit_beside_a_held_lock(
            db_path, store, lambda: lock_tries["thread"] >= 1 and len(checks) >= 12,
            "the loop checking on the writer thread ten times")
    assert checks[0] is not None, "this system counts a thread's blocks"
    assert waits == []


async def submit_beside_a_held_lock(db_path: Path, store: Store, held_until: Callable[[], bool],
                                    what: str) -> Task:
    """A lone submit while another connection holds the write lock, until ``held_until()``
    (with a deadline; the submit still waiting then); the task once its write went in."""
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process mid-transaction
    try:
        submit = asyncio.ensure_future(store.create_task(make_task()))

        async def reached() -> bool:
            return held_until()

        await eventually(reached, what=what)
        assert not submit.done()
    finally:
        other.execute("COMMIT")
        other.close()
    task, _ = await asyncio.wait_for(submit, 30)
    return task


def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    """No WAL copy or search-index batch of the store's own loops (a copy running
    sends a lone write to the writer thread, whatever the lock)."""
    monkeypatch.setattr(store_module, "CHECKPOINT_SECONDS", 3600)
    monkeypatch.setattr(store_module, "SEARCH_INDEX_SECONDS", 3600)


@pytest.fixture
def lock_tries(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many transactions began: tried on the loop (no wait), and on the thread (waiting)."""
    tries = {"loop": 0, "thread": 0}
    stream = store_module.stream_transaction

    def counting(conn: sqlite3.Connection, ops: object, limit: int, *, wait: float,
                 **kw: object) -> object:
        tries["thread" if wait else "loop"] += 1
        return stream(conn, ops, limit, wait=wait, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(store_module, "stream_transaction", counting)
    return tries


async def test_a_lone_write_finding_another_process_lock_tries_again_on_the_loop(
        db_path: Path, monkeypatch: pytest.MonkeyPatch, writing_threads: list[int],
        lock_tries: dict[str, int]) -> None:
    # Two worker processes on one database: a job's end sent to the writer thread held
    # the lock while the loop's Python took the GIL between its statements (1.6-2.1 ms
    # a transaction, against 0.75 ms on the loop), and the two drained fewer jobs than one
    monkeypatch.setattr(store_module, "HERE_LOCK_WAIT_SECONDS", 3600)
    quiet(monkeypatch)
    async with await Store.open(db_path) as store:
        task = await submit_beside_a_held_lock(
            db_path, store, lambda: lock_tries["loop"] >= 3, "three tries on the loop")
    assert row_count(db_path, "SELECT count(*) FROM tasks WHERE id = ?", (task.id,)) == 1
    assert lock_tries["thread"] == 0
    assert writing_threads == [threading.get_ident()]


async def test_a_lone_write_waits_on_the_writer_thread_once_the_loop_has_tried_long_enough(
        db_path: Path, monkeypatch: pytest.MonkeyPatch, writing_threads: list[int],
        lock_tries: dict[str, int]) -> None:
    monkeypatch.setattr(store_module, "HERE_LOCK_WAIT_SECONDS", 0.0)
    quiet(monkeypatch)
    async with await Store.open(db_path) as store:
        task = await submit_beside_a_held_lock(
            db_path, store, lambda: lock_tries["thread"] >= 1, "the write waiting on the thread")
    assert row_count(db_path, "SELECT count(*) FROM tasks WHERE id = ?", (task.id,)) == 1
    assert lock_tries["loop"] == 2  # the first try, and the one that found the time up
    assert len(writing_threads) == 1 and writing_threads[0] != threading.get_ident()


async def test_many_writes_in_one_turn_still_share_commits(db_path: Path) -> None:
    async with await Store.open(db_path) as store:
        before = store.write_commits
        await asyncio.gather(*(store.create_task(make_task()) for _ in range(50)))
        assert store.write_commits - before < 50
    assert row_count(db_path, "SELECT count(*) FROM tasks") == 50


async def test_a_burst_of_writes_in_one_turn_commits_on_the_event_loop_thread(
        db_path: Path, monkeypatch: pytest.MonkeyPatch, writing_threads: list[int]) -> None:
    # on the writer thread a burst would not run beside the loop's Python (the GIL),
    # and a loop that is always busy starved that thread for seconds
    quiet(monkeypatch)
    async with await Store.open(db_path) as store:
        before = store.write_commits
        await asyncio.gather(*(store.create_task(make_task()) for _ in range(64)))
        assert store.write_commits - before == 1
    assert writing_threads == [threading.get_ident()] * 64
    assert row_count(db_path, "SELECT count(*) FROM tasks") == 64


async def test_a_write_lock_held_elsewhere_never_blocks_the_loop(db_path: Path) -> None:
    async with await Store.open(db_path) as store:
        # the loop keeps turning (twenty checks, a turn apart) while the submit waits
        turns = itertools.count(1)
        task = await submit_beside_a_held_lock(
            db_path, store, lambda: next(turns) >= 20, "the event loop turning")
    assert row_count(db_path, "SELECT count(*) FROM tasks WHERE id = ?", (task.id,)) == 1


async def test_a_lone_failing_write_leaves_nothing_written(db_path: Path) -> None:
    async with await Store.open(db_path) as store:
        first, _ = await store.create_task(make_task(idempotency_key="k", payload_hash="a"))
        with pytest.raises(IdempotencyConflict):
            await store.create_task(make_task(idempotency_key="k", payload_hash="b"))
        # the store goes on: the next lone write commits
        second, _ = await store.create_task(make_task())
    assert row_count(db_path, "SELECT count(*) FROM tasks") == 2
    assert row_count(db_path, "SELECT count(*) FROM events") == 2
    assert {first.id, second.id} == {
        r[0] for r in sqlite3.connect(db_path).execute("SELECT id FROM tasks")}


async def test_the_created_event_holds_the_row_as_the_api_shows_it(db_path: Path) -> None:
    async with await Store.open(db_path) as store:
        task, _ = await store.create_task(make_task(params={"a": [1, "x"]}, label="L"))
        events = await store.events_after(0, task_id=task.id)
        row = await store.require_task(task.id)
    created = [e for e in events if e.task_id == task.id]
    assert [e.type for e in created] == ["task.created"]
    snapshot = json.loads(json.dumps(created[0].task))
    assert snapshot == json.loads(json.dumps(row.to_json()))


async def test_a_batch_with_a_failing_write_keeps_the_lock_for_the_others(
        db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a batch committing on the loop (which never waits for a lock) whose middle write
    # fails is run again write by write; had it let the lock go in between, another
    # process taking it then would fail the two good writes with StoreBusy
    from jupyter_tasks.store import connection

    competitors: list[sqlite3.Connection] = []
    begin_immediate = connection.begin_immediate

    loop_thread = threading.get_ident()

    def another_process_first(conn: sqlite3.Connection, timeout: float) -> None:
        # on the loop only: the writer thread's own transactions (upkeep) are not the batch
        if threading.get_ident() == loop_thread:
            other = sqlite3.connect(db_path, isolation_level=None, timeout=0,
                                    check_same_thread=False)
            other.execute("BEGIN IMMEDIATE")  # succeeds only if the lock was let go
            competitors.append(other)
        begin_immediate(conn, timeout)

    async with await Store.open(db_path) as store:
        await store.create_task(make_task(idempotency_key="k", payload_hash="a"))
        monkeypatch.setattr(connection, "begin_immediate", another_process_first)
        try:
            outcomes = await asyncio.gather(
                store.create_task(make_task()),
                store.create_task(make_task(idempotency_key="k", payload_hash="b")),
                store.create_task(make_task()), return_exceptions=True)
        finally:
            for other in competitors:
                other.execute("ROLLBACK")
                other.close()
        monkeypatch.setattr(connection, "begin_immediate", begin_immediate)
    assert [type(o).__name__ for o in outcomes] == ["tuple", "IdempotencyConflict", "tuple"]
    assert competitors == []
    assert row_count(db_path, "SELECT count(*) FROM tasks") == 3
