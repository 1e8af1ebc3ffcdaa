"""Server-tier fixtures: the extension in pytest-jupyter's server, and real subprocess servers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config

TASKS_MODULE = Path(__file__).with_name("server_tasks.py")


@pytest.fixture
def jp_asyncio_loop(_function_scoped_runner: Any) -> Any:
    """Serve pytest-jupyter's server on pytest-asyncio's loop, where the async tests run.

    The root ``asyncio_mode = "auto"`` hands every coroutine test to pytest-asyncio;
    without this the in-process server would sit on a loop nobody runs.
    """
    return _function_scoped_runner.get_loop()


@pytest.fixture
def tasks_config() -> dict[str, Any]:
    """Extra ``JupyterTasksApp`` settings a test wants (override in a module)."""
    return {}


@pytest.fixture
def jp_server_config(db_path: Path, tasks_config: dict[str, Any]) -> Config:
    """pytest-jupyter's server with jupyter_tasks enabled on this test's database."""
    return Config({
        "ServerApp": {"jpserver_extensions": {"jupyter_tasks": True}},
        "JupyterTasksApp": {
            "db_path": str(db_path),
            "workers": {"default": 2},
            "task_modules": [str(TASKS_MODULE)],
            **tasks_config,
        },
    })


@pytest.fixture
def tasks_app(jp_serverapp: Any, jp_asyncio_loop: Any) -> Any:
    """The ``JupyterTasksApp``, started as ``jupyter server`` starts it after its loop runs."""
    app = jp_serverapp.extension_manager.extension_points["jupyter_tasks"].app
    jp_asyncio_loop.run_until_complete(app._start_jupyter_server_extension(jp_serverapp))
    return app


class Api:
    """JSON helpers over ``jp_fetch`` that never raise on HTTP errors."""

    def __init__(self, fetch: Any) -> None:
        self.fetch = fetch

    async def call(self, method: str, *parts: str, body: Any = None, raw: bytes | None = None,
                   headers: dict[str, str] | None = None,
                   params: dict[str, Any] | None = None) -> Any:
        kwargs: dict[str, Any] = {"method": method, "raise_error": False,
                                  "headers": headers or {}, "params": params or {}}
        if raw is not None:
            kwargs["body"] = raw
        elif body is not None:
            kwargs["body"] = json.dumps(body)
        elif method in ("POST", "PUT", "PATCH"):
            kwargs["body"] = b""
        kwargs["allow_nonstandard_methods"] = True
        response = await self.fetch("api", "tasks", *parts, **kwargs)
        response.json = _decode(response)
        return response

    async def get(self, *parts: str, **kw: Any) -> Any:
        return await self.call("GET", *parts, **kw)

    async def post(self, *parts: str, **kw: Any) -> Any:
        return await self.call("POST", *parts, **kw)

    async def submit(self, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
        response = await self.post(body=body, **kw)
        assert response.code in (200, 202), (response.code, response.json)
        return response.json


def _decode(response: Any) -> Any:
    if not response.body:
        return None
    try:
        return json.loads(response.body)
    except ValueError:
        return None


@pytest.fixture
def api(jp_fetch: Any, tasks_app: Any) -> Api:
    return Api(jp_fetch)


# ---------------------------------------------------------------- subprocesses


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A real ``jupyter server`` on loopback, for tests that need to kill or fuzz it."""

    def __init__(self, popen: subprocess.Popen[bytes], port: int, token: str,
                 log_path: Path) -> None:
        self.popen = popen
        self.port = port
        self.token = token
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{port}"

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"token {self.token}", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            raw = err.read()
            return err.code, json.loads(raw) if raw else None

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                status, _ = self.request("GET", "/api/tasks/stats", timeout=2)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)


@pytest.fixture
def server_factory(tmp_path: Path, db_path: Path):
    """Start real ``jupyter server`` subprocesses; every one is killed at teardown."""
    started: list[ServerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, modules: str | None = None,
              ready: bool = True) -> ServerProcess:
        port = free_port()
        token = os.urandom(8).hex()
        root = tmp_path / "root"
        root.mkdir(exist_ok=True)
        log_path = tmp_path / f"server-{port}.log"
        environ = {**os.environ, "JUPYTER_TASKS_DB": str(db_path),
                   "JUPYTER_TASKS_MODULES": modules or str(TASKS_MODULE),
                   "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter_config"),
                   "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
                   **(env or {})}
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(
                [sys.executable, "-m", "jupyter_server", f"--port={port}", "--port-retries=0",
                 "--ip=127.0.0.1", f"--IdentityProvider.token={token}",
                 "--ServerApp.open_browser=False", f"--ServerApp.root_dir={root}",
                 "--ServerApp.allow_root=True", *args],
                env=environ, stdout=log, stderr=subprocess.STDOUT, cwd=str(tmp_path),
            )
        server = ServerProcess(popen, port, token, log_path)
        started.append(server)
        if ready:
            server.wait_ready()
        return server

    yield start
    for server in started:
        server.kill()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "tasks_config(**settings): JupyterTasksApp settings for this test's server")
