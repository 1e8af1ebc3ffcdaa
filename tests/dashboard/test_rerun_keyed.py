"""A rerun of a task whose ``task_key`` has a run active says so, not "started"."""

from __future__ import annotations

import sys

from jupyter_tasks_dashboard.app import TasksDashboard
from jupyter_tasks_dashboard.sources import DatabaseSource

from .conftest import until

SIZE = (180, 50)


async def test_a_rerun_of_a_keyed_task_already_queued_says_it_was_not_rerun(tmp_path):
    # before: the rerun dropped the key and a second run of the same work was queued
    from jupyter_tasks.manager import TaskManager

    db = tmp_path / "keyed.db"
    async with TaskManager(db, queues={}, make_default=False) as idle:
        job = await idle.submit_spec({"command": [sys.executable, "-c", "pass"]},
                                     task_key="nightly", label="nightly report")
    app = TasksDashboard(DatabaseSource(db))
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.ready and app.table.row_count == 1, pilot, what="the row")
        app.table.select(job.id)
        await until(lambda: app.detail.task_id == job.id, pilot, what="details")
        await pilot.press("r")
        note = await until(lambda: next((n for n in app.notices if "rerun" in n.lower()),
                                        None), pilot, what="the rerun's answer")
        assert note == (f"Not rerun: nightly report (…{job.id[-10:]}) is already queued "
                        "(one run at a time under its task key)"), note
    async with TaskManager(db, queues={}, make_default=False) as idle:
        assert await idle.store.count_tasks() == 1
