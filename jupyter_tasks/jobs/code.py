"""Code jobs: Python source run in a fresh ``sys.executable`` process.

Each attempt gets its own temporary working folder::

    <tmp>/jupyter-tasks-code-<task id>-<attempt>-XXXX/
        main.py        the source
        input.json     ``spec["input_data"]`` as JSON   ($JUPYTER_TASKS_INPUT)
        output/        every file written here becomes an artifact ($JUPYTER_TASKS_OUTPUT)

Artifact names: a file ``output/a.csv`` is ``a.csv``; a file in a subfolder,
``output/plots/b.png``, is flattened to ``plots__b.png``. Characters an
artifact name may not hold become ``_``; hidden files (a part starting with
``.``) and symlinks are skipped and noted in the log. Output files are kept
also when the program fails, runs out of memory or times out (as far as the
program wrote them).

stdout/stderr stream into the task log; ``memory_limit_mb`` is enforced on the
whole process tree (status ``oom``); a non-zero exit is ``failed`` with stderr's last line (a
traceback's "ValueError: …"), then its end, as the message. The folder is removed
after the attempt; one whose worker was killed mid-attempt is removed by the reaper
that settles the attempt (on this host, in its temp folder).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections import deque
from pathlib import Path
from typing import Any

from ..kernel.progress import PROGRESS_FILE_ENV
from ..runners import run_process
from ._util import (
    attempt_prefix,
    follow_progress_file,
    kept_exit,
    remove_left_in_temp,
    run_to_end,
    take_progress_file,
)

FLATTEN_SEPARATOR = "__"
STDERR_TAIL_CHARS = 2000
LAST_LINE_CHARS = 300  # of the message's first line
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]")


class CodeFailed(Exception):
    """A code job's process exited with a non-zero code."""

    def __init__(self, returncode: int, stderr_tail: str, last_line: str | None = None) -> None:
        tail = stderr_tail.strip()
        # what went wrong first (a traceback's last line, "ValueError: …"): a notification
        # shows a message's start, which was "Traceback (most recent call last)"; the
        # whole tail follows it. ``last_line``: that line's start, kept apart from the
        # tail, whose end a long message fills
        if last_line is None:
            last_line = tail.rsplit("\n", 1)[-1]
        last = last_line.strip()[:LAST_LINE_CHARS]
        message = f"exit code {returncode}" + (f": {last}" if last else "")
        super().__init__(message + (f"\n{tail}" if "\n" in tail else ""))
        self.returncode = returncode
        self.stderr_tail = tail


class _TailingContext:
    """Forwards output to the task context and keeps the end of stderr."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.stderr: deque[str] = deque()
        self.size = 0
        # the starts of the line being written and of the last one ended with text in it:
        # "ValueError: " begins a line the tail can hold only the end of
        self.line = ""
        self.ended_line = ""

    def write(self, text: str, stream: str = "stdout") -> None:
        self.ctx.write(text, stream)
        if stream == "stderr" and text:
            self.stderr.append(text)
            self.size += len(text)
            while self.size - len(self.stderr[0]) > STDERR_TAIL_CHARS:
                self.size -= len(self.stderr.popleft())
            self._follow_lines(text)

    def _follow_lines(self, text: str) -> None:
        *ended, rest = text.split("\n")
        for part in ended:
            line = (self.line + part)[:LAST_LINE_CHARS]
            self.line = ""
            if line.strip():
                self.ended_line = line
        self.line = (self.line + rest[:LAST_LINE_CHARS])[:LAST_LINE_CHARS]

    def tail(self) -> str:
        return "".join(self.stderr)[-STDERR_TAIL_CHARS:]

    def last_line(self) -> str:
        """The start of stderr's last line with text in it."""
        return self.line if self.line.strip() else self.ended_line


def artifact_name_for(relative: str) -> str | None:
    """The artifact name of a file under ``output/`` (None: skip it)."""
    parts = Path(relative).parts
    if not parts or any(p.startswith(".") for p in parts):
        return None
    name = _UNSAFE.sub("_", FLATTEN_SEPARATOR.join(parts))
    if not name or not name[0].isalnum() or ".." in name:
        name = "file_" + name.replace("..", "_")
    return name[:255]


