"""Retries that fit the kind: a failure is retried only when asked, a lost worker always (bounded).

Each job appends a line to a file every time its work runs, so the tests count
runs (side effects), not just the ``attempts`` column.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from jupyter_tasks import TaskManager
from jupyter_tasks.exceptions import RunOutOfReach
from jupyter_tasks.models import MAX_LOST_ATTEMPTS, WORKER_LOST
from jupyter_tasks.registry import Registry
from jupyter_tasks.store import Store
from tests.engine import sample_tasks  # noqa: F401  (registers the sample tasks)
from tests.jobs.conftest import write_notebook

GHOST = "process-ghost-1-dead"  # a worker that claimed a job and vanished


@pytest.fixture
async def manager(db_path: Path):
    async with TaskManager(db_path, queues={"default": 1}, retry_base_delay=0.05,
                           flush_interval=0.05) as m:
        yield m


def failing_spec(kind: str, tmp_path: Path) -> dict[str, Any]:
    """Work of ``kind`` that appends a line to ``runs.txt`` and then fails."""
    runs = str(tmp_path / "runs.txt")
    source = f"open({runs!r}, 'a').write('run\\n')\nraise SystemExit(1)"
    if kind == "command":
        return {"command": [sys.executable, "-c", source]}
    if kind == "code":
        return {"code": source}
    write_notebook(tmp_path / "fails.ipynb", [
        f"open({runs!r}, 'a').write('run\\n')", "raise ValueError('the cell failed')"])
    return {"notebook": "fails.ipynb", "root_dir": str(tmp_path)}


def runs(tmp_path: Path) -> int:
    path = tmp_path / "runs.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


async def markers(m: TaskManager, task_id: str) -> list[str]:
    return [e.text for e in await m.store.get_logs(task_id) if e.text.startswith("— attempt ")]


@pytest.mark.parametrize("kind", ["command", "code", "notebook"])
async def test_a_failing_job_of_this_kind_runs_once_by_default(
        manager: TaskManager, tmp_path: Path, kind: str) -> None:
    job = await manager.submit_spec(failing_spec(kind, tmp_path))
    assert job.max_retries == 0
    done = await manager.wait(job.id, timeout=120)
    assert (done.status, done.attempts) == ("failed", 1), done.error
    assert runs(tmp_path) == 1  # its side effects happened once
    assert await markers(manager, job.id) == []
    types = [e.type for e in await manager.store.events_after(0, task_id=job.id)]
    assert "task.retrying" not in types


@pytest.mark.parametrize("kind", ["command", "notebook"])
async def test_asked_for_retries_a_failing_job_runs_three_times_with_markers(
        manager: TaskManager, tmp_path: Path, kind: str) -> None:
    job = await manager.submit_spec(failing_spec(kind, tmp_path), max_retries=2)
    done = await manager.wait(job.id, timeout=240)
    assert (done.status, done.attempts, done.lost_attempts) == ("failed", 3, 0), done.error
    assert runs(tmp_path) == 3
    found = await markers(manager, job.id)
    assert [m.split(":")[0] for m in found] == ["— attempt 2 of 3", "— attempt 3 of 3"], found
    error_type = done.error["type"]
    assert all(m.startswith(f"— attempt {n} of 3: {error_type}: ") and m.endswith(" —\n")
               for n, m in zip((2, 3), found, strict=True)), found
    assert done.retry_reason is not None and done.retry_reason.startswith(error_type)
    shown = done.to_json()
    assert (shown["attempts"], shown["max_attempts"]) == (3, 3)


async def test_function_jobs_keep_two_retries_and_other_modes_none(
        manager: TaskManager, tmp_path: Path) -> None:
    job = await manager.submit("flaky", counter=str(tmp_path / "calls"), fail_times=2,
                               mode="job")
    assert job.max_retries == 2
    done = await manager.wait(job.id, timeout=30)
    assert (done.status, done.attempts, done.result) == ("succeeded", 3, "ok after 3")
    assert (done.to_json()["max_attempts"], done.retry_reason) == \
        (3, "RuntimeError: flaky failure 2")
    background = await manager.submit("flaky", counter=str(tmp_path / "bg"), fail_times=1,
                                      mode="background")
    assert background.max_retries == 0
    assert (await manager.wait(background.id, timeout=30)).status == "failed"
    # a command submitted as a background task (the Python default for argv) runs once too
    command = await manager.submit([sys.executable, "-c", "raise SystemExit(3)"])
    assert (command.mode, command.max_retries) == ("background", 0)


async def test_an_explicit_max_retries_wins_for_every_kind(
        manager: TaskManager, tmp_path: Path) -> None:
    command = await manager.submit_spec(failing_spec("command", tmp_path), max_retries=5)
    function = await manager.submit("add", a=1, mode="job", max_retries=0)
    assert (command.max_retries, function.max_retries) == (5, 0)
    await manager.cancel(command.id)


async def test_an_attempt_marker_starts_its_own_line_after_output_cut_mid_line(
        manager: TaskManager) -> None:
    # before: "partial line without newline— attempt 2 of 2: …" in one line, which the
    # log view drew as text (its rule matches a whole line) and the CLI printed glued
    source = ("import sys; sys.stdout.write('partial line without newline'); "
              "sys.stdout.flush(); sys.exit(1)")
    job = await manager.submit_spec({"command": [sys.executable, "-c", source]},
                                    max_retries=1)
    done = await manager.wait(job.id, timeout=120)
    assert (done.status, done.attempts) == ("failed", 2), done.error
    text = "".join(e.text for e in await manager.store.get_logs(job.id))
    assert "partial line without newline\n— attempt 2 of 2: " in text, text
    # after a line that ended, no blank line comes before it
    assert "\n\n— attempt" not in text, text


async def claim_as_ghost(store: Store, task_id: str) -> None:
    """Claim the job as a worker whose lease has already run out (it died holding it)."""
    claimed = await store.claim_jobs("default", GHOST, lease_seconds=-1)
    assert [t.id for t in claimed] == [task_id]


async def test_a_lost_worker_requeues_the_job_without_spending_its_retries(
        db_path: Path, tmp_path: Path) -> None:
    async with TaskManager(db_path, queues={}, reaper_interval=3600) as idle:
        job = await idle.submit_spec(failing_spec("command", tmp_path))
        await claim_as_ghost(idle.store, job.id)
        settled = await idle.store.reap([GHOST])
    assert [(t.id, t.status) for t in settled] == [(job.id, "queued")]
    lost = settled[0]
    assert (lost.max_retries, lost.lost_attempts, lost.retry_reason) == (0, 1, WORKER_LOST)
    assert lost.error["type"] == "WorkerLost"
    async with TaskManager(db_path, queues={"default": 1}, retry_base_delay=0.05,
                           flush_interval=0.05) as m:
        done = await m.wait(job.id, timeout=60)
        # its own failure then ends it: the loss did not count as one of its (zero) retries
        assert (done.status, done.attempts, done.lost_attempts) == ("failed", 2, 1), done.error
        assert runs(tmp_path) == 1
        assert await markers(m, job.id) == ["— attempt 2 of 2: worker lost —\n"]
        assert done.to_json()["retry_reason"] == WORKER_LOST


async def test_a_lost_worker_job_finishes_when_its_work_succeeds(
        db_path: Path, tmp_path: Path) -> None:
    async with TaskManager(db_path, queues={}, reaper_interval=3600) as idle:
        job = await idle.submit("add", a=2, mode="job", max_retries=1)
        await claim_as_ghost(idle.store, job.id)
    # the worker's own reaper finds the ghost's lease run out when it starts
    async with TaskManager(db_path, queues={"default": 1}, flush_interval=0.05) as m:
        done = await m.wait(job.id, timeout=60)
        assert (done.status, done.result, done.attempts) == ("succeeded", 4, 2)
        assert await markers(m, job.id) == ["— attempt 2 of 3: worker lost —\n"]


async def test_a_job_whose_worker_keeps_being_lost_ends_interrupted_at_the_bound(
        db_path: Path, tmp_path: Path) -> None:
    async with TaskManager(db_path, queues={}, reaper_interval=3600) as idle:
        # many retries asked: the bound on losses is its own, not max_retries
        job = await idle.submit_spec(failing_spec("command", tmp_path), max_retries=10)
        for n in range(1, MAX_LOST_ATTEMPTS + 1):
            await claim_as_ghost(idle.store, job.id)
            (again,) = await idle.store.reap([GHOST])
            assert (again.status, again.lost_attempts, again.attempts) == ("queued", n, n)
        await claim_as_ghost(idle.store, job.id)
        (ended,) = await idle.store.reap([GHOST])
    assert (ended.status, ended.attempts) == ("interrupted", MAX_LOST_ATTEMPTS + 1)
    assert ended.error["type"] == "WorkerLost"
    assert f"lost {MAX_LOST_ATTEMPTS + 1} times" in ended.error["message"]
    assert runs(tmp_path) == 0  # the ghost never ran it


async def test_the_bound_on_lost_workers_is_the_managers_setting(db_path: Path,
                                                                 tmp_path: Path) -> None:
    async with TaskManager(db_path, queues={}, reaper_interval=3600,
                           max_lost_attempts=0) as m:
        job = await m.submit("add", a=1, mode="job")
        await claim_as_ghost(m.store, job.id)
        (ended,) = await m.reap_dead_workers()
    assert (ended.id, ended.status, ended.lost_attempts) == (job.id, "interrupted", 0)


async def test_a_rerun_keeps_the_parents_retry_policy(manager: TaskManager,
                                                      tmp_path: Path) -> None:
    job = await manager.submit_spec(failing_spec("command", tmp_path))
    await manager.wait(job.id, timeout=60)
    rerun = await manager.rerun(job.id)
    assert (rerun.max_retries, rerun.lost_attempts, rerun.retry_reason) == (0, 0, None)
    done = await manager.wait(rerun.id, timeout=60)
    assert (done.status, done.attempts) == ("failed", 1)
    assert runs(tmp_path) == 2


async def test_the_event_snapshot_shows_the_attempt_like_the_task_json(
        db_path: Path, tmp_path: Path) -> None:
    async with TaskManager(db_path, queues={}, reaper_interval=3600) as idle:
        job = await idle.submit_spec(failing_spec("command", tmp_path))
        await claim_as_ghost(idle.store, job.id)
        await idle.store.reap([GHOST], now=time.time())
        events = await idle.store.events_after(0, task_id=job.id)
        row = await idle.get(job.id)
    retrying = [e for e in events if e.type == "task.retrying"][-1].task
    assert retrying is not None
    shown = row.to_json()
    for key in ("attempts", "max_retries", "lost_attempts", "max_attempts", "retry_reason"):
        assert retrying[key] == shown[key], key
    assert (shown["lost_attempts"], shown["max_attempts"], shown["retry_reason"]) == \
        (1, 2, WORKER_LOST)


async def test_a_job_queued_with_parameters_its_task_refuses_fails_once(
        manager: TaskManager) -> None:
    # before: queued by a process that did not have the task (`jupyter tasks submit
    # --name` without its module), the job was called with its parameters unchecked and
    # failed each of its three attempts with the same TypeError
    task = await manager.enqueue_by_name("add", {"a": 1, "bee": 2}, label="add")
    done = await manager.wait(task.id, timeout=60)
    assert (done.status, done.attempts) == ("failed", 1), done.error
    assert done.error["type"] == "InvalidParameters"
    assert "bee: unexpected parameter" in done.error["message"]


def out_of_reach_registry(started: asyncio.Event) -> Registry:
    """``lost_run``: a job whose run goes out of reach (as a Dask scheduler's loss leaves it),
    at once or when a stop reaches it."""
    tasks = Registry()

    @tasks.task("lost_run", mode="job")
    async def lost_run(wait: bool = False) -> None:
        started.set()
        try:
            if wait:
                await asyncio.Event().wait()
        finally:
            raise RunOutOfReach("the run went out of reach on host h; it may still run")

    return tasks


async def test_a_run_out_of_reach_ends_interrupted_and_is_not_run_again(db_path: Path) -> None:
    # a retry, or a job handed back by a stopping worker, could run it beside its run
    started = asyncio.Event()
    manager = TaskManager(db_path, registry=out_of_reach_registry(started),
                          queues={"default": 1}, retry_base_delay=0.05, make_default=False)
    await manager.start()
    try:
        job = await manager.submit("lost_run", mode="job", max_retries=2)
        done = await manager.wait(job.id, timeout=60)
        assert (done.status, done.attempts, done.lost_attempts) == ("interrupted", 1, 0)
        assert (done.error["type"], done.error["message"]) == (
            "RunOutOfReach", "the run went out of reach on host h; it may still run")
        started.clear()
        waiting = await manager.submit("lost_run", wait=True, mode="job", max_retries=2)
        await asyncio.wait_for(started.wait(), 60)
    finally:
        await asyncio.wait_for(manager.stop(), 60)
    async with await Store.open(db_path) as store:
        stopped = await store.get_task(waiting.id)
    assert stopped is not None and (stopped.status, stopped.attempts) == ("interrupted", 1)
