"""Command jobs run under the exit-recording shim: same outcomes, and the exit in the row.

The row's ``process`` record is read just before the worker clears it: by then
the shim has written ``exit`` (or, for a stop, has not).
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from jupyter_tasks import TaskManager
from jupyter_tasks.runners import ProcessUsage, group_members, run_process


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
    from tests.waiting import eventually

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
