"""Run inside a small tmpfs (see test_disk_full.py): a job whose end meets a full disk.

The job fills the disk holding the database as its last act, so its end cannot be
written; space comes back once the engine has said it waits for it. Prints one JSON
line: the task row as it ended and how many times the job's body ran.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

from disk_fill import fill_disk  # beside this script (run as a file)

from jupyter_tasks import TaskContext, TaskManager, task
from jupyter_tasks.exceptions import StoreFull

FOLDER = Path(sys.argv[1])  # on the small tmpfs: the database and the filler
RUNS = Path(sys.argv[2])  # elsewhere: one line per run of the job's body
# "big": the result is past the row's limit, so its end writes an artifact file first
RESULT_CHARS = 400_000 if sys.argv[3:] == ["big"] else 0
# "chatty": the job prints lines before and after it fills the disk
CHATTY = sys.argv[3:] == ["chatty"]
FILLER = FOLDER / "filler"


@task("fills_the_disk", mode="job")
def fills_the_disk(ctx: TaskContext) -> str:
    with RUNS.open("a") as f:
        f.write("run\n")
    if CHATTY:
        for n in range(200):
            ctx.write(f"before {n}\n")
    fill_disk(FILLER)  # up to the last byte the disk has
    if CHATTY:
        for n in range(200):
            ctx.write(f"after {n}\n")
    return "x" * RESULT_CHARS if RESULT_CHARS else "done"


class SaysItWaits(logging.Handler):
    """Frees the disk once the engine said that an end waits for space (not before)."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    def emit(self, record: logging.LogRecord) -> None:
        if "waits for space" in record.getMessage():
            self.loop.call_soon_threadsafe(self.waiting.set)


async def main() -> None:
    said = SaysItWaits()
    logging.getLogger("jupyter_tasks").addHandler(said)
    # a lease shorter than the wait for space: the old code's reaper took the job back
    async with TaskManager(FOLDER / "tasks.db", queues={"default": 1}, lease_seconds=3,
                           heartbeat_interval=1, make_default=False) as manager:
        submitted = await manager.submit("fills_the_disk")
        await asyncio.wait_for(said.waiting.wait(), 60)
        try:  # a submit meanwhile: refused, saying why (503 with Retry-After over REST)
            await manager.submit_spec({"command": ["true"]}, mode="job", queue="parked")
            refused = None
        except StoreFull as exc:
            refused = exc.message
        await asyncio.sleep(manager.config.lease_seconds * 2)  # past its lease, disk full
        FILLER.unlink()
        ended = await manager.wait(submitted.id, timeout=120)
        artifacts = await manager.store.list_artifacts(submitted.id)
        logged = "".join(e.text for e in await manager.store.get_logs(submitted.id, 0, 10_000))
        leftovers = [p.name for p in manager.store.artifacts_dir.rglob("*.tmp")]
        print(json.dumps({"status": ended.status,
                          "result": ended.result if not RESULT_CHARS else
                          [(a.name, a.size) for a in artifacts],
                          "leftovers": leftovers,
                          **({"lines": logged.count("\n")} if CHATTY else {}),
                          "attempts": ended.attempts, "lost_attempts": ended.lost_attempts,
                          "runs": RUNS.read_text().count("run"), "refused": refused}),
              flush=True)


if __name__ == "__main__":
    asyncio.run(main())
