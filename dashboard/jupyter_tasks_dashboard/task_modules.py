"""The task modules a database-mode dashboard imports before its first rerun or fork.

The same ones the server and ``jupyter tasks submit`` import: the Jupyter
configuration's ``JupyterTasksApp.task_modules``, ``$JUPYTER_TASKS_MODULES`` and the
``jupyter_tasks`` entry points. A fork's parameters are then checked as a submit's
are, and refused at once, where they were written as a job that failed when it ran.
A module that cannot be imported here is skipped: its tasks' reruns and forks are
written as queued jobs for a worker that has it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading

log = logging.getLogger(__name__)
_lock = threading.Lock()
_skipped: dict[str, str] | None = None  # once imported: module -> why it was skipped


def import_task_modules() -> dict[str, str]:
    """Import the task modules once per process; those skipped, with why (blocking)."""
    global _skipped
    with _lock:
        if _skipped is not None:
            return _skipped
        from jupyter_tasks.registry import configured_task_modules, load_task_modules

        skipped: dict[str, str] = {}
        # its warnings about unreadable config files would be drawn over the screen
        with contextlib.redirect_stderr(io.StringIO()):
            wanted = configured_task_modules()
        load_task_modules(wanted, skipped=skipped)  # $JUPYTER_TASKS_MODULES, entry points too
        for spec, why in skipped.items():
            log.warning("task module %s not imported (its reruns and forks go to a worker "
                        "unchecked): %s", spec, why)
        _skipped = skipped
        return skipped
