"""Issue 14: the dashboard's Schedules view, against a real server and on the database itself.

``t`` opens the view: name, cron, time zone, next run, last run status, paused.
``p`` pauses (the server then says paused) and resumes, ``r`` fires now, ``d`` deletes
after the same yes/no dialog as tasks, Enter shows the schedule's firings (the task
table filtered by ``schedule_id``). Changes made elsewhere arrive live through the
``schedule.changed`` events.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from jupyter_tasks_dashboard.app import TasksDashboard
from jupyter_tasks_dashboard.ask import AskScreen
from jupyter_tasks_dashboard.schedules import SchedulesScreen
from jupyter_tasks_dashboard.sources import DatabaseSource, ServerSource

from .conftest import until

pytestmark = pytest.mark.slow
SIZE = (180, 50)
# a job no worker serves: its firings stay queued, visible, and run nothing
JOB = {"command": ["true"], "queue": "nowhere"}


def row_text(screen: SchedulesScreen, schedule_id: str) -> str:
    """The schedule's row as the user reads it."""
    if schedule_id not in screen.schedules:
        return ""
    cells = screen.table.get_row(schedule_id)
    return " | ".join(str(c) for c in cells)


async def open_schedules(app: TasksDashboard, pilot: Any) -> SchedulesScreen:
    await until(lambda: app.ready and app.page_loads > 0, pilot, what="first page")
    await pilot.press("t")
    screen = await until(lambda: isinstance(app.screen, SchedulesScreen) and app.screen.loaded
                         and app.screen, pilot, what="the schedules view")
    return screen


async def test_server_mode_pause_run_now_firings_and_delete(server):
    status, nightly = server.request("POST", "api/tasks/schedules", {
        "name": "nightly report", "cron": "0 9 * * 1-5", "timezone": "Europe/Paris",
        "job": JOB})
    assert status == 201, nightly
    app = TasksDashboard(ServerSource(server.url, server.token))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_schedules(app, pilot)
        row = await until(lambda: row_text(screen, nightly["id"]), pilot, what="its row")
        assert "nightly report | 0 9 * * 1-5 | Europe/Paris" in row
        assert "(in " in row and row.endswith("| - | no"), row  # next run ahead, never run
        await until(lambda: "⏎ Firings" in app.screen_text(), pilot, what="its keys shown")

        # a schedule made elsewhere arrives live (schedule.changed)
        status, hourly = server.request("POST", "api/tasks/schedules", {
            "name": "hourly sync", "cron": "0 0 1 1 *", "job": JOB})  # (never fires in a run)
        assert status == 201
        await until(lambda: row_text(screen, hourly["id"]), pilot, what="the new schedule")
        assert screen.table.get_row_index(hourly["id"]) == 0  # newest first

        screen.select(nightly["id"])
        await pilot.press("p")
        await until(lambda: server.request("GET", f"api/tasks/schedules/{nightly['id']}")[1]
                    ["paused"], pilot, what="the server says paused")
        await until(lambda: row_text(screen, nightly["id"]).endswith("| yes"), pilot,
                    what="the row says paused")
        assert "paused |" in row_text(screen, nightly["id"])

        # paused from elsewhere... and resumed: the row follows the event
        server.request("POST", f"api/tasks/schedules/{nightly['id']}/resume")
        await until(lambda: row_text(screen, nightly["id"]).endswith("| no"), pilot,
                    what="resumed live")

        await pilot.press("r")  # run now: a firing linked to the schedule
        fired = await until(lambda: server.request("GET", f"api/tasks/schedules/"
                                                          f"{nightly['id']}")[1]["last_task_id"],
                            pilot, what="a firing")
        await until(lambda: "queued" in row_text(screen, nightly["id"]), pilot,
                    what="its last status")

        loads = app.page_loads
        await pilot.press("enter")  # its firings: the task table filtered by schedule
        await until(lambda: app.schedules_screen is None and app.filters.schedule_id
                    == nightly["id"] and app.page_loads > loads and fired in app.table.tasks,
                    pilot, what="firings")
        assert list(app.table.tasks) == [fired]
        assert "firings of nightly report" in app.sub_title
        # a second firing (from the API) joins the filtered table live
        status, second = server.request("POST", f"api/tasks/schedules/{nightly['id']}/run")
        assert status == 202
        await until(lambda: second["id"] in app.table.tasks, pilot, what="the second firing")
        # the hourly schedule's firing is not one of them (its events seen and applied)
        seen = app.events_seen
        status, other = server.request("POST", f"api/tasks/schedules/{hourly['id']}/run")
        assert status == 202
        await until(lambda: app.events_seen > seen, pilot, what="the firing's events applied")
        assert other["id"] not in app.table.tasks

        await pilot.press("escape")  # back to the schedules, the filter dropped
        screen = await until(lambda: app.schedules_screen, pilot, what="schedules again")
        await until(lambda: screen.loaded and app.filters.schedule_id is None, pilot,
                    what="reloaded")
        screen.select(hourly["id"])
        await pilot.press("d")
        await until(lambda: isinstance(app.screen, AskScreen), pilot, what="the question")
        await pilot.press("y")
        await until(lambda: server.request("GET", f"api/tasks/schedules/{hourly['id']}")[0]
                    == 404, pilot, what="deleted on the server")
        await until(lambda: hourly["id"] not in screen.schedules, pilot, what="row gone")
        assert nightly["id"] in screen.schedules
        # the task keys do not reach the hidden table while the view is up
        await pilot.press("c")
        assert not isinstance(app.screen, AskScreen)


