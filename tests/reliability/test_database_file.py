"""The database is who it says it is: a deleted, replaced, foreign or corrupt file stops writes.

Deleting or replacing ``tasks.db`` under a running server must not leave the
server accepting work into an unlinked file, nor let another process create a
new empty database where one was expected. A file that is not a database (or
has corrupt pages) at start makes every route answer 503 with a message that
names the file and says what to do. ``jupyter tasks doctor`` inspects a file
read-only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from jupyter_tasks import dbfile
from jupyter_tasks.cli import main as cli_main
from jupyter_tasks.exceptions import StoreBusy, StoreUnavailable
from jupyter_tasks.manager import TaskManager
from jupyter_tasks.migrations import LATEST_VERSION
from jupyter_tasks.models import Task, WorkerInfo, new_task_id
from jupyter_tasks.store import Store
from tests.waiting import eventually_sync

PARKED = "parked"  # a queue no worker serves: tasks stay queued
JOB = {"name": "srv_job", "params": {"value": 1}, "queue": PARKED}
ROUTES = [("GET", ""), ("GET", "stats"), ("GET", "registry"), ("GET", "0" * 32),
          ("GET", "0" * 32 + "/logs"), ("POST", "0" * 32 + "/cancel"), ("POST", "")]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jupyter_tasks.cli", *args],
                          capture_output=True, text=True, timeout=120)


def assert_unavailable(response: Any, path: Path) -> str:
    assert response.code == 503, (response.code, response.body[:500])
    assert response.headers["Content-Type"].startswith("application/problem+json")
    detail = response.json["detail"]
    assert str(path) in detail, detail
    return detail


async def make_database(path: Path, jobs: int = 3) -> None:
    """A valid database with a few queued jobs, closed cleanly (WAL checkpointed away)."""
    async with TaskManager(path, runs_background=False, make_default=False) as manager:
        for n in range(jobs):
            await manager.submit_spec({"command": ["true"]}, mode="job", label=f"job {n}",
                                      queue=PARKED)


def in_thread(coro: Any) -> Any:
    """Run a coroutine to the end on a loop of its own, off the test's thread and loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def holding_writes(path: Path) -> subprocess.Popen[str]:
    """A process holding ``path`` open with writes in its -wal (never checkpointed) until
    a line on its stdin, when it closes cleanly (its close copies them into the file)."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys\n"
         "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
         "conn.execute('PRAGMA wal_autocheckpoint = 0')\n"
         "conn.execute(\"UPDATE tasks SET label = label || ' held'\")\n"
         "print('held', flush=True)\n"
         "sys.stdin.readline()\n"
         "conn.close()\n", str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True)
    if holder.stdout is None or holder.stdout.readline() != "held\n":
        holder.kill()
        holder.wait(30)
        raise AssertionError("the holder did not start")
    return holder


def corrupt_table(path: Path, table: str) -> None:
    """Overwrite the root page of ``table`` with garbage (the rest of the file stays valid)."""
    conn = sqlite3.connect(path)
    try:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?",
                            (table,)).fetchone()[0]
    finally:
        conn.close()
    with open(path, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xa5" * page_size)


# ------------------------------------------------------------- under a running server


async def test_deleted_file_stops_writes_and_nothing_recreates_it(api, db_path):
    accepted = await api.post(body=JOB)
    assert accepted.code == 202
    db_path.unlink()  # the server's connection still holds the unlinked inode

    for _ in range(3):  # nothing more is accepted into a file nobody can see
        assert_unavailable(await api.post(body=JOB), db_path)
    detail = assert_unavailable(await api.post(accepted.json["id"], "cancel"), db_path)
    assert "deleted" in detail and "restart" in detail.lower()
    # it may only have been moved: before, the message said its data was gone for good
    assert "If it was moved, move it back" in detail

    # other processes must not silently start a new, empty database at that path
    listed = cli("--db", str(db_path), "list")
    assert listed.returncode != 0 and str(db_path) in listed.stderr, listed
    submitted = cli("--db", str(db_path), "submit", "--queue", PARKED, "--command", "true")
    assert submitted.returncode != 0 and str(db_path) in submitted.stderr, submitted
    assert not db_path.exists()


async def test_a_prune_that_keeps_failing_is_said_once_not_a_traceback_a_pass(
        api, tasks_app, db_path, caplog):
    # before: every pass logged "pruning failed" with the whole traceback (each hour by
    # default; here with the file deleted under the server, as on a full disk)
    from jupyter_tasks.engine.loop_failures import LoopFailures

    assert (await api.post(body=JOB)).code == 202
    db_path.unlink()
    # (named apart from the server's own loop, whose first pass may meet the file gone;
    # a logger of its own, as the app's stops propagating once traitlets configures it)
    said_by = logging.getLogger("jupyter_tasks.tests.prune_pass")
    failures = LoopFailures(said_by, "these passes failed")
    with caplog.at_level(logging.INFO, logger=said_by.name):
        for _ in range(3):
            await tasks_app.prune_pass(failures)
    said = [r for r in caplog.records if "these passes failed" in r.getMessage()]
    assert len(said) == 1 and "deleted" in said[0].getMessage(), \
        [r.getMessage() for r in said]
    assert said[0].exc_info is None  # the store's own words, no traceback


async def test_replaced_file_stops_writes(api, db_path, tmp_path):
    assert (await api.post(body=JOB)).code == 202
    other = tmp_path / "other.db"
    store = await Store.open(other)
    await store.close()
    os.replace(other, db_path)

    detail = assert_unavailable(await api.post(body=JOB), db_path)
    assert "replaced" in detail and "restart" in detail.lower()
    # and stays so, reads included: what the server holds is no longer the file at that path
    assert_unavailable(await api.post(body=JOB), db_path)
    assert_unavailable(await api.get(), db_path)


def test_a_worker_whose_file_was_replaced_stops_and_says_why(db_path, tmp_path):
    """A worker that can never write again exits, its job's programs ended (before: it
    lived on for good, logging failures every few seconds; its job stayed ``running`` in
    the new file, and no reaper took it, since the worker's process was alive)."""
    import psutil

    from tests.processes import ended

    async def submit_sleeper() -> str:
        async with TaskManager(db_path, runs_background=False, make_default=False) as m:
            job = await m.submit_spec(
                {"command": [sys.executable, "-c", "import time; time.sleep(120)"]},
                mode="job")
            return job.id

    job_id = in_thread(submit_sleeper())
    said = tmp_path / "worker.out"
    with open(said, "wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "jupyter_tasks.cli", "--db",
                                   str(db_path), "worker"], stdout=out, stderr=subprocess.STDOUT)
    try:
        def status() -> str:
            with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as c:
                return c.execute("SELECT status FROM tasks WHERE id = ?", (job_id,)).fetchone()[0]

        eventually_sync(lambda: status() == "running", timeout=60, what="the job running")
        programs = eventually_sync(
            lambda: [p.pid for p in psutil.Process(worker.pid).children(recursive=True)],
            timeout=30, what="the job's program")
        copy = tmp_path / "copy.db"
        with contextlib.closing(sqlite3.connect(db_path)) as source, \
                contextlib.closing(sqlite3.connect(copy)) as target:
            source.backup(target)
        os.replace(copy, db_path)  # as `recover` then `mv` does
        eventually_sync(lambda: worker.poll() is not None, timeout=90,
                        what="the worker to stop")
        assert worker.returncode != 0
        text = said.read_text()
        assert "replaced" in text and "stops" in text, text[-2000:]
        eventually_sync(lambda: all(ended(pid) for pid in programs), timeout=30,
                        what="the job's programs ended")
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(30)


