"""The store on a real SQLite file: schema, atomic writes, keys, concurrency across processes."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from jupyter_tasks.exceptions import IdempotencyConflict, StoreError, TaskStateConflict
from jupyter_tasks.migrations import LATEST_VERSION
from jupyter_tasks.models import Task, new_task_id
from jupyter_tasks.store import Store
from jupyter_tasks.store.event_sql import events_query
from tests.engine.vm_steps import counting_steps
from tests.waiting import eventually


def make_task(**fields) -> Task:
    now = time.time()
    base = dict(id=new_task_id(), kind="function", mode="job", status="queued",
                created_at=now, updated_at=now, name="add", params={"a": 1})
    base.update(fields)
    return Task(**base)


async def test_open_sets_wal_and_schema_version(db_path: Path) -> None:
    async with await Store.open(db_path):
        pass
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"tasks", "events", "task_logs", "artifacts", "workers"} <= tables


async def test_newer_schema_is_refused_with_a_clear_error(db_path: Path) -> None:
    async with await Store.open(db_path):
        pass
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        await Store.open(db_path)


async def test_a_version_1_database_is_upgraded_in_place(db_path: Path) -> None:
    from jupyter_tasks.migrations import MIGRATIONS
    from jupyter_tasks.store import split_sql

    conn = sqlite3.connect(db_path)
    for statement in split_sql(MIGRATIONS[0][1]):
        conn.execute(statement)
    conn.execute("INSERT INTO events (task_id, type, ts, task) VALUES ('t1', 'task.created', 1, "
                 "NULL)")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    async with await Store.open(db_path) as store:
        assert [e.task_id for e in await store.events_after(0, task_id="t1")] == ["t1"]
    conn = sqlite3.connect(db_path)
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    # one task's events along their own index (migration 13), not after its creation
    assert "events_by_task" in indexes and "events_task_created" not in indexes
    assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
    events_sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()[0]
    assert "AUTOINCREMENT" not in events_sql


def _version_2_database(path: Path) -> sqlite3.Connection:
    from jupyter_tasks.migrations import MIGRATIONS
    from jupyter_tasks.store import split_sql

    conn = sqlite3.connect(path)
    for _, script in MIGRATIONS[:2]:
        for statement in split_sql(script):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    return conn


async def test_upgrade_keeps_event_ids_and_their_numbering(db_path: Path) -> None:
    conn = _version_2_database(db_path)
    for n in range(3):
        conn.execute("INSERT INTO events (task_id, type, ts, task) VALUES (?, 'task.created', 1, "
                     "'{}')", (f"t{n}",))
    conn.execute("DELETE FROM events WHERE id = 1")
    conn.commit()
    conn.close()
    async with await Store.open(db_path) as store:
        assert [(e.id, e.task_id) for e in await store.events_after(0)] == [(2, "t1"), (3, "t2")]
        task, _ = await store.create_task(make_task())
        [created] = await store.events_after(3)
    assert created.task_id == task.id and created.id == 4


async def test_a_feed_pruned_empty_before_the_upgrade_keeps_counting(db_path: Path) -> None:
    conn = _version_2_database(db_path)
    for _ in range(40):
        conn.execute("INSERT INTO events (task_id, type, ts, task) VALUES ('t', 'task.log', 1, "
                     "'{}')")
    conn.execute("DELETE FROM events")  # what pruning a quiet feed used to do
    conn.commit()
    conn.close()
    async with await Store.open(db_path) as store:
        assert await store.events_after(0) == []  # the mark holding the numbering is not an event
        assert await store.last_event_id() == 40
        task, _ = await store.create_task(make_task())
        events = await store.events_after(0)
    assert [(e.id, e.task_id) for e in events] == [(41, task.id)]


async def test_pruning_keeps_the_newest_event_so_ids_never_go_back(db_path: Path) -> None:
    async with await Store.open(db_path) as store:
        for _ in range(2):
            await store.create_task(make_task())
        newest = await store.last_event_id()
        await store.prune(finished_before=0, events_before=time.time() + 3600)
        assert [e.id for e in await store.events_after(0)] == [newest]
        third, _ = await store.create_task(make_task())
        [event] = await store.events_after(newest)
    assert event.task_id == third.id and event.id == newest + 1


async def test_events_of_one_task_from_its_creation(db_path: Path) -> None:
    async with await Store.open(db_path) as store:
        others = [(await store.create_task(make_task()))[0] for _ in range(30)]
        mine, _ = await store.create_task(make_task(mode="background"))
        await store.transition(others[0].id, {"status": "cancelled"}, "task.cancelled")
        await store.transition(mine.id, {"status": "running"}, "task.started")
        await store.transition(others[1].id, {"status": "cancelled"}, "task.cancelled")
        await store.transition(mine.id, {"status": "succeeded"}, "task.succeeded")
        events = await store.events_after(0, task_id=mine.id)
        later = await store.events_after(events[0].id, task_id=mine.id)
        everything = await store.events_after(0, limit=1000)
    assert [e.type for e in events] == ["task.created", "task.started", "task.succeeded"]
    assert {e.task_id for e in events} == {mine.id}
    assert [e.type for e in later] == ["task.started", "task.succeeded"]
    assert len(everything) == 35


def replay_steps(path: Path, task_id: str) -> tuple[list[str], int]:
    """One task's events as the store reads them, and SQLite's VM steps (hundreds) for it."""
    conn = sqlite3.connect(path)
    try:
        with counting_steps(conn) as count:
            rows = conn.execute(*events_query(0, 100, task_id, None)).fetchall()
        return [row[1] for row in rows], count.steps
    finally:
        conn.close()


@pytest.mark.parametrize("first_status", ["queued", "running"])
async def test_one_tasks_events_are_found_without_reading_other_tasks_events(
        db_path: Path, first_status: str) -> None:
    # a task that runs at once (a %%background cell, run_blocking, a background
    # submit) begins with task.started, not task.created: its replay started at
    # event 0 and read every event of every task, 150-214 ms beside 2 million events
    async with await Store.open(db_path) as store:
        mine, _ = await store.create_task(make_task(mode="background", status=first_status))
        if first_status == "queued":
            await store.transition(mine.id, {"status": "running"}, "task.started")
        await store.transition(mine.id, {"status": "succeeded"}, "task.succeeded")
    expected = (["task.created"] if first_status == "queued" else []) \
        + ["task.started", "task.succeeded"]

    def add_events_of_others(count: int) -> None:
        conn = sqlite3.connect(db_path)
        with conn:
            conn.executemany(
                "INSERT INTO events (task_id, type, ts, task) VALUES (?, 'task.progress', ?, "
                "'{}')", [(new_task_id(), time.time()) for _ in range(count)])
        conn.close()

    add_events_of_others(1_000)
    types, beside_a_few = replay_steps(db_path, mine.id)
    assert types == expected
    add_events_of_others(20_000)
    types, beside_many = replay_steps(db_path, mine.id)
    assert types == expected
    # reading 20,000 more events would cost hundreds of these steps; the index skips them
    assert beside_many <= beside_a_few + 2, (beside_a_few, beside_many)


async def test_every_state_change_writes_its_event(db_path: Path) -> None:
    async with await Store.open(db_path) as store:
        task, dedup = await store.create_task(make_task())
        assert not dedup
        [claimed] = await store.claim_jobs("default", "w1", 30)
        assert claimed.status == "running" and claimed.attempts == 1
        done = await store.transition(task.id, {"status": "succeeded", "result": 3},
                                      "task.succeeded", when_status=("running",))
        assert done is not None and done.result == 3
        events = await store.events_after(0)
    assert [e.type for e in events] == ["task.created", "task.started", "task.succeeded"]
    assert [e.task["status"] for e in events] == ["queued", "running", "succeeded"]
    assert [e.id for e in events] == sorted(e.id for e in events)


async def test_claim_takes_due_jobs_by_priority_then_age(db_path: Path) -> None:
    # one job goes through the single-id form of the claim, several through IN (...)
    async with await Store.open(db_path) as store:
        low, high_old, high_new, mid = (make_task(priority=p) for p in (0, 5, 5, 1))
        later = make_task(priority=9, not_before=time.time() + 3600)
        for task in (low, high_old, high_new, mid, later):
            await store.create_task(task)
        [first] = await store.claim_jobs("default", "w1", 30, 1)
        rest = await store.claim_jobs("default", "w2", 30, 10)
        assert await store.claim_jobs("default", "w3", 30, 1) == []
        waiting = await store.get_task(later.id)
    assert first.id == high_old.id and first.worker_id == "w1" and first.status == "running"
    assert [t.id for t in rest] == [high_new.id, mid.id, low.id]
    assert {t.worker_id for t in rest} == {"w2"} and {t.attempts for t in rest} == {1}
    assert waiting is not None and waiting.status == "queued"


async def test_transition_guard_leaves_row_and_events_alone(db_path: Path) -> None:
    async with await Store.open(db_path) as store:
        task, _ = await store.create_task(make_task())
        assert await store.transition(task.id, {"status": "failed"}, "task.failed",
                                      when_status=("running",)) is None
        assert (await store.get_task(task.id)).status == "queued"
        assert len(await store.events_after(0)) == 1


async def test_failed_transaction_writes_nothing(db_path: Path) -> None:
    async with await Store.open(db_path) as store:
        task, _ = await store.create_task(make_task())
        with pytest.raises(sqlite3.OperationalError):
            await store.transition(task.id, {"no_such_column": 1}, "task.progress")
        assert len(await store.events_after(0)) == 1
        assert await store.count_tasks() == 1


async def test_a_failing_write_in_a_group_commit_is_undone_alone(db_path: Path) -> None:
    import asyncio
    import threading

    async with await Store.open(db_path) as store:
        existing, _ = await store.create_task(make_task())
        commits = store.write_commits
        busy, release = threading.Event(), threading.Event()

        def hold(conn: sqlite3.Connection) -> None:
            busy.set()
            release.wait(10)

        # keep the database thread busy so the three writes queue up behind it
        holding = asyncio.ensure_future(store._run(hold))
        assert await asyncio.to_thread(busy.wait, 10)
        writes = asyncio.gather(
            store.create_task(make_task()),
            store.transition(existing.id, {"no_such_column": 1}, "task.progress"),
            store.create_task(make_task()),
            return_exceptions=True,
        )


        async def queued() -> bool:
            return store._ops.qsize() == 3

        await eventually(queued, what="the three writes queued")
        release.set()
        await holding
        first, bad, second = await writes
        # the first two shared a transaction, rolled back and rerun write by write
        # when the second raised; the third, not yet taken then, came in the next
        assert store.write_commits == commits + 2
        assert isinstance(bad, sqlite3.OperationalError)
        assert {t.id for t in await store.list_tasks()} == {existing.id, first[0].id,
                                                             second[0].id}
        assert [e.type for e in await store.events_after(0)] == ["task.created"] * 3


async def test_active_task_key_returns_existing_until_finished(db_path: Path) -> None:
    async with await Store.open(db_path) as store:
        first, _ = await store.create_task(make_task(task_key="reports.2026-04"))
        again, dedup = await store.create_task(make_task(task_key="reports.2026-04"))
        assert dedup and again.id == first.id
        await store.transition(first.id, {"status": "succeeded"}, "task.succeeded")
        third, dedup = await store.create_task(make_task(task_key="reports.2026-04"))
        assert not dedup and third.id != first.id
        by_prefix = await store.list_tasks(key_prefix="reports.")
        assert {t.id for t in by_prefix} == {first.id, third.id}
        assert await store.list_tasks(key_prefix="reportsX") == []


async def test_idempotency_same_payload_same_task_other_payload_conflict(db_path: Path) -> None:
    async with await Store.open(db_path) as store:
        first, _ = await store.create_task(make_task(idempotency_key="k1", payload_hash="h1"))
        same, dedup = await store.create_task(make_task(idempotency_key="k1", payload_hash="h1"))
        assert dedup and same.id == first.id
        with pytest.raises(IdempotencyConflict):
            await store.create_task(make_task(idempotency_key="k1", payload_hash="h2"))
        assert await store.count_tasks() == 1


async def test_listing_is_newest_first_with_cursor_pages(db_path: Path) -> None:
    async with await Store.open(db_path) as store:
        created = await store.create_tasks([make_task() for _ in range(7)])
        ids = [t.id for t in created]
        page1 = await store.list_tasks(limit=3)
        page2 = await store.list_tasks(limit=3, cursor=page1[-1].id)
        page3 = await store.list_tasks(limit=3, cursor=page2[-1].id)
        seen = [t.id for t in page1 + page2 + page3]
        assert seen == sorted(ids, reverse=True)


async def test_a_task_that_starts_while_a_status_page_is_read_is_on_it_once(
        db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a descending status page is read a tie group at a time: a job that started between
    # the queued group's read and the running group's was in both, twice on one page
    # (seen under load on GET /api/tasks?status=queued&status=running&sort=status&order=desc)
    async with await Store.open(db_path) as store:
        running = [make_task(status="running", started_at=time.time()) for _ in range(2)]
        queued = [make_task() for _ in range(4)]
        await store.create_tasks(running + queued)
        starting = queued[0].id
        read = store._rows
        started = False

        async def read_then_start(sql: str, args: Any = ()) -> Any:
            nonlocal started
            rows = await read(sql, args)
            if not started and any(dict(row).get("id") == starting for row in rows):
                started = True  # the job is claimed between two reads of the page
                await store.transition(starting, {"status": "running",
                                                  "started_at": time.time()}, None)
            return rows

        monkeypatch.setattr(store, "_rows", read_then_start)
        page = await store.page_tasks(sort="status", order="desc", limit=50,
                                      statuses=["queued", "running"])
        assert started
        ids = [t.id for t in page.tasks]
        assert len(ids) == len(set(ids)), [i[-4:] for i in ids]
        assert set(ids) == {t.id for t in running + queued} and page.next_cursor is None


async def test_a_new_row_holds_every_column_it_was_given_and_refuses_none_where_required(
        db_path: Path) -> None:
    # a new row names only the columns with a value: what it leaves out must read back as
    # the None it was, and a None where the schema requires a value must still fail
    now = time.time()
    every = make_task(
        status="succeeded", label="l", spec={"name": "add"}, result={"r": [1.5, None]},
        error={"type": "E"}, progress={"current": 1, "total": 2}, task_key="k",
        idempotency_key="i", payload_hash="h", queue="q", priority=3, owner="o",
        origin={"notebook": "n.ipynb"}, attempts=2, max_retries=4, lost_attempts=1,
        retry_reason="worker lost", timeout=5.0, memory_limit_mb=64, not_before=now,
        parent_id="p", relationship="rerun", schedule_id="s", worker_id="w",
        lease_expires_at=now, cancel_requested=True, confirmation={"prompt": "?"},
        callback_url="https://example.org/cb", resource_usage={"cpu": 1.0},
        content_hashes={"spec": "x"}, process={"pid": 1}, value_notes={"result": "n"},
        started_at=now, finished_at=now + 1)
    bare = make_task(params=None)
    async with await Store.open(db_path) as store:
        await store.create_tasks([every, bare])
        assert await store.get_task(every.id) == every
        assert await store.get_task(bare.id) == bare
        with pytest.raises(Exception, match="NOT NULL"):
            await store.create_tasks([make_task(queue=None)])
    conn = sqlite3.connect(db_path)
    fresh = dict(conn.execute("SELECT id, fresh FROM tasks").fetchall())
    # an ended task goes straight into the history indexes, a queued one in fresh
    assert fresh == {every.id: None, bare.id: 1}


async def test_a_worker_row_keeps_its_slots_and_an_unreadable_one_counts_as_unknown(
        db_path: Path) -> None:
    from jupyter_tasks.models import WorkerInfo, slots_by_queue

    now = time.time()
    worker = WorkerInfo(id="w1", kind="test", pid=1, host="h", started_at=now,
                        heartbeat_at=now, queues=["default", "gpu"],
                        slots={"default": 4, "gpu": 1})
    async with await Store.open(db_path) as store:
        await store.register_worker(worker)
        for wid, text in (("old", None), ("odd", '{"default": "many", "gpu": -2, "x": true}'),
                          ("bad", "not json")):
            await store.register_worker(WorkerInfo(id=wid, kind="test", pid=2, host="h",
                                                   started_at=now, heartbeat_at=now,
                                                   queues=["default"]))
            conn = sqlite3.connect(db_path)
            conn.execute("UPDATE workers SET slots = ? WHERE id = ?", (text, wid))
            conn.commit()
            conn.close()
        workers = {w.id: w for w in await store.list_workers()}
    assert workers["w1"] == worker
    # a row written before the column (or by hand) gives no slots rather than an error
    assert workers["old"].slots == workers["odd"].slots == workers["bad"].slots == {}
    assert slots_by_queue(workers.values()) == {"default": 4, "gpu": 1}


async def test_delete_refuses_active_and_removes_logs_and_artifacts(db_path: Path) -> None:
    async with await Store.open(db_path) as store:
        task, _ = await store.create_task(make_task())
        with pytest.raises(TaskStateConflict):
            await store.delete_task(task.id)
        await store.append_logs(task.id, [(time.time(), "stdout", "hi\n")])
        art = await store.add_artifact(task.id, "a.txt", b"abc")
        await store.transition(task.id, {"status": "failed"}, "task.failed")
        await store.delete_task(task.id)
        assert await store.get_task(task.id) is None
        assert await store.get_logs(task.id) == []
        assert not store.artifact_path(art).exists()
        assert (await store.events_after(0))[-1].type == "task.deleted"


async def test_delete_forgets_the_events_data_and_keeps_event_ids_rising(db_path: Path) -> None:
    async with await Store.open(db_path) as store:
        older, _ = await store.create_task(make_task())
        task, _ = await store.create_task(make_task(params={"secret": "s3cr3t"}))
        await store.transition(task.id, {"status": "failed", "error": {
            "type": "E", "message": "s3cr3t leaked", "traceback": None}}, "task.failed")
        # the task's own events are the newest: the numbering must not step back under a
        # client that has seen them
        newest = (await store.events_after(0))[-1].id
        await store.delete_task(task.id)
        events = await store.events_after(0)
        assert [e.type for e in events if e.task_id == task.id] == ["task.deleted"]
        deleted = events[-1]
        assert deleted.id > newest and "s3cr3t" not in json.dumps(deleted.task)
        assert deleted.task["id"] == task.id and deleted.task["status"] == "failed"
        assert [e.task_id for e in events[:-1]] == [older.id]
        await store.transition(older.id, {"status": "cancelled"}, "task.cancelled")
        assert (await store.events_after(deleted.id))[0].id > deleted.id


async def test_delete_forgets_the_error_a_retry_recorded(db_path: Path) -> None:
    # a retry keeps the failure's first line as the row's retry_reason: the task.deleted
    # snapshot carried it after its error was nulled
    async with await Store.open(db_path) as store:
        task, _ = await store.create_task(make_task())
        claimed = await store.transition(task.id, {"status": "running", "worker_id": "w"},
                                         "task.started")
        assert claimed is not None
        await store.retry_later(task.id, "w", time.time(), {
            "type": "ValueError", "message": "token s3cr3t refused", "traceback": None})
        await store.transition(task.id, {"status": "succeeded", "result": 1}, "task.succeeded")
        assert "s3cr3t" in (await store.get_task(task.id)).retry_reason
        await store.delete_task(task.id)
        deleted = (await store.events_after(0))[-1]
        assert deleted.type == "task.deleted" and deleted.task["id"] == task.id
        assert "s3cr3t" not in json.dumps(deleted.task), deleted.task


async def test_artifact_sha256_and_names_that_could_escape(db_path: Path) -> None:
    import hashlib

    async with await Store.open(db_path) as store:
        task, _ = await store.create_task(make_task())
        art = await store.add_artifact(task.id, "report.csv", b"a,b\n1,2\n")
        assert art.sha256 == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
        assert art.content_type == "text/csv"
        assert store.artifact_path(art).read_bytes() == b"a,b\n1,2\n"
        # "out.txt\n": "$" also matches before a last newline (a file named with one)
        for bad in ("../x", "a/b", "..", ".hidden", "", "a\\..\\b", "out.txt\n"):
            with pytest.raises(ValueError):
                await store.add_artifact(task.id, bad, b"x")
            assert await store.get_artifact(task.id, bad) is None
        assert [a.name for a in await store.list_artifacts(task.id)] == ["report.csv"]


async def test_a_refused_artifact_name_says_which_characters_a_name_takes(
        db_path: Path) -> None:
    # before: "must be a plain file name" for "résumé.pdf", which is one to its user
    async with await Store.open(db_path) as store:
        task, _ = await store.create_task(make_task())
        for name in ("résumé.pdf", "😀.txt", ".hidden", "a/b"):
            with pytest.raises(ValueError, match="ASCII letters, digits"):
                await store.add_artifact(task.id, name, b"x")


async def test_artifact_text_with_a_lone_surrogate_is_a_readable_error(db_path: Path) -> None:
    # before: a raw "UnicodeEncodeError: 'utf-8' codec can't encode character" from the
    # store's insides; an undecodable byte as os.fsdecode gives it (\udc80) is still kept
    async with await Store.open(db_path) as store:
        task, _ = await store.create_task(make_task())
        with pytest.raises(ValueError, match=r"lone surrogate '\\ud800' at character 1") \
                as info:
            await store.add_artifact(task.id, "s.txt", "a\ud800b")
        assert not isinstance(info.value, UnicodeError)
        assert [a.name for a in await store.list_artifacts(task.id)] == []
        art = await store.add_artifact(task.id, "fs.txt", "a\udc80b")
        assert store.artifact_path(art).read_bytes() == b"a\x80b"


async def test_artifact_data_is_bytes_text_or_a_path_never_a_str_taken_for_a_path(
        db_path: Path, tmp_path: Path) -> None:
    # before: a str naming an existing file was read as that file (the store's own
    # database, /etc/passwd) instead of kept as the text it is
    from jupyter_tasks.dask_backend import WorkerContext

    source = tmp_path / "source.bin"
    source.write_bytes(b"\x00file bytes")
    async with await Store.open(db_path) as store:
        task, _ = await store.create_task(make_task())
        for name, data, kept in (("text.txt", str(db_path), str(db_path).encode()),
                                 ("copy.bin", source, b"\x00file bytes"),
                                 ("raw.bin", bytearray(b"raw"), b"raw")):
            art = await store.add_artifact(task.id, name, data)
            assert store.artifact_path(art).read_bytes() == kept, name
        with pytest.raises(TypeError, match="bytes, str or a path"):
            await store.add_artifact(task.id, "n.txt", 12)
        for bad in ("text/plain\r\nX-Injected: 1", "text", "a/b\n", "a/b; " + "x" * 300):
            with pytest.raises(ValueError, match="content type"):
                await store.add_artifact(task.id, "t.txt", b"x", bad)
        assert "t.txt" not in [a.name for a in await store.list_artifacts(task.id)]
    # a Dask worker's context keeps its artifacts for the hub by the same rule
    remote = WorkerContext("0" * 32)
    remote.artifact_sync("text.txt", str(db_path))
    remote.artifact_sync("copy.bin", source)
    assert remote.artifacts == [("text.txt", str(db_path).encode(), None),
                                ("copy.bin", b"\x00file bytes", None)]
    with pytest.raises(ValueError, match="content type"):
        remote.artifact_sync("t.txt", b"x", "text/plain\nX: 1")


def _writer(path: str, worker: int, count: int) -> None:
    import asyncio

    async def main() -> None:
        async with await Store.open(path) as store:
            for i in range(count):
                task, _ = await store.create_task(make_task(label=f"w{worker}-{i}"))
                await store.append_logs(task.id, [(time.time(), "stdout", f"{worker}:{i}\n")])
                await store.save_updates([(task.id, {"current": i})])

    asyncio.run(main())


async def test_two_processes_writing_at_once_lose_nothing(db_path: Path) -> None:
    async with await Store.open(db_path):
        pass  # create the schema first so both writers start on equal terms
    ctx = multiprocessing.get_context("spawn")
    count = 300
    procs = [ctx.Process(target=_writer, args=(str(db_path), w, count)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    async with await Store.open(db_path) as store:
        assert await store.count_tasks() == 2 * count
        labels = {t.label for t in await store.list_tasks(limit=10_000)}
        assert labels == {f"w{w}-{i}" for w in range(2) for i in range(count)}
        events = await store.events_after(0, limit=100_000)
        # created + log; progress events only while running, so none here
        assert len(events) == 2 * count * 2
        assert len({e.id for e in events}) == len(events)


def test_a_migration_that_meets_a_full_disk_says_full_and_changes_nothing(
        db_path: Path) -> None:
    # SQLite rolls a transaction back by itself on SQLITE_FULL; migrate's own ROLLBACK
    # then raised "cannot rollback - no transaction is active", which hid the full disk:
    # a traceback from the CLI, and from the server a 503 calling a sound file damaged,
    # with the advice to move it aside. max_page_count makes the same SQLITE_FULL here
    from jupyter_tasks.exceptions import StoreFull
    from jupyter_tasks.store.connection import migrate

    conn = _version_2_database(db_path)
    conn.executemany("INSERT INTO events (task_id, type, ts, task) VALUES (?, ?, 1, ?)",
                     [(f"t{n}", "task.created", "x" * 500) for n in range(3000)])
    conn.commit()
    conn.close()
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 20}")
        with pytest.raises(StoreFull, match="disk holding the task database is full"):
            migrate(conn)
        assert not conn.in_transaction
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2  # nothing changed
    finally:
        conn.close()


async def test_a_link_to_the_database_shares_its_artifacts_and_wake_up_folder(
        tmp_path: Path) -> None:
    # before: the folders beside the file were named after the path as given: a worker
    # on links/link.db kept a task's artifacts in links/link.db.artifacts, and the
    # server on real/tasks.db answered 404 for each file its row listed
    from jupyter_tasks.engine.bell import wake_folder

    real = tmp_path / "real" / "tasks.db"
    real.parent.mkdir()
    link = tmp_path / "links" / "link.db"
    link.parent.mkdir()
    link.symlink_to(real)
    async with await Store.open(real) as by_path:
        task, _ = await by_path.create_task(make_task())
    async with await Store.open(link) as by_link:
        kept = await by_link.add_artifact(task.id, "out.txt", b"made through the link")
    async with await Store.open(real) as by_path:
        assert by_path.artifact_path(kept).read_bytes() == b"made through the link"
        assert by_path.artifacts_dir == by_link.artifacts_dir
    assert wake_folder(link) == wake_folder(real)


async def test_another_applications_database_is_refused_not_taken_over(
        db_path: Path) -> None:
    # before: `submit --db notes.db` on another program's SQLite file added the whole
    # jupyter-tasks schema to it and switched it to WAL, without a word; doctor called
    # it "an empty database"
    from jupyter_tasks.dbfile import inspect
    from jupyter_tasks.exceptions import StoreUnavailable

    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO notes (body) VALUES ('mine')")
        conn.commit()
    before = db_path.read_bytes()
    with pytest.raises(StoreUnavailable, match="another application's database"):
        await Store.open(db_path)
    assert db_path.read_bytes() == before
    report = inspect(db_path)
    assert any("another application's database (its tables: notes)" in p
               for p in report.problems), report.problems


def test_a_name_or_id_ending_in_a_newline_is_refused() -> None:
    # "$" in the patterns matched before a last newline: a job given the queue
    # "default\n" was accepted and never served (no worker serves that queue)
    from jupyter_tasks.engine.options import check_options
    from jupyter_tasks.exceptions import InvalidRequest
    from jupyter_tasks.store.task_sql import is_task_id

    with pytest.raises(InvalidRequest, match="queue"):
        check_options({"queue": "default\n"})
    check_options({"queue": "default"})
    assert not is_task_id("0123456789abcdef" * 2 + "\n")
    assert is_task_id("0123456789abcdef" * 2)
