"""Run inside a small tmpfs (see test_disk_full.py): a sound database on a full disk, opened.

Prints one JSON line: what checking and starting said while the disk was full, and
whether a start succeeded once space came back.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from disk_fill import fill_disk  # beside this script (run as a file)

from jupyter_tasks import TaskManager, dbfile

FOLDER = Path(sys.argv[1])


def said(exc: BaseException) -> dict[str, str]:
    return {"type": type(exc).__name__, "message": str(exc)}


async def main() -> None:
    path = FOLDER / "tasks.db"
    async with TaskManager(path, queues={}, make_default=False) as m:
        await m.submit_spec({"command": ["true"]}, mode="job", queue="parked")
    filler = FOLDER / "filler"
    fill_disk(filler)  # up to the last byte the disk has
    report: dict[str, object] = {}
    try:
        dbfile.verify(path)
        report["verify"] = None
    except Exception as exc:
        report["verify"] = said(exc)
    manager = TaskManager(path, queues={"default": 1}, make_default=False)
    try:
        await manager.start()
        report["start"] = None
        await manager.stop()
    except Exception as exc:
        report["start"] = said(exc)
        if manager.store is not None:
            await manager.store.close()
    filler.unlink()
    async with TaskManager(path, queues={}, make_default=False) as again:
        report["tasks_after"] = len(await again.store.list_tasks())
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
