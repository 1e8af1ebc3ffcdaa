"""What a job costs SQLite: the store's own SQL for a job's three changes, beside SqliteHuey's.

The throughput cases of ``bench_engine_queue.py`` measure the engine whole (its
Python and its SQL). This one takes the SQL alone, so it shows what bounds a trivial
job's rate however lean the Python around it gets, and where that cost comes from.

Ours: N jobs replayed through the store's own write functions in the shape the
group commit gives a one-at-a-time submit loop with a busy slot: each transaction
inserts the new task (its ``task.created`` event), claims the oldest queued job
(``tx_claim``, ``task.started``) and ends the job claimed one transaction before
(``tx_finish``, ``task.succeeded``); and, a transaction of its own after every
``SETTLE_BATCH`` jobs and at the end, the settling of the ended ones into the
history indexes (``tx_settle``), as the store's upkeep does every second. The
settling is counted in the jobs' time and frames. The tasks are built by a real submit first,
so their rows are the engine's. Peer, same run: the same number of jobs through
SqliteHuey's storage as Huey's consumer and result store use it (enqueue; dequeue;
put the result; pop it), one commit each as Huey makes them, fsync off
(``synchronous=OFF``; ours is ``NORMAL``, which in WAL mode does not sync a commit
either).

Printed per job: SQLite time (statements and commits), WAL frames and bytes, and
for ours the b-trees the frames belong to (read back from the WAL, named through
``dbstat``): the tasks table, its id, its indexes, the events table.

Usage: python benchmarks/bench_engine_write_cost.py [N] [ROUNDS]
"""

from __future__ import annotations

import asyncio
import collections
import os
import sqlite3
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_server_common import noop_registry

from jupyter_tasks import TaskManager
from jupyter_tasks.models import EventType, Task, TaskStatus
from jupyter_tasks.store import Store
from jupyter_tasks.store.connection import setup_connection
from jupyter_tasks.store.task_sql import SETTLE_BATCH, _insert_task, tx_settle
from jupyter_tasks.store.worker_sql import finish_update, tx_claim, tx_finish

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
WORKER = "bench-worker"
WAL_HEADER = 32
FRAME_HEADER = 24


async def submitted_tasks(path: Path) -> list[Task]:
    """N trivial jobs as a real submit writes them (no slot runs them), read back."""
    async with TaskManager(path, registry=noop_registry(), queues={}, as_worker=False,
                           runs_background=False, make_default=False) as manager:
        for i in range(N):
            await manager.submit_spec({"name": "noop", "params": {"i": i}}, mode="job")
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [Task.from_row(row) for row in conn.execute("SELECT * FROM tasks ORDER BY rowid")]
    finally:
        conn.close()


async def empty_database(path: Path) -> None:
    """A database with the store's schema and nothing in it."""
    async with await Store.open(path):
        pass


def wal_frames(path: Path) -> tuple[list[int], int]:
    """The page number of every frame in the WAL, and how many frames end a commit."""
    data = Path(f"{path}-wal").read_bytes()
    page_size = struct.unpack(">I", data[8:12])[0]
    pages, commits, at = [], 0, WAL_HEADER
    while at + FRAME_HEADER <= len(data):
        page, size_after_commit = struct.unpack(">II", data[at:at + 8])
        pages.append(page)
        commits += size_after_commit != 0
        at += FRAME_HEADER + page_size
    return pages, commits


def ours(path: Path, tasks: list[Task]) -> dict[str, Any]:
    """The store's SQL for every job's three changes, one transaction per new job."""
    asyncio.run(empty_database(path))
    conn = sqlite3.connect(path, isolation_level=None)
    setup_connection(conn, 5.0)
    conn.execute("PRAGMA wal_autocheckpoint = 0")  # every frame stays in the WAL, to count
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    statements = commits = 0.0
    running: list[str] = []
    for n, task in enumerate(tasks, 1):
        began = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        _insert_task(conn, task)
        claimed = tx_claim(conn, task.queue, WORKER, 60.0, 1)
        if len(running) > 1:
            update = finish_update({"status": TaskStatus.SUCCEEDED.value, "result": "1",
                                    "finished_at": time.time(), "lease_expires_at": None})
            tx_finish(conn, running.pop(0), update, EventType.SUCCEEDED, WORKER, None, 60.0)
        running += [row["id"] for row in claimed]
        committing = time.perf_counter()
        conn.execute("COMMIT")
        statements += committing - began
        commits += time.perf_counter() - committing
        if n % SETTLE_BATCH == 0 or n == len(tasks):
            began = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            tx_settle(conn)
            committing = time.perf_counter()
            conn.execute("COMMIT")
            statements += committing - began
            commits += time.perf_counter() - committing
    names = dict(conn.execute("SELECT pageno, name FROM dbstat").fetchall())
    pages, commit_count = wal_frames(path)  # before the close, which checkpoints it away
    wal_bytes = os.path.getsize(f"{path}-wal")
    conn.close()
    by_tree = collections.Counter(names.get(page, "(free)") for page in pages)
    return {"seconds": (statements + commits) / len(tasks), "statements": statements / len(tasks),
            "commits": commits / len(tasks), "frames": len(pages) / len(tasks),
            "bytes": wal_bytes / len(tasks), "commit_count": commit_count,
            "by_tree": {name: n / len(tasks) for name, n in by_tree.items()}}


