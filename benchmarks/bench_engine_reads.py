"""Reads beside writes: ``result()`` of finished tasks while 4 job slots are busy vs idle.

Each round makes a database holding M finished tasks and a backlog of trivial jobs
in queue ``busy``. Idle: a manager serving only queue ``default`` (empty) reads the
M results one after another. Busy: a manager serving ``busy`` with 4 slots, which
drain the backlog (a commit per job end and next claim) while the same M results
are read; the backlog must outlast the reading, which the script checks. Rounds
interleave the two; medians with their spread, and the machine's load, are printed,
with the jobs the slots ended per second while the reads ran (what reading costs them).

Usage: python benchmarks/bench_engine_reads.py [M] [ROUNDS] [BACKLOG]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_server_common import noop_registry

from jupyter_tasks import TaskManager
from jupyter_tasks.models import new_task_id
from jupyter_tasks.store import Store

M = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
BACKLOG = int(sys.argv[3]) if len(sys.argv) > 3 else 40_000
SLOTS = 4


async def prepare(path: Path) -> list[str]:
    """M finished tasks and BACKLOG queued jobs in queue ``busy``; the finished ids."""
    now = time.time()
    ids = [new_task_id() for _ in range(M)]
    async with await Store.open(path) as store:
        await store.insert_task_rows(
            {"id": task_id, "kind": "function", "mode": "job", "status": "succeeded",
             "name": "noop", "label": "noop", "params": {"i": i}, "result": i,
             "spec": {"name": "noop", "params": {"i": i}}, "queue": "default",
             "attempts": 1, "created_at": now, "started_at": now, "finished_at": now,
             "updated_at": now}
            for i, task_id in enumerate(ids))
        await store.insert_task_rows(
            {"id": new_task_id(), "kind": "function", "mode": "job", "status": "queued",
             "name": "noop", "label": "noop", "params": {"i": i},
             "spec": {"name": "noop", "params": {"i": i}}, "queue": "busy",
             "created_at": now, "updated_at": now}
            for i in range(BACKLOG))
    return ids


async def read_rate(path: Path, ids: list[str], queue: str) -> tuple[float, float]:
    """result() calls per second, and backlog jobs ended per second while reading."""
    async with TaskManager(path, registry=noop_registry(), queues={queue: SLOTS},
                           make_default=False) as manager:
        store = manager.store
        if queue == "busy":  # the slots are at work before the clock starts
            async def ended() -> int:
                return (await store.stats(statuses=["succeeded"]))["statuses"]["succeeded"]

            while await ended() < M + 50:
                await asyncio.sleep(0.01)  # a benchmark's warm-up, not a synchronisation
        before = (await store.stats())["statuses"]["succeeded"]
        started = time.perf_counter()
        for i, task_id in enumerate(ids):
            assert await manager.result(task_id) == i
        elapsed = time.perf_counter() - started
        stats = await store.stats()
        if queue == "busy" and not stats["queues"].get("busy", {}).get("queued"):
            raise RuntimeError("the backlog ran out before the reads ended: raise BACKLOG")
        return M / elapsed, (stats["statuses"]["succeeded"] - before) / elapsed


def main() -> None:
    idle: list[float] = []
    busy: list[float] = []
    jobs: list[float] = []
    print(f"result() of {M} finished tasks, {SLOTS} slots idle vs busy draining a backlog of "
          f"{BACKLOG} trivial jobs; {ROUNDS} interleaved rounds; load {os.getloadavg()}")
    for round_number in range(1, ROUNDS + 1):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "reads.db"
            ids = asyncio.run(prepare(path))
            rate, _ = asyncio.run(read_rate(path, ids, "default"))
            idle.append(rate)
            rate, job_rate = asyncio.run(read_rate(path, ids, "busy"))
            busy.append(rate)
            jobs.append(job_rate)
        print(f"  round {round_number} (load {os.getloadavg()[0]:.2f}): idle {idle[-1]:.0f}/s, "
              f"busy {busy[-1]:.0f}/s (jobs meanwhile {job_rate:.0f}/s)", flush=True)
    for name, values in (("idle slots", idle), ("4 busy slots", busy)):
        print(f"  {name:14s} {statistics.median(values):8.0f} result()/s  "
              f"(min {min(values):.0f}, max {max(values):.0f})")
    print(f"  {'jobs meanwhile':14s} {statistics.median(jobs):8.0f} jobs/s     "
          f"(min {min(jobs):.0f}, max {max(jobs):.0f})")
    ratio = statistics.median(idle) / statistics.median(busy)
    print(f"  idle / busy: {ratio:.2f}x  (target <= 2x); load {os.getloadavg()}")


if __name__ == "__main__":
    main()
