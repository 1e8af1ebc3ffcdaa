"""The search box over a long history: an index finds a rare word's few tasks
without reading the others, answers exactly what a scan would, and forgets what goes."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from jupyter_tasks.migrations import MIGRATIONS
from jupyter_tasks.models import Task, new_task_id
from jupyter_tasks.store import LIST_SORTS, Store, task_sql
from jupyter_tasks.store import store as store_module
from jupyter_tasks.store.connection import register_functions, split_sql
from tests.engine.vm_steps import counting_steps
from tests.waiting import eventually

HISTORY = 20_000
WORDS = ("Train Model", "etl", "Zeta run", "Évaluer", 'say "hi" AND NEAR')


def row(i: int, start: float, status: str = "succeeded") -> dict[str, Any]:
    return dict(
        id=new_task_id(), kind="function", mode="job", status=status,
        name=f"job_{i % 11}", label=None if i % 7 == 0 else f"{WORDS[i % len(WORDS)]} {i}",
        queue="default", priority=i % 3, owner=("ana", "bo")[i % 2],
        created_at=start + i, started_at=start + i, finished_at=start + i + i % 5,
        updated_at=start + i)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("search") / "tasks.db"

    async def build() -> None:
        async with await Store.open(path) as store:
            start = time.time() - 2 * HISTORY
            await store.insert_task_rows(row(i, start) for i in range(HISTORY))
            await store.index_search()  # (with the store's own background rounds)
            assert await store._scalar("SELECT indexed_to FROM task_search_mark") == HISTORY

    asyncio.run(build())
    return path


def found_by_scan(tasks: list[Task], needle: str) -> set[str]:
    """What the search means, applied to every task: label or name contain it, whatever
    the case of any letter (not only ASCII's), or the id starts with it, or ends with it
    when it is six hex digits or more (the id's end is what the views show)."""
    needle = needle.lower()
    tail = re.fullmatch(r"[0-9a-f]{6,32}", needle) is not None
    return {t.id for t in tasks if needle in (t.label or "").lower()
            or needle in (t.name or "").lower() or t.id.startswith(needle)
            or (tail and t.id.endswith(needle))}


class StepCounter:
    """SQLite VM steps (in hundreds) of the reads a store makes, replayed on a connection."""

    def __init__(self, path: Path, monkeypatch: pytest.MonkeyPatch, store: Store) -> None:
        self.path = path
        self.queries: list[tuple[str, Any]] = []
        rows = store._rows

        async def recording(sql: str, args: Any = ()) -> Any:
            self.queries.append((sql, args))
            return await rows(sql, args)

        monkeypatch.setattr(store, "_rows", recording)

    def plans(self) -> list[str]:
        """The query plans' steps (EXPLAIN QUERY PLAN details) of the reads recorded."""
        conn = sqlite3.connect(self.path)
        register_functions(conn)
        try:
            return [row[3] for sql, args in self.queries
                    for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args)]
        finally:
            conn.close()

    def steps(self) -> int:
        conn = sqlite3.connect(self.path)
        register_functions(conn)  # as the store's connections have them
        try:
            with counting_steps(conn) as count:
                for sql, args in self.queries:
                    conn.execute(sql, args).fetchall()
        finally:
            conn.close()
        self.queries.clear()
        return count.steps


@pytest.mark.parametrize("sort", LIST_SORTS)
async def test_a_rare_word_reads_its_few_tasks_not_the_whole_history(
        history: Path, sort: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with await Store.open(history) as store:
        counter = StepCounter(history, monkeypatch, store)
        for order in ("asc", "desc"):
            page = await store.page_tasks(sort=sort, order=order, search="run 12347")
            assert [t.label for t in page.tasks] == ["Zeta run 12347"]
            # a walk of the history costs far more than a step per hundred tasks
            assert counter.steps() < HISTORY // 100, (sort, order)
            # absent, and as short as a first keystroke in the search box
            for needle in ("zzqx", "zq", "ü"):
                page = await store.page_tasks(sort=sort, order=order, search=needle,
                                              statuses=["succeeded"])
                assert page.tasks == []
                assert counter.steps() < HISTORY // 100, (sort, order, needle)
        assert [t.label for t in await store.list_tasks(search="ETL 19991")] == ["etl 19991"]
        assert (await store.stats(search="etl 19991"))["statuses"]["succeeded"] == 1
        assert counter.steps() < HISTORY // 100


NEEDLES = ["run 12345", "zzqx", "train", "ru", "job_3", "ETL 99", "Évaluer 3", "évaluer 3",
           "ÉVALUER 1", "évaluer", "É", "é",
           '"hi"', "and near", "'", "rk 1", "9999", "\"", ")", "zq", "ü", "9", "l\nj",
           "n 1999", " "]


async def test_searches_answer_what_a_scan_of_every_task_would(history: Path) -> None:
    async with await Store.open(history) as store:
        start = time.time() - HISTORY
        # tasks after the index's mark, found all the same
        await store.insert_task_rows(row(i, start, "queued") for i in range(HISTORY, HISTORY + 50))
        everything = await store.list_tasks(limit=HISTORY + 100)
        # an id's start, a whole id, and (the panel's and dashboard's short form) its end
        needles = [*NEEDLES, everything[5].id[:6], everything[-1].id,
                   everything[7].id[-10:], everything[HISTORY // 2].id[-6:]]
        for needle in needles:
            expected = found_by_scan(everything, needle)
            for sort, order in (("created", "desc"), ("label", "desc"), ("progress", "asc"),
                                ("status", "desc"), ("duration", "desc")):
                got: list[str] = []
                cursor = None
                while True:
                    page = await store.page_tasks(sort=sort, order=order, search=needle,
                                                  cursor=cursor, limit=400)
                    got += [t.id for t in page.tasks]
                    if (cursor := page.next_cursor) is None:
                        break
                assert len(got) == len(set(got)) and set(got) == expected, \
                    (needle, sort, order, len(got), len(expected))
            counts = (await store.stats(search=needle))["statuses"]
            assert sum(counts.values()) == len(expected), needle


def task_rowids(path: Path) -> set[int]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return {r[0] for r in conn.execute("SELECT rowid FROM tasks")}


def indexed_rowids(path: Path, needle: str) -> set[int]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute(
            "SELECT rowid FROM task_search WHERE task_search MATCH ?",
            (task_sql.search_match(needle),))}
    finally:
        conn.close()


async def test_deleted_pruned_and_relabelled_tasks_leave_the_index(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(task_sql, "SEARCH_QUEUE_BATCH", 7)  # forgetting takes many batches
    path = tmp_path / "tasks.db"
    start = time.time() - 1000
    async with await Store.open(path) as store:
        await store.insert_task_rows(row(i, start) for i in range(300))
        await store.index_search()
        old = [t for t in await store.list_tasks(limit=1000) if t.finished_at < start + 100]
        assert await store.prune(start + 100, 0) == len(old) > 90
        # fewer went than are left: the index forgets them one by one (no start over)
        assert await store._scalar("SELECT indexed_to FROM task_search_mark") == 300
        # the newest (highest rowids) go, and a new task takes a rowid again while the
        # old one's text is still queued to leave the index, behind the pruned ones'
        for task in await store.list_tasks(limit=3):
            await store.delete_task(task.id)
        await store.insert_task_rows([{**row(7, start), "label": "brand new",
                                      "finished_at": time.time()}])
        # searches are exact before the index has caught up, and after
        for catch_up in (False, True):
            if catch_up:
                await store.index_search()
            assert [t.label for t in await store.list_tasks(search="brand new")] == \
                ["brand new"]
            assert await store.list_tasks(search="zeta run 42") == []  # pruned
            assert len(await store.list_tasks(search="zeta run 202")) == 1
    conn = sqlite3.connect(path)
    try:
        conn.execute("UPDATE tasks SET label = 'renamed' WHERE label = 'Zeta run 202'")
        conn.commit()
        alive = {r[0] for r in conn.execute("SELECT rowid FROM tasks")}
    finally:
        conn.close()
    async with await Store.open(path) as store:
        for catch_up in (False, True):
            if catch_up:
                await store.index_search()
            assert [t.label for t in await store.list_tasks(search="renamed")] == ["renamed"]
            assert await store.list_tasks(search="zeta run 202") == []
    # the index holds only tasks still there, each under its present label
    for needle in ("run", "etl", "job_", "brand new", "renamed", "zeta run 202"):
        assert indexed_rowids(path, needle) <= alive, needle
    assert indexed_rowids(path, "zeta run 202") == set()
    assert len(indexed_rowids(path, "renamed")) == 1
    # its rowid was a deleted task's: both texts share pieces ("job", "ob_"), which the
    # old one's deletion would have taken from the new one had it gone in first
    assert indexed_rowids(path, "brand new") <= indexed_rowids(path, "job_7")
    assert len(indexed_rowids(path, "brand new")) == 1


async def test_a_prune_of_most_tasks_starts_the_index_over_instead_of_forgetting_each(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "PRUNE_CHUNK", 50)
    monkeypatch.setattr(store_module, "PRUNE_CHUNK_SECONDS", 1e-6)  # many chunks
    path = tmp_path / "tasks.db"
    start = time.time() - 1000
    queued_between_chunks: list[int] = []
    async with await Store.open(path) as store:
        rest = store_module.prune_rest

        async def indexing_rest(seconds: float) -> None:
            # the search index's rounds go on during a prune: they leave its deletions
            # queued (the prune's end decides what the index does with them)
            await store.index_search()
            queued_between_chunks.append(
                await store._scalar("SELECT count(*) FROM task_search_queue"))
            await rest(seconds)

        monkeypatch.setattr(store_module, "prune_rest", indexing_rest)
        await store.insert_task_rows(row(i, start) for i in range(400))
        await store.index_search()
        pruned = await store.prune(start + 300, 0)
        assert pruned > 250
        # the deletions piled up while the prune deleted (then the start over emptied
        # the queue, in steps the index's rounds went on between)
        peak = queued_between_chunks.index(max(queued_between_chunks))
        assert queued_between_chunks[:peak + 1] == sorted(queued_between_chunks[:peak + 1])
        assert queued_between_chunks[peak] >= pruned - 50  # all but the last chunk's
        # more went than are left: the index started over (the rounds between the
        # last steps filled it again from the first task left)
        assert await store._scalar("SELECT count(*) FROM task_search_queue") == 0
        assert not await store._scalar(task_sql.SEARCH_DROPPED_EXISTS)
        mark = await store._scalar("SELECT indexed_to FROM task_search_mark")
        alive = task_rowids(path)
        assert indexed_rowids(path, "job_") == {rowid for rowid in alive if rowid <= mark}
        left = await store.list_tasks(limit=1000)
        assert len(left) == 400 - pruned
        # searches answer as a scan would, before the index is filled again and after
        for catch_up in (False, True):
            if catch_up:
                await store.index_search()
                assert await store._scalar("SELECT indexed_to FROM task_search_mark") == \
                    await store._scalar("SELECT max(rowid) FROM tasks")
            for needle in ("run", "zeta run 42", "zeta run 392", "job_3", "etl 3"):
                assert {t.id for t in await store.list_tasks(search=needle, limit=1000)} == \
                    found_by_scan(left, needle), needle
    alive = task_rowids(path)
    assert indexed_rowids(path, "run") <= alive
    assert indexed_rowids(path, "job_") == alive  # every task left is indexed again


async def test_an_index_set_aside_by_a_process_that_stopped_is_dropped_later(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(task_sql, "SEARCH_DROP_STEP", 1)  # a step a page
    path = tmp_path / "tasks.db"
    async with await Store.open(path) as store:
        await store.insert_task_rows(row(i, time.time()) for i in range(300))
        await store.index_search()
    # a process that set the index aside and stopped before deleting its pages
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        assert task_sql.tx_restart_search(conn)
        assert not task_sql.tx_restart_search(conn)  # one at a time
        conn.execute("COMMIT")
        pages = conn.execute("SELECT count(*) FROM task_search_dropped_data").fetchone()[0]
        assert pages > 4  # FTS5 records at rowids 1 and 10, and the pages
    finally:
        conn.close()
    async with await Store.open(path) as store:
        await store.index_search()
        assert not await store._scalar(task_sql.SEARCH_DROPPED_EXISTS)
        tasks = await store.list_tasks(limit=1000)
        assert await store._scalar("SELECT indexed_to FROM task_search_mark") == 300
        for needle in ("run", "zeta run 42", "etl 3"):
            assert {t.id for t in await store.list_tasks(search=needle, limit=1000)} == \
                found_by_scan(tasks, needle), needle
    assert len(indexed_rowids(path, "job_")) == 300


async def test_a_store_indexes_new_tasks_in_the_background(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "SEARCH_INDEX_SECONDS", 0.01)
    path = tmp_path / "tasks.db"
    async with await Store.open(path) as store:
        await store.insert_task_rows(row(i, time.time()) for i in range(5000))
        deadline = time.monotonic() + 30
        while await store._scalar("SELECT indexed_to FROM task_search_mark") < 5000:
            assert time.monotonic() < deadline, "the search index was not filled"
            await asyncio.sleep(0.01)
        assert len(indexed_rowids(path, "zeta run 4002")) == 1


def indexed_to(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT indexed_to FROM task_search_mark").fetchone()[0]


class Stream:
    """Writes one task row after another, each its own commit, until stopped."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.commits = 0
        self._stop = asyncio.Event()
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while not self._stop.is_set():
            await self.store.insert_task_rows([row(self.commits, time.time())])
            self.commits += 1

    @property
    def done(self) -> bool:
        """Whether the writes ended (stopped, or failed)."""
        return self._task.done()

    async def stop(self) -> None:
        self._stop.set()
        await self._task


def give_way_for(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Index rounds every 10 ms, each giving way to writes for up to ``seconds``."""
    monkeypatch.setattr(store_module, "SEARCH_INDEX_SECONDS", 0.01)
    # a pause between two back-to-back writes this long would read as the end of the stream
    monkeypatch.setattr(store_module, "SEARCH_QUIET_SECONDS", 0.5)
    monkeypatch.setattr(store_module, "SEARCH_GIVE_WAY_SECONDS", seconds)


@pytest.mark.parametrize("writer", ["this store", "another process"])
async def test_the_search_index_gives_way_to_a_stream_of_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str) -> None:
    # a burst of submits waited for the index's batches (~15 ms each): the index waits
    # until the writes stop, and then catches up
    give_way_for(monkeypatch, 3600)
    path = tmp_path / "tasks.db"
    async with await Store.open(path) as store:
        await store.insert_task_rows(row(i, time.time()) for i in range(2000))
        # (another process: a store of its own, whose commits ours sees through SQLite)
        other = await Store.open(path) if writer == "another process" else None
        stream = Stream(other or store)

        async def written() -> bool:
            return stream.commits >= 300

        try:
            await eventually(written, what="300 writes")
            # a round of the index every 10 ms meanwhile, and each gave way
            assert indexed_to(path) == 0
        finally:
            await stream.stop()
            if other is not None:
                await other.close()
        total = 2000 + stream.commits

        async def caught_up() -> bool:
            return indexed_to(path) == total

        await eventually(caught_up, what="the index caught up")


async def test_the_search_index_gives_way_for_a_while_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    give_way_for(monkeypatch, 0.2)
    path = tmp_path / "tasks.db"
    async with await Store.open(path) as store:
        await store.insert_task_rows(row(i, time.time()) for i in range(2000))
        stream = Stream(store)

        async def caught_up() -> bool:
            return indexed_to(path) >= 2000

        try:
            # the writes never stop: the index goes on anyway
            await eventually(caught_up, what="the index caught up beside the writes")
            assert not stream.done
        finally:
            await stream.stop()


async def test_a_round_of_the_index_leaves_a_trickle_of_writes_to_the_next(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A round went on while any task was left to index: beside a steady writer (500 a
    # second during a million-task prune) it ran one tiny batch after another, each
    # owing merge steps: 16,264 batches and 48,651 steps in 467 s. A round now ends
    # once less than a batch is left; the next round, a second later, takes it whole.
    monkeypatch.setattr(store_module, "SEARCH_INDEX_SECONDS", 3600)  # rounds by hand
    path = tmp_path / "tasks.db"
    async with await Store.open(path) as store:
        await store.insert_task_rows(row(i, time.time()) for i in range(1200))
        stream = Stream(store)

        async def writing() -> bool:
            return stream.commits >= 5

        try:
            await eventually(writing, what="the writes")
            round_over = time.monotonic()  # give way to them no longer: index now
            taken = await asyncio.wait_for(store.index_search(give_way=((-1, -1), round_over)),
                                           timeout=60)  # before: not while the writes went on
            assert not stream.done
        finally:
            await stream.stop()
        # full batches while a batch's worth was left; the rest waits for the next round
        total = 1200 + stream.commits
        assert taken >= 1200 - task_sql.SEARCH_INDEX_BATCH
        assert 0 < total - indexed_to(path) < task_sql.SEARCH_INDEX_BATCH
        # the next rounds take the rest (in one batch but for a batch cut short by its
        # time on a loaded machine: a CI run's took 100 of 151 rows)
        for _ in range(total):
            if indexed_to(path) == total:
                break
            assert await store.index_search(give_way=((-1, -1), time.monotonic())) > 0
        assert indexed_to(path) == total


async def test_many_old_hits_are_read_not_walked_to(
        history: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # more hits than the index path takes at once, all among the oldest tasks: the walk
    # from the newest passes nearly the whole history to fill its page (1M tasks, 11k
    # such hits: 0.9 s), while reading the hits costs a few microseconds each
    monkeypatch.setattr(store_module, "SEARCH_HITS_MAX", 50)
    # (a newest page reads all the hits here, not those nearest it: the test below)
    monkeypatch.setattr(store_module, "NEAR_DISORDER_MAX", -1)
    async with await Store.open(history) as store:
        everything = await store.list_tasks(limit=2 * HISTORY)  # (and tests before)
        needle = "zeta run 3"  # 3, 3x, 3xx and 3xxx: among the oldest fifth
        found = found_by_scan(everything, needle)
        expected = [t.id for t in everything if t.id in found]  # newest first
        assert len(expected) > 150
        counter = StepCounter(history, monkeypatch, store)
        for order in ("desc", "asc"):
            got: list[str] = []
            cursor = None
            while True:
                page = await store.page_tasks(search=needle, order=order, cursor=cursor,
                                              limit=40)
                got += [t.id for t in page.tasks]
                if (cursor := page.next_cursor) is None:
                    break
            assert got == (expected if order == "desc" else expected[::-1]), order
        counter.queries.clear()
        first = await store.page_tasks(search=needle, limit=40)
        read = counter.steps()
        monkeypatch.setattr(store_module, "SEARCH_HITS_FAR_MAX", 0)  # the walk, as before
        assert (await store.page_tasks(search=needle, limit=40)) == first
        walked = counter.steps()
        assert read * 4 < walked, (read, walked)
        # a common word's hits, spread over the history, still fill a page in a short walk
        monkeypatch.undo()
        monkeypatch.setattr(store_module, "SEARCH_HITS_MAX", 50)
        monkeypatch.setattr(store_module, "NEAR_DISORDER_MAX", -1)
        counter = StepCounter(history, monkeypatch, store)
        page = await store.page_tasks(search="job_3", limit=40)
        assert len(page.tasks) == 40
        assert counter.steps() < HISTORY // 100


def disorder_by_scan(path: Path) -> tuple[set[int], set[int]]:
    """(the rowids in task_disorder, the indexed tasks inserted below an id before them)."""
    conn = sqlite3.connect(path)
    try:
        recorded = {r[0] for r in conn.execute("SELECT task_rowid FROM task_disorder")}
        out_of_order, highest = set(), ""
        for rowid, task_id in conn.execute(
                "SELECT rowid, id FROM tasks WHERE rowid <= "
                "(SELECT indexed_to FROM task_search_mark) ORDER BY rowid"):
            if task_id < highest:
                out_of_order.add(rowid)
            highest = max(highest, task_id)
        return recorded, out_of_order
    finally:
        conn.close()


async def test_a_newest_page_of_many_old_hits_reads_the_hits_nearest_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 111,000 old hits among a million tasks: the first page read every hit (~200 ms);
    # by rowid, from the newest down, it needs a few more hits than the page holds
    monkeypatch.setattr(store_module, "SEARCH_HITS_MAX", 50)  # past it: many hits
    path = tmp_path / "tasks.db"
    start = time.time() - 10_000
    count = 4000
    rows = [{**row(i, start), "label": f"needle {i}" if i < 1200 else f"hay {i}",
             "status": "failed" if i % 13 == 0 else "succeeded"} for i in range(count)]
    # some go in last, below ids already there (an import, two processes' submits
    # crossing): old needles, whose place is deep in the pages, and hay
    late = {i for i in range(count) if i % 97 == 5}
    async with await Store.open(path) as store:
        await store.insert_task_rows(r for i, r in enumerate(rows) if i not in late)
        await store.insert_task_rows(r for i, r in enumerate(rows) if i in late)
        await store.index_search()
        # and the newest needles are not indexed yet
        fresh = [{**row(count + i, start), "label": f"needle fresh {i}"} for i in range(3)]
        await store.insert_task_rows(fresh)
        recorded, out_of_order = disorder_by_scan(path)
        assert recorded == out_of_order and len(recorded) == len(late)
        everything = await store.list_tasks(limit=2 * count)
        for search, statuses in (("needle", None), ("needle 1", None), ("needle", ["failed"]),
                                 ("hay 39", None)):
            found = found_by_scan(everything, search)
            expected = [t.id for t in everything
                        if t.id in found and (statuses is None or t.status in statuses)]
            for limit in (1, 10, 40):
                got: list[str] = []
                cursor = None
                while True:
                    page = await store.page_tasks(search=search, statuses=statuses,
                                                  cursor=cursor, limit=limit)
                    got += [t.id for t in page.tasks]
                    if (cursor := page.next_cursor) is None:
                        break
                assert got == expected, (search, statuses, limit)
        # the first page reads a few hundred hits, not the 1,200
        counter = StepCounter(path, monkeypatch, store)
        first = await store.page_tasks(search="needle", limit=40)
        near = counter.steps()
        monkeypatch.setattr(store_module, "NEAR_DISORDER_MAX", -1)  # reading every hit
        assert (await store.page_tasks(search="needle", limit=40)) == first
        read = counter.steps()
        assert near * 3 < read, (near, read)
        # many tasks out of order (an import of history): every hit is read again, exactly
        monkeypatch.setattr(store_module, "NEAR_DISORDER_MAX", len(late) - 1)
        assert (await store.page_tasks(search="needle", limit=40)) == first
        assert counter.steps() >= read
        # a task that went in and was indexed after the store guessed the walk (from the
        # newest rowid it knew then) is on the first page
        monkeypatch.setattr(store_module, "NEAR_DISORDER_MAX", 1000)
        guess = store._hits_the_walk_costs

        async def then_a_new_task(*args: Any) -> Any:
            guessed = await guess(*args)
            await store.insert_task_rows([{**row(count + 9, time.time()),
                                           "label": "needle newest"}])
            await store.index_search()
            return guessed

        monkeypatch.setattr(store, "_hits_the_walk_costs", then_a_new_task)
        newest = await store.page_tasks(search="needle", limit=40)
        assert [t.label for t in newest.tasks[:2]] == ["needle newest", first.tasks[0].label]
        monkeypatch.setattr(store, "_hits_the_walk_costs", guess)
        # a task deleted leaves the record of its place
        gone = next(t for t in everything if t.label == f"needle {min(late)}")
        await store.delete_task(gone.id)
        recorded, out_of_order = disorder_by_scan(path)
        assert recorded == out_of_order and len(recorded) == len(late) - 1


async def test_a_near_page_is_whole_only_above_the_nearest_hit_in_id_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The bound of a near page is the id of the nearest task below its hits that went
    # in in id order; one out of order there (an old id) must not stand for it.
    monkeypatch.setattr(store_module, "SEARCH_HITS_MAX", 5)
    ids = sorted(new_task_id() for _ in range(120))
    start = time.time()

    def task(at: int, label: str, status: str = "succeeded") -> dict[str, Any]:
        return {**row(at, start), "id": ids[at], "label": label, "status": status}

    inserted = [task(3, "hay"),
                task(1, "needle", "failed"), task(2, "needle", "failed"),  # out of order
                task(10, "needle", "failed"),  # the newest failed needle: the page
                task(0, "hay"),  # out of order, just below the page's first hits
                *(task(i, "needle") for i in range(11, 19)),
                *(task(i, "hay") for i in range(19, 119))]
    async with await Store.open(tmp_path / "tasks.db") as store:
        for one in inserted:  # in this rowid order
            await store.insert_task_rows([one])
        await store.index_search()
        recorded, out_of_order = disorder_by_scan(tmp_path / "tasks.db")
        assert recorded == out_of_order and len(recorded) == 3
        page = await store.page_tasks(search="needle", statuses=["failed"], limit=1)
        assert [t.id for t in page.tasks] == [ids[10]]


async def test_an_older_database_learns_which_tasks_are_out_of_order(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    start = time.time()
    conn = sqlite3.connect(path)
    try:  # a database of schema version 9, with a task inserted out of order, indexed
        for _, script in MIGRATIONS[:9]:
            for statement in split_sql(script):
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 9")
        for i in range(3):
            task = row(i, start)
            conn.execute(f"INSERT INTO tasks ({', '.join(task)}) "
                         f"VALUES ({', '.join('?' * len(task))})", list(task.values()))
        conn.execute("INSERT INTO tasks (id, kind, mode, status, created_at, updated_at) "
                     "VALUES (?, 'function', 'job', 'queued', 0, 0)", ("0" * 32,))
        conn.execute("UPDATE task_search_mark SET indexed_to = (SELECT max(rowid) FROM tasks)")
        conn.commit()
    finally:
        conn.close()
    async with await Store.open(path) as store:
        await store.index_search()  # (migration 17 starts the index over: it learns again)
    recorded, out_of_order = disorder_by_scan(path)
    assert recorded == out_of_order and len(recorded) == 1


def ascii_lowered_grams(text: str) -> str:
    """The pieces a version before 17 indexed: of SQLite's lower(), ASCII letters only."""
    text = "".join(c.lower() if c.isascii() else c for c in text)
    pieces = dict.fromkeys(text[i:i + n] for n in (1, 2, 3) for i in range(len(text) - n + 1))
    return " ".join(piece.encode().hex() for piece in pieces)


async def test_an_older_index_starts_over_so_capitals_of_any_script_are_found(
        tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    start = time.time()
    labels = ["Über Report", "ОТЧЁТ за май", "plain etl"]
    conn = sqlite3.connect(path)
    try:  # a database of schema version 16 whose index holds the old pieces
        for _, script in MIGRATIONS[:16]:
            for statement in split_sql(script):
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 16")
        for i, label in enumerate(labels):
            task = {**row(i, start), "label": label}
            conn.execute(f"INSERT INTO tasks ({', '.join(task)}) "
                         f"VALUES ({', '.join('?' * len(task))})", list(task.values()))
        for rowid, label, name in conn.execute("SELECT rowid, label, name FROM tasks"):
            conn.execute("INSERT INTO task_search (rowid, grams) VALUES (?, ?)",
                         (rowid, ascii_lowered_grams(f"{label}\n{name}")))
        conn.execute("UPDATE task_search_mark SET indexed_to = (SELECT max(rowid) FROM tasks),"
                     " max_id = (SELECT max(id) FROM tasks)")
        conn.commit()
    finally:
        conn.close()
    async with await Store.open(path) as store:
        for catch_up in (False, True):
            if catch_up:  # read from the index, not directly
                assert await store.index_search() == len(labels)
                assert await store._scalar("SELECT indexed_to FROM task_search_mark") == 3
            for needle, label in (("über", "Über Report"), ("ÜBER R", "Über Report"),
                                  ("Über", "Über Report"), ("отчёт", "ОТЧЁТ за май"),
                                  ("ЗА МАЙ", "ОТЧЁТ за май"), ("ETL", "plain etl")):  # noqa: RUF001 (Cyrillic)
                assert [t.label for t in await store.list_tasks(search=needle)] == [label], \
                    (needle, catch_up)
                counts = (await store.stats(search=needle))["statuses"]
                assert counts["succeeded"] == sum(counts.values()) == 1, (needle, counts)
        # a relabelled task leaves the new index under its old text and enters it anew
        task = (await store.list_tasks(search="über"))[0]
        conn = sqlite3.connect(path)
        try:
            conn.execute("UPDATE tasks SET label = 'Ärger' WHERE id = ?", (task.id,))
            conn.commit()
        finally:
            conn.close()
        await store.index_search()
        assert await store.list_tasks(search="über") == []
        assert [t.label for t in await store.list_tasks(search="ärg")] == ["Ärger"]
    assert indexed_rowids(path, "über") == set()


async def test_counts_read_an_index_or_the_hits_not_every_row(
        history: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with await Store.open(history) as store:
        everything = await store.list_tasks(limit=2 * HISTORY)
        await store.insert_task_rows([{**row(0, time.time(), "queued"), "queue": "gpu"}])
        counter = StepCounter(history, monkeypatch, store)
        stats = await store.stats()
        statuses = {s: sum(t.status == s for t in everything) for s in ("succeeded", "queued")}
        assert stats["statuses"]["succeeded"] == statuses["succeeded"]
        assert stats["statuses"]["queued"] == statuses["queued"] + 1
        # a queue is there while it holds queued or running tasks
        assert stats["queues"] == {"gpu": {"queued": 1, "running": 0},
                                   **({"default": {"queued": statuses["queued"], "running": 0}}
                                      if statuses["queued"] else {})}
        # along the status index: a walk of a million entries takes a tenth of the time
        # of reading a million rows (VM steps tell them apart only by two)
        assert not [plan for plan in counter.plans() if plan == "SCAN tasks"], counter.plans()
        counter.queries.append(("SELECT queue, status, count(*) FROM tasks "
                                "GROUP BY queue, status", ()))  # as it counted before
        assert "SCAN tasks" in counter.plans()
        counter.queries.clear()
        # statuses alone (the dashboard filtered to failures) go along the index too
        now_all = await store.list_tasks(limit=2 * HISTORY)
        counter.queries.clear()
        for chosen in (["succeeded"], ["queued", "failed"]):
            counted = await store.stats(statuses=iter(chosen))  # (any iterable)
            assert counted["statuses"] == {
                s: sum(t.status == s for t in now_all) if s in chosen else 0
                for s in counted["statuses"]}, chosen
            queued: dict[str, dict[str, int]] = {}
            for t in now_all:
                if t.status in chosen and t.status in ("queued", "running"):
                    queued.setdefault(t.queue, {"queued": 0, "running": 0})[t.status] += 1
            assert counted["queues"] == queued, chosen
            # counted in the index alone; its rows (for the queue) read only for those
            # queued or running (it read every chosen task's row before: 150 ms for the
            # failures among a million)
            plans = counter.plans()
            assert "SEARCH tasks USING COVERING INDEX tasks_by_status (status=?)" in plans, plans
            assert "SCAN tasks" not in plans, plans
            counter.queries.clear()
        # a count of many old hits reads them, as a page does
        needle = "zeta run 2"
        expected = found_by_scan(everything, needle)
        monkeypatch.setattr(store_module, "SEARCH_HITS_MAX", 50)
        assert sum((await store.stats(search=needle))["statuses"].values()) == len(expected)
        assert counter.steps() < HISTORY // 100


async def test_text_that_is_not_unicode_is_refused_by_field(history: Path) -> None:
    # a lone surrogate (from a bad decode) cannot go to SQLite: it raised
    # UnicodeEncodeError from deep in the reader before
    from jupyter_tasks.exceptions import InvalidRequest

    async with await Store.open(history) as store:
        for call in (lambda: store.page_tasks(search="run \ud800"),
                     lambda: store.list_tasks(search="\udfff"),
                     lambda: store.stats(search="\ud800"),
                     lambda: store.page_tasks(name="job_\ud800")):
            with pytest.raises(InvalidRequest) as refused:
                await call()
            assert refused.value.errors[0]["field"] in ("search", "name"), refused.value.errors
