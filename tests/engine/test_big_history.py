"""A large history: list queries through indexes, pages equal to a brute-force filter,
and pruning in small transactions that removes exactly the old finished tasks."""

from __future__ import annotations

import asyncio
import itertools
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from jupyter_tasks.models import TERMINAL_STATUSES, Task, new_task_id
from jupyter_tasks.store import Store
from jupyter_tasks.store import store as store_module
from jupyter_tasks.store.task_sql import (
    ENDED_SORT_SQL,
    GROUP_WALKED_SORTS,
    LIST_SORTS,
    PRUNE_EVENTS_STEP,
    PRUNE_SELECT,
    PRUNE_STEP,
    SEARCH_MERGE_STEPS,
    SEARCH_QUEUE_STEP,
    next_key_query,
    page_query,
    stats_query,
    task_filters,
    tie_group_query,
)
from tests.engine.brute_force import matches, sort_key, walk
from tests.engine.vm_steps import counting_steps

HISTORY = 20_000
STATUSES = ("succeeded", "succeeded", "failed", "cancelled", "succeeded", "running")
KINDS = ("function", "notebook", "function", "subprocess", "code")
LABELS = (None, "", "Train Model", "etl", "Zeta run")


def history_row(i: int, start: float) -> dict[str, Any]:
    status = STATUSES[i % len(STATUSES)]
    created = start + i * 0.5
    finished = None if status == "running" else created + (i % 9)
    label = LABELS[i % len(LABELS)]
    return dict(
        id=new_task_id(), kind=KINDS[i % len(KINDS)], mode="job", status=status,
        name=f"job_{i % 11}", label=None if label is None else f"{label} {i % 300}",
        queue="default", priority=i % 3, owner=(None, "ana", "Bo")[i % 3],
        origin={"type": "kernel", "notebook": f"NB/{i % 17}.ipynb"} if i % 4 else None,
        progress={"current": i % 10, "total": 10}, created_at=created,
        started_at=None if i % 13 == 0 else created + 0.1, finished_at=finished,
        updated_at=created + 1,
    )


def old_finished_rows(count: int) -> list[dict[str, Any]]:
    """``count`` history rows all succeeded hours ago, finished in their order."""
    start = time.time() - 10_000
    return [{**history_row(i, start), "status": "succeeded", "finished_at": start + i}
            for i in range(count)]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("history") / "tasks.db"

    async def build() -> None:
        store = await Store.open(path)
        try:
            start = time.time() - HISTORY
            await store.insert_task_rows(history_row(i, start) for i in range(HISTORY))
        finally:
            await store.close()

    asyncio.run(build())
    return path


# ------------------------------------------------------------------ query plans

FILTERS: list[dict[str, Any]] = [
    {}, {"statuses": ["failed"]}, {"statuses": ["succeeded", "failed", "cancelled"]},
    {"statuses": ["queued", "running"]}, {"name": "job_3"}, {"kind": "notebook"},
    {"owners": ["ana"]},
]
# under a column sort, the filters whose matches are most of a long history (the
# finished statuses); an active filter's few rows, or one name's, kind's, owner's, are
# found through their own index and sorted
SORT_FILTERS = FILTERS[:3]


def where_of(filters: dict[str, Any]) -> tuple[list[str], list[Any]]:
    filtered = task_filters(filters.get("statuses"), filters.get("name"), filters.get("kind"),
                            filters.get("owners"), None, None, None, None, None, None, None)
    assert filtered is not None
    return filtered


def explain(conn: sqlite3.Connection, sql: str, args: list[Any]) -> str:
    return " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args))


def a_key(sort: str) -> Any:
    """A sort key of the right type for a cursor or a tie."""
    return 1.0 if sort in ("finished", "started", "priority", "status") else "m"


# the fresh tasks (not ended, or ended since the last settling: few) are read along
# their own index and sorted; only the settled ones are in the sorts' indexes
FRESH_SORT = re.compile(r"(SEARCH|SCAN) tasks USING INDEX tasks_fresh[^|]*\| "
                        r"USE TEMP B-TREE FOR ORDER BY")


def without_fresh_sort(seen: str) -> str:
    """A query plan without the sorts of its fresh part."""
    return FRESH_SORT.sub("", seen)


def plan(conn: sqlite3.Connection, sort: str, descending: bool, filters: dict[str, Any],
         after: tuple[Any, str, float] | None) -> str:
    return explain(conn, *page_query(sort, descending, *where_of(filters), after,
                                     time.time(), 50))


@pytest.mark.parametrize("sort", LIST_SORTS)
def test_every_list_query_enters_an_index_never_a_scan_of_tasks(history: Path,
                                                                 sort: str) -> None:
    conn = sqlite3.connect(history)
    try:
        cursor = (None if sort == "created" else a_key(sort), "8" * 32, time.time())
        # the direction each view opens with (desc for created, asc for others); both
        # for progress and duration, indexed for each (most tasks tie on progress)
        directions = [True, False] if sort in ENDED_SORT_SQL else [sort == "created"]
        for filters in FILTERS if sort == "created" else SORT_FILTERS:
            for after, descending in itertools.product((None, cursor), directions):
                seen = plan(conn, sort, descending, filters, after)
                assert "SCAN tasks" not in seen.replace("SCAN tasks USING", ""), \
                    (sort, filters, seen)
                # sorting the whole match set would read every matching row for 50 (a
                # sort of a LIMITed subquery's rows is bounded: that one may be), and
                # sorting within ties ("RIGHT PART") a whole tie group
                bounded = re.sub(r"SCAN \(subquery-\d+\) \| USE TEMP B-TREE FOR ORDER BY",
                                 "", seen)
                if sort in ENDED_SORT_SQL:
                    # the settled tasks that have ended walk the sort's own index; those
                    # not ended (jobs settled while queued) are sorted apart
                    assert f"INDEX tasks_by_{sort}" in seen, (sort, filters, seen)
                    bounded = bounded.replace("INDEX tasks_by_finished (<expr>=?) | "
                                              "USE TEMP B-TREE FOR ORDER BY", "")
                assert "TEMP B-TREE FOR" not in without_fresh_sort(bounded), \
                    (sort, descending, filters, seen)
    finally:
        conn.close()


