"""Run inside a small tmpfs (see test_disk_full.py): a worker stopped while the disk is full.

A worker process runs a job that fills the disk holding the database and runs on;
the worker is asked to stop. Once it has exited, space comes back and the next
worker takes the job. Prints one JSON line: how the stopped worker's run ended and
what it logged, and the job as the next worker ended it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

from disk_fill import fill_disk  # beside this script (run as a file)

from jupyter_tasks import TaskContext, TaskManager, task
from jupyter_tasks.worker import run_worker

FOLDER = Path(sys.argv[1])  # on the small tmpfs: the database and the filler
RUNS = Path(sys.argv[2])  # elsewhere: one line per run of the job's body
FILLER = FOLDER / "filler"
DB = FOLDER / "tasks.db"


@task("fills_then_runs", mode="job")
async def fills_then_runs(ctx: TaskContext) -> str:
    with RUNS.open("a") as f:
        f.write("run\n")
    if RUNS.read_text().count("run") == 1:  # the first run only
        fill_disk(FILLER)
        ctx.log("full")  # kept in memory: the stop below is asked from here
        asyncio.get_running_loop().call_soon(STOP.set)
        await asyncio.sleep(120)  # until its worker stops it
    return "done"


STOP: asyncio.Event


class Kept(logging.Handler):
    """What the stopped worker logged at WARNING and above, and the loop's own reports."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


async def stopped_worker() -> None:
    """The first worker, in a process of its own: it stops once the disk is full."""
    global STOP
    STOP = asyncio.Event()
    kept = Kept()
    logging.getLogger().addHandler(kept)
    asyncio.get_running_loop().set_exception_handler(lambda _, context: kept.lines.append(
        f"LOOP {context.get('message')} {context.get('exception')!r}"))
    try:
        await run_worker(str(DB), concurrency=1, stop=STOP, lease_seconds=3,
                         heartbeat_interval=1)
        outcome = "returned"
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    print(json.dumps({"outcome": outcome, "logged": kept.lines}), flush=True)


async def main() -> None:
    async with TaskManager(DB, runs_background=False, make_default=False) as submitter:
        submitted = await submitter.submit("fills_then_runs")
    first = await asyncio.create_subprocess_exec(
        sys.executable, __file__, str(FOLDER), str(RUNS), "worker",
        stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(first.communicate(), 240)
    FILLER.unlink()
    async with TaskManager(DB, queues={"default": 1}, lease_seconds=3,
                           heartbeat_interval=1, make_default=False) as again:
        ended = await again.wait(submitted.id, timeout=120)
    print(json.dumps({**json.loads(out), "status": ended.status, "result": ended.result,
                      "lost_attempts": ended.lost_attempts, "attempts": ended.attempts,
                      "runs": RUNS.read_text().count("run")}), flush=True)


if __name__ == "__main__":
    asyncio.run(stopped_worker() if sys.argv[3:] == ["worker"] else main())
