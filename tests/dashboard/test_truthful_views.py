"""Issue 13, dashboard: focus after a filter, counts that follow it, confirmations, sort,
human durations and local times, argv, the palette, the skeleton first screen.

Against a real SQLite file (``DatabaseSource``) holding a mix of tasks.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from jupyter_tasks_dashboard.app import TasksDashboard
from jupyter_tasks_dashboard.ask import AskScreen
from jupyter_tasks_dashboard.formatting import (
    duration_seconds,
    human_seconds,
    local_time,
    progress_fraction,
    progress_message,
    progress_text,
)
from jupyter_tasks_dashboard.sources import DatabaseSource, Filters, Page
from rich.text import Text
from textual.command import CommandPalette

from jupyter_tasks.models import progress_fraction as engine_progress_fraction
from tests.engine.test_progress_values import STORED as ODD_PROGRESS

from .conftest import beside_a_writer, build_history, until

SIZE = (180, 50)
HISTORY = 300


def counts_by_sql(db: Path, where: str = "1", args: tuple = ()) -> dict[str, int]:
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute(
            f"SELECT status, count(*) FROM tasks WHERE {where} GROUP BY status", args))
    finally:
        conn.close()


@pytest.fixture(scope="module")
def mixed_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 tasks: running, succeeded, failed, cancelled, and 20 turned into timeouts."""
    path = tmp_path_factory.mktemp("dash-mixed") / "tasks.db"
    asyncio.run(build_history(path, HISTORY))
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE tasks SET status = 'timeout' WHERE id IN (SELECT id FROM tasks "
                     "WHERE status = 'failed' ORDER BY id LIMIT 20)")
        # one long finished run, so that durations differ
        conn.execute("UPDATE tasks SET finished_at = started_at + 82.4 WHERE label = "
                     "'history 290'")
    conn.close()
    return path


def totals_of(app: TasksDashboard) -> str:
    """The totals line as plain text."""
    return Text.from_markup(app.overview.totals_text()).plain


async def started(app: TasksDashboard, pilot) -> None:
    await until(lambda: app.ready and app.paints, pilot, what="first page")


async def test_enter_in_the_filter_gives_the_keys_back_to_the_table(mixed_db):
    app = TasksDashboard(DatabaseSource(mixed_db))
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await pilot.press("slash")
        search = app.query_one("#filter-search")
        assert app.focused is search
        await pilot.press(*"history 29", "enter")
        await until(lambda: app.filters.search == "history 29"
                    and all("history 29" in t["label"] for t in app.table.tasks.values()),
                    pilot, what="the filtered page")
        assert app.focused is app.table
        await pilot.press("c")  # acts on the table (asks), is not typed into the box
        await until(lambda: isinstance(app.screen, AskScreen), pilot, what="the question")
        assert search.value == "history 29"
        await pilot.press("n")
        await until(lambda: not isinstance(app.screen, AskScreen), pilot, what="closed")


async def test_counts_follow_the_filter_and_timeouts_are_not_failures(mixed_db):
    whole = counts_by_sql(mixed_db)
    assert whole["timeout"] == 20 and whole["failed"] > 0
    app = TasksDashboard(DatabaseSource(mixed_db))
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await until(lambda: app.overview.counted, pilot, what="counted")
        totals = totals_of(app)
        assert f"{HISTORY} tasks" in totals
        assert f"failed {whole['failed']}" in totals and "timeout 20" in totals
        assert f"· {HISTORY} tasks ·" in app.sub_title  # the title agrees with the line
        await until(lambda: "timeout 20" in app.screen_text(), pilot, what="on screen")

        # owner "bo": the totals line, the title and the queue rows count bo's tasks only
        app.apply_filters(Filters(owner="bo"))
        bo = counts_by_sql(mixed_db, "owner = ?", ("bo",))
        total = sum(bo.values())
        await until(lambda: app.overview.counted and f"{total} matching"
                    in totals_of(app), pilot, what="bo's count")
        totals = totals_of(app)
        for status, count in bo.items():
            assert f"{status} {count}" in totals, (status, totals)
        assert f"· {total} matching ·" in app.sub_title
        # gpu holds bo's tasks (odd rows), default ana's: 2 of the 3 running are on gpu
        running_gpu = counts_by_sql(mixed_db, "owner = 'bo' AND queue = 'gpu'").get("running", 0)
        assert app.overview.stats["queues"]["gpu"]["running"] == running_gpu
        assert app.overview.stats["queues"].get("default", {}).get("running", 0) == 0

        # status "finished": every terminal status, each as itself
        app.apply_filters(Filters(statuses=("timeout",)))
        await until(lambda: app.overview.counted and "20 matching"
                    in totals_of(app), pilot, what="timeouts only")
        assert "failed" not in totals_of(app)