def huey(path: Path) -> dict[str, Any]:
    """The same jobs through SqliteHuey's storage: what its consumer and result store write."""
    from huey import SqliteHuey

    queue = SqliteHuey("bench", filename=str(path), fsync=False)

    @queue.task()
    def noop(i: int) -> int:
        return i

    messages = [queue.serialize_task(noop.s(i)) for i in range(N)]
    storage = queue.storage
    storage.conn.execute("PRAGMA wal_autocheckpoint = 0")
    storage.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    started = time.perf_counter()
    for i, message in enumerate(messages):
        storage.enqueue(message)                    # the client's submit
        taken = storage.dequeue()                   # a consumer takes it
        storage.put_data(f"r{i}", queue.serializer.serialize(i))  # and stores its result
        storage.pop_data(f"r{i}")                   # the client reads the result
        assert taken is not None
    seconds = time.perf_counter() - started
    pages, commit_count = wal_frames(path)
    wal_bytes = os.path.getsize(f"{path}-wal")
    storage.close()
    return {"seconds": seconds / N, "frames": len(pages) / N,
            "bytes": wal_bytes / N, "commit_count": commit_count}


def median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def spread(runs: list[dict[str, Any]], key: str, scale: float = 1.0) -> str:
    values = [run[key] * scale for run in runs]
    return f"{statistics.median(values):8.1f}  (min {min(values):.1f}, max {max(values):.1f})"


def main() -> None:
    print(f"what a trivial job writes, {N} jobs, {ROUNDS} interleaved rounds; "
          f"load {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tasks = asyncio.run(submitted_tasks(folder / "template.db"))
        mine: list[dict[str, Any]] = []
        theirs: list[dict[str, Any]] = []
        for r in range(ROUNDS):
            mine.append(ours(folder / f"ours-{r}.db", tasks))
            theirs.append(huey(folder / f"huey-{r}.db"))
            print(f"  round {r + 1} (load {os.getloadavg()[0]:.2f}): ours "
                  f"{mine[-1]['seconds'] * 1e6:.0f} us/job, huey {theirs[-1]['seconds'] * 1e6:.0f}"
                  " us/job")
    print("per job, medians (min, max):")
    print(f"  ours, SQLite time (us)            {spread(mine, 'seconds', 1e6)}")
    print(f"    statements (us)                 {spread(mine, 'statements', 1e6)}")
    print(f"    commits (us)                    {spread(mine, 'commits', 1e6)}")
    print(f"  huey fsync off, SQLite time (us)  {spread(theirs, 'seconds', 1e6)}")
    print(f"  ours, WAL frames                  {spread(mine, 'frames')}")
    print(f"  huey, WAL frames                  {spread(theirs, 'frames')}")
    print(f"  ours, WAL KiB                     {spread(mine, 'bytes', 1 / 1024)}")
    print(f"  huey, WAL KiB                     {spread(theirs, 'bytes', 1 / 1024)}")
    print(f"  commits: ours {mine[-1]['commit_count'] / N:.2f} per job (three changes in each, "
          f"and a settling every {SETTLE_BATCH}), "
          f"huey {theirs[-1]['commit_count'] / N:.0f} per job")
    print("ours, WAL frames per job by b-tree (last round):")
    for name, frames in sorted(mine[-1]["by_tree"].items(), key=lambda kv: -kv[1]):
        print(f"  {name:32s} {frames:5.2f}")
    print("ratios:")
    for label, key in (("SQLite time", "seconds"), ("WAL bytes  ", "bytes")):
        print(f"  ours / huey fsync off, {label}: "
              f"{median(mine, key) / median(theirs, key):.2f}")
    print(f"  load at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
