"""Settling (migration 11): a job's own commits leave the history indexes alone, and a
list reads the fresh tasks and the settled ones apart and merges them exactly."""

from __future__ import annotations

import sqlite3
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from jupyter_tasks.migrations import MIGRATIONS
from jupyter_tasks.models import EventType, TaskStatus, new_task_id
from jupyter_tasks.store import LIST_SORTS, Store
from jupyter_tasks.store import store as store_module
from jupyter_tasks.store.connection import setup_connection, split_sql
from jupyter_tasks.store.task_sql import task_row_values, tx_insert_rows, tx_settle
from jupyter_tasks.store.worker_sql import finish_update, tx_claim, tx_finish
from tests.engine.brute_force import brute_force_order, walk
from tests.engine.test_big_history import history_row
from tests.engine.test_search_index import Stream, give_way_for, indexed_to
from tests.waiting import eventually

# the indexes of the list's filters and sorts, which hold the settled tasks only
HISTORY_INDEXES = {
    "tasks_by_status", "tasks_by_owner", "tasks_by_name", "tasks_by_kind", "tasks_by_finished",
    "tasks_by_started", "tasks_by_label", "tasks_by_owner_sort", "tasks_by_origin",
    "tasks_by_status_sort", "tasks_by_priority", "tasks_by_duration", "tasks_by_duration_desc",
    "tasks_by_progress", "tasks_by_progress_desc", "tasks_owner_counts"}
WORKER = "w-settling"


@pytest.fixture(autouse=True)
def no_settling_by_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    # the store's own upkeep would settle tasks while a test looks at them fresh
    monkeypatch.setattr(store_module, "SEARCH_INDEX_SECONDS", 3600)


def trees_written(conn: sqlite3.Connection, path: Path, since_frame: int = 0) -> set[str]:
    """The b-trees whose pages the WAL holds from frame ``since_frame`` on, by name."""
    data = Path(f"{path}-wal").read_bytes()
    page_size = struct.unpack(">I", data[8:12])[0]
    pages = [struct.unpack(">I", data[at:at + 4])[0]
             for at in range(32, len(data) - 23, 24 + page_size)][since_frame:]
    names = dict(conn.execute("SELECT pageno, name FROM dbstat"))
    return {names[page] for page in pages if page in names}


def frames(path: Path) -> int:
    data_size = Path(f"{path}-wal").stat().st_size
    with open(f"{path}-wal", "rb") as f:
        page_size = struct.unpack(">I", f.read(12)[8:12])[0]
    return (data_size - 32) // (24 + page_size)


