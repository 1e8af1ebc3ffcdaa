"""Throughput of N short jobs: Dask LocalCluster (2 worker processes) vs the local worker pool.

Both sides run the same registered job (a few microseconds of work, one
progress report) through the same durable queue on a fresh SQLite file, and
measure submit-of-the-first to the-last-finished:

* local: the manager's own job slots run the function in threads
  (``queues={"default": LOCAL_SLOTS}``);
* dask: the same manager, with ``DaskBackend`` installed, hands each job to a
  ``LocalCluster(processes=True, n_workers=2, threads_per_worker=1)``
  (``queues={"default": DASK_SLOTS}`` jobs in flight). Cluster start-up is
  not counted; one warm-up job per side is run first (imports, connections);
* plain Dask: the same arithmetic submitted with ``client.submit(..., pure=False)``
  on the same cluster, all N at once, gathered with ``as_completed``: what
  Dask itself costs, without the queue, the store and the reports.

Usage: python benchmarks/bench_jobs_dask.py [N]  (the Dask sides run ROUNDS alternated rounds)
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from jupyter_tasks import TaskContext, TaskManager, task

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
LOCAL_SLOTS = 8
DASK_SLOTS = 16
ROUNDS = 3


@task("bench_short_job", mode="job")
def bench_short_job(i: int, ctx: TaskContext) -> int:
    """A short job: a little arithmetic and one progress report."""
    ctx.progress(1, 1, "done")
    return sum(range(i % 100))


async def run_side(db: Path, slots: int, scheduler: str | None) -> tuple[float, dict[str, int]]:
    async with TaskManager(db, queues={"default": slots}, flush_interval=0.2,
                           make_default=False) as manager:
        backend = None
        if scheduler:
            from jupyter_tasks.dask_backend import DaskBackend

            # the workers import this very file to find the registered job
            backend = DaskBackend(scheduler, modules=[os.path.abspath(__file__)]).install(manager)
        warm = await manager.submit("bench_short_job", i=0, mode="job")
        await manager.wait(warm.id, timeout=120)
        with manager.subscribe(maxsize=20 * N) as feed:
            started = time.perf_counter()
            ids = set()
            for i in range(N):
                ids.add((await manager.submit("bench_short_job", i=i, mode="job")).id)
            statuses: dict[str, int] = {}
            while ids:
                event = await asyncio.wait_for(feed.get(), 300)
                if event.task_id in ids and event.task and event.type in (
                        "task.succeeded", "task.failed", "task.cancelled", "task.interrupted",
                        "task.timeout", "task.oom"):
                    ids.discard(event.task_id)
                    statuses[event.task["status"]] = statuses.get(event.task["status"], 0) + 1
            elapsed = time.perf_counter() - started
        if backend is not None:
            await backend.close()
    return elapsed, statuses


def plain_short_job(i: int) -> int:
    """The same arithmetic as ``bench_short_job``, without a task context."""
    return sum(range(i % 100))


async def run_plain(scheduler: str) -> float:
    """N ``client.submit`` calls of the same work, submit-of-the-first to the last result."""
    from distributed import Client, as_completed

    async with Client(scheduler, asynchronous=True) as client:
        await client.submit(plain_short_job, 0, pure=False)  # warm-up
        started = time.perf_counter()
        futures = [client.submit(plain_short_job, i, pure=False) for i in range(N)]
        async for future in as_completed(futures):
            await future
        return time.perf_counter() - started


def main() -> None:
    from distributed import LocalCluster

    folder = Path(tempfile.mkdtemp(prefix="bench-jobs-dask-"))
    print(f"{N} short jobs, submit-to-all-finished (cpu count {os.cpu_count()})")
    local, local_statuses = asyncio.run(run_side(folder / "local.db", LOCAL_SLOTS, None))
    print(f"local worker pool ({LOCAL_SLOTS} slots):      {local:7.2f} s  "
          f"{N / local:8.1f} jobs/s  {local_statuses}")
    backend_times: list[float] = []
    plain_times: list[float] = []
    with LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                      dashboard_address=None, silence_logs=40) as cluster:
        # alternated rounds, the order flipped each time: the machine is shared and
        # its load drifts, so neither side gets all the quiet moments
        for r in range(ROUNDS):
            for side in (("backend", "plain") if r % 2 == 0 else ("plain", "backend")):
                if side == "plain":
                    plain_times.append(asyncio.run(run_plain(cluster.scheduler_address)))
                    continue
                elapsed, statuses = asyncio.run(run_side(folder / f"dask{r}.db", DASK_SLOTS,
                                                         cluster.scheduler_address))
                assert statuses == {"succeeded": N}, statuses
                backend_times.append(elapsed)
    dask, plain = statistics.median(backend_times), statistics.median(plain_times)
    print(f"DaskBackend, LocalCluster (2 workers, {DASK_SLOTS} in flight), median of "
          f"{ROUNDS}: {dask:7.2f} s  {N / dask:8.1f} jobs/s  "
          f"(rounds: {', '.join(f'{t:.2f}' for t in backend_times)})")
    print(f"plain client.submit of the same work, same cluster, all N at once, median of "
          f"{ROUNDS}: {plain:7.2f} s  {N / plain:8.1f} jobs/s  "
          f"(rounds: {', '.join(f'{t:.2f}' for t in plain_times)})")
    print(f"DaskBackend / local time: {dask / local:.2f}x")
    print(f"DaskBackend / plain client.submit time: {dask / plain:.2f}x "
          f"(throughput {plain / dask:.2f} of plain Dask's)")


if __name__ == "__main__":
    main()
