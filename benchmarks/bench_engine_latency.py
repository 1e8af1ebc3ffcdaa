"""Submit-to-running latency of a ``background`` task: from the submit call to the task's code.

Usage: python benchmarks/bench_engine_latency.py [samples]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from jupyter_tasks import TaskManager

SAMPLES = int(sys.argv[1]) if len(sys.argv) > 1 else 1000


async def main() -> None:
    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with TaskManager(Path(tmp) / "t.db", make_default=False) as manager:
            for _ in range(SAMPLES):
                started = asyncio.get_running_loop().create_future()

                async def work(fut: asyncio.Future = started) -> None:
                    fut.set_result(time.perf_counter())

                t0 = time.perf_counter()
                task = await manager.submit(work())
                latencies.append(await started - t0)
                await manager.wait(task.id)
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(f"background submit-to-running latency over {SAMPLES} tasks")
    print(f"  p50 {p50:.2f} ms   p99 {p99:.2f} ms   max {latencies[-1] * 1000:.2f} ms  "
          "(target p50 < 5 ms)")


if __name__ == "__main__":
    asyncio.run(main())
