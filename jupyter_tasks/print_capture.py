"""``print()`` inside a task that a server or a worker runs goes to that task's log.

The process's ``sys.stdout`` and ``sys.stderr`` are wrapped while a server or a
worker runs: a write made where a task's context is current (its coroutine, the
asyncio tasks it starts, the thread a plain function runs in) is added to that
task's log, on the stream it was written to; any other write goes on to the
stream as before. Kernels capture output their own way (``kernel/capture.py``)
and never install this.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

from .context import current_context

STREAMS = ("stdout", "stderr")

_lock = threading.Lock()
_installs = 0


class TaskOutput:
    """A text stream that sends a task's writes to its log and the rest to ``inner``."""

    def __init__(self, inner: TextIO, name: str) -> None:
        self.inner = inner
        self.name = name

    def write(self, text: str) -> int:
        """Write ``text`` to the current task's log, or to the wrapped stream."""
        ctx = current_context.get()
        if ctx is None:
            return self.inner.write(text)
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        ctx.write(text, self.name)
        return len(text)

    def writelines(self, lines: Any) -> None:
        """Write each of ``lines``."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Flush the wrapped stream (a task's log is flushed by its manager)."""
        if current_context.get() is None:
            self.inner.flush()

    def __getattr__(self, name: str) -> Any:
        # encoding, fileno, isatty, buffer ...: the wrapped stream's
        return getattr(self.inner, name)


def install() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` (once; each call needs an ``uninstall``)."""
    global _installs
    with _lock:
        _installs += 1
        for name in STREAMS:
            stream = getattr(sys, name)
            if stream is not None and not isinstance(stream, TaskOutput):
                setattr(sys, name, TaskOutput(stream, name))


def uninstall() -> None:
    """Undo one ``install``; the last puts back the streams (if still ours)."""
    global _installs
    with _lock:
        _installs = max(0, _installs - 1)
        if _installs:
            return
        for name in STREAMS:
            stream = getattr(sys, name)
            if isinstance(stream, TaskOutput):
                setattr(sys, name, stream.inner)