async def test_a_jobs_own_commits_leave_the_history_indexes_alone(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    async with await Store.open(path):
        pass
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        setup_connection(conn, 5.0)
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # every frame stays, to be read
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        now = time.time()
        row = {**history_row(1, now), "status": "queued", "started_at": None,
               "finished_at": None}
        # a job's three commits, through the store's own writes: submit, claim, end
        for step in range(3):
            conn.execute("BEGIN IMMEDIATE")
            if step == 0:
                tx_insert_rows(conn, [task_row_values(row)])
            elif step == 1:
                claimed = tx_claim(conn, "default", WORKER, 60.0, 1)
                assert [r["id"] for r in claimed] == [row["id"]]
            else:
                update = finish_update({"status": TaskStatus.SUCCEEDED.value, "result": "1",
                                        "finished_at": time.time(), "lease_expires_at": None})
                tx_finish(conn, row["id"], update, EventType.SUCCEEDED, WORKER, None, 60.0)
            conn.execute("COMMIT")
        written = trees_written(conn, path)
        assert "tasks" in written and "tasks_fresh" in written, written
        assert not written & HISTORY_INDEXES, sorted(written & HISTORY_INDEXES)
        before = frames(path)
        conn.execute("BEGIN IMMEDIATE")
        assert tx_settle(conn) == 1
        conn.execute("COMMIT")
        # settled, the task goes into every one of them at once
        assert trees_written(conn, path, before) >= HISTORY_INDEXES
        assert [tuple(r) for r in conn.execute("SELECT fresh FROM tasks")] == [(None,)]
    finally:
        conn.close()


async def mixed_store(path: Path, count: int = 240) -> Store:
    """Settled ended tasks, fresh ended ones (not settled yet), fresh running and queued
    ones, and jobs settled while queued (one of them running since)."""
    store = await Store.open(path)
    start = time.time() - 3600
    rows = [history_row(i, start) for i in range(count)]
    for i, row in enumerate(rows):
        if i % 5 == 1:
            # to be ended below through the store, as a slot ends a job: fresh
            row.update(status="running", finished_at=None, worker_id=WORKER)
        elif i % 7 == 2:
            row.update(status="queued", started_at=None, finished_at=None)
    await store.insert_task_rows(rows)
    for i, row in enumerate(rows):
        if i % 5 == 1 and i % 3:
            ended = await store.transition(
                row["id"], {"status": ("succeeded", "failed")[i % 2], "finished_at":
                            row["created_at"] + i % 11, "worker_id": None},
                EventType.SUCCEEDED, when_status=("running",))
            assert ended is not None
    # jobs settled while they waited in the queue (a backlog), one of them started since
    conn = sqlite3.connect(path)
    try:
        conn.execute("UPDATE tasks SET fresh = NULL WHERE status = 'queued' AND rowid % 2 = 0")
        conn.execute("UPDATE tasks SET status = 'running', started_at = created_at + 5 "
                     "WHERE rowid = (SELECT min(rowid) FROM tasks WHERE fresh IS NULL "
                     "AND status = 'queued')")
        conn.commit()
    finally:
        conn.close()
    return store


async def parts(store: Store) -> dict[str, int]:
    rows = await store._rows(
        "SELECT fresh IS NULL AS settled, finished_at IS NOT NULL AS ended, count(*) AS n "
        "FROM tasks GROUP BY 1, 2", [])
    return {f"{'settled' if r['settled'] else 'fresh'} {'ended' if r['ended'] else 'active'}":
            r["n"] for r in rows}


FILTERS: list[dict[str, Any]] = [
    {}, {"statuses": ["succeeded", "failed"]}, {"statuses": ["running", "queued"]},
    {"owners": ["ana"]}, {"kind": "notebook"}, {"statuses": ["failed"], "name": "job_3"}]


async def assert_pages_equal_brute_force(store: Store) -> None:
    everything = await store.list_tasks(limit=10_000)
    for sort in LIST_SORTS:
        for order in ("asc", "desc"):
            for filters in FILTERS:
                expected = brute_force_order(everything, sort, order, filters)
                got = await walk(store, sort, order, filters, limit=7)
                assert got == expected, (sort, order, filters, len(got), len(expected))
    for filters in FILTERS:
        for oldest_first in (False, True):
            expected = brute_force_order(everything, "created",
                                         "asc" if oldest_first else "desc", filters)
            got: list[str] = []
            while True:
                page = await store.list_tasks(limit=9, oldest_first=oldest_first,
                                              cursor=got[-1] if got else None, **filters)
                got += [t.id for t in page]
                if len(page) < 9:
                    break
            assert got == expected, (filters, oldest_first)
        stats = await store.stats(statuses=filters.get("statuses"), name=filters.get("name"),
                                  owners=filters.get("owners"))
        if filters.get("kind") is None:
            counted = {s: 0 for s in stats["statuses"]}
            queues: dict[str, dict[str, int]] = {}
            for task in everything:
                if task.id in set(brute_force_order(everything, "created", "desc", filters)):
                    counted[task.status] += 1
                    if task.status in ("queued", "running"):
                        queues.setdefault(task.queue, {"queued": 0, "running": 0})[
                            task.status] += 1
            assert stats == {"statuses": counted, "queues": queues}, filters
    assert await store.count_tasks(owners=["ana"]) == \
        sum(task.owner == "ana" for task in everything)


async def test_pages_over_fresh_and_settled_tasks_equal_a_brute_force_sort(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = await mixed_store(tmp_path / "tasks.db")
    try:
        mix = await parts(store)
        # every kind of task is there: ended but not settled yet, and settled not ended
        assert set(mix) == {"settled ended", "fresh ended", "fresh active", "settled active"}
        await assert_pages_equal_brute_force(store)
        settled = await store.settle()
        assert settled == mix["fresh ended"]  # the queued jobs have not waited long yet
        assert set(await parts(store)) == {"settled ended", "fresh active", "settled active"}
        await assert_pages_equal_brute_force(store)
        monkeypatch.setattr(store_module, "QUEUED_SETTLE_SECONDS", 0.0)
        waiting = await store._scalar(
            "SELECT count(*) FROM tasks WHERE fresh = 1 AND status = 'queued'")
        assert waiting and await store.settle() == waiting
        await assert_pages_equal_brute_force(store)
    finally:
        await store.close()


async def test_a_settled_task_put_back_in_the_queue_is_listed_and_counted(
        tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "tasks.db")
    try:
        row = {**history_row(2, time.time() - 60), "status": "failed"}
        await store.insert_task_rows([row])
        assert await parts(store) == {"settled ended": 1}
        back = await store.transition(row["id"], {"status": "queued", "finished_at": None},
                                      EventType.RETRYING, when_status=("failed",))
        assert back is not None
        # still settled: the indexes follow its keys, as for a job settled while queued
        assert await parts(store) == {"settled active": 1}
        assert (await store.stats())["queues"] == {"default": {"queued": 1, "running": 0}}
        for sort in ("label", "duration", "progress", "status"):
            page = await store.page_tasks(sort=sort, statuses=["queued"])
            assert [t.id for t in page.tasks] == [row["id"]], sort
        claimed = await store.claim_jobs("default", WORKER, 30.0, 1)
        assert [t.id for t in claimed] == [row["id"]]
        assert (await store.stats())["queues"] == {"default": {"queued": 0, "running": 1}}
        page = await store.page_tasks(sort="duration", order="desc", statuses=["running"])
        assert [t.id for t in page.tasks] == [row["id"]]
    finally:
        await store.close()


async def test_the_store_settles_ended_tasks_by_itself(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "SEARCH_INDEX_SECONDS", 0.01)
    store = await mixed_store(tmp_path / "tasks.db", count=40)
    try:
        async def settled() -> bool:
            return set(await parts(store)) == {"settled ended", "fresh active", "settled active"}

        await eventually(settled)
    finally:
        await store.close()


async def test_the_store_settles_while_the_search_index_gives_way_to_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the search index may wait seconds for a stream of writes to pause; ended tasks
    # left fresh that long would make every list read them apart
    give_way_for(monkeypatch, 3600)
    path = tmp_path / "tasks.db"
    store = await mixed_store(path, count=40)
    stream = Stream(store)
    try:
        async def settled() -> bool:
            return set(await parts(store)) == {"settled ended", "fresh active", "settled active"}

        async def written() -> bool:
            return stream.commits >= 100

        # the index's rounds give way to the stream by now; a job ends meanwhile
        await eventually(settled)
        await eventually(written)
        running = await store.list_tasks(statuses=["running"], limit=100)
        fresh_running = [t for t in running if t.worker_id == WORKER]
        assert fresh_running
        ended = await store.transition(
            fresh_running[0].id, {"status": "succeeded", "finished_at": time.time(),
                                  "worker_id": None},
            EventType.SUCCEEDED, when_status=("running",))
        assert ended is not None
        assert (await parts(store)).get("fresh ended") == 1
        await eventually(settled, what="the job's end settled beside the writes")
        assert indexed_to(path) == 0, "the index did not give way: this proves nothing"
        assert not stream.done
    finally:
        await stream.stop()
        await store.close()


async def test_a_database_of_version_10_settles_its_ended_tasks(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    start = time.time() - 3600
    rows = [history_row(i, start) for i in range(60)]
    rows[5].update(status="queued", started_at=None, finished_at=None)
    conn = sqlite3.connect(path)
    try:
        for _, script in MIGRATIONS[:10]:
            for statement in split_sql(script):
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 10")
        columns = ["id", "kind", "mode", "status", "name", "label", "queue", "priority",
                   "owner", "created_at", "started_at", "finished_at", "updated_at"]
        conn.executemany(f"INSERT INTO tasks ({', '.join(columns)}) "
                         f"VALUES ({', '.join('?' * len(columns))})",
                         [[row[c] for c in columns] for row in rows])
        conn.commit()
    finally:
        conn.close()
    store = await Store.open(path)
    try:
        active = sum(row["status"] in ("queued", "running") for row in rows)
        assert await parts(store) == {"settled ended": len(rows) - active,
                                      "fresh active": active}
        everything = await store.list_tasks(limit=100)
        assert len(everything) == len(rows)
        for sort in ("label", "finished", "duration"):
            assert await walk(store, sort, "desc", {}, limit=8) == \
                brute_force_order(everything, sort, "desc", {})
    finally:
        await store.close()


def test_an_imported_task_queued_with_an_end_time_stays_fresh(tmp_path: Path) -> None:
    # only an import writes one; settled, its status would hide it from the queue counts
    path = tmp_path / "tasks.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for _, script in MIGRATIONS:
            for statement in split_sql(script):
                conn.execute(statement)
        row = {**history_row(3, time.time()), "status": "queued", "id": new_task_id()}
        tx_insert_rows(conn, [task_row_values(row)])
        assert tx_settle(conn) == 0
        assert conn.execute("SELECT fresh FROM tasks").fetchall() == [(1,)]
    finally:
        conn.close()


async def test_a_prune_forgets_tasks_ended_since_the_last_settling(tmp_path: Path) -> None:
    store = await mixed_store(tmp_path / "tasks.db", count=30)
    try:
        assert (await parts(store))["fresh ended"] > 0
        everything = await store.list_tasks(limit=100)
        ended = sum(t.finished_at is not None for t in everything)
        assert await store.prune(time.time() + 1, 0.0) == ended
        assert set(await parts(store)) == {"fresh active", "settled active"}
    finally:
        await store.close()


async def test_an_idle_store_takes_no_write_lock_to_settle(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # every writer process looks each second: with nothing to settle, a transaction
    # each time would take the lock from the others for nothing
    store = await mixed_store(tmp_path / "tasks.db", count=20)
    try:
        writes: list[Any] = []
        txn = store._txn

        async def recording(fn: Any, *args: Any) -> Any:
            writes.append(fn)
            return await txn(fn, *args)

        monkeypatch.setattr(store, "_txn", recording)
        assert await store.settle() > 0
        assert writes == [tx_settle]
        writes.clear()
        assert await store.settle() == 0
        assert writes == []
    finally:
        await store.close()


async def test_a_job_queued_by_a_process_of_the_version_before_is_listed_and_counted(
        tmp_path: Path) -> None:
    # a worker or kernel still running the code of schema 10 beside an upgraded server:
    # its insert names no fresh column, and its job goes in settled (a review found it
    # missing from the queue counts and the progress and duration sorts)
    path = tmp_path / "tasks.db"
    store = await Store.open(path)
    try:
        conn = sqlite3.connect(path)
        try:
            conn.execute("INSERT INTO tasks (id, kind, mode, status, name, queue, created_at, "
                         "updated_at) VALUES (?, 'function', 'job', 'queued', 'old', "
                         "'default', ?, ?)", (new_task_id(), time.time(), time.time()))
            conn.execute("INSERT INTO tasks (id, kind, mode, status, name, created_at, "
                         "updated_at, finished_at) VALUES (?, 'function', 'job', 'succeeded', "
                         "'old', ?, ?, ?)", (new_task_id(), *[time.time()] * 3))
            conn.commit()
        finally:
            conn.close()
        assert await parts(store) == {"settled active": 1, "settled ended": 1}
        assert (await store.stats())["queues"] == {"default": {"queued": 1, "running": 0}}
        everything = await store.list_tasks(limit=10)
        for sort in ("duration", "progress", "status"):
            assert await walk(store, sort, "asc", {}, limit=1) == \
                brute_force_order(everything, sort, "asc", {})
    finally:
        await store.close()


async def desc_page_settled_meanwhile(path: Path, sort: str, settle_after: int
                                      ) -> tuple[list[str], list[str]]:
    """(expected ids, the page's ids) of a descending page over ``mixed_store`` while
    another store settles its tasks after the page's ``settle_after``-th read."""
    store = await mixed_store(path, count=60)
    other = await Store.open(path)  # e.g. a worker process's store
    try:
        everything = await store.list_tasks(limit=1000)
        reads = store._rows
        count = 0

        async def settling_between(sql: str, args: Any = ()) -> Any:
            nonlocal count
            rows = await reads(sql, args)
            count += 1
            if count == settle_after:
                assert await other.settle() > 0
            return rows

        store._rows = settling_between  # type: ignore[method-assign]
        page = await store.page_tasks(sort=sort, order="desc", limit=len(everything))
        return brute_force_order(everything, sort, "desc", {}), [t.id for t in page.tasks]
    finally:
        await other.close()
        await store.close()


@pytest.mark.parametrize("sort", ["label", "status", "finished"])
async def test_a_task_settled_while_a_descending_page_is_read_is_on_it(
        tmp_path: Path, sort: str) -> None:
    # a descending page takes several reads (a tie group at a time); each reads both
    # parts, so a task the upkeep of this or another process settles between two of
    # them is in one or the other. Read apart (settled, then fresh), a review lost 40
    # of 120 such tasks from one page
    for settle_after in range(1, 9):
        expected, got = await desc_page_settled_meanwhile(
            tmp_path / f"tasks-{settle_after}.db", sort, settle_after)
        assert got == expected, (sort, settle_after)
