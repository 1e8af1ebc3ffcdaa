"""Exactly-once completion: a job whose process ended before its worker died is not run again.

The window is made deterministic: the job writes ``start``, waits for a ``go``
file the test creates, writes ``end`` and exits. The test freezes the worker
with SIGSTOP before creating ``go``, waits until the job's process has exited
(the frozen worker cannot have written the end), then SIGKILLs the worker and
starts another. The server's reaper must finish the job from the exit its
process group recorded, not put it back in the queue.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.reliability.test_single_run import _kill, _start_worker
from tests.waiting import eventually_sync

pytestmark = pytest.mark.slow

JOB = textwrap.dedent('''
    import os, sys, time
    marks, token, code = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ballast = b"x" * (64 << 20)  # resident: the peak its shim records must show it
    log = os.path.join(marks, token + ".log")
    with open(log, "a") as f:
        f.write(f"start {os.getpid()}\\n")
    while not os.path.exists(os.path.join(marks, token + ".go")):
        time.sleep(0.01)  # the job waits for the test to let it end
    with open(log, "a") as f:
        f.write(f"end {os.getpid()}\\n")
    if len(sys.argv) > 4:  # (with no reader any more, this would fail: EPIPE)
        print("done", flush=True)
    sys.exit(code)
''')


def _lines(marks: Path, token: str, kind: str) -> list[str]:
    path = marks / f"{token}.log"
    text = path.read_text() if path.exists() else ""
    return [line for line in text.splitlines() if line.startswith(kind + " ")]


def _ended(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _marked(marks: Path, keep: set[int]) -> list[str]:
    """Live processes started for the job (the server and workers in ``keep`` aside)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        if proc.pid in keep or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            if str(marks) in cmdline or proc.environ().get("EXACTLY_ONCE_MARK") == str(marks):
                found.append(f"{proc.pid} {cmdline[:200]}")
        except psutil.Error:
            continue
    return found


@pytest.mark.parametrize("kind,code", [("command", 0), ("code", 0), ("command", 3)])
def test_worker_lost_after_the_process_exited_does_not_run_it_again(
        server_factory, tmp_path: Path, db_path: Path, kind: str, code: int):
    marks = tmp_path / "marks"
    marks.mkdir()
    script = tmp_path / "job.py"
    script.write_text(JOB)
    token = f"{kind}-{code}"
    argv = [sys.executable, str(script), str(marks), token, str(code), "print"]
    if kind == "command":
        body: dict[str, Any] = {"command": argv}
    else:
        # the code job's own Python process is the one that writes the marks
        body = {"code": f"import sys\nsys.argv = {argv[1:]!r}\n" + JOB}
    # the processes' own temp folder, where a code job's working folder goes
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {"EXACTLY_ONCE_MARK": str(marks), "TMPDIR": str(temp)}
    # the server only serves the API and reaps; worker processes run the job
    server = server_factory("--JupyterTasksApp.workers=default=0", env=env)
    worker = _start_worker(tmp_path, db_path, env, "worker-1")
    replacement: subprocess.Popen[bytes] | None = None
    try:
        status, task = server.request("POST", "/api/tasks",
                                      {**body, "max_retries": 0 if code else 3})
        assert status == 202, task
        starts = eventually_sync(lambda: _lines(marks, token, "start"), timeout=60,
                                 what="the job's process running")
        pid = int(starts[0].split()[1])
        os.kill(worker.pid, signal.SIGSTOP)  # frozen: it cannot write the end any more
        (marks / f"{token}.go").touch()
        eventually_sync(lambda: _ended(pid), timeout=30, what="the job's process exited")
        _kill(worker)
        replacement = _start_worker(tmp_path, db_path, env, "worker-2")

        def final() -> dict[str, Any] | None:
            row = server.request("GET", f"/api/tasks/{task['id']}?view=full")[1]
            return row if row["status"] not in ("queued", "running") else None

        row = eventually_sync(final, timeout=60, interval=0.1, what="the job ended")
        runs = (len(_lines(marks, token, "start")), len(_lines(marks, token, "end")))
        assert runs == (1, 1), runs  # the command ran exactly once
        assert row["attempts"] == 1, row
        assert row["process"] is None, row
        # the peak the shim measured at the exit outlives its worker
        assert row["resource_usage"]["peak_memory_mb"] >= 64, row["resource_usage"]
        if code == 0:
            assert row["status"] == "succeeded", row
            assert row["error"] is None, row
            assert row["result"] == {"returncode": 0}, row
        else:
            assert row["status"] == "failed", row
            assert f"exited with code {code}" in row["error"]["message"], row
        logs = server.request("GET", f"/api/tasks/{task['id']}/logs")[1]
        text = "".join(entry["text"] for entry in logs["entries"])
        assert f"exited with code {code}" in text, text
        # the reaper's line is a line of its own (before: no newline after it, and the
        # shell's prompt followed `jupyter tasks logs` on that line)
        assert text.endswith("this end was written from that exit\n"), text
        assert "\n[jupyter-tasks] worker " in "\n" + text, text
        # nothing of the job is left running, and no working folder of the killed
        # worker's attempt (its source and input) behind
        assert _marked(marks, keep={server.popen.pid, replacement.pid}) == []
        assert [p.name for p in temp.glob("jupyter-tasks-code-*")] == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGCONT)
        _kill(worker)
        if replacement is not None:
            _kill(replacement)


