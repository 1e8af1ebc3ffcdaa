"""Whether a recorded process is still the one that was recorded (the reaper's test)."""

from __future__ import annotations

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
