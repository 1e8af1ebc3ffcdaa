"""Durable queue across real processes: SIGKILLed workers, dead processes, the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_tasks import TaskManager
from tests.engine import sample_tasks
from tests.waiting import eventually

SAMPLE_TASKS = str(Path(sample_tasks.__file__).resolve())


@pytest.fixture
def spawn(db_path: Path) -> Iterator:
    """Start processes that are killed at teardown whatever happens."""
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def worker_args(db_path: Path) -> list[str]:
    return ["-m", "jupyter_tasks.cli", "--db", str(db_path), "worker", "--concurrency", "1",
            "--modules", SAMPLE_TASKS]


async def test_sigkilled_worker_job_is_finished_by_another(db_path: Path, spawn, tmp_path):
    marker = tmp_path / "started"
    first = spawn(*worker_args(db_path))
    async with TaskManager(db_path) as m:
        job = await m.submit("slow_job", seconds=1.5, marker=str(marker), mode="job")
        await eventually(_file_has_text(marker), timeout=30, what="job started in worker 1")
        assert int(marker.read_text()) == first.pid
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        marker.unlink()
        second = spawn(*worker_args(db_path))
        done = await m.wait(job.id, timeout=60)
        assert done.status == "succeeded", done.error
        assert done.attempts == 2
        assert int(marker.read_text()) == second.pid
        types = [e.type for e in await m.store.events_after(0, task_id=job.id)]
        assert types.count("task.started") == 2 and "task.retrying" in types


async def test_job_without_lost_attempts_left_is_interrupted(db_path: Path, spawn, tmp_path):
    marker = tmp_path / "started"
    first = spawn(*worker_args(db_path))
    # retries for failures do not matter: a lost worker has its own bound (here none)
    async with TaskManager(db_path, max_lost_attempts=0) as m:
        job = await m.submit("slow_job", seconds=30, marker=str(marker), mode="job",
                             max_retries=5)
        await eventually(_file_has_text(marker), timeout=30, what="job started")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        done = await m.wait(job.id, timeout=20)  # our own reaper settles it
        assert (done.status, done.attempts, done.lost_attempts) == ("interrupted", 1, 0)
        assert done.error["type"] == "WorkerLost"
        assert "lost 1 time, not retried again" in done.error["message"]


async def test_background_task_of_a_killed_process_is_interrupted(db_path: Path, spawn):
    script = textwrap.dedent(f"""
        import asyncio, sys
        import jupyter_tasks as jt
        manager = jt.start_manager({str(db_path)!r})
        async def forever():
            await asyncio.sleep(3600)
        task = manager.run_sync(manager.submit(forever(), label="doomed"))
        print(task.id, flush=True)
        sys.stdin.read() if False else __import__("time").sleep(3600)
    """)
    proc = spawn("-c", script)
    task_id = proc.stdout.readline().strip()
    assert len(task_id) == 32, task_id
    async with TaskManager(db_path) as m:
        assert (await m.get(task_id)).status == "running"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        done = await m.wait(task_id, timeout=20)
        assert done.status == "interrupted"


async def test_a_job_stopping_its_own_forked_children_leaves_the_worker_serving(
        db_path: Path, spawn) -> None:
    # before: a forked child shared the worker's signal wake-up socket and kept its
    # handlers, so the SIGTERM a job (or a pool's terminate()) sent its child stopped
    # the worker itself ("SIGTERM: stopping"), its jobs queued again, while the child
    # ignored the signal and lived on
    worker = spawn(*worker_args(db_path))
    async with TaskManager(db_path) as m:
        forked = await m.submit("fork_and_stop", mode="job")
        done = await m.wait(forked.id, timeout=90)
        assert (done.status, done.result, done.attempts) == (
            "succeeded", "ended by SIGTERM", 1), (done.status, done.result, done.error)
        pooled = await m.submit("pool_squares", n=5, mode="job")
        done = await m.wait(pooled.id, timeout=90)
        assert (done.status, done.result) == ("succeeded", [0, 1, 4, 9, 16]), done.error
        # the same worker, still serving: it ran both, and takes the next
        after = await m.submit("add", a=1, mode="job")
        assert (await m.wait(after.id, timeout=60)).result == 3
        assert worker.poll() is None
        workers = {t.worker_id for t in (await m.store.list_tasks(limit=10))}
        assert len(workers) == 1, workers


async def test_what_a_jobs_forked_child_prints_goes_to_the_workers_output(
        db_path: Path, spawn) -> None:
    # before: the child's copy of the job's log buffer took the line, and nobody read it
    worker = spawn(*worker_args(db_path))
    async with TaskManager(db_path) as m:
        job = await m.submit("fork_prints", mode="job")
        assert (await m.wait(job.id, timeout=90)).result == 0
    worker.send_signal(signal.SIGTERM)
    output, _ = worker.communicate(timeout=60)
    assert "a line from the forked child" in output, output


def _file_has_text(path: Path):
    async def check() -> bool:
        return path.exists() and path.read_text().strip() != ""
    return check


def cli(db_path: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "jupyter_tasks.cli", "--db", str(db_path), *args],
                         capture_output=True, text=True, timeout=120)
    if check:
        assert out.returncode == 0, out.stderr
    return out


async def test_cli_submit_worker_list_show_logs_rerun(db_path: Path, spawn) -> None:
    job_id = cli(db_path, "submit", "--full", "--command", sys.executable, "-c",
                 "print('from cli')").stdout
    job_id = job_id.strip()
    assert len(job_id) == 32
    spawn(*worker_args(db_path))
    async with TaskManager(db_path) as m:
        assert (await m.wait(job_id, timeout=60)).status == "succeeded"
    listing = cli(db_path, "list").stdout
    assert job_id[-10:] in listing and "succeeded" in listing  # the views' short form
    shown = json.loads(cli(db_path, "show", job_id).stdout)
    assert shown["id"] == job_id and shown["spec"]["command"][-1] == "print('from cli')"
    assert cli(db_path, "logs", job_id).stdout == "from cli\n"
    child = cli(db_path, "rerun", "--full", job_id).stdout.strip()
    async with TaskManager(db_path) as m:
        rerun = await m.wait(child, timeout=60)
        assert (rerun.status, rerun.parent_id, rerun.relationship) == (
            "succeeded", job_id, "rerun")
    listed = json.loads(cli(db_path, "list", "--json", "--status", "succeeded").stdout)
    assert {t["id"] for t in listed} == {job_id, child}


async def _create(db_path: Path) -> None:
    async with TaskManager(db_path, make_default=False, runs_background=False):
        pass


def test_cli_refuses_bad_input_clearly(db_path: Path) -> None:
    out = cli(db_path, "submit", "--modules", SAMPLE_TASKS, "--name", "add", "--param", "a=x",
              "--param", "zz=1", check=False)
    assert out.returncode == 2
    assert "a: expected int" in out.stderr and "zz: unexpected parameter" in out.stderr
    out = cli(db_path, "submit", "--name", "no_such_task", check=False)
    assert out.returncode == 2 and "no task registered" in out.stderr
    assert not db_path.exists()  # refused: no new database left behind
    asyncio.run(_create(db_path))
    out = cli(db_path, "show", "0" * 32, check=False)
    assert out.returncode == 2 and "no task with id" in out.stderr
    assert json.loads(cli(db_path, "list", "--json").stdout) == []


async def test_a_lost_attempts_temp_entry_that_cannot_go_does_not_stop_the_reaper(
        db_path: Path, spawn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # an entry of the temp folder named like what the attempt kept there, which this
    # account cannot remove (another account's file in a shared /tmp: the name is in the
    # kernel's command line, which every local account sees). Its unlink raised out of
    # the reaper's every pass: no lost task of this host was settled any more
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))  # the worker's temp folder
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # and our reaper's
    marker = tmp_path / "started"
    worker = spawn(*worker_args(db_path))
    async with TaskManager(db_path, max_lost_attempts=0) as m:
        job = await m.submit_spec({"code": f"import os, time\nopen({str(marker)!r}, 'w')"
                                           ".write(str(os.getpid()))\ntime.sleep(60)"})
        await eventually(_file_has_text(marker), timeout=30, what="the job running")
        planted = temp / f"jupyter-tasks-code-{job.id}-1-planted"
        planted.write_text("not ours")
        with _unremovable(planted):
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
            done = await m.wait(job.id, timeout=30)  # our own reaper settles it
            assert (done.status, done.lost_attempts) == ("interrupted", 0), done.error
            assert planted.exists()
        assert [p.name for p in temp.iterdir()] == [planted.name]  # its own folder went


@contextlib.contextmanager
def _unremovable(path: Path) -> Iterator[None]:
    """``path`` cannot be removed meanwhile: immutable for root, its folder read-only else."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
            pytest.skip("chattr +i is not allowed here")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        return
    path.parent.chmod(0o555)
    try:
        yield
    finally:
        path.parent.chmod(0o755)
