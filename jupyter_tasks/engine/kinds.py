"""Job kinds as plug-ins: each checks its spec (``validate``) and runs a task (``execute``).

A manager runs the kinds it was given (``TaskManager(kinds=...)`` or
``manager.install_kind``). The composition roots choose them: the server
extension and ``jupyter tasks worker`` pass ``jupyter_tasks.kinds.standard()``,
the kernel side adds the ``cell`` kind, the Dask backend wraps kinds to route
jobs to Dask. A plain ``TaskManager()`` gets ``default_kinds()``: what
``import jupyter_tasks`` installed (the standard kinds).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..context import TaskContext
from ..exceptions import InvalidRequest, NotRerunnable
from ..models import Task, TaskKind
from ..registry import Registry
from ..runners import on_daemon_thread, run_in_thread, run_process, validate_argv
from ..values import encoded_here, runs_no_code_to_encode
from .state import RunningTask


@dataclass
class ValidSpec:
    """A spec its kind accepted: what the row stores, and what the task is called."""

    spec: dict[str, Any]
    name: str | None = None  # the registered task's name (function kind)
    params: Any = None  # the row's params column
    label: str | None = None  # the label when the submitter gave none


class JobKind(Protocol):
    """A kind of work: the ``validate`` and ``execute`` of one ``TaskKind``.

    Optional: ``lost_attempt(task)``, called (on a thread) by the reaper of this host
    once a lost worker's attempt of the kind is settled and its process group gone, to
    clear what the attempt left behind (a code job's working folder, a notebook
    kernel's connection file); ``check_files(spec)``, called on a thread after
    ``validate`` at a submit, for checks that read files (``InvalidRequest`` if bad):
    the loop serves every client meanwhile.
    """

    kind: str  # the TaskKind value it runs
    work_field: str | None  # the spec field that selects it in submit_spec (None: not so)

    def validate(self, spec: Mapping[str, Any], registry: Registry) -> ValidSpec:
        """Check a submitted spec before anything is written; ``InvalidRequest`` if bad."""

    async def execute(self, task: Task, ctx: TaskContext, run: RunningTask) -> Any:
        """Run one attempt of ``task``; its return value is the result."""


class UnsupportedKind(Exception):
    """A task reached a process that has no executor for its kind."""


class SubprocessFailed(Exception):
    """A subprocess task exited with a non-zero code."""

    def __init__(self, returncode: int, argv: list[str]) -> None:
        super().__init__(f"command {argv[0]!r} exited with code {returncode}")
        self.returncode = returncode


# ------------------------------------------------------------------ spec checks


def check_str(value: Any, field_name: str) -> str:
    """``value`` if it is a non-empty string, else ``InvalidRequest`` naming the field."""
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{field_name} must be a non-empty string",
                             errors=[{"field": field_name,
                                      "message": "must be a non-empty string"}])
    return value


def check_source(value: Any, field_name: str) -> str:
    """``value`` if it is Python source a fresh interpreter can take (``check_str``, and
    no NUL byte, which Python refuses to compile), else ``InvalidRequest``."""
    source = check_str(value, field_name)
    at = source.find("\0")
    if at >= 0:
        message = (f"must not contain a NUL byte (one is at character {at}): Python "
                   "refuses such source")
        raise InvalidRequest(f"{field_name} {message}",
                             errors=[{"field": field_name, "message": message}])
    return source


def check_obj(value: Any, field_name: str) -> dict[str, Any]:
    """``value`` if it is a dict, else ``InvalidRequest`` naming the field."""
    if not isinstance(value, dict):
        raise InvalidRequest(f"{field_name} must be an object",
                             errors=[{"field": field_name, "message": "must be an object"}])
    return value


def check_env(value: Any) -> dict[str, str]:
    """``value`` if a process can take it as its environment, else ``InvalidRequest``."""
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidRequest("env must map strings to strings",
                             errors=[{"field": "env", "message": "must map strings to strings"}])
    # what exec would refuse later, when the task already counts as accepted
    errors = [{"field": f"env[{k!r}]", "message": problem} for k, v in value.items()
              for problem in (
                  "the name must not be empty" if not k else None,
                  "the name must not contain '='" if "=" in k else None,
                  "must not contain a NUL byte" if "\0" in k or "\0" in v else None)
              if problem]
    if errors:
        raise InvalidRequest("env has names or values a process cannot take: "
                             + "; ".join(f"{e['field']}: {e['message']}" for e in errors),
                             errors=errors)
    return value


# ---------------------------------------------------------------- the kinds


class FunctionKind:
    """A registered task by name, or (in-process only) a callable or coroutine."""

    kind = TaskKind.FUNCTION.value
    work_field = "name"

    def validate(self, spec: Mapping[str, Any], registry: Registry) -> ValidSpec:
        """Bind the params to the registered task's signature."""
        name = spec["name"]
        params = registry.get_info(name).validate(spec.get("params"))
        return ValidSpec({"name": name, "params": params}, name=name, params=params,
                         label=name)

    async def execute(self, task: Task, ctx: TaskContext, run: RunningTask) -> Any:
        """Await or call the object in a stoppable thread; its value encoded off the loop.

        A value's repr is the user's code, which may be slow or never return: made on
        the loop, it held every task, REST call and heartbeat of the process, and the
        task's timeout could not end it. A thread's value is encoded in that thread, an
        awaited one (unless plain) on a thread of its own, both while the run's cancel
        and timeout still reach it.
        """
        if run.local is not None:
            # an in-process object: this process keeps its value (a large array is
            # stored as its summary, see values.encode)
            obj, args, kwargs = run.local
            if inspect.iscoroutine(obj):
                return await _encoded_off_loop(await obj, arrays_summarized=True)
            if inspect.iscoroutinefunction(obj):
                return await _encoded_off_loop(await obj(*args, **kwargs),
                                               arrays_summarized=True)
            result = await call_in_thread(_encoding(obj, arrays_summarized=True), args,
                                          kwargs, run)
            if _awaitable(result):
                return await _encoded_off_loop(await result, arrays_summarized=True)
            return result
        if task.spec and "callable" in task.spec:
            raise NotRerunnable(f"the in-process object of task {task.id} is gone")
        info = run.registry.get_info(task.name or "")
        # as a submit here checks them: a job queued by a process that did not have the
        # task (`jupyter tasks submit --name` without its module) was called with them
        # unchecked, and failed each retry with the same TypeError
        params = info.validate(task.params or {})
        kwargs = info.bind(params, {TaskContext: ctx})
        if info.is_async:
            return await _encoded_off_loop(await info.fn(**kwargs))
        return await call_in_thread(_encoding(info.fn), (), kwargs, run)


def _encoding(fn: Callable[..., Any], arrays_summarized: bool = False) -> Callable[..., Any]:
    """``fn``, whose value is encoded in its own thread (an awaitable is left as it is)."""
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        value = fn(*args, **kwargs)
        return value if _awaitable(value) else \
            encoded_here(value, arrays_summarized=arrays_summarized)
    return call


def _awaitable(value: Any) -> bool:
    """``inspect.isawaitable``, False for a value that breaks on being asked (a dead
    weakref proxy): it is a value to store, not something to await."""
    try:
        return inspect.isawaitable(value)
    except Exception:
        return False


async def _encoded_off_loop(value: Any, arrays_summarized: bool = False) -> Any:
    """``value`` as it is when encoding it runs none of its code; else encoded on a
    thread of its own (one that never returns is left to itself by the stop)."""
    if runs_no_code_to_encode(value):
        return value
    return await on_daemon_thread(
        functools.partial(encoded_here, arrays_summarized=arrays_summarized), value,
        name="jupyter-tasks:encode")


async def call_in_thread(fn: Callable[..., Any], args: Any, kwargs: dict[str, Any],
                         run: RunningTask) -> Any:
    """``run_in_thread``, where a call that returned before a cancel or timeout reached it
    keeps its value.

    The stop cancels the attempt's coroutine, which may come a moment after the call
    returned in its thread, with its value on its way to the loop: the work was done
    and its side effects exist, and writing it cancelled (its value thrown away) told
    the user it had not run to its end (a shutdown handed it back, to run again). Not a
    call that was told of the cancel (it read ``ctx.cancelled``) and returned early: the
    cancel stopped that one.
    """
    try:
        return await run_in_thread(fn, args, kwargs, run.thread)
    except asyncio.CancelledError:
        if run.thread.returned_before_stop and not run.ctx.cancel_seen \
                and run.keep_own_end():
            return run.thread.value
        raise


class CommandKind:
    """An argv run in its own process group; fails on a non-zero exit."""

    kind = TaskKind.SUBPROCESS.value
    work_field = "command"

    def validate(self, spec: Mapping[str, Any], registry: Registry) -> ValidSpec:
        """Check the argv, working directory and environment."""
        clean: dict[str, Any] = {"command": validate_argv(spec["command"])}
        if spec.get("cwd") is not None:
            clean["cwd"] = check_str(spec["cwd"], "cwd")
        if spec.get("env") is not None:
            clean["env"] = check_env(spec["env"])
        return ValidSpec(clean, label=" ".join(clean["command"]))

    async def execute(self, task: Task, ctx: TaskContext, run: RunningTask) -> Any:
        """Run the command; its output goes into the task's log.

        A command that had exited when a cancel or timeout reached it ends as it exited
        (its output complete): the stop came too late to stop it.
        """
        spec = task.spec or {}
        try:
            completed = await run_process(
                spec["command"], ctx=ctx, cwd=spec.get("cwd"), env=spec.get("env"),
                memory_limit_mb=task.memory_limit_mb, usage=run.process,
                capture_output=False,
            )
            returncode = completed.returncode
        except asyncio.CancelledError:
            returncode = run.kept_exit()
            if returncode is None:
                raise
        if returncode != 0:
            raise SubprocessFailed(returncode, spec["command"])
        return {"returncode": returncode}


def core_kinds() -> list[JobKind]:
    """The kinds the engine itself provides: registered functions and commands."""
    return [FunctionKind(), CommandKind()]


# what a TaskManager given no kinds runs; ``import jupyter_tasks`` sets the standard ones
_default_factory: Callable[[], Iterable[JobKind]] = core_kinds


def set_default_kinds(factory: Callable[[], Iterable[JobKind]]) -> None:
    """Choose what ``default_kinds()`` returns (a composition root calls this once)."""
    global _default_factory
    _default_factory = factory


def default_kinds() -> list[JobKind]:
    """Fresh instances of the kinds a ``TaskManager`` given no ``kinds`` runs."""
    return list(_default_factory())
