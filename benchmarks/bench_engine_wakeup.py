"""Cross-process wake-up: idle submit -> start in a worker process, and cancel -> stopped.

Three sides, measured in interleaved rounds in the same run (the order rotates
each round; the machine is shared and its load drifts):

* ``bell``: a ``jupyter tasks worker`` process (``run_worker``, 1 slot) woken by
  the wake-up bell (a datagram per commit, ``engine/bell.py``);
* ``poll``: the same worker with ``wake_bell=False`` (the event feed's 20 ms
  poll), on a database of its own: the path before the bell;
* ``dask``: ``client.submit`` -> start on ``LocalCluster(processes=True,
  n_workers=1, threads_per_worker=1)``, the peer.

One job at a time, each submitted to an idle worker after a random pause (so
a poll's phase is not always the same). "Start" is the job's first line,
stamped with ``time.monotonic()`` (one clock for every process on the machine),
minus the stamp taken just before the submit call. "Stopped" is the cancelled
job's ``finally`` block, minus the stamp before ``cancel()``.

Usage: python benchmarks/bench_engine_wakeup.py [starts per round] [cancels per round] [rounds]
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jupyter_tasks import task

HERE = Path(__file__).resolve()
# the worker processes import this file for its tasks: arguments are read by main() alone
STARTS, CANCELS, ROUNDS = 200, 30, 3
WORKER = (
    "import asyncio, sys\n"
    "from jupyter_tasks.worker import run_worker\n"
    "asyncio.run(run_worker(sys.argv[1], task_modules=[sys.argv[2]], concurrency=1,\n"
    "                       wake_bell=sys.argv[3] == 'bell'))\n"
)


@task("wakeup_stamp", mode="job")
async def wakeup_stamp() -> float:
    """The moment the job started."""
    return time.monotonic()


@task("wakeup_hold", mode="job")
async def wakeup_hold(stop_file: str) -> None:
    """Wait until cancelled; write the moment it stopped."""
    try:
        await asyncio.sleep(3600)
    finally:
        Path(stop_file).write_text(repr(time.monotonic()))


def dask_stamp() -> float:
    """The moment the Dask task started."""
    return time.monotonic()


def pause() -> float:
    """An idle gap before the next sample, at a random phase to any poll."""
    return random.uniform(0.01, 0.03)


async def until(check, what: str, timeout: float = 60.0):
    """Await ``check()`` until truthy (the benchmark's own waiting, 1 ms steps)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.001)
    raise RuntimeError(f"{what} not within {timeout}s")


class Side:
    """A worker process on a database of its own and a client manager submitting to it."""

    def __init__(self, folder: Path, name: str) -> None:
        self.name = name
        self.db = folder / f"{name}.db"
        self.folder = folder
        self.popen: subprocess.Popen[bytes] | None = None
        self.client = None

    async def start(self) -> None:
        from jupyter_tasks import TaskManager

        self.client = await TaskManager(self.db, as_worker=False, runs_background=False,
                                        make_default=False,
                                        wake_bell=self.name == "bell").start()
        log = open(self.folder / f"{self.name}-worker.log", "wb")  # noqa: SIM115
        self.popen = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(self.db), str(HERE), self.name],
            stdout=log, stderr=subprocess.STDOUT)

        async def ready() -> bool:
            workers = await self.client.store.list_workers()
            return any(w.kind == "worker" for w in workers)

        await until(ready, f"the {self.name} worker")
        await self.starts(3)  # warm up: imports, first claims

    async def stop(self) -> None:
        if self.popen is not None:
            self.popen.terminate()
            self.popen.wait(60)
        if self.client is not None:
            await self.client.stop()

    async def starts(self, n: int) -> list[float]:
        """Submit -> start latencies (s) of ``n`` jobs, one at a time."""
        out = []
        for _ in range(n):
            await asyncio.sleep(pause())
            t0 = time.monotonic()
            job = await self.client.enqueue_by_name("wakeup_stamp", {}, label="stamp")
            done = await self.client.wait(job.id, 60)
            assert done.status == "succeeded", done
            out.append(done.result - t0)
        return out

    async def cancels(self, n: int) -> list[float]:
        """Cancel -> stopped latencies (s) of ``n`` running jobs, one at a time."""
        out = []
        for i in range(n):
            stop_file = self.folder / f"{self.name}-stop-{time.monotonic_ns()}-{i}"
            job = await self.client.enqueue_by_name("wakeup_hold", {"stop_file": str(stop_file)},
                                                    label="hold")

            async def running(job_id: str = job.id) -> bool:
                return (await self.client.store.require_task(job_id)).status == "running"

            await until(running, "the held job's start")
            await asyncio.sleep(pause())
            t0 = time.monotonic()
            await self.client.cancel(job.id)
            done = await self.client.wait(job.id, 60)
            assert done.status == "cancelled", done
            await until(lambda f=stop_file: asyncio.sleep(0, f.exists()), "the stop stamp")
            out.append(float(stop_file.read_text()) - t0)
        return out


