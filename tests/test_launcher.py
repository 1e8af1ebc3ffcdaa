"""The shared server launcher: it answers, and stopping it leaves no process behind."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psutil

from tests.launcher import JupyterProcess
from tests.waiting import eventually_sync


def _group(pgid: int) -> list[psutil.Process]:
    alive = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != pgid and os.getpgid(proc.pid) == pgid \
                    and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except (psutil.Error, ProcessLookupError):
            pass
    return alive


def test_stop_ends_the_server_and_every_process_it_started(tmp_path: Path) -> None:
    server = JupyterProcess(tmp_path, args=["--JupyterTasksApp.workers=default=1"])
    try:
        server.start()
        code, task = server.request("POST", "/api/tasks", body={
            "command": [sys.executable, "-c", "import time; time.sleep(600)"]})
        assert code in (200, 202), task
        # the job's process runs in the server's process group
        eventually_sync(lambda: _group(server.pid), timeout=60, what="the job's process")
        # a crash (SIGKILL of the server alone) leaves the job's process running...
        server.kill()
        assert _group(server.pid)
    finally:
        server.stop()
    # ...stop() reaches it through the process group
    eventually_sync(lambda: not _group(server.pid), timeout=30, what="no process left")
