"""Shared helpers of the server benchmarks: a real ``jupyter server`` on loopback, a temp db.

Not a benchmark itself. Each ``bench_server_*.py`` script starts its own server
subprocess with ``start_server`` (killed at exit), talks to it over 127.0.0.1
only, and prints its figures.
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
''')


@dataclass
class Server:
    """A running server subprocess."""

    popen: subprocess.Popen[bytes]
    port: int
    token: str
    db_path: Path
    folder: Path

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

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(*args: str, workers: str = "default=2") -> Server:
    """Start ``jupyter server`` on loopback with a fresh database and the bench tasks.

    ``workers`` is ``queue=count[,queue=count...]``.
    """
    folder = Path(tempfile.mkdtemp(prefix="jt-bench-"))
    module = folder / "bench_tasks.py"
    module.write_text(BENCH_TASKS)
    db_path = folder / "tasks.db"
    port = free_port()
    token = os.urandom(12).hex()
    env = {**os.environ, "JUPYTER_TASKS_DB": str(db_path), "JUPYTER_TASKS_MODULES": str(module),
           "JUPYTER_CONFIG_DIR": str(folder / "config"),
           "JUPYTER_RUNTIME_DIR": str(folder / "runtime")}
    log = open(folder / "server.log", "wb")  # noqa: SIM115 (kept open for the child)
    popen = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", f"--port={port}", "--port-retries=0",
         "--ip=127.0.0.1", f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False",
         f"--ServerApp.root_dir={folder}", "--ServerApp.allow_root=True", "--log-level=WARN",
         *(f"--JupyterTasksApp.workers={w}" for w in workers.split(",")), *args],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=folder,
    )
    server = Server(popen, port, token, db_path, folder)
    atexit.register(server.stop)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise SystemExit((folder / "server.log").read_text()[-3000:])
        try:
            conn = server.connection()
            status, _ = server.call(conn, "GET", "/api/tasks/stats")
            conn.close()
            if status == 200:
                return server
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (f"{name}: n={len(ms)} p50={percentile(ms, 50):.2f} ms p90={percentile(ms, 90):.2f} ms "
            f"p99={percentile(ms, 99):.2f} ms mean={statistics.fmean(ms):.2f} ms "
            f"max={max(ms):.2f} ms")
