"""Executors for the ``notebook`` and ``code`` job kinds.

Importing this package is cheap: nbclient is only imported when a notebook runs.
``install_job_executors(manager)`` (called by ``TaskManager.__init__``) adds them
to ``manager.executors``; ``jupyter_tasks.dask_backend`` runs the same executors
on Dask workers.
"""

from __future__ import annotations

from typing import Any

from .code import exec_code
from .notebook import exec_notebook, resolve_notebook_path, validate_notebook_spec

__all__ = [
    "exec_code",
    "exec_notebook",
    "install_job_executors",
    "job_executors",
    "resolve_notebook_path",
    "validate_notebook_spec",
]


def job_executors() -> dict[str, Any]:
    """Kind -> executor for the job kinds this package provides."""
    return {"notebook": exec_notebook, "code": exec_code}


def install_job_executors(manager: Any) -> None:
    """Register the notebook and code executors on a ``TaskManager`` (kept if already set)."""
    for kind, executor in job_executors().items():
        manager.executors.setdefault(kind, executor)
