"""jupyter-tasks: background work for Jupyter that people can see, steer and trust."""

from __future__ import annotations

from typing import Any

from . import kinds as _kinds
from ._version import __version__
from .context import TaskContext
from .default_manager import start_manager, stop_manager
from .exceptions import (
    BackgroundTaskFailed,
    IdempotencyConflict,
    InvalidCommand,
    InvalidParameters,
    InvalidTaskName,
    JupyterTasksError,
    ManagerNotRunning,
    NotInTask,
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
from .kernel.progress import progress, track
from .manager import TaskManager
from .models import Task, TaskKind, TaskMode, TaskStatus
from .registry import Registry, get_info, list_by_tags, register_function, task

# this package is the composition root of scripts and tests: a TaskManager() given no
# kinds runs the standard ones (the server, worker and kernel choose theirs explicitly)
_kinds.install_as_default()

__all__ = [
    "BackgroundTaskFailed", "IdempotencyConflict", "InvalidCommand", "InvalidParameters",
    "InvalidTaskName",
    "JupyterTasksError", "ManagerNotRunning", "NotInTask", "Registry", "Task", "TaskBoard",
    "TaskCancelled", "TaskCard", "TaskContext", "TaskFailed", "TaskHandle", "TaskKind",
    "TaskManager", "TaskMode", "TaskNotFound", "TaskStatus", "UnknownTask", "__version__",
    "cancel", "fork", "get_info", "get_task", "get_tasks_by_key", "get_tasks_by_key_prefix",
    "list_by_tags", "load_ipython_extension", "progress", "register_function",
    "request_confirmation", "rerun", "run_background", "run_blocking", "run_subprocess",
    "start_manager", "stop_manager", "submit", "task", "track", "update_progress",
    "wait_for_background",
]

# notebook classes, imported on first use so that `import jupyter_tasks` does not
# import ipywidgets
_LAZY = {"TaskCard": "cards", "TaskBoard": "cards", "TaskHandle": "handle",
         "wait_for_background": "headless"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jupyter_tasks' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".kernel.{module}", __name__), name)
    globals()[name] = value
    return value


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_tasks``: the magics, cell tasks and progress cards in this kernel.

    Starts this kernel's task manager on a daemon thread (database:
    ``$JUPYTER_TASKS_DB`` or the default), and registers ``%%background``,
    ``%run_blocking`` / ``%%run_blocking`` and ``%run_subprocess``.
    """
    from .kernel import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext jupyter_tasks``."""
    from .kernel import unload_ipython_extension as unload

    unload(ipython)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Where jupyter_server finds the extension app."""
    from .server.app import JupyterTasksApp

    return [{"module": "jupyter_tasks", "app": JupyterTasksApp}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where JupyterLab finds the prebuilt side panel."""
    return [{"src": "labextension", "dest": "jupyter-tasks"}]
