"""Server-tier fixtures: the extension in pytest-jupyter's server, and real subprocess servers.

pytest-jupyter's fixtures (and its autouse loop and cleanup fixtures) are imported here,
into the tiers that use them (server, reliability, jobs), rather than loaded as a plugin
for the whole suite: pytest allows ``pytest_plugins`` only in the root conftest, which
would put them around every test of every tier.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403
from traitlets.config import Config

from tests.launcher import JupyterProcess

TASKS_MODULE = Path(__file__).with_name("server_tasks.py")


@pytest.fixture
async def jp_asyncio_loop() -> asyncio.AbstractEventLoop:
    """Serve pytest-jupyter's server on pytest-asyncio's loop, where the async tests run.

    The root ``asyncio_mode = "auto"`` hands every coroutine test to pytest-asyncio;
    without this the in-process server would sit on a loop nobody runs. An async
    fixture runs on the test's own (function-scoped) loop, so it answers that loop.
    """
    return asyncio.get_running_loop()


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
            # gc.freeze is process-wide: the in-process servers here leave pytest's
            # collector alone (test_gc_freeze.py turns it on)
            "freeze_gc_at_start": False,
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


class ServerProcess(JupyterProcess):
    """A real ``jupyter server`` on loopback, for tests that need to kill or fuzz it."""


@pytest.fixture
def server_factory(tmp_path: Path, db_path: Path):
    """Start real ``jupyter server`` subprocesses; every one is stopped at teardown."""
    started: list[ServerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, modules: str | None = None,
              ready: bool = True) -> ServerProcess:
        server = ServerProcess(tmp_path, db_path=db_path, root_dir=tmp_path / "root",
                               task_modules=modules or str(TASKS_MODULE), args=args,
                               env={"JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter_config"),
                                    **(env or {})})
        server.log_path = tmp_path / f"server-{server.port}.log"
        started.append(server)
        return server.start(ready=ready, timeout=60)

    yield start
    for server in started:
        server.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "tasks_config(**settings): JupyterTasksApp settings for this test's server")
