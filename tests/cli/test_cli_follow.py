"""``run --wait`` and ``logs --follow`` print every line a job wrote, the last ones too."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import pytest

from jupyter_tasks import TaskManager
from jupyter_tasks.cli import _cmd_logs, _follow
from jupyter_tasks.models import EventType, TaskStatus
from jupyter_tasks.store import Store


async def end_with_a_last_line(m: TaskManager, task_id: str) -> None:
    """What a runner does as a job ends: its last output, then the final state."""
    await m.store.append_logs(task_id, [(time.time(), "stdout", "the last line\n")])
    await m.store.transition(task_id, {"status": TaskStatus.SUCCEEDED.value,
                                       "finished_at": time.time()},
                             EventType.SUCCEEDED, when_status=(TaskStatus.QUEUED.value,))


def ends_after_the_first_log_read(store: Store, m: TaskManager, task_id: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The job writes its last line and ends right after the follower's first read of
    its log through ``store``: between that read and the follower's look at its state."""
    get_logs = store.get_logs
    reads = 0

    async def racing(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        entries = await get_logs(*args, **kwargs)
        reads += 1
        if reads == 1:
            await end_with_a_last_line(m, task_id)
        return entries

    monkeypatch.setattr(store, "get_logs", racing)


async def test_run_wait_prints_a_line_written_just_before_the_job_ended(
        db_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    async with TaskManager(db_path, queues={}, make_default=False) as m:
        task = await m.submit_spec({"command": ["true"]}, mode="job")
        ends_after_the_first_log_read(m.store, m, task.id, monkeypatch)
        ended = await _follow(m, task.id)
    assert ended.status == TaskStatus.SUCCEEDED.value
    assert capsys.readouterr().out == "the last line\n"


async def test_logs_follow_prints_a_line_written_just_before_the_job_ended(
        db_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    async with TaskManager(db_path, queues={}, make_default=False) as m:
        task = await m.submit_spec({"command": ["true"]}, mode="job")
        opened = Store.open

        async def open_and_race(*args: Any, **kwargs: Any) -> Store:
            store = await opened(*args, **kwargs)
            ends_after_the_first_log_read(store, m, task.id, monkeypatch)
            return store

        monkeypatch.setattr(Store, "open", open_and_race)
        args = argparse.Namespace(db=str(db_path), id=task.id, follow=True, json=False)
        assert await _cmd_logs(args) == 0
    assert capsys.readouterr().out == "the last line\n"
