"""Module-level helpers over the process's default manager (the seed's ``tasks`` API).

Each is a coroutine function and works from any event loop: a notebook's
top-level ``await``, the server's loop, or the manager's own runtime loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from .context import TaskContext, current_context
from .exceptions import NotInTask
from .models import Task, TaskKind
from .runners import ProcessUsage, run_process, validate_argv
from .runtime import current_manager

T = TypeVar("T")


async def run_background(coro_or_name: Any, label: str | None = None, *,
                         task_key: str | None = None, **kwargs: Any) -> str:
    """Start work beside the caller and return its task id at once.

    ``coro_or_name`` is a coroutine object or a registered task name (then
    ``**kwargs`` are its parameters). With ``task_key``, an active task with
    the same key is returned instead of starting a second one.
    """
    manager = current_manager()
    options = {k: kwargs.pop(k) for k in list(kwargs)
               if k in ("queue", "priority", "timeout", "max_retries", "owner", "origin",
                        "idempotency_key")}
    task = await manager.run_on_loop(manager.submit(
        coro_or_name, mode="background", label=label, task_key=task_key, **options, **kwargs))
    return task.id


async def run_blocking(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking callable in a worker thread and await its result; context variables are kept.

    The caller's event loop stays free meanwhile. Needs no manager: nothing is
    persisted, exactly as the caller waits for the answer anyway.
    """
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    return await loop.run_in_executor(None, functools.partial(context.run, func, *args, **kwargs))


async def run_subprocess(
    command: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    check: bool = False,
    text: bool = True,
    capture_output: bool = True,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    memory_limit_mb: float | None = None,
) -> subprocess.CompletedProcess[Any]:
    """Run ``command`` (a non-empty ``list[str]``; no shell) like ``subprocess.run``.

    Output streams into the current task's log when called inside a task.
    On timeout the whole process group is ended and ``subprocess.TimeoutExpired``
    raised; cancelling the caller ends the group as well.
    """
    argv = validate_argv(command)
    ctx = current_context.get()
    coro = run_process(argv, ctx=ctx, cwd=cwd, env=env, check=check, text=text,
                       capture_output=capture_output, memory_limit_mb=memory_limit_mb,
                       usage=_task_usage(ctx))
    if timeout is None:
        return await coro
    try:
        return await asyncio.wait_for(coro, timeout)
    except asyncio.TimeoutError:
        raise subprocess.TimeoutExpired(argv, timeout) from None


def _task_usage(ctx: TaskContext | None) -> ProcessUsage | None:
    """Inside a task: usage whose process group goes into the task's row (for the reaper),
    led by the shim, which ends the whole group if the worker dies (PR_SET_PDEATHSIG
    reaches only the leader: the command's own children lived on, doing the task's
    work for nobody, until a process opened the database again and reaped it)."""
    manager = ctx.manager if ctx is not None else None
    on_group = manager.group_recorder(ctx.task_id) if manager is not None else None
    return ProcessUsage(on_group=on_group, exit_peak=True) if on_group is not None else None


def _context(task_id: str | None) -> TaskContext:
    ctx = current_context.get()
    if ctx is not None and (task_id is None or ctx.task_id == task_id):
        return ctx
    manager = current_manager()
    if task_id is not None:
        running = manager.running_context(task_id)
        if running is not None:
            return running
    raise NotInTask(
        f"task {task_id} is not running in this process" if task_id
        else "not inside a running task: pass task_id= or call this from the task's code"
    )


async def update_progress(current: float, total: float | None = None,
                          message: str | None = None, *, task_id: str | None = None) -> None:
    """Report progress of the current task (or of ``task_id`` running in this process)."""
    _context(task_id).progress(current, total, message)


async def request_confirmation(prompt: str, choices: Sequence[str] = ("yes", "no"), *,
                               task_id: str | None = None, timeout: float | None = None) -> str:
    """Ask a person a question from inside a task; waits for the answer from any view.

    Past ``timeout`` seconds the question is taken back from every view and
    ``asyncio.TimeoutError`` raised (an answer recorded first is returned instead).
    """
    return await _context(task_id).confirm(prompt, choices, timeout)


async def get_task(task_id: str) -> Task:
    """The task with this id."""
    manager = current_manager()
    return await manager.run_on_loop(manager.get(task_id))


async def get_tasks_by_key(task_key: str, *, limit: int = 100) -> list[Task]:
    """Tasks (any status, newest first) submitted with exactly this ``task_key``."""
    manager = current_manager()
    return await manager.run_on_loop(manager.store.list_tasks(task_key=task_key, limit=limit))


async def get_tasks_by_key_prefix(prefix: str, *, limit: int = 100) -> list[Task]:
    """Tasks whose ``task_key`` starts with ``prefix``, newest first."""
    manager = current_manager()
    return await manager.run_on_loop(manager.store.list_tasks(key_prefix=prefix, limit=limit))


async def cancel(task_id: str) -> Task:
    """Cancel a task wherever it runs."""
    manager = current_manager()
    return await manager.run_on_loop(manager.cancel(task_id))


async def rerun(task_id: str) -> Task:
    """Run a task's spec again; returns the new task."""
    manager = current_manager()
    return await manager.run_on_loop(manager.rerun(task_id))


async def fork(task_id: str, **overrides: Any) -> Task:
    """Run a task's spec with overrides (params, code, command, parameters, label)."""
    manager = current_manager()
    return await manager.run_on_loop(manager.fork(task_id, overrides))


async def submit(target: Any, /, *args: Any, **options: Any) -> Task:
    """Submit work through the default manager (see ``TaskManager.submit``)."""
    manager = current_manager()
    return await manager.run_on_loop(manager.submit(target, *args, **options))


__all__ = [
    "TaskKind", "cancel", "fork", "get_task", "get_tasks_by_key", "get_tasks_by_key_prefix",
    "request_confirmation", "rerun", "run_background", "run_blocking", "run_subprocess",
    "submit", "update_progress",
]
