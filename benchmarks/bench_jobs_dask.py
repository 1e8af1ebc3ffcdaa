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

Two clusters, each with 2 single-threaded worker processes:

* ``LocalCluster``, whose scheduler runs in a thread of this very process, beside
  the hub's loop (as in a notebook that starts its own cluster);
* a ``dask scheduler`` process and a ``dask worker --nworkers 2`` process, the
  scheduler in a process of its own (as the server with ``executor = "dask"`` and
  a ``dask_scheduler_address`` meets it).

Usage: python benchmarks/bench_jobs_dask.py [N]  (the Dask sides run ROUNDS alternated rounds)
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jupyter_tasks import TaskContext, TaskManager, task

N = 1000  # set from the command line by main(): Dask's processes import this file too
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


def alternated_rounds(address: str, folder: Path) -> tuple[list[float], list[float]]:
    """(backend times, plain times) of ROUNDS rounds on the cluster at ``address``."""
    folder.mkdir(parents=True, exist_ok=True)
    backend_times: list[float] = []
    plain_times: list[float] = []
    # alternated rounds, the order flipped each time: the machine is shared and its
    # load drifts, so neither side gets all the quiet moments
    for r in range(ROUNDS):
        for side in (("backend", "plain") if r % 2 == 0 else ("plain", "backend")):
            if side == "plain":
                plain_times.append(asyncio.run(run_plain(address)))
                continue
            elapsed, statuses = asyncio.run(run_side(folder / f"dask{r}.db", DASK_SLOTS,
                                                     address))
            assert statuses == {"succeeded": N}, statuses
            backend_times.append(elapsed)
    return backend_times, plain_times


def report(cluster: str, backend_times: list[float], plain_times: list[float],
           local: float) -> None:
    """Print one cluster's medians and their ratios to the local pool and to plain Dask."""
    dask, plain = statistics.median(backend_times), statistics.median(plain_times)
    print(f"{cluster}:")
    print(f"  DaskBackend ({DASK_SLOTS} in flight), median of {ROUNDS}: {dask:7.2f} s  "
          f"{N / dask:8.1f} jobs/s  (rounds: {', '.join(f'{t:.2f}' for t in backend_times)})")
    print(f"  plain client.submit of the same work, all N at once, median of {ROUNDS}: "
          f"{plain:7.2f} s  {N / plain:8.1f} jobs/s  "
          f"(rounds: {', '.join(f'{t:.2f}' for t in plain_times)})")
    print(f"  DaskBackend / local time: {dask / local:.2f}x")
    print(f"  DaskBackend / plain client.submit time: {dask / plain:.2f}x "
          f"(throughput {plain / dask:.2f} of plain Dask's; target <= 1.5x)", flush=True)


def free_port() -> int:
    """A TCP port free on localhost now, for the scheduler process."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def separate_scheduler_rounds(folder: Path) -> tuple[list[float], list[float]]:
    """The rounds on a scheduler process and a worker process with 2 worker processes."""
    address = f"tcp://127.0.0.1:{free_port()}"
    port = address.rsplit(":", 1)[1]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [
        subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler",
                          "--host", "127.0.0.1", "--port", port, "--no-dashboard"], **quiet),
        subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                          "--nworkers", "2", "--nthreads", "1", "--no-dashboard"], **quiet)]
    try:
        async def ready() -> None:
            from distributed import Client

            async with Client(address, asynchronous=True, timeout=60) as client:
                await client.wait_for_workers(2, timeout=120)

        asyncio.run(ready())
        return alternated_rounds(address, folder)
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            process.wait(60)


def main() -> None:
    global N
    from distributed import LocalCluster

    N = int(sys.argv[1]) if len(sys.argv) > 1 else N
    folder = Path(tempfile.mkdtemp(prefix="bench-jobs-dask-"))
    print(f"{N} short jobs, submit-to-all-finished (cpu count {os.cpu_count()}, "
          f"load {os.getloadavg()})")
    local, local_statuses = asyncio.run(run_side(folder / "local.db", LOCAL_SLOTS, None))
    print(f"local worker pool ({LOCAL_SLOTS} slots):      {local:7.2f} s  "
          f"{N / local:8.1f} jobs/s  {local_statuses}")
    with LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                      dashboard_address=None, silence_logs=40) as cluster:
        in_process = alternated_rounds(cluster.scheduler_address, folder / "local-cluster")
    report("LocalCluster(2), its scheduler in this process", *in_process, local)
    separate = separate_scheduler_rounds(folder / "scheduler-process")
    report("dask scheduler process + dask worker --nworkers 2", *separate, local)
    print(f"load at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
