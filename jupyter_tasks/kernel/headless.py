"""Background work in a notebook run headless (a notebook job, papermill, nbconvert).

A ``%%background`` cell returns at once; run headless, the notebook's last cell
ends while that work goes on, and the runner then shuts the kernel down under it
(the work ended ``interrupted``, the saved card said ``running``). Here the run
waits for what this kernel started in the background, then turns each card's text
form (what a saved notebook shows without the widget) into its end and output.

A notebook job calls :func:`end_of_run` itself after the last cell; under papermill
or nbconvert, a last cell ``jupyter_tasks.wait_for_background()`` does the same.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ..context import current_context
from ..exceptions import BackgroundTaskFailed
from ..models import Task, TaskMode
from .handle import check_wait_timeout

# the ends that fail the run as a failing cell would; a cancel was someone's choice
# (a later cell's, the panel's), as stopping a cell is
FAILED_ENDS = frozenset({"failed", "timeout", "oom", "interrupted"})
# the output end_of_run displays (its own type: no print of a thread can garble it),
# which the notebook job reads back
REPORT_MIME = "application/vnd.jupyter-tasks.background-report+json"
# the code a notebook job runs in the kernel after the last cell (in a cell that is
# not kept in the executed notebook); a kernel without jupyter_tasks reports nothing
END_OF_RUN_SOURCE = (
    "try:\n"
    "    from jupyter_tasks.kernel.headless import end_of_run as _jupyter_tasks_end\n"
    "except ImportError:\n"
    "    pass\n"
    "else:\n"
    "    _jupyter_tasks_end()\n")


# lines an Out of wait_for_background lists before it says how many more there are
ENDS_SHOWN = 20


class BackgroundEnds(list):  # type: ignore[type-arg]
    """The ends :func:`wait_for_background` returns: a list of ``Task``, shown short.

    The guide ends a headless notebook with it as the last line: its ``Out`` was every
    task's whole repr (spec, source, hashes, usage), a screenful each, kept in the saved
    notebook. It reads as one line per task now: status, label, id, and the error.
    """

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for task in self:
            counts[task.status] = counts.get(task.status, 0) + 1
        noun = "task" if len(self) == 1 else "tasks"
        lines = [f"{len(self)} background {noun} ended"
                 + (": " + ", ".join(f"{n} {status}" for status, n in counts.items())
                    if counts else "")]
        for task in self[:ENDS_SHOWN]:
            error = task.error or {}
            message = (str(error.get("message") or "").splitlines() or [""])[0]
            # a cancel is no error (a card says just "cancelled")
            said = f"  {error.get('type')}: {message}" \
                if error and task.status != "cancelled" else ""
            lines.append(f"  {task.status:<11} {task.label or task.name or ''!r} "
                         f"id={task.id}{said}"[:300])
        if len(self) > ENDS_SHOWN:
            lines.append(f"  … and {len(self) - ENDS_SHOWN} more")
        return "\n".join(lines)


def wait_for_background(timeout: float | None = None, *, check: bool = True) -> list[Task]:
    """Wait until every task this kernel started in the background has ended; their ends.

    ``%%background`` cells, ``--background`` subprocesses and whatever else runs in
    this kernel beside them (``run_background``). Cards shown for them take their end
    as their text form. ``timeout``: seconds in all, then ``TimeoutError`` (the tasks
    go on). ``check``: then raise ``BackgroundTaskFailed`` if one ended failed, timed
    out, ran out of memory or was interrupted (not one cancelled), so that the cell,
    and a papermill or nbconvert run, fails. Nothing to wait for before
    ``%load_ext jupyter_tasks``.
    """
    from ..runtime import get_default_manager
    from . import kernel_side

    side = kernel_side()
    manager = side.manager if side is not None else get_default_manager()
    if manager is None or not manager.running:
        return BackgroundEnds()
    # all of the session's (each call reports them all: a last cell's wait and the
    # notebook job's check after it see the same ends)
    shown_cards: dict[str, Any] = side.background_so_far() if side is not None else {}
    # and what else runs here beside the cells (run_background, a --no-card cell):
    # local work, not jobs a worker claimed from the shared queue
    for task_id, running in list(manager.state.running.items()):
        if running.task.mode != TaskMode.JOB.value:
            shown_cards.setdefault(task_id, None)
    # never the task calling this (a background cell waiting for the others)
    ctx = current_context.get(None)
    if ctx is not None:
        shown_cards.pop(ctx.task_id, None)
    check_wait_timeout(timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    ended: list[Task] = BackgroundEnds()
    for task_id, shown in shown_cards.items():
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        # the wait itself is bounded: a task that ended long ago answers at once
        task = manager.run_sync(manager.wait(task_id, left), None)
        if not task.is_terminal:
            raise TimeoutError(f"background task {task_id} still runs after {timeout} s")
        if shown is not None and side is not None and task_id not in side.cards_ended:
            shown.ended(manager, task)
            side.cards_ended.add(task_id)
        ended.append(task)
    failed = [task for task in ended if task.status in FAILED_ENDS]
    if check and failed:
        raise BackgroundTaskFailed(failed)
    return ended


def end_of_run() -> None:
    """Wait for the background tasks, then display their ends for the notebook job."""
    from IPython.display import display

    ended = wait_for_background(check=False)  # the job reads the ends: a report, not a raise
    report: list[dict[str, Any]] = [
        {"id": t.id, "label": t.label, "status": t.status, "error": t.error} for t in ended]
    display({REPORT_MIME: json.loads(json.dumps(report, default=str))}, raw=True)
