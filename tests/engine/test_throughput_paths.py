"""The queue's fast paths keep their behaviour: the claim's order and index, lock waits, workers."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_tasks.exceptions import StoreBusy
from jupyter_tasks.models import EventType, Task, new_task_id
from jupyter_tasks.store import Store
from jupyter_tasks.store import connection as connection_module
from jupyter_tasks.store.worker_sql import CLAIM_MANY_SQL, CLAIM_ONE_SQL
from tests.waiting import eventually


def _job(queue: str = "default", priority: int = 0, not_before: float | None = None,
         ) -> dict[str, Any]:
    now = time.time()
    return {"id": new_task_id(), "kind": "function", "mode": "job", "status": "queued",
            "name": "noop", "spec": {"name": "noop", "params": {}}, "queue": queue,
            "priority": priority, "not_before": not_before, "created_at": now,
            "updated_at": now}


async def test_a_claim_in_a_deep_backlog_takes_the_highest_priority_then_the_oldest(
        db_path: Path) -> None:
    async with await Store.open(db_path) as store:
        backlog = [_job() for _ in range(20_000)]
        urgent_old, urgent_new = _job(priority=5), _job(priority=5)
        # buried in the middle of the backlog, behind thousands of older jobs
        backlog[9_000:9_000] = [urgent_old]
        backlog[15_000:15_000] = [urgent_new]
        later = _job(priority=9, not_before=time.time() + 3600)  # not due yet
        other_queue = _job(queue="other", priority=10)
        await store.insert_task_rows([*backlog, later, other_queue])

        first = await store.claim_jobs("default", "w1", 30.0)
        second = await store.claim_jobs("default", "w1", 30.0)
        assert [t.id for t in first + second] == [urgent_old["id"], urgent_new["id"]]
        many = await store.claim_jobs("default", "w1", 30.0, limit=3)
        assert [t.id for t in many] == [backlog[0]["id"], backlog[1]["id"], backlog[2]["id"]]
        assert all(t.status == "running" and t.attempts == 1 for t in first + second + many)


@pytest.mark.parametrize("runnable", [None, '["noop", "other"]'], ids=["any", "runnable"])
@pytest.mark.parametrize("statements", [CLAIM_ONE_SQL, CLAIM_MANY_SQL], ids=["one", "many"])
async def test_the_claim_searches_the_claimable_index_and_never_scans_the_queue(
        db_path: Path, statements: tuple[str, str], runnable: str | None) -> None:
    async with await Store.open(db_path) as store:
        await store.insert_task_rows([_job() for _ in range(100)])
    conn = sqlite3.connect(db_path)
    try:
        now = time.time()
        plan = [row[-1] for row in conn.execute(
            "EXPLAIN QUERY PLAN " + statements[runnable is not None],
            ("w", now, now, now, "default", now, *([runnable] if runnable else []), 2))]
    finally:
        conn.close()
    assert any("USING INDEX tasks_claimable" in step for step in plan), plan
    # (the names a worker has are a list it reads whole: a scan of json_each, not of tasks)
    assert not any((step.startswith("SCAN") and "json_each" not in step)
                   or "TEMP B-TREE" in step for step in plan), plan


async def test_a_job_end_and_the_next_claim_decode_the_claimed_row_outside_the_lock(
        db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Another worker process waits for the write lock while this one holds it: decoding
    # the claimed job's row (Python, ~20 us) waits until after the commit. Two worker
    # processes held the lock 1.15-1.45 ms per transaction of four job ends with it
    # inside, 0.85-1.15 ms with it after
    async with await Store.open(db_path) as store:
        await store.insert_task_rows([_job() for _ in range(3)])
        writer = store._writer.connection
        decoded_in_transaction: list[bool] = []
        from_row = Task.from_row.__func__  # type: ignore[attr-defined]

        def recording(cls: type[Task], row: Any) -> Task:
            decoded_in_transaction.append(writer.in_transaction)
            return from_row(cls, row)

        monkeypatch.setattr(Task, "from_row", classmethod(recording))
        first, second = await store.claim_jobs("default", "w1", 30.0, limit=2)
        finished = await store.finish(
            first.id, {"status": "succeeded", "result": 1, "finished_at": time.time()},
            EventType.SUCCEEDED, worker_id="w1", claim_queue="default")
    assert finished.written and finished.next_job is not None
    assert finished.next_job.status == "running" and finished.next_job.worker_id == "w1"
    assert finished.next_job.id not in (first.id, second.id)
    assert decoded_in_transaction == [False, False, False]


HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


def _hold_lock(db_path: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def _release(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.write("go\n")
    holder.stdin.close()
    holder.wait(30)


async def test_a_write_waits_for_another_process_lock_then_goes_in(db_path: Path) -> None:
    async with await Store.open(db_path, busy_timeout=60.0) as store:
        holder = _hold_lock(db_path)
        try:
            write = asyncio.ensure_future(store.insert_task_rows([_job()]))
            # still waiting while the other process holds the lock (the reader answers)
            assert await store.count_tasks() == 0
            assert not write.done()
        finally:
            _release(holder)
        assert await write == 1
        assert await store.count_tasks() == 1


async def test_a_write_gives_up_at_the_busy_timeout_and_writes_nothing(db_path: Path) -> None:
    async with await Store.open(db_path, busy_timeout=0.3) as store:
        holder = _hold_lock(db_path)
        try:
            with pytest.raises(StoreBusy):
                await store.insert_task_rows([_job()])
        finally:
            _release(holder)
        assert await store.count_tasks() == 0
        assert await store.insert_task_rows([_job()]) == 1  # the store goes on afterwards


async def test_a_busy_timeout_of_zero_fails_a_locked_write_at_once(db_path: Path) -> None:
    # a wait of 0 means "must not wait" to the transaction: the writer thread's own
    # wait is at least a millisecond, so the write fails instead of being handed on
    async with await Store.open(db_path, busy_timeout=0.0) as store:
        holder = _hold_lock(db_path)
        try:
            with pytest.raises(StoreBusy):
                await asyncio.wait_for(store.insert_task_rows([_job()]), 30)
        finally:
            _release(holder)
        assert await store.insert_task_rows([_job()]) == 1


async def test_a_write_waiting_for_another_lock_tries_again_every_few_milliseconds(
        db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # SQLite's own busy handler sleeps up to 100 ms between tries: beside a server
    # writing one prune transaction after another, a kernel's submit found the lock
    # taken at each try and waited up to 3,044 ms. The store tries again itself, the
    # pause doubling from LOCK_RETRY_SECONDS to LOCK_RETRY_MAX_SECONDS
    other = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 8:
            other.execute("COMMIT")  # the other connection lets go after 8 tries
        time.sleep(seconds)

    monkeypatch.setattr(connection_module, "time",
                        types.SimpleNamespace(monotonic=time.monotonic, sleep=sleep),
                        raising=False)
    try:
        async with await Store.open(db_path, busy_timeout=5.0) as store:
            other.execute("BEGIN IMMEDIATE")
            assert await store.insert_task_rows([_job()]) == 1
            assert await store.count_tasks() == 1
    finally:
        other.close()
    first, most = connection_module.LOCK_RETRY_SECONDS, connection_module.LOCK_RETRY_MAX_SECONDS
    assert pauses == [min(first * 2 ** i, most) for i in range(8)]


TASKS = """
import os
from jupyter_tasks import task

