"""Shared helpers of the benchmarks: a real ``jupyter server`` on loopback, a temp db,
percentiles, and the engine benchmarks' ``noop`` job.

Not a benchmark itself. Each ``bench_server_*.py`` script starts its own server
subprocess with ``start_server`` (killed at exit), talks to it over 127.0.0.1
only, and prints its figures.
"""

from __future__ import annotations

import atexit
import http.client
import json
import statistics
import sys
import tempfile
import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any

# the test suite's launcher starts the server here too
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.engine.noop import noop_registry  # noqa: F401  (the engine benchmarks' job)
from tests.launcher import JupyterProcess, free_port  # noqa: F401  (free_port: bench_chaos)

BENCH_TASKS = textwrap.dedent('''
    import asyncio

    from jupyter_tasks import TaskContext, task


    @task("bench_noop", mode="job")
    def bench_noop(n: int = 0) -> int:
        return n


    @task("bench_progress", mode="job")
    async def bench_progress(ctx: TaskContext, seconds: float = 10.0,
                             interval: float = 0.01) -> int:
        steps = int(seconds / interval)
        for step in range(steps):
            if ctx.cancelled:
                break
            ctx.progress(step + 1, steps)
            await asyncio.sleep(interval)
        return steps


    @task("bench_loop_lag", mode="job")
    async def bench_loop_lag(seconds: float = 10.0, tick: float = 0.005) -> list[float]:
        # how late the server's loop wakes a 5 ms sleep: the floor of every delivery
        loop = asyncio.get_running_loop()
        lags = []
        end = loop.time() + seconds
        while loop.time() < end:
            before = loop.time()
            await asyncio.sleep(tick)
            lags.append(loop.time() - before - tick)
        return lags
''')


class Server(JupyterProcess):
    """A running ``jupyter server`` subprocess (tests/launcher.py) with a raw HTTP client."""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}", "Content-Type": "application/json"}

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def call(self, conn: http.client.HTTPConnection, method: str, path: str,
             body: Any = None) -> tuple[int, Any]:
        conn.request(method, path, None if body is None else json.dumps(body), self.headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None


def start_server(*args: str, workers: str = "default=2") -> Server:
    """Start ``jupyter server`` on loopback with a fresh database and the bench tasks.

    ``workers`` is ``queue=count[,queue=count...]``.
    """
    folder = Path(tempfile.mkdtemp(prefix="jt-bench-"))
    module = folder / "bench_tasks.py"
    module.write_text(BENCH_TASKS)
    server = Server(folder, root_dir=folder, task_modules=module,
                    log_path=folder / "server.log",
                    args=["--log-level=WARN",
                          *(f"--JupyterTasksApp.workers={w}" for w in workers.split(",")),
                          *args])
    atexit.register(server.stop)
    try:
        server.start(timeout=60)
    except AssertionError as err:
        raise SystemExit(str(err)) from None
    return server


def epoch_of(ts: str) -> float:
    """An event's ``ts`` (ISO 8601, ``Z``) as epoch seconds, to set beside ``time.time()``."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (f"{name}: n={len(ms)} p50={percentile(ms, 50):.2f} ms p90={percentile(ms, 90):.2f} ms "
            f"p99={percentile(ms, 99):.2f} ms mean={statistics.fmean(ms):.2f} ms "
            f"max={max(ms):.2f} ms")
