"""Tasks registered for the server tests (imported through ``JupyterTasksApp.task_modules``)."""

from __future__ import annotations

import asyncio
import time

from jupyter_tasks import TaskContext, task


@task("srv_add", tags=["test", "math"])
def srv_add(a: int, b: int = 1) -> int:
    """Add two numbers."""
    return a + b


@task("srv_fail", tags=["test"])
def srv_fail(message: str = "boom") -> None:
    """Always raise."""
    raise ValueError(message)


@task("srv_job", tags=["test"], mode="job")
def srv_job(value: int = 0) -> dict:
    """A quick durable job."""
    return {"value": value}


@task("srv_slow", tags=["test"], mode="job")
def srv_slow(ctx: TaskContext, seconds: float = 5.0, steps: int = 50) -> str:
    """A job that takes a while, reports progress and logs, and stops when cancelled."""
    for step in range(steps):
        ctx.check_cancelled()
        time.sleep(seconds / steps)
        ctx.progress(step + 1, steps)
        ctx.log(f"step {step + 1}")
    return "slept"


@task("srv_wait", tags=["test"], mode="background")
async def srv_wait(seconds: float = 5.0) -> str:
    """Run in the server beside the request; sleeps asynchronously."""
    await asyncio.sleep(seconds)
    return "waited"


@task("srv_confirm", tags=["test"], mode="background")
async def srv_confirm(ctx: TaskContext) -> str:
    """Ask a question and return the answer."""
    return await ctx.confirm("proceed?", ["yes", "no"])


@task("srv_artifact", tags=["test"], mode="job")
async def srv_artifact(ctx: TaskContext, text: str = "a,b\n1,2\n") -> str:
    """Write one artifact."""
    await ctx.artifact("report.csv", text.encode(), "text/csv")
    return "written"


@task("srv_keep", tags=["test"], mode="job")
async def srv_keep(ctx: TaskContext, name: str, data: str,
                   content_type: str | None = None) -> str:
    """Keep a caller's text as an artifact, as a report task keeps what it was given."""
    await ctx.artifact(name, data, content_type)
    return "kept"


@task("srv_print", tags=["test"], mode="job")
def srv_print(word: str = "hello") -> str:
    """Print to stdout and stderr from the thread a plain function runs in."""
    import sys

    print(f"{word} from print")
    print(f"{word} on stderr", file=sys.stderr)
    return word


@task("srv_print_async", tags=["test"], mode="background")
async def srv_print_async(word: str = "hello") -> str:
    """Print from the coroutine and from an asyncio task it starts."""

    async def helper() -> None:
        print(f"{word} from a child task")

    print(f"{word} from a coroutine")
    await asyncio.ensure_future(helper())
    return word


def _square(n: int) -> int:
    return n * n


@task("srv_pool_squares", tags=["test"], mode="job")
def srv_pool_squares(n: int = 4) -> list:
    """Squares in a forked multiprocessing pool, ended by terminate() as its with-block does."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(2) as pool:
        return pool.map(_square, range(n))


@task("srv_fork_and_stop", tags=["test"], mode="job")
def srv_fork_and_stop() -> str:
    """Fork a child and stop it at once with SIGTERM."""
    import os
    import signal

    pid = os.fork()
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    return f"ended by {signal.Signals(os.WTERMSIG(status)).name}" if os.WIFSIGNALED(status) \
        else f"exited {os.WEXITSTATUS(status)}"
