"""Stopping a real ``jupyter tasks worker`` mid-job with a signal: its job goes back, unspent.

A worker in a terminal is stopped by Ctrl-C (SIGINT), by a service manager
(SIGTERM), and by the terminal itself closing (SIGHUP: an SSH session that ended).
Each hands its running job back to the queue with no attempt spent; a worker
started under ``nohup`` (SIGHUP ignored) outlives its terminal.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.waiting import eventually_sync

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 60.0
MODULES = "tests.engine.sample_tasks"

pytestmark = pytest.mark.timeout(300)


def env_for(db_path: Path, tmp_path: Path) -> dict[str, str]:
    """The worker's environment: this checkout's package and task modules, this database."""
    environ = dict(os.environ)
    environ.pop("JUPYTER_TASKS_MODULES", None)
    environ.update(PYTHONPATH=str(REPO), JUPYTER_TASKS_DB=str(db_path),
                   JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
                   JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    return environ


def submit_slow_job(env: dict[str, str], marker: Path) -> None:
    """Queue a job that writes ``marker`` once it runs, then runs for ten minutes."""
    done = subprocess.run(
        ["jupyter", "tasks", "submit", "--modules", MODULES, "--name", "slow_job",
         "--param", "seconds=600", "--param", f"marker={marker}"],
        env=env, capture_output=True, text=True, timeout=DEADLINE, cwd=REPO)
    assert done.returncode == 0, done.stderr


def start_worker(env: dict[str, str], terminal: Path,
                 preexec: Callable[[], None] | None = None) -> subprocess.Popen[bytes]:
    """``jupyter tasks worker`` serving the sample tasks, its terminal in ``terminal``."""
    with terminal.open("wb") as out:
        return subprocess.Popen(["jupyter", "tasks", "worker", "--modules", MODULES], env=env,
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=preexec)


def job_rows(db_path: Path) -> list[tuple[str, int, int]]:
    """(status, attempts, lost_attempts) of each task, oldest first."""
    with sqlite3.connect(db_path) as conn:
        return conn.execute(
            "SELECT status, attempts, lost_attempts FROM tasks ORDER BY created_at").fetchall()


def stop(worker: subprocess.Popen[bytes]) -> None:
    """End a worker the test left running."""
    if worker.poll() is None:
        worker.kill()
        worker.wait(DEADLINE)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=lambda sig: sig.name)
def test_a_signal_mid_job_hands_the_job_back(sig: signal.Signals, tmp_path: Path) -> None:
    # before, for SIGHUP: the worker died at once (exit -1), its job left `running` until
    # some reaper found it, then run again as "worker lost" (three closed terminals and
    # the job ended `interrupted`)
    db_path = tmp_path / "tasks.db"
    env = env_for(db_path, tmp_path)
    marker = tmp_path / "started"
    submit_slow_job(env, marker)
    worker = start_worker(env, tmp_path / "worker.out")
    try:
        eventually_sync(marker.exists, timeout=DEADLINE, what="the job running")
        worker.send_signal(sig)
        returncode = worker.wait(DEADLINE)
    finally:
        stop(worker)
    assert returncode == 0, (returncode, (tmp_path / "worker.out").read_text())
    assert job_rows(db_path) == [("queued", 0, 0)]


def test_a_worker_started_under_nohup_outlives_its_terminal(tmp_path: Path) -> None:
    db_path = tmp_path / "tasks.db"
    env = env_for(db_path, tmp_path)
    first, second = tmp_path / "first", tmp_path / "second"
    submit_slow_job(env, first)
    worker = start_worker(env, tmp_path / "worker.out",
                          preexec=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    try:
        eventually_sync(first.exists, timeout=DEADLINE, what="the first job running")
        worker.send_signal(signal.SIGHUP)
        # still serving after the hangup: it takes and runs the next job
        submit_slow_job(env, second)
        eventually_sync(second.exists, timeout=DEADLINE, what="the second job running")
        assert worker.poll() is None
        worker.send_signal(signal.SIGTERM)
        returncode = worker.wait(DEADLINE)
    finally:
        stop(worker)
    assert returncode == 0, (returncode, (tmp_path / "worker.out").read_text())
    assert job_rows(db_path) == [("queued", 0, 0), ("queued", 0, 0)]


def test_a_second_ctrl_c_stops_a_worker_whose_stop_waits_for_the_database(
        tmp_path: Path) -> None:
    # before: with another process holding the write lock (a stuck `sqlite3` shell, a
    # backup), the worker's hand-back waited for it as long as it was held, and a second
    # Ctrl-C did nothing: only kill -9 stopped it, with nothing said on its terminal
    db_path = tmp_path / "tasks.db"
    env = env_for(db_path, tmp_path)
    marker = tmp_path / "started"
    terminal = tmp_path / "worker.out"
    submit_slow_job(env, marker)
    worker = start_worker(env, terminal)
    holder = sqlite3.connect(db_path, isolation_level=None)
    try:
        eventually_sync(marker.exists, timeout=DEADLINE, what="the job running")
        holder.execute("BEGIN IMMEDIATE")
        worker.send_signal(signal.SIGINT)
        eventually_sync(lambda: "again to stop at once" in terminal.read_text(),
                        timeout=DEADLINE, what="the worker saying it stops")
        worker.send_signal(signal.SIGINT)
        returncode = worker.wait(DEADLINE)
    finally:
        holder.close()
        stop(worker)
    said = terminal.read_text()
    assert returncode == 128 + signal.SIGINT, (returncode, said)
    assert "stopping at once" in said, said
    # left as a crash leaves it: the next worker's reaper finds it and runs it again
    assert job_rows(db_path) == [("running", 1, 0)]
    marker.unlink()
    worker = start_worker(env, tmp_path / "next.out")
    try:
        eventually_sync(marker.exists, timeout=DEADLINE, what="the job run again")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(DEADLINE)
        stop(worker)
    assert job_rows(db_path) == [("queued", 1, 1)]


PRINTER = '''
import os
import time
from pathlib import Path

from jupyter_tasks import task


@task("printer", mode="job")
def printer(marks: str) -> str:
    print("first line", flush=True)
    (Path(marks) / str(os.getpid())).write_text("")
    end = time.monotonic() + 600
    while time.monotonic() < end:
        time.sleep(0.05)
    return "done"
'''


def test_the_log_says_where_a_handed_back_job_began_again(tmp_path: Path) -> None:
    # before: the run after a hand-back (still attempt 1: none was spent) wrote its
    # lines right after the stopped run's, "first line" twice and nothing between
    db_path = tmp_path / "tasks.db"
    env = env_for(db_path, tmp_path)
    module = tmp_path / "printer_tasks.py"
    module.write_text(PRINTER)
    marks = tmp_path / "marks"
    marks.mkdir()
    submitted = subprocess.run(
        ["jupyter", "tasks", "submit", "--full", "--modules", str(module), "--name", "printer",
         "--param", f"marks={marks}"],
        env=env, capture_output=True, text=True, timeout=DEADLINE, cwd=REPO)
    assert submitted.returncode == 0, submitted.stderr
    task_id = submitted.stdout.strip()
    for runs in (1, 2):  # a worker stopped mid-job, then the next one
        with (tmp_path / f"worker-{runs}.out").open("wb") as terminal:
            worker = subprocess.Popen(["jupyter", "tasks", "worker", "--modules", str(module)],
                                      env=env, cwd=REPO, stdout=terminal,
                                      stderr=subprocess.STDOUT)
        try:
            eventually_sync(lambda runs=runs: len(list(marks.iterdir())) == runs,
                            timeout=DEADLINE, what=f"run {runs} of the job")
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(DEADLINE) == 0
        finally:
            stop(worker)
    logs = subprocess.run(["jupyter", "tasks", "logs", task_id], env=env, capture_output=True,
                          text=True, timeout=DEADLINE, cwd=REPO)
    lines = logs.stdout.splitlines()
    assert lines == ["first line", "— attempt 1 of 3: worker stopped —", "first line"], lines
