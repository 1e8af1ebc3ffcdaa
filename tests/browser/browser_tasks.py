"""Tasks registered in the JupyterLab started by the browser tests and the panel benchmark."""

from __future__ import annotations

import time

from jupyter_tasks import TaskContext, task


@task("browser_slow", tags=["browser-test"], mode="job")
def browser_slow(ctx: TaskContext, steps: int = 600, step_seconds: float = 0.1) -> dict:
    """Report progress every step and stop as soon as a cancel is asked for."""
    for step in range(1, steps + 1):
        if ctx.cancelled:
            ctx.log(f"cancelled at step {step}")
            ctx.check_cancelled()
        time.sleep(step_seconds)
        ctx.progress(step, steps, f"step {step} of {steps}")
    return {"steps": steps}


@task("browser_tiny", tags=["browser-test"], mode="job")
def browser_tiny(n: int = 0) -> int:
    """Finish at once (for bursts of events)."""
    return n


@task("browser_fail", tags=["browser-test"], mode="job")
def browser_fail(message: str = "boom") -> None:
    """Fail at once with ``message``."""
    raise ValueError(message)


@task("browser_ask", tags=["browser-test"], mode="job")
def browser_ask(ctx: TaskContext, prompt: str = "Deploy?") -> str:
    """Wait for a person's answer and return it."""
    return ctx.confirm_sync(prompt, ["yes", "no"])
