"""Text the dashboard shows fits its place, and says each thing once: the fork dialog's
title (a long label cut with an ellipsis, what to edit said whole beneath it), its
refusals, and a long queue name beside its counts."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from jupyter_tasks_dashboard.app import TasksDashboard
from jupyter_tasks_dashboard.fork import ForkScreen
from jupyter_tasks_dashboard.sources import DatabaseSource
from textual.widgets import Label, TextArea

from .conftest import until

SIZE = (120, 40)


@contextlib.asynccontextmanager
async def fork_dialog(tmp_path: Path, label: str) -> AsyncIterator[tuple[Any, Any, Any]]:
    """(app, pilot, dialog): a database-mode dashboard with the fork dialog of an ended
    code task labelled ``label`` open."""
    from jupyter_tasks.manager import TaskManager
    from jupyter_tasks.models import Task, new_task_id

    db = tmp_path / "fork.db"
    now = time.time()
    ended = Task(id=new_task_id(), kind="code", mode="job", status="succeeded", label=label,
                 spec={"code": "print(1)"}, created_at=now, started_at=now,
                 finished_at=now + 1, updated_at=now + 1)
    async with TaskManager(db, runs_background=False, make_default=False) as writer:
        await writer.store.create_tasks([ended])
    app = TasksDashboard(DatabaseSource(db))
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.ready and ended.id in app.table.tasks, pilot, what="the row")
        app.table.select(ended.id)
        await until(lambda: app.detail.task_id == ended.id, pilot, what="details")
        await pilot.press("f")
        dialog = await until(lambda: isinstance(app.screen, ForkScreen) and app.screen, pilot,
                             what="the fork dialog")
        await pilot.pause()
        yield app, pilot, dialog


async def test_a_long_label_is_cut_with_an_ellipsis_and_the_hint_is_whole(tmp_path):
    # before: "Fork <label> — edit overrides (a JSON object)" was one line, cut at the
    # dialog's edge with no ellipsis: with a 50-character label the hint was lost
    label = "monthly revenue report for every region " + "R" * 40
    async with fork_dialog(tmp_path, label) as (app, _, dialog):
        title = dialog.query_one(".dialog-title", Label)
        shown = str(title.render()).rstrip()
        assert shown.startswith("Fork monthly revenue report") and shown.endswith("…"), shown
        assert title.region.width <= title.parent.content_region.width
        assert len(shown) <= title.parent.content_region.width
        text = app.screen_text()
        assert "Edit overrides (a JSON object):" in text, text


async def test_a_refused_fork_says_each_problem_once(tmp_path):
    # before: "input_data is not storable JSON: input_data['x']: inf cannot be stored as
    # JSON; input_data['x']: inf cannot be stored as JSON" (the message, then its errors)
    async with fork_dialog(tmp_path, "c") as (_, pilot, dialog):
        dialog.query_one("#fork-json", TextArea).text = '{"input_data": {"x": 1e400}}'
        await pilot.press("ctrl+s")

        def said() -> str:
            return str(dialog.query_one("#fork-error").render())

        text = await until(lambda: "cannot be stored" in said() and said(), pilot,
                           what="the refusal")
        assert text.count("inf cannot be stored as JSON") == 1, text


async def test_a_long_queue_name_is_cut_with_an_ellipsis_and_kept_apart_from_its_counts(
        tmp_path):
    # before: "nonexistent_ququeued 1": the name cut at 14 cells, the counts right after
    from jupyter_tasks_dashboard.queues import QueueRow

    from jupyter_tasks.manager import TaskManager

    db = tmp_path / "queues.db"
    queue = "nonexistent_queue_with_a_long_name"
    async with TaskManager(db, queues={}, make_default=False) as writer:
        await writer.submit_spec({"command": ["true"]}, queue=queue)
    app = TasksDashboard(DatabaseSource(db))
    async with app.run_test(size=SIZE) as pilot:
        row = await until(lambda: next((r for r in app.query(QueueRow) if r.queue == queue),
                                       None), pilot, what="the queue's row")
        await pilot.pause()
        name = row.query_one(".queue-name", Label)
        shown = str(name.render())
        assert shown.startswith("nonexistent_") and shown.endswith("…"), shown
        assert len(shown) < name.region.width, (shown, name.region)  # a cell to spare
