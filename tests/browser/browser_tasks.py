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


@task("browser_retry", tags=["browser-test"], mode="job")
def browser_retry(ctx: TaskContext, counter: str, fail_times: int = 1, lines: int = 5) -> int:
    """Print ``lines`` lines, then fail for the first ``fail_times`` attempts."""
    from pathlib import Path

    path = Path(counter)
    calls = int(path.read_text()) if path.exists() else 0
    path.write_text(str(calls + 1))
    for n in range(1, lines + 1):
        ctx.write(f"attempt {calls + 1} line {n}\n")
    if calls < fail_times:
        raise RuntimeError(f"flaky failure {calls + 1}")
    return calls + 1


@task("browser_many_lines", tags=["browser-test"], mode="job")
def browser_many_lines(ctx: TaskContext, lines: int = 25_000) -> int:
    """Print ``lines`` numbered lines at once."""
    for n in range(1, lines + 1):
        ctx.write(f"line {n}\n")
    return lines


@task("browser_chatty", tags=["browser-test"], mode="job")
def browser_chatty(ctx: TaskContext, lines: int = 100_000, every: float = 0.02) -> int:
    """Print a numbered line every ``every`` seconds until cancelled."""
    for n in range(1, lines + 1):
        if ctx.cancelled:
            ctx.check_cancelled()
        ctx.write(f"line {n}: {'lorem ipsum dolor sit amet ' * 6}\n")
        time.sleep(every)
    return lines


@task("browser_bar", tags=["browser-test"], mode="job")
def browser_bar(ctx: TaskContext, steps: int = 10) -> int:
    """Draw a progress bar in place on stderr, as tqdm does, across several flushes."""
    import time

    for i in range(steps + 1):
        ctx.write(f"\r{i * 100 // steps:3d}%|{'#' * i:<{steps}}|", "stderr")
        time.sleep(0.05)
    ctx.write("\n", "stderr")
    ctx.write("windows line\r\n")
    ctx.write("done\n")
    return steps


@task("browser_choose", tags=["browser-test"], mode="job")
def browser_choose(ctx: TaskContext, prompt: str, choices: list[str]) -> str:
    """Wait for a person to pick one of ``choices``."""
    return ctx.confirm_sync(prompt, choices)


@task("browser_wait_file", tags=["browser-test"], mode="job")
def browser_wait_file(ctx: TaskContext, path: str) -> str:
    """Wait, reporting nothing, until the file ``path`` exists (or a cancel)."""
    from pathlib import Path

    while not Path(path).exists():
        ctx.check_cancelled()
        time.sleep(0.05)
    return "seen"


@task("browser_ask_twice", tags=["browser-test"], mode="job")
def browser_ask_twice(ctx: TaskContext, gate: str, first: str = "Delete staging?",
                      second: str = "Delete production?") -> list[str]:
    """Ask two yes/no questions, the second once the file ``gate`` exists; return both answers.

    (The gate keeps the first answer's second delivery, through the event tail, from
    answering the second question: an engine race the panel's tests do not cover.)
    """
    from pathlib import Path

    answers = [ctx.confirm_sync(first, ["yes", "no"])]
    while not Path(gate).exists():
        ctx.check_cancelled()
        time.sleep(0.05)
    return [*answers, ctx.confirm_sync(second, ["yes", "no"])]
