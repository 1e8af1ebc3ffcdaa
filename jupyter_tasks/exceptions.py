"""Every error jupyter-tasks raises on purpose, each class naming what went wrong.

The REST layer maps these to problem+json by the ``http_status`` each carries, so
a class's meaning is the same in Python and over HTTP.
"""

from __future__ import annotations

import re
from typing import Any


class JupyterTasksError(Exception):
    """Base class of every jupyter-tasks error."""

    http_status = 500
    title = "Task error"

    def __init__(self, message: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


class InvalidRequest(JupyterTasksError):
    """The request is malformed as a whole (bad JSON, wrong field types, several work fields)."""

    http_status = 422
    title = "Invalid request"


class InvalidTaskName(JupyterTasksError, ValueError):
    """A registration used a name that is not URL-safe (``^[A-Za-z0-9_-]+$``)."""

    http_status = 422
    title = "Invalid task name"


class DuplicateTaskName(JupyterTasksError, ValueError):
    """A registration used a name another function already holds."""

    http_status = 409
    title = "Task name already registered"


class UnknownTask(JupyterTasksError, LookupError):
    """No function is registered under the requested name."""

    http_status = 404
    title = "Unknown task name"


class InvalidParameters(JupyterTasksError, TypeError):
    """Parameters do not match the registered signature; ``errors`` has one entry per problem."""

    http_status = 422
    title = "Invalid parameters"


class InvalidCommand(JupyterTasksError, TypeError):
    """A subprocess command was not a non-empty ``list[str]`` (a shell string is refused)."""

    http_status = 422
    title = "Invalid command"


class TaskNotFound(JupyterTasksError, LookupError):
    """No task has this id (or the caller may not see it)."""

    http_status = 404
    title = "Task not found"


class IdempotencyConflict(JupyterTasksError):
    """The idempotency key was already used with a different payload."""

    http_status = 409
    title = "Idempotency key reused with another payload"


class TaskStateConflict(JupyterTasksError):
    """The task is not in a state that allows this action (e.g. deleting a running task)."""

    http_status = 409
    title = "Task state conflict"


class KeyedRunStopping(TaskStateConflict):
    """The ``task_key``'s run is being cancelled: new work under the key waits for its end."""

    title = "The task key's run is being cancelled"


class NothingToConfirm(TaskStateConflict):
    """A confirmation answer arrived but the task is not waiting for one."""

    title = "No confirmation pending"


class InvalidAnswer(JupyterTasksError, ValueError):
    """A confirmation answer is not among the offered choices."""

    http_status = 422
    title = "Answer not among the choices"


class NotRerunnable(TaskStateConflict):
    """The task ran an in-process object (a coroutine, a lambda) or its kernel is gone."""

    title = "Task cannot be run again"


class ManagerNotRunning(JupyterTasksError, RuntimeError):
    """A helper was called in a process where no TaskManager is running."""

    title = "No task manager running"

    # what starts one, wherever the user is: after stop_manager() in a kernel, %load_ext
    # does nothing (already loaded) and start_manager() leaves the magics without one
    how_to_start = ("In a notebook run `%reload_ext jupyter_tasks` (`%load_ext` the first "
                    "time); in a script call `jupyter_tasks.start_manager()`; in async code "
                    "use `async with jupyter_tasks.TaskManager() as manager:`")


class NotInTask(JupyterTasksError, RuntimeError):
    """A helper acting on the current task was called outside one (and no running
    ``task_id`` of this process was given)."""

    title = "Not inside a running task"


class KernelPortsTaken(JupyterTasksError, RuntimeError):
    """A notebook job's kernel lost one of its ports to another process at every start.

    jupyter_client chooses a kernel's ports a moment before the kernel binds them;
    each start after a lost port uses new ones, and this is raised after the last.
    """

    title = "Kernel could not bind its ports"


class StoreError(JupyterTasksError):
    """The database is unusable (newer schema, corrupt file)."""

    title = "Task store error"


class StoreUnavailable(StoreError):
    """The database file is missing, replaced, corrupt or not a database: nothing is accepted.

    Over REST every route answers 503 with this message, which names the file
    and says how to recover.
    """

    http_status = 503
    title = "Task store unavailable"


class StoreCompanionHeld(StoreUnavailable):
    """Another process holds the database's deleted ``-wal`` or ``-shm``: nothing is opened.

    Opening the file beside it would start a second one and damage the file. Unlike
    damage this passes: once that process has closed the file, the next open works.
    """


class StoreBusy(StoreError):
    """Another process held the database's write lock past the busy timeout; try again.

    Over REST a 503 with ``Retry-After``: contention is temporary, never a 500.
    """

    http_status = 503
    title = "Task store busy"
    retry_after = 1


class StoreFull(StoreError):
    """The disk holding the database is full: nothing was changed; free some space.

    Over REST a 503 with ``Retry-After``, as for a held lock: the request can succeed
    once space is back. A task's end waits for it (its work is not run again).
    """

    http_status = 503
    title = "Task store full"
    retry_after = 5


class WorkNotStarted(JupyterTasksError):
    """An attempt's work could not be started where it runs (a Dask scheduler that does
    not answer): the job goes back to its queue, no attempt spent, to be tried again
    after ``retry_in`` seconds. Not the work failing: it never ran."""

    def __init__(self, message: str, *, retry_in: float) -> None:
        super().__init__(message)
        self.retry_in = retry_in


class ValueNotStorable(JupyterTasksError, ValueError):
    """A value cannot be stored as JSON even after the storage rule (see ``jupyter_tasks.values``).

    Raised for inputs (params, parameters, bodies: 422 over REST); a task's own
    output that hits it ends the task ``failed`` with this message.
    """

    http_status = 422
    title = "Value cannot be stored"


class KeyGivenTwice(ValueNotStorable):
    """One JSON object of an input holds a key twice; ``field`` names where.

    JSON readers disagree on which one counts (Python keeps the last), so such input
    is refused rather than guessed.
    """

    title = "Invalid request"

    def __init__(self, field: str) -> None:
        self.field = field
        self.reason = "given more than once in one object: give each key once"
        super().__init__(f"{field}: {self.reason}")


class TaskCancelled(BaseException):
    """Raised inside a running task when it is cancelled.

    A ``BaseException`` like ``asyncio.CancelledError`` so that a task's own
    ``except Exception`` does not swallow its cancellation.
    """


class TaskTimedOut(BaseException):
    """Raised inside a running task when its timeout expires."""


class RaisedInThread(RuntimeError):
    """Work in a thread raised what asyncio cannot hand to the coroutine awaiting it.

    A future refuses ``StopIteration`` (it would be taken for the coroutine's return),
    and asyncio throws a ``GeneratorExit`` into the awaiting coroutine, which then
    reads as that coroutine being closed. Carried as this error instead, as Python
    turns a ``StopIteration`` leaving a coroutine into a ``RuntimeError`` (PEP 479);
    the original is its ``__cause__``, and the task's error names it.
    """


class RunOutOfReach(JupyterTasksError):
    """An attempt's run can no longer be seen or stopped and may still be going on.

    The attempt ends ``interrupted`` and is not run again automatically: a retry
    could run the work a second time beside it. A person who knows the run is
    over reruns the task.
    """


class BackgroundTaskFailed(JupyterTasksError):
    """``wait_for_background`` found a background task that ended failed, timed out, ran
    out of memory or was interrupted (``tasks``: those ends, the first named)."""

    title = "Background task did not succeed"

    def __init__(self, tasks: list[Any]) -> None:
        first = tasks[0]
        error = first.error or {}
        why = f"{error['type']}: {error.get('message')}" if error.get("type") else first.status
        more = "".join(f"; {t.label!r} ({t.id}) ended {t.status}" for t in tasks[1:])
        super().__init__(f"the background task {first.label!r} ({first.id}) ended "
                         f"{first.status}: {why}{more}")
        self.tasks = tasks


class TaskFailed(JupyterTasksError):
    """Waiting on a task's result found it ended without success."""

    title = "Task did not succeed"

    def __init__(self, task_id: str, status: str, error: dict[str, Any] | None) -> None:
        detail = (error or {}).get("message") or status
        super().__init__(f"task {task_id} ended {status}: {detail}")
        self.task_id = task_id
        self.status = status
        self.error = error


def said_with_errors(message: str, errors: Any) -> str:
    """``message`` followed by each field problem it does not already say, for people
    (an ``InvalidRequest``'s message often names its problems; they were said twice)."""
    parts = [message]
    for error in errors or []:
        if isinstance(error, dict):
            field, problem = str(error.get("field")), error.get("message")
            # the message may name the field without where it sits ("a" for "params.a"),
            # as a whole name: "a: …" is not said by "data: …"
            names = [".".join(field.split(".")[i:]) for i in range(field.count(".") + 1)]
            if not any(re.search(rf"(?<![\w.]){re.escape(f'{name}: {problem}')}", message)
                       for name in names):
                parts.append(f"{field}: {problem}")
    return "; ".join(part for part in parts if part)
