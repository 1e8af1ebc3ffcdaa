"""Small helpers shared by the job executors."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import re
import shutil
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from stat import S_ISREG
from typing import Any, TypeVar

T = TypeVar("T")

# a task id as ``models.new_task_id`` makes it: one that names a temp file of its
# attempt holds no separator, no pattern and nothing else that could leave the folder
PLAIN_TASK_ID = re.compile(r"[0-9a-f]{32}")


async def run_to_end(coro: Coroutine[Any, Any, T]) -> T:
    """Await clean-up work to its end even if the caller is cancelled again meanwhile.

    A cancel and a timeout can both reach a job (and a cancel request arrives
    twice: directly and through the event feed); ``asyncio.shield`` alone would
    let the second one return early while the kernel shutdown or the artifact
    write is still under way. A cancel received meanwhile is raised afterwards.
    """
    task = asyncio.ensure_future(coro)
    interrupted = False
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done():
                raise
            interrupted = True
    if interrupted:
        raise asyncio.CancelledError
    return result


def keep_own_end(running: Any) -> bool:
    """``RunningTask.keep_own_end`` of the attempt's record: whether the attempt keeps the
    end its work reached before a cancel, timeout or shutdown came (never on a Dask worker,
    whose record has no such stop)."""
    keep = getattr(running, "keep_own_end", None)
    return keep is not None and keep()


def kept_exit(running: Any) -> int | None:
    """``RunningTask.kept_exit`` of the attempt's record: the exit code of a process that
    ended before the stop came, if the attempt keeps it (never on a Dask worker)."""
    kept = getattr(running, "kept_exit", None)
    return kept() if kept is not None else None


def attempt_prefix(what: str, task_id: str, attempt: int) -> str | None:
    """``jupyter-tasks-<what>-<task id>-<attempt>-``: how what one attempt keeps in the temp
    folder is named, so the reaper of a lost attempt finds it (``remove_left_in_temp``).

    None for a task id that is not a plain one: its files get the temp folder's usual
    names, and no reaper looks for them.
    """
    if not PLAIN_TASK_ID.fullmatch(task_id):
        return None
    return f"jupyter-tasks-{what}-{task_id}-{int(attempt)}-"


def remove_left_in_temp(prefix: str | None) -> list[str]:
    """Remove the files and folders of this temp folder whose names start with ``prefix``
    (an ``attempt_prefix``), never what a link points to; the paths removed.

    A worker killed mid-attempt never reaches the clean-up of what its attempt made; the
    reaper that settles the attempt, once its process group is gone, calls this.
    """
    if prefix is None:
        return []
    removed = []
    for path in Path(tempfile.gettempdir()).glob(glob.escape(prefix) + "*"):
        if path.is_symlink():
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                path.unlink(missing_ok=True)
            except OSError:
                # not ours to remove (another account's file with the attempt's name,
                # seen in the kernel's command line): stepped over, as rmtree does, or
                # the reaper calling this fails on it at every pass
                continue
        removed.append(str(path))
    return removed


PROGRESS_POLL_SECONDS = 0.1  # how often a job's progress file is looked at
PROGRESS_FILE_MAX_BYTES = 64 * 1024  # a report is a few numbers and one status line


async def follow_progress_file(path: str, ctx: Any) -> None:
    """Until cancelled: each new report in ``path`` (written by the job's process, see
    ``kernel.progress``) recorded as the task's progress."""
    seen = None
    while True:
        seen = take_progress_file(path, ctx, seen)
        await asyncio.sleep(PROGRESS_POLL_SECONDS)


# the path is the job's to make: a FIFO must not wait for a writer (the open would hold
# the worker's loop for good), a link must not lead to /dev/zero (a read without end)
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)


def take_progress_file(path: str, ctx: Any, seen: Any = None) -> Any:
    """Record the report in ``path`` unless it is the one ``seen``; what was seen now.

    Only a regular file of at most ``PROGRESS_FILE_MAX_BYTES`` is read (the job's program
    can put anything at that path); whatever else is there is no report.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        return seen  # nothing reported yet, or a link: no report of ours
    try:
        stat = os.fstat(fd)
        # each report replaces the file: a new inode, whatever its time stamp's resolution
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if stamp == seen or not S_ISREG(stat.st_mode) \
                or stat.st_size > PROGRESS_FILE_MAX_BYTES:
            return stamp
        data = os.read(fd, PROGRESS_FILE_MAX_BYTES + 1)
    except OSError:
        return seen
    finally:
        os.close(fd)
    try:
        report = json.loads(data)
    except (ValueError, RecursionError):  # 64 KiB of "[" is past the parser's depth
        return seen  # not one of ours: the next look
    if isinstance(report, dict):
        message = report.get("message")
        ctx.progress(report.get("current"), report.get("total"),
                     message if isinstance(message, str) else None)
    return stamp
