"""Tasks the dashboard tests submit to a real server (imported through JUPYTER_TASKS_MODULES)."""

from __future__ import annotations

import time

from jupyter_tasks import TaskContext, task


@task("dash_steps", tags=["dashboard-test"], mode="job")
def dash_steps(ctx: TaskContext, steps: int = 200, delay: float = 0.05) -> int:
    """Count slowly with progress and a log line per step; stops when cancelled."""
    for step in range(1, steps + 1):
        ctx.check_cancelled()
        time.sleep(delay)
        ctx.progress(step, steps, f"step {step}")
        ctx.log(f"step {step} done")
    return steps


@task("dash_echo", tags=["dashboard-test"], mode="job")
def dash_echo(value: int = 0, word: str = "plain") -> dict:
    """Return the parameters it ran with."""
    return {"value": value, "word": word}


@task("dash_ask", tags=["dashboard-test"], mode="job")
async def dash_ask(ctx: TaskContext) -> str:
    """Ask a question and return the answer."""
    return await ctx.confirm("ship it?", ["ship", "hold"])