def collect_outputs(output_dir: str | os.PathLike[str]) -> tuple[list[tuple[str, Path]], list[str]]:
    """(artifact name, file) pairs for every regular file under ``output_dir``, and skips.

    A file whose name is already an artifact name keeps it; files whose names clean up
    alike take ``-2``, ``-3``… (``_unclashed``) after those.
    """
    files: list[tuple[str, Path, str]] = []
    skipped: list[str] = []
    root = Path(output_dir)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for filename in sorted(filenames):
            path = Path(dirpath) / filename
            relative = str(path.relative_to(root))
            name = artifact_name_for(relative)
            if path.is_symlink() or not path.is_file() or name is None:
                skipped.append(relative)
                continue
            files.append((relative, path, name))
    # the names as given first: b_.txt keeps its own, beside b!.txt (also "b_.txt")
    # ``reserved``: every name given or handed out so far (one set, not one per file)
    reserved = {name for relative, _, name in files if _as_written(relative) == name}
    handed: set[str] = set()
    found: list[tuple[str, Path]] = []
    for relative, path, name in files:
        if _as_written(relative) != name or name in handed:
            name = _unclashed(name, reserved)
        reserved.add(name)
        handed.add(name)
        found.append((name, path))
    return found, skipped


def _as_written(relative: str) -> str:
    """``relative`` as one name, as written (``sub/b.png`` is ``sub__b.png``)."""
    return FLATTEN_SEPARATOR.join(Path(relative).parts)


def _unclashed(name: str, taken: set[str]) -> str:
    """``name``, or ``stem-2.ext``, ``stem-3.ext``… when taken: files whose names clean up
    alike (résumé.txt and résumè.txt, 数据.csv and 结果.csv) are all kept."""
    stem, ext = os.path.splitext(name)
    number = 1
    while name in taken:
        number += 1
        suffix = f"-{number}{ext}"
        name = stem[:255 - len(suffix)] + suffix
    return name


def remove_lost_work(task_id: str, attempt: int) -> list[str]:
    """Remove the working folders an attempt's lost worker left in this temp folder.

    A worker killed mid-attempt never reaches the ``finally`` that removes its folder
    (the source, the input data, what the program wrote); the reaper that settles the
    attempt, once its process group is gone, removes it. Returns the paths removed.
    """
    return remove_left_in_temp(attempt_prefix("code", task_id, attempt))


async def exec_code(task: Any, ctx: Any, running: Any) -> dict[str, Any]:
    """Executor for ``kind="code"``."""
    spec = task.spec or {}
    attempt = getattr(task, "attempts", 0) or 0
    work = tempfile.mkdtemp(prefix=attempt_prefix("code", task.id, attempt))
    try:
        script = os.path.join(work, "main.py")
        input_path = os.path.join(work, "input.json")
        output_dir = os.path.join(work, "output")
        os.mkdir(output_dir)
        with open(script, "w", encoding="utf-8") as f:
            f.write(spec["code"])
        with open(input_path, "w", encoding="utf-8") as f:
            json.dump(spec.get("input_data"), f)
        # progress() in the program has no task context there: it writes this file
        # (hidden: the program's own progress.json in its folder is not taken for ours)
        progress_path = os.path.join(work, ".jupyter-tasks-progress.json")
        env = {"JUPYTER_TASKS_INPUT": input_path, "JUPYTER_TASKS_OUTPUT": output_dir,
               "JUPYTER_TASKS_TASK_ID": task.id, PROGRESS_FILE_ENV: progress_path,
               "PYTHONUNBUFFERED": "1"}
        tail = _TailingContext(ctx)
        outcome: BaseException | None = None
        completed = None
        following = asyncio.ensure_future(follow_progress_file(progress_path, ctx))
        try:
            completed = await run_process(
                [sys.executable, script], ctx=tail, cwd=work, env=env,  # type: ignore[arg-type]
                memory_limit_mb=getattr(task, "memory_limit_mb", None), usage=running.process,
                capture_output=False)
        except BaseException as exc:
            outcome = exc
        finally:
            following.cancel()
        take_progress_file(progress_path, ctx)  # the last report, written as it exited
        returncode = completed.returncode if completed is not None else None
        if isinstance(outcome, asyncio.CancelledError) \
                and (kept := kept_exit(running)) is not None:
            # it had exited when a cancel or timeout reached it: it ends as it exited
            outcome, returncode = None, kept
        # output files are kept whatever the outcome (shielded: a cancel may be under way)
        names = await run_to_end(_keep_outputs(ctx, output_dir))
        if outcome is not None:
            raise outcome
        assert returncode is not None
        if returncode != 0:
            raise CodeFailed(returncode, tail.tail(), tail.last_line())
        return {"returncode": 0, "artifacts": names}
    finally:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(shutil.rmtree, work, True)


async def _keep_outputs(ctx: Any, output_dir: str) -> list[str]:
    found, skipped = await asyncio.to_thread(collect_outputs, output_dir)
    for relative in skipped:
        ctx.log(f"[jupyter-tasks] output file {relative!r} skipped (hidden, or not a "
                "regular file: a link, a pipe)", "log")
    names = []
    for name, path in found:
        relative = str(path.relative_to(output_dir))
        if name != _as_written(relative):
            ctx.log(f"[jupyter-tasks] output file {relative!r} kept as artifact {name!r}",
                    "log")
        await ctx.artifact(name, path)
        names.append(name)
    return names
