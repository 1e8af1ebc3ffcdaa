"""Whatever a task returns, raises or writes, its end is written and the process serves on.

Each case once left its task ``running`` for good (an exception in the end's own
writing that nothing caught), or held the event loop every other task runs on.
"""

from __future__ import annotations

import os
import threading
import weakref
from pathlib import Path
from typing import Any

import pytest

from jupyter_tasks import TaskContext, TaskManager, task
from tests.engine import sample_tasks  # noqa: F401  (registers add)

# a file name as os.listdir gives it for Latin-1 bytes: lone surrogates, which no
# UTF-8 text (the database's) can hold
LATIN1_NAME = os.fsdecode(b"data-\xe9t\xe9.csv")


class _Thing:
    pass


class _Refuses:
    """An object that refuses every attribute lookup, ``__class__`` included."""

    def __getattribute__(self, name: str) -> Any:
        raise RuntimeError(f"no {name} here")


def _dead_proxy() -> Any:
    thing = _Thing()
    proxy = weakref.proxy(thing)
    del thing
    return proxy


ODD_RESULTS = {"dead_proxy": _dead_proxy, "refuses": _Refuses}

# the slow repr waits on this, never more than a deadline: the test sets it at the end
RELEASE = threading.Event()


class _SlowRepr:
    def __repr__(self) -> str:
        RELEASE.wait(60)
        return "slow"


@task("fails_latin1")
def fails_latin1() -> None:
    """Fail with a message holding a file name no UTF-8 can hold."""
    raise ValueError(f"{LATIN1_NAME}: bad header")


@task("odd_result_sync")
def odd_result_sync(how: str) -> Any:
    """Return an object that breaks on attribute access, from a thread."""
    return ODD_RESULTS[how]()


@task("odd_result_async")
async def odd_result_async(how: str) -> Any:
    """Return an object that breaks on attribute access, on the loop."""
    return ODD_RESULTS[how]()


@task("writes_bytes")
def writes_bytes(ctx: TaskContext, how: str) -> None:
    """Write bytes to the task's log, as if they were text."""
    getattr(ctx, how)(b"raw chunk\n")


@task("slow_repr_sync")
def slow_repr_sync() -> Any:
    """Return an object whose repr takes until RELEASE, from a thread."""
    return _SlowRepr()


@task("slow_repr_async")
async def slow_repr_async() -> Any:
    """Return an object whose repr takes until RELEASE, on the loop."""
    return _SlowRepr()


@pytest.mark.parametrize("mode", ["background", "job"])
async def test_a_failure_whose_message_no_utf8_holds_is_retried_and_ends(
        db_path: Path, mode: str) -> None:
    # before: the retry's reason (the message's first line) went into the row as it
    # was; sqlite refused it ("surrogates not allowed") and the task stayed running
    async with TaskManager(db_path, queues={"default": 1}, retry_base_delay=0.01) as manager:
        failing = await manager.submit("fails_latin1", mode=mode, max_retries=2)
        ended = await manager.wait(failing.id, timeout=30)
        assert ended.status == "failed" and ended.attempts == 3, (ended.status, ended.error)
        assert "data-" in ended.error["message"] and "bad header" in ended.error["message"]
        assert "\ufffd" in ended.retry_reason, ended.retry_reason
        after = await manager.submit("add", a=1, b=1, mode=mode)
        assert (await manager.wait(after.id, timeout=20)).result == 2


@pytest.mark.parametrize("mode", ["background", "job"])
@pytest.mark.parametrize("name", ["odd_result_sync", "odd_result_async"])
@pytest.mark.parametrize("how", sorted(ODD_RESULTS))
async def test_a_result_that_breaks_on_attribute_access_ends_its_task(
        db_path: Path, mode: str, name: str, how: str) -> None:
    # before: remembering the outcome asked the object for its class (ReferenceError of
    # a dead proxy, or the object's own error) outside any guard: the task stayed running
    async with TaskManager(db_path, queues={"default": 1}) as manager:
        odd = await manager.submit(name, how=how, mode=mode)
        ended = await manager.wait(odd.id, timeout=20)
        assert ended.status == "succeeded", (ended.status, ended.error)
        assert ended.value_notes, ended  # stored as a placeholder, and said so
        after = await manager.submit("add", a=1, b=1, mode=mode)
        assert (await manager.wait(after.id, timeout=20)).result == 2


@pytest.mark.parametrize("how", ["write", "log"])
async def test_bytes_written_to_a_task_log_fail_at_the_call(db_path: Path, how: str) -> None:
    # before: ctx.write(b"...") was taken, and the end's joining of the log raised: the
    # task stayed running
    async with TaskManager(db_path, queues={"default": 1}) as manager:
        writing = await manager.submit("writes_bytes", how=how, mode="job", max_retries=0)
        ended = await manager.wait(writing.id, timeout=20)
        assert ended.status == "failed", (ended.status, ended.error)
        assert ended.error["type"] == "TypeError"
        assert "must be str, not bytes" in ended.error["message"], ended.error


@pytest.mark.parametrize("name", ["slow_repr_sync", "slow_repr_async"])
async def test_a_slow_result_repr_holds_only_its_own_task_which_its_timeout_ends(
        db_path: Path, name: str) -> None:
    # before: the result was encoded (its repr called) on the manager's loop: every
    # other task, REST call and heartbeat of the process waited for it, and its timeout
    # of 1 s could not end it (it ended "succeeded" when the repr returned)
    RELEASE.clear()
    try:
        async with TaskManager(db_path, queues={"default": 2}) as manager:
            slow = await manager.submit(name, mode="job", timeout=1)
            beside = await manager.submit("add", a=2, b=3, mode="job")
            assert (await manager.wait(beside.id, timeout=30)).result == 5
            ended = await manager.wait(slow.id, timeout=30)
            assert ended.status == "timeout", (ended.status, ended.error)
    finally:
        RELEASE.set()
