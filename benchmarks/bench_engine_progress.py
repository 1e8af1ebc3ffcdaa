"""Per-call cost of ``TaskContext.progress()`` in a tight loop, beside tqdm doing the same loop.

tqdm runs with its display off in two ways: ``disable=True`` (tqdm skips all
bookkeeping: the floor for any progress call) and writing to a null stream
(it counts and rate-limits as it would on a terminal, nothing is shown). Our
call runs inside a real task whose manager flushes the last value to SQLite a
few times per second, so the figure includes the writes it causes.

Usage: python benchmarks/bench_engine_progress.py [iterations]
"""

from __future__ import annotations

import asyncio
import io
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


def main() -> None:
    base = bare_loop()
    disabled = tqdm_loop(disable=True)
    null = tqdm_loop(file=io.StringIO(), mininterval=0.1)
    mine, info = asyncio.run(ours())
    assert info["progress"]["current"] == N, info

    def per(total: float) -> float:
        return (total - base) / N * 1e9

    print(f"progress per-call cost over {N:,} iterations (loop overhead {base / N * 1e9:.0f} ns "
          "subtracted)")
    print(f"  TaskContext.progress(i, N)     : {per(mine):7.1f} ns/call "
          f"({info['writes']} progress writes to SQLite, last value stored)")
    print(f"  tqdm.update(1), null stream    : {per(null):7.1f} ns/call")
    print(f"  tqdm.update(1), disable=True   : {per(disabled):7.1f} ns/call")
    print(f"  ratio ours / tqdm (null stream): {per(mine) / per(null):.2f}  (target <= 1)")
    print(f"  ratio ours / tqdm (disabled)   : {per(mine) / per(disabled):.2f}")


if __name__ == "__main__":
    main()
