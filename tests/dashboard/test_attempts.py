"""Issue 14: the detail pane says which attempt a task is on, of how many, and why it retried.

A real job on a real database: a worker claims it and dies (its lease runs out),
the reaper puts it back in the queue as a lost attempt; then a real worker runs it,
its command fails and its one retry runs. The dashboard reads the same database.
"""

from __future__ import annotations

import sys
from typing import Any

from jupyter_tasks_dashboard.app import TasksDashboard
from jupyter_tasks_dashboard.sources import DatabaseSource

from .conftest import until

SIZE = (180, 50)
GHOST = "ghost-worker"


def summary(app: TasksDashboard) -> str:
    return str(app.detail.summary.render())


async def test_detail_shows_attempt_of_max_the_retry_reason_and_lost_workers(tmp_path):
    from jupyter_tasks.manager import TaskManager

    db = tmp_path / "attempts.db"
    command = [sys.executable, "-c", "raise SystemExit(3)"]
    async with TaskManager(db, queues={}, reaper_interval=3600, make_default=False) as idle:
        job = await idle.submit_spec({"command": command}, max_retries=1, label="flaky job")
        claimed = await idle.store.claim_jobs("default", GHOST, lease_seconds=-1)
        assert [t.id for t in claimed] == [job.id]
        (lost,) = await idle.store.reap([GHOST])
    assert (lost.status, lost.lost_attempts, lost.attempts) == ("queued", 1, 1)

    app = TasksDashboard(DatabaseSource(db))
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.ready and app.table.row_count == 1, pilot, what="the row")
        app.table.select(job.id)
        await until(lambda: app.detail.task_id == job.id and app.detail.built
                    and "attempt" in summary(app), pilot, what="the details")
        text = summary(app)
        assert "attempt 1 of 3 (retried: worker lost) · 1 lost worker" in text, text

        # a real worker runs it now: it fails, retries once on its own failure, fails again
        async with TaskManager(db, queues={"default": 1}, retry_base_delay=0.05,
                               flush_interval=0.05, make_default=False) as worker:
            done = await worker.wait(job.id, timeout=60)
        assert (done.status, done.attempts, done.lost_attempts) == ("failed", 3, 1)
        reason = done.retry_reason
        assert reason and reason != "worker lost"

        def shown() -> Any:
            text = summary(app)
            return "attempt 3 of 3" in text and text

        text = await until(shown, pilot, what="the third attempt shown")
        assert f"(retried: {reason})" in text, text
        assert "1 lost worker" in text
