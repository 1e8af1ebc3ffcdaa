"""A stopping manager leaves no job running in its name, and a lease lives only while its task runs.

Each case once left a job ``running``, leased to a worker that would never run it:
stopped in the middle of a claim, in the middle of a retried job's first write, or
past the grace while a job's end (which claims the next job) waited for the lock;
and the heartbeat renewed the lease of a task whose end could not be written.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from jupyter_tasks import TaskContext, TaskManager
from jupyter_tasks.engine.state import Doorbell
from jupyter_tasks.models import Task, new_task_id
from jupyter_tasks.registry import Registry
from jupyter_tasks.store import Store
from tests.engine.noop import noop_registry
from tests.waiting import eventually

DEADLINE = 30


def rows(path: Path) -> dict[str, tuple[Any, ...]]:
    """name -> (status, attempts, worker_id) of every task, read as another process would."""
    conn = sqlite3.connect(path)
    try:
        return {r[0]: r[1:] for r in conn.execute(
            "SELECT name, status, attempts, worker_id FROM tasks")}
    finally:
        conn.close()


def registry(go: asyncio.Event | None = None) -> Registry:
    """``noop`` and the jobs these cases stop in the middle of."""
    tasks = noop_registry()
    failed_once: set[str] = set()

    @tasks.task("first", mode="job")
    async def first() -> int:
        assert go is not None
        await go.wait()
        return 1

    @tasks.task("fails_once", mode="job")
    async def fails_once() -> int:
        if "x" not in failed_once:
            failed_once.add("x")
            raise RuntimeError("the first attempt fails")
        await asyncio.sleep(DEADLINE)
        return 1

    @tasks.task("deaf", mode="job")
    def deaf(seconds: float = DEADLINE) -> int:
        end = time.monotonic() + seconds  # never looks at its cancel: only its end counts
        while time.monotonic() < end:
            time.sleep(0.01)
        return 1

    @tasks.task("asks", mode="job")
    async def asks(ctx: TaskContext) -> str:
        return await ctx.confirm("go on?", ["yes", "no"])

    return tasks


async def test_stop_while_a_job_waits_for_an_answer_hands_it_back_with_no_question(
        db_path: Path) -> None:
    # before: the shutdown's cancel reached confirm() as "cancelled while waiting", and
    # the job ended cancelled (nobody asked; no notification), where others went back
    manager = TaskManager(db_path, registry=registry(), queues={"default": 1},
                          make_default=False)
    await manager.start()
    job = await manager.submit_spec({"name": "asks"})

    async def asking() -> bool:
        task = await manager.get(job.id)
        return task is not None and bool(task.confirmation)

    await eventually(asking, what="the job asking its question")
    await asyncio.wait_for(manager.stop(), DEADLINE)
    assert rows(db_path)["asks"] == ("queued", 0, None)
    async with await Store.open(db_path) as store:
        back = await store.get_task(job.id)
    # asked again when it runs again: no question left for a job nobody runs now
    assert back is not None and back.confirmation is None and not back.cancel_requested


async def test_a_job_cancelled_before_the_stop_ends_cancelled_not_back_in_its_queue(
        db_path: Path) -> None:
    # before: the shutdown's stop took the place of the cancel still under way (a function
    # that does not look at its cancel runs on), and the job went back to its queue with
    # its cancel flag set: shown queued until a worker claimed it, for good if none did
    manager = TaskManager(db_path, registry=registry(), queues={"default": 1},
                          make_default=False)
    await manager.start()
    job = await manager.submit_spec({"name": "deaf"})

    async def running() -> bool:
        return (await manager.get(job.id)).status == "running"

    await eventually(running, what="the job running")
    await manager.cancel(job.id)
    await asyncio.wait_for(manager.stop(), DEADLINE)
    status, attempts, _ = rows(db_path)["deaf"]
    assert (status, attempts) == ("cancelled", 1)


async def test_stop_just_after_a_submit_leaves_the_job_queued_or_done(db_path: Path) -> None:
    # stop() after 0, 1, 2 ... turns of the loop: at some of them the job loop is
    # inside its claim's commit, which stop() cancels
    for turns in range(6):
        path = db_path.with_name(f"turns-{turns}.db")
        manager = TaskManager(path, registry=registry(), queues={"default": 2},
                              make_default=False)
        await manager.start()

        doorbell = manager.state.wake_queues["default"]

        async def idle(doorbell: Doorbell = doorbell) -> bool:
            return doorbell.idle

        await eventually(idle, what="the job loop waiting for work")
        await manager.submit_spec({"name": "noop", "params": {"i": 1}})
        for _ in range(turns):
            await asyncio.sleep(0)
        await asyncio.wait_for(manager.stop(), DEADLINE)
        status, attempts, worker = rows(path)["noop"]
        assert (status, attempts, worker) in {("queued", 0, None), ("succeeded", 1, worker)}, \
            f"after {turns} turns: {status}, attempt {attempts}, worker {worker}"


async def test_stop_while_a_retried_job_writes_its_attempt_marker_hands_it_back(
        db_path: Path) -> None:
    manager = TaskManager(db_path, registry=registry(), queues={"default": 1},
                          retry_base_delay=0.05, retry_max_delay=0.05, make_default=False)
    await manager.start()
    job = await manager.submit_spec({"name": "fails_once"}, max_retries=1)

    async def second_attempt_registered() -> bool:
        running = manager.state.running.get(job.id)
        return running is not None and running.task.attempts == 2

    # checked every turn: the marker's write is the attempt's first wait
    await eventually(second_attempt_registered, interval=0, what="the second attempt")
    await asyncio.wait_for(manager.stop(), DEADLINE)
    assert rows(db_path)["fails_once"] == ("queued", 1, None)
    assert manager.state.running == {}


async def test_a_job_claimed_by_an_end_written_past_the_grace_goes_back(db_path: Path) -> None:
    go = asyncio.Event()
    manager = TaskManager(db_path, registry=registry(go), queues={"default": 1},
                          make_default=False)
    await manager.start()
    first = await manager.submit_spec({"name": "first"}, priority=10)
    await manager.submit_spec({"name": "noop", "params": {"i": 1}})

    async def first_running() -> bool:
        return first.id in manager.state.running

    await eventually(first_running, what="the first job running")
    # another process holds the write lock: the first job's end (which claims the
    # next job in the same transaction) waits for it past stop()'s grace
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        go.set()

        async def first_ending() -> bool:
            return first.id not in manager.state.running

        await eventually(first_ending, interval=0, what="the first job writing its end")
        stopping = asyncio.ensure_future(manager.stop(grace=0.05))

        async def loops_cancelled() -> bool:
            return bool(manager._loops) and all(t.done() or t.cancelling()
                                                for t in manager._loops)

        await eventually(loops_cancelled, what="stop() cancelling its loops past the grace")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    await asyncio.wait_for(stopping, DEADLINE)
    status = rows(db_path)
    assert status["first"] == ("succeeded", 1, status["first"][2])
    assert status["noop"] == ("queued", 0, None)


async def test_a_job_whose_function_returned_as_the_stop_came_keeps_its_end(
        db_path: Path, tmp_path: Path) -> None:
    # before: the shutdown's cancel reached the attempt after the function had returned
    # in its thread, its value on its way to the loop, and the job went back to the
    # queue: the next worker ran it a second time (three `jupyter tasks worker` on 300
    # short jobs, one stopped with SIGTERM: some runs left a job's side effect twice)
    go = threading.Event()
    marks = tmp_path / "marks"
    tasks = noop_registry()

    @tasks.task("once", mode="job")
    def once() -> int:
        go.wait(DEADLINE)
        with marks.open("a") as out:
            out.write("ran\n")
        return 7

    manager = TaskManager(db_path, registry=tasks, queues={"default": 1}, make_default=False)
    await manager.start()
    job = await manager.submit_spec({"name": "once"})

    async def in_its_thread() -> int | None:
        running = manager.state.running.get(job.id)
        return running.thread.thread_id if running is not None else None

    ident = await eventually(in_its_thread, what="the function running in its thread")
    thread = next(t for t in threading.enumerate() if t.ident == ident)
    # the loop blocked until the function has returned: its value waits in the loop's
    # queue, and the stop below reaches the attempt before the value does
    go.set()
    thread.join(DEADLINE)
    await asyncio.wait_for(manager.stop(), DEADLINE)
    status, attempts, _ = rows(db_path)["once"]
    assert (status, attempts) == ("succeeded", 1)
    assert marks.read_text() == "ran\n"
    async with await Store.open(db_path) as store:
        done = await store.get_task(job.id)
    assert done is not None and done.result == 7


def running_task(worker_id: str, lease_expires_at: float) -> Task:
    now = time.time()
    return Task(id=new_task_id(), kind="function", mode="job", status="running",
                created_at=now, updated_at=now, name="noop", params={}, attempts=1,
                worker_id=worker_id, started_at=now, lease_expires_at=lease_expires_at)


async def test_the_heartbeat_renews_only_the_leases_of_tasks_it_names(db_path: Path) -> None:
    soon = time.time() + 5
    async with await Store.open(db_path) as store:
        runs, _ = await store.create_task(running_task("w1", soon))
        lost, _ = await store.create_task(running_task("w1", soon))  # its end never written
        await store.heartbeat("w1", 60.0, [runs.id])
        renewed = await store.get_task(runs.id)
        left = await store.get_task(lost.id)
    assert renewed is not None and renewed.lease_expires_at is not None
    assert renewed.lease_expires_at > soon + 30
    assert left is not None and left.lease_expires_at == soon
