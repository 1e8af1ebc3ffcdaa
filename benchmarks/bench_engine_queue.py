"""Durable-queue throughput: N trivial jobs, 4 workers, submit-to-all-finished, beside SqliteHuey.

Our submits go through the normal async API with 64 in flight (how concurrent
clients arrive; their writes share group commits) and, for comparison, one at a
time. Both systems run in this one process on a SQLite file of their own, with four
workers each (our manager's four job slots; Huey's thread consumer with four
threads), enqueueing from the same thread that waits. Huey's consumer polling
is tuned to its fastest (10 ms initial delay, 100 ms cap) so the comparison is
not won by its idle backoff.

The three runs are repeated in rounds (three by default) and the medians
reported: on a shared machine one run's speed can move by a fifth, and rounds
put each system's runs side by side in time.

Usage: python benchmarks/bench_engine_queue.py [N] [ROUNDS]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from jupyter_tasks import TaskManager
from jupyter_tasks.registry import Registry

N = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
WORKERS = 4


async def bench_ours(folder: Path, in_flight: int) -> float:
    registry = Registry()

    @registry.task("noop", mode="job")
    async def noop(i: int) -> int:
        return i

    async with TaskManager(folder / f"ours-{in_flight}.db", registry=registry,
                           queues={"default": WORKERS}, make_default=False) as manager:
        with manager.subscribe(maxsize=10 * N) as feed:
            started = time.perf_counter()
            gate = asyncio.Semaphore(in_flight)

            async def submit(i: int) -> None:
                async with gate:
                    await manager.submit_spec({"name": "noop", "params": {"i": i}}, mode="job")

            if in_flight == 1:
                for i in range(N):
                    await submit(i)
            else:
                await asyncio.gather(*(submit(i) for i in range(N)))
            finished = 0
            while finished < N:
                event = await feed.get()
                if event.type == "task.succeeded":
                    finished += 1
            elapsed = time.perf_counter() - started
        stats = await manager.store.stats()
        assert stats["statuses"]["succeeded"] == N, stats
    return elapsed


def bench_huey(folder: Path) -> float:
    from huey import SqliteHuey
    from huey.signals import SIGNAL_COMPLETE

    huey = SqliteHuey("bench", filename=str(folder / "huey.db"))

    @huey.task()
    def noop(i: int) -> int:
        return i

    done = threading.Event()
    count = 0
    lock = threading.Lock()

    @huey.signal(SIGNAL_COMPLETE)
    def completed(signal, task, *args):
        nonlocal count
        with lock:
            count += 1
            if count == N:
                done.set()

    consumer = huey.create_consumer(workers=WORKERS, worker_type="thread", initial_delay=0.01,
                                    backoff=1.15, max_delay=0.1, periodic=False)
    consumer.start()
    try:
        started = time.perf_counter()
        for i in range(N):
            noop(i)
        if not done.wait(600):
            raise RuntimeError(f"huey finished only {count} of {N}")
        elapsed = time.perf_counter() - started
    finally:
        consumer.stop(graceful=True)
    return elapsed


def main() -> None:
    runs: dict[str, list[float]] = {"concurrent": [], "sequential": [], "huey": []}
    print(f"durable queue, {N} trivial jobs, {WORKERS} workers, submit to all finished; "
          f"{ROUNDS} rounds")
    for round_number in range(1, ROUNDS + 1):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            runs["concurrent"].append(asyncio.run(bench_ours(folder, 64)))
            runs["sequential"].append(asyncio.run(bench_ours(folder, 1)))
            runs["huey"].append(bench_huey(folder))
        print(f"  round {round_number}: " + ", ".join(
            f"{name} {N / seconds[-1]:.0f}/s" for name, seconds in runs.items())
            + f"; ratio {runs['huey'][-1] / runs['concurrent'][-1]:.2f}x")
    concurrent, sequential, huey = (statistics.median(runs[k]) for k in runs)
    print("medians:")
    print(f"  jupyter-tasks, 64 submits in flight : {concurrent:7.2f} s  "
          f"{N / concurrent:8.0f} tasks/s")
    print(f"  jupyter-tasks, one submit at a time : {sequential:7.2f} s  "
          f"{N / sequential:8.0f} tasks/s")
    print(f"  SqliteHuey (thread consumer)        : {huey:7.2f} s  {N / huey:8.0f} tasks/s")
    print(f"  ratio vs huey: {huey / concurrent:.2f}x concurrent, {huey / sequential:.2f}x "
          "sequential  (target >= 2x)")


if __name__ == "__main__":
    main()
