"""Synchronous progress reporting for code running inside a task (a ``%%background`` cell).

Both only record in memory (see ``TaskContext.progress``); cards and the
store pick the value up at their own pace, so they are cheap in a tight loop.
Outside a task they do nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from ..context import TaskContext, current_context
from .capture import sink_for_thread

T = TypeVar("T")
_get_context = current_context.get


def _context() -> TaskContext | None:
    """The task the calling code runs in: its own, else the background cell whose
    thread started this one (a thread pool's: the task's context does not follow
    into new threads, so their progress() was dropped while their print()s showed)."""
    ctx = _get_context()
    if ctx is None:
        sink = sink_for_thread()
        ctx = sink.ctx if sink is not None else None  # None once the cell has ended
    return ctx


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
