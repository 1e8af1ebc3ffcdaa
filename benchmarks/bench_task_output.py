"""What a chatty task's output costs: print() captured into its log, and a log past its budget.

Cases, each repeated in interleaved rounds (medians and spread reported):

- print: a task printing N short lines, with the streams wrapped as a server or a
  worker wraps them (each line goes to the task's log), beside the same loop printing
  to a file outside any task (the peer: what print() costs without the capture);
- past the budget: a task logging N lines of 100 characters through ``ctx.log`` with
  a 1,000,000-character budget, so nearly all of it goes through the rolling tail
  that is written with each flush: its seconds, the rows and characters left on disk.

Usage: python benchmarks/bench_task_output.py [N] [ROUNDS]
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from jupyter_tasks import TaskContext, TaskManager, task

try:
    from jupyter_tasks import print_capture
except ImportError:  # a version before the capture: its log case alone, for a before/after
    print_capture = None  # type: ignore[assignment]

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
BUDGET = 1_000_000


@task("bench_prints")
def bench_prints(n: int) -> int:
    """Print ``n`` numbered lines."""
    for i in range(n):
        print("epoch", i, "loss", 0.5)
    return n


@task("bench_logs")
def bench_logs(ctx: TaskContext, n: int) -> int:
    """Log ``n`` lines of 100 characters."""
    line = "y" * 92
    for i in range(n):
        ctx.log(f"{i:07d} {line}")
    return n


def print_outside(n: int) -> float:
    """Seconds for the same loop printing to a file, no task, no capture."""
    saved = sys.stdout
    with open(os.devnull, "w") as sink:
        sys.stdout = sink
        try:
            started = time.perf_counter()
            for i in range(n):
                print("epoch", i, "loss", 0.5)
            return time.perf_counter() - started
        finally:
            sys.stdout = saved


async def run_task(folder: Path, name: str, n: int) -> tuple[float, int, int]:
    """(seconds from submit to end, log rows, log characters) of one task."""
    path = folder / f"{name}-{time.monotonic_ns()}.db"
    async with TaskManager(path, queues={"default": 1}, max_log_chars=BUDGET) as manager:
        started = time.perf_counter()
        submitted = await manager.submit(name, n=n, mode="background")
        done = await manager.wait(submitted.id, timeout=600)
        elapsed = time.perf_counter() - started
        assert done.status == "succeeded", done.error
    with sqlite3.connect(path) as conn:
        rows, chars = conn.execute("SELECT count(*), ifnull(sum(length(text)), 0) "
                                   "FROM task_logs").fetchone()
    return elapsed, rows, chars


def spread(values: list[float]) -> str:
    return f"(min {min(values):.3f}, max {max(values):.3f})"


def main() -> None:
    figures: dict[str, list[float]] = {"print captured": [], "print, no capture": [],
                                       "logs past the budget": []}
    disk: tuple[int, int] = (0, 0)
    print(f"task output, {N:,} lines; {ROUNDS} interleaved rounds; load {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for _ in range(ROUNDS):
            figures["print, no capture"].append(print_outside(N))
            if print_capture is None:
                figures.pop("print captured", None)
            else:
                figures["print captured"].append(capture_round(folder))
            elapsed, rows, chars = asyncio.run(run_task(folder, "bench_logs", N))
            figures["logs past the budget"].append(elapsed)
            disk = (rows, chars)
    for label, values in figures.items():
        median = statistics.median(values)
        print(f"  {label:22s} {median:7.3f} s  {N / median:10,.0f} lines/s  {spread(values)}")
    if "print captured" in figures:
        ratio = statistics.median(figures["print captured"]) / \
            statistics.median(figures["print, no capture"])
        print(f"  captured print / plain print: {ratio:.1f}x the time "
              "(the captured one includes the task's start, end and log writes)")
    print(f"  past the budget: {disk[0]:,} log rows, {disk[1]:,} characters on disk "
          f"(budget {BUDGET:,} + its rolling tenth) of {N * 100:,} written")


def capture_round(folder: Path) -> float:
    """Seconds of the print task with the streams wrapped as a server wraps them."""
    assert print_capture is not None
    saved = sys.stdout
    with open(os.devnull, "w") as sink:
        # the wrapped stream is the file: only the task's writes are captured
        sys.stdout = sink
        print_capture.install()
        try:
            elapsed, _, chars = asyncio.run(run_task(folder, "bench_prints", N))
        finally:
            print_capture.uninstall()
            sys.stdout = saved
    assert chars > 0, "the prints reached the task's log"
    return elapsed


if __name__ == "__main__":
    main()
