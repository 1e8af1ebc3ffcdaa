"""Synchronous progress reporting for code running inside a task (a ``%%background``
cell, a registered function, a code job's own process).

In a task's process both only record in memory (see ``TaskContext.progress``); cards
and the store pick the value up at their own pace, so they are cheap in a tight loop.
A code job's process has no task context: there the value goes to the file its worker
reads (``$JUPYTER_TASKS_PROGRESS``), at most every ``FILE_INTERVAL`` seconds. Outside a
task they do nothing.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from ..context import MAX_PROGRESS_MESSAGE, TaskContext, current_context
from .capture import sink_for_thread

T = TypeVar("T")
_get_context = current_context.get

# where a code job's process writes its progress (set by its worker; see jobs.code)
PROGRESS_FILE_ENV = "JUPYTER_TASKS_PROGRESS"
FILE_INTERVAL = 0.05  # a tight loop's reports written at most this often


class _ProgressFile:
    """The progress of a code job's own process, written where its worker reads it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._pending: tuple[Any, Any, Any] | None = None
        self._written_at = 0.0
        self._timer: threading.Timer | None = None
        atexit.register(self.flush)  # the last report, however soon the process ends
        if hasattr(os, "register_at_fork"):
            # a forked child (a multiprocessing pool's) gets a lock no thread of its holds:
            # one held at the fork by the parent's timer would hang its progress() for good
            os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self._lock = threading.Lock()
        self._timer = None

    def progress(self, current: Any, total: Any = None, message: Any = None) -> None:
        self._pending = (current, total, message)
        if self._timer is None:  # else the timer's write takes this value (see flush)
            self._write_or_wait()

    def _write_or_wait(self) -> None:
        with self._lock:
            if self._timer is not None:
                return
            wait = self._written_at + FILE_INTERVAL - time.monotonic()
            if wait > 0:
                # too soon after the last write: written by a timer, so a report followed
                # by a long quiet step is not left unwritten until the next one
                self._timer = threading.Timer(wait, self.flush)
                self._timer.daemon = True
                self._timer.start()
                return
        self.flush()

    def flush(self) -> None:
        # the write under the lock too: the timer's and the exit's (or two threads') would
        # share the temporary file, and a report could be lost or garbled; the exit's
        # flush waits for the timer's write and rename to end
        with self._lock:
            # the timer is cleared before the value is taken: a report that saw it still
            # set was stored before, so this write takes it
            self._timer = None
            if self._pending is None:
                return
            current, total, message = self._pending
            self._pending = None
            self._written_at = time.monotonic()
            if message is not None:
                message = str(message)[:MAX_PROGRESS_MESSAGE]
            text = json.dumps({"current": _plain(current), "total": _plain(total),
                               "message": message})
            partial = f"{self.path}.{os.getpid()}.tmp"
            try:
                with open(partial, "w", encoding="utf-8") as f:
                    f.write(text)
                os.replace(partial, self.path)  # the reader sees a whole report, never half
            except OSError:
                pass  # the attempt's folder is gone (it ended): nobody reads it any more


def _plain(value: Any) -> Any:
    """What JSON carries of a position (the reader judges it as a task's context does)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        return None  # no position a reader holds exactly (10**5000 has no text either)
    if value is None or isinstance(value, (int, float, str)):
        return value
    try:
        return float(value)  # a numpy number, a Decimal, a Fraction
    except (TypeError, ValueError, OverflowError):
        return None


_file_reporter: _ProgressFile | None = None
_file_looked_for = False  # the worker sets the variable as it starts the process: read once


def _context() -> TaskContext | _ProgressFile | None:
    """The task the calling code runs in: its own, else the background cell whose
    thread started this one (a thread pool's: the task's context does not follow
    into new threads, so their progress() was dropped while their print()s showed),
    else, in a code job's process, its progress file."""
    global _file_reporter, _file_looked_for
    ctx = _get_context()
    if ctx is None and _file_reporter is not None:
        return _file_reporter  # a code job's process: no kernel, no cells' threads
    if ctx is None:
        sink = sink_for_thread()
        ctx = sink.ctx if sink is not None else None  # None once the cell has ended
    if ctx is not None:
        return ctx
    if not _file_looked_for:
        _file_looked_for = True
        path = os.environ.get(PROGRESS_FILE_ENV)
        _file_reporter = _ProgressFile(path) if path else None
    return _file_reporter


def progress(current: float, total: float | None = None, message: str | None = None) -> None:
    """Report how far the current task is (no-op outside a task).

    Example, in a ``%%background`` cell::

        for i in range(n):
            step(i)
            progress(i + 1, n)
    """
    ctx = _context()
    if ctx is not None:
        ctx.progress(current, total, message)


def track(iterable: Iterable[T], total: float | None = None,
          message: str | None = None) -> Iterator[T]:
    """Iterate like ``tqdm(iterable)`` and report progress of the current task.

    Records the count only every so many items, adapting the stride so it
    reports about a hundred times per second, and always the final count.
    Outside a task it just yields the items.
    """
    ctx = _context()
    if ctx is None:
        yield from iterable
        return
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    record = ctx.progress
    clock = time.perf_counter
    n = 0
    mark = 1
    stride = 1
    last = clock()
    record(0, total, message)
    for item in iterable:
        yield item
        n += 1
        if n >= mark:
            record(n, total, message)
            now = clock()
            if now - last < 0.01:
                stride *= 2
            elif stride > 1 and now - last > 0.05:
                stride //= 2
            last = now
            mark = n + stride
    record(n, total, message)
