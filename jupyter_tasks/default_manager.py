"""A script's or kernel's default manager, started on the runtime thread (``runtime``)."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
from typing import Any

from . import runtime
from .manager import TaskManager


def start_manager(db_path: Any = None, **options: Any) -> TaskManager:
    """Start (or return) the default manager on the runtime thread; for scripts and kernels."""
    existing = runtime.get_default_manager()
    if isinstance(existing, TaskManager) and existing.running:
        return existing
    loop = runtime.runtime_loop()

    async def create() -> TaskManager:
        return await TaskManager(db_path, **options).start()

    manager = asyncio.run_coroutine_threadsafe(create(), loop).result(60)
    atexit.register(stop_manager)
    return manager


def stop_manager(timeout: float = 10.0) -> None:
    """Stop the default manager if it runs on the runtime thread."""
    manager = runtime.get_default_manager()
    loop = runtime.thread_loop()
    if not isinstance(manager, TaskManager) or loop is None or manager.loop is not loop:
        return
    if not manager.running:
        return
    future = asyncio.run_coroutine_threadsafe(manager.stop(), loop)
    with contextlib.suppress(Exception):
        future.result(timeout)
