"""The shared server launcher: it answers, and stopping it leaves no process behind."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psutil
import pytest

from tests.launcher import SERVER_PORTS, JupyterProcess, _ephemeral_low, free_port
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


def _job_processes(marker: str) -> list[psutil.Process]:
    """The live processes whose command line holds ``marker``: a job's shim and command."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(proc.info["cmdline"] or []) \
                    and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            pass
    return found


def test_stop_ends_the_server_and_every_process_it_started(tmp_path: Path) -> None:
    # The job is found by its own command line. (This test once looked for it in the
    # server's process group, where it never is: it passed on JupyterLab's short-lived
    # `npm prefix` helper, and failed once the server took longer to start.)
    marker = f"# {tmp_path.name}-{os.getpid()}"
    server = JupyterProcess(tmp_path, args=["--JupyterTasksApp.workers=default=1"])
    try:
        server.start()
        code, task = server.request("POST", "/api/tasks", body={
            "command": [sys.executable, "-c", f"import time; time.sleep(600)  {marker}"]})
        assert code in (200, 202), task
        job = eventually_sync(lambda: _job_processes(marker), timeout=60,
                              what="the job's processes")
        # a command runs in a process group of its own (the server's signals miss it)
        assert all(os.getpgid(proc.pid) != server.pid for proc in job)
        # a crash: SIGKILL of the server alone
        server.kill()
    finally:
        server.stop()
    # nothing is left: stop() ended the server's group, and the job's shim ended its
    # command when the worker it reports to was gone
    eventually_sync(lambda: not _group(server.pid), timeout=30, what="an empty server group")
    eventually_sync(lambda: not _job_processes(marker), timeout=30, what="the job's end")


def test_server_ports_come_from_below_the_ephemeral_range() -> None:
    # an ephemeral port can be handed to any outgoing connection before the server
    # binds it (or between its stop and restart): the server then fails to start
    low = _ephemeral_low()
    if low is None or low - SERVER_PORTS < 1024:
        pytest.skip("no Linux ephemeral range to stay out of")
    ports = {free_port() for _ in range(20)}
    assert all(low - SERVER_PORTS <= port < low for port in ports), sorted(ports)