def test_a_write_ahead_log_deleted_under_a_busy_process_is_refused_at_every_open(
        db_path, tmp_path):
    # before: the first CLI open after the deletion refused, and left a new, empty -wal;
    # with the holder still writing (a worker's heartbeats, its jobs' ends) the next
    # `list` worked, `doctor` said "no problem found", `submit` wrote beside the deleted
    # log, and the file ended "not a database" (6 of 6 runs)
    in_thread(make_database(db_path))
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys, time\n"
         "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
         "conn.execute(\"UPDATE tasks SET label = label || ' held'\")\n"
         "print('held', flush=True)\n"
         "n = 0\n"
         "while True:\n"
         "    try:\n"
         "        conn.execute('UPDATE tasks SET priority = ?', (n % 100,))\n"
         "    except sqlite3.Error:\n"
         "        pass\n"
         "    n += 1\n"
         "    time.sleep(0.01)\n", str(db_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        db_path.with_name(db_path.name + "-wal").unlink()
        for args in (["list"], ["list"], ["doctor"], ["list"],
                     ["submit", "--queue", PARKED, "--command", "true"]):
            done = cli("--db", str(db_path), *args)
            said = done.stderr + done.stdout
            assert done.returncode != 0, (args, done)
            assert "write-ahead log" in said and "Never delete -wal" in said, (args, said)
    finally:
        holder.terminate()
        holder.wait(30)
    # nothing wrote beside the deleted log: the file is still a database
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"


async def test_a_forked_child_that_kept_the_files_open_does_not_hold_them(db_path):
    # a child forked without exec (multiprocessing's fork, a job's os.fork) inherits the
    # store's descriptors. When the parent's last connection closed, SQLite deleted the
    # -wal and -shm as it does, the child still had them open, and every later open of a
    # sound file was refused, naming the child. A child holds no SQLite lock: no holder
    store = await Store.open(db_path)
    child = os.fork()
    if child == 0:  # pragma: no cover - the child only keeps the descriptors a while
        time.sleep(60)
        os._exit(0)
    try:
        await store.close()  # the last connection: the -wal and -shm go
        assert not db_path.with_name(db_path.name + "-wal").exists()
        again = await Store.open(db_path)
        await again.close()
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)


