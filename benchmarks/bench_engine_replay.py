"""One task's events (``WS /api/tasks/events?task_id=``) beside a large events table.

Builds a database with EVENTS events of other tasks and, spread through them, 100
tasks of each kind: jobs (``task.created``, ``task.started``, ``task.succeeded``) and
tasks run at once (a background cell, ``run_blocking``: ``task.started``,
``task.succeeded``). Reads each task's events through ``Store.events_after`` (the
websocket's replay) and prints p50/p99 per kind and by age (the oldest third, the
newest third), beside the floor measured in the same run: a read of the task's row
by id (``Store.get_task``). Run the same script on an older checkout to compare.

Usage: python benchmarks/bench_engine_replay.py [EVENTS] [ROUNDS]
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_server_common import percentile

from jupyter_tasks.models import new_task_id
from jupyter_tasks.store import Store

EVENTS = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
PER_KIND = 100
KINDS = {"job": ("task.created", "task.started", "task.succeeded"),
         "run at once": ("task.started", "task.succeeded")}


def snapshot(task_id: str, status: str) -> str:
    return json.dumps({"id": task_id, "kind": "function", "mode": "job", "status": status,
                       "label": "a fairly typical label", "params": {"i": 1},
                       "origin": {"notebook": "analysis/run.ipynb"}})


async def build(path: Path) -> dict[str, list[tuple[int, str]]]:
    """The database; per kind, (position among the events, task id) of its tasks."""
    async with await Store.open(path):
        pass  # the schema, migrated to this checkout's version
    placed: dict[str, list[tuple[int, str]]] = {kind: [] for kind in KINDS}
    # the kinds alternate, evenly spaced through the events
    kinds = list(KINDS)
    slots = [(EVENTS * (i + 1) // (len(kinds) * PER_KIND + 1), kinds[i % len(kinds)])
             for i in range(len(kinds) * PER_KIND)]
    conn = sqlite3.connect(path)
    now = time.time()
    filler = snapshot("0" * 32, "running")
    written = 0
    with conn:
        for at, kind in slots:
            conn.executemany(
                "INSERT INTO events (task_id, type, ts, task) VALUES (?, 'task.progress', ?, ?)",
                ((new_task_id(), now, filler) for _ in range(at - written)))
            written = at
            task_id = new_task_id()
            conn.execute("INSERT INTO tasks (id, kind, mode, status, label, queue, priority, "
                         "attempts, max_retries, created_at, updated_at) VALUES "
                         "(?, 'function', 'job', 'succeeded', 'x', 'default', 0, 1, 0, ?, ?)",
                         (task_id, now, now))
            conn.executemany("INSERT INTO events (task_id, type, ts, task) VALUES (?, ?, ?, ?)",
                             [(task_id, etype, now, snapshot(task_id, "succeeded"))
                              for etype in KINDS[kind]])
            placed[kind].append((at, task_id))
        conn.executemany(
            "INSERT INTO events (task_id, type, ts, task) VALUES (?, 'task.progress', ?, ?)",
            ((new_task_id(), now, filler) for _ in range(EVENTS - written)))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return placed


async def measure(path: Path, placed: dict[str, list[tuple[int, str]]]) -> dict[str, list[float]]:
    """Milliseconds per read, by case."""
    times: dict[str, list[float]] = {}
    async with await Store.open(path) as store:
        for kind, tasks in placed.items():
            for at, task_id in tasks:
                age = "oldest third" if at < EVENTS / 3 else \
                    "newest third" if at > 2 * EVENTS / 3 else "middle"
                t0 = time.perf_counter()
                events = await store.events_after(0, limit=1000, task_id=task_id)
                took = (time.perf_counter() - t0) * 1e3
                assert [e.type for e in events] == list(KINDS[kind]), events
                times.setdefault(f"{kind}, {age}", []).append(took)
                t0 = time.perf_counter()
                await store.get_task(task_id)
                times.setdefault("floor: the task's row by id", []).append(
                    (time.perf_counter() - t0) * 1e3)
    return times


def main() -> None:
    print(f"one task's events beside {EVENTS:,} events, {PER_KIND} tasks of each kind; "
          f"{ROUNDS} rounds; load {os.getloadavg()}")
    folder = Path(tempfile.mkdtemp(prefix="jt-replay-"))
    path = folder / "tasks.db"
    t0 = time.perf_counter()
    placed = asyncio.run(build(path))
    print(f"built in {time.perf_counter() - t0:.1f} s, {path.stat().st_size / 1e6:.0f} MB")
    medians: dict[str, list[float]] = {}
    p99s: dict[str, list[float]] = {}
    for _ in range(ROUNDS):
        for case, values in asyncio.run(measure(path, placed)).items():
            medians.setdefault(case, []).append(statistics.median(values))
            p99s.setdefault(case, []).append(percentile(values, 99))
    floor = statistics.median(medians["floor: the task's row by id"])
    print("per read, ms: median of the rounds' p50 (min, max) and of their p99; "
          "p50 / the floor's p50")
    for case in sorted(medians):
        m, p = medians[case], p99s[case]
        print(f"  {case:32s} p50 {statistics.median(m):8.2f} ({min(m):.2f}, {max(m):.2f})"
              f"  p99 {statistics.median(p):8.2f}   x{statistics.median(m) / floor:.1f}")
    print(f"  load at the end {os.getloadavg()}")
    for leftover in folder.iterdir():
        leftover.unlink()
    folder.rmdir()


if __name__ == "__main__":
    main()