async def test_cancel_and_delete_ask_first(tmp_path):
    async with beside_a_writer(tmp_path / "ask.db", SIZE) as (app, writer, pilot):
        task = await writer.submit_spec({"command": ["true"]}, mode="job", label="parked one",
                                        queue="parked")
        await until(lambda: task.id in app.table.tasks, pilot, what="the row")
        app.table.select(task.id)
        await pilot.press("c")
        modal = await until(lambda: isinstance(app.screen, AskScreen) and app.screen, pilot,
                            what="the cancel question")
        await until(lambda: "Cancel parked one" in app.screen_text()
                    and "Cancel task (y)" in app.screen_text(), pilot, what="question shown")
        assert app.focused.id == "ask-no"  # Enter would keep the task
        await pilot.press("n")
        await until(lambda: not isinstance(app.screen, AskScreen), pilot, what="closed")
        assert modal.is_attached is False
        assert (await writer.get(task.id)).status == "queued"
        await pilot.press("c", "escape")  # escape is no too
        await until(lambda: not isinstance(app.screen, AskScreen), pilot, what="closed")
        assert (await writer.get(task.id)).status == "queued"
        await pilot.press("c", "y")
        await until(lambda: app.table.tasks[task.id]["status"] == "cancelled", pilot,
                    what="cancelled after yes")

        await pilot.press("d")
        await until(lambda: isinstance(app.screen, AskScreen)
                    and "forgotten for good" in app.screen_text(), pilot, what="delete question")
        await pilot.press("n")
        await until(lambda: not isinstance(app.screen, AskScreen), pilot, what="closed")
        assert (await writer.get(task.id)).status == "cancelled"  # still there
        await pilot.press("d")
        await until(lambda: isinstance(app.screen, AskScreen), pilot, what="delete question")
        await pilot.click("#ask-yes")
        await until(lambda: task.id not in app.table.tasks, pilot, what="deleted")


async def test_sort_running_first_by_default_and_by_any_column(mixed_db):
    app = TasksDashboard(DatabaseSource(mixed_db), page_size=40)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        table = app.table
        statuses = [table.tasks[i]["status"] for i in table.row_ids]
        assert statuses[:3] == ["running"] * 3 and "running" not in statuses[3:]
        assert "status ▲" in app.screen_text() and "running first" in app.sub_title

        # running first holds over the whole history: page 2 goes on with finished tasks
        await pilot.press("n")
        await until(lambda: table.page_index == 1, pilot, what="page 2")
        assert all(table.tasks[i]["status"] != "running" for i in table.row_ids)
        await pilot.press("home")
        await until(lambda: table.page_index == 0, pilot, what="page 1")

        # a click on the duration header: longest first, over the whole history
        x = table.region.x + sum(w + 2 for w in (11, 24, 10, 15, 8, 14, 12)) + 2
        await pilot.click(offset=(x, table.region.y))
        await until(lambda: app.sort.column == "duration" and app.sort.descending, pilot,
                    what="sorted by duration")
        await until(lambda: table.tasks and table.tasks[table.row_ids[0]]["label"]
                    == "history 290", pilot, what="the longest run on top")
        assert "duration ▼" in app.screen_text() and "by duration ▼" in app.sub_title
        assert "within page" not in app.sub_title
        assert table.cell_text(table.row_ids[0], "duration") == "1 m 22 s"
        await pilot.click(offset=(x, table.region.y))  # again: the other direction
        await until(lambda: app.sort.column == "duration" and not app.sort.descending
                    and "history 290" not in {t["label"] for t in table.tasks.values()},
                    pilot, what="shortest first (the longest run is on the last page)")
        durations = [duration_seconds(table.tasks[i]) or 0 for i in table.row_ids]
        assert durations == sorted(durations)

        await pilot.press("s")  # the cycle goes on: label
        await until(lambda: app.sort.column == "label", pilot, what="by label")
        labels = [table.tasks[i]["label"].lower() for i in table.row_ids]
        await until(lambda: [table.tasks[i]["label"].lower() for i in table.row_ids]
                    == sorted(labels), pilot, what="labels in order")


def test_one_duration_format_and_local_times():
    assert [human_seconds(s) for s in (0.009, 0.85, 8.84, 82.4, 7623, 3 * 86400 + 4 * 3600)] \
        == ["9 ms", "850 ms", "8.8 s", "1 m 22 s", "2 h 07 m", "3 d 04 h"]
    now = time.time()
    iso = datetime.fromtimestamp(now, timezone.utc).isoformat().replace("+00:00", "Z")
    assert local_time(iso, now) == datetime.fromtimestamp(now).strftime("%H:%M:%S")
    assert local_time("2001-02-03T04:05:06Z", now) == \
        datetime.fromtimestamp(981173106).strftime("%Y-%m-%d %H:%M")


async def test_details_show_local_times_and_a_subprocess_argv(tmp_path):
    async with beside_a_writer(tmp_path / "argv.db", SIZE) as (app, writer, pilot):
        task = await writer.submit_spec(
            {"command": ["python", "-c", "print('hi there')"], "cwd": str(tmp_path),
             "env": {"SECRET": "hunter2"}}, mode="job", label="argv shown", queue="parked")
        await until(lambda: task.id in app.table.tasks, pilot, what="the row")
        app.table.select(task.id)
        await until(lambda: app.detail.task_id == task.id and app.detail.built
                    and "argv" in str(app.detail.params.render()), pilot, what="details")
        text = str(app.detail.params.render())
        assert 'argv ["python", "-c", "print(\'hi there\')"]' in text
        assert f"cwd  {tmp_path}" in text and "SECRET=…" in text and "hunter2" not in text
        assert str(app.detail.params_title.render()) == "command"
        assert "null" not in text
        summary = str(app.detail.summary.render())
        created = local_time(task.created_at)
        assert f"created {created}" in summary and "Z" not in summary.split("created")[1]


