"""The wake-up: the feed reads at once after a commit, here or in another manager's process.

Managers here poll once a minute (``poll_interval=60``) and every wait has a
20 s deadline, so what arrives in time came from the wake-up, not the poll.
The bell's own cases use real sockets in a real folder.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import tests.engine.sample_tasks  # noqa: F401  (registers the tasks the jobs name)
from jupyter_tasks import TaskManager
from jupyter_tasks.engine import bell as bell_module
from jupyter_tasks.engine.bell import WakeBell, wake_folder
from jupyter_tasks.models import EventType, TaskStatus
from tests.waiting import eventually

POLL = 60.0
DEADLINE = 20.0


async def next_event(sub, event_type: str, task_id: str | None = None) -> None:
    """Wait (``DEADLINE``) for an event of ``event_type`` (of that task) on the subscription."""

    async def read() -> None:
        while True:
            event = await sub.get()
            if event.type == event_type and task_id in (None, event.task_id):
                return

    await asyncio.wait_for(read(), DEADLINE)


# ------------------------------------------------------------------ the feed


async def test_the_feed_reads_this_process_commits_at_once(tmp_path: Path):
    async with TaskManager(tmp_path / "t.db", poll_interval=POLL,
                           make_default=False) as manager:
        with manager.subscribe() as sub:
            # twice: the feed's first read, as it starts, may come after the first round
            for _ in range(2):
                task = await manager.submit(asyncio.sleep(0))
                await next_event(sub, EventType.SUCCEEDED.value)
        # and a waiter hears the end the same way
        again = await manager.submit(asyncio.sleep(0))
        assert (await manager.wait(again.id, DEADLINE)).status == TaskStatus.SUCCEEDED
        assert (await manager.get(task.id)).status == TaskStatus.SUCCEEDED


async def test_a_job_submitted_by_another_manager_starts_at_once(tmp_path: Path):
    db = tmp_path / "t.db"
    async with TaskManager(db, queues={"default": 1}, poll_interval=POLL,
                           make_default=False) as worker, \
            TaskManager(db, as_worker=False, runs_background=False, poll_interval=POLL,
                        make_default=False) as client:
        with worker.subscribe() as sub:
            # twice: the feeds' first reads, as they start, may come after the first round
            for b in range(2):
                job = await client.enqueue_by_name("add", {"a": 1, "b": b}, label="add")
                await next_event(sub, EventType.SUCCEEDED.value)
                # the client's feed was rung by the worker's commits: its waiter hears the end
                done = await client.wait(job.id, DEADLINE)
                assert done.status == TaskStatus.SUCCEEDED and done.result == 1 + b


async def test_a_ring_starts_an_idle_workers_job_without_its_feed(tmp_path: Path, monkeypatch):
    """The ring wakes an idle job loop itself: the claim does not wait for the feed's read.

    The worker's feed reads nothing here, and its periodic claim is a minute away, so
    the job can start in time only through the ring.
    """
    db = tmp_path / "t.db"
    async with TaskManager(db, queues={"default": 1}, poll_interval=POLL,
                           make_default=False) as worker, \
            TaskManager(db, as_worker=False, runs_background=False, poll_interval=POLL,
                        make_default=False) as client:

        async def reads_nothing(changed: bool = False) -> None:
            return None

        monkeypatch.setattr(worker.feed, "poll", reads_nothing)
        for b in range(2):
            job = await client.enqueue_by_name("add", {"a": 1, "b": b}, label="add")
            done = await client.wait(job.id, DEADLINE)
            assert done.status == TaskStatus.SUCCEEDED and done.result == 1 + b


async def test_an_idle_job_loop_looks_before_it_claims(tmp_path: Path):
    """A slot that ran out of jobs, and rings that queue nothing, cost no write transaction.

    Each job is one claim and one finish; a claim that would find nothing (after the
    last job, on another queue's job) is a read.
    """
    db = tmp_path / "t.db"
    async with TaskManager(db, queues={"default": 1}, poll_interval=POLL,
                           heartbeat_interval=3600, lease_seconds=7200,
                           make_default=False) as worker, \
            TaskManager(db, as_worker=False, runs_background=False, poll_interval=POLL,
                        make_default=False) as client:
        with worker.subscribe() as sub:
            # counted from an idle loop: the loop's first claim, at its start, is a write
            warm = await client.enqueue_by_name("add", {"a": 0, "b": 0}, label="warm")
            assert (await client.wait(warm.id, DEADLINE)).status == TaskStatus.SUCCEEDED
            # write_commits leaves out the store's upkeep (settling ended jobs, each second)
            before = worker.store.write_commits
            jobs = 3
            for b in range(jobs):
                job = await client.enqueue_by_name("add", {"a": 1, "b": b}, label="add")
                assert (await client.wait(job.id, DEADLINE)).status == TaskStatus.SUCCEEDED
                # a job for a queue this worker does not serve rings it too
                other = await client.enqueue_by_name("add", {"a": 0, "b": b}, label="elsewhere",
                                                     queue="elsewhere")
                await next_event(sub, EventType.CREATED.value, other.id)
            # the worker heard the last ring (its feed read the event): its loop looked
            assert worker.store.write_commits - before == 2 * jobs


async def test_an_idle_workers_reaper_takes_no_write_lock(tmp_path: Path):
    """A reaper round that finds no dead worker and no lease run out is reads only.

    Before, each round (every second) committed an empty write transaction: an idle
    worker took the write lock, and made any other process's writer wait for it.
    """
    db = tmp_path / "t.db"
    async with TaskManager(db, queues={"default": 1}, poll_interval=POLL,
                           heartbeat_interval=3600, lease_seconds=7200,
                           make_default=False) as worker:
        job = await worker.enqueue_by_name("add", {"a": 1, "b": 1}, label="add")
        assert (await worker.wait(job.id, DEADLINE)).status == TaskStatus.SUCCEEDED
        before = worker.store.write_commits
        for _ in range(3):
            assert await worker.housekeeping.reap_dead_workers() == []
        assert worker.store.write_commits == before


async def test_without_the_bell_the_poll_still_delivers(tmp_path: Path):
    """Correctness never depends on the bell: a folder that cannot be made leaves the poll."""
    db = tmp_path / "t.db"
    wake_folder(db).write_text("not a folder")  # nobody can bind a socket there
    async with TaskManager(db, queues={"default": 1}, poll_interval=0.02,
                           make_default=False) as worker, \
            TaskManager(db, as_worker=False, runs_background=False, poll_interval=0.02,
                        make_default=False) as client:
        assert worker.bell is not None and not worker.bell.bound
        job = await client.enqueue_by_name("add", {"a": 2, "b": 2}, label="add")
        done = await client.wait(job.id, DEADLINE)
        assert done.status == TaskStatus.SUCCEEDED and done.result == 4


async def test_wake_bell_false_binds_nothing(tmp_path: Path):
    async with TaskManager(tmp_path / "t.db", wake_bell=False, make_default=False) as manager:
        assert manager.bell is None
        assert not wake_folder(manager.db_path).exists()


# ------------------------------------------------------------------ the bell


def bells(db: Path, n: int) -> tuple[list[WakeBell], list[asyncio.Event]]:
    """``n`` bells on ``db``, each setting its own event when rung."""
    loop = asyncio.get_running_loop()
    events = [asyncio.Event() for _ in range(n)]
    made = [WakeBell(db, e.set) for e in events]
    for bell in made:
        assert bell.open(loop)
    return made, events


async def rung(event: asyncio.Event) -> None:
    """Wait (``DEADLINE``) until ``event`` is set."""
    await asyncio.wait_for(event.wait(), DEADLINE)


async def test_a_ring_wakes_every_other_bell_but_not_its_own(tmp_path: Path):
    (a, b, c), (ea, eb, ec) = bells(tmp_path / "t.db", 3)
    try:
        assert oct(wake_folder(tmp_path / "t.db").stat().st_mode & 0o777) == "0o700"
        a.ring()
        await rung(eb)
        await rung(ec)
        assert a.rings == 2  # to b and c: never to itself
        # a ring to b after it read its datagrams wakes it again
        eb.clear()
        c.ring()
        await rung(eb)
        await rung(ea)
    finally:
        for bell in (a, b, c):
            bell.close()


async def test_close_removes_the_socket_and_later_rings_are_harmless(tmp_path: Path):
    (a, b), _ = bells(tmp_path / "t.db", 2)
    folder = wake_folder(tmp_path / "t.db")
    b.close()
    assert sorted(os.listdir(folder)) == [a.name]
    a.ring()
    b.ring()  # closed: does nothing
    b.close()
    a.close()
    assert os.listdir(folder) == []


async def test_a_killed_process_socket_is_removed_by_the_next_ring(tmp_path: Path):
    folder = wake_folder(tmp_path / "t.db")
    (a,), _ = bells(tmp_path / "t.db", 1)
    try:
        # what kill -9 leaves: a socket file nobody listens on any more
        dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        dead.bind(str(folder / "999999-dead.sock"))
        dead.close()
        assert (folder / "999999-dead.sock").exists()
        a.ring()
        assert not (folder / "999999-dead.sock").exists()
        assert os.listdir(folder) == [a.name]
    finally:
        a.close()


async def test_a_peer_that_never_reads_does_not_block_the_ringer(tmp_path: Path):
    folder = wake_folder(tmp_path / "t.db")
    (a,), _ = bells(tmp_path / "t.db", 1)
    deaf = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        deaf.bind(str(folder / "1-deaf.sock"))
        for _ in range(5000):  # far more than its receive buffer holds
            a.ring()
        assert 0 < a.rings < 5000  # the rest found its buffer full, and were dropped
        assert (folder / "1-deaf.sock").exists()  # full is not dead
    finally:
        deaf.close()
        a.close()


async def test_a_path_longer_than_a_socket_address_still_rings(tmp_path: Path):
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 6)
    deep.mkdir(parents=True)
    db = deep / "tasks.db"
    assert len(os.fsencode(wake_folder(db) / "1234567-abcdef01.sock")) > 108
    (a, b), (_, eb) = bells(db, 2)
    try:
        a.ring()
        await rung(eb)
        assert sorted(os.listdir(wake_folder(db))) == sorted([a.name, b.name])
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("make", [lambda f: f.mkdir(), lambda f: None])
async def test_a_ring_with_no_folder_or_an_empty_one_is_harmless(
        tmp_path: Path, make: Callable[[Path], None]):
    db = tmp_path / "t.db"
    make(wake_folder(db))
    bell = WakeBell(db, lambda: None)
    bell.ring()  # never opened
    assert bell.rings == 0


async def test_a_young_folder_is_listed_again_now_and_then_not_at_every_ring(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (a, b), (_, eb) = bells(tmp_path / "t.db", 2)
    folder = wake_folder(tmp_path / "t.db")
    listings = []
    real_listdir = os.listdir

    def listdir(path: str) -> list[str]:
        if os.fspath(path) == os.fspath(folder):  # only the bell's: other threads list too
            listings.append(path)
        return real_listdir(path)

    monkeypatch.setattr(bell_module.os, "listdir", listdir)
    try:
        # the folder changed a moment ago (b bound): young, so a listing may miss a
        # socket bound in the same tick of a coarse clock
        began = time.monotonic_ns()
        for _ in range(200):
            a.ring()
        elapsed = time.monotonic_ns() - began
        assert 1 <= len(listings) <= 2 + elapsed // bell_module.RACY_RELIST_NS, len(listings)
        await rung(eb)
        # a peer bound without changing the folder's time (a coarse clock's same
        # tick) is found by a later listing while the folder is young
        stamp = folder.stat().st_mtime_ns
        (c,), (ec,) = bells(tmp_path / "t.db", 1)
        os.utime(folder, ns=(stamp, stamp))

        async def c_rung() -> bool:
            a.ring()
            return ec.is_set()

        try:
            await eventually(c_rung, timeout=DEADLINE, what="the new peer rung")
        finally:
            c.close()
    finally:
        a.close()
        b.close()
