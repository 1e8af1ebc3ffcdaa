"""The process's default manager, and a runtime loop in a daemon thread for non-async programs.

A kernel's own event loop is busy whenever a cell blocks, so the kernel side
runs its manager here instead: progress writes, heartbeats and cards go on
while the foreground cell computes.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from .exceptions import ManagerNotRunning


class ManagerLike(Protocol):
    """What this module needs of a manager (``jupyter_tasks.TaskManager`` is one)."""

    @property
    def running(self) -> bool:
        """True between start and stop."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the manager runs on."""


_Method = TypeVar("_Method", bound=Callable[..., Coroutine[Any, Any, Any]])


def on_its_loop(method: _Method) -> _Method:
    """A public coroutine method that runs on the manager's own loop, whichever loop awaits it.

    A script's ``asyncio.run`` beside the manager ``start_manager`` runs on its thread
    awaited the store's futures from the wrong loop: a job's wake-up never reached the
    manager's loop (it stayed queued) and a wait could hang for good.
    """
    @functools.wraps(method)
    async def on_loop(self: Any, *args: Any, **kwargs: Any) -> Any:
        loop = self.loop
        if loop is None or not loop.is_running() or loop is asyncio.get_running_loop():
            return await method(self, *args, **kwargs)
        return await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(method(self, *args, **kwargs), loop))

    return on_loop  # type: ignore[return-value]


_default: Any = None
_lock = threading.Lock()
_thread: threading.Thread | None = None
_thread_loop: asyncio.AbstractEventLoop | None = None


def set_default_manager(manager: ManagerLike | None) -> None:
    """Make ``manager`` the one the helpers (``run_background`` …) use."""
    global _default
    _default = manager


def get_default_manager() -> Any:
    """The default manager, or None."""
    return _default


def current_manager() -> Any:
    """The default manager; ``ManagerNotRunning`` says how to start one if there is none."""
    if _default is None or not _default.running:
        raise ManagerNotRunning(
            f"no jupyter-tasks manager is running in this process. "
            f"{ManagerNotRunning.how_to_start}")
    return _default


def runtime_loop() -> asyncio.AbstractEventLoop:
    """The daemon thread's event loop, started on first use."""
    global _thread, _thread_loop
    with _lock:
        if _thread_loop is None or not _thread or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            _thread = threading.Thread(target=run, name="jupyter-tasks-runtime", daemon=True)
            _thread.start()
            ready.wait()
            _thread_loop = loop
        return _thread_loop


def thread_loop() -> asyncio.AbstractEventLoop | None:
    """The daemon thread's event loop if it was started, else None."""
    return _thread_loop