async def test_a_task_that_ended_before_its_cancel_says_so(tmp_path):
    # a cancel that arrived once the work had ended leaves the task its own end, with
    # cancel_requested set (the engine's race tests): before, the details said
    # "succeeded" as if nobody had pressed cancel, and the person who did was left guessing
    db = tmp_path / "late.db"
    async with beside_a_writer(db, SIZE) as (app, writer, pilot):
        ended = {}
        for status in ("succeeded", "failed", "cancelled"):
            task = await writer.submit_spec({"command": ["true"]}, mode="job", label=status,
                                            queue="parked")
            ended[status] = task.id
        conn = sqlite3.connect(db)
        with conn:  # the rows the race leaves (and a cancel that did stop its task)
            for status, task_id in ended.items():
                conn.execute("UPDATE tasks SET status = ?, cancel_requested = 1, "
                             "finished_at = created_at + 1 WHERE id = ?", (status, task_id))
        conn.close()
        app.action_reload()
        for status, task_id in ended.items():
            def row_shown(task_id: str = task_id, status: str = status) -> bool:
                return app.table.tasks.get(task_id, {}).get("status") == status

            def details_shown(task_id: str = task_id, status: str = status) -> bool:
                return app.detail.task_id == task_id and app.detail.built \
                    and status in str(app.detail.summary.render())

            await until(row_shown, pilot, what=f"the {status} row")
            app.table.select(task_id)
            await until(details_shown, pilot, what=f"the {status} details")
            summary = str(app.detail.summary.render())
            late = "the cancel came after it had ended" in summary
            assert late == (status != "cancelled"), summary


async def test_the_palette_holds_the_dashboard_commands(mixed_db):
    app = TasksDashboard(DatabaseSource(mixed_db))
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await pilot.press("ctrl+p")
        await until(lambda: isinstance(app.screen, CommandPalette), pilot, what="the palette")
        await pilot.press(*"sort by dur")
        await until(lambda: "Sort by duration" in app.screen_text(), pilot, what="the hit")
        await pilot.press("enter")
        await until(lambda: app.sort.column == "duration", pilot, what="sorted by the palette")
        await pilot.press("ctrl+p")
        await until(lambda: isinstance(app.screen, CommandPalette), pilot, what="the palette")
        await pilot.press(*"rerun")
        await until(lambda: "Rerun task" in app.screen_text(), pilot, what="rerun listed")
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await until(lambda: isinstance(app.screen, CommandPalette), pilot, what="the palette")
        await pilot.press(*"filter status: timeout", "enter")
        await until(lambda: app.filters.statuses == ("timeout",) and app.table.tasks and all(
            t["status"] == "timeout" for t in app.table.tasks.values()), pilot,
            what="filtered from the palette")


class GatedSource(DatabaseSource):
    """The database, but the first page waits until the test opens the gate."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = asyncio.Event()

    async def list_tasks(self, filters, cursor, limit) -> Page:
        await self.gate.wait()
        return await super().list_tasks(filters, cursor, limit)


async def test_the_first_screen_is_a_skeleton_until_the_page_arrives(mixed_db):
    source = GatedSource(mixed_db)
    app = TasksDashboard(source)
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.first_frame_at is not None, pilot, what="the first frame")
        screen = app.screen_text()
        assert "id" in screen and "status ▲" in screen and "━━" in screen
        assert "loading…" in app.sub_title and "counting…" in screen
        assert not app.paints and not app.table.row_ids
        await pilot.press("down")  # keys are answered meanwhile
        source.gate.set()
        await until(lambda: app.paints and app.table.row_count == 50, pilot, what="the page")
        assert "━━" not in app.screen_text()


@pytest.mark.parametrize("stored", ODD_PROGRESS)
def test_the_progress_column_shows_a_stored_progress_whatever_it_holds(stored: Any) -> None:
    # before: progress(Decimal('2.5'), 10) stored "Decimal('2.5')" and this raised TypeError
    assert isinstance(progress_text({"status": "running", "progress": stored}), str)
    # the dashboard's own copy of the rule (kept apart for a fast first frame) agrees
    assert progress_fraction(stored) == engine_progress_fraction(stored)


def test_a_job_back_in_its_queue_shows_no_progress_as_the_panel_does() -> None:
    # before: a job put back after its worker stopped showed "██░░ 16%" while queued; the
    # panel shows no bar (its next attempt starts from nothing), the views disagreed
    kept = {"current": 16, "total": 100, "message": "step 16"}
    assert progress_text({"status": "queued", "progress": kept}) == ""
    assert progress_message({"status": "queued", "progress": kept}) == ""
    assert progress_text({"status": "running", "progress": kept}).endswith("16%")
    assert progress_message({"status": "running", "progress": kept}) == "step 16"

