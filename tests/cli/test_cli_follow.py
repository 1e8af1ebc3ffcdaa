"""``run --wait`` and ``logs --follow`` print every line a job wrote, the last ones too."""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from jupyter_tasks import TaskManager, dbfile
from jupyter_tasks.cli import _cmd_logs, _follow
from jupyter_tasks.models import EventType, TaskStatus
from jupyter_tasks.store import Store
from tests.waiting import eventually_sync


async def end_with_a_last_line(m: TaskManager, task_id: str) -> None:
    """What a runner does as a job ends: its last output, then the final state."""
    await m.store.append_logs(task_id, [(time.time(), "stdout", "the last line\n")])
    await m.store.transition(task_id, {"status": TaskStatus.SUCCEEDED.value,
                                       "finished_at": time.time()},
                             EventType.SUCCEEDED, when_status=(TaskStatus.QUEUED.value,))


def ends_after_the_first_log_read(store: Store, m: TaskManager, task_id: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The job writes its last line and ends right after the follower's first read of
    its log through ``store``: between that read and the follower's look at its state."""
    get_logs = store.get_logs
    reads = 0

    async def racing(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        entries = await get_logs(*args, **kwargs)
        reads += 1
        if reads == 1:
            await end_with_a_last_line(m, task_id)
        return entries

    monkeypatch.setattr(store, "get_logs", racing)


async def test_run_wait_prints_a_line_written_just_before_the_job_ended(
        db_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    async with TaskManager(db_path, queues={}, make_default=False) as m:
        task = await m.submit_spec({"command": ["true"]}, mode="job")
        ends_after_the_first_log_read(m.store, m, task.id, monkeypatch)
        ended = await _follow(m, task.id)
    assert ended.status == TaskStatus.SUCCEEDED.value
    assert capsys.readouterr().out == "the last line\n"


async def test_logs_follow_prints_a_line_written_just_before_the_job_ended(
        db_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    async with TaskManager(db_path, queues={}, make_default=False) as m:
        task = await m.submit_spec({"command": ["true"]}, mode="job")
        opened = Store.open

        async def open_and_race(*args: Any, **kwargs: Any) -> Store:
            store = await opened(*args, **kwargs)
            ends_after_the_first_log_read(store, m, task.id, monkeypatch)
            return store

        monkeypatch.setattr(Store, "open", open_and_race)
        args = argparse.Namespace(db=str(db_path), id=task.id, follow=True, json=False)
        assert await _cmd_logs(args) == 0
    assert capsys.readouterr().out == "the last line\n"


def cli_on(db: Path, cwd: Path) -> Callable[..., subprocess.Popen[bytes]]:
    """A starter of ``jupyter tasks ARGS`` on ``db`` in ``cwd``, its output piped, with no
    task modules of the shell's."""
    env = {**os.environ, "JUPYTER_TASKS_DB": str(db)}
    env.pop("JUPYTER_TASKS_MODULES", None)

    def cli(*args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "jupyter_tasks.cli", *args], env=env,
                                cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    return cli


def test_a_wait_or_a_follow_ends_saying_why_once_the_database_file_is_deleted(
        tmp_path: Path) -> None:
    # before: `logs -f` and `submit --wait` waited silently for good (until killed); and
    # a task looked up just as the file went printed sqlite's "disk I/O error" traceback
    db = tmp_path / "tasks.db"
    cli = cli_on(db, tmp_path)

    submitted = cli("submit", "--command", "true", "--queue", "nobody")
    task_id = submitted.communicate(timeout=120)[0].decode().strip()
    assert submitted.returncode == 0 and task_id, task_id
    follower = cli("logs", "-f", task_id)
    waiter = cli("submit", "--wait", "--command", "true", "--queue", "nobody")
    said = b""

    def waiting() -> bool:  # its store is open once it says it waits (a probe comes first)
        nonlocal said
        assert waiter.stderr is not None
        while select.select([waiter.stderr], [], [], 0)[0]:
            chunk = os.read(waiter.stderr.fileno(), 65536)
            if not chunk:
                break
            said += chunk
        return b"waiting for it" in said

    try:
        # the follower opens the file read-only: once it holds it, it follows
        eventually_sync(lambda: str(db) in [
            f.path for f in psutil.Process(follower.pid).open_files()],
            timeout=60, what="the follower's database open")
        eventually_sync(waiting, timeout=60, what="the waiter waiting")
        for path in (db, *dbfile.sidecars(db)):
            path.unlink(missing_ok=True)
        for process, before in ((follower, b""), (waiter, said)):
            err = (before + process.communicate(timeout=60)[1]).decode()
            assert process.returncode == 2, (process.args, err)
            assert "Traceback" not in err, err
            # (the follower: or, deleted while it was still opening, none found there)
            assert any(words in err for words in (
                "was deleted or moved while this process was using it",
                "no database at")), err
    finally:
        for process in (follower, waiter):
            if process.poll() is None:
                process.kill()
                process.wait(10)


@contextlib.contextmanager
def dbfile_connection(db: Path) -> Any:
    """A plain read of the database, as a look from outside."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        yield conn
    finally:
        conn.close()


def test_a_wait_or_a_follow_says_when_the_worker_running_the_job_is_gone(
        tmp_path: Path) -> None:
    # before: after the only worker was killed (-9), `run --wait` still said "queued;
    # waiting" and `logs -f` printed nothing, for good, while `doctor` saw it dead
    db = tmp_path / "tasks.db"
    cli = cli_on(db, tmp_path)

    import nbformat

    notebook = tmp_path / "slow.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import time\ntime.sleep(300)")]), notebook)
    worker = cli("worker", "--concurrency", "2")
    waiter = cli("submit", "--wait", "--command", "sleep", "300")
    runner = cli("run", "--wait", notebook.name)
    family: list[psutil.Process] = []
    follower = None
    said: dict[int, bytes] = {}

    def heard(process: subprocess.Popen[bytes], words: bytes) -> bool:
        assert process.stderr is not None
        while select.select([process.stderr], [], [], 0)[0]:
            chunk = os.read(process.stderr.fileno(), 65536)
            if not chunk:
                break
            said[id(process)] = said.get(id(process), b"") + chunk
        return words in said.get(id(process), b"")

    def running_tasks() -> list[str] | None:
        try:
            with dbfile_connection(db) as conn:
                rows = dict(conn.execute("SELECT kind, id FROM tasks WHERE status = 'running'"
                                         ).fetchall())
        except sqlite3.OperationalError:  # not made yet, or its tables not yet
            return None
        waiting = all(heard(p, b"waiting for it") for p in (waiter, runner))
        assert runner.poll() is None, said.get(id(runner))
        return [rows["subprocess"]] if waiting and "notebook" in rows \
            and "subprocess" in rows else None

    try:
        (task_id,) = eventually_sync(running_tasks, timeout=180, what="both jobs running")
        follower = cli("logs", "-f", task_id)
        eventually_sync(lambda: str(db) in [
            f.path for f in psutil.Process(follower.pid).open_files()],
            timeout=60, what="the follower's database open")
        family = psutil.Process(worker.pid).children(recursive=True)
        worker.kill()
        worker.wait(30)
        for process in (waiter, runner, follower):
            eventually_sync(lambda p=process: heard(p, b"is gone"), timeout=60,
                            what="a note that its worker is gone")
            note = said[id(process)].decode()
            assert "jupyter tasks worker" in note and "Traceback" not in note, note
            assert process.poll() is None  # still waiting: a worker may come and run it
    finally:
        for process in (worker, waiter, runner, *([follower] if follower else [])):
            if process.poll() is None:
                process.kill()
                process.wait(10)
        for child in family:
            with contextlib.suppress(psutil.Error):
                child.kill()
