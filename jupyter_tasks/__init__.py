"""jupyter-tasks: background work for Jupyter that people can see, steer and trust."""

from __future__ import annotations

from typing import Any

from ._version import __version__
from .context import TaskContext
from .exceptions import (
    IdempotencyConflict,
    InvalidCommand,
    InvalidParameters,
    InvalidTaskName,
    JupyterTasksError,
    ManagerNotRunning,
    TaskCancelled,
    TaskFailed,
    TaskNotFound,
    UnknownTask,
)
from .helpers import (
    cancel,
    fork,
    get_task,
    get_tasks_by_key,
    get_tasks_by_key_prefix,
    request_confirmation,
    rerun,
    run_background,
    run_blocking,
    run_subprocess,
    submit,
    update_progress,
)
from .manager import TaskManager
from .models import Task, TaskKind, TaskMode, TaskStatus
from .registry import Registry, get_info, list_by_tags, register_function, task
from .runtime import start_manager, stop_manager

__all__ = [
    "IdempotencyConflict", "InvalidCommand", "InvalidParameters", "InvalidTaskName",
    "JupyterTasksError", "ManagerNotRunning", "Registry", "Task", "TaskCancelled",
    "TaskContext", "TaskFailed", "TaskKind", "TaskManager", "TaskMode", "TaskNotFound",
    "TaskStatus", "UnknownTask", "__version__", "cancel", "fork", "get_info", "get_task",
    "get_tasks_by_key", "get_tasks_by_key_prefix", "list_by_tags", "register_function",
    "request_confirmation", "rerun", "run_background", "run_blocking", "run_subprocess",
    "start_manager", "stop_manager", "submit", "task", "update_progress",
]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Where jupyter_server finds the extension app."""
    from .server.app import JupyterTasksApp

    return [{"module": "jupyter_tasks", "app": JupyterTasksApp}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where JupyterLab finds the prebuilt side panel."""
    return [{"src": "labextension", "dest": "jupyter-tasks"}]
