"""``print()`` inside a task that a server or a worker runs goes to that task's log.

The process's ``sys.stdout`` and ``sys.stderr`` are wrapped while a server or a
worker runs: a write made where a running task's context is current (its
coroutine, the asyncio tasks it starts, the thread a plain function runs in) is
added to that task's log, on the stream it was written to; any other write, and
one made after the task ended, goes on to the stream as before. Python's
last-resort log handler, which looks ``sys.stderr`` up at each record, is held
to the real stream meanwhile: the engine's own warnings are not a task's output.
Kernels capture output their own way (``kernel/capture.py``) and never install
this.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
from typing import Any, TextIO

from .context import current_context

STREAMS = ("stdout", "stderr")

_lock = threading.Lock()
_installs = 0
_last_resort: logging.Handler | None = None  # Python's own, while ours stands in


class TaskOutput(io.TextIOBase):
    """A text stream that sends a task's writes to its log and the rest to ``inner``."""

    def __init__(self, inner: TextIO, stream: str) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_stream", stream)
        object.__setattr__(self, "_pid", os.getpid())

    @property
    def inner(self) -> TextIO:
        """The wrapped stream."""
        return self._inner

    def write(self, text: str) -> int:  # type: ignore[override]
        """Write ``text`` to the current task's log, or to the wrapped stream."""
        ctx = current_context.get()
        # a forked child's copy of the task's context is read by nobody: its lines go
        # on to the stream (the worker's own output) rather than be lost
        if ctx is None or ctx.ended or os.getpid() != self._pid:
            return self._inner.write(text)
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        ctx.write(text, self._stream)
        return len(text)

    def writelines(self, lines: Any) -> None:  # type: ignore[override]
        """Write each of ``lines``."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Flush the wrapped stream (a task's log is flushed by its manager)."""
        self._inner.flush()

    def isatty(self) -> bool:
        return bool(getattr(self._inner, "isatty", lambda: False)())

    def fileno(self) -> int:
        return self._inner.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._inner, "encoding", "utf-8")

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self._inner, "errors", None)

    @property
    def closed(self) -> bool:  # type: ignore[override]
        return bool(getattr(self._inner, "closed", False))

    def close(self) -> None:
        """Nothing: the wrapped stream belongs to the process."""

    def __getattr__(self, name: str) -> Any:
        # name, buffer, reconfigure ...: the wrapped stream's (never our own slots,
        # looked up before __init__ set them, as copy does)
        if name.startswith("__") or name in ("_inner", "_stream"):
            raise AttributeError(name)
        return getattr(self._inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._inner, name, value)


def install() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` (once; each call needs an ``uninstall``)."""
    global _installs, _last_resort
    with _lock:
        _installs += 1
        for name in STREAMS:
            stream = getattr(sys, name)
            if stream is not None and not isinstance(stream, TaskOutput):
                setattr(sys, name, TaskOutput(stream, name))
        stderr = sys.stderr
        if _last_resort is None and isinstance(stderr, TaskOutput):
            _last_resort = logging.lastResort
            handler = logging.StreamHandler(stderr.inner)
            handler.setLevel(logging.WARNING)  # as Python's own
            logging.lastResort = handler


_for_process = False


def install_for_process() -> None:
    """``install`` for the rest of this process's life (a Dask worker running jobs)."""
    global _for_process
    with _lock:
        if _for_process:
            return
        _for_process = True
    install()


def uninstall() -> None:
    """Undo one ``install``; the last puts back the streams (if still ours)."""
    global _installs, _last_resort
    with _lock:
        _installs = max(0, _installs - 1)
        if _installs:
            return
        for name in STREAMS:
            stream = getattr(sys, name)
            if isinstance(stream, TaskOutput):
                setattr(sys, name, stream.inner)
        if _last_resort is not None:
            logging.lastResort = _last_resort
            _last_resort = None
