"""The process's default manager, and a runtime loop in a daemon thread for non-async programs.

A kernel's own event loop is busy whenever a cell blocks, so the kernel side
runs its manager here instead: progress writes, heartbeats and cards go on
while the foreground cell computes.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from typing import TYPE_CHECKING, Any

from .exceptions import ManagerNotRunning

if TYPE_CHECKING:
    from .manager import TaskManager

_default: TaskManager | None = None
_lock = threading.Lock()
_thread: threading.Thread | None = None
_thread_loop: asyncio.AbstractEventLoop | None = None


def set_default_manager(manager: TaskManager | None) -> None:
    """Make ``manager`` the one the helpers (``run_background`` …) use."""
    global _default
    _default = manager


def get_default_manager() -> TaskManager | None:
    """The default manager, or None."""
    return _default


def current_manager() -> TaskManager:
    """The default manager; ``ManagerNotRunning`` says how to start one if there is none."""
    if _default is None or not _default.running:
        raise ManagerNotRunning(
            "no jupyter-tasks manager is running in this process. In a notebook run "
            "`%load_ext jupyter_tasks`; in a script call `jupyter_tasks.start_manager()`; "
            "in async code use `async with jupyter_tasks.TaskManager() as manager:`"
        )
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


def start_manager(db_path: Any = None, **options: Any) -> TaskManager:
    """Start (or return) the default manager on the runtime thread; for scripts and kernels."""
    from .manager import TaskManager

    existing = get_default_manager()
    if existing is not None and existing.running:
        return existing
    loop = runtime_loop()

    async def create() -> TaskManager:
        return await TaskManager(db_path, **options).start()

    manager = asyncio.run_coroutine_threadsafe(create(), loop).result(60)
    atexit.register(stop_manager)
    return manager


def stop_manager(timeout: float = 10.0) -> None:
    """Stop the default manager if it runs on the runtime thread."""
    manager = get_default_manager()
    if manager is None or manager.loop is not _thread_loop or _thread_loop is None:
        return
    if not manager.running:
        return
    future = asyncio.run_coroutine_threadsafe(manager.stop(), _thread_loop)
    try:
        future.result(timeout)
    except Exception:
        pass
