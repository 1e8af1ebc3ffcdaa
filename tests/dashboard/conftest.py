"""Dashboard fixtures: a real ``jupyter server`` subprocess, and a database with 100,000 tasks."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

TASKS_MODULE = Path(__file__).with_name("dash_tasks.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A ``jupyter server`` on loopback with a token, the extension and the test tasks."""

    def __init__(self, root: Path, db: Path, port: int | None = None) -> None:
        self.root = root
        self.db = db
        self.port = port or free_port()
        self.token = os.urandom(8).hex()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.popen: subprocess.Popen[bytes] | None = None
        self.log_path = root / f"server-{self.port}.log"

    def start(self, timeout: float = 60) -> Server:
        work = self.root / "work"
        work.mkdir(exist_ok=True)
        env = {**os.environ, "JUPYTER_TASKS_DB": str(self.db),
               "JUPYTER_TASKS_MODULES": str(TASKS_MODULE),
               "JUPYTER_CONFIG_DIR": str(self.root / "config"),
               "JUPYTER_RUNTIME_DIR": str(self.root / "runtime"),
               "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "jupyter_server", f"--port={self.port}",
                 "--port-retries=0", "--ip=127.0.0.1", f"--IdentityProvider.token={self.token}",
                 "--ServerApp.open_browser=False", f"--ServerApp.root_dir={work}",
                 "--ServerApp.allow_root=True", "--JupyterTasksApp.workers={'default': 3}"],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(self.root),
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if self.request("GET", "api/tasks/stats", timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)  # polling a subprocess's readiness, not synchronising the app
        raise AssertionError(f"server not ready: {self.log_path.read_text()[-3000:]}")

    def request(self, method: str, path: str, body: Any = None,
                timeout: float = 30) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            raw = err.read()
            return err.code, json.loads(raw) if raw else None

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """One real server per test module (start-up costs seconds); killed at teardown."""
    root = tmp_path_factory.mktemp("dash-server")
    srv = Server(root, root / "tasks.db").start()
    yield srv
    srv.kill()


async def until(check: Callable[[], Any], pilot: Any = None, timeout: float = 20.0,
                what: str = "condition") -> Any:
    """Let the app run (``pilot.pause``) until ``check()`` is truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if pilot is not None:
            await pilot.pause(0.02)
        else:
            await asyncio.sleep(0.02)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")


async def build_history(path: Path, count: int, batch: int = 20_000) -> float:
    """Insert ``count`` tasks (mostly finished, the 3 newest running) quickly; returns seconds.

    The schema comes from ``Store.open``; rows go in through the store module's own
    INSERT statement with ``executemany`` (no per-task event: this is history).
    """
    import sqlite3

    from jupyter_tasks import store as store_module
    from jupyter_tasks.models import Task, dumps, new_task_id

    t0 = time.perf_counter()
    store = await store_module.Store.open(path)
    await store.close()
    columns = store_module._TASK_COLUMNS
    defaults = {f.name: f.default for f in dataclasses.fields(Task)
                if f.default is not dataclasses.MISSING}
    now = time.time() - count
    statuses = ("succeeded", "succeeded", "succeeded", "failed", "cancelled")

    def row(i: int) -> tuple[Any, ...]:
        status = "running" if i >= count - 3 else statuses[i % len(statuses)]
        created = now + i
        # every column at its Task default (NOT NULL ones added by later migrations too)
        values = {c: defaults.get(c) for c in columns}
        values.update(
            id=new_task_id(), kind="function", mode="job", status=status, name=f"job_{i % 7}",
            label=f"history {i}", params=dumps({"i": i}), queue=("default", "gpu")[i % 2],
            priority=0, owner=("ana", "bo")[i % 2], attempts=1, max_retries=0,
            origin=dumps({"type": "kernel", "notebook": f"nb/{i % 13}.ipynb"}),
            progress=dumps({"current": i % 100, "total": 100}), cancel_requested=0,
            error=dumps({"type": "ValueError", "message": f"bad {i}", "traceback": "tb"})
            if status == "failed" else None,
            created_at=created, started_at=created + 0.1,
            finished_at=None if status == "running" else created + 0.6, updated_at=created + 0.6,
        )
        return tuple(values[c] for c in columns)

    conn = sqlite3.connect(path)
    try:
        for start in range(0, count, batch):
            with conn:
                conn.executemany(store_module._INSERT_TASK,
                                 [row(i) for i in range(start, min(count, start + batch))])
    finally:
        conn.close()
    return time.perf_counter() - t0
