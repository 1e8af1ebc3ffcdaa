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
import os
import signal
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
    log = os.path.join(marks, token + ".log")
    with open(log, "a") as f:
        f.write(f"start {os.getpid()}\\n")
    while not os.path.exists(os.path.join(marks, token + ".go")):
        time.sleep(0.01)  # the job waits for the test to let it end
    with open(log, "a") as f:
        f.write(f"end {os.getpid()}\\n")
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
    argv = [sys.executable, str(script), str(marks), token, str(code)]
    if kind == "command":
        body: dict[str, Any] = {"command": argv}
    else:
        # the code job's own Python process is the one that writes the marks
        body = {"code": f"import sys\nsys.argv = {argv[1:]!r}\n" + JOB}
    env = {"EXACTLY_ONCE_MARK": str(marks)}
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
        # nothing of the job is left running
        assert _marked(marks, keep={server.popen.pid, replacement.pid}) == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGCONT)
        _kill(worker)
        if replacement is not None:
            _kill(replacement)