def parse_job(job: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A schedule's job read as the server reads it (its root: this folder)."""
    from jupyter_tasks.server.handlers import parse_job_body

    return parse_job_body(job, os.getcwd())


async def test_database_mode_pause_run_now_and_firings(tmp_path):
    from jupyter_tasks.manager import TaskManager
    from jupyter_tasks.scheduler import Scheduler

    db = tmp_path / "sched.db"
    async with TaskManager(db, runs_background=False, make_default=False) as other:
        scheduler = Scheduler(other)
        weekly = await scheduler.create({"name": "weekly digest", "cron": "30 7 * * 1",
                                         "timezone": "America/New_York", "job": JOB},
                                        owner="ana", parse_job=parse_job)
        app = TasksDashboard(DatabaseSource(db))
        async with app.run_test(size=SIZE) as pilot:
            # from the command palette this time
            await until(lambda: app.ready and app.page_loads > 0, pilot, what="first page")
            await palette(app, pilot, "schedules", "Schedules")
            screen = await until(lambda: app.schedules_screen and app.schedules_screen.loaded
                                 and app.schedules_screen, pilot, what="the schedules view")
            row = await until(lambda: row_text(screen, weekly.id), pilot, what="its row")
            assert "weekly digest | 30 7 * * 1 | America/New_York" in row

            await pilot.press("p")
            paused = await until(lambda: _paused(other, weekly.id), pilot,
                                 what="paused in the database")
            assert paused.next_run_at is None
            # another process's edit reaches the view through the database's events
            await scheduler.update(weekly.id, {"name": "weekly digest v2"})
            await until(lambda: "weekly digest v2" in row_text(screen, weekly.id), pilot,
                        what="renamed live")

            await palette(app, pilot, "run now", "Schedule: run now")
            fired = await until(lambda: _last_task(other, weekly.id), pilot,
                                what="a firing")
            task = await other.get(fired)
            assert task.schedule_id == weekly.id

            await pilot.press("enter")
            await until(lambda: app.filters.schedule_id == weekly.id
                        and list(app.table.tasks) == [fired], pilot, what="its firings")
            # a firing made elsewhere arrives under it
            second = await scheduler.run_now(weekly.id)
            await until(lambda: second.id in app.table.tasks, pilot, what="a live firing")
            # the counts follow the schedule filter too
            await until(lambda: app.overview.counted
                        and app.overview.total_text().strip().startswith("2"), pilot,
                        what="two firings counted")


async def test_a_schedules_name_in_the_header_shows_its_escapes(tmp_path):
    """Before: the firings' header wrote the schedule's name raw: an OSC sequence in it
    set the terminal's title and a CSI one cleared the header's colours."""
    from jupyter_tasks.manager import TaskManager
    from jupyter_tasks.scheduler import Scheduler
    from jupyter_tasks.server.handlers import parse_job_body

    db = tmp_path / "sched.db"
    async with TaskManager(db, runs_background=False, make_default=False) as other:
        named = await Scheduler(other).create(
            {"name": "\x1b]0;PWNED\x07x \x1b[31mred", "cron": "0 0 1 1 *", "job": JOB},
            owner="ana", parse_job=lambda job: parse_job_body(job, os.getcwd()))
        app = TasksDashboard(DatabaseSource(db))
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_schedules(app, pilot)
            await until(lambda: row_text(screen, named.id), pilot, what="its row")
            await pilot.press("enter")
            await until(lambda: app.filters.schedule_id == named.id and "firings of"
                        in app.sub_title, pilot, what="its firings")
            assert "\x1b" not in app.sub_title and "\x07" not in app.sub_title, app.sub_title
            assert "firings of \\x1b]0;PWNED\\x07x \\x1b[31mred" in app.sub_title


async def palette(app: TasksDashboard, pilot: Any, typed: str, title: str) -> None:
    """Run a command of the palette (ctrl+p) by typing its name."""
    from textual.command import CommandPalette

    await pilot.press("ctrl+p")
    await until(lambda: isinstance(app.screen, CommandPalette), pilot, what="the palette")
    await pilot.press(*typed)
    await until(lambda: title in app.screen_text(), pilot, what=f"{title} offered")
    await pilot.press("enter")
    await until(lambda: not isinstance(app.screen, CommandPalette), pilot, what="closed")


async def _paused(manager: Any, schedule_id: str) -> Any:
    schedule = await manager.store.get_schedule(schedule_id)
    return schedule if schedule is not None and schedule.paused else None


async def _last_task(manager: Any, schedule_id: str) -> str | None:
    schedule = await manager.store.get_schedule(schedule_id)
    return schedule.last_task_id if schedule is not None else None


async def test_run_now_answered_by_the_keys_run_says_so(tmp_path):
    # before: "fired now as <id>" for the run its job's task_key already had queued
    from jupyter_tasks.manager import TaskManager
    from jupyter_tasks.scheduler import Scheduler

    db = tmp_path / "sched.db"
    async with TaskManager(db, runs_background=False, make_default=False) as other:
        scheduler = Scheduler(other)
        keyed = await scheduler.create({"name": "keyed", "cron": "@daily",
                                        "job": {**JOB, "task_key": "one-at-a-time"}},
                                       owner="ana", parse_job=parse_job)
        queued = await scheduler.run_now(keyed.id)
        app = TasksDashboard(DatabaseSource(db))
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_schedules(app, pilot)
            await until(lambda: row_text(screen, keyed.id), pilot, what="its row")
            await pilot.press("r")
            said = await until(lambda: [n for n in app.notices if "keyed" in n], pilot,
                               what="what run now did")
            assert len(said) == 1 and said[0].startswith("Not run now: keyed"), said
            assert said[0].endswith(f"has a run of its task key queued already, "
                                    f"…{queued.id[-10:]}"), said
        assert await other.store.count_tasks() == 1
