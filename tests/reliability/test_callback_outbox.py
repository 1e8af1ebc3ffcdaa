"""A callback owed when its server dies is posted by the next process on the database.

A task's end and the callback it owes are written in one transaction (an outbox row);
delivery removes the row. A server killed between the end and a delivered POST (the
receiver was down, or the kill came first) leaves the row, and the server started next
posts it: the receiver learns of the end once the server is back, never not at all.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from jupyter_tasks import TaskManager
from tests.waiting import eventually, eventually_sync

from .test_callbacks import Receiver

pytestmark = pytest.mark.slow

ALLOW = "--JupyterTasksApp.callback_allowlist=127.0.0.1"


def _owed(db_path: Path) -> int:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute("SELECT count(*) FROM callback_outbox").fetchone()[0]
    finally:
        conn.close()

async def ended_job(manager: TaskManager, callback_url: str) -> Any:
    """A command job with ``callback_url``, run to its end by ``manager``."""
    job = await manager.submit_spec({"command": [sys.executable, "-c", "pass"]}, mode="job",
                                    callback_url=callback_url)
    await manager.wait(job.id, timeout=60)
    return job


async def until_delivered(receiver: Receiver, db_path: Path, what: str) -> None:
    """Until ``receiver`` got a request and no callback is owed any more."""

    async def delivered() -> bool:
        return bool(receiver.requests) and _owed(db_path) == 0

    await eventually(delivered, what=what)



@pytest.mark.parametrize("end", ["kill", "stop"])
def test_a_callback_owed_at_a_kill_or_stop_is_posted_after_the_restart(
        server_factory, db_path: Path, end: str) -> None:
    # before: the tries lived in the server's memory; killed (or stopped: its tries
    # were cancelled), nothing posted the callback again
    receiver = Receiver("127.0.0.1", status=503)  # down: every try fails
    try:
        server = server_factory(ALLOW)
        status, task = server.request("POST", "/api/tasks", {
            "command": [sys.executable, "-c", "print('done')"],
            "callback_url": f"{receiver.url}/hook"})
        assert status == 202, task
        eventually_sync(lambda: receiver.requests, timeout=60,
                        what="a first try, refused by the receiver")
        if end == "kill":
            server.kill()
        else:
            server.stop()
        tried = len(receiver.requests)
        receiver.status = 204  # the receiver is back

        server.start()
        eventually_sync(lambda: len(receiver.requests) > tried, timeout=60,
                        what="the callback posted by the restarted server")
        body = json.loads(receiver.requests[-1]["body"])
        assert (body["id"], body["status"]) == (task["id"], "succeeded"), body
        # the same body as the tries before the kill (a receiver dedupes on the id)
        assert receiver.requests[-1]["body"] == receiver.requests[0]["body"]
        eventually_sync(lambda: _owed(db_path) == 0, timeout=30,
                        what="the delivered callback no longer owed")
        # four tries at most in all, whichever processes made them
        assert len(receiver.requests) <= 4, len(receiver.requests)
        assert {r["method"] for r in receiver.requests} == {"POST"}
    finally:
        receiver.close()


async def test_two_processes_on_one_database_post_a_callback_once(db_path: Path) -> None:
    # every process sweeps the owed callbacks each reaper interval; the one that claims
    # the row posts, the other leaves it (here two managers stand for two processes)
    receiver = Receiver("127.0.0.1")
    try:
        async with TaskManager(db_path, queues={"default": 2}, reaper_interval=0.05,
                               make_default=False) as first, \
                TaskManager(db_path, queues={"default": 2}, reaper_interval=0.05,
                            make_default=False) as second:
            jobs = [await manager.submit_spec(
                        {"command": [sys.executable, "-c", "pass"]}, mode="job",
                        callback_url=f"{receiver.url}/{i}")
                    for i, manager in enumerate([first, second] * 5)]
            for job in jobs:
                await first.wait(job.id, timeout=60)

            async def settled() -> bool:
                return _owed(db_path) == 0 and len(receiver.requests) >= len(jobs)

            await eventually(settled, what="every callback delivered and none owed")
        paths = sorted(r["path"] for r in receiver.requests)
        assert paths == sorted(f"/{i}" for i in range(len(jobs))), paths
    finally:
        receiver.close()


async def test_a_callback_is_tried_four_times_in_all_then_given_up(
        db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # the sweep must not post a callback whose tries ran out again and again for good
    caplog.set_level(logging.WARNING, logger="jupyter_tasks")
    receiver = Receiver("127.0.0.1", status=500)
    try:
        async with TaskManager(db_path, queues={"default": 1}, reaper_interval=0.05,
                               make_default=False) as manager:
            job = await ended_job(manager, f"{receiver.url}/x")

            async def given_up() -> bool:
                return len(receiver.requests) >= 4 and _owed(db_path) == 0

            await eventually(given_up, timeout=60, what="four tries, then not owed")
            # no sweep finds it again, and a post asked for anyway sends nothing
            assert await manager.store.owed_callbacks(10) == []
            await manager.housekeeping.post_callback(job.id)
        assert len(receiver.requests) == 4, len(receiver.requests)
        # the last failure is followed by the end of it (before: four "failed" lines only)
        given_up = [r.getMessage() for r in caplog.records if "given up" in r.getMessage()]
        assert given_up == [f"callback for task {job.id} given up after 4 tries"], given_up
    finally:
        receiver.close()


def _owed_rows(db_path: Path) -> list[tuple[str, int, str | None]]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute("SELECT task_id, tries, claimed_by FROM callback_outbox").fetchall()
    finally:
        conn.close()


async def test_a_process_whose_allow_list_refuses_the_url_leaves_it_to_one_that_admits_it(
        db_path: Path) -> None:
    # before: any process on the database took an owed callback (a kernel, a worker with
    # the default list), was refused by its own allow-list and deleted it: a URL only
    # the server admits was never posted
    receiver = Receiver("127.0.0.2")  # admitted by the "server" below only
    try:
        async with TaskManager(db_path, queues={}, as_worker=False, runs_background=False,
                               callback_allowlist=["127.0.0.2"], make_default=False) as api:
            job = await api.submit_spec({"command": [sys.executable, "-c", "pass"]},
                                        mode="job", callback_url=f"{receiver.url}/hook")
        # a worker with the default (loopback names) list runs and ends it, and sweeps
        async with TaskManager(db_path, queues={"default": 1}, reaper_interval=3600,
                               make_default=False) as worker:
            await worker.wait(job.id, timeout=60)
            await worker.housekeeping.post_owed_callbacks()
            assert _owed_rows(db_path) == [(job.id, 0, None)]
        assert receiver.requests == []
        # the server, whose list admits it, posts it
        async with TaskManager(db_path, queues={}, reaper_interval=0.05,
                               callback_allowlist=["127.0.0.2"], make_default=False):

            await until_delivered(receiver, db_path, "the callback posted by the server")
        assert [json.loads(r["body"])["id"] for r in receiver.requests] == [job.id]
    finally:
        receiver.close()


async def test_a_cancel_from_a_process_that_is_no_worker_is_posted_once_by_a_worker(
        db_path: Path) -> None:
    # before: the CLI's cancel of a queued task posted the callback itself, was stopped
    # mid-way by its own exit (a traceback on stderr: the store was closed), and the
    # server posted it again
    receiver = Receiver("127.0.0.1")
    try:
        async with TaskManager(db_path, queues={}, as_worker=False, runs_background=False,
                               make_default=False) as cli:
            job = await cli.submit_spec({"command": [sys.executable, "-c", "pass"]},
                                        mode="job", queue="nobody-serves-this",
                                        callback_url=f"{receiver.url}/hook")
            assert (await cli.cancel(job.id)).status == "cancelled"
        assert receiver.requests == []
        assert _owed_rows(db_path) == [(job.id, 0, None)]
        async with TaskManager(db_path, queues={}, reaper_interval=0.05,
                               make_default=False):

            await until_delivered(receiver, db_path, "the callback posted by a worker's sweep")
        assert len(receiver.requests) == 1, receiver.requests
        assert json.loads(receiver.requests[0]["body"])["status"] == "cancelled"
    finally:
        receiver.close()


async def test_a_redirect_this_process_refuses_is_left_to_one_that_admits_it(
        db_path: Path) -> None:
    # before: the worker whose list admits the URL but not the redirect's target was
    # refused, and deleted the callback: never posted
    final = Receiver("127.0.0.2")
    first = Receiver("127.0.0.1", status=307, location=f"{final.url}/final")
    try:
        async with TaskManager(db_path, queues={"default": 1}, reaper_interval=3600,
                               make_default=False) as worker:
            job = await ended_job(worker, f"{first.url}/hook")

            async def refused() -> bool:
                return bool(first.requests) and not worker.housekeeping._posting

            await eventually(refused, what="the worker's POST refused at the redirect")
            # still owed, its try counted (the first hop got the POST)
            assert _owed_rows(db_path) == [(job.id, 1, None)]
        async with TaskManager(db_path, queues={}, reaper_interval=0.05, make_default=False,
                               callback_allowlist=["127.0.0.1", "127.0.0.2"]):

            await until_delivered(final, db_path, "the callback posted through the redirect")
        assert [json.loads(r["body"])["id"] for r in final.requests] == [job.id]
    finally:
        first.close()
        final.close()


async def test_owed_callbacks_nobody_here_may_post_do_not_hide_the_others(
        db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # before: the sweep read the first rows by id only; that many rows no running process
    # admits hid every later owed callback for good
    from jupyter_tasks.engine import housekeeping

    monkeypatch.setattr(housekeeping, "OWED_READ", 3)
    receiver = Receiver("127.0.0.1")
    try:
        async with TaskManager(db_path, queues={}, as_worker=False, runs_background=False,
                               callback_allowlist=["127.0.0.1", "127.0.0.2"],
                               make_default=False) as cli:
            # seven owed callbacks for a host the worker below does not admit, then one
            urls = ["http://127.0.0.2:9/unwanted"] * 7 + [f"{receiver.url}/wanted"]
            for url in urls:
                job = await cli.submit_spec({"command": ["true"]}, mode="job",
                                            queue="nobody-serves-this", callback_url=url)
                await cli.cancel(job.id)
        async with TaskManager(db_path, queues={}, reaper_interval=0.05,
                               make_default=False):

            async def delivered() -> bool:
                return bool(receiver.requests)

            await eventually(delivered, what="the admitted callback found past the others")
        assert [r["path"] for r in receiver.requests] == ["/wanted"]
        assert len(_owed_rows(db_path)) == 7
    finally:
        receiver.close()


STOP_WHILE_HANGING = '''
import asyncio, socket, sys, threading, time
from jupyter_tasks import TaskManager

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
held = []

def trickle():
    # a receiver that never finishes its answer: a byte now and then keeps the POST's
    # read from timing out, for good
    conn, _ = listener.accept()
    held.append(conn)
    while True:
        conn.send(b"H")
        time.sleep(1)

threading.Thread(target=trickle, daemon=True).start()
url = "http://127.0.0.1:%d/hook" % listener.getsockname()[1]

async def main():
    async with TaskManager(sys.argv[1], queues={"default": 1}, make_default=False) as m:
        job = await m.submit_spec({"command": ["true"]}, mode="job", callback_url=url)
        await m.wait(job.id, timeout=60)
        while not held:  # the POST is under way, and its receiver will never answer
            await asyncio.sleep(0.01)
    print("stopped", flush=True)

asyncio.run(main())
'''


def test_a_process_stops_without_waiting_for_a_receiver_that_hangs(
        db_path: Path, tmp_path: Path) -> None:
    # before: the POST ran on the loop's thread pool, which the interpreter waits for at
    # exit: a stopping worker hung as long as its receiver did
    import subprocess

    script = tmp_path / "stop_while_hanging.py"
    script.write_text(STOP_WHILE_HANGING)
    done = subprocess.run([sys.executable, str(script), str(db_path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "stopped" in done.stdout, done.stderr[-2000:]
    # handed back, still owed for the next process; the try under way counts (its
    # receiver may have the POST): kills and restarts cannot post it again for good
    (row,) = _owed_rows(db_path)
    assert row[1:] == (1, None), row


async def test_a_callback_refused_at_every_process_start_is_given_up_after_four_tries(
        db_path: Path) -> None:
    # before: a refusal was remembered in the refusing process only, its try not
    # counted: every process started on the database POSTed the first hop again, for as
    # long as the task was kept (30 days)
    elsewhere = Receiver("127.0.0.2")
    first = Receiver("127.0.0.1", status=307, location=f"{elsewhere.url}/off-the-list")
    try:
        async with TaskManager(db_path, queues={"default": 1}, reaper_interval=3600,
                               make_default=False) as worker:
            job = await ended_job(worker, f"{first.url}/hook")
        for start in range(6):
            async with TaskManager(db_path, queues={}, reaper_interval=0.05,
                                   make_default=False) as restarted:

                async def swept() -> bool:
                    return not restarted.housekeeping._posting and (
                        _owed(db_path) == 0 or task_refused_here(restarted, job.id))

                await eventually(swept, what=f"process start {start + 2} done with it")
        assert _owed(db_path) == 0
        assert len(first.requests) == 4, len(first.requests)
        assert elsewhere.requests == []
    finally:
        first.close()
        elsewhere.close()


def task_refused_here(manager: TaskManager, task_id: str) -> bool:
    return task_id in manager.housekeeping._refused
