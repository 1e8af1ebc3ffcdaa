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

from ..models import Task

# the line end_of_run prints: what the notebook job reads back
REPORT_MARK = "jupyter-tasks background report: "
# the code a notebook job runs in the kernel after the last cell (in a cell that is
# not kept in the executed notebook)
END_OF_RUN_SOURCE = "__import__('jupyter_tasks.kernel.headless', fromlist=['_']).end_of_run()"


def wait_for_background(timeout: float | None = None) -> list[Task]:
    """Wait until every task this kernel started in the background has ended; their ends.

    Cards shown for them take their end as their text form. ``timeout``: seconds in
    all, then ``TimeoutError`` (the tasks go on). Nothing to wait for before
    ``%load_ext jupyter_tasks``.
    """
    from . import kernel_side

    side = kernel_side()
    if side is None:
        return []
    manager = side.manager
    deadline = None if timeout is None else time.monotonic() + timeout
    ended: list[Task] = []
    for task_id, shown in list(side.background.items()):
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            task = manager.run_sync(manager.wait(task_id), left)
        except TimeoutError:
            raise TimeoutError(f"background task {task_id} still runs after {timeout} s"
                               ) from None
        if shown is not None:
            shown.ended(manager, task)
        ended.append(task)
    return ended


def end_of_run() -> None:
    """Wait for the background tasks, then print one line of JSON the notebook job reads."""
    ended = wait_for_background()
    report: list[dict[str, Any]] = [
        {"id": t.id, "label": t.label, "status": t.status, "error": t.error} for t in ended]
    print(REPORT_MARK + json.dumps(report, default=str), flush=True)
