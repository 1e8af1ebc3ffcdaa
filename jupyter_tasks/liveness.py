"""Whether a recorded process is still the one that was recorded (the reaper's test)."""

from __future__ import annotations

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
