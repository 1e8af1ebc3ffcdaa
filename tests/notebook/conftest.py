"""Fixtures for the notebook tier: real kernels sharing a per-test database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from jupyter_tasks.manager import TaskManager
from jupyter_tasks.store import Store

from .harness import Kernel

T = TypeVar("T")


@pytest.fixture
def kernel(db_path: Path, tmp_path: Path) -> Iterator[Kernel]:
    """A fresh python3 kernel with the extension loaded, using this test's database."""
    k = Kernel(db_path, cwd=str(tmp_path))
    try:
        k.execute("%load_ext jupyter_tasks")
        yield k
    finally:
        k.shutdown()


def with_manager(db_path: Path, fn: Callable[[TaskManager], Awaitable[T]], **options: Any) -> T:
    """Run ``fn(manager)`` with a TaskManager of this (test) process on the shared database."""

    async def main() -> T:
        async with TaskManager(db_path, worker_kind="test", make_default=False,
                               **options) as manager:
            return await fn(manager)

    return asyncio.run(main())


def read_store(db_path: Path, fn: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``fn(store)`` on a plain connection to the shared database (no worker row)."""

    async def main() -> T:
        store = await Store.open(db_path)
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(main())


def task_of(db_path: Path, task_id: str) -> Any:
    """The task row as stored now."""
    return read_store(db_path, lambda s: s.require_task(task_id))


def logs_of(db_path: Path, task_id: str) -> str:
    """All log text of a task."""

    async def read(store: Store) -> str:
        return "".join(e.text for e in await store.get_logs(task_id, 0, 100_000))

    return read_store(db_path, read)
