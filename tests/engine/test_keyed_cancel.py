"""A task_key whose run is being cancelled: a submit or a rerun of that work is refused
saying so (409), not answered with the run that is stopping."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from jupyter_tasks import TaskManager
from jupyter_tasks.exceptions import KeyedRunStopping, TaskStateConflict
from tests.waiting import eventually

# stops slowly when asked: the stop window a notebook's kernel or a trapping command has
SLOW_STOP = [sys.executable, "-c",
             "import signal, sys, time\n"
             "signal.signal(signal.SIGTERM, lambda *a: (time.sleep(1.5), sys.exit(1)))\n"
             "print('started', flush=True)\n"
             "time.sleep(60)\n"]


async def test_a_rerun_or_submit_while_the_keys_run_is_being_cancelled_is_refused(
        db_path: Path) -> None:
    # before (found from the outside): cancel, then rerun, answered 200 "deduplicated"
    # with the run being cancelled, which then ended: nothing ran, and nothing said so
    async with TaskManager(db_path, queues={"default": 1}, flush_interval=0.05,
                           make_default=False) as manager:
        first = await manager.submit_spec({"command": SLOW_STOP}, task_key="nightly",
                                          max_retries=0)

        async def started() -> bool:
            return "started" in "".join(e.text for e in await manager.store.get_logs(
                first.id, 0, 100))

        await eventually(started, timeout=60, what="the first run started")
        stopping = await manager.cancel(first.id)
        assert stopping.status == "running" and stopping.cancel_requested
        with pytest.raises(KeyedRunStopping) as info:
            await manager.rerun(first.id)
        assert isinstance(info.value, TaskStateConflict)  # a 409 over REST
        assert first.id[-10:] in str(info.value) and "being cancelled" in str(info.value)
        with pytest.raises(KeyedRunStopping):
            await manager.submit_spec({"command": SLOW_STOP}, task_key="nightly")
        assert await manager.store.count_tasks() == 1

        assert (await manager.wait(first.id, timeout=60)).status == "cancelled"
        again = await manager.rerun(first.id)
        assert again.id != first.id and again.task_key == "nightly"
        await manager.cancel(again.id)


async def test_a_schedules_firing_while_its_keys_run_is_being_cancelled_is_kept_refused(
        db_path: Path) -> None:
    # as the schedules guide says: the firing runs nothing, and says why where the
    # schedule's last status shows (before this session's 409 it was merged, unsaid, into
    # the run that was stopping)
    from jupyter_tasks.scheduler import Scheduler
    from jupyter_tasks.server.handlers import parse_job_body
    from tests.engine.test_scheduler import T0, FakeClock

    async with TaskManager(db_path, queues={"default": 1}, flush_interval=0.05,
                           make_default=False) as manager:
        clock = FakeClock(T0 - 0.5)
        scheduler = Scheduler(manager, clock=clock)
        schedule = await scheduler.create(
            {"name": "n", "cron": "* * * * *", "job": {"command": SLOW_STOP,
                                                       "task_key": "nightly"}},
            owner="me", parse_job=lambda job: parse_job_body(job, str(db_path.parent)))
        first = await manager.submit_spec({"command": SLOW_STOP}, task_key="nightly",
                                          owner="me", max_retries=0)

        async def started() -> bool:
            return "started" in "".join(e.text for e in await manager.store.get_logs(
                first.id, 0, 100))

        await eventually(started, timeout=60, what="the keyed run started")
        await manager.cancel(first.id)
        clock.now = T0 + 0.2
        assert await scheduler.tick() != []  # a task: the refused firing
        after = await manager.store.require_schedule(schedule.id)
        refused = await manager.store.require_task(after.last_task_id)
        assert refused.id != first.id and refused.status == "failed", refused
        assert "being cancelled" in refused.error["message"], refused.error
        assert (await manager.wait(first.id, timeout=60)).status == "cancelled"
