"""The ``notebook`` and ``code`` job kinds (plug-ins with ``validate`` and ``execute``).

Importing this package is cheap: nbclient is only imported when a notebook runs.
The composition roots install these kinds (``jupyter_tasks.kinds.standard()``);
``jupyter_tasks.dask_backend`` runs the same executors on Dask workers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..context import TaskContext
from ..engine.kinds import JobKind, ValidSpec, check_obj, check_source, check_str
from ..engine.state import RunningTask
from ..models import Task, TaskKind
from ..registry import Registry
from .code import exec_code, remove_lost_work
from .notebook import (
    check_notebook_file,
    exec_notebook,
    remove_lost_kernel_files,
    resolve_notebook_path,
    validate_notebook_spec,
)

__all__ = [
    "CodeKind",
    "NotebookKind",
    "exec_code",
    "exec_notebook",
    "job_kinds",
    "resolve_notebook_path",
    "validate_notebook_spec",
]


class NotebookKind:
    """Execute a notebook with parameters in a fresh kernel."""

    kind = TaskKind.NOTEBOOK.value
    work_field = "notebook"

    def validate(self, spec: Mapping[str, Any], registry: Registry) -> ValidSpec:
        """A missing notebook or a parameter that cannot be a variable: 422 now, not later."""
        clean = {"notebook": check_str(spec["notebook"], "notebook"),
                 "parameters": check_obj(spec.get("parameters") or {}, "parameters"),
                 "root_dir": spec.get("root_dir") or os.getcwd()}
        # where else to write the executed notebook (checked by the validation below)
        clean.update({k: spec[k] for k in ("output_path", "export_html") if k in spec})
        validate_notebook_spec(clean, read=False)
        return ValidSpec(clean, params=clean["parameters"], label=clean["notebook"])

    def check_files(self, spec: Mapping[str, Any]) -> None:
        """That the notebook file is a notebook (read on a thread: it may be large)."""
        check_notebook_file(resolve_notebook_path(spec["notebook"], spec.get("root_dir")),
                            spec["notebook"])

    async def execute(self, task: Task, ctx: TaskContext, run: RunningTask) -> Any:
        """Run the notebook; the executed copy is an artifact."""
        return await exec_notebook(task, ctx, run)

    def lost_attempt(self, task: Task) -> None:
        """Remove the kernel connection file a killed worker left for this attempt, on
        this host."""
        remove_lost_kernel_files(task.id, task.attempts)


class CodeKind:
    """Run Python source in a fresh interpreter with ``input_data``."""

    kind = TaskKind.CODE.value
    work_field = "code"

    def validate(self, spec: Mapping[str, Any], registry: Registry) -> ValidSpec:
        """The code must be a non-empty string Python can compile from (no NUL byte)."""
        return ValidSpec({"code": check_source(spec["code"], "code"),
                          "input_data": spec.get("input_data")}, label="code")

    async def execute(self, task: Task, ctx: TaskContext, run: RunningTask) -> Any:
        """Run the code in its own process group."""
        return await exec_code(task, ctx, run)

    def lost_attempt(self, task: Task) -> None:
        """Remove the working folder a killed worker left for this attempt, on this host."""
        remove_lost_work(task.id, task.attempts)


def job_kinds() -> list[JobKind]:
    """The job kinds this package provides."""
    return [NotebookKind(), CodeKind()]