# the filters a script looks one task (or a few) up by, and the index each enters
KEY_FILTERS = {"task_key": ("report/7", "tasks_by_key"),
               "idempotency_key": ("idem-3", "tasks_by_idempotency_key"),
               "parent_id": ("8" * 32, "tasks_by_parent"),
               "schedule_id": ("s" * 32, "tasks_by_schedule")}


@pytest.mark.parametrize("field", sorted(KEY_FILTERS))
@pytest.mark.parametrize("owners", [None, ["ana"]])
def test_a_key_filter_enters_its_index_never_walks_the_history(
        history: Path, field: str, owners: list[str] | None) -> None:
    # ?idempotency_key= (did my retried submit go in?) walked the whole history along
    # the id, or an owner's along tasks_by_owner: the unique key's index leads with the
    # owner. 62 ms over 200,000 tasks
    conn = sqlite3.connect(history)
    try:
        value, index = KEY_FILTERS[field]
        values: dict[str, Any] = {"statuses": None, "name": None, "kind": None,
                                  "owners": owners, "queue": None, "task_key": None,
                                  "key_prefix": None, "idempotency_key": None,
                                  "parent_id": None, "worker_id": None, "search": None,
                                  field: value}
        filtered = task_filters(**values)
        assert filtered is not None
        seen = explain(conn, *page_query("created", True, *filtered, None, time.time(), 50))
        # the settled tasks (the history) are the merge's left part
        settled = seen.split(" | RIGHT | ")[0]
        assert f"SEARCH tasks USING INDEX {index} " in settled, (field, seen)
    finally:
        conn.close()


@pytest.mark.parametrize("beside", [{"kind": "notebook"}, {"name": "job_3"},
                                    {"owners": ["ana"]}, {"kind": "cell", "owners": ["ana"]}])
@pytest.mark.parametrize("statuses", [["queued", "running"], ["running"]])
def test_active_tasks_beside_another_filter_are_found_along_an_index_of_statuses(
        history: Path, beside: dict[str, Any], statuses: list[str]) -> None:
    # the cards a notebook restores when it opens (kind=cell&status=queued,running), a
    # user's own active tasks: along the kind's or the owner's index they walked every
    # such task of the history to find the few still active (50 ms for 40,000
    # notebook tasks, 56 ms for an owner's 67,000)
    conn = sqlite3.connect(history)
    try:
        filters = {"statuses": statuses, **beside}
        seen = plan(conn, "created", True, filters, None)
        settled = seen.split(" | RIGHT | ")[0]
        # an owner's along the index of their own statuses, else along every owner's
        index = "tasks_by_owner_status (owner=? AND status=?)" if "owners" in beside \
            else "tasks_by_status (status=?)"
        assert f"SEARCH tasks USING INDEX {index}" in settled, (beside, seen)
        if "owners" in beside:
            # and their counts (the dashboard's) enter the owner's counting index, which
            # alone answers them when nothing else is filtered
            counts = explain(conn, *stats_query(*where_of(filters)))
            alone = "COVERING " if beside.keys() == {"owners"} else ""
            assert f"USING {alone}INDEX tasks_owner_counts (owner=? AND status=?)" \
                in counts, counts
    finally:
        conn.close()


async def test_one_owners_counts_read_an_index_alone(history: Path) -> None:
    # a user who sees only their own tasks (the panel's status bar and status filter):
    # along tasks_by_owner the count read every row of the owner's history
    conn = sqlite3.connect(history)
    try:
        sql, args = stats_query(*where_of({"owners": ["ana"]}))
        seen = explain(conn, sql, args)
        assert "USING COVERING INDEX tasks_owner_counts (owner=?)" in seen, seen
    finally:
        conn.close()
    async with await Store.open(history) as store:
        everything = await store.list_tasks(limit=2 * HISTORY)
        counted = await store.stats(["ana"])
    mine = [t for t in everything if t.owner == "ana"]
    assert counted["statuses"] == {s: sum(t.status == s for t in mine)
                                   for s in counted["statuses"]}
    assert sum(counted["statuses"].values()) == len(mine) > 0


@pytest.mark.parametrize("sort", GROUP_WALKED_SORTS)
def test_a_descending_page_reads_its_ties_in_order_never_sorts_them(history: Path,
                                                                     sort: str) -> None:
    # walked backwards, a (key, id DESC) index gives ties oldest first and SQLite sorts
    # each tie whole (3 s a page for status over a million ended tasks): a descending
    # page enters the index at one key at a time instead
    conn = sqlite3.connect(history)
    try:
        key = a_key(sort)
        for filters in SORT_FILTERS:
            filtered = where_of(filters)
            for sql, args in (next_key_query(sort, *filtered, None),
                              next_key_query(sort, *filtered, key),
                              tie_group_query(sort, *filtered, key, None, 51),
                              tie_group_query(sort, *filtered, key, "8" * 32, 51)):
                seen = explain(conn, sql, args)
                # (a LIMITed subquery's rows, sorted in the merge, are bounded)
                bounded = re.sub(r"SCAN \(subquery-\d+\) \| USE TEMP B-TREE FOR ORDER BY",
                                 "", without_fresh_sort(seen))
                assert " INDEX " in seen and "TEMP B-TREE" not in bounded, (sort, sql, seen)
    finally:
        conn.close()


