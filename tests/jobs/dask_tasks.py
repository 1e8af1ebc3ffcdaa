"""Registered tasks the Dask tests send to workers (imported there by module name)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from jupyter_tasks import TaskContext, task


@task("dask_square", mode="job")
def dask_square(x: int, ctx: TaskContext) -> int:
    """x * x, with one progress report."""
    ctx.progress(1, 1, f"squared {x}")
    return x * x


@task("dask_steps", mode="job")
def dask_steps(steps: int, marker_dir: str, ctx: TaskContext, delay: float = 0.1) -> dict:
    """Report progress for ``steps`` steps; write this process's pid at start and a file when
    stopped by a cancel, so tests can find and check the worker side."""
    marker = Path(marker_dir)
    marker.mkdir(parents=True, exist_ok=True)
    (marker / f"started-{os.getpid()}").write_text(str(os.getpid()))
    for i in range(steps):
        if ctx.cancelled:
            (marker / "stopped-cooperatively").write_text(str(i))
            return {"stopped_at": i}
        ctx.progress(i, steps, f"step {i}")
        ctx.log(f"step {i} on {os.getpid()}")
        time.sleep(delay)
    ctx.progress(steps, steps, "done")
    return {"steps": steps, "pid": os.getpid()}


@task("dask_fail", mode="job")
def dask_fail(message: str) -> None:
    """Raise a KeyError."""
    raise KeyError(message)


@task("dask_diverged", mode="job")
def dask_diverged() -> dict:
    """A training step whose loss went to NaN, and a value Dask cannot pickle."""
    import threading

    return {"loss": float("nan"), "lock": threading.Lock(), "steps": 3}


@task("dask_pair", mode="job")
def dask_pair(x: int) -> tuple:
    """(x, x * x): a tuple, which msgpack would hand back as a list."""
    return (x, x * x)


@task("dask_big", mode="job")
def dask_big(n: int) -> str:
    """A result of ``n`` characters."""
    return "x" * n


@task("dask_print", mode="job")
def dask_print(word: str) -> str:
    """Print on both streams on the Dask worker."""
    import sys

    print(f"{word} printed on {os.getpid()}")
    print(f"{word} on stderr", file=sys.stderr)
    return word


@task("dask_deep", mode="job")
def dask_deep(depth: int) -> list:
    """A list nested ``depth`` levels deep."""
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


@task("dask_until_file", mode="job")
def dask_until_file(gate: str, started: str) -> str:
    """Write ``started``, wait for the file ``gate`` (never looking at ``ctx.cancelled``),
    then return: the test decides when the work ends."""
    Path(started).write_text(str(os.getpid()))
    while not os.path.exists(gate):
        time.sleep(0.005)
    return "ran to its end"


@task("dask_swallows_the_stop", mode="job")
def dask_swallows_the_stop(started: str) -> str:
    """Write ``started``, then work until stopped, catching the stop (a sloppy
    ``except:``) and returning what it had."""
    Path(started).write_text(str(os.getpid()))
    done = 0
    for _ in range(6000):  # 5 minutes: it only ends by being stopped
        try:
            time.sleep(0.05)
            done += 1
        except BaseException:
            return f"partial: {done}"
    return "all of it"


@task("dask_marked", mode="job")
def dask_marked(marks: str, gate: str, seconds: float = 120.0) -> str:
    """Append this process's pid to ``marks`` as it starts, then work (never looking at
    ``ctx.cancelled``) until the file ``gate`` exists or ``seconds`` have passed."""
    with open(marks, "a") as f:
        f.write(f"{os.getpid()}\n")
    deadline = time.monotonic() + seconds
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    return f"ran in {os.getpid()}"


@task("dask_until_stopped", mode="job")
def dask_until_stopped(marks: str, gate: str) -> str:
    """Append ``started <pid>`` to ``marks``, then work (never looking at ``ctx.cancelled``)
    until the file ``gate`` exists, appending ``ended`` then; stopped on the way (the
    worker's interrupt), it appends ``stopped <exception type>`` instead."""

    def mark(line: str) -> None:
        with open(marks, "a") as f:
            f.write(f"{line}\n")

    mark(f"started {os.getpid()}")
    try:
        while not os.path.exists(gate):
            time.sleep(0.01)
    except BaseException as exc:
        mark(f"stopped {type(exc).__name__}")
        raise
    mark("ended")
    return "ran to its end"


@task("dask_runs_a_program", mode="job")
def dask_runs_a_program(pid_file: str) -> int:
    """Wait in ``subprocess.run`` for a ten-minute program that writes its pid to ``pid_file``."""
    import subprocess
    script = f"echo $$ > {pid_file}; exec sleep 600"
    return subprocess.run(["bash", "-c", script], check=False).returncode


@task("dask_kills_its_worker", mode="job")
def dask_kills_its_worker(marks: str) -> str:
    """Append this process's pid to ``marks``, then end the worker process at once."""
    with open(marks, "a") as f:
        f.write(f"{os.getpid()}\n")
    os._exit(9)


class Unprintable(Exception):
    """An exception whose ``str()`` raises."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")


@task("dask_unprintable", mode="job")
def dask_unprintable() -> None:
    """Raise an exception that cannot be turned into text."""
    raise Unprintable()


@task("dask_exit", mode="job")
def dask_exit(code: int) -> None:
    """End with ``sys.exit(code)``, as a script pasted into a task may."""
    import sys

    sys.exit(code)


@task("dask_native_sleep", mode="job")
def dask_native_sleep(seconds: float, started: str) -> str:
    """Write ``started``, then sleep in C: no stop reaches it before it wakes."""
    Path(started).write_text(str(os.getpid()))
    time.sleep(seconds)
    return "woke"
