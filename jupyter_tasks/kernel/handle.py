"""``TaskHandle``: a small synchronous (and awaitable) handle on one task, for notebooks."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import TYPE_CHECKING, Any, TypeVar

from ..exceptions import JupyterTasksError
from ..models import Task
from .task_ids import full_task_id

if TYPE_CHECKING:
    from ..manager import TaskManager

T = TypeVar("T")


class TaskHandle:
    """A handle on a task, usable from plain (non-async) notebook code.

    ``status`` and ``progress`` read the shared store, so they are current
    whichever process runs the task. ``result(timeout)`` waits; for a task
    run in this process it returns the real Python object (not its JSON).
    ``await handle`` waits without blocking the kernel's event loop.
    """

    def __init__(self, task_id: str, manager: TaskManager | None = None) -> None:
        __tracebackhide__ = True
        if manager is None:
            from . import ensure_manager

            manager = ensure_manager()
        self.id = full_task_id(manager, task_id)
        self._given = manager

    @property
    def _manager(self) -> TaskManager:
        """The manager given; once it stopped, the one running in its place on the same
        database (``stop_manager()`` then ``%reload_ext jupyter_tasks``)."""
        given = self._given
        if not given.running:
            from ..runtime import get_default_manager

            current = get_default_manager()
            if isinstance(current, type(given)) and current.running \
                    and current.config.db_path == given.config.db_path:
                self._given = given = current
        return given

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """``coro`` on the manager's loop; its jupyter-tasks error raised from here.

        Without the engine's frames (the store, its connection, the futures between
        them: fifteen under ``handle.status``), which say nothing to a notebook's user.
        """
        __tracebackhide__ = True
        try:
            return self._manager.run_sync(coro, timeout)
        except JupyterTasksError as exc:
            raise exc.with_traceback(None)  # noqa: B904  (the same error, not a new one)

    # ------------------------------------------------------------------ reading

    @property
    def task(self) -> Task:
        """The task row as stored now."""
        __tracebackhide__ = True
        return self._run(self._manager.get(self.id))

    @property
    def status(self) -> str:
        """``queued``, ``running``, ``succeeded``, ``failed``, ``cancelled`` …"""
        __tracebackhide__ = True
        return self.task.status

    @property
    def progress(self) -> dict[str, Any] | None:
        """The last progress written: ``{current, total, message}`` or None."""
        live = self._manager.live_progress(self.id)
        return live if live is not None else self.task.progress

    @property
    def done(self) -> bool:
        """True once the task has ended (any final status)."""
        return self.task.is_terminal

    def wait(self, timeout: float | None = None) -> Task:
        """Block until the task ends (or ``timeout`` seconds pass); returns its state."""
        __tracebackhide__ = True
        check_wait_timeout(timeout)
        return self._run(self._manager.wait(self.id, timeout),
                         None if timeout is None else timeout + 10)

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the task and return its result.

        Raises ``TimeoutError`` if it is still running after ``timeout`` seconds,
        and the task's own exception (if it ran here) or ``TaskFailed`` if it did
        not succeed.
        """
        task = self.wait(timeout)
        return self._outcome(task, timeout)

    def logs(self) -> str:
        """Everything the task wrote to its log so far."""
        manager = self._manager

        async def read() -> str:
            await manager.get(self.id)  # an unknown id is TaskNotFound, as for status
            parts: list[str] = []
            after = 0
            while True:
                entries = await manager.store.get_logs(self.id, after, 1000)
                parts += [e.text for e in entries]
                if len(entries) < 1000:
                    return "".join(parts)
                after = entries[-1].seq

        __tracebackhide__ = True
        return self._run(read())

    # ------------------------------------------------------------------ actions

    def cancel(self) -> str:
        """Ask the task to stop wherever it runs; returns the status right after asking."""
        __tracebackhide__ = True
        return self._run(self._manager.cancel(self.id)).status

    def rerun(self) -> TaskHandle:
        """Run the same work again; returns the new task's handle."""
        __tracebackhide__ = True
        task = self._run(self._manager.rerun(self.id))
        return TaskHandle(task.id, self._manager)

    def answer(self, choice: str) -> None:
        """Answer the task's pending question (``TaskContext.confirm``) with ``choice``."""
        __tracebackhide__ = True
        self._run(self._manager.confirm(self.id, choice))

    @property
    def question(self) -> dict[str, Any] | None:
        """The pending question ``{prompt, choices}``, or None (an ended task asks none:
        a cancel or a lost kernel leaves its last question unanswered in the row)."""
        task = self.task
        confirmation = task.confirmation
        if confirmation and confirmation.get("answer") is None and not task.is_terminal:
            return {"prompt": confirmation.get("prompt"), "choices": confirmation.get("choices")}
        return None

    def card(self) -> Any:
        """A live ``TaskCard`` for this task."""
        from .cards import TaskCard

        return TaskCard(self.id)

    # -------------------------------------------------------------------- await

    def __await__(self) -> Generator[Any, None, Any]:
        return self._await().__await__()

    async def _await(self) -> Any:
        manager = self._manager
        task = await manager.run_on_loop(manager.wait(self.id))
        return self._outcome(task, None)

    def _outcome(self, task: Task, timeout: float | None) -> Any:
        if not task.is_terminal:
            raise asyncio.TimeoutError(f"task {self.id} is still {task.status} after {timeout}s")
        return self._manager.outcome(task)

    # ------------------------------------------------------------------ display

    def __repr__(self) -> str:
        try:
            task = self.task
            return f"<TaskHandle {task.label!r} {task.status} id={self.id}>"
        except Exception:
            return f"<TaskHandle id={self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskHandle) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)


def check_wait_timeout(timeout: Any) -> None:
    """``ValueError`` unless ``timeout`` is None or a number of seconds >= 0 (a NaN or a
    negative one made a wordless TimeoutError, or one saying 'after nan s')."""
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, not "
                        f"{type(timeout).__name__}")
    if not timeout >= 0:  # NaN too
        raise ValueError(f"timeout must be a number of seconds >= 0 or None, not {timeout}")