@pytest.mark.parametrize("sort", GROUP_WALKED_SORTS)
async def test_descending_pages_of_any_size_equal_a_brute_force_sort(history: Path,
                                                                     sort: str) -> None:
    store = await Store.open(history)
    try:
        everything = await store.list_tasks(limit=HISTORY + 1, oldest_first=True)
        for filters, limit in (({}, 37), ({"statuses": ["failed", "cancelled"]}, 5)):
            chosen = [t for t in everything if matches(t, filters)]
            newest_first = sorted(chosen, key=lambda t: t.id, reverse=True)
            expected = [t.id for t in sorted(newest_first, key=lambda t: sort_key(t, sort),
                                             reverse=True)]
            got = await walk(store, sort, "desc", filters, limit=limit)
            assert got == expected, (sort, filters, limit, len(got), len(expected))
    finally:
        await store.close()


def test_a_prune_chunk_walks_finished_time_not_a_sort_of_every_finished_task(
        history: Path) -> None:
    conn = sqlite3.connect(history)
    try:
        seen = explain(conn, PRUNE_SELECT, [time.time(), *TERMINAL_STATUSES, 500])
    finally:
        conn.close()
    assert "USING INDEX tasks_by_finished" in seen and "TEMP B-TREE" not in seen, seen


async def test_a_prune_chunk_does_not_walk_the_tasks_still_queued(tmp_path: Path) -> None:
    # unfinished tasks head tasks_by_finished (key -1.0): a chunk that walked past a
    # backlog queued meanwhile read each of its rows, chunk after chunk
    path = tmp_path / "tasks.db"
    store = await Store.open(path)
    try:
        now = time.time()
        await store.insert_task_rows(
            {"id": new_task_id(), "kind": "function", "mode": "job", "status": "succeeded",
             "created_at": now - 100, "finished_at": now - 100 + i * 0.001}
            for i in range(200))
    finally:
        await store.close()

    def steps() -> int:
        conn = sqlite3.connect(path)
        try:
            with counting_steps(conn) as count:  # every 100 VM instructions
                conn.execute(PRUNE_SELECT, [now - 50, *TERMINAL_STATUSES, 500]).fetchall()
            return count.steps
        finally:
            conn.close()

    alone = steps()
    store = await Store.open(path)
    try:
        await store.insert_task_rows(
            {"id": new_task_id(), "kind": "function", "mode": "job", "status": "queued",
             "created_at": now} for _ in range(5_000))
    finally:
        await store.close()
    beside_a_backlog = steps()
    # walking 5,000 queued rows costs hundreds of these ticks; the range skips them
    assert beside_a_backlog <= alone + 5, (alone, beside_a_backlog)


# ------------------------------------------------------------------ pages = brute force


async def test_pages_through_every_filter_and_sort_equal_a_brute_force_filter(
        history: Path) -> None:
    store = await Store.open(history)
    try:
        everything = await store.list_tasks(limit=HISTORY + 1, oldest_first=True)
        assert len(everything) == HISTORY
        cases = [
            ("created", "desc", {}), ("created", "asc", {"statuses": ["failed"]}),
            ("created", "desc", {"kind": "notebook"}), ("created", "desc", {"search": "train"}),
            ("label", "asc", {}), ("label", "desc", {"owners": ["Bo"]}),
            ("owner", "asc", {"kind": "code"}), ("owner", "desc", {}),
            ("origin", "asc", {"name": "job_4"}), ("status", "asc", {}),
            ("finished", "asc", {}), ("finished", "desc", {"statuses": ["cancelled"]}),
            ("started", "asc", {"search": "zeta"}), ("priority", "desc", {}),
            # ended tasks through their own index, the running ones merged in
            ("status", "desc", {}), ("origin", "desc", {"kind": "notebook"}),
            ("started", "desc", {}),
            ("progress", "asc", {}), ("progress", "desc", {"kind": "function"}),
            ("duration", "desc", {}), ("duration", "asc", {"statuses": ["running", "failed"]}),
        ]
        for sort, order, filters in cases:
            chosen = [t for t in everything if matches(t, filters)]
            expected = [t.id for t in sorted(chosen, key=lambda t: t.id, reverse=True)]
            if sort != "created":
                # ties newest first in both directions: a stable sort on the key
                expected_tasks = sorted(chosen, key=lambda t: t.id, reverse=True)
                expected = [t.id for t in sorted(expected_tasks, key=lambda t: sort_key(t, sort),
                                                 reverse=order == "desc")]
            elif order == "asc":
                expected.reverse()
            got = await walk(store, sort, order, filters)
            assert got == expected, (sort, order, filters, len(got), len(expected))
    finally:
        await store.close()


# ------------------------------------------------------------------ pruning


async def test_pruning_in_chunks_removes_exactly_the_old_finished_tasks_and_theirs(
        db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "PRUNE_CHUNK", 7)
    monkeypatch.setattr(store_module, "PRUNE_CHUNK_SECONDS", 1e-6)  # every chunk stays small
    store = await Store.open(db_path)
    try:
        now = time.time()
        cutoff = now - 1000
        rows = [history_row(i, now - 5000) for i in range(300)]
        for row in rows:
            if row["status"] == "running":
                row["created_at"] = row["started_at"] = now - 4000  # old yet running
        await store.insert_task_rows(rows)
        old = {r["id"] for r in rows if r["finished_at"] is not None and r["finished_at"] < cutoff}
        kept = {r["id"] for r in rows} - old
        assert old and any(r["status"] == "running" for r in rows)
        for row in rows[:60]:
            await store.append_logs(row["id"], [(now, "stdout", f"line of {row['id']}")])
            await store.add_artifact(row["id"], "out.txt", b"x")
        pruned = await store.prune(cutoff, now + 1)
        assert pruned == len(old)
        left = {t.id for t in await store.list_tasks(limit=1000)}
        assert left == kept
        for row in rows[:60]:
            logs = await store.get_logs(row["id"])
            artifacts = await store.list_artifacts(row["id"])
            on_disk = (store.artifacts_dir / row["id"]).exists()
            gone = row["id"] in old
            assert (not logs, not artifacts, not on_disk) == (gone, gone, gone), row["id"]
        # events before the cutoff went, except the newest (ids never go back)
        events = await store.events_after(0, limit=10_000)
        assert len(events) == 1
    finally:
        await store.close()