@pytest.mark.parametrize("companion", ["-wal", "-shm"])
def test_no_process_opens_the_file_beside_one_that_holds_a_deleted_log(db_path, companion):
    # before: the log deleted just after its holder's checkpoint had emptied it, nothing
    # failed: `list` read, `submit` wrote into a new -wal beside the holder's deleted one
    # (both on one index), and the file was "malformed" at the next `doctor`
    in_thread(make_database(db_path))
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys\n"
         "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
         "conn.execute(\"UPDATE tasks SET label = label || ' held'\")\n"
         "conn.execute('PRAGMA wal_checkpoint(TRUNCATE)')\n"
         "print('held', flush=True)\n"
         "sys.stdin.readline()\n", str(db_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        # (a deleted -shm: a new index over the one log, and the holder, which cannot see
        # the new process's frames, wrote its own over them: an acknowledged submit lost)
        db_path.with_name(db_path.name + companion).unlink()
        for args in (["list"], ["submit", "--queue", PARKED, "--command", "true"],
                     ["doctor"]):
            done = cli("--db", str(db_path), *args)
            said = done.stderr + done.stdout
            assert done.returncode != 0, (args, done)
            assert f"process {holder.pid}" in said and "Never delete -wal" in said, (args, said)
    finally:
        holder.kill()
        holder.wait(30)
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 3


@pytest.mark.parametrize("linked", [False, True])
@pytest.mark.parametrize("companion", ["-wal", "-shm"])
async def test_a_store_whose_write_ahead_log_was_deleted_writes_no_more(db_path, companion,
                                                                         linked):
    # (linked: opened through a link to the file; SQLite keeps the companions beside the
    # file itself, where the check looks too)
    # before: a worker went on committing into its deleted -wal; a CLI started meanwhile
    # (its checkpoint had emptied the log, so no "disk I/O error" warned it) made a new
    # -wal and wrote too, and two logs on one index left the file "not a database"
    opened = db_path
    if linked:
        opened = db_path.with_name("link.db")
        db_path.touch()
        opened.symlink_to(db_path)
    store = await Store.open(opened)
    try:
        await store.create_tasks([Task(id=new_task_id(), kind="function", mode="job",
                                       status="queued", name="n", label="before",
                                       created_at=time.time(), updated_at=time.time())])
        db_path.with_name(db_path.name + companion).unlink()
        with pytest.raises(StoreUnavailable, match="was deleted while this process used"):
            await store.create_tasks([Task(id=new_task_id(), kind="function", mode="job",
                                           status="queued", name="n", label="after",
                                           created_at=time.time(), updated_at=time.time())])
        with pytest.raises(StoreUnavailable, match="was deleted while this process used"):
            await store.request_cancel(new_task_id())  # and every write after it
    finally:
        await store.close()  # its clean close copies what it wrote into the file
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        assert [r[0] for r in conn.execute("SELECT label FROM tasks")] == ["before"]


def test_a_write_ahead_log_deleted_in_use_is_one_error_line(db_path, tmp_path):
    """Deleting ``tasks.db-wal`` under a process that uses the file: the CLI says what
    happened and what to do (before: sqlite's "disk I/O error" traceback from ``list``
    and ``submit``, and ``doctor`` only "quick_check: disk I/O error")."""
    in_thread(make_database(db_path))
    holder = holding_writes(db_path)
    try:
        wal = db_path.with_name(db_path.name + "-wal")
        assert wal.stat().st_size > 0
        wal.unlink()
        for args in (["list"], ["submit", "--queue", PARKED, "--command", "true"]):
            done = cli("--db", str(db_path), *args)
            assert done.returncode != 0, (args, done)
            assert "Traceback" not in done.stderr, (args, done.stderr)
            # named since by the process that holds the deleted log (deleted_companion_holder)
            assert "write-ahead log" in done.stderr and f"deleted while process " \
                f"{holder.pid} used" in done.stderr and "Never delete -wal" in done.stderr, \
                (args, done.stderr)
        doctor = cli("--db", str(db_path), "doctor")
        assert doctor.returncode == 1 and "write-ahead log" in doctor.stdout, doctor
        # as the message says: the holder's clean close copies its changes into the file
        assert holder.stdin is not None
        holder.stdin.write("close\n")
        holder.stdin.flush()
        assert holder.wait(60) == 0
        doctor = cli("--db", str(db_path), "doctor")
        assert doctor.returncode == 0 and "quick_check: ok" in doctor.stdout, doctor
        with contextlib.closing(sqlite3.connect(db_path)) as conn:
            labels = [label for (label,) in conn.execute("SELECT label FROM tasks")]
        assert labels and all(label.endswith(" held") for label in labels), labels
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(30)


def test_a_server_that_met_a_held_deleted_log_serves_once_its_holder_has_closed(
        server_factory, db_path):
    # before: the refusal was remembered like damage: every route kept answering 503
    # after the holder had closed (as the message asks) and `doctor` found nothing
    # wrong, until the server was restarted
    in_thread(make_database(db_path))
    holder = holding_writes(db_path)
    try:
        db_path.with_name(db_path.name + "-wal").unlink()
        server = server_factory(ready=False)

        def answered() -> tuple[int, Any] | None:
            try:
                return server.request("GET", "/api/tasks/stats", timeout=5)
            except OSError:
                return None

        status, problem = eventually_sync(answered, timeout=60, interval=0.1,
                                          what="server answering")
        assert status == 503 and f"process {holder.pid}" in problem["detail"], problem
        assert server.request("GET", "/api/tasks")[0] == 503
        said = [line for line in server.log_path.read_text().splitlines()
                if line.startswith("[E") and f"process {holder.pid}" in line]
        assert len(said) == 1, said  # said once in the log, not once per request
        assert holder.stdin is not None
        holder.stdin.write("close\n")
        holder.stdin.flush()
        assert holder.wait(60) == 0
        status, listed = server.request("GET", "/api/tasks")
        assert status == 200, listed
        labels = [task["label"] for task in listed["tasks"]]
        assert len(labels) == 3 and all(label.endswith(" held") for label in labels), labels
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(30)


def test_a_file_cut_short_before_its_header_ends_is_said_damaged_everywhere(db_path):
    # before: `list` said "schema version 0, older than this jupyter-tasks: start the
    # server once to migrate it", and doctor called it "an empty database", for a file
    # of 50 bytes (a copy or a download cut short), while submit called it damaged
    in_thread(make_database(db_path))
    db_path.write_bytes(db_path.read_bytes()[:50])
    for args in (["list"], ["submit", "--queue", PARKED, "--command", "true"], ["doctor"]):
        done = cli("--db", str(db_path), *args)
        said = done.stderr + done.stdout
        assert done.returncode != 0 and "Traceback" not in said, (args, said)
        assert "cut short (50 bytes" in said and "schema version 0" not in said, (args, said)
        assert "migrate it" not in said and "(an empty database)" not in said, (args, said)
    assert db_path.stat().st_size == 50  # left as it was


# ------------------------------------------------------------------- at start
# ------------------------------------------------------------------- at start


@pytest.fixture
def corrupt_db(db_path: Path) -> Path:
    """A database whose ``task_logs`` table has a garbage root page (submits never touch it)."""
    in_thread(make_database(db_path))
    corrupt_table(db_path, "task_logs")
    return db_path


async def test_corrupt_pages_at_start_every_route_503(corrupt_db, api, jp_ws_fetch):
    # corrupt_db comes first: the server starts on the damaged file
    for method, route in ROUTES:
        parts = [p for p in route.split("/") if p]
        body = JOB if (method, route) == ("POST", "") else None
        detail = assert_unavailable(await api.call(method, *parts, body=body), corrupt_db)
        assert "doctor" in detail, detail
    with pytest.raises(HTTPClientError) as info:
        await jp_ws_fetch("api", "tasks", "events")
    assert info.value.code == 503


def test_not_a_database_at_start_every_route_503_and_an_error_logged(server_factory, db_path):
    db_path.write_bytes(b"this is a text file, not a database\n" * 200)
    server = server_factory(ready=False)

    def answering() -> int | None:
        try:
            return server.request("GET", "/api/tasks/stats", timeout=2)[0]
        except OSError:
            return None

    eventually_sync(answering, timeout=60, interval=0.1, what="server answering")
    for method, route in ROUTES:
        body = JOB if (method, route) == ("POST", "") else ({} if method == "POST" else None)
        status, problem = server.request(method, "/api/tasks/" + route, body=body)
        assert status == 503, (method, route, status, problem)
        assert str(db_path) in problem["detail"]
    errors = [line for line in server.log_path.read_text().splitlines()
              if line.startswith("[E") and str(db_path) in line]
    assert errors, server.log_path.read_text()[-3000:]
    assert "not a" in errors[0] and "doctor" in errors[0]
    assert db_path.read_bytes().startswith(b"this is a text file")  # left as it was


async def test_a_file_deleted_after_the_check_takes_no_commit(tmp_path, monkeypatch):
    # A CI run beside a CPU hog once saw a submit accepted (202) after the unlink: the
    # writer's transaction had passed the identity check before the file went, took
    # the new write in and committed it into the unlinked file. Here the file goes
    # right after the check passes; the check before COMMIT must catch it.
    path = tmp_path / "tasks.db"
    await make_database(path, jobs=1)
    store = await Store.open(path)
    passed_check = dbfile.check_identity
    armed = True

    def deleted_just_after(file: Path, expected: Any) -> str | None:
        nonlocal armed
        verdict = passed_check(file, expected)
        if armed and verdict is None:
            armed = False
            file.unlink()
        return verdict

    try:
        task = (await store.list_tasks(limit=1))[0]
        monkeypatch.setattr(dbfile, "check_identity", deleted_just_after)
        with pytest.raises(StoreUnavailable) as info:
            await store.create_task(replace(task, id="f" * 32))
        assert not armed and str(path) in info.value.message
        assert "deleted" in info.value.message
    finally:
        await store.close()
    assert not path.exists()


async def test_damage_found_at_run_time_is_store_unavailable(tmp_path):
    path = tmp_path / "tasks.db"
    await make_database(path)  # closed cleanly: every page is in the main file
    corrupt_table(path, "task_logs")
    store = await Store.open(path)  # opening reads no page of task_logs
    try:
        task_id = (await store.list_tasks(limit=1))[0].id
        with pytest.raises(StoreUnavailable) as info:  # a write meets the damage
            await store.append_logs(task_id, [(time.time(), "stdout", "x\n")])
        assert str(path) in info.value.message and "damaged" in info.value.message
        assert "doctor" in info.value.message
        with pytest.raises(StoreUnavailable):  # from then on nothing is accepted
            await store.get_task(task_id)
    finally:
        await store.close()
    other = tmp_path / "other.db"
    await make_database(other)
    corrupt_table(other, "tasks")
    store = await Store.open(other)
    try:
        with pytest.raises(StoreUnavailable) as info:  # a read meets it
            await store.list_tasks(limit=10)
        assert str(other) in info.value.message
        with pytest.raises(StoreUnavailable):
            await store.transition(task_id, {"label": "renamed"}, None)
    finally:
        await store.close()


def submit_in_another_process(path: Path, label: str) -> str:
    """A job submitted by a separate process that then exits: the id."""
    code = ("import asyncio, sys\n"
            "from jupyter_tasks.manager import TaskManager\n"
            "async def main():\n"
            "    async with TaskManager(sys.argv[1], runs_background=False,\n"
            "                           make_default=False) as m:\n"
            "        task = await m.submit_spec({'command': ['true']}, mode='job',\n"
            f"                                   label=sys.argv[2], queue={PARKED!r})\n"
            "        print(task.id)\n"
            "asyncio.run(main())\n")
    done = subprocess.run([sys.executable, "-c", code, str(path), label],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def labels_seen_by_another_process(path: Path) -> set[str]:
    code = ("import sqlite3, sys\n"
            "conn = sqlite3.connect(sys.argv[1])\n"
            "print('\\n'.join(label for (label,) in conn.execute('SELECT label FROM tasks')))\n")
    done = subprocess.run([sys.executable, "-c", code, str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.splitlines())


async def test_a_second_store_in_the_process_keeps_the_first_ones_locks(tmp_path):
    # The dashboard opens a read-only store for its counts beside its manager's. Opening
    # one read the file's header with open() and close(), and a close() drops every
    # POSIX lock the process holds on the file, SQLite's included: the next process to
    # close its connection then took itself for the last one and deleted the WAL under
    # the first store, which from then on read a frozen past (its search index never
    # saw another task) and wrote into a WAL nobody else could see.
    path = tmp_path / "tasks.db"
    await make_database(path, jobs=1)
    async with TaskManager(path, runs_background=False, make_default=False) as manager:
        await manager.store.list_tasks(limit=1)
        second = await Store.open(path, read_only=True)
        try:
            await second.stats()
        finally:
            await second.close()
        theirs = submit_in_another_process(path, "theirs")
        assert (await manager.get(theirs)).label == "theirs"  # was: TaskNotFound
        ours = await manager.submit_spec({"command": ["true"]}, mode="job", label="ours",
                                         queue=PARKED)
        assert (await manager.get(ours.id)).label == "ours"
        assert {"theirs", "ours"} <= labels_seen_by_another_process(path)
    assert {"job 0", "theirs", "ours"} <= labels_seen_by_another_process(path)


# --------------------------------------------------------------------- doctor


def test_doctor_on_a_good_file(db_path, capsys):
    in_thread(make_database(db_path))
    before = db_path.read_bytes()
    assert cli_main(["--db", str(db_path), "doctor"]) == 0
    out = capsys.readouterr().out
    assert str(db_path) in out
    assert "quick_check: ok" in out
    assert f"schema version: {LATEST_VERSION}" in out
    assert "journal mode: wal" in out
    assert "queued: 3" in out
    assert "stopped" in out  # the worker row of the manager that made the file
    assert db_path.read_bytes() == before  # read-only: nothing migrated, nothing written
    # the three jobs wait in a queue no live worker serves: said, though not a problem
    # of the file (before: "no problem found" and nothing else)
    assert f"note: 3 jobs wait in queue {PARKED!r}, which no live worker serves" in out
    assert f"jupyter tasks worker --queue {PARKED}" in out


def test_doctor_says_a_live_worker_that_stopped_its_heartbeats(db_path, capsys):
    # before: "pid N alive, last heartbeat 280.9s ago", then "no problem found": a worker
    # stuck (or writing to a file no longer at this path) holds its jobs for good, since
    # on its host a reaper takes its live process as the authority
    import psutil

    in_thread(make_database(db_path))
    now = time.time()
    silent = WorkerInfo(id="worker-here-silent", kind="worker", pid=os.getpid(),
                        host=socket.gethostname(), started_at=now - 600,
                        heartbeat_at=now - 300, pid_started_at=psutil.Process().create_time(),
                        queues=["default"])

    async def register() -> None:
        store = await Store.open(db_path)
        try:
            await store.register_worker(silent)
        finally:
            await store.close()

    in_thread(register())
    assert cli_main(["--db", str(db_path), "doctor"]) == 0  # a note: the file is sound
    out = capsys.readouterr().out
    assert f"note: worker worker-here-silent (pid {os.getpid()}) runs but has written no " \
        "heartbeat for 300 s" in out, out
    assert f"kill {os.getpid()}" in out, out


def test_doctor_on_bad_files(db_path, tmp_path, capsys):
    in_thread(make_database(db_path))
    corrupt_table(db_path, "task_logs")
    assert cli_main(["--db", str(db_path), "doctor"]) != 0
    out = capsys.readouterr().out
    assert str(db_path) in out and "quick_check" in out and "jupyter tasks recover" in out

    foreign = tmp_path / "foreign.db"
    foreign.write_text("hello")
    assert cli_main(["--db", str(foreign), "doctor"]) != 0
    out = capsys.readouterr().out
    assert str(foreign) in out and "not a SQLite database" in out and "move" in out

    newer = tmp_path / "newer.db"
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    conn.close()
    assert cli_main(["--db", str(newer), "doctor"]) != 0
    assert "newer" in capsys.readouterr().out

    # an empty file holds no history: before, "no problem found" and exit 0, so the
    # documented `sqlite3 .recover | sqlite3 x.recovered && doctor && mv` put the empty
    # output of a failed recovery in place of the real database
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    assert cli_main(["--db", str(empty), "doctor"]) != 0
    out = capsys.readouterr().out
    assert "is an empty database" in out and "do not move it in place" in out, out

    missing = tmp_path / "missing.db"
    assert cli_main(["--db", str(missing), "doctor"]) != 0
    assert str(missing) in capsys.readouterr().out
    assert not missing.exists()


def test_the_doctors_advice_quotes_a_path_with_spaces(tmp_path, capsys):
    # before: `mv /tmp/nb dir/ok nb.db /tmp/nb dir/ok nb.db.broken`, which run as printed
    # moves the wrong files
    folder = tmp_path / "nb dir"
    folder.mkdir()
    path = folder / "ok tasks.db"
    in_thread(make_database(path))
    corrupt_table(path, "task_logs")
    assert cli_main(["--db", str(path), "doctor"]) != 0
    out = capsys.readouterr().out
    quoted = shlex.quote(str(path))
    assert f"`mv {quoted} {shlex.quote(f'{path}.broken')}`" in out, out
    assert f"`jupyter tasks recover --db {quoted}`" in out, out


def test_doctor_and_the_writing_commands_on_a_truncated_file(db_path, capsys):
    # before: the doctor the server's 503 sends you to crashed on a file cut in half
    # ("database disk image is malformed" from PRAGMA user_version), and so did
    # submit and worker, each with a traceback
    in_thread(make_database(db_path, jobs=200))
    with open(db_path, "r+b") as f:
        f.truncate(db_path.stat().st_size // 2)
    for args in (["doctor"], ["doctor", "--json"]):
        assert cli_main(["--db", str(db_path), *args]) != 0
        out = capsys.readouterr().out
        assert str(db_path) in out and ("malformed" in out or "quick_check" in out), out
        assert ".recover" in out or "recover" in out, out
    for args in (["submit", "--command", "true"], ["worker", "--concurrency", "1"]):
        done = cli("--db", str(db_path), *args)
        assert done.returncode != 0, (args, done.stdout)
        assert "Traceback" not in done.stderr, done.stderr
        assert "jupyter tasks doctor" in done.stderr, done.stderr


def test_the_doctor_command_an_error_prints_runs_as_printed(db_path, tmp_path, capsys):
    # the messages say `jupyter tasks doctor --db FILE`; before, that line was refused
    # ("unrecognized arguments: --db", exit 2), which reads as the doctor finding damage
    foreign = tmp_path / "foreign.db"
    foreign.write_text("hello")
    assert cli_main(["--db", str(foreign), "list"]) == 2
    message = capsys.readouterr().err
    advised = message[message.index("`jupyter tasks doctor") + 1:].split("`")[0]
    assert advised == f"jupyter tasks doctor --db {foreign}"
    assert cli_main(advised.split()[2:]) != 0  # it runs, and reports the foreign file
    assert "not a SQLite database" in capsys.readouterr().out

    in_thread(make_database(db_path))
    for argv in (["doctor", "--db", str(db_path)], ["list", "--db", str(db_path)],
                 ["schedule", "list", "--db", str(db_path)],
                 # after the subcommand it wins over the global one
                 ["--db", str(foreign), "doctor", "--db", str(db_path)]):
        assert cli_main(argv) == 0, argv
        assert "not a SQLite" not in capsys.readouterr().out


async def test_a_relative_path_survives_a_change_of_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = await Store.open("tasks.db")
    try:
        (tmp_path / "elsewhere").mkdir()
        monkeypatch.chdir(tmp_path / "elsewhere")  # a kernel's %cd: the file is still there
        await store.register_worker(WorkerInfo(id="w", kind="test", pid=os.getpid(),
                                               host="h", started_at=0.0, heartbeat_at=0.0))
        assert [w.id for w in await store.list_workers()] == ["w"]
    finally:
        await store.close()


async def test_an_open_event_stream_is_closed_once_the_file_is_gone(api, db_path, jp_ws_fetch):
    # before: the websocket stayed open and silent, so the panel said "live" while every
    # request got a 503; the reconnect's handshake now says 503 too
    ws = await jp_ws_fetch("api", "tasks", "events")
    db_path.unlink()
    assert_unavailable(await api.post(body=JOB), db_path)  # a write finds the file gone
    assert await asyncio.wait_for(ws.read_message(), 30) is None  # closed by the server
    assert ws.close_code == 1011
    with pytest.raises(HTTPClientError) as info:
        await jp_ws_fetch("api", "tasks", "events")
    assert info.value.code == 503


async def test_a_store_never_makes_a_new_file_where_its_own_was_deleted(db_path: Path) -> None:
    # before: the WAL copy opened its connection at its first round with a plain connect,
    # which made an empty database at the path of one deleted under a dashboard (opened
    # a moment before): every process then took it for a replacement
    await make_database(db_path)
    store = await Store.open(db_path, create=False)
    try:
        for path in (db_path, *dbfile.sidecars(db_path)):
            path.unlink(missing_ok=True)
        await store._checkpoint()  # what the store's loop does each second
        assert not db_path.exists()
        with pytest.raises(StoreUnavailable, match="deleted or moved"):
            store.check_file()
    finally:
        await store.close()
    assert not db_path.exists()


def test_recover_copies_the_history_around_a_damaged_page(db_path, tmp_path, capsys):
    # before: the documented `sqlite3 tasks.db ".recover" | sqlite3 tasks.db.recovered`
    # wrote an empty file with Debian's sqlite3 (its .recover fails, even on a sound
    # file), which doctor passed and the documented `&& mv` put in place of the history
    in_thread(make_database(db_path, jobs=600))
    conn = sqlite3.connect(db_path)
    try:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        leaves = [row[0] for row in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = 'tasks' AND pagetype = 'leaf' "
            "ORDER BY pageno")]
    finally:
        conn.close()
    assert len(leaves) > 10, leaves
    with open(db_path, "r+b") as f:  # a page in the middle of the tasks table, garbled
        f.seek((leaves[len(leaves) // 2] - 1) * page_size)
        f.write(b"\xa5" * page_size)
    damaged = db_path.read_bytes()
    assert cli_main(["--db", str(db_path), "doctor"]) != 0
    capsys.readouterr()

    assert cli_main(["--db", str(db_path), "recover"]) == 0
    out = capsys.readouterr().out
    recovered = Path(f"{db_path}.recovered")
    assert f"written to {recovered}" in out and "unreadable stretch" in out, out
    assert db_path.read_bytes() == damaged  # the damaged file is only read
    assert cli_main(["--db", str(recovered), "doctor"]) == 0, capsys.readouterr().out
    capsys.readouterr()

    async def listed() -> tuple[int, int]:
        async with TaskManager(recovered, runs_background=False, make_default=False) as m:
            stats = await m.store.stats()
            found = await m.store.list_tasks(search="job 599")
            return stats["statuses"]["queued"], len(found)

    queued, found = in_thread(listed())
    assert 500 < queued < 600, queued  # all but the rows of the garbled page or two
    assert found == 1  # and the search index is rebuilt over them

    # a second recover into the same file is refused: nothing is overwritten
    assert cli_main(["--db", str(db_path), "recover"]) != 0
    assert "exists already" in capsys.readouterr().err


def test_recover_of_a_sound_file_copies_everything(db_path, tmp_path, capsys):
    in_thread(make_database(db_path, jobs=50))
    target = tmp_path / "copy.db"
    assert cli_main(["--db", str(db_path), "recover", str(target)]) == 0
    out = capsys.readouterr().out
    assert "tasks: 50 rows copied\n" in out and "events: 50 rows copied" in out, out
    before = sqlite3.connect(db_path).execute(
        "SELECT id, label, status, params FROM tasks ORDER BY rowid").fetchall()
    after = sqlite3.connect(target).execute(
        "SELECT id, label, status, params FROM tasks ORDER BY rowid").fetchall()
    assert after == before


def test_a_recovery_that_copies_no_task_writes_nothing_and_fails(db_path, tmp_path, capsys):
    # before: every table "not in tasks.db (or unreadable)", exit 0, and a new database
    # with the schema and no row written, which doctor passed ("no problem found"): the
    # documented `doctor --db tasks.db.recovered && mv ...` replaced the history with it
    in_thread(make_database(db_path, jobs=20))
    damaged = tmp_path / "damaged.db"
    shutil.copy(db_path, damaged)
    with open(damaged, "r+b") as f:  # everything past the header garbled
        f.seek(100)
        f.write(b"\xa5" * (damaged.stat().st_size - 100))
    assert cli_main(["--db", str(damaged), "recover"]) != 0
    captured = capsys.readouterr()
    assert "no task could be read" in captured.err and "nor schedule, event or log" \
        in captured.err, captured
    recovered = Path(f"{damaged}.recovered")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(recovered.name)]
    assert cli_main(["--db", str(recovered), "doctor"]) != 0  # so `&& mv` never runs


def test_a_recovery_that_reads_no_task_but_their_events_writes_nothing(db_path, tmp_path,
                                                                        capsys):
    # before: the tasks table's root page unreadable, recover copied 0 tasks beside their
    # events and logs, said "written to ….recovered", exit 0, and doctor passed the copy:
    # the documented `&& mv` replaced the history with one that lists no task
    in_thread(make_database(db_path, jobs=20))
    corrupt_table(db_path, "tasks")
    assert cli_main(["--db", str(db_path), "recover"]) != 0
    captured = capsys.readouterr()
    assert "no task could be read" in captured.err, captured
    recovered = Path(f"{db_path}.recovered")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(recovered.name)]


def test_a_killed_recovery_leaves_no_file_that_passes_for_a_recovered_one(db_path, tmp_path):
    # before: recover wrote into tasks.db.recovered itself. Killed midway it left a copy
    # missing events, logs, even tasks, which doctor passed ("no problem found"): the
    # documented `doctor --db tasks.db.recovered && mv ...` put it in place of the history
    in_thread(make_database(db_path, jobs=3000))
    recovered = Path(f"{db_path}.recovered")
    copying = subprocess.Popen([sys.executable, "-m", "jupyter_tasks.cli", "--db", str(db_path),
                                "recover"], stdout=subprocess.DEVNULL)
    try:
        # killed as soon as its new file exists: a schema, no row copied yet
        eventually_sync(lambda: copying.poll() is not None or any(
            p.name.startswith(recovered.name) for p in tmp_path.iterdir()),
            timeout=60, interval=0.001, what="the new file")
        assert copying.poll() is None, "the copy ended before the kill: a larger source"
    finally:
        copying.kill()
        copying.wait()
    assert not recovered.exists()
    assert cli_main(["--db", str(recovered), "doctor"]) != 0  # so `&& mv` never runs
    # recover again: the killed run's leftovers are no obstacle, the copy is whole
    assert cli_main(["--db", str(db_path), "recover"]) == 0
    # one file, no part left beside it (its rows all in it: no -wal to carry along)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(recovered.name)) \
        == [recovered.name]
    with contextlib.closing(sqlite3.connect(recovered)) as conn:
        assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 3000


def test_recover_refuses_a_file_a_newer_version_wrote(db_path, tmp_path, capsys):
    # before: a copy with this version's schema, exit 0: the newer version's columns
    # and tables dropped without a word, and doctor passed the copy
    in_thread(make_database(db_path, jobs=5))
    conn = sqlite3.connect(db_path)
    conn.execute("ALTER TABLE tasks ADD COLUMN from_the_future TEXT")
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    conn.commit()
    conn.close()
    target = tmp_path / "copy.db"
    assert cli_main(["--db", str(db_path), "recover", str(target)]) != 0
    err = capsys.readouterr().err
    assert f"schema version {LATEST_VERSION + 1}, newer than this jupyter-tasks" in err, err
    assert not target.exists()


@contextlib.contextmanager
def chattr_immutable(path: Path) -> Iterator[Path]:
    """``path`` unchangeable for every user, root too (``chattr +i``), for the block;
    the test is skipped where that is not possible."""
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"chattr +i is not possible here: {made.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.fixture
def immutable(db_path: Path):
    """The database made unwritable for every user, root too."""
    in_thread(make_database(db_path))
    with chattr_immutable(db_path):
        yield db_path


def test_a_database_nobody_may_write_is_one_error_line_and_no_hang(immutable: Path) -> None:
    # before: submit printed sqlite3's "attempt to write a readonly database" traceback,
    # and worker printed it too, then hung: the store's threads kept it from exiting
    for args in (["submit", "--command", "true"], ["worker", "--concurrency", "1"]):
        done = cli("--db", str(immutable), *args)  # a deadline of its own (120 s)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        assert "cannot be written by this process" in done.stderr, done.stderr


@pytest.fixture
def shut_folder(tmp_path: Path):
    """A folder nobody may create files in (``chattr +i`` for root, else its mode)."""
    folder = tmp_path / "shut"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o500)
        yield folder
        folder.chmod(0o700)
        return
    with chattr_immutable(folder):
        yield folder


def test_a_database_this_user_cannot_create_is_one_error_line(shut_folder: Path) -> None:
    # before: a PermissionError traceback from the file's creation and exit 1, from a
    # worker started on a path it may not write (and from submit alike)
    db = shut_folder / "tasks.db"
    for args in (["worker", "--concurrency", "1"], ["submit", "--command", "true"]):
        done = cli("--db", str(db), *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and f"cannot create {db}" in errors[0], done.stderr
        assert list(shut_folder.iterdir()) == []


def test_a_wal_database_in_a_folder_nobody_may_write_is_said_not_damaged(
        tmp_path: Path) -> None:
    # no -shm beside it, and none can be made: SQLite says "attempt to write a readonly
    # database". Before: a traceback from list, schedule list, submit and worker, and
    # doctor called the sound file damaged and told to recover it or move it aside
    folder = tmp_path / "shut"
    folder.mkdir()
    db = folder / "tasks.db"
    in_thread(make_database(db, jobs=3))
    assert not [p for p in dbfile.sidecars(db) if p.exists()]  # closed cleanly: no -shm
    # a folder's mode, as a user meets it (chattr +i gives another error, EPERM): root
    # runs the commands without the capability that overrides file modes
    as_user: list[str] = []
    if os.geteuid() == 0:
        caps = "-dac_override,-dac_read_search,-fowner"
        as_user = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]
    folder.chmod(0o555)
    try:
        for args in (["list"], ["schedule", "list"], ["submit", "--command", "true"],
                     ["doctor"]):
            done = subprocess.run([*as_user, sys.executable, "-m", "jupyter_tasks.cli",
                                   "--db", str(db), *args],
                                  capture_output=True, text=True, timeout=120)
            said = done.stdout + done.stderr
            assert done.returncode in (1, 2), (args, said)
            assert "Traceback" not in said, (args, said)
            assert "needs its -shm file" in said and "It is not damaged" in said, (args, said)
            assert "recover" not in said and "move it aside" not in said, (args, said)
    finally:
        folder.chmod(0o755)
    assert not [p for p in dbfile.sidecars(db) if p.exists()]


def test_a_path_through_a_file_is_said_unreachable_not_damaged(tmp_path: Path) -> None:
    # a --db whose folder is a file (a typo; a folder shut to this user is the same
    # error, EACCES for ENOTDIR). Before: "the task database ... cannot be read (Not a
    # directory); nothing is accepted until it is fixed ... recover ... or move the file
    # aside to start empty": damage advice for a file that is not even there
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    db = blocker / "tasks.db"
    for args in (["worker", "--concurrency", "1"], ["submit", "--command", "true"],
                 ["list"], ["doctor"]):
        done = cli("--db", str(db), *args)
        said = done.stdout + done.stderr
        assert done.returncode in (1, 2), (args, said)
        assert "Traceback" not in said, said
        if args != ["doctor"]:  # which says it missing
            assert "cannot be reached by this process (Not a directory)" in said, (args, said)
        assert "recover" not in said and "move the file aside" not in said, (args, said)
    assert blocker.read_text() == "not a folder"


def test_a_folder_given_as_the_database_is_said_a_folder_not_damaged(tmp_path: Path) -> None:
    # `--db ~/.local/share/jupyter/jupyter_tasks` (the folder, not its tasks.db). Before:
    # "the task database ... is not a regular file; nothing is accepted until it is fixed
    # ... recover what it holds ... or move the file aside to start empty", and doctor
    # called the folder "not a SQLite database" and told to `mv` it aside
    folder = tmp_path / "jupyter_tasks"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    for args in (["worker", "--concurrency", "1"], ["submit", "--command", "true"],
                 ["list"], ["doctor"]):
        done = cli("--db", str(folder), *args)
        said = done.stdout + done.stderr
        assert done.returncode in (1, 2), (args, said)
        assert "Traceback" not in said, said
        assert f"{folder} is a folder, not a database file" in said, (args, said)
        assert f"--db {folder / 'tasks.db'}" in said, (args, said)
        assert "recover" not in said and "aside" not in said, (args, said)
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_a_device_given_as_the_database_is_said_a_wrong_path_not_damaged() -> None:
    # `--db /dev/null`. Before: "not a regular file; ... recover it" and doctor's
    # advice to `jupyter tasks recover --db /dev/null` or to move it aside
    for args in (["worker", "--concurrency", "1"], ["submit", "--command", "true"],
                 ["list"], ["doctor"]):
        done = cli("--db", "/dev/null", *args)
        said = done.stdout + done.stderr
        assert done.returncode in (1, 2), (args, said)
        assert "Traceback" not in said, said
        assert "is not a regular file (a device, pipe or socket)" in said, (args, said)
        assert "recover" not in said and "aside" not in said, (args, said)


def test_a_locked_database_is_said_locked_not_damaged(db_path: Path, capsys) -> None:
    # before: doctor said "quick_check found damage: database is locked" and advised
    # moving the file aside to start empty; list printed a traceback
    in_thread(make_database(db_path))
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        assert cli_main(["--db", str(db_path), "doctor"]) == 1
        out = capsys.readouterr().out
        assert "is locked by another process" in out and "not damaged" in out, out
        assert "damage:" not in out and "move it aside" not in out and "recover" not in out

        async def read() -> None:
            await Store.open(db_path, read_only=True, busy_timeout=0.2)

        with pytest.raises(StoreBusy, match="is locked by another process"):
            in_thread(read())
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_database_in_a_read_only_folder_is_said_unreadable_here_not_damaged(
        tmp_path: Path) -> None:
    # a sound WAL database on a read-only mount: SQLite cannot create its -shm file to
    # read it. Before: list, show and logs printed a traceback, doctor called it damaged
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "tasks.db"
    in_thread(make_database(path))
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for sidecar in ("tasks.db-wal", "tasks.db-shm"):
        (folder / sidecar).unlink(missing_ok=True)
    cli_command = f"{shlex.quote(sys.executable)} -m jupyter_tasks.cli --db {path}"
    # submit and worker too: before, a traceback ending in "unable to open database file"
    # (found by trying them there); a worker must not wait for work it cannot claim
    script = (f"mount --bind {folder} {folder} && mount -o remount,ro,bind {folder} && "
              f"{cli_command} list; echo rc=$?; {cli_command} doctor; echo rc=$?; "
              f"{cli_command} submit --command true; echo rc=$?; "
              f"timeout 60 {cli_command} worker; echo rc=$?")
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                          text=True, timeout=120)
    if "mount" in done.stderr and "rc=" not in done.stdout:
        pytest.skip(f"a read-only bind mount is not possible here: {done.stderr.strip()}")
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout.count("rc=2") + done.stdout.count("rc=1") == 4, done.stdout
    assert "cannot be read here" in done.stderr + done.stdout, (done.stdout, done.stderr)
    assert done.stderr.count("cannot be read here") >= 3, done.stderr  # list, submit, worker
    assert "found damage" not in done.stdout and "move it aside" not in done.stdout, done.stdout


def test_a_new_database_in_a_read_only_folder_is_one_line_not_creating_then_cannot(
        tmp_path: Path) -> None:
    # before: "note: … creating a new one" and then "error: … cannot create": the first
    # line said what did not happen
    folder = tmp_path / "ro"
    folder.mkdir()
    cli_command = f"{shlex.quote(sys.executable)} -m jupyter_tasks.cli --db {folder}/tasks.db"
    script = (f"mount --bind {folder} {folder} && mount -o remount,ro,bind {folder} && "
              f"{cli_command} submit --queue {PARKED} --command true; echo rc=$?")
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                          text=True, timeout=120)
    if "mount" in done.stderr and "rc=" not in done.stdout:
        pytest.skip(f"a read-only bind mount is not possible here: {done.stderr.strip()}")
    assert "rc=2" in done.stdout, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot create" in lines[0], lines
    assert not (folder / "tasks.db").exists()


async def test_a_shared_databases_artifacts_are_the_groups_under_a_private_umask(
        tmp_path: Path) -> None:
    # before: the team's file 0660 and its artifacts' folder 0770, but a worker run with
    # umask 077 made each task's folder 0700 and its files 0600: the server's account in
    # the same group could neither download nor prune them
    from tests.engine.test_store import make_task

    shared = tmp_path / "team" / "tasks.db"
    async with await Store.open(shared):
        pass
    shared.chmod(0o660)
    before = os.umask(0o077)
    try:
        async with await Store.open(shared) as store:
            task, _ = await store.create_task(make_task())
            kept = await store.add_artifact(task.id, "a.txt", b"for the team")
            file = store.artifact_path(kept)
            assert stat.S_IMODE(file.parent.stat().st_mode) == 0o770
            assert stat.S_IMODE(file.stat().st_mode) == 0o660
    finally:
        os.umask(before)


async def test_a_new_database_and_its_artifacts_are_their_owners_alone(tmp_path: Path) -> None:
    # every task's params, results and logs: under the usual umask (022) SQLite made the
    # file 0644 and the artifacts' folder 0755, open to every local account
    from tests.engine.test_store import make_task

    before = os.umask(0o022)
    try:
        path = tmp_path / "new" / "tasks.db"
        async with await Store.open(path) as store:
            task, _ = await store.create_task(make_task())
            await store.add_artifact(task.id, "a.txt", b"secret")
            files = [path, *dbfile.sidecars(path)]
            assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {
                "tasks.db": 0o600, "tasks.db-wal": 0o600, "tasks.db-shm": 0o600}
            assert stat.S_IMODE(store.artifacts_dir.stat().st_mode) == 0o700
        # a file that exists keeps its mode (a team sharing one sets it), and its
        # artifacts' folder, made at its first artifact, is as open as the file is
        shared = tmp_path / "team" / "tasks.db"
        async with await Store.open(shared):
            pass
        shared.chmod(0o660)
        async with await Store.open(shared) as store:
            task, _ = await store.create_task(make_task())
            await store.add_artifact(task.id, "a.txt", b"for the team")
            assert stat.S_IMODE(store.artifacts_dir.stat().st_mode) == 0o770
        assert stat.S_IMODE(shared.stat().st_mode) == 0o660
        assert dbfile.folder_mode(path) == 0o700
        # a link to a file not made yet: the file it names is made private
        link = tmp_path / "link.db"
        link.symlink_to(tmp_path / "target.db")
        async with await Store.open(link):
            pass
        assert stat.S_IMODE((tmp_path / "target.db").stat().st_mode) == 0o600
        path.chmod(0o644)
        assert dbfile.folder_mode(path) == 0o755
    finally:
        os.umask(before)
