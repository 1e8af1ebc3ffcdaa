"""The TaskManager on a real database: modes, keys, timeouts, retries, cancel, lineage, asks."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psutil
import pytest

import jupyter_tasks as jt
from jupyter_tasks import TaskManager
from jupyter_tasks.context import current_context
from jupyter_tasks.exceptions import (
    IdempotencyConflict,
    InvalidAnswer,
    InvalidCommand,
    InvalidParameters,
    InvalidRequest,
    ManagerNotRunning,
    NothingToConfirm,
    NotInTask,
    NotRerunnable,
    TaskFailed,
    TaskNotFound,
    UnknownTask,
)
from jupyter_tasks.manager import Subscription, was_deduplicated
from tests.engine import sample_tasks  # noqa: F401  (registers the sample tasks)
from tests.processes import ended
from tests.waiting import eventually


@pytest.fixture
async def manager(db_path: Path):
    async with TaskManager(db_path, queues={"default": 2}, retry_base_delay=0.05,
                           flush_interval=0.05) as m:
        yield m


async def status_of(m: TaskManager, task_id: str) -> str:
    return (await m.get(task_id)).status


async def test_three_modes_one_function(manager: TaskManager) -> None:
    done = await manager.submit("add", a=1, b=5, mode="sync")
    assert (done.status, done.result, done.mode) == ("succeeded", 6, "sync")
    bg = await manager.submit("add", a=2, mode="background")
    assert bg.status == "running"
    assert await manager.result(bg.id, timeout=5) == 4
    job = await manager.submit("add", a=3, mode="job")
    assert job.status == "queued"
    finished = await manager.wait(job.id, timeout=5)
    assert (finished.status, finished.result, finished.attempts) == ("succeeded", 5, 1)


async def test_the_row_holds_the_json_that_was_hashed(manager: TaskManager,
                                                      db_path: Path) -> None:
    import json
    import sqlite3

    job = await manager.submit_spec({"name": "add", "params": {"b": 2, "a": 1}}, mode="job")
    conn = sqlite3.connect(db_path)
    spec, params, hashes = conn.execute(
        "SELECT spec, params, content_hashes FROM tasks WHERE id = ?", (job.id,)).fetchone()
    conn.close()
    assert params == '{"a":1,"b":2}' and json.loads(spec) == {"name": "add", "params": job.params}
    assert json.loads(hashes) == job.content_hashes == {
        "spec": hashlib.sha256(spec.encode()).hexdigest(),
        "params": hashlib.sha256(params.encode()).hexdigest(),
    }


async def test_coroutines_and_callables_in_the_background(manager: TaskManager) -> None:
    async def work(x: int) -> int:
        await jt.update_progress(1, 2, "half")
        return x * 2

    task = await manager.submit(work(21), label="double")
    assert task.label == "double" and task.kind == "function"
    assert await manager.result(task.id, timeout=5) == 42
    thread_task = await manager.submit(lambda a, b: a - b, 10, 4)
    assert await manager.result(thread_task.id, timeout=5) == 6
    with pytest.raises(InvalidRequest, match="register"):
        await manager.submit(lambda: 1, mode="job")


async def test_helpers_use_the_default_manager(manager: TaskManager) -> None:
    async def job() -> str:
        return "done"

    task_id = await jt.run_background(job(), label="x", task_key="k.one")
    assert len(task_id) == 32
    assert await manager.result(task_id, timeout=5) == "done"
    by_name = await jt.run_background("add", a=1, b=1)
    assert await manager.result(by_name, timeout=5) == 2
    assert [t.id for t in await jt.get_tasks_by_key("k.one")] == [task_id]
    assert [t.id for t in await jt.get_tasks_by_key_prefix("k.")] == [task_id]
    assert await jt.run_blocking(sum, [1, 2, 3]) == 6


async def test_helpers_without_a_manager_say_how_to_start_one(db_path: Path) -> None:
    async def job() -> None:
        pass

    coro = job()
    with pytest.raises(ManagerNotRunning, match="load_ext jupyter_tasks"):
        await jt.run_background(coro)
    coro.close()


async def test_a_task_helper_outside_a_task_says_so_not_that_no_manager_runs(
        manager: TaskManager) -> None:
    # before: ManagerNotRunning (its title "No task manager running") with a manager
    # running in the very process
    with pytest.raises(NotInTask, match="not inside a running task"):
        await jt.update_progress(1, 2)
    with pytest.raises(NotInTask, match="is not running in this process"):
        await jt.update_progress(1, 2, task_id="0" * 32)
    assert not issubclass(NotInTask, ManagerNotRunning)


async def test_task_key_dedups_only_active_tasks(manager: TaskManager) -> None:
    gate = asyncio.Event()

    async def wait_gate() -> str:
        await gate.wait()
        return "opened"

    first = await manager.submit(wait_gate(), task_key="import.catalog")
    coro = wait_gate()
    second = await manager.submit(coro, task_key="import.catalog")
    assert second.id == first.id and was_deduplicated(second)
    gate.set()
    await manager.wait(first.id, timeout=5)
    third = await manager.submit(wait_gate(), task_key="import.catalog")
    assert third.id != first.id
    await manager.wait(third.id, timeout=5)


@pytest.mark.parametrize("key", ["task_key", "idempotency_key"])
async def test_an_empty_key_is_refused_as_over_rest(manager: TaskManager, key: str) -> None:
    # before: accepted from Python (REST answers 422): every submit given "" was one task
    with pytest.raises(InvalidRequest, match=f"{key}: must be a non-empty string"):
        await manager.submit_spec({"name": "add", "params": {"a": 1}}, **{key: ""})
    assert await manager.store.list_tasks() == []


async def test_idempotency_key(manager: TaskManager) -> None:
    a = await manager.submit_spec({"name": "add", "params": {"a": 1}}, idempotency_key="pay-1")
    b = await manager.submit_spec({"name": "add", "params": {"a": 1}}, idempotency_key="pay-1")
    assert a.id == b.id and was_deduplicated(b)
    with pytest.raises(IdempotencyConflict):
        await manager.submit_spec({"name": "add", "params": {"a": 2}}, idempotency_key="pay-1")
    await manager.wait(a.id, timeout=5)
    assert len(await manager.store.list_tasks(idempotency_key="pay-1")) == 1


async def test_an_idempotency_key_repeated_with_another_label_is_a_conflict(
        manager: TaskManager) -> None:
    # before: the label was taken out of the options before they were hashed, so the
    # second submission got the first task, labelled as the first one asked
    spec = {"name": "add", "params": {"a": 1}}
    first = await manager.submit_spec(spec, idempotency_key="pay-2", label="first")
    again = await manager.submit_spec(spec, idempotency_key="pay-2", label="first")
    assert again.id == first.id and was_deduplicated(again)
    with pytest.raises(IdempotencyConflict):
        await manager.submit_spec(spec, idempotency_key="pay-2", label="second")
    # no label given twice: the same default label, the same payload
    plain = await manager.submit_spec(spec, idempotency_key="pay-3")
    assert (await manager.submit_spec(spec, idempotency_key="pay-3")).id == plain.id
    await manager.wait(first.id, timeout=5)


async def test_timeout_stops_a_thread_loop(manager: TaskManager) -> None:
    task = await manager.submit("spin", mode="background", timeout=0.3)
    done = await manager.wait(task.id, timeout=10)
    assert done.status == "timeout"
    assert done.error["type"] == "TaskTimedOut"


async def test_retry_with_backoff_then_success(manager: TaskManager, tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    job = await manager.submit("flaky", counter=str(counter), fail_times=2, mode="job",
                               max_retries=3)
    done = await manager.wait(job.id, timeout=15)
    assert (done.status, done.attempts, done.result) == ("succeeded", 3, "ok after 3")
    events = await manager.store.events_after(0, task_id=job.id)
    types = [e.type for e in events]
    assert types.count("task.retrying") == 2
    # backoff: each retry waits at least its delay (retry_base_delay * 2**(n-1), jittered
    # down to half). Measured from the failed attempt's start, which comes before the
    # worker computes not_before = now + delay, to the next start, which the store only
    # hands out once not_before has passed: load can lengthen this gap, never shorten it
    # (the retry event itself is written after `now`, so it is no reference point)
    starts = [e.ts for e in events if e.type == "task.started"]
    assert len(starts) == 3
    assert starts[1] - starts[0] >= 0.05 * 0.5
    assert starts[2] - starts[1] >= 0.1 * 0.5


async def test_each_retry_writes_an_attempt_marker_into_the_log(manager: TaskManager,
                                                                tmp_path: Path) -> None:
    job = await manager.submit("flaky", counter=str(tmp_path / "calls"), fail_times=2,
                               mode="job", max_retries=3)
    done = await manager.wait(job.id, timeout=15)
    assert (done.status, done.attempts) == ("succeeded", 3)
    texts = [entry.text for entry in await manager.store.get_logs(job.id)]
    markers = [t for t in texts if t.startswith("— attempt ")]
    assert markers == ["— attempt 2 of 4: RuntimeError: flaky failure 1 —\n",
                       "— attempt 3 of 4: RuntimeError: flaky failure 2 —\n"]
    # a first attempt that succeeds writes none
    once = await manager.wait((await manager.submit("add", a=1, mode="job")).id, timeout=5)
    assert [e.text for e in await manager.store.get_logs(once.id)] == []


async def test_retries_are_spent_then_failed(manager: TaskManager, tmp_path: Path) -> None:
    job = await manager.submit("flaky", counter=str(tmp_path / "c"), fail_times=5, mode="job",
                               max_retries=1)
    done = await manager.wait(job.id, timeout=15)
    assert (done.status, done.attempts) == ("failed", 2)
    assert done.error["type"] == "RuntimeError" and "flaky failure 2" in done.error["message"]
    assert "Traceback" in done.error["traceback"]
    bg = await manager.submit("flaky", counter=str(tmp_path / "d"), fail_times=1,
                              mode="background", max_retries=1)
    assert (await manager.wait(bg.id, timeout=10)).status == "succeeded"


async def test_cancel_a_queued_job(db_path: Path) -> None:
    async with TaskManager(db_path) as m:  # no worker: the job stays queued
        job = await m.submit("add", a=1, mode="job")
        cancelled = await m.cancel(job.id)
        assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    async with TaskManager(db_path, queues={"default": 1}) as worker:
        other = await worker.submit("add", a=1, mode="job")
        await worker.wait(other.id, timeout=5)
        assert await status_of(worker, job.id) == "cancelled"  # never claimed


async def test_cancel_an_async_task(manager: TaskManager) -> None:
    reached = asyncio.Event()

    async def forever() -> None:
        reached.set()
        await asyncio.sleep(3600)

    task = await manager.submit(forever())
    await reached.wait()
    flagged = await manager.cancel(task.id)
    assert flagged.cancel_requested
    assert (await manager.wait(task.id, timeout=5)).status == "cancelled"


async def test_cancel_a_thread_task(manager: TaskManager) -> None:
    task = await manager.submit("spin", mode="background")
    await eventually(lambda: _progress_seen(manager, task.id), what="spin progress")
    await manager.cancel(task.id)
    # spin never ends on its own: reaching "cancelled" at all is the proof (the wait's
    # timeout is a generous deadline, not a speed bound)
    done = await manager.wait(task.id, timeout=60)
    assert done.status == "cancelled"


async def test_a_cancel_that_comes_between_the_claim_and_the_start_stops_the_job(
        db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # two servers on one database: the cancel asked through one reached the other's
    # event feed after its claim of the job but before the job started there (its loop
    # busy a moment), found nothing running and was dropped; the job ran to its end,
    # written succeeded, though the cancel had been answered 202
    marker = tmp_path / "started"
    async with TaskManager(db_path, queues={"default": 1}) as worker, \
            TaskManager(db_path) as other:
        gate = asyncio.Event()
        run_task = worker.execution.run_task

        async def started_late(task: Any, **kwargs: Any) -> None:
            await gate.wait()  # the worker's loop elsewhere between the claim and the start
            await run_task(task, **kwargs)

        monkeypatch.setattr(worker.execution, "run_task", started_late)
        job = await other.submit("slow_job", seconds=5, marker=str(marker), mode="job")

        async def claimed() -> bool:
            return await status_of(other, job.id) == "running"

        await eventually(claimed, what="job claimed")
        asked = await other.cancel(job.id)
        assert asked.status == "running" and asked.cancel_requested
        newest = await other.store.last_event_id()

        async def read_by_the_worker() -> bool:
            await worker.poll_events()
            return worker.last_event_id >= newest

        await eventually(read_by_the_worker, what="the cancel read by the worker's feed")
        gate.set()
        done = await worker.wait(job.id, timeout=60)
        assert done.status == "cancelled", done.status
        assert not marker.exists()  # stopped before its code ran


async def test_a_wait_on_a_task_deleted_before_its_end_was_read_is_not_found(
        db_path: Path) -> None:
    # another process ran the job and deleted it before this one's feed read its end:
    # the delete took the job's events with it, and the wait answered the task.deleted
    # snapshot, whose result is blanked: "succeeded" with result None (a long poll of
    # GET /result on a second server answered 200 and a null result for 42)
    async with TaskManager(db_path, queues={"default": 1}) as worker, \
            TaskManager(db_path, wake_bell=False, poll_interval=3600.0) as waiter:
        job = await worker.submit("add", a=40, mode="job")
        waiting = asyncio.ensure_future(waiter.wait(job.id, timeout=60))

        async def registered() -> bool:
            return job.id in waiter.feed.waiters

        await eventually(registered, what="the wait registered")
        assert (await worker.wait(job.id, timeout=30)).result == 42
        await worker.delete(job.id)
        await waiter.poll_events()  # reads task.deleted alone
        with pytest.raises(TaskNotFound, match="deleted"):
            await waiting


async def _progress_seen(m: TaskManager, task_id: str) -> bool:
    return (await m.get(task_id)).progress is not None


async def test_cancel_a_subprocess_kills_its_children(manager: TaskManager, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = f"sleep 300 & echo $! > {pidfile}; wait"
    task = await manager.submit(["sh", "-c", script])
    await eventually(_exists(pidfile), what="child pid file")
    child = int(pidfile.read_text())
    assert psutil.pid_exists(child)
    await manager.cancel(task.id)
    assert (await manager.wait(task.id, timeout=10)).status == "cancelled"
    await eventually(_gone(child), timeout=5, what="child process gone")


def _exists(path: Path):
    async def check() -> bool:
        return path.exists() and path.read_text().strip() != ""
    return check


def _gone(pid: int):
    async def check() -> bool:
        return ended(pid)
    return check


async def test_a_function_that_returned_before_its_cancel_reached_it_succeeded(
        manager: TaskManager, tmp_path: Path) -> None:
    # a job in a local slot whose function returned its value in its thread just as a
    # cancel arrived, before the attempt's coroutine took the value. Before: written
    # cancelled, the value thrown away, though the work had run to its end
    from tests.waiting import eventually_sync

    gate = tmp_path / "gate"
    task = await manager.submit("until_file", gate=str(gate), mode="job", max_retries=0)
    running = await eventually(
        lambda: _thread_started(manager, task.id), what="the function running in its thread")
    gate.write_text("go")
    # this loop is held (no await) until the function has returned, so the cancel below
    # reaches the attempt before its coroutine can take the value: the race, made certain
    eventually_sync(lambda: running.thread.finished, timeout=30, what="the function returned")
    manager.execution.stop_by_id(task.id, "cancel")  # what a cancel request does here
    flagged = await manager.cancel(task.id)
    assert (flagged.status, flagged.cancel_requested) == ("running", True)
    done = await manager.wait(task.id, timeout=30)
    assert (done.status, done.result, done.error) == ("succeeded", "ran to its end", None)
    assert done.cancel_requested


# a command that waits for its gate file, says so, and exits with the code it is given
GATED_COMMAND = """
import os, sys, time
gate, code = sys.argv[1], int(sys.argv[2])
open(gate + ".started", "w").close()
while not os.path.exists(gate):
    time.sleep(0.01)
