"""Command jobs run under the exit-recording shim: same outcomes, and the exit in the row.

The row's ``process`` record is read just before the worker clears it: by then
the shim has written ``exit`` (or, for a stop, has not).
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from jupyter_tasks import TaskManager
from jupyter_tasks.runners import ProcessUsage, group_members, run_process
from tests.engine.test_manager import GATED_COMMAND
from tests.waiting import eventually


@pytest.fixture
async def manager(db_path: Path, monkeypatch: pytest.MonkeyPatch):
    async with TaskManager(db_path, queues={"default": 2}) as m:
        m.cleared = []  # type: ignore[attr-defined]
        set_process = m.store.set_process

        async def spy(task_id: str, worker_id: str, process: Any) -> bool:
            if process is None:
                m.cleared.append((await m.get(task_id)).process)  # type: ignore[attr-defined]
            return await set_process(task_id, worker_id, process)

        monkeypatch.setattr(m.store, "set_process", spy)
        yield m


async def _run(manager: TaskManager, argv: list[str]) -> Any:
    task = await manager.submit_spec({"command": argv, "max_retries": 0})
    return await manager.wait(task.id, timeout=60)


@pytest.mark.parametrize("code", [0, 4])
async def test_the_exit_is_in_the_row_before_the_worker_ends_the_task(manager, code: int):
    # 32 MB resident: above the shim's own peak, below which its figure means nothing
    ended = await _run(manager, [sys.executable, "-c",
                                 f"x = b'x' * (32 << 20); print('hi'); raise SystemExit({code})"])
    assert ended.status == ("succeeded" if code == 0 else "failed"), ended.error
    if code == 0:
        assert ended.result == {"returncode": 0}
    assert ended.process is None
    record = manager.cleared[-1]
    assert record["exit"] == code and record["ended_at"] >= ended.started_at, record
    logs = await manager.store.get_logs(ended.id)
    assert "hi" in "".join(entry.text for entry in logs)
    # the shim's exit-time peak (ru_maxrss), in the row too for a reaper: there even when
    # the command ends before the sampler's first look (as it can beside a CPU hog)
    assert 32 <= record["peak_memory_mb"] <= ended.resource_usage["peak_memory_mb"], record


async def test_a_stopped_command_records_no_exit(manager):
    task = await manager.submit_spec({"command": [sys.executable, "-c",
                                                  "import time; print('up', flush=True); "
                                                  "time.sleep(60)"]})

    async def running() -> Any:
        row = await manager.get(task.id)
        logs = await manager.store.get_logs(task.id)
        return row.process if row.process and logs else None

    process = await eventually(running, timeout=30, what="the command running")
    await manager.cancel(task.id)
    ended = await manager.wait(task.id, timeout=30)
    assert ended.status == "cancelled"
    assert "exit" not in manager.cleared[-1], manager.cleared[-1]
    assert group_members(process["pgid"]) == []


@pytest.mark.parametrize("argv", [
    [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"],
    [sys.executable, "-c", "import sys; sys.stderr.write('e'); print('o'); sys.exit(3)"],
    ["sh", "-c", "kill -SEGV $$"],
])
async def test_run_process_through_the_shim_returns_what_it_returns_without(
        db_path: Path, argv: list[str]):
    plain = await run_process(argv)
    shimmed = await run_process(argv, usage=ProcessUsage(record_exit=(str(db_path), "t", 1)))
    assert (shimmed.returncode, shimmed.stdout, shimmed.stderr) == \
        (plain.returncode, plain.stdout, plain.stderr)
    assert plain.returncode in (-signal.SIGTERM, 3, -signal.SIGSEGV)


async def test_a_command_that_cannot_start_raises_as_without_the_shim(db_path: Path, manager):
    argv = [str(db_path.parent / "no-such-command")]
    with pytest.raises(FileNotFoundError) as plain:
        await run_process(argv)
    with pytest.raises(FileNotFoundError) as shimmed:
        await run_process(argv, usage=ProcessUsage(record_exit=(str(db_path), "t", 1)))
    assert str(shimmed.value) == str(plain.value)
    ended = await _run(manager, argv)
    assert ended.status == "failed" and ended.error["type"] == "FileNotFoundError", ended.error


async def test_a_command_that_ended_while_its_shim_waits_to_record_keeps_its_end(
        manager, db_path: Path, tmp_path: Path):
    # the command exited 0; its shim, writing the exit into the row, waits for the
    # database's lock (another process holds it) when a cancel arrives. Before: the
    # shim had said nothing yet, the group was told to stop and the task written
    # cancelled. Now the shim tells its worker of the exit first
    gate = tmp_path / "gate"
    task = await manager.submit_spec({"command": [sys.executable, "-c", GATED_COMMAND,
                                                  str(gate), "0"], "max_retries": 0})
    started = Path(f"{gate}.started")

    async def leader() -> int | None:
        running = manager.state.running.get(task.id)
        return next(iter(running.groups), None) if running and started.exists() else None

    shim = psutil.Process(await eventually(leader, timeout=30, what="the command running"))
    lock = sqlite3.connect(db_path, isolation_level=None, timeout=30)
    try:
        lock.execute("BEGIN IMMEDIATE")  # the write lock, as a busy process would hold it
        gate.write_text("go")

        async def shim_writing() -> bool:  # the command has ended: its shim opened the row
            return any(f.path.startswith(str(db_path)) for f in shim.open_files())

        await eventually(shim_writing, timeout=30, what="the shim writing the exit")
        manager.execution.stop_by_id(task.id, "cancel")  # what a cancel request does here
        # one turn of the loop: the attempt takes the stop (ends the group, or not) now,
        # while the shim still waits for the lock
        await asyncio.sleep(0)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    ended = await manager.wait(task.id, timeout=30)
    assert (ended.status, ended.result, ended.error) == ("succeeded", {"returncode": 0}, None)
    assert manager.cleared[-1]["exit"] == 0, manager.cleared[-1]  # the shim was not stopped
    assert "ran to its end" in "".join(e.text for e in await manager.store.get_logs(task.id))