def _row(db_path: Path, task_id: str) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        conn.row_factory = sqlite3.Row
        row = dict(conn.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone())
    finally:
        conn.close()
    row["process"] = json.loads(row["process"]) if row["process"] else None
    return row


def test_a_command_ending_cleanly_just_after_its_worker_died_is_not_run_again(
        tmp_path: Path, db_path: Path):
    """The worker dies while the command still runs; the command then exits 0 at once.

    (A command whose own child has just done the work is exiting; it writes no
    output now, which would fail with nobody reading.) Its shim gives it a grace
    to end and records a clean exit. No reaper runs in between: there
    is no server, and the next worker starts once the exit is in the row.
    """
    marks = tmp_path / "marks"
    marks.mkdir()
    script = tmp_path / "job.py"
    script.write_text(JOB)
    (tmp_path / "root").mkdir()
    token = "grace"
    env = {"EXACTLY_ONCE_MARK": str(marks)}
    worker = _start_worker(tmp_path, db_path, env, "worker-1")
    replacement: subprocess.Popen[bytes] | None = None
    try:
        eventually_sync(db_path.exists, timeout=60, what="the worker's database")
        submitted = subprocess.run(
            [sys.executable, "-m", "jupyter_tasks.cli", "--db", str(db_path), "submit",
             "--max-retries", "3", "--json", "--command", sys.executable, str(script),
             str(marks), token, "0"], capture_output=True, text=True, check=True)
        task_id = json.loads(submitted.stdout)["id"]
        eventually_sync(lambda: _lines(marks, token, "start"), timeout=60,
                        what="the job's process running")
        _kill(worker)
        (marks / f"{token}.go").touch()
        process = eventually_sync(lambda: (_row(db_path, task_id)["process"] or {})
                                  .get("exit") is not None and _row(db_path, task_id)["process"],
                                  timeout=30, what="the exit recorded by the shim")
        assert process["exit"] == 0, process
        replacement = _start_worker(tmp_path, db_path, env, "worker-2")
        row = eventually_sync(lambda: _row(db_path, task_id)["status"] not in
                              ("queued", "running") and _row(db_path, task_id),
                              timeout=60, what="the job ended")
        assert row["status"] == "succeeded", row
        assert row["attempts"] == 1, row
        assert process["peak_memory_mb"] >= 64, process
        usage = json.loads(row["resource_usage"] or "{}")
        assert usage.get("peak_memory_mb") == process["peak_memory_mb"], usage
        assert (len(_lines(marks, token, "start")), len(_lines(marks, token, "end"))) == (1, 1)
        assert _marked(marks, keep={replacement.pid}) == []
    finally:
        _kill(worker)
        if replacement is not None:
            _kill(replacement)


def test_a_killed_workers_job_runs_again_though_it_has_no_retries(
        server_factory, tmp_path: Path, db_path: Path):
    """A lost worker is not a failure of the work: the job runs again, and its log says why.

    A command job takes the default ``max_retries`` (0: its own failure would not
    be retried). Its worker is SIGKILLed mid-job; the server's reaper ends the
    job's process group and puts the job back; another worker runs it to the end.
    """
    marks = tmp_path / "marks"
    marks.mkdir()
    script = tmp_path / "job.py"
    script.write_text(JOB)
    token = "lost"
    env = {"EXACTLY_ONCE_MARK": str(marks)}
    server = server_factory("--JupyterTasksApp.workers=default=0", env=env)
    worker = _start_worker(tmp_path, db_path, env, "worker-1")
    replacement: subprocess.Popen[bytes] | None = None
    try:
        status, task = server.request("POST", "/api/tasks", {
            "command": [sys.executable, str(script), str(marks), token, "0"]})
        assert status == 202, task
        assert task["max_retries"] == 0, task
        eventually_sync(lambda: _lines(marks, token, "start"), timeout=60,
                        what="the job's process running")
        _kill(worker)  # SIGKILL, mid-job: the job has not been let end
        replacement = _start_worker(tmp_path, db_path, env, "worker-2")
        eventually_sync(lambda: len(_lines(marks, token, "start")) == 2, timeout=90,
                        what="the job running again in the second worker")
        (marks / f"{token}.go").touch()

        def final() -> dict[str, Any] | None:
            row = server.request("GET", f"/api/tasks/{task['id']}")[1]
            return row if row["status"] not in ("queued", "running") else None

        row = eventually_sync(final, timeout=60, interval=0.1, what="the job ended")
        assert row["status"] == "succeeded", row
        assert (row["attempts"], row["lost_attempts"], row["max_attempts"]) == (2, 1, 2), row
        assert (row["max_retries"], row["retry_reason"]) == (0, "worker lost"), row
        # the first run was ended by the reaper: only the second reached its end
        runs = (len(_lines(marks, token, "start")), len(_lines(marks, token, "end")))
        assert runs == (2, 1), runs
        logs = server.request("GET", f"/api/tasks/{task['id']}/logs")[1]
        texts = [entry["text"] for entry in logs["entries"]]
        assert [t for t in texts if t.startswith("— attempt ")] == \
            ["— attempt 2 of 2: worker lost —\n"], texts
        assert _marked(marks, keep={server.popen.pid, replacement.pid}) == []
    finally:
        _kill(worker)
        if replacement is not None:
            _kill(replacement)
