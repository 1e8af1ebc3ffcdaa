"""A million finished tasks: list/filter/search/sort over REST, the dashboard's page turn,
bytes per task, and writer stalls while pruning 900k of them.

Targets (issue 16): REST list p50 < 20 ms and p99 < 100 ms per query shape; the
dashboard's page turn (its ``DatabaseSource.list_tasks``, the same ``Store.page_tasks``
the server runs) p99 < 50 ms; pruning 900k tasks never stalls a concurrent writer for
more than 100 ms. Peers measured in the same run: ``GET /api/tasks/{id}`` (one primary
key read over the same server: the floor of a REST call), and the writer's latency with
no prune running.

The history (``--tasks``, default 1,000,000) is built once through
``Store.insert_task_rows`` into ``/tmp/jt-million/`` and reused; every round works on a
copy. Run: ``python benchmarks/bench_million.py [--tasks N] [--rounds 3] [--skip-prune]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT / "dashboard"))

from bench_server_common import Server, percentile  # noqa: E402

from jupyter_tasks.migrations import LATEST_VERSION  # noqa: E402
from jupyter_tasks.models import new_task_id  # noqa: E402
from jupyter_tasks.store import Store  # noqa: E402
from jupyter_tasks.store import store as store_module  # noqa: E402
from jupyter_tasks.store.task_sql import SEARCH_BACKLOG  # noqa: E402

CACHE = Path("/tmp/jt-million")
NAMES = [f"job_{i}" for i in range(40)] + ["train_model", "etl_daily", "report"]
KINDS = ["function"] * 14 + ["notebook"] * 4 + ["subprocess", "code"]
STATUSES = ["succeeded"] * 16 + ["failed"] * 3 + ["cancelled"]
OWNERS = ["ana", "bo", "chen"]
SPAN = 20 * 86400.0  # the history covers the last 20 days
REPS = 12  # calls per query shape and round
# the writer beside the prune
WRITES_PER_SECOND = 500
# after the prune: a search every this many seconds
SEARCH_PAUSE = 1.0
# how long the benchmark waits for the search index to catch up after the prune
CATCH_UP_DEADLINE = 600.0
# caught up: no deleted task left to forget, and no more tasks than this not indexed yet
CATCH_UP_BACKLOG = 10_000

# a thousandth of the history, given to its own owner in each working copy
RARE_OWNER = "dee"
RARE_EVERY = 997

SHAPES: list[tuple[str, dict[str, Any]]] = [
    ("newest", {}),
    ("status=failed", {"status": "failed"}),
    ("status=running (none)", {"status": "running"}),
    ("name=job_7", {"name": "job_7"}),
    ("kind=notebook", {"kind": "notebook"}),
    ("kind=code", {"kind": "code"}),
    ("owner=bo", {"owner": "bo"}),
    ("status+name", {"status": "failed", "name": "job_3"}),
    # the cards a notebook restores when it opens ask this of its kind; a user's own
    # active tasks; lookups by key, which name a task or none
    ("kind=notebook&status=queued,running (none)",
     {"kind": "notebook", "status": "queued,running"}),
    ("owner=bo&status=running (none)", {"owner": "bo", "status": "running"}),
    ("idempotency_key (none)", {"idempotency_key": "retry-1"}),
    ("owner=bo&task_key (none)", {"owner": "bo", "task_key": "report/1"}),
    ("owner=bo&parent_id (none)", {"owner": "bo", "parent_id": "0" * 32}),
    ("search common 'job_1'", {"search": "job_1"}),
    ("search rare 'run 123457'", {"search": "run 123457"}),
    # 1,111, 11,111 and 111,111 matches, all in one stretch of old history: through the
    # index; past its limit (5,000) in created order still through it while the sort's
    # walk, which passes every newer task first, would cost more: a newest-first page
    # from the hits nearest its start, else every hit (up to 150,000); past that, the walk
    ("search 1k old 'run 123'", {"search": "run 123"}),
    ("search 11k old 'run 12'", {"search": "run 12"}),
    ("search 11k old 'run 12' by label", {"search": "run 12", "sort": "label"}),
    ("search 111k old 'run 1'", {"search": "run 1"}),
    ("search none 'zzqx'", {"search": "zzqx"}),
    ("search 2 chars 'zq'", {"search": "zq"}),
    ("search+status", {"search": "train", "status": "cancelled"}),
    *[(f"sort={s}", {"sort": s}) for s in ("label", "owner", "origin", "status", "progress",
                                            "duration", "started", "finished", "priority")],
    ("sort=finished desc", {"sort": "finished", "order": "desc"}),
    *[(f"sort={s} desc", {"sort": s, "order": "desc"})
      for s in ("label", "owner", "origin", "status", "priority", "started")],
    ("sort=progress desc", {"sort": "progress", "order": "desc"}),
    ("sort=duration desc", {"sort": "duration", "order": "desc"}),
    ("sort=label +status", {"sort": "label", "status": "failed"}),
    # what a user who sees only their own tasks gets when sorting by a column: a third
    # of the history ("bo"), and a thousandth ("dee", see RARE_OWNER), in every order
    *[(f"owner=bo sort={s}{' desc' if desc else ''}",
       {"owner": "bo", "sort": s, **({"order": "desc"} if desc else {})})
      for s in ("label", "owner", "origin", "status", "progress", "duration", "started",
                "finished", "priority") for desc in (False, True)],
    *[(f"owner={RARE_OWNER} sort={s}{' desc' if desc else ''}",
       {"owner": RARE_OWNER, "sort": s, **({"order": "desc"} if desc else {})})
      for s in ("label", "finished") for desc in (False, True)],
]


def history_row(i: int, count: int, start: float) -> dict[str, Any]:
    name = NAMES[i % len(NAMES)]
    status = STATUSES[(i * 7) % len(STATUSES)]
    created = start + i * SPAN / count
    return dict(
        id=new_task_id(), kind=KINDS[(i * 3) % len(KINDS)], mode="job", status=status,
        name=name, label=f"{name} run {i}", params={"i": i}, queue="default",
        priority=(i % 5) - 2, owner=OWNERS[i % len(OWNERS)], attempts=1, max_retries=0,
        origin={"type": "kernel", "notebook": f"nb/{i % 97}.ipynb"},
        progress={"current": i % 100, "total": 100}, result={"value": i},
        error={"type": "ValueError", "message": f"bad {i}", "traceback": "tb"}
        if status == "failed" else None,
        created_at=created, started_at=created + 0.1, finished_at=created + 0.1 + (i % 50) / 10,
        updated_at=created + 5,
    )


async def build(path: Path, count: int) -> float:
    t0 = time.perf_counter()
    start = time.time() - SPAN - 60
    store = await Store.open(path)
    try:
        for first in range(0, count, 20_000):
            await store.insert_task_rows(
                history_row(i, count, start) for i in range(first, min(count, first + 20_000)))
    finally:
        await store.close()
    return time.perf_counter() - t0


def checkpoint(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def history(count: int) -> Path:
    """The cached history at the current schema (built, or migrated from an older cache)."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"history-{count}-v{LATEST_VERSION}.db"
    if path.exists():
        return path
    older = sorted(CACHE.glob(f"history-{count}-v*.db"))
    if older:
        shutil.copy(older[-1], path)
        t0 = time.perf_counter()
        asyncio.run(close_after_open(path))  # opening migrates
        print(f"migrated {older[-1].name} -> {path.name} in {time.perf_counter() - t0:.1f} s")
    else:
        print(f"building {count:,} tasks ...", flush=True)
        print(f"built in {asyncio.run(build(path, count)):.1f} s")
    asyncio.run(close_after_open(path))
    checkpoint(path)
    return path


