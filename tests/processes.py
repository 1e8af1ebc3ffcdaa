"""Whether a test's process is still there: the two meanings the tests need."""

from __future__ import annotations

import os

import psutil


def ended(pid: int) -> bool:
    """Whether ``pid`` runs no more: no such process, or a zombie its parent has not reaped."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def reaped(pid: int) -> bool:
    """Whether no process has ``pid`` at all (a zombie still has it: its parent's wait reaps it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
