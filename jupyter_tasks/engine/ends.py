"""What an attempt's end says: the row's error JSON, and the log's attempt marker."""

from __future__ import annotations

from typing import Any

from ..exceptions import RaisedInThread, RunOutOfReach
from ..models import Task, TaskStatus, failure_reason
from ..tracebacks import (
    MAX_ERROR_MESSAGE_CHARS,
    MAX_TRACEBACK_CHARS,
    cut_error_text,
    error_message,
    full_traceback,
    user_traceback,
)
from .kinds import SubprocessFailed


def attempt_marker(task: Task) -> str:
    """``— attempt N of M: <why the last one ended> —`` (the log view draws it as a rule)."""
    reason = task.retry_reason or failure_reason(task.error)
    return f"— attempt {task.attempts} of {task.max_attempts}: {reason} —\n"


def error_json(error: BaseException | None, status: TaskStatus, task: Task) -> dict[str, Any]:
    """The row's ``error`` for an attempt that ended ``status``."""
    if status == TaskStatus.CANCELLED:
        return {"type": "TaskCancelled", "message": "the task was cancelled", "traceback": None}
    if status == TaskStatus.TIMEOUT:
        return {"type": "TaskTimedOut",
                "message": f"the task ran longer than its timeout of {task.timeout}s",
                "traceback": None}
    if status == TaskStatus.INTERRUPTED and not isinstance(error, RunOutOfReach):
        return {"type": "Interrupted", "message": "the process running the task stopped",
                "traceback": None}
    if error is None:
        return {"type": status.value, "message": status.value, "traceback": None}
    if isinstance(error, RaisedInThread) and error.__cause__ is not None:
        error = error.__cause__  # what the code in the thread raised
    if isinstance(error, SubprocessFailed):
        # a command's non-zero exit ran no Python here: its message is all there is (the
        # card showed a traceback of the engine's frames under it)
        return {"type": type(error).__name__,
                "message": cut_error_text(error_message(error), MAX_ERROR_MESSAGE_CHARS),
                "traceback": None}
    # the user's frames by default; every frame (the engine's too) kept beside them
    return {
        "type": type(error).__name__,
        "message": cut_error_text(error_message(error), MAX_ERROR_MESSAGE_CHARS),
        "traceback": cut_error_text(user_traceback(error), MAX_TRACEBACK_CHARS),
        "traceback_full": cut_error_text(full_traceback(error), MAX_TRACEBACK_CHARS),
    }