def queued_task() -> Task:
    """A queued job's row, as a submit writes it."""
    return Task(id=new_task_id(), kind="function", mode="job", status="queued",
                created_at=time.time(), updated_at=time.time())


async def test_a_write_during_a_long_prune_commits_between_its_chunks(
        db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "PRUNE_CHUNK", 50)
    monkeypatch.setattr(store_module, "PRUNE_CHUNK_SECONDS", 1e-6)
    store = await Store.open(db_path)
    try:
        rows = old_finished_rows(3000)
        await store.insert_task_rows(rows)
        pruning = asyncio.ensure_future(store.prune(time.time(), 0))
        await asyncio.sleep(0)  # the prune's first chunk is queued
        task = queued_task()
        await store.create_task(task)
        reader = sqlite3.connect(db_path)
        try:
            # committed while most of the old tasks are still there: the write waited
            # for one chunk, not for the whole prune
            still_old = reader.execute(
                "SELECT count(*) FROM tasks WHERE status = 'succeeded'").fetchone()[0]
        finally:
            reader.close()
        assert still_old > 1000
        assert await pruning == 3000
        assert await store.get_task(task.id) is not None
    finally:
        await store.close()


async def test_a_prune_rests_after_each_chunk_as_long_as_the_chunk_took(
        db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Back to back, a prune of 900k tasks left a one-at-a-time writer beside it ~230
    # writes/s (p99 26-27 ms); resting as long as each chunk took, 1,230-1,500 (13-20 ms)
    monkeypatch.setattr(store_module, "PRUNE_CHUNK", 50)
    monkeypatch.setattr(store_module, "PRUNE_CHUNK_SECONDS", 1e-6)
    store = await Store.open(db_path)
    chunks: list[float] = []
    rests: list[tuple[float, int]] = []  # (seconds, chunks done when it began)
    chunk = store._prune_chunk
    rest = store_module.prune_rest

    async def timed_chunk(*args: Any) -> tuple[int, bool]:
        t0 = time.perf_counter()
        try:
            return await chunk(*args)
        finally:
            chunks.append(time.perf_counter() - t0)

    async def watched_rest(seconds: float) -> None:
        rests.append((seconds, len(chunks)))
        await rest(seconds)

    monkeypatch.setattr(store, "_prune_chunk", timed_chunk)
    monkeypatch.setattr(store_module, "prune_rest", watched_rest)
    try:
        await store.insert_task_rows(old_finished_rows(500))
        assert await store.prune(time.time(), 0) == 500
    finally:
        await store.close()
    # a rest after every chunk but the last of the tasks and of the events, each as long
    # as its chunk took (or longer: measured around it)
    assert len(chunks) >= 10
    assert [done for _, done in rests] == [*range(1, len(chunks) - 1)]
    for seconds, done in rests:
        assert seconds >= chunks[done - 1] * store_module.PRUNE_REST_RATIO


async def test_no_upkeep_transaction_runs_beside_a_copy_of_the_log(
        db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # During a million-task prune the longest upkeep transactions (a search-index
    # batch of 100 ms, a merge step of 96 ms, against 62 and 60 ms at most with no
    # copy) ran while a WAL copy shared the disk and the cores with them, and a write
    # queued behind one waited 101 ms. An upkeep transaction now waits for a copy to
    # end (giving the writer to the short writes meanwhile), and a copy for it.
    monkeypatch.setattr(store_module, "PRUNE_CHUNK", 50)
    monkeypatch.setattr(store_module, "PRUNE_CHUNK_SECONDS", 1e-6)
    copy = store_module.checkpoint
    copies: list[tuple[float, float]] = []
    upkeeps: list[tuple[float, float]] = []

    def slow_copy(conn: sqlite3.Connection) -> int:
        # a copy as slow as one beside a prune on a busy disk (its p99 was 35 ms)
        t0 = time.perf_counter()
        try:
            time.sleep(0.01)
            return copy(conn)
        finally:
            if conn is store._checkpoint_conn:  # not the writer's own (tail_checkpoint)
                copies.append((t0, time.perf_counter()))

    run_upkeep = Store._run_upkeep

    def timed_upkeep(self: Store, conn: sqlite3.Connection, op: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return run_upkeep(self, conn, op)
        finally:
            if op[0] is not store_module.tail_checkpoint:  # the writer's own copy
                upkeeps.append((t0, time.perf_counter()))

    monkeypatch.setattr(store_module, "checkpoint", slow_copy)
    monkeypatch.setattr(Store, "_run_upkeep", timed_upkeep)
    store = await Store.open(db_path)
    try:
        await store.insert_task_rows([{**row, "label": f"Theta run {i}"}
                                      for i, row in enumerate(old_finished_rows(1500))])
        await store.index_search()
        copies.clear()
        upkeeps.clear()
        writes = asyncio.ensure_future(asyncio.gather(*(
            store.create_task(Task(id=new_task_id(), kind="function", mode="job",
                                   status="queued", name="beside", created_at=time.time(),
                                   updated_at=time.time()))
            for _ in range(200))))
        # the index forgets the pruned tasks beside the prune, as the store's own loop does
        pruning = asyncio.ensure_future(store.prune(time.time(), 0))
        while not pruning.done():
            await store.index_search()
            await asyncio.sleep(0.001)
        assert await pruning == 1500
        await store.index_search()
        assert len(await writes) == 200
    finally:
        await store.close()
    assert len(copies) >= 2 and len(upkeeps) >= 30
    beside = [(a, b) for a, b in upkeeps if any(c < b and a < d for c, d in copies)]
    assert beside == []


async def until(condition: Any, what: str) -> None:
    """Wait (with a deadline) until ``condition()`` holds."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.001)


async def hold_writer(store: Store) -> threading.Event:
    """Keep the store's writer thread busy until the returned event is set."""
    held, holding = threading.Event(), threading.Event()

    def hold() -> None:
        holding.set()
        held.wait()

    store._writer.call_soon(hold)
    await until(holding.is_set, "the writer never took the call")
    return held


async def test_a_write_waits_for_one_maintenance_batch_not_two(db_path: Path) -> None:
    # A prune chunk and a search-index batch are each sized to hold the writer ~25 ms.
    # Queued together with a submit between them, all three went into one transaction:
    # the submit waited for both (the ~100 ms stalls of a million-task prune). Batches
    # of upkeep now commit alone, and a write queued meanwhile goes before the next one.
    store = await Store.open(db_path)
    try:
        await store.insert_task_rows(old_finished_rows(200))
        conn = store._writer.connection
        statements: list[str] = []
        held = await hold_writer(store)  # the writer busy while the three queue up
        indexing = asyncio.ensure_future(store._txn(store_module.tx_index_search, 100))
        task = queued_task()
        creating = asyncio.ensure_future(store.create_task(task))
        pruning = asyncio.ensure_future(store._txn(store_module.tx_prune_tasks, time.time(), 50))
        await until(lambda: store.queued_writes() >= 3, "the writes never queued")
        conn.set_trace_callback(statements.append)
        held.set()
        await asyncio.gather(indexing, creating, pruning)
        conn.set_trace_callback(None)
        transactions: list[set[str]] = []
        for sql in statements:
            if sql.startswith("BEGIN"):
                transactions.append(set())
            elif transactions:
                text = " ".join(sql.split())
                for mark, what in (("FROM task_search_queue ORDER BY seq", "index"),
                                   ("INSERT INTO tasks", "create"),
                                   ("DELETE FROM tasks WHERE id", "prune")):
                    if mark in text:
                        transactions[-1].add(what)
        done = [t for t in transactions if t]
        assert done == [{"index"}, {"create"}, {"prune"}]
    finally:
        await store.close()


def deletions_per_transaction(statements: list[str], mark: str) -> list[int]:
    """How many distinct traced statements with ``mark`` each transaction ran (none: left out).

    Distinct: a statement is traced again (its own text) for each trigger it fires.
    """
    seen: list[set[str]] = []
    for sql in statements:
        if sql.startswith("BEGIN"):
            seen.append(set())
        elif seen and mark in " ".join(sql.split()):
            seen[-1].add(sql)
    return [len(statements) for statements in seen if statements]


def statement_kinds_per_transaction(statements: list[str]) -> list[set[str]]:
    """Which of the search index's writes (a deletion, a merge) each transaction ran."""
    seen: list[set[str]] = []
    for sql in statements:
        if sql.startswith("BEGIN"):
            seen.append(set())
        elif seen:
            seen[-1].update(kind for kind in ("VALUES ('delete'", "VALUES ('merge'")
                            if kind in " ".join(sql.split()))
    return seen


async def indexed_history(store: Store, count: int, label: str
                          ) -> tuple[float, list[dict[str, Any]]]:
    """(their start, ``count`` finished rows labelled ``label`` and a number), inserted
    and in the search index."""
    start = time.time() - 10_000
    rows = [{**history_row(i, start), "status": "succeeded", "finished_at": start + i,
             "label": f"{label} {i}"} for i in range(count)]
    await store.insert_task_rows(rows)
    await store.index_search()
    return start, rows


def merges_per_transaction(statements: list[str]) -> list[int]:
    """How many merge steps of the search index each transaction ran (none: left out)."""
    seen: list[int] = []
    for sql in statements:
        if sql.startswith("BEGIN"):
            seen.append(0)
        elif seen and "VALUES ('merge'" in " ".join(sql.split()):
            seen[-1] += 1
    return [merges for merges in seen if merges]


async def test_each_merge_step_of_the_search_index_commits_alone(db_path: Path) -> None:
    # A merge transaction went on to a further step while it had time left, and a
    # step can take 50-64 ms over a million tasks (one stops only between two of the
    # index's terms): such a transaction held a million-task prune's writer 102 ms.
    # A write queued beside the merging now waits for one step.
    store = await Store.open(db_path)
    try:
        start, rows = await indexed_history(store, 600, "Eta run")
        statements: list[str] = []
        conn = store._writer.connection
        conn.set_trace_callback(statements.append)
        # (fewer than are left: the index forgets them, it does not start over)
        assert await store.prune(start + 250, 0) == 250
        await store.index_search()
        conn.set_trace_callback(None)
        batches = deletions_per_transaction(statements, "VALUES ('delete'")
        assert sum(batches) == 250
        merges = merges_per_transaction(statements)
        assert merges == [1] * len(merges)
        # every step a batch owes is paid, at once or at the end
        assert len(merges) == SEARCH_MERGE_STEPS * len(batches)
        found = {t.id for t in await store.list_tasks(search="eta run", limit=1000)}
        assert found == {r["id"] for r in rows[250:]}
    finally:
        await store.close()


async def test_a_maintenance_batch_out_of_time_commits_the_step_it_took(
        db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A prune chunk and a search-index batch were sized from the last one's pace,
    # and nothing stopped one that ran long: during a million-task prune beside a
    # checkpoint and submits, chunks of 80-150 ms and index batches (200 deletions and
    # a merge) of 50-90 ms, which a submit queued behind them waited for. Each now
    # stops at its first step that ends past its time: with none left, one step a batch;
    # and an index batch out of time leaves its merge steps (one alone can take 50-64 ms
    # over a million tasks) to transactions of their own.
    monkeypatch.setattr(store_module, "PRUNE_CHUNK", 1000)
    monkeypatch.setattr(store_module, "PRUNE_CHUNK_SECONDS", 0)
    monkeypatch.setattr(store_module, "SEARCH_BATCH_SECONDS", 0, raising=False)
    store = await Store.open(db_path)
    try:
        start, rows = await indexed_history(store, 400, "Zeta run")
        for i in (150, 350):  # pruned in a later step; kept
            await store.add_artifact(rows[i]["id"], "out.txt", b"x")
        statements: list[str] = []
        conn = store._writer.connection
        conn.set_trace_callback(statements.append)
        # the oldest half go (no more than are left: the index forgets them one by one)
        assert await store.prune(start + 200, 0) == 200
        await store.index_search()
        conn.set_trace_callback(None)
        chunks = deletions_per_transaction(statements, "DELETE FROM tasks WHERE id")
        assert sum(chunks) == 200
        assert chunks[0] == max(chunks) == PRUNE_STEP  # the first chunk's size was 1000
        deletions = deletions_per_transaction(statements, "VALUES ('delete'")
        assert sum(deletions) == 200
        assert max(deletions) == SEARCH_QUEUE_STEP
        # each batch owed its steps, which followed, a transaction each, never one
        # beside the batch's deletions
        merges = [sql for sql in statements if "VALUES ('merge'" in sql]
        assert len(merges) == SEARCH_MERGE_STEPS * len(deletions)
        assert deletions_per_transaction(statements, "VALUES ('merge'") == \
            [1] * len(merges)
        both = [kinds for kinds in statement_kinds_per_transaction(statements)
                if {"VALUES ('delete'", "VALUES ('merge'"} <= kinds]
        assert both == []
        assert not (store.artifacts_dir / rows[150]["id"]).exists()
        assert (store.artifacts_dir / rows[350]["id"]).exists()
        # the index is whole: only the 200 left are found
        found = {t.id for t in await store.list_tasks(search="zeta run", limit=1000)}
        assert found == {r["id"] for r in rows[200:]}
    finally:
        await store.close()


async def test_a_prune_chunk_cut_short_names_only_the_files_of_tasks_it_deleted(
        db_path: Path) -> None:
    store = await Store.open(db_path)
    try:
        rows = old_finished_rows(300)
        await store.insert_task_rows(rows)
        for i in (50, 150):
            await store.add_artifact(rows[i]["id"], "out.txt", b"x")
        deleted, with_files, more = await store._txn(
            store_module.tx_prune_tasks, time.time(), 1000, 0)
        assert (deleted, with_files, more) == (PRUNE_STEP, [rows[50]["id"]], True)
        assert await store.get_task(rows[150]["id"]) is not None
        assert [a.name for a in await store.list_artifacts(rows[150]["id"])] == ["out.txt"]
    finally:
        await store.close()


async def test_an_events_chunk_out_of_time_stops_at_its_first_step(db_path: Path) -> None:
    # One DELETE over the whole id range of a chunk took 50-72 ms in a million-task
    # prune, which a submit queued behind it waited for: it now goes a step at a time
    store = await Store.open(db_path)
    try:
        old = time.time() - 10_000
        other = sqlite3.connect(db_path)
        try:
            other.executemany("INSERT INTO events (task_id, type, ts) VALUES (?, ?, ?)",
                              [("t", "task.created", old + i) for i in range(1200)])
            other.commit()
        finally:
            other.close()
        deleted, done = await store._txn(store_module.tx_prune_events, time.time(), 5000, 0)
        assert (deleted, done) == (PRUNE_EVENTS_STEP, False)
        await store.prune(0, time.time())
        assert len(await store.events_after(0, limit=10_000)) == 1  # the newest stays
    finally:
        await store.close()


def events_chunk_steps(path: Path, events: int) -> int:
    """SQLite's VM steps (in thousands) of one events chunk over ``events`` new events."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        now = time.time()
        conn.execute("DELETE FROM events")
        conn.executemany("INSERT INTO events (task_id, type, ts, task) VALUES (?, ?, ?, ?)",
                         [("t", "task.progress", now, "{}") for _ in range(events)])
        with counting_steps(conn, 1000) as count:
            conn.execute("BEGIN IMMEDIATE")
            deleted, done = store_module.tx_prune_events(conn, now - 3600, 1000)
            conn.execute("ROLLBACK")
        assert (deleted, done) == (0, True)  # nothing old: the chunk only looked
        return count.steps
    finally:
        conn.close()


async def test_an_events_chunk_reads_the_ends_of_the_events_not_all_of_them(
        db_path: Path) -> None:
    # "SELECT min(id), max(id)" is not one of the min/max queries SQLite answers from
    # the ends of the rowid: it read every event, 162 ms for each chunk of a
    # million-task prune beside 100k events, and a submit queued behind it waited
    async with await Store.open(db_path):
        pass
    small, large = events_chunk_steps(db_path, 2_000), events_chunk_steps(db_path, 40_000)
    assert large <= small + 2, f"{small}k VM steps over 2,000 events, {large}k over 40,000"


async def test_a_write_queued_behind_the_wal_copy_goes_before_the_next_prune_chunk(
        db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The writer's copy of the WAL's rest was a call on its thread of its own, outside
    # the turns writes and upkeep take: a submit queued behind it then waited for it,
    # for the prune chunk whose turn came next, and for the next copy (80-93 ms during
    # a million-task prune). The copy now takes upkeep's turn: the submit goes next.
    monkeypatch.setattr(store_module, "TAIL_CHECKPOINT_FRAMES", 0)
    store = await Store.open(db_path)
    try:
        await store.insert_task_rows(old_finished_rows(200))
        conn = store._writer.connection
        statements: list[str] = []
        held = await hold_writer(store)  # the writer busy while the three queue up
        copying = asyncio.ensure_future(store._checkpoint())
        # the passive copies on their own connection done, the writer's part queued
        await until(store.queued_writes, "the WAL copy never queued")
        task = queued_task()
        creating = asyncio.ensure_future(store.create_task(task))
        pruning = asyncio.ensure_future(store._txn(store_module.tx_prune_tasks, time.time(), 50))
        await until(lambda: store.queued_writes() >= 3, "the writes never queued")
        conn.set_trace_callback(statements.append)
        held.set()
        await asyncio.gather(copying, creating, pruning)
        conn.set_trace_callback(None)
        order: list[str] = []
        for sql in statements:
            text = " ".join(sql.split())
            for mark, what in (("wal_checkpoint", "copy"), ("INSERT INTO tasks", "create"),
                               ("DELETE FROM tasks WHERE id", "prune")):
                if mark in text and (not order or order[-1] != what):
                    order.append(what)
        assert order == ["copy", "create", "prune"]
    finally:
        await store.close()


async def test_a_long_prune_copies_the_wal_back_between_its_chunks(
        db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Else the WAL grows through the whole prune until the automatic checkpoint, which
    # the commit of whichever chunk crosses its threshold pays for: copying and fsync
    # of everything since, ~100 ms every ~30 chunks of a million-task prune. Copied
    # back between chunks, the WAL starts again from its beginning at the next one.
    monkeypatch.setattr(store_module, "PRUNE_CHUNK", 50)
    monkeypatch.setattr(store_module, "PRUNE_CHUNK_SECONDS", 1e-6)
    monkeypatch.setattr(store_module, "PRUNE_CHECKPOINT_SECONDS", 0, raising=False)
    store = await Store.open(db_path)
    reader = sqlite3.connect(db_path)
    try:
        await store.insert_task_rows(old_finished_rows(3000))
        assert await store.prune(time.time(), 0) == 3000
        # (busy, frames in the WAL since it last started again, frames copied back):
        # the 60 chunks wrote ~6,600 frames; since the last restart, one chunk's few
        _, frames, _ = reader.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert frames < 500
    finally:
        reader.close()
        await store.close()


async def store_counting_copies(db_path: Path, monkeypatch: pytest.MonkeyPatch
                                ) -> tuple[Store, list[str]]:
    """A store whose every WAL copy is logged ("beside" the writes, or the "writer"'s).

    Any WAL is long enough for the writer to copy its rest, and the store's loop
    copies nothing of its own.
    """
    monkeypatch.setattr(store_module, "TAIL_CHECKPOINT_FRAMES", 1)
    monkeypatch.setattr(store_module, "CHECKPOINT_SECONDS", 3600)
    store = await Store.open(db_path)
    copies: list[str] = []
    copy = store_module.checkpoint

    def counted(conn: sqlite3.Connection) -> int:
        copies.append("beside" if conn is store._checkpoint_conn else "writer")
        return copy(conn)

    monkeypatch.setattr(store_module, "checkpoint", counted)
    return store, copies


async def test_a_long_wal_is_copied_twice_beside_the_writes_before_the_writer_copies(
        db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The writer's own copy (of what was written while the first copy ran) took up to
    # 69 ms in a million-task prune, a wait for every write queued behind it; a second
    # copy beside the writes leaves it less (its longest then 40 ms)
    store, copies = await store_counting_copies(db_path, monkeypatch)
    try:
        await store.create_task(queued_task())
        await store._checkpoint()
        assert copies == ["beside", "beside", "writer"]
    finally:
        await store.close()


async def test_no_copy_beside_the_writes_starts_while_the_writers_copy_waits(
        db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The writer's copy of the WAL's rest waits for its turn on the writer; meanwhile
    # the next round of copies (the store's loop, a prune's own) started beside it, and
    # the writer's copy then found the copying lock taken: SQLite gives up a passive
    # copy at once, so nothing was copied and the WAL never started over. A diagnostic
    # million-task prune's WAL grew to the automatic checkpoint (20,029 frames), which
    # then ran inside commits: prune chunks of 134-303 ms, submits of 104-263 ms
    store, copies = await store_counting_copies(db_path, monkeypatch)
    try:
        await store.create_task(queued_task())
        held = await hold_writer(store)  # the writer's copy waits for its turn
        try:
            first = asyncio.ensure_future(store._checkpoint())
            await until(store.queued_writes, "the writer's copy never queued")
            second = asyncio.ensure_future(store._checkpoint())
            # a window for the second round to start beside the queued copy (a thing
            # that must not happen cannot be awaited): turns of the loop, then a pause
            # for a copy already handed to a thread to reach SQLite
            for _ in range(20):
                await asyncio.sleep(0)
            await asyncio.to_thread(time.sleep, 0.05)
        finally:
            held.set()
        await asyncio.gather(first, second)
        assert copies == ["beside", "beside", "writer", "beside", "beside", "writer"]
    finally:
        await store.close()


def wal_salt(path: Path) -> bytes:
    """The WAL header's salt: new each time the WAL starts over at its first frame."""
    with open(f"{path}-wal", "rb") as wal:
        return wal.read(24)[16:24]


async def test_the_wal_starts_over_though_writes_land_while_the_checkpoint_copies(
        db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A WAL starts over only when a transaction begins with every frame copied back.
    # With writes going on while the checkpoint copied (a prune beside submits), some
    # frames were always left, and the WAL grew to the automatic checkpoint, which copied
    # and synced inside whichever commit crossed it (70-118 ms commits of a million-task
    # prune). Past TAIL_CHECKPOINT_FRAMES the writer copies the rest between two of its
    # transactions, so its next one starts the WAL over.
    monkeypatch.setattr(store_module, "TAIL_CHECKPOINT_FRAMES", 10, raising=False)
    store = await Store.open(db_path)
    # another writer (a worker process), used on the checkpoint thread
    other = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE elsewhere (x)")
    copy = store_module.checkpoint

    def copy_while_a_write_lands(conn: sqlite3.Connection) -> int:
        if conn is not store._checkpoint_conn:  # the writer's own copy
            return copy(conn)
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO elsewhere VALUES (1)")
        frames = copy(conn)
        other.execute("COMMIT")  # after the copy: its frames are left in the WAL
        return frames

    monkeypatch.setattr(store_module, "checkpoint", copy_while_a_write_lands)
    try:
        for _ in range(30):
            await store.create_task(queued_task())
        before = wal_salt(db_path)
        await store._checkpoint()
        await store.create_task(queued_task())
        assert wal_salt(db_path) != before, "the WAL went on growing"
    finally:
        other.close()
        await store.close()


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_a_progress_total_that_is_no_number_pages_like_no_progress(tmp_path: Path,
                                                                        order: str) -> None:
    # text compares above every number in SQLite: {"total": "abc"} passed "> 0" and its
    # key divided to NULL, which the keyset cannot compare (a 422 or lost rows)
    odd = [{"current": 1, "total": "abc"}, {"current": 1, "total": [1]},
           {"current": 1, "total": "0"}, {"current": "x", "total": 4}, None]
    store = await Store.open(tmp_path / "tasks.db")
    try:
        now = time.time()
        await store.insert_task_rows(
            {"id": new_task_id(), "kind": "function", "mode": "job",
             "status": ("succeeded", "failed")[i % 2], "progress": odd[i % len(odd)],
             "created_at": now, "started_at": now, "finished_at": now + i}
            for i in range(20))
        ids = await walk(store, "progress", order, {}, limit=3)
    finally:
        await store.close()
    assert len(ids) == len(set(ids)) == 20


async def test_a_prune_leaves_the_files_of_a_database_moved_aside_alone(
        db_path: Path) -> None:
    # the documented way to start empty moves tasks.db aside and leaves tasks.db.artifacts:
    # a sweep of every folder no row names (this change's first form) removed the files
    # of the whole old history at the new database's first prune
    store = await Store.open(db_path)
    try:
        rows = old_finished_rows(3)
        await store.insert_task_rows(rows)
        await store.add_artifact(rows[0]["id"], "out.txt", b"kept in the old history")
    finally:
        await store.close()
    for name in ("", "-wal", "-shm"):
        old = db_path.with_name(db_path.name + name)
        if old.exists():
            old.rename(db_path.with_name(db_path.name + ".broken" + name))
    store = await Store.open(db_path)
    try:
        await store.prune(time.time(), time.time())
        assert (store.artifacts_dir / rows[0]["id"] / "out.txt").read_bytes() == \
            b"kept in the old history"
    finally:
        await store.close()


async def test_the_next_prune_removes_the_files_a_prune_cut_short_left_behind(
        db_path: Path) -> None:
    # a prune chunk commits its deletions, then removes the tasks' artifact folders; a
    # kill -9 in between (3 of 6 kills of a pruning server) left the folders for good:
    # no row named them any more. The chunk's note, written before its commit, does
    import subprocess

    from jupyter_tasks.store import removals
    from jupyter_tasks.store.store import tx_prune_tasks_noted

    store = await Store.open(db_path)
    try:
        rows = old_finished_rows(300)
        await store.insert_task_rows(rows)
        for i in (50, 60, 150):
            await store.add_artifact(rows[i]["id"], "out.txt", b"x")
        # the chunk's transaction alone: the state the kill left (rows gone, files kept)
        _, with_files, _, note = await store._txn(
            tx_prune_tasks_noted, time.time(), 1000, 0, store.artifacts_dir)
        assert sorted(with_files) == sorted([rows[50]["id"], rows[60]["id"]])
        assert note is not None and (store.artifacts_dir / rows[50]["id"]).is_dir()
        gone = subprocess.Popen(["true"])
        gone.wait()  # the killed process's pid, on its note
        note.rename(note.with_name(f"{removals.NOTE_PREFIX}{gone.pid}-cut"))
        kept_by_user = store.artifacts_dir / ("0123456789abcdef" * 2)  # named by no note
        kept_by_user.mkdir()
        await store.prune(0, 0)  # nothing more to prune: what the note names, alone
        assert not (store.artifacts_dir / rows[50]["id"]).exists()
        assert not (store.artifacts_dir / rows[60]["id"]).exists()
        assert not list(removals.notes_folder(store.artifacts_dir).glob(
            removals.NOTE_PREFIX + "*"))
        kept = await store.get_artifact(rows[150]["id"], "out.txt")
        assert kept is not None and store.artifact_path(kept).read_bytes() == b"x"
        assert kept_by_user.is_dir()
    finally:
        await store.close()
