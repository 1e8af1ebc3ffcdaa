"""Whether a recorded process is still the one that was recorded (the reaper's test)."""

from __future__ import annotations

import socket
import time
from typing import Any

import psutil


def pid_alive(pid: int, started_at: float | None) -> bool:
    """True while ``pid`` runs and, given its start time, was not reused by another process."""
    try:
        proc = psutil.Process(pid)
        if started_at is not None and abs(proc.create_time() - started_at) > 1.0:
            return False  # the pid was reused by another process
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def worker_alive(worker: Any, host: str, now: float, lease_seconds: float) -> bool:
    """Whether a worker row's process still runs (a ``WorkerInfo``).

    On this host its process is the authority, not its heartbeat (a job holding the GIL
    longer than the lease, or a SIGSTOP, leaves a live worker silent); a worker on
    another host can only be judged by its heartbeat.
    """
    if worker.host == host:
        return pid_alive(worker.pid, worker.pid_started_at)
    return worker.heartbeat_at >= now - lease_seconds


def live_workers(workers: list[Any], lease_seconds: float) -> list[Any]:
    """The workers of ``workers`` whose process runs (``worker_alive``): a row no reaper
    has marked stopped yet may be a worker killed with -9."""
    now, host = time.time(), socket.gethostname()
    return [w for w in workers if worker_alive(w, host, now, lease_seconds)]