@task("mark", mode="job")
def mark(i: int, marks: str) -> int:
    with open(marks, "a") as f:   # one short line per run: appends do not interleave
        f.write(f"{i} {os.getpid()}\\n")
    return i
"""


@pytest.fixture
def workers(db_path: Path, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    module = tmp_path / "mark_tasks.py"
    module.write_text(textwrap.dedent(TASKS))
    procs = [subprocess.Popen([sys.executable, "-m", "jupyter_tasks.cli", "--db", str(db_path),
                               "worker", "--concurrency", "4", "--modules", str(module)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
             for _ in range(2)]
    yield procs
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


async def test_two_worker_processes_share_one_queue_and_run_each_job_once(
        db_path: Path, tmp_path: Path, workers: list[subprocess.Popen[bytes]]) -> None:
    marks = tmp_path / "marks"
    count = 400
    async with await Store.open(db_path) as store:
        async def both_registered() -> bool:
            return len(await store.list_workers()) == 2

        await eventually(both_registered, timeout=120, what="both workers registered")
        rows = [{**_job(), "name": "mark",
                 "spec": {"name": "mark", "params": {"i": i, "marks": str(marks)}},
                 "params": {"i": i, "marks": str(marks)}} for i in range(count)]
        await store.insert_task_rows(rows)

        async def all_done() -> bool:
            stats = await store.stats()
            return stats["statuses"]["succeeded"] == count

        await eventually(all_done, timeout=300, what="every job succeeded")
        tasks = await store.list_tasks(limit=count + 1)
    runs = marks.read_text().split("\n")[:-1]
    assert sorted(int(line.split()[0]) for line in runs) == list(range(count))  # once each
    assert {int(line.split()[1]) for line in runs} == {w.pid for w in workers}  # by both
    assert all(t.attempts == 1 for t in tasks)
    assert len({t.worker_id for t in tasks}) == 2
