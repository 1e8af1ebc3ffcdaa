"""Demo tasks: ``jupyter lab --JupyterTasksApp.task_modules=examples/tasks.py``.

Each is registered with ``@task`` and shows one feature: a greeting, a long
task with progress and logs, a flaky job that succeeds on retry, a task asking
for confirmation, and one writing an artifact. Try them from the side panel,
the dashboard, or plain HTTP:

    curl -X POST -H "Authorization: token $TOKEN" \\
         localhost:8888/api/tasks/registry/greet/execute -d '{"params": {"name": "you"}}'
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import time
from pathlib import Path

from jupyter_tasks import TaskCancelled, TaskContext, task
from jupyter_tasks.paths import default_db_path


@task("greet", tags=["demo"])
def greet(name: str = "world") -> str:
    """Say hello (runs at once, beside the request)."""
    return f"Hello, {name}!"


@task("long_count", tags=["demo", "progress"], mode="job")
def long_count(ctx: TaskContext, seconds: float = 20.0, steps: int = 100) -> dict:
    """Count for ``seconds`` with progress and a log line every tenth step; cancellable."""
    step = 0
    try:
        for step in range(1, steps + 1):
            time.sleep(seconds / steps)
            ctx.progress(step, steps, f"step {step} of {steps}")
            if step % 10 == 0:
                ctx.log(f"reached step {step}")
    except TaskCancelled:
        # a cancel (or the timeout) is raised in this thread at its next line: say where,
        # then let it end the task
        ctx.log(f"cancelled at step {step}")
        raise
    return {"steps": steps, "seconds": seconds}


def _attempts_file(ctx: TaskContext) -> Path:
    folder = Path(os.fspath(default_db_path())).with_suffix(".demo")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"flaky-{ctx.task_id}"


@task("flaky", tags=["demo", "retry"], mode="job")
def flaky(ctx: TaskContext) -> str:
    """Fail the first attempt, succeed on the retry (submit with max_retries >= 1)."""
    marker = _attempts_file(ctx)
    if not marker.exists():
        marker.write_text("failed once\n")
        raise RuntimeError("first attempt fails on purpose; the retry will succeed")
    marker.unlink()
    return "succeeded on retry"


@task("ask_first", tags=["demo", "confirm"], mode="background")
async def ask_first(ctx: TaskContext, what: str = "delete the scratch files") -> str:
    """Ask a person before doing something; answer from any view."""
    answer = await ctx.confirm(f"Really {what}?", ["yes", "no"])
    if answer != "yes":
        return f"not done: {what}"
    await asyncio.sleep(0.1)
    return f"done: {what}"


@task("make_report", tags=["demo", "artifact"], mode="job")
async def make_report(ctx: TaskContext, rows: int = 10) -> dict:
    """Write ``report.csv`` as an artifact of the task."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["n", "square"])
    for n in range(rows):
        writer.writerow([n, n * n])
        ctx.progress(n + 1, rows)
    record = await ctx.artifact("report.csv", out.getvalue().encode(), "text/csv")
    return {"artifact": record["name"], "rows": rows}
