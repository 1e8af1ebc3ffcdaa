"""Closing the store: every write is answered, a close never hangs, no copy outlives it.

A job that outlives its manager's grace writes its end while the store closes; a
prune may be copying the WAL; two owners may close the same store. Each of these
once left a caller waiting forever or a thread on a closed connection.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from jupyter_tasks.exceptions import StoreError
from jupyter_tasks.models import Task, new_task_id
from jupyter_tasks.store import Store
from jupyter_tasks.store import store as store_module
from tests.waiting import eventually

# a deadline for what must end (a hang fails the test instead of stalling the suite)
DEADLINE = 30


def make_task() -> Task:
    now = time.time()
    return Task(id=new_task_id(), kind="function", mode="job", status="queued",
                created_at=now, updated_at=now, name="add", params={"a": 1})


def task_ids(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {row[0] for row in conn.execute("SELECT id FROM tasks")}
    finally:
        conn.close()


async def test_a_write_after_close_began_is_refused_and_the_earlier_ones_are_written(
        db_path: Path) -> None:
    store = await Store.open(db_path)
    store.after_commit.append(lambda: None)  # as a manager's store has (the feed, the bell)
    # another process holds the write lock: the early write waits, and so does close()
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        early = asyncio.ensure_future(store.create_task(make_task()))
        closing = asyncio.ensure_future(store.close())

        async def closing_waits() -> bool:
            return store._closed and not closing.done()

        await eventually(closing_waits, what="close() waiting for the queued write")
        late = make_task()
        with pytest.raises(StoreError, match="closed"):
            await asyncio.wait_for(store.create_task(late), DEADLINE)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    await asyncio.wait_for(closing, DEADLINE)
    written, _ = await asyncio.wait_for(early, DEADLINE)
    assert task_ids(db_path) == {written.id}


async def test_closing_twice_at_once_ends_both(db_path: Path) -> None:
    store = await Store.open(db_path)
    task, _ = await store.create_task(make_task())
    await asyncio.wait_for(asyncio.gather(store.close(), store.close()), DEADLINE)
    assert task_ids(db_path) == {task.id}


async def test_close_waits_for_a_wal_copy_and_lets_no_other_start(
        db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a checkpoint (a prune's) whose copy finds a long log goes on to another copy:
    # close() must wait for the copy running and see that no second one starts on
    # the connection it closes
    copying, release = threading.Event(), threading.Event()
    copies: list[str] = []
    copy = store_module.checkpoint

    def long_log_copy(conn: sqlite3.Connection) -> int:
        copying.set()
        release.wait(DEADLINE)
        try:
            copy(conn)
            copies.append("copied")
        except sqlite3.Error as exc:
            copies.append(f"failed: {exc}")
        return store_module.TAIL_CHECKPOINT_FRAMES

    monkeypatch.setattr(store_module, "checkpoint", long_log_copy)
    store = await Store.open(db_path)
    await store.create_task(make_task())
    checkpointing = asyncio.ensure_future(store._checkpoint())
    assert await asyncio.to_thread(copying.wait, DEADLINE), "the copy never started"
    closing = asyncio.ensure_future(store.close())

    async def close_started() -> bool:
        return store._checkpointer is None

    await eventually(close_started, what="close() under way")
    release.set()
    await asyncio.wait_for(closing, DEADLINE)
    await asyncio.wait_for(checkpointing, DEADLINE)
    assert copies == ["copied"]