async def close_after_open(path: Path) -> None:
    store = await Store.open(path)
    try:
        # a server indexes for search in the background; the cache is kept caught up
        t0 = time.perf_counter()
        added = await store.index_search()
        if added:
            print(f"indexed {added:,} tasks for search in {time.perf_counter() - t0:.1f} s")
    finally:
        await store.close()


def working_copy(path: Path) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="jt-million-"))
    copy = folder / "tasks.db"
    shutil.copy(path, copy)
    conn = sqlite3.connect(copy)
    conn.execute("UPDATE tasks SET owner = ? WHERE rowid % ? = 0", (RARE_OWNER, RARE_EVERY))
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    # the copy's 1.5 GB on disk before anything is timed: else the kernel writes it back
    # while a round runs, and a write that lands in that writeback waits for it (the
    # writer beside no prune once waited 571 ms, a prune's first WAL copy 606 ms)
    os.sync()
    return copy


def sizes(path: Path, count: int) -> dict[str, float]:
    checkpoint(path)
    conn = sqlite3.connect(path)
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0] * page
    # the bytes of the rows themselves: every column's length, as a floor
    raw = conn.execute("SELECT sum(length(id) + length(kind) + length(status) + "
                       "ifnull(length(name), 0) + ifnull(length(label), 0) + "
                       "ifnull(length(params), 0) + ifnull(length(result), 0) + "
                       "ifnull(length(error), 0) + ifnull(length(progress), 0) + "
                       "ifnull(length(origin), 0) + ifnull(length(owner), 0) + 8 * 6) "
                       "FROM tasks").fetchone()[0]
    conn.close()
    total = path.stat().st_size
    return {"file_bytes_per_task": (total - free) / count, "raw_column_bytes_per_task": raw / count}


