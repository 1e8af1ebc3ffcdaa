"""Cross-process wake-up: a worker process polling once a minute still reacts at once.

A real worker subprocess (``run_worker``, as ``jupyter tasks worker`` runs it) is
started with ``poll_interval=60``; this process writes what it waits for (a new
job, a cancel of its running job, the answer to its question) and waits with a
20 s deadline: shorter than the worker's poll, generous for a loaded machine.
Without a wake-up signal the worker only sees these writes at its next poll.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from jupyter_tasks import TaskManager
from jupyter_tasks.models import Task, TaskStatus
from tests.waiting import eventually

REPO = Path(__file__).resolve().parents[2]
# longer than any deadline below: a reaction inside a deadline came from the wake-up
POLL = 60.0
DEADLINE = 20.0
WORKER = (
    "import asyncio, sys\n"
    "from jupyter_tasks.worker import run_worker\n"
    "asyncio.run(run_worker(sys.argv[1], task_modules=['tests.engine.sample_tasks'],\n"
    "                       concurrency=2, poll_interval=float(sys.argv[2]),\n"
    "                       heartbeat_interval=0.3))\n"
)

pytestmark = pytest.mark.timeout(180)


def start_worker(db_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """A worker process on ``db_path`` that polls every ``POLL`` seconds."""
    log = open(log_path, "wb")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(db_path), str(POLL)], cwd=str(REPO),
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=log, stderr=subprocess.STDOUT)


async def idle_worker(manager: TaskManager, popen: subprocess.Popen[bytes]) -> None:
    """Wait until the worker renewed its heartbeat: its first claim is behind it."""

    async def renewed() -> bool:
        assert popen.poll() is None, "the worker exited"
        return any(w.kind == "worker" and w.heartbeat_at > w.started_at
                   for w in await manager.store.list_workers())

    await eventually(renewed, timeout=90, what="the worker's first heartbeat")


async def reaches(manager: TaskManager, task_id: str, check: Callable[[Task], bool],
                  what: str) -> Task:
    """The task once ``check`` holds, within ``DEADLINE``."""

    async def current() -> Task | None:
        task = await manager.store.require_task(task_id)
        return task if check(task) else None

    return await eventually(current, timeout=DEADLINE, what=what)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TaskManager]:
    """A manager that only writes requests (like the CLI), polling as rarely as the worker."""
    async with TaskManager(tmp_path / "tasks.db", as_worker=False, runs_background=False,
                           make_default=False, poll_interval=POLL) as manager:
        yield manager


@pytest.fixture
def worker_factory(tmp_path: Path) -> AsyncIterator[Callable[[], subprocess.Popen[bytes]]]:
    """Start worker processes; each is stopped (SIGTERM, then SIGKILL) at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def factory() -> subprocess.Popen[bytes]:
        popen = start_worker(tmp_path / "tasks.db", tmp_path / f"worker-{len(started)}.log")
        started.append(popen)
        return popen

    yield factory  # type: ignore[misc]
    for popen in started:
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(timeout=30)


async def test_a_job_submitted_here_starts_in_an_idle_worker_at_once(client, worker_factory):
    await idle_worker(client, worker_factory())
    # twice: however late the worker's first read of the events came, the second job
    # was written after it
    for b in range(2):
        job = await client.enqueue_by_name("add", {"a": 2, "b": b}, label="add")
        done = await reaches(client, job.id, lambda t: t.is_terminal, "the job's end")
        assert done.status == TaskStatus.SUCCEEDED and done.result == 2 + b


async def test_a_cancel_written_here_stops_the_job_running_in_the_worker(
        client, worker_factory, tmp_path: Path):
    marker = tmp_path / "started"
    # queued before the worker starts: its first claim takes it, no wake-up needed
    job = await client.enqueue_by_name("slow_job", {"seconds": 600, "marker": str(marker)},
                                       label="slow")
    popen = worker_factory()
    await eventually(lambda: asyncio.sleep(0, marker.exists()), timeout=90,
                     what="the job's start in the worker")
    await idle_worker(client, popen)
    await client.cancel(job.id)
    done = await reaches(client, job.id, lambda t: t.is_terminal, "the job's stop")
    assert done.status == TaskStatus.CANCELLED


async def test_an_answer_written_here_reaches_the_question_asked_in_the_worker(
        client, worker_factory):
    job = await client.enqueue_by_name("ask", {}, label="ask")
    popen = worker_factory()
    await eventually(lambda: _asked(client, job.id), timeout=90, what="the question")
    await idle_worker(client, popen)
    await client.confirm(job.id, "yes")
    done = await reaches(client, job.id, lambda t: t.is_terminal, "the job's end")
    assert done.status == TaskStatus.SUCCEEDED and done.result == "answered yes"


async def _asked(manager: TaskManager, task_id: str) -> bool:
    task = await manager.store.require_task(task_id)
    return bool(task.confirmation and task.confirmation.get("answer") is None)