print("ran to its end", flush=True)
sys.exit(code)
"""


@pytest.mark.parametrize("code", [0, 3])
async def test_a_command_that_exited_before_its_cancel_reached_it_keeps_its_end(
        manager: TaskManager, tmp_path: Path, code: int) -> None:
    # the command exited on its own just as a cancel arrived, before the attempt's
    # coroutine saw the exit. Before: its group was "ended" and the task written
    # cancelled: a clean exit's end (and output) thrown away, a failure hidden
    gate = tmp_path / "gate"
    task = await manager.submit([sys.executable, "-c", GATED_COMMAND, str(gate), str(code)],
                                mode="job", max_retries=0)
    await eventually(_exists_at(Path(f"{gate}.started")), timeout=30, what="the command running")
    await cancel_once_exited(manager, task.id, gate)
    done = await manager.wait(task.id, timeout=30)
    logs = "".join(e.text for e in await manager.store.get_logs(task.id))
    assert "ran to its end" in logs, logs
    assert done.cancel_requested
    if code == 0:
        assert (done.status, done.result, done.error) == ("succeeded", {"returncode": 0}, None)
    else:
        assert done.status == "failed", done.error
        assert "exited with code 3" in done.error["message"], done.error


async def test_a_command_that_failed_before_its_cancel_reached_it_is_not_retried(
        manager: TaskManager, tmp_path: Path) -> None:
    # its failure is kept over the cancel: with retries left, the attempt went back to
    # the queue (a task.retrying, a second attempt claimed only to be cancelled there),
    # and the task ended cancelled, its failure hidden, as before the end was kept
    gate = tmp_path / "gate"
    task = await manager.submit([sys.executable, "-c", GATED_COMMAND, str(gate), "3"],
                                mode="job", max_retries=2)
    await eventually(_exists_at(Path(f"{gate}.started")), timeout=30, what="the command running")
    await cancel_once_exited(manager, task.id, gate)
    done = await manager.wait(task.id, timeout=30)
    assert (done.status, done.attempts) == ("failed", 1), (done.status, done.error)
    assert "exited with code 3" in done.error["message"], done.error
    events = await manager.store.events_after(0, task_id=task.id)
    assert "task.retrying" not in [e.type for e in events], [e.type for e in events]


async def cancel_once_exited(manager: TaskManager, task_id: str, gate: Path) -> None:
    """Let a gated process end, then cancel its task before the loop sees the exit."""
    from tests.waiting import eventually_sync

    running = manager.state.running[task_id]
    leaders = list(running.groups)  # the process run_process started leads its group
    assert len(leaders) == 1, running.groups
    gate.write_text("go")
    # this loop is held (no await) until the process has exited, so the cancel below
    # reaches the attempt before its coroutine can see the exit: the race, made certain
    eventually_sync(lambda: ended(leaders[0]), timeout=30, what="the process exited")
    manager.execution.stop_by_id(task_id, "cancel")  # what a cancel request does here
    flagged = await manager.cancel(task_id)
    assert (flagged.status, flagged.cancel_requested) == ("running", True)


def _exists_at(path: Path):
    async def check() -> bool:
        return path.exists()
    return check


@pytest.mark.parametrize("stop", ["cancel", "timeout"])
@pytest.mark.parametrize("name", ["swallows_the_stop", "async_swallows_the_stop"])
async def test_a_function_that_caught_the_stop_and_returned_is_not_succeeded(
        manager: TaskManager, stop: str, name: str) -> None:
    # the stop reached it (TaskCancelled raised in its thread), it caught that and
    # returned what it had: not an end of its own, so the stop's end, not succeeded
    # with a partial value (the first version of the "returned before the cancel"
    # rule took any value returned after the stop)
    options = {"timeout": 0.5} if stop == "timeout" else {}
    task = await manager.submit(name, mode="job", max_retries=0, **options)
    if stop == "cancel":
        await eventually(lambda: _started(manager, task.id, threaded=not name.startswith("async")),
                         what="the function running")
        await manager.cancel(task.id)
    done = await manager.wait(task.id, timeout=30)
    assert (done.status, done.result) == ("cancelled" if stop == "cancel" else "timeout",
                                          None), (done.status, done.result)


async def _started(m: TaskManager, task_id: str, threaded: bool) -> Any:
    if not threaded:
        from tests.engine.sample_tasks import ASYNC_SWALLOWING

        return task_id in ASYNC_SWALLOWING
    return await _thread_started(m, task_id)


async def _thread_started(m: TaskManager, task_id: str) -> Any:
    running = m.state.running.get(task_id)
    return running if running is not None and running.thread.thread_id else None


async def test_cancel_from_another_process(manager: TaskManager, db_path: Path) -> None:
    task = await manager.submit("spin", mode="background")
    await eventually(lambda: _progress_seen(manager, task.id), what="spin progress")
    out = subprocess.run(
        [sys.executable, "-m", "jupyter_tasks.cli", "--db", str(db_path), "cancel", task.id],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert (await manager.wait(task.id, timeout=10)).status == "cancelled"


async def test_cancel_a_finished_task_is_a_conflict(manager: TaskManager) -> None:
    from jupyter_tasks.exceptions import TaskStateConflict

    done = await manager.submit("add", a=1, mode="sync")
    with pytest.raises(TaskStateConflict):
        await manager.cancel(done.id)


async def test_subprocess_output_streams_into_the_log(manager: TaskManager) -> None:
    task = await manager.submit([sys.executable, "-c",
                                 "import sys; print('out'); print('err', file=sys.stderr)"])
    done = await manager.wait(task.id, timeout=10)
    assert done.status == "succeeded"
    logs = await manager.store.get_logs(task.id)
    by_stream = {s: "".join(e.text for e in logs if e.stream == s) for s in ("stdout", "stderr")}
    assert by_stream == {"stdout": "out\n", "stderr": "err\n"}  # chunks may split anywhere
    assert done.resource_usage["wall_seconds"] > 0
    failing = await manager.submit([sys.executable, "-c", "raise SystemExit(3)"])
    failed = await manager.wait(failing.id, timeout=10)
    assert failed.status == "failed" and "code 3" in failed.error["message"]


async def test_subprocess_memory_limit_ends_in_oom(manager: TaskManager) -> None:
    hog = "x = bytearray(300 * 1024 * 1024); import time; time.sleep(30)"
    task = await manager.submit([sys.executable, "-c", hog], memory_limit_mb=100)
    done = await manager.wait(task.id, timeout=20)
    assert done.status == "oom"
    assert done.resource_usage["peak_memory_mb"] > 100


async def test_rerun_and_fork_keep_lineage(manager: TaskManager) -> None:
    parent = await manager.submit("add", a=1, b=1, mode="job")
    await manager.wait(parent.id, timeout=5)
    rerun = await manager.rerun(parent.id)
    assert (rerun.parent_id, rerun.relationship) == (parent.id, "rerun")
    assert (await manager.wait(rerun.id, timeout=5)).result == 2
    fork = await manager.fork(parent.id, {"params": {"b": 10}, "label": "bigger"})
    assert (fork.parent_id, fork.relationship, fork.label) == (parent.id, "fork", "bigger")
    assert (await manager.wait(fork.id, timeout=5)).result == 11
    assert [c.id for c in await manager.store.children(parent.id)] == [rerun.id, fork.id]
    # live views learn the lineage from the first event, not from a later reload
    for child, relationship in ((rerun, "rerun"), (fork, "fork")):
        created = [e for e in await manager.store.events_after(0, task_id=child.id)
                   if e.type == "task.created"]
        assert (created[0].task["parent_id"], created[0].task["relationship"]) == \
            (parent.id, relationship)
    with pytest.raises(InvalidRequest):
        await manager.fork(parent.id, {"command": ["ls"]})
    with pytest.raises(InvalidParameters):
        await manager.fork(parent.id, {"params": {"b": "ten"}})


async def test_in_process_objects_cannot_be_rerun(manager: TaskManager) -> None:
    task = await manager.submit(lambda: 1)
    await manager.wait(task.id, timeout=5)
    with pytest.raises(NotRerunnable, match="register"):
        await manager.rerun(task.id)


async def test_a_gone_processs_command_is_rerun_only_where_it_ran(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # before: a background command recorded no folder (or a relative one), so once its
    # process was gone its rerun was a worker's job run in the worker's own folder
    db = tmp_path / "gone.db"
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    async with TaskManager(db, make_default=False) as gone:
        bare = await gone.submit(["true"])
        inside = await gone.submit(["true"], cwd="sub")
        old = await gone.submit(["true"])
        old_relative = await gone.submit(["true"], cwd="sub")
        for task in (bare, inside, old, old_relative):
            assert (await gone.wait(task.id, timeout=30)).status == "succeeded"
    assert (bare.spec["cwd"], inside.spec["cwd"]) == (str(tmp_path), str(tmp_path / "sub"))
    with sqlite3.connect(db) as conn:  # as an earlier version recorded them: no folder,
        conn.execute("UPDATE tasks SET spec = json_remove(spec, '$.cwd') WHERE id = ?",
                     (old.id,))
        conn.execute("UPDATE tasks SET spec = json_set(spec, '$.cwd', 'sub') WHERE id = ?",
                     (old_relative.id,))  # or the folder as typed
    monkeypatch.chdir(tmp_path / "sub")  # another process, elsewhere
    async with TaskManager(db, runs_background=False, make_default=False) as cli:
        for task in (bare, inside):
            rerun = await cli.rerun(task.id)
            assert (rerun.mode, rerun.spec["cwd"]) == ("job", task.spec["cwd"])
        for task in (old, old_relative):
            with pytest.raises(NotRerunnable, match="folder it ran in"):
                await cli.rerun(task.id)
        assert await cli.store.count_tasks() == 6


async def test_confirmation_round_trip(manager: TaskManager) -> None:
    task = await manager.submit("ask", mode="background")

    async def asked():
        t = await manager.get(task.id)
        return t if t.confirmation else None

    pending = await eventually(asked, what="question asked")
    assert pending.confirmation["prompt"] == "Delete everything?"
    assert pending.confirmation["choices"] == ["yes", "no"]
    with pytest.raises(InvalidAnswer):
        await manager.confirm(task.id, "maybe")
    answered = await manager.confirm(task.id, "no")
    assert answered.confirmation["answer"] == "no"
    assert await manager.result(task.id, timeout=5) == "answered no"
    with pytest.raises(NothingToConfirm):
        await manager.confirm(task.id, "yes")


async def test_a_question_that_timed_out_is_no_longer_pending(manager: TaskManager) -> None:
    # the ask timed out and the task went on, but its question stayed in the row: every
    # view still showed it, and an answer to it was taken (200) by nobody
    gave_up = asyncio.Event()
    go_on = asyncio.Event()

    async def asks_briefly() -> str:
        ctx = current_context.get()
        assert ctx is not None
        try:
            return await ctx.confirm("Proceed?", ["yes", "no"], timeout=0.1)
        except asyncio.TimeoutError:
            gave_up.set()
            await go_on.wait()
            return "went on without an answer"

    task = await manager.submit(asks_briefly())
    await asyncio.wait_for(gave_up.wait(), 30)
    row = await manager.get(task.id)
    assert row.status == "running" and row.confirmation is None, row.confirmation
    with pytest.raises(NothingToConfirm):
        await manager.confirm(task.id, "yes")
    go_on.set()
    assert await manager.result(task.id, timeout=30) == "went on without an answer"


async def test_an_unanswered_question_says_so_and_one_string_is_no_choices(
        manager: TaskManager) -> None:
    # before: the task failed with "TimeoutError: " and nothing more (the card and the
    # panel showed no reason); and confirm("q?", "yes") offered "y", "e" and "s"
    async def asks_nobody() -> str:
        ctx = current_context.get()
        assert ctx is not None
        with pytest.raises(InvalidRequest, match="not one string"):
            await ctx.confirm("Proceed?", "yes")
        return await ctx.confirm("Proceed with the upload?", ["yes", "no"], timeout=0.1)

    task = await manager.submit(asks_nobody(), max_retries=0)
    ended = await manager.wait(task.id, timeout=30)
    assert ended.status == "failed" and ended.error["type"] == "TimeoutError", ended.error
    assert ended.error["message"] == \
        "nobody answered 'Proceed with the upload?' within 0.1 s", ended.error


async def test_an_answer_to_an_earlier_question_is_not_taken_for_the_next(
        db_path: Path) -> None:
    # the first question's wait ended with the answer recorded just before it (taken
    # back as that question's), and the task asked again; the answer's event, read by
    # the feed only then, was handed to the new question: "yes" to a question never seen
    asked_twice = asyncio.Event()

    async def asks_twice() -> str:
        ctx = current_context.get()
        assert ctx is not None
        first = await ctx.confirm("Keep the backup?", ["yes", "no"], timeout=5)
        asked_twice.set()
        second = await ctx.confirm("Delete everything?", ["yes", "no"])
        return f"{first}, then {second}"

    # this process's feed reads only when told: the answer's event waits to be read
    async with TaskManager(db_path, wake_bell=False, poll_interval=3600.0) as runner, \
            TaskManager(db_path) as person:
        task = await runner.submit(asks_twice())

        async def asked() -> bool:
            return (await person.get(task.id)).confirmation is not None

        await eventually(asked, what="first question asked")
        await person.confirm(task.id, "yes")
        await asyncio.wait_for(asked_twice.wait(), 60)  # its wait's timeout took the answer
        await runner.poll_events()  # the first answer's event read now

        async def second_asked_or_ended() -> Any:
            row = await person.get(task.id)
            second = (row.confirmation or {}).get("prompt") == "Delete everything?"
            return row if second or row.status != "running" else None

        row = await eventually(second_asked_or_ended, what="second question asked")
        assert row.status == "running", (row.status, row.result)
        assert row.confirmation["answer"] is None
        await person.confirm(task.id, "no")
        assert await runner.result(task.id, timeout=30) == "yes, then no"


async def test_artifacts_carry_sha256(manager: TaskManager) -> None:
    task = await manager.submit("make_artifact", text="hello artifact", mode="background")
    assert await manager.result(task.id, timeout=5) == len(b"hello artifact")
    [art] = await manager.store.list_artifacts(task.id)
    assert art.sha256 == hashlib.sha256(b"hello artifact").hexdigest()
    assert manager.store.artifact_path(art).read_bytes() == b"hello artifact"


async def test_progress_is_coalesced_and_last_value_lands(manager: TaskManager) -> None:
    def loop(ctx: jt.TaskContext = None) -> None:
        for i in range(200_000):
            ctx.progress(i + 1, 200_000)

    jt.register_function("progress_loop", loop)
    try:
        task = await manager.submit("progress_loop", mode="background")
        done = await manager.wait(task.id, timeout=20)
    finally:
        manager.registry.unregister("progress_loop")
    assert done.progress == {"current": 200_000, "total": 200_000, "message": None}
    events = await manager.store.events_after(0, task_id=task.id)
    # at most one per flush while it ran (a slow machine stretches the loop: the bound
    # follows its measured length), against the 200,000 calls
    flushes = (done.finished_at - done.started_at) / manager.config.flush_interval
    assert sum(e.type == "task.progress" for e in events) <= flushes + 3
    assert sum(e.type == "task.progress" for e in events) < 200_000 / 100


async def test_bad_input_is_refused_and_writes_no_row(manager: TaskManager) -> None:
    with pytest.raises(UnknownTask):
        await manager.submit_spec({"name": "nope"})
    with pytest.raises(InvalidParameters) as err:
        await manager.submit_spec({"name": "add", "params": {"a": "x", "z": 1}})
    assert {e["field"] for e in err.value.errors} == {"params.a", "params.z"}
    with pytest.raises(InvalidCommand, match=r"shlex\.split"):
        await manager.submit_spec({"command": "ls -l"})
    with pytest.raises(InvalidCommand):
        await manager.submit_spec({"command": []})
    with pytest.raises(InvalidRequest, match="exactly one"):
        await manager.submit_spec({"name": "add", "code": "print(1)"})
    with pytest.raises(InvalidRequest, match="callback_url"):
        await manager.submit_spec({"name": "add", "params": {"a": 1}},
                                  callback_url="http://169.254.169.254/latest")
    with pytest.raises(InvalidCommand):
        await jt.run_subprocess("echo hi")
    assert await manager.store.count_tasks() == 0
    assert await manager.store.events_after(0) == []


async def test_a_memory_limit_on_a_registered_function_is_refused(
        manager: TaskManager) -> None:
    # before: accepted and never enforced (a function runs in its worker's process):
    # a task that took 800 MB under a 200 MB limit ended succeeded, unsaid
    for mode in ("job", "background"):
        with pytest.raises(InvalidRequest) as err:
            await manager.submit_spec({"name": "add", "params": {"a": 1}}, mode=mode,
                                      memory_limit_mb=200)
        assert [e["field"] for e in err.value.errors] == ["memory_limit_mb"]
        assert "code job" in err.value.message
    assert await manager.store.count_tasks() == 0


@pytest.mark.parametrize(("option", "value"), [
    ("priority", 10**30), ("priority", "high"), ("priority", True), ("timeout", float("nan")),
    ("timeout", float("inf")), ("timeout", -1), ("max_retries", -1), ("max_retries", 10**30),
    ("memory_limit_mb", -5), ("memory_limit_mb", 10**30), ("queue", "../x"),
    ("queue", "a b"), ("task_key", 5), ("idempotency_key", ["k"]), ("label", 3),
])
async def test_options_the_server_refuses_are_refused_in_python_too(
        manager: TaskManager, option: str, value: object) -> None:
    # before: a raw OverflowError or ValueError, or a row with a NaN timeout, a negative
    # retry count or memory limit, or a queue name no REST client could name
    with pytest.raises(InvalidRequest) as err:
        await manager.submit_spec({"name": "add", "params": {"a": 1}}, **{option: value})
    assert [e["field"] for e in err.value.errors] == [option]
    with pytest.raises(InvalidRequest):
        await manager.submit(["true"], mode="job", **{option: value})
    assert await manager.store.count_tasks() == 0


async def test_run_subprocess_behaves_like_subprocess_run(manager: TaskManager,
                                                          tmp_path: Path) -> None:
    out = await jt.run_subprocess([sys.executable, "-c", "import os; print(os.getcwd())"],
                                  cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == str(tmp_path)
    env = await jt.run_subprocess([sys.executable, "-c", "import os; print(os.environ['ZZ'])"],
                                  env={"ZZ": "value"})
    assert env.stdout == "value\n"
    raw = await jt.run_subprocess(["printf", "x"], text=False)
    assert raw.stdout == b"x"
    quiet = await jt.run_subprocess(["printf", "x"], capture_output=False)
    assert quiet.stdout is None
    failed = await jt.run_subprocess(["sh", "-c", "exit 4"])
    assert failed.returncode == 4  # like subprocess.run: no exception unless check=True
    with pytest.raises(subprocess.CalledProcessError):
        await jt.run_subprocess(["sh", "-c", "exit 4"], check=True)


async def test_run_subprocess_not_capturing_outside_a_task_prints_as_subprocess_run(
        capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    # before: its output went nowhere outside a task (a script, a foreground cell), where
    # subprocess.run(capture_output=False) shows it; and bytes come through unchanged
    done = await jt.run_subprocess(["sh", "-c", "echo out; echo err >&2; printf '\\377ok'"],
                                   capture_output=False, text=False)
    assert done.stdout is None and done.returncode == 0
    said = capfdbinary.readouterr()
    assert (said.out, said.err) == (b"out\n\xffok", b"err\n")
    await jt.run_subprocess(["echo", "kept"])  # captured: not printed, as subprocess.run
    assert capfdbinary.readouterr().out == b""


async def test_run_subprocess_timeout_kills_the_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    with pytest.raises(subprocess.TimeoutExpired):
        await jt.run_subprocess(["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"],
                                timeout=1.0)
    child = int(pidfile.read_text())
    await eventually(_gone(child), timeout=5, what="grandchild gone")


async def test_a_cancel_ends_a_child_that_left_the_group_with_setsid(
        manager: TaskManager, tmp_path: Path) -> None:
    # before: the group's SIGTERM and SIGKILL never reached a child that had made its own
    # session (setsid, as daemon-starting tools do): it outlived the cancelled job
    pidfile = tmp_path / "pid"
    task = await manager.submit(
        ["sh", "-c", f"setsid sleep 300 & echo $! > {pidfile}; sleep 300"], mode="job")

    async def written() -> str | bool:
        return pidfile.exists() and pidfile.read_text().strip()

    await eventually(written, timeout=30, what="the escaped child's pid")
    child = int(pidfile.read_text())

    async def own_session() -> bool:  # the shell writes $! before setsid has run
        return os.getsid(child) == child

    await eventually(own_session, timeout=30, what="the child in a session of its own")
    await manager.cancel(task.id)
    assert (await manager.wait(task.id, timeout=30)).status == "cancelled"
    await eventually(_gone(child), timeout=30, what="the setsid child gone")


async def test_run_subprocess_timeout_ends_a_child_that_left_the_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    with pytest.raises(subprocess.TimeoutExpired):
        await jt.run_subprocess(["sh", "-c", f"setsid sleep 300 & echo $! > {pidfile}; wait"],
                                timeout=1.0)
    await eventually(_gone(int(pidfile.read_text())), timeout=30, what="the setsid child gone")


async def test_a_rerun_or_fork_of_a_task_deleted_meanwhile_is_not_created(
        manager: TaskManager) -> None:
    # before: a rerun that had read its parent just before another client's DELETE
    # committed made a task from the params the user had just deleted, its parent_id
    # naming nothing; the parent's existence is now checked in the insert's transaction
    done = await manager.submit("add", a=1, b=5, mode="job")
    parent = await manager.wait(done.id, timeout=30)
    await manager.delete(parent.id)
    for relationship, overrides in (("rerun", {}), ("fork", {"params": {"a": 2}})):
        with pytest.raises(TaskNotFound, match="was deleted"):
            await manager.submission.again(parent, overrides, relationship, None, None)
    assert await manager.store.count_tasks() == 0


async def test_result_of_failed_task_raises(manager: TaskManager) -> None:
    task = await manager.submit(lambda: 1 / 0)
    with pytest.raises(TaskFailed, match="division by zero"):
        await manager.result(task.id, timeout=5)


async def test_sync_mode_reraises_the_original_exception(manager: TaskManager) -> None:
    with pytest.raises(ZeroDivisionError):
        await manager.submit(lambda: 1 / 0, mode="sync")


async def test_a_waiter_woken_by_the_end_reads_the_original_exception(
        manager: TaskManager) -> None:
    # before: the outcome was remembered after the end's write returned; a waiter woken
    # by the end's event first (a loaded machine) got TaskFailed, not the ZeroDivisionError
    # of its own code (%run_blocking 1/0 showed the engine's TaskFailed, once in CI). The
    # end's writer is held here after its commit until the waiter has read the outcome
    read = asyncio.Event()
    real_finish = manager.store.finish

    async def finish_then_hold(*args: Any, **kwargs: Any) -> Any:
        written = await real_finish(*args, **kwargs)
        await asyncio.wait_for(read.wait(), 20)
        return written

    manager.store.finish = finish_then_hold  # type: ignore[method-assign]
    try:
        task = await manager.submit(lambda: 1 / 0)
        ended = await manager.wait(task.id, timeout=20)
        try:
            with pytest.raises(ZeroDivisionError):
                manager.outcome(ended)
        finally:
            read.set()
    finally:
        manager.store.finish = real_finish  # type: ignore[method-assign]


def test_start_manager_in_a_thread_for_scripts(db_path: Path) -> None:
    manager = jt.start_manager(db_path)
    try:
        task = manager.run_sync(manager.submit("add", a=40, b=2, mode="background"))
        assert manager.run_sync(manager.result(task.id, timeout=5)) == 42
        assert os.path.samefile(manager.db_path, db_path)
    finally:
        jt.stop_manager()


def test_a_scripts_own_loop_awaits_the_thread_managers_methods(db_path: Path,
                                                                tmp_path: Path) -> None:
    # before: `await m.result(...)` inside the script's asyncio.run, beside the manager
    # start_manager runs on its own thread, sometimes never returned (a future of the
    # manager's loop awaited from another loop), and nothing said to use run_on_loop
    manager = jt.start_manager(db_path)

    async def script() -> tuple[Any, str]:
        task = await manager.submit("slow_job", seconds=0.3, marker=str(tmp_path / "m"),
                                    mode="background")
        value = await manager.result(task.id)  # while it still runs (no timeout of its own)
        return value, (await manager.get(task.id)).status

    try:
        for _ in range(3):
            # in a thread with a deadline: a script blocked off its own loop cannot time
            # itself out (before, each round took some 20 s, once for good)
            outcome: list[Any] = []
            thread = threading.Thread(target=lambda into=outcome: into.append(
                asyncio.run(script())), daemon=True)
            thread.start()
            thread.join(10)
            assert not thread.is_alive(), "the script's await of the manager did not return"
            assert outcome == [("slept 0.3", "succeeded")]
    finally:
        jt.stop_manager()


async def test_queue_priority_and_concurrency(db_path: Path) -> None:
    async with TaskManager(db_path) as submitter:  # no worker yet: everything waits queued
        low = await submitter.submit("add", a=1, mode="job", queue="reports", priority=0)
        high = await submitter.submit("add", a=2, mode="job", queue="reports", priority=5)
        other = await submitter.submit("add", a=3, mode="job", queue="elsewhere")
    async with TaskManager(db_path, queues={"reports": 1}) as worker:
        first, second = await worker.wait(high.id, 10), await worker.wait(low.id, 10)
        assert first.started_at <= second.started_at  # higher priority claimed first
        assert (await worker.get(other.id)).status == "queued"  # not a queue this worker serves
        stats = await worker.store.stats()
        assert stats["queues"]["elsewhere"]["queued"] == 1


async def test_local_queue_limit_holds_background_tasks(db_path: Path) -> None:
    async with TaskManager(db_path, queue_limits={"gpu": 1}) as m:
        gate = asyncio.Event()

        async def hold() -> str:
            await gate.wait()
            return "held"

        a = await m.submit(hold(), queue="gpu")
        b = await m.submit(hold(), queue="gpu")
        await eventually(lambda: _status_is(m, a.id, "running"), what="first running")
        assert (await m.get(b.id)).status == "queued"  # waits for the single slot
        gate.set()
        assert (await m.wait(b.id, 5)).status == "succeeded"
        assert (await m.get(a.id)).status == "succeeded"


async def _status_is(m: TaskManager, task_id: str, status: str) -> bool:
    return (await m.get(task_id)).status == status


async def test_a_busy_slot_finishes_and_claims_in_one_commit(db_path: Path) -> None:
    async with TaskManager(db_path) as submitter:  # no worker yet: the jobs wait queued
        jobs = [await submitter.submit("add", a=i, mode="job") for i in range(20)]
    async with TaskManager(db_path, queues={"default": 1}, reaper_interval=60,
                           heartbeat_interval=60, lease_seconds=120) as worker:
        before = worker.store.commits
        finished = [await worker.wait(job.id, timeout=10) for job in jobs]
        commits = worker.store.commits - before
    assert [t.result for t in finished] == [i + 2 for i in range(20)]
    # "finished" of one job and "started" of the next share a transaction: about one
    # commit per job, where finishing and then claiming would take two
    assert commits <= len(jobs) + 2, commits


async def test_stop_between_jobs_hands_claimed_work_back(db_path: Path) -> None:
    async with TaskManager(db_path) as submitter:
        # (1,000: enough that two slots cannot drain the queue before the stop, however
        # late this test hears of the first success on a loaded machine)
        jobs = [await submitter.submit("add", a=i, mode="job") for i in range(1000)]
    worker = TaskManager(db_path, queues={"default": 2})
    await worker.start()
    with worker.subscribe() as feed:
        async for event in feed:
            if event.type == "task.succeeded":
                break
    await worker.stop()  # while its slots are chaining from one job to the next
    async with TaskManager(db_path) as reader:
        tasks = [await reader.get(job.id) for job in jobs]
    statuses = {t.status for t in tasks}
    assert statuses <= {"succeeded", "queued"}, statuses  # nothing left running
    assert all(t.attempts == 0 for t in tasks if t.status == "queued")
    assert "queued" in statuses  # stopped before the queue ran dry


async def test_callback_url_receives_the_finished_task(db_path: Path) -> None:
    import http.server
    import json
    import threading

    received: list[dict] = []
    arrived = threading.Event()

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()
            arrived.set()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        async with TaskManager(db_path, queues={"default": 1}) as m:
            url = f"http://127.0.0.1:{server.server_address[1]}/done"
            job = await m.submit("add", a=40, mode="job", callback_url=url)
            await m.wait(job.id, timeout=10)
            assert await asyncio.to_thread(arrived.wait, 10)
    finally:
        server.shutdown()
    assert received[0]["id"] == job.id
    assert (received[0]["status"], received[0]["result"]) == ("succeeded", 42)


async def test_exit_status_is_awaited_even_when_the_usage_monitor_ends_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from jupyter_tasks import runners

    def gone(pid: int) -> psutil.Process:
        raise psutil.NoSuchProcess(pid)  # as when the process was reaped before the first look

    monkeypatch.setattr(runners.psutil, "Process", gone)
    # closes its output at once, so only the exit status is left to wait for
    done = await runners.run_process(["sh", "-c", "exec >&- 2>&-; sleep 0.3; exit 4"])
    assert done.returncode == 4


async def test_own_submissions_leave_no_bookkeeping_behind(manager: TaskManager) -> None:
    tasks = [await manager.submit("add", a=i, mode=mode)
             for i, mode in enumerate(["background", "job", "background", "job", "sync"])]
    for task in tasks:
        await manager.wait(task.id, timeout=10)
    await manager.poll_events()
    # remembered only until the tail reads the task.created event it skips decoding
    assert manager.state.created_here == set()


def created_ids(sub: Subscription) -> list[str]:
    """The task ids of the task.created events queued in ``sub`` so far, in order."""
    ids = []
    while not sub.queue.empty():
        event = sub.queue.get_nowait()
        if event.type == "task.created":
            ids.append(event.task_id)
    return ids


async def polls_against_jobs_from_elsewhere(db_path: Path, polls) -> tuple[list[str], list[str]]:
    """Jobs submitted by another manager, then ``polls(manager)``: (job ids, what it saw)."""
    # no bell, and a tail that sleeps an hour after its read at start: only the polls
    # under test read what the other manager commits (or, at worst, that first read: once)
    async with TaskManager(db_path, queues={"default": 1}, poll_interval=3600,
                           wake_bell=False) as m:
        with m.subscribe() as sub:
            async with TaskManager(db_path, queues={"default": 1}) as elsewhere:
                jobs = [await elsewhere.submit("add", a=i, mode="job", queue="unserved")
                        for i in range(5)]
            return [j.id for j in jobs], await polls(m, sub)


async def test_a_poll_returns_only_after_what_was_committed_before_it_is_read(
        db_path: Path) -> None:
    async def two_polls(m: TaskManager, sub: Subscription) -> list[str]:
        async def poll_then_look() -> list[str]:
            await m.poll_events()
            return created_ids(sub)

        # the second poll starts while the first is reading: it must not return before
        # the events the first one took are dispatched (its caller would miss them)
        _, seen = await asyncio.gather(m.poll_events(), poll_then_look())
        return seen

    jobs, seen = await polls_against_jobs_from_elsewhere(db_path, two_polls)
    assert seen == jobs


async def test_two_reads_at_once_dispatch_each_event_once(db_path: Path) -> None:
    async def two_reads(m: TaskManager, sub: Subscription) -> list[str]:
        # as when a commit nudges the tail while another read is under way
        await asyncio.gather(m.feed.poll(changed=True), m.feed.poll(changed=True))
        return created_ids(sub)

    jobs, seen = await polls_against_jobs_from_elsewhere(db_path, two_reads)
    assert seen == jobs


@pytest.mark.parametrize("queues", [{"default": -1}, {"default": 1.5}, {"default": True},
                                    {"default": 10**6}, {"../x": 2}, {"": 1}])
async def test_a_queue_with_a_bad_name_or_slot_count_is_refused_at_start(
        db_path: Path, queues: dict) -> None:
    # before: a worker that claimed nothing forever (negative slots), or a queue no
    # submission could name
    with pytest.raises(ValueError, match="queue"):
        TaskManager(db_path, queues=queues)