# ----------------------------------------------------------------------- REST


def rest_round(path: Path) -> dict[str, dict[str, list[float]]]:
    """Per shape: first-page and page-turn latencies (seconds) over a real server."""
    folder = path.parent
    server = Server(folder, db_path=path, root_dir=folder, log_path=folder / "server.log",
                    args=["--log-level=WARN", "--JupyterTasksApp.history_days=0",
                          "--JupyterTasksApp.workers=default=1"])
    server.start(timeout=180)
    try:
        conn = server.connection()
        status, newest = server.call(conn, "GET", "/api/tasks?limit=1")
        assert status == 200, newest
        some_id = newest["tasks"][0]["id"]
        found: dict[str, dict[str, list[float]]] = {"peer GET /api/tasks/{id}": {"first": []}}
        for _ in range(REPS * 3):
            t0 = time.perf_counter()
            status, _ = server.call(conn, "GET", f"/api/tasks/{some_id}")
            found["peer GET /api/tasks/{id}"]["first"].append(time.perf_counter() - t0)
        for label, query in SHAPES:
            for limit in (50, 100):
                first: list[float] = []
                turns: list[float] = []
                for _ in range(max(1, REPS // 2)):
                    cursor = None
                    for page in range(3):  # the first page and two page turns
                        params = {**query, "limit": limit, **({"cursor": cursor} if cursor else {})}
                        url = "/api/tasks?" + urllib.parse.urlencode(params)
                        t0 = time.perf_counter()
                        status, body = server.call(conn, "GET", url)
                        took = time.perf_counter() - t0
                        assert status == 200, (url, body)
                        (first if page == 0 else turns).append(took)
                        cursor = body["next_cursor"]
                        if cursor is None:
                            break
                found[f"{label} limit={limit}"] = {"first": first, "turn": turns}
        return found
    finally:
        server.stop()


# ------------------------------------------------------------------ dashboard


async def dashboard_round(path: Path) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Page turns through the dashboard's own data source (database mode), and its
    counts (the header's "N matching", the queue overview) of the same views."""
    from jupyter_tasks_dashboard.sources import DatabaseSource, Filters

    source = DatabaseSource(path)
    await source.start()
    found: dict[str, list[float]] = {}
    counted: dict[str, list[float]] = {}
    try:
        views = {
            "all newest": Filters(),
            "failed": Filters(statuses=("failed",)),
            "name": Filters(name="job_7"),
            "search": Filters(search="train"),
            "search rare": Filters(search="run 4242"),
            **{f"sort {s}": Filters(sort=s, descending=False)
               for s in ("label", "owner", "origin", "status", "progress", "duration",
                         "started", "finished")},
            # a user's own tasks, by a column (the owner filter)
            "owner bo, sort label": Filters(owner="bo", sort="label", descending=False),
            "owner bo, sort finished desc": Filters(owner="bo", sort="finished"),
        }
        for label, filters in views.items():
            turns = []
            cursor = None
            page = await source.list_tasks(filters, cursor, 100)
            for _ in range(20):
                cursor = page.next_cursor
                if cursor is None:
                    break
                t0 = time.perf_counter()
                page = await source.list_tasks(filters, cursor, 100)
                turns.append(time.perf_counter() - t0)
            found[label] = turns
        # "owner 'bo'": the count a user who sees only their own tasks gets from
        # GET /api/tasks/stats (the panel's status bar), a third of the history
        for label, filters in {"all": Filters(), "failed": Filters(statuses=("failed",)),
                               "owner 'bo'": Filters(owner="bo"),
                               "search common 'train'": Filters(search="train"),
                               "search 11k old 'run 12'": Filters(search="run 12"),
                               "search rare": Filters(search="run 4242")}.items():
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                await source.count(filters)
                times.append(time.perf_counter() - t0)
            counted[label] = times
    finally:
        await source.close()
    return found, counted


# ---------------------------------------------------------------------- prune


async def prune_round(path: Path, count: int) -> dict[str, Any]:
    """Prune 90 % of the history while a writer submits; the writer's longest wait."""
    copies: list[float] = []
    copy = store_module.checkpoint
    # WAL copies begun and ended (on their thread; the writer's own, tail_checkpoint,
    # counts too): an upkeep transaction that saw a copy begin or run shared the disk
    # and the cores with it
    copying = [0, 0]

    def timed_copy(conn: sqlite3.Connection) -> int:
        # each WAL copy ends with an fdatasync of the database: the disk's floor under
        # any write that has to wait for one
        copying[0] += 1
        t0 = time.perf_counter()
        try:
            return copy(conn)
        finally:
            copies.append(time.perf_counter() - t0)
            copying[1] += 1

    store_module.checkpoint = timed_copy
    # each upkeep transaction on the writer (a prune chunk, a search-index batch, a
    # settling, the writer's own WAL copy): a write waits for at most one of them
    upkeep: dict[str, list[float]] = {}
    beside_copy: dict[str, list[float]] = {}
    no_copy: dict[str, list[float]] = {}
    run_upkeep = Store._run_upkeep

    def timed_upkeep(self: Store, conn: sqlite3.Connection, op: Any) -> Any:
        begun, ended = copying
        t0 = time.perf_counter()
        try:
            return run_upkeep(self, conn, op)
        finally:
            took = time.perf_counter() - t0
            upkeep.setdefault(op[0].__name__, []).append(took)
            if op[0] is not store_module.tail_checkpoint:  # a copy itself
                shared = begun != ended or copying[0] != begun
                (beside_copy if shared else no_copy).setdefault(
                    op[0].__name__, []).append(took)

    Store._run_upkeep = timed_upkeep  # type: ignore[method-assign]
    store = await Store.open(path)
    try:
        conn = sqlite3.connect(path)
        cutoff = conn.execute(
            "SELECT finished_at FROM tasks ORDER BY finished_at LIMIT 1 OFFSET ?",
            (int(count * 0.9),)).fetchone()[0]
        conn.close()

        async def writer(stop: asyncio.Event, writes: list[float]) -> None:
            from jupyter_tasks.models import Task

            # at a steady pace: unpaced it wrote ~3,000 tasks a second, and the history
            # grew by two million during the prune (twice what it pruned)
            due = time.perf_counter()
            while not stop.is_set():
                task = Task(id=new_task_id(), kind="function", mode="job", status="queued",
                            name="bench_noop", created_at=time.time(), updated_at=time.time())
                t0 = time.perf_counter()
                await store.create_task(task)
                writes.append(time.perf_counter() - t0)
                due += 1 / WRITES_PER_SECOND
                await asyncio.sleep(max(0.0, due - time.perf_counter()))

        async def loop_watch(stop: asyncio.Event, stalls: list[float]) -> None:
            # how late the loop comes back to a 1 ms sleep: while it is late, every
            # request, websocket and job of the process waits
            while not stop.is_set():
                t0 = time.perf_counter()
                await asyncio.sleep(0.001)
                stalls.append(max(0.0, time.perf_counter() - t0 - 0.001))

        async def searcher(stop: asyncio.Event, searches: list[float]) -> None:
            # a search box typed into now and then: a needle no task holds reads every
            # candidate the index gives and every task it has not indexed yet
            while not stop.is_set():
                t0 = time.perf_counter()
                await store.page_tasks(search="zzqx", limit=50)
                searches.append(time.perf_counter() - t0)
                await asyncio.sleep(SEARCH_PAUSE)

        async def beside(work: Awaitable[Any], searches: list[float] | None = None
                         ) -> tuple[Any, list[float], list[float], list[float]]:
            """``work``'s result; the writer's waits, the loop's lateness, the WAL copies
            (and with ``searches``, a search's time now and then)."""
            writes: list[float] = []
            stalls: list[float] = []
            copies.clear()
            stop = asyncio.Event()
            watchers = asyncio.gather(writer(stop, writes), loop_watch(stop, stalls),
                                      *([searcher(stop, searches)] if searches is not None
                                        else []))
            try:
                result = await work
            finally:
                stop.set()
                await watchers
            return result, writes, stalls, list(copies)

        # the peer: the same writer with no prune beside it, for a fixed window (not a
        # synchronisation)
        _, idle, idle_stalls, _ = await beside(asyncio.sleep(2.0))
        upkeep.clear()
        beside_copy.clear()
        no_copy.clear()
        t0 = time.perf_counter()
        pruned, writes, stalls, prune_copies = await beside(store.prune(cutoff, cutoff))
        seconds = time.perf_counter() - t0
        left = await store.count_tasks()
        forgets_left = await store._scalar("SELECT count(*) FROM task_search_queue")

        async def search_caught_up() -> tuple[int, int]:
            # what the prune leaves the search index to do (the store's own upkeep
            # does it), waited for up to a deadline; (changes queued, tasks not indexed)
            # then. The writer's own tasks go in a round later: some stay behind.
            still_to_do = ("SELECT (SELECT count(*) FROM task_search_queue), "
                           f"({SEARCH_BACKLOG})")
            deadline = time.monotonic() + CATCH_UP_DEADLINE
            while True:
                queued, backlog = (await store._rows(still_to_do))[0]
                if (not queued and backlog <= CATCH_UP_BACKLOG) or time.monotonic() > deadline:
                    return queued, backlog
                await asyncio.sleep(0.5)

        catch_searches: list[float] = []
        t0 = time.perf_counter()
        catch_left, catch_writes, catch_stalls, _ = await beside(search_caught_up(),
                                                                 catch_searches)
        catch_seconds = time.perf_counter() - t0
    finally:
        await store.close()
        store_module.checkpoint = copy
        Store._run_upkeep = run_upkeep  # type: ignore[method-assign]
    return {"pruned": pruned, "seconds": seconds, "left": left, "writes": writes, "idle": idle,
            "stalls": stalls, "idle_stalls": idle_stalls, "copies": prune_copies,
            "upkeep": upkeep, "beside_copy": beside_copy,
            "no_copy": no_copy, "forgets_left": forgets_left, "catch_left": catch_left,
            "catch_seconds": catch_seconds, "catch_writes": catch_writes,
            "catch_stalls": catch_stalls, "catch_searches": catch_searches}


def ms(values: list[float], q: float) -> float:
    return percentile(values, q) * 1000 if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-prune", action="store_true")
    parser.add_argument("--skip-rest", action="store_true")
    parser.add_argument("--reps", type=int, default=12, help="calls per REST query shape")
    opts = parser.parse_args()
    global REPS
    REPS = opts.reps
    base = history(opts.tasks)
    size = sizes(base, opts.tasks)
    print(f"history: {opts.tasks:,} tasks, schema v{LATEST_VERSION}, "
          f"{base.stat().st_size / 1e6:.0f} MB: {size['file_bytes_per_task']:.0f} bytes per task "
          f"(the rows' own column bytes: {size['raw_column_bytes_per_task']:.0f})")
    rest: dict[str, list[tuple[float, float, float]]] = {}
    dash: dict[str, list[tuple[float, float]]] = {}
    counts: dict[str, list[float]] = {}
    prunes: list[dict[str, Any]] = []
    loads = []
    for r in range(opts.rounds):
        loads.append(os.getloadavg()[0])
        copy = working_copy(base)
        try:
            if not opts.skip_rest:
                for label, got in rest_round(copy).items():
                    both = got["first"] + got.get("turn", [])
                    rest.setdefault(label, []).append(
                        (ms(both, 50), ms(both, 99), ms(got.get("turn", []), 99)))
            turned, counted = asyncio.run(dashboard_round(copy))
            for label, turns in turned.items():
                dash.setdefault(label, []).append((ms(turns, 50), ms(turns, 99)))
            for label, times in counted.items():
                counts.setdefault(label, []).append(ms(times, 50))
            if not opts.skip_prune:
                prunes.append(asyncio.run(prune_round(copy, opts.tasks)))
        finally:
            shutil.rmtree(copy.parent, ignore_errors=True)
        print(f"round {r + 1}/{opts.rounds} done (load {loads[-1]:.1f})", flush=True)

    def med(values: list[float]) -> str:
        return (f"{statistics.median(values):7.1f} [{min(values):.1f}-{max(values):.1f}]")

    print(f"\nmachine: {os.cpu_count()} cores, 1-min load average per round "
          f"{', '.join(f'{x:.1f}' for x in loads)}; medians of {opts.rounds} rounds "
          "[min-max] in ms")
    if rest:
        print("\nREST GET /api/tasks (target p50 < 20, p99 < 100); first page + 2 page turns:")
        print(f"{'shape':38} {'p50':>22} {'p99':>22} {'turn p99':>22}")
        for label, rounds in rest.items():
            p50s, p99s, turn99 = zip(*rounds, strict=True)
            turn = med([t for t in turn99 if t == t]) if any(t == t for t in turn99) else "-"
            flag = "" if statistics.median(p50s) < 20 and statistics.median(p99s) < 100 else " MISS"
            print(f"{label:38} {med(list(p50s)):>22} {med(list(p99s)):>22} {turn:>22}{flag}")
    print("\ndashboard page turn, DatabaseSource.list_tasks, 100 rows (target p99 < 50):")
    for label, rounds in dash.items():
        p50s, p99s = zip(*rounds, strict=True)
        flag = "" if statistics.median(p99s) < 50 else " MISS"
        print(f"{label:38} p50 {med(list(p50s)):>22} p99 {med(list(p99s)):>22}{flag}")
    print("\ndashboard counts, DatabaseSource.count (no target; each refresh pays it):")
    for label, p50s in counts.items():
        print(f"{label:38} p50 {med(p50s):>22}")
    if prunes:
        print("\nprune 90 % of the history beside a writer (target: longest write < 100 ms):")
        for p in prunes:
            print(f"  pruned {p['pruned']:,} in {p['seconds']:.1f} s ({p['left']:,} left); "
                  f"writer: {len(p['writes'])} writes, p50 {ms(p['writes'], 50):.1f} ms, "
                  f"p99 {ms(p['writes'], 99):.1f} ms, longest {max(p['writes']) * 1000:.1f} ms"
                  f" | peer, no prune: p50 {ms(p['idle'], 50):.1f} ms, longest "
                  f"{max(p['idle']) * 1000:.1f} ms")
            print(f"    event loop late by: p99 {ms(p['stalls'], 99):.1f} ms, longest "
                  f"{max(p['stalls']) * 1000:.1f} ms | peer, no prune: longest "
                  f"{max(p['idle_stalls']) * 1000:.1f} ms")
            print(f"    the limit, WAL copies during the prune (each ends with an fdatasync): "
                  f"{len(p['copies'])}, p50 {ms(p['copies'], 50):.1f} ms, p99 "
                  f"{ms(p['copies'], 99):.1f} ms, "
                  f"longest {max(p['copies'], default=0) * 1000:.1f} ms")
            queued, backlog = p["catch_left"]
            caught = ("caught up" if not queued and backlog <= CATCH_UP_BACKLOG else
                      f"NOT caught up, {queued:,} changes and {backlog:,} tasks left")
            print(f"    then the search index's catch-up ({p['forgets_left']:,} deleted tasks "
                  f"still to forget): {p['catch_seconds']:.1f} s, {caught}; writer p99 "
                  f"{ms(p['catch_writes'], 99):.1f} ms, longest "
                  f"{max(p['catch_writes']) * 1000:.1f} ms; loop late by at most "
                  f"{max(p['catch_stalls']) * 1000:.1f} ms; a search for a needle no "
                  f"task holds every {SEARCH_PAUSE} s: p50 "
                  f"{ms(p['catch_searches'], 50):.1f} ms, longest "
                  f"{max(p['catch_searches'], default=0) * 1000:.1f} ms")
            for label, key in (("    upkeep transactions on the writer (prune and "
                                "catch-up), which a write may wait for one of", "upkeep"),
                               ("      beside a WAL copy", "beside_copy"),
                               ("      with none", "no_copy")):
                print(f"{label}: " + "; ".join(
                    f"{name} {len(took)}, p99 {ms(took, 99):.1f} ms, longest "
                    f"{max(took) * 1000:.1f} ms" for name, took in sorted(p[key].items())))
        print("  median longest write stall: "
              f"{statistics.median(max(p['writes']) for p in prunes) * 1000:.1f} ms; "
              "of the event loop: "
              f"{statistics.median(max(p['stalls']) for p in prunes) * 1000:.1f} ms")
    print(json.dumps({"bytes_per_task": round(size["file_bytes_per_task"])}))


if __name__ == "__main__":
    main()