def dask_starts(client, n: int) -> list[float]:
    """``client.submit`` -> start latencies (s) of ``n`` tasks, one at a time."""
    out = []
    for _ in range(n):
        time.sleep(pause())
        t0 = time.monotonic()
        value = client.submit(dask_stamp, pure=False).result()
        out.append(value - t0)
    return out


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values``, in ms."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def summary(rounds: list[tuple[float, float]]) -> str:
    """Median over rounds of (p50, p99), with the spread (min-max) of each."""
    p50s = [r[0] for r in rounds]
    p99s = [r[1] for r in rounds]
    return (f"p50 {statistics.median(p50s):6.2f} ms ({min(p50s):.2f}-{max(p50s):.2f})   "
            f"p99 {statistics.median(p99s):6.2f} ms ({min(p99s):.2f}-{max(p99s):.2f})")


async def main() -> None:
    from distributed import Client, LocalCluster

    global STARTS, CANCELS, ROUNDS
    STARTS, CANCELS, ROUNDS = ([int(a) for a in sys.argv[1:4]] + [STARTS, CANCELS, ROUNDS]
                               [len(sys.argv[1:4]):])

    folder = Path(tempfile.mkdtemp(prefix="bench-wakeup-"))
    print(f"cross-process wake-up, {STARTS} starts + {CANCELS} cancels per side per round, "
          f"{ROUNDS} rounds, cpu count {os.cpu_count()}, load {os.getloadavg()}")
    sides = {name: Side(folder, name) for name in ("bell", "poll")}
    start_figs: dict[str, list[tuple[float, float]]] = {"bell": [], "poll": [], "dask": []}
    cancel_figs: dict[str, list[tuple[float, float]]] = {"bell": [], "poll": []}
    loads = []
    cluster = await asyncio.to_thread(
        LocalCluster, processes=True, n_workers=1, threads_per_worker=1,
        dashboard_address=None, silence_logs=40)
    dask = await asyncio.to_thread(Client, cluster)
    try:
        for side in sides.values():
            await side.start()
        await asyncio.to_thread(dask_starts, dask, 3)  # warm up
        order = ["bell", "poll", "dask"]
        for r in range(ROUNDS):
            loads.append(os.getloadavg()[0])
            for name in order[r % 3:] + order[:r % 3]:
                if name == "dask":
                    values = await asyncio.to_thread(dask_starts, dask, STARTS)
                else:
                    values = await sides[name].starts(STARTS)
                    stops = await sides[name].cancels(CANCELS)
                    cancel_figs[name].append((pct(stops, 0.5), pct(stops, 0.99)))
                start_figs[name].append((pct(values, 0.5), pct(values, 0.99)))
            print(f"round {r + 1}: load {loads[-1]:.2f}   starts p50 " + "   ".join(
                f"{n} {start_figs[n][-1][0]:.2f} ms" for n in order))
    finally:
        for side in sides.values():
            await side.stop()
        await asyncio.to_thread(dask.close)
        await asyncio.to_thread(cluster.close)
    print(f"\nidle submit -> start in another process, median of {ROUNDS} rounds (spread), "
          f"load {min(loads):.1f}-{max(loads):.1f}:")
    print(f"  jupyter-tasks, bell        {summary(start_figs['bell'])}   "
          "(target p50 < 2 ms, p99 < 10 ms)")
    print(f"  jupyter-tasks, poll only   {summary(start_figs['poll'])}")
    print(f"  Dask client.submit (peer)  {summary(start_figs['dask'])}")
    print("cancel -> stopped in the worker process:")
    print(f"  jupyter-tasks, bell        {summary(cancel_figs['bell'])}   (target < 50 ms)")
    print(f"  jupyter-tasks, poll only   {summary(cancel_figs['poll'])}")


if __name__ == "__main__":
    asyncio.run(main())
