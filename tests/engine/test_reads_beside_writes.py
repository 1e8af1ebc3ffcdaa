"""Reads beside writes: a task view never waits for the writer, a long read or a held lock."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from jupyter_tasks import TaskManager
from jupyter_tasks.models import Task, new_task_id
from jupyter_tasks.store import Store
from jupyter_tasks.store import store as store_module
from tests.engine.noop import noop_registry

# how long a test lets an operation run before calling it stuck: a deadline, not a bound
STUCK = 20.0


def finished_task(i: int = 0) -> Task:
    now = time.time()
    return Task(id=new_task_id(), kind="function", mode="job", status="succeeded",
                name="noop", params={"i": i}, result={"value": i}, queue="default",
                created_at=now, started_at=now, finished_at=now, updated_at=now)


async def settles_while(awaitable: asyncio.Future[object] | asyncio.Task[object],
                        held: threading.Event) -> bool:
    """Whether ``awaitable`` finishes while ``held`` is still unset (within STUCK seconds)."""
    done, _ = await asyncio.wait({awaitable}, timeout=STUCK)
    return awaitable in done and not held.is_set()


async def test_a_task_view_does_not_wait_for_a_held_write_transaction(db_path: Path) -> None:
    async with await Store.open(db_path) as store:
        task, _ = await store.create_task(finished_task(1))
        inside, release = threading.Event(), threading.Event()

        def long_write(conn: sqlite3.Connection) -> None:
            # the writer's transaction (BEGIN IMMEDIATE taken) held open until released
            conn.execute("UPDATE tasks SET label = 'changing' WHERE id = ?", (task.id,))
            inside.set()
            release.wait(STUCK * 2)

        writing = asyncio.ensure_future(store._txn(long_write))
        try:
            assert await asyncio.to_thread(inside.wait, STUCK)
            read = asyncio.ensure_future(store.get_task(task.id))
            assert await settles_while(read, release), "the read waited for the write"
            seen = read.result()
            # the committed state: the held transaction's change is not visible yet
            assert seen is not None and seen.label == task.label and seen.result == {"value": 1}
        finally:
            release.set()
            await writing
        changed = await store.get_task(task.id)
        assert changed is not None and changed.label == "changing"


async def test_a_task_view_does_not_queue_behind_a_long_read(db_path: Path) -> None:
    async with await Store.open(db_path) as store:
        task, _ = await store.create_task(finished_task(2))
        inside, release = threading.Event(), threading.Event()

        def hold() -> int:
            inside.set()
            release.wait(STUCK * 2)
            return 1

        # a read that lasts until released (a list over a huge history, say)
        assert store._reader is not None
        await store._reader.create_function("hold_read", 0, hold)
        long_read = asyncio.ensure_future(store._rows("SELECT hold_read()"))
        try:
            assert await asyncio.to_thread(inside.wait, STUCK)
            read = asyncio.ensure_future(store.get_task(task.id))
            assert await settles_while(read, release), "the task view queued behind the read"
            assert read.result() == task
        finally:
            release.set()
            await long_read


async def test_reading_in_a_loop_does_not_starve_the_job_slots(db_path: Path) -> None:
    async with await Store.open(db_path) as store:
        task, _ = await store.create_task(finished_task(4))
    async with TaskManager(db_path, registry=noop_registry(), queues={"default": 2}) as manager:
        ids = {(await manager.submit("noop", params={"i": i})).id for i in range(20)}
        ended: set[str] = set()
        reads = 0
        deadline = time.monotonic() + STUCK
        # nothing but reads in this loop, no sleep: if a read never yields, no job moves on
        while ended != ids and time.monotonic() < deadline:
            assert await manager.result(task.id) == {"value": 4}
            reads += 1
            for task_id in ids - ended:
                current = await manager.store.get_task(task_id)
                if current is not None and current.is_terminal:
                    ended.add(task_id)
        assert ended == ids, f"{len(ids - ended)} of 20 jobs did not end beside {reads} reads"


class SteppedClock:
    """A clock that moves only when told to, or by ``tick`` each time it is read."""

    def __init__(self, tick: float) -> None:
        self.now = 0.0
        self.tick = tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


@pytest.mark.parametrize(("other_work", "reads_share"), [
    # the larger share: READ_SHARE_RATIO times what the rest of the loop took
    (0.001, 0.001 * store_module.READ_SHARE_RATIO),
    (0.010, store_module.POINT_READ_TURN_MAX_SECONDS),  # a long turn: the cap
    (0.0, store_module.POINT_READ_TURN_SECONDS),  # an idle loop: the floor
])
async def test_reads_in_a_loop_take_the_larger_share_of_a_busy_loop(
        db_path: Path, monkeypatch: pytest.MonkeyPatch, other_work: float,
        reads_share: float) -> None:
    # the loop's other work (job slots, say) takes ``other_work`` of the clock each
    # turn; reads read the clock twice each, 5 us a time: their share is what they
    # take between two turns of the other work
    clock = SteppedClock(tick=5e-6)
    monkeypatch.setattr(store_module, "turn_clock", clock)
    async with await Store.open(db_path) as store:
        task, _ = await store.create_task(finished_task(5))
        turns: list[float] = []  # the clock at each turn of the other work
        reading = True

        async def other() -> None:
            while reading:
                clock.now += other_work
                turns.append(clock.now)
                await asyncio.sleep(0)

        worker = asyncio.ensure_future(other())
        await asyncio.sleep(0)  # the other work has its first turn
        for _ in range(2000):
            assert await store.get_task(task.id) == task
        reading = False
        await worker
    # the reads' time between turns of the other work, after the first (which knows
    # nothing of the other work yet): about its share, give or take one read (and a
    # little more above: the other work's time is measured with clock reads in it,
    # which the ratio scales too)
    shares = [b - a - other_work for a, b in itertools.pairwise(turns[1:])]
    assert len(shares) > 5
    one_read = 2 * clock.tick
    assert all(reads_share - one_read <= s <= reads_share + 4 * one_read for s in shares), \
        (min(shares), max(shares))
