"""Registered tasks that the engine tests run in this process and in worker subprocesses."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from jupyter_tasks import TaskContext, task


@task("add", tags=["math", "demo"])
def add(a: int, b: int = 2) -> int:
    """Add two numbers."""
    return a + b


@task("echo_async", tags=["demo"])
async def echo_async(value: str) -> str:
    """Return the value after yielding once."""
    await asyncio.sleep(0)
    return value


@task("slow_job", mode="job")
def slow_job(seconds: float, marker: str, ctx: TaskContext) -> str:
    """Sleep in small steps, writing a marker file once it has started."""
    Path(marker).write_text(str(os.getpid()))
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ctx.progress(seconds - (end - time.monotonic()), seconds)
        time.sleep(0.05)
    return f"slept {seconds}"


@task("spin")
def spin(ctx: TaskContext) -> None:
    """A pure-Python loop that never ends on its own."""
    n = 0
    while True:
        n += 1
        if n % 100_000 == 0:
            ctx.progress(n)


@task("flaky")
def flaky(counter: str, fail_times: int = 1) -> str:
    """Fail the first ``fail_times`` calls (counted in a file), then succeed."""
    path = Path(counter)
    calls = int(path.read_text()) if path.exists() else 0
    path.write_text(str(calls + 1))
    if calls < fail_times:
        raise RuntimeError(f"flaky failure {calls + 1}")
    return f"ok after {calls + 1}"


@task("ask")
async def ask(ctx: TaskContext) -> str:
    """Ask a question and return the answer."""
    answer = await ctx.confirm("Delete everything?", ["yes", "no"])
    return f"answered {answer}"


@task("make_artifact")
async def make_artifact(text: str, ctx: TaskContext) -> int:
    """Store ``text`` as an artifact."""
    art = await ctx.artifact("out.txt", text.encode())
    return art["size"]


@task("noop", mode="job")
async def noop() -> None:
    """Do nothing: the unit of the throughput benchmark."""


@task("until_file", mode="job")
def until_file(gate: str) -> str:
    """Wait for the file ``gate`` (never looking at ``ctx.cancelled``), then return."""
    while not os.path.exists(gate):
        time.sleep(0.005)
    return "ran to its end"


@task("swallows_the_stop", mode="job")
def swallows_the_stop() -> str:
    """Two seconds of work that catches whatever stops it (a sloppy ``except:``) and
    returns what it had."""
    done = 0
    for _ in range(40):
        try:
            time.sleep(0.05)
            done += 1
        except BaseException:
            return f"partial: {done} of 40"
    return "all 40"


ASYNC_SWALLOWING: set[str] = set()  # ids of the tasks inside async_swallows_the_stop's try


@task("async_swallows_the_stop", mode="job")
async def async_swallows_the_stop(ctx: TaskContext) -> str:
    """Two seconds of async work that catches the cancel that stops it and returns."""
    try:
        ASYNC_SWALLOWING.add(ctx.task_id)
        await asyncio.sleep(2)
    except asyncio.CancelledError:
        return "partial async"
    return "all of it"


@task("fork_and_stop", mode="job")
def fork_and_stop() -> str:
    """Fork a child, stop it with SIGTERM (as a multiprocessing pool's terminate() does)."""
    import signal

    pid = os.fork()
    if pid == 0:  # the child: waits to be stopped, else leaves after a while
        time.sleep(30)
        os._exit(0)
    os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return f"ended by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited {os.WEXITSTATUS(status)}"


def _square(n: int) -> int:
    return n * n


@task("pool_squares", mode="job")
def pool_squares(n: int = 4) -> list[int]:
    """Squares in a forked multiprocessing pool, ended by terminate() as its with-block does."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(2) as pool:
        return pool.map(_square, range(n))


@task("fork_prints", mode="job")
def fork_prints() -> int:
    """Fork a child that prints a line, then wait for it."""
    pid = os.fork()
    if pid == 0:
        print("a line from the forked child", flush=True)
        os._exit(0)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
