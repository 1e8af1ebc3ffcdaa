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
