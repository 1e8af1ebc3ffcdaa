"""Dashboard fixtures: a real ``jupyter server`` subprocess, and a database with 100,000 tasks."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.launcher import JupyterProcess

TASKS_MODULE = Path(__file__).with_name("dash_tasks.py")


class Server(JupyterProcess):
    """A ``jupyter server`` on loopback with a token, the extension and the test tasks.

    ``start()`` again after ``kill()`` restarts it on the same port, token and database.
    """

    def __init__(self, root: Path, db: Path, port: int | None = None) -> None:
        super().__init__(root, db_path=db, port=port, root_dir=root / "work",
                         task_modules=TASKS_MODULE,
                         args=["--JupyterTasksApp.workers={'default': 3}"])
        self.db = db
        self.log_path = root / f"server-{self.port}.log"
        # the dashboard's clients take the server's URL with its trailing slash
        self.url += "/"

    def start(self, *, ready: bool = True, timeout: float = 60) -> Server:
        """Start (or restart) and wait until the tasks API answers."""
        super().start(ready=ready, timeout=timeout)
        return self


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """One real server per test module (start-up costs seconds); stopped at teardown."""
    root = tmp_path_factory.mktemp("dash-server")
    srv = Server(root, root / "tasks.db").start()
    yield srv
    srv.stop()


async def until(check: Callable[[], Any], pilot: Any = None, timeout: float = 60.0,
                what: str = "condition") -> Any:
    """Let the app run (``pilot.pause``) until ``check()`` is truthy; fail after ``timeout``."""
    # a generous deadline, not a speed bound: 20 s once ran out on a loaded 2-core machine
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


@contextlib.asynccontextmanager
async def beside_a_writer(db: Path, size: tuple[int, int]) -> AsyncIterator[tuple[Any, Any, Any]]:
    """(app, writer, pilot): a database-mode dashboard started beside a manager writing to
    ``db`` (the writer first: the dashboard opens an existing database, never creates one)."""
    from jupyter_tasks_dashboard.app import TasksDashboard
    from jupyter_tasks_dashboard.sources import DatabaseSource

    from jupyter_tasks.manager import TaskManager

    app = TasksDashboard(DatabaseSource(db))
    async with TaskManager(db, worker_kind="test", runs_background=False,
                           make_default=False) as writer, app.run_test(size=size) as pilot:
        await until(lambda: app.ready and app.page_loads, pilot, what="started")
        yield app, writer, pilot


async def build_history(path: Path, count: int, batch: int = 20_000) -> float:
    """Insert ``count`` tasks (mostly finished, the 3 newest running) quickly; returns seconds.

    Through ``Store.insert_task_rows`` (no per-task event: this is history), in
    batches of ``batch`` rows, one transaction each.
    """
    from jupyter_tasks.models import new_task_id
    from jupyter_tasks.store import Store

    t0 = time.perf_counter()
    now = time.time() - count
    statuses = ("succeeded", "succeeded", "succeeded", "failed", "cancelled")

    def row(i: int) -> dict[str, Any]:
        status = "running" if i >= count - 3 else statuses[i % len(statuses)]
        created = now + i
        return dict(
            id=new_task_id(), kind="function", mode="job", status=status, name=f"job_{i % 7}",
            label=f"history {i}", params={"i": i}, queue=("default", "gpu")[i % 2],
            priority=0, owner=("ana", "bo")[i % 2], attempts=1, max_retries=0,
            origin={"type": "kernel", "notebook": f"nb/{i % 13}.ipynb"},
            progress={"current": i % 100, "total": 100}, cancel_requested=0,
            error={"type": "ValueError", "message": f"bad {i}", "traceback": "tb"}
            if status == "failed" else None,
            created_at=created, started_at=created + 0.1,
            finished_at=None if status == "running" else created + 0.6, updated_at=created + 0.6,
        )

    store = await Store.open(path)
    try:
        for start in range(0, count, batch):
            await store.insert_task_rows(row(i) for i in range(start, min(count, start + batch)))
    finally:
        await store.close()
    return time.perf_counter() - t0
