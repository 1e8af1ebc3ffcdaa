"""Writes and reads beside a busy event loop: a burst of submits, a one-row read.

A loop that always has work ready (a coroutine computing in 1 ms steps with an
``await asyncio.sleep(0)`` between them, as a notebook's background work does) drops
the GIL for an instant in every turn and takes it straight back. A thread waiting
for the GIL is woken by each drop, finds it taken again, and starts its wait over:
the store's writer thread, its WAL-copy thread and aiosqlite's reader thread starved
for seconds.

Each round submits BURST jobs at once (one group commit) and waits for all of them,
then counts the tasks (a read on the reader thread); ROUNDS rounds beside the busy
loop, then the same beside an idle loop (the peer, same run). The store's own WAL
copy runs every second meanwhile, as it does in a server, and while it runs the
writes go to the writer thread.

Usage: python benchmarks/bench_engine_busy_loop.py [ROUNDS] [BURST]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_server_common import noop_registry, summary

from jupyter_tasks import TaskManager

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 60
BURST = int(sys.argv[2]) if len(sys.argv) > 2 else 64
STEP_SECONDS = 0.001


async def bursts(manager: TaskManager, busy: bool) -> tuple[list[float], list[float]]:
    """Seconds each round's burst of submits and its read took, beside a busy loop or not."""
    stop = asyncio.Event()

    async def compute() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            while time.perf_counter() - started < STEP_SECONDS:
                pass
            await asyncio.sleep(0)

    computing = asyncio.ensure_future(compute()) if busy else None
    took: list[float] = []
    reads: list[float] = []
    try:
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            await asyncio.gather(*(
                manager.submit_spec({"name": "noop", "params": {"i": i}}, mode="job")
                for i in range(BURST)))
            took.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await manager.store.count_tasks()
            reads.append(time.perf_counter() - t0)
            print(f"{took[-1] * 1000:.0f}/{reads[-1] * 1000:.0f}", end=" ", flush=True)
            # a little apart, so the rounds meet the WAL copies at different points
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        if computing is not None:
            await computing
        print()
    return took, reads


async def main() -> None:
    print(f"{ROUNDS} bursts of {BURST} submits; load {os.getloadavg()}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        async with TaskManager(Path(tmp) / "busy.db", registry=noop_registry(),
                               queues={}, as_worker=False, runs_background=False,
                               make_default=False) as manager:
            for where, busy in (("beside a busy loop", True), ("beside an idle loop", False)):
                print(f"{where} (ms per burst / read):")
                took, reads = await bursts(manager, busy)
                results[f"burst {where}"] = took
                results[f"read {where}"] = reads
    for label, took in results.items():
        print("  " + summary(label, took))
    for what in ("burst", "read"):
        busy, idle = results[f"{what} beside a busy loop"], results[f"{what} beside an idle loop"]
        print(f"  {what} busy / idle: median "
              f"{statistics.median(busy) / statistics.median(idle):.2f}, "
              f"max {max(busy) / max(idle):.2f}")
    print(f"  load at the end {os.getloadavg()}")


if __name__ == "__main__":
    asyncio.run(main())
