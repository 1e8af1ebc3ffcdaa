"""A worker still running its work is not reaped: not when its heartbeat is silent on this
host (a job holding the GIL, a stopped process), not when another process's lock kept
its end from being written. Real SQLite files, real processes."""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil
import pytest

from jupyter_tasks import TaskManager
from jupyter_tasks.models import WorkerInfo
from jupyter_tasks.registry import Registry
from tests.waiting import eventually

OLD = 3600.0  # how long ago the silent workers last beat


def worker(worker_id: str, pid: int, host: str, pid_started_at: float | None) -> WorkerInfo:
    now = time.time()
    return WorkerInfo(id=worker_id, kind="worker", pid=pid, host=host,
                      started_at=now - 2 * OLD, heartbeat_at=now - OLD,
                      pid_started_at=pid_started_at, queues=["default"])


def holds(predicate: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """``predicate`` as the awaitable check ``eventually`` takes."""
    async def check() -> bool:
        return predicate()
    return check


def exited_pid() -> tuple[int, float]:
    """A pid (and its start time) whose process has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(child.pid).create_time()
    child.wait(30)
    return child.pid, started


async def test_a_silent_worker_whose_process_lives_here_keeps_its_jobs(tmp_path: Path) -> None:
    # before: a heartbeat silent past the lease was a dead worker wherever it ran, so a
    # job holding the GIL in one C call (or a worker stopped with SIGSTOP) was run again
    # beside the attempt still under way
    host = socket.gethostname()
    me = psutil.Process()
    gone_pid, gone_started = exited_pid()
    workers = {
        "alive-here": worker("alive-here", os.getpid(), host, me.create_time()),
        "gone-here": worker("gone-here", gone_pid, host, gone_started),
        "silent-elsewhere": worker("silent-elsewhere", 4242, "another-host", None),
    }
    async with TaskManager(tmp_path / "tasks.db", queues={}, reaper_interval=3600) as manager:
        jobs = {}
        for worker_id, info in workers.items():
            await manager.store.register_worker(info)
            job = await manager.submit_spec({"command": ["true"]}, mode="job")
            claimed = await manager.store.claim_jobs("default", worker_id, lease_seconds=-1)
            assert [t.id for t in claimed] == [job.id]
            jobs[worker_id] = job.id
        settled = {t.id: t.status for t in await manager.reap_dead_workers()}
        assert settled == {jobs["gone-here"]: "queued", jobs["silent-elsewhere"]: "queued"}
        kept = await manager.store.get_task(jobs["alive-here"])
        assert (kept.status, kept.worker_id) == ("running", "alive-here")
        # once its process is gone, the next round takes its job back
        await manager.store.register_worker(worker("alive-here", gone_pid, host, gone_started))
        again = {t.id: t.status for t in await manager.reap_dead_workers()}
        assert again == {jobs["alive-here"]: "queued"}


async def test_doctor_says_when_a_dead_workers_tasks_still_say_running(
        tmp_path: Path) -> None:
    # before: a restarted kernel's background tasks stayed running (no reaper ran on the
    # database), and doctor listed the dead worker beside "no problem found"
    from jupyter_tasks import dbfile

    gone_pid, gone_started = exited_pid()
    path = tmp_path / "tasks.db"
    async with TaskManager(path, queues={}, reaper_interval=3600) as manager:
        await manager.store.register_worker(
            worker("kernel-gone", gone_pid, socket.gethostname(), gone_started))
        for _ in range(2):
            await manager.submit_spec({"command": ["true"]}, mode="job")
        assert len(await manager.store.claim_jobs("default", "kernel-gone",
                                                  lease_seconds=3600, limit=2)) == 2
    notes = [n for n in dbfile.inspect(path).notes if "kernel-gone" in n]
    assert notes == [f"worker kernel-gone (pid {gone_pid}) is dead and 2 of its tasks still "
                     "say running: the next reaper ends them (a server, a `jupyter tasks "
                     "worker`, or a kernel that loads jupyter_tasks on this database)"], notes


async def test_an_end_held_up_by_another_process_lock_is_written_once_it_is_free(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # before: the end's write gave up after the busy timeout (StoreBusy), the task stayed
    # running with no lease renewed, and this very process's reaper ran the job again
    path = tmp_path / "tasks.db"
    runs: list[float] = []
    may_end = threading.Event()

    def tracked() -> str:
        runs.append(time.time())
        may_end.wait(60)
        return "done"

    registry = Registry()
    registry.register("tracked", tracked, mode="job")
    caplog.set_level(logging.WARNING, logger="jupyter_tasks")
    async with TaskManager(path, registry=registry, queues={"default": 1}, busy_timeout=0.2,
                           heartbeat_interval=0.2, lease_seconds=1.0,
                           reaper_interval=0.2) as manager:
        job = await manager.submit_spec({"name": "tracked"}, max_retries=2)
        await eventually(holds(lambda: len(runs) == 1), what="the job started")
        started = await manager.store.get_task(job.id)
        holder = sqlite3.connect(path, isolation_level=None, timeout=30)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            may_end.set()
            # the end's write met the lock (said so: waiting now, giving up before)
            await eventually(holds(lambda: f"of task {job.id}" in caplog.text),
                             what="the end's write meeting the lock")
            # held past the lease the heartbeat could not renew meanwhile
            await eventually(holds(lambda: time.time() > started.lease_expires_at + 1.0),
                             what="the lease run out", timeout=30)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        done = await manager.wait(job.id, timeout=60)
        assert (done.status, done.result, done.attempts, done.lost_attempts) == \
            ("succeeded", "done", 1, 0), done.error
        assert len(runs) == 1
        # the wait said once when it began and once when the end went in, not every try
        assert caplog.text.count(f"the end of task {job.id} waits for it") == 1
        assert f"the end of task {job.id} is written, after" in caplog.text
