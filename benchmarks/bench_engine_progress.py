"""Per-call cost of ``TaskContext.progress()`` in a tight loop, beside tqdm doing the same loop.

tqdm runs with its display off in two ways: ``disable=True`` (tqdm skips all
bookkeeping: the floor for any progress call) and writing to a null stream
(it counts and rate-limits as it would on a terminal, nothing is shown). Our
call runs inside a real task whose manager flushes the last value to SQLite a
few times per second, so the figure includes the writes it causes.

A second figure is ``progress()`` called in a code job's own process, which has no task
context: there each report goes to the file its worker reads ($JUPYTER_TASKS_PROGRESS),
at most every 50 ms. It runs in a child process as a code job's program does (its own
bare loop subtracted), beside the same tqdm.

Usage: python benchmarks/bench_engine_progress.py [iterations]
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from jupyter_tasks import TaskContext, TaskManager
from jupyter_tasks.registry import Registry

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000


def bare_loop() -> float:
    start = time.perf_counter()
    for _ in range(N):
        pass
    return time.perf_counter() - start


def tqdm_loop(**options) -> float:
    start = time.perf_counter()
    bar = tqdm(total=N, **options)
    for _ in range(N):
        bar.update(1)
    bar.close()
    return time.perf_counter() - start


async def ours() -> tuple[float, dict]:
    registry = Registry()
    elapsed = {}

    @registry.task("loop")
    def loop(ctx: TaskContext) -> None:
        start = time.perf_counter()
        for i in range(N):
            ctx.progress(i + 1, N)
        elapsed["s"] = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        async with TaskManager(Path(tmp) / "t.db", registry=registry, make_default=False) as m:
            task = await m.submit("loop", mode="background")
            done = await m.wait(task.id, timeout=600)
            writes = sum(e.type == "task.progress"
                         for e in await m.store.events_after(0, task_id=task.id, limit=100_000))
    return elapsed["s"], {"status": done.status, "progress": done.progress, "writes": writes}


CODE_JOB_LOOP = """
import sys, time
from jupyter_tasks import progress
n = int(sys.argv[1])
start = time.perf_counter()
for _ in range(n):
    pass
bare = time.perf_counter() - start
start = time.perf_counter()
for i in range(n):
    progress(i + 1, n)
print(time.perf_counter() - start - bare)
"""


def code_job_loop() -> tuple[float, dict]:
    """Seconds of progress() calls in a code job's process (bare loop out), and the file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "progress.json")
        out = subprocess.run([sys.executable, "-c", CODE_JOB_LOOP, str(N)], check=True,
                             capture_output=True, text=True,
                             env={**os.environ, "JUPYTER_TASKS_PROGRESS": path})
        with open(path, encoding="utf-8") as f:
            return float(out.stdout), json.load(f)


def main() -> None:
    base = bare_loop()
    disabled = tqdm_loop(disable=True)
    null = tqdm_loop(file=io.StringIO(), mininterval=0.1)
    mine, info = asyncio.run(ours())
    assert info["progress"]["current"] == N, info
    in_code_job, last = code_job_loop()
    assert last["current"] == N, last

    def per(total: float) -> float:
        return (total - base) / N * 1e9

    print(f"progress per-call cost over {N:,} iterations (loop overhead {base / N * 1e9:.0f} ns "
          "subtracted)")
    print(f"  TaskContext.progress(i, N)     : {per(mine):7.1f} ns/call "
          f"({info['writes']} progress writes to SQLite, last value stored)")
    print(f"  progress(i, N) in a code job   : {in_code_job / N * 1e9:7.1f} ns/call "
          "(its file written at most every 50 ms, last value kept)")
    print(f"  tqdm.update(1), null stream    : {per(null):7.1f} ns/call")
    print(f"  tqdm.update(1), disable=True   : {per(disabled):7.1f} ns/call")
    print(f"  ratio ours / tqdm (null stream): {per(mine) / per(null):.2f}  (target <= 1)")
    print(f"  ratio ours / tqdm (disabled)   : {per(mine) / per(disabled):.2f}")
    print(f"  ratio code job / tqdm (null)   : {in_code_job / N * 1e9 / per(null):.2f}")


if __name__ == "__main__":
    main()
