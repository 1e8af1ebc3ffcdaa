"""The dashboard reading the database directly: 100,000 tasks, rendered screens, event floods."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from jupyter_tasks_dashboard.app import TasksDashboard, build_parser, describe, main
from jupyter_tasks_dashboard.sources import DatabaseSource

from jupyter_tasks import dbfile

from .conftest import beside_a_writer, build_history, until

HISTORY = 100_000
SIZE = (180, 50)


@pytest.fixture(scope="module")
def big_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import asyncio

    path = tmp_path_factory.mktemp("dash-db") / "tasks.db"
    seconds = asyncio.run(build_history(path, HISTORY))
    print(f"\nbuilt {HISTORY:,} tasks in {seconds:.1f}s")
    return path


async def test_starts_on_100k_tasks_and_renders_a_page(big_db, capsys):
    t0 = time.perf_counter()
    app = TasksDashboard(DatabaseSource(big_db))
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.paints, pilot, what="first page on screen")
        first = app.paints[0] - t0
        table = app.table
        assert table.row_count == 50  # one page, never the whole history
        newest = next(iter(table.tasks.values()))
        assert newest["label"] == f"history {HISTORY - 1}" and newest["status"] == "running"
        await until(lambda: app.overview.total_tasks == HISTORY, pilot, what="stats")
        # the rendered screen: columns, rows, queues, totals, footer keys
        wanted = ("id", "label", "status", "progress", "owner", "origin", "started",
                  "duration", f"history {HISTORY - 1}", "nb/", "default", "gpu",
                  "100,000 tasks", "Cancel", "Rerun", "Fork", "Answer", "Delete", "Copy id")
        await until(lambda: all(text in app.screen_text() for text in wanted), pilot,
                    what="every column, queue and key on screen")
        def gpu_line() -> str:
            return next((line for line in app.screen_text().splitlines() if " gpu " in line), "")

        # the queue's name shows before its counts arrive from the (deferred) stats query
        await until(lambda: "queued" in gpu_line(), pilot, what="gpu queue counts")
        queue_line = gpu_line()
        assert "queued 0" in queue_line and "running 2" in queue_line, queue_line
        assert "page 1 · 100,000 tasks · running first" in app.sub_title

        # paging: key press to the next page on screen
        timings = []
        for page in range(1, 6):
            before = len(app.paints)
            start = time.perf_counter()
            await pilot.press("n")
            await until(lambda b=before: len(app.paints) > b, pilot, what=f"page {page + 1}")
            timings.append(app.paints[-1] - start)
            assert table.page_index == page
        labels = [t["label"] for t in table.tasks.values()]
        assert labels[0] == f"history {HISTORY - 1 - 5 * 50}"
        await pilot.press("p")
        await until(lambda: table.page_index == 4, pilot, what="previous page")
        assert next(iter(table.tasks.values()))["label"] == f"history {HISTORY - 1 - 4 * 50}"

        # filters run in the database: failed tasks of owner "bo" only
        app.apply_filters(app.filters.__class__(statuses=("failed",), owner="bo"))
        await until(lambda: table.page_index == 0 and table.tasks and all(
            t["status"] == "failed" and t["owner"] == "bo" for t in table.tasks.values()),
            pilot, what="filtered page")
        await until(lambda: app.detail.task_id in table.tasks, pilot, what="details")
        assert "ValueError" in str(app.detail.query_one("#error").render())
    with capsys.disabled():
        print(f"\n100k tasks: first table render {first * 1000:.0f} ms after construction; "
              f"paging key-to-render {', '.join(f'{t * 1000:.0f}' for t in timings)} ms")


async def test_a_flood_of_progress_events_is_coalesced(big_db):
    app = TasksDashboard(DatabaseSource(big_db))
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.paints, pilot, what="first page")
        running = [t for t in app.table.tasks.values() if t["status"] == "running"]
        assert len(running) == 3
        flushes = app.flushes
        # 30,000 progress events land at once (a runaway task's worth)
        app.queue_events([{"id": n, "type": "task.progress", "task_id": task["id"], "ts": None,
                           "task": {**task, "progress": {"current": n + 1, "total": 10_000}}}
                          for n in range(10_000) for task in running])
        t0 = time.perf_counter()
        await until(lambda: not app.pending_events, pilot, what="the flood applied")
        applied = time.perf_counter() - t0
        assert app.flushes - flushes <= 2
        for task in running:
            assert app.table.cell_text(task["id"], "progress").endswith("100%")
        # the UI still answers keys right away
        before = app.table.cursor_row
        await pilot.press("down")
        assert app.table.cursor_row == before + 1
        print(f"\n30,000 events applied in {applied * 1000:.0f} ms")


async def test_live_updates_in_database_mode(tmp_path):
    """Another process's writes reach the table by tailing the events table."""
    db = tmp_path / "live.db"
    async with beside_a_writer(db, SIZE) as (app, writer, pilot):
        task = await writer.submit_spec({"command": ["true"]}, mode="job", label="from afar",
                                        queue="parked")
        await until(lambda: task.id in app.table.tasks, pilot, what="the new row")
        app.table.select(task.id)
        await until(lambda: app.detail.task_id == task.id, pilot, what="details")
        await pilot.press("c", "y")
        await until(lambda: app.table.tasks[task.id]["status"] == "cancelled", pilot,
                    what="cancelled through the database")
        assert (await writer.get(task.id)).status == "cancelled"
        await pilot.press("d", "y")
        await until(lambda: task.id not in app.table.tasks, pilot, what="deleted")
        assert "no tasks" not in app.screen_text()


def run_elsewhere(code: str, *args: str) -> str:
    """Python ``code`` in a process of its own, which exits (closing its connection): stdout."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


SUBMIT_ELSEWHERE = """
import asyncio, sys
from jupyter_tasks.manager import TaskManager
async def main():
    async with TaskManager(sys.argv[1], runs_background=False, make_default=False) as m:
        task = await m.submit_spec({"command": ["true"]}, mode="job", label=sys.argv[2],
                                   queue="parked")
        print(task.id)
asyncio.run(main())
"""
STATUS_ELSEWHERE = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
print(conn.execute("SELECT status FROM tasks WHERE id = ?", (sys.argv[2],)).fetchone()[0])
"""


async def test_other_processes_coming_and_going_reach_the_dashboard_and_back(tmp_path):
    """With its counts shown (a second store of its own), the dashboard still sees what
    processes that come and go write, and they see what it writes (a cancel)."""
    db = tmp_path / "comings.db"
    await build_history(db, 500)
    app = TasksDashboard(DatabaseSource(db))
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.overview.total_tasks == 500, pilot, what="the counts")
        first = run_elsewhere(SUBMIT_ELSEWHERE, str(db), "first from afar")
        await until(lambda: first in app.table.tasks, pilot, what="the first new row")
        # the process that submitted has exited: before, the dashboard's counts store
        # had dropped its locks, that process deleted the WAL on its way out, and the
        # dashboard saw nothing more and wrote where nobody looked
        second = run_elsewhere(SUBMIT_ELSEWHERE, str(db), "second from afar")
        await until(lambda: second in app.table.tasks, pilot, what="the second new row")
        app.table.select(second)
        await until(lambda: app.detail.task_id == second, pilot, what="details")
        await pilot.press("c", "y")
        await until(lambda: app.table.tasks[second]["status"] == "cancelled", pilot,
                    what="cancelled on screen")
        assert run_elsewhere(STATUS_ELSEWHERE, str(db), second) == "cancelled"


async def test_each_queue_shows_the_slots_of_the_live_workers_serving_it(tmp_path):
    """The queue row says how many of its jobs can run at once: every live worker's slots
    for that queue, whichever process the worker is (before, always "workers ?")."""
    from jupyter_tasks.manager import TaskManager

    db = tmp_path / "slots.db"
    app = TasksDashboard(DatabaseSource(db))
    async with TaskManager(db, queues={"default": 2, "gpu": 1}, runs_background=False,
                           make_default=False) as first, \
            TaskManager(db, queues={"default": 3}, runs_background=False, make_default=False), \
            app.run_test(size=SIZE) as pilot:
        def queue_line(name: str) -> str:
            return next((line for line in app.screen_text().splitlines()
                         if f" {name} " in f" {line} " and "queued" in line), "")

        # a job for a queue nobody serves: its row says nothing will run it
        await first.submit_spec({"command": ["true"]}, mode="job", queue="parked")
        await until(lambda: "slots 5" in queue_line("default")
                    and "slots 1" in queue_line("gpu") and "slots 0" in queue_line("parked"),
                    pilot, what="the slots of both workers in the queue rows")
        # a queue known only from a recent ending (nothing queued or running there, no
        # worker serves it): before, "slots ?", as if its capacity were unknown
        ended = await first.submit_spec({"command": ["true"]}, mode="job", queue="gone")
        await first.cancel(ended.id)
        await until(lambda: "queued 0" in queue_line("gone")
                    and "ended/min 1" in queue_line("gone"), pilot,
                    what="the queue row of the cancelled job, counted again")
        assert "slots 0" in queue_line("gone"), queue_line("gone")


async def test_a_worker_killed_with_minus_9_is_no_live_worker(tmp_path):
    """A worker killed with -9 keeps its row until a reaper marks it (none may run beside
    a dashboard on the file): before, it was counted a live worker, its slots too."""
    import socket
    import subprocess
    import sys
    import time

    import psutil

    from jupyter_tasks.manager import TaskManager
    from jupyter_tasks.models import WorkerInfo

    db = tmp_path / "dead.db"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(gone.pid).create_time()
    gone.wait(30)
    async with TaskManager(db, runs_background=False, make_default=False,
                           as_worker=False) as writer:
        now = time.time()
        await writer.store.register_worker(WorkerInfo(
            id="worker-killed", kind="worker", pid=gone.pid, host=socket.gethostname(),
            started_at=now, heartbeat_at=now, pid_started_at=started, queues=["default"],
            slots={"default": 4}, tasks=[]))
        await writer.submit_spec({"command": ["true"]}, mode="job")
    source = DatabaseSource(db)
    await source.start()
    try:
        stats = await source.stats()
    finally:
        await source.close()
    assert [w["id"] for w in stats["workers"]] == [], stats["workers"]
    assert stats["queues"]["default"]["max_workers"] == 0, stats["queues"]


# text that Textual's markup would read as tags, an action, or an escape
HOSTILE = "C:\\runs\\ [/b] [@click=app.quit]draft[/] \\[x"


async def test_text_from_tasks_is_shown_as_written_never_read_as_markup(tmp_path):
    """Labels, owners, params, errors and questions are shown verbatim, in the details and
    in notifications (before: a label with ``[/b]`` in a notification ended the dashboard
    with a MarkupError, and a trailing backslash ate the details' closing tag)."""
    import os

    from jupyter_tasks_dashboard.confirm import ConfirmScreen
    from jupyter_tasks_dashboard.fork import ForkScreen

    from jupyter_tasks.manager import TaskManager
    from jupyter_tasks.models import Task, new_task_id
    from jupyter_tasks.scheduler import Scheduler
    from jupyter_tasks.server.handlers import parse_job_body

    db = tmp_path / "hostile.db"
    now = time.time()
    ended = Task(id=new_task_id(), kind="function", mode="job", status="failed", name="n",
                 label=HOSTILE, owner=HOSTILE, params={"pattern": HOSTILE},
                 error={"type": "E[/]", "message": HOSTILE, "traceback": HOSTILE},
                 created_at=now, started_at=now, finished_at=now + 1, updated_at=now + 1)
    asking = Task(id=new_task_id(), kind="function", mode="job", status="running", name="n",
                  label="asks", worker_id="elsewhere", created_at=now, started_at=now,
                  updated_at=now, confirmation={"prompt": HOSTILE, "choices": [HOSTILE, "no"],
                                                "answer": None})
    async with TaskManager(db, runs_background=False, make_default=False) as writer:
        await writer.store.create_tasks([ended, asking])
        await Scheduler(writer).create(
            {"name": HOSTILE, "cron": "0 7 * * *", "job": {"command": ["true"]}}, owner="me",
            parse_job=lambda job: parse_job_body(job, os.getcwd()))
    app = TasksDashboard(DatabaseSource(db))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(lambda: app.ready and ended.id in app.table.tasks, pilot, what="rows")
        app.table.select(ended.id)
        await until(lambda: app.detail.task_id == ended.id, pilot, what="details")
        summary = str(app.detail.summary.render())
        assert summary.splitlines()[0] == f"{HOSTILE}  {ended.id}", summary
        assert f"owner {HOSTILE} ·" in summary, summary
        error = str(app.detail.error.render())
        assert error == f"E[/]: {HOSTILE}\n{HOSTILE}", error
        assert HOSTILE.replace("\\", "\\\\") in str(app.detail.params.render())  # as JSON
        await pilot.press("c")  # "... has already ended": a notification naming the label
        await until(lambda: any("already ended" in n for n in app.notices), pilot,
                    what="the notification")
        await until(lambda: HOSTILE in app.screen_text(), pilot, what="the toast on screen")
        assert app.is_running
        app.table.select(asking.id)
        await until(lambda: app.detail.task_id == asking.id, pilot, what="the question")
        question = str(app.detail.question.render())
        assert f"asks  {HOSTILE}  ({HOSTILE} / no)" in question, question
        await pilot.press("a")  # the answer dialog: its title, prompt and choice buttons
        await until(lambda: isinstance(app.screen, ConfirmScreen), pilot, what="the dialog")
        await until(lambda: app.screen_text().count(HOSTILE) >= 2, pilot, what="prompt, choice")
        await pilot.press("escape")
        app.table.select(ended.id)
        await until(lambda: app.detail.task_id == ended.id, pilot, what="details again")
        await pilot.press("f")  # the fork dialog's title names the label
        await until(lambda: isinstance(app.screen, ForkScreen), pilot, what="the fork dialog")
        await until(lambda: f"Fork {HOSTILE}" in app.screen_text(), pilot,
                    what="the fork dialog's title")
        await pilot.press("escape")
        await pilot.press("t")  # the schedules view: a schedule with that name
        await until(lambda: app.schedules_screen and app.schedules_screen.loaded
                    and HOSTILE in app.screen_text(), pilot, what="the schedule's row")
        assert app.is_running


async def test_notifications_name_a_task_in_one_short_line_without_its_controls(tmp_path):
    """A notification names a task by its label cut to a line, its controls escaped as
    everywhere else (before: a 3,000-character label made an 18-line toast, and a
    label's escape sequence went to the terminal as it was)."""
    from jupyter_tasks_dashboard.confirm import ConfirmScreen
    from jupyter_tasks_dashboard.fork import ForkScreen

    from jupyter_tasks.manager import TaskManager
    from jupyter_tasks.models import Task, new_task_id

    db = tmp_path / "long.db"
    now = time.time()
    label = "\x1b]0;retitled\x07" + "L" * 3000
    ended = Task(id=new_task_id(), kind="function", mode="job", status="failed", name="n",
                 label=label, created_at=now, started_at=now, finished_at=now + 1,
                 updated_at=now + 1)
    asking = Task(id=new_task_id(), kind="function", mode="job", status="running", name="n",
                  label="asks", worker_id="elsewhere", created_at=now, started_at=now,
                  updated_at=now, confirmation={"prompt": "go?", "choices": ["wipe\x1b[2J", "no"],
                                                "answer": None})
    async with TaskManager(db, runs_background=False, make_default=False) as writer:
        await writer.store.create_tasks([ended, asking])
    app = TasksDashboard(DatabaseSource(db))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(lambda: app.ready and ended.id in app.table.tasks, pilot, what="the row")
        app.table.select(ended.id)
        await until(lambda: app.detail.task_id == ended.id, pilot, what="details")
        await pilot.press("c")
        notice = await until(lambda: next((n for n in app.notices if "already ended" in n),
                                          None), pilot, what="the notification")
        assert "\x1b" not in notice and "\x07" not in notice, notice
        assert notice.startswith("\\x1b]0;retitled\\x07LLL"), notice
        assert len(notice) < 160 and "…" in notice and ended.id[-10:] in notice, notice
        await pilot.press("f")  # the fork dialog's title names it too, escaped
        await until(lambda: isinstance(app.screen, ForkScreen), pilot, what="the fork dialog")
        await until(lambda: "Fork \\x1b]0;retitled\\x07LLL" in app.screen_text(), pilot,
                    what="the escaped label in the fork dialog's title")
        assert "\x1b" not in app.screen_text()
        await pilot.press("escape")
        app.table.select(asking.id)
        await until(lambda: app.detail.task_id == asking.id, pilot, what="the question")
        await pilot.press("a")  # the answer dialog's choice buttons, escaped
        await until(lambda: isinstance(app.screen, ConfirmScreen), pilot, what="the dialog")
        await until(lambda: "wipe\\x1b[2J" in app.screen_text(), pilot, what="the choice")
        assert "\x1b" not in app.screen_text()


async def test_a_closed_database_source_refuses_with_a_message_not_a_crash(tmp_path):
    """A worker that reaches the source after quitting closed it gets the source's own
    refusal, which every worker of the app handles (before: AttributeError on None, and
    the exit raised WorkerFailed; seen once in CI, a count started while quitting)."""
    from jupyter_tasks_dashboard.sources import ActionError, Filters

    from jupyter_tasks.manager import TaskManager

    db = tmp_path / "closed.db"
    async with TaskManager(db, runs_background=False, make_default=False) as writer:
        task = await writer.submit_spec({"command": ["true"]}, mode="job", queue="parked")
    source = DatabaseSource(db)
    await source.start()
    assert (await source.count(Filters()))["statuses"]["queued"] == 1
    await source.close()
    for call in (source.count(Filters()), source.stats(), source.get_task(task.id),
                 source.list_tasks(Filters(), None, 10), source.cancel(task.id)):
        with pytest.raises(ActionError, match="closed"):
            await call


def test_command_line_rejects_bad_options(capsys):
    assert main(["--page-size", "0"]) == 2
    with pytest.raises(SystemExit):
        main(["--no-such-option"])
    # an unset `--db "$DB"`: before, taken as no --db (a server, or the default database)
    with pytest.raises(SystemExit):
        main(["--db", ""])
    assert "argument --db: names no file (an empty path)" in capsys.readouterr().err


async def test_a_long_progress_message_is_one_status_line_in_the_details(tmp_path):
    """A progress message may hold 1,000 characters (the engine cuts it there); the details
    show its first 200 on the status line, not twenty wrapped lines above the rest."""
    from jupyter_tasks.manager import TaskManager
    from jupyter_tasks.models import Task, new_task_id

    db = tmp_path / "progress.db"
    now = time.time()
    message = "step 3: " + "x" * 992
    running = Task(id=new_task_id(), kind="function", mode="job", status="running", name="n",
                   label="long message", worker_id="elsewhere", created_at=now,
                   started_at=now, updated_at=now,
                   progress={"current": 3, "total": 10, "message": message})
    async with TaskManager(db, runs_background=False, make_default=False) as writer:
        await writer.store.create_tasks([running])
    app = TasksDashboard(DatabaseSource(db))
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.ready and running.id in app.table.tasks, pilot, what="rows")
        app.table.select(running.id)
        await until(lambda: app.detail.task_id == running.id, pilot, what="details")
        status_line = str(app.detail.summary.render()).splitlines()[1]
        assert status_line.endswith(message[:199] + "…"), status_line
        assert "x" * 200 not in status_line


ESCAPES = "lbl \x1b[2J\x1b]0;OWNED-TITLE\x07 end"


async def test_terminal_escapes_in_a_tasks_text_never_reach_the_terminal(tmp_path):
    """A label, a message, a traceback, a question, a log and a schedule's name holding
    escape sequences are shown as text (before: the log set the terminal's title and
    ``\\x1b[2J`` wiped the screen at every repaint, the dashboard unusable)."""
    import os

    from jupyter_tasks.manager import TaskManager
    from jupyter_tasks.models import Task, new_task_id
    from jupyter_tasks.scheduler import Scheduler
    from jupyter_tasks.server.handlers import parse_job_body

    db = tmp_path / "escapes.db"
    now = time.time()
    # the retry's reason too (before: raw in the attempt line, which cleared the screen
    # and set the title at every repaint); a message's lines stay lines (before: \x0a)
    failed = Task(id=new_task_id(), kind="function", mode="job", status="failed", name="n",
                  label=ESCAPES, error={"type": "E", "message": f"{ESCAPES}\nsecond line",
                                        "traceback": ESCAPES},
                  attempts=3, max_retries=2, retry_reason=f"E: {ESCAPES}",
                  created_at=now, started_at=now, finished_at=now + 1, updated_at=now + 1)
    asking = Task(id=new_task_id(), kind="function", mode="job", status="running", name="n",
                  label="asks", worker_id="elsewhere", created_at=now, started_at=now,
                  updated_at=now, confirmation={"prompt": f"{ESCAPES}\nproceed?",
                                                "choices": ["yes"], "answer": None})
    async with TaskManager(db, runs_background=False, make_default=False) as writer:
        await writer.store.create_tasks([failed, asking])
        await writer.store.append_logs(failed.id, [
            (now, "stdout", f"\x1b[31mred\x1b[0m {ESCAPES}\n"), (now, "stderr", "\x07bell\n")])
        await Scheduler(writer).create(
            {"name": ESCAPES, "cron": "0 7 * * *", "job": {"command": ["true"]}}, owner="me",
            parse_job=lambda job: parse_job_body(job, os.getcwd()))
    app = TasksDashboard(DatabaseSource(db))
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.ready and failed.id in app.table.tasks, pilot, what="rows")
        app.table.select(failed.id)
        await until(lambda: app.detail.task_id == failed.id and len(app.detail.log_view.lines)
                    == 2, pilot, what="the details and the log")
        shown = [str(app.detail.summary.render()), str(app.detail.error.render()),
                 *app.detail.log_view.lines, app.screen_text()]
        assert not any("\x1b" in text or "\x07" in text for text in shown), shown
        assert "lbl \\x1b[2J\\x1b]0;OWNED-TITLE\\x07 end" in shown[0]
        assert "(retried: E: lbl \\x1b[2J" in shown[0], shown[0]
        assert "\\x0a" not in shown[1] and "\nsecond line" in shown[1], shown[1]
        assert app.detail.log_view.lines[0] == "red lbl  end"  # sequences dropped
        assert app.detail.log_view.lines[1] == "! \\x07bell"
        app.table.select(asking.id)
        await until(lambda: app.detail.task_id == asking.id, pilot, what="the question")
        asked = str(app.detail.question.render())
        assert "\x1b" not in asked and "\\x0a" not in asked and "\nproceed?" in asked, asked
        await pilot.press("t")
        await until(lambda: app.schedules_screen and app.schedules_screen.loaded
                    and "OWNED-TITLE" in app.screen_text(), pilot, what="the schedule")
        assert "\x1b" not in app.screen_text()
        assert app.is_running


async def test_a_database_moved_away_is_refused_with_a_message_not_a_crash(tmp_path):
    """Before: the counts (their read-only store, opened at the first count) and the detail
    pane's reads went to the store directly, and a file moved away before the first count
    ended the dashboard with a StoreUnavailable (or "disk I/O error") traceback."""
    from jupyter_tasks_dashboard.sources import ActionError, Filters

    from jupyter_tasks.manager import TaskManager

    db = tmp_path / "moved.db"
    async with TaskManager(db, runs_background=False, make_default=False) as writer:
        task = await writer.submit_spec({"command": ["true"]}, mode="job", queue="parked")
        await writer.store.append_logs(task.id, [(time.time(), "stdout", "hi\n")])
    source = DatabaseSource(db)
    await source.start()
    try:
        db.rename(tmp_path / "elsewhere.db")
        # the page too (before: read on from the moved file, as if it were current)
        for call in (source.count(Filters()), source.stats(),
                     source.list_tasks(Filters(), None, 10)):
            with pytest.raises(ActionError, match="deleted or moved"):
                await call
        # and every read after that says so too, never a traceback (before: the open
        # connections read on from the file where it went, as if it were still here)
        for call in (source.logs(task.id), source.children(task.id),
                     source.artifacts(task.id)):
            with pytest.raises(ActionError, match="deleted or moved"):
                await call
    finally:
        await source.close()


async def test_a_database_deleted_after_the_first_counts_is_said_once(tmp_path):
    """Before: the counts' own read-only store read on from the deleted file, so the
    totals and queue rows showed its last state as live, with nothing to say so."""
    from jupyter_tasks.manager import TaskManager

    db = tmp_path / "deleted.db"
    async with TaskManager(db, runs_background=False, make_default=False) as writer:
        await writer.submit_spec({"command": ["true"]}, mode="job", queue="parked")
    app = TasksDashboard(DatabaseSource(db))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(lambda: app.ready and app.overview.counted, pilot, what="the counts")
        for path in (db, *dbfile.sidecars(db)):
            path.unlink(missing_ok=True)
        polls = 0
        count = app.source.count

        async def counting(filters):
            nonlocal polls
            polls += 1
            return await count(filters)

        app.source.count = counting
        await until(lambda: any("deleted or moved" in n for n in app.notices), pilot,
                    timeout=30, what="the notification")
        start = polls
        # the next polls meet the same failure: it is not said again
        await until(lambda: polls >= start + 2, pilot, timeout=30, what="two more polls")
        assert sum("Counting tasks failed" in n for n in app.notices) == 1, list(app.notices)
        # and the totals line says its counts are from before, once the toast has gone
        totals = str(app.overview.totals.render())
        assert "not counted since: the task database" in totals and "deleted" in totals
        # first: at 120 columns the reason at the end was cut off (before: nothing there
        # said the counts were old)
        assert totals.startswith("counts from before  ·  "), totals
        assert app.is_running


async def test_a_fork_with_parameters_its_task_refuses_is_refused_at_once(
        tmp_path, monkeypatch):
    """The dashboard imports the task modules the server and the CLI do (here from
    $JUPYTER_TASKS_MODULES). Before: it imported none, so a fork with a parameter of the
    wrong type was written as a job ("Fork ... started") that failed when it ran."""
    from jupyter_tasks_dashboard.sources import ActionError, Filters

    from jupyter_tasks.manager import TaskManager
    from jupyter_tasks.models import Task, new_task_id

    module = tmp_path / "dash_fork_check_tasks.py"
    module.write_text("from jupyter_tasks import task\n\n"
                      "@task('dash_fork_checked', mode='job')\n"
                      "def dash_fork_checked(secs: float) -> float:\n"
                      "    return secs\n")
    monkeypatch.setenv("JUPYTER_TASKS_MODULES", str(module))
    db = tmp_path / "fork.db"
    now = time.time()
    # written as another process's submit would be: this test process never imported it
    done = Task(id=new_task_id(), kind="function", mode="job", status="succeeded",
                name="dash_fork_checked", label="checked", params={"secs": 1.0},
                spec={"name": "dash_fork_checked", "params": {"secs": 1.0}},
                created_at=now, started_at=now, finished_at=now, updated_at=now)
    async with TaskManager(db, runs_background=False, make_default=False) as writer:
        await writer.store.create_tasks([done])
    source = DatabaseSource(db)
    await source.start()
    try:
        with pytest.raises(ActionError, match="secs"):
            await source.fork(done.id, {"params": {"secs": "abc"}})
        forked = await source.fork(done.id, {"params": {"secs": 2.5}})
        assert forked["params"] == {"secs": 2.5}
        assert (await source.count(Filters()))["statuses"]["queued"] == 1  # the good one only
    finally:
        await source.close()


async def test_events_flushed_while_the_app_shuts_down_are_dropped_quietly(tmp_path):
    """The flush timer may fire once the screens are gone: before, its events raised
    ScreenStackError ("No screens on stack"), which a run ended with."""
    from jupyter_tasks.manager import TaskManager

    db = tmp_path / "closing.db"
    async with TaskManager(db, runs_background=False, make_default=False) as writer:
        task = await writer.submit_spec({"command": ["true"]}, mode="job", queue="parked")
    app = TasksDashboard(DatabaseSource(db))
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.ready and task.id in app.table.tasks, pilot, what="the row")
    assert not app.screen_stack  # shut down: what a late timer finds
    app.queue_event({"type": "task.cancelled", "task_id": task.id,
                     "task": {**task.to_json(), "status": "cancelled"}})
    app.flush_events()


async def test_the_queue_rows_keep_their_slots_under_a_filter(tmp_path):
    """Before: "slots 0" for a served queue (and "slots ?" for others) once a filter was
    typed: the filtered count left out the workers' capacity."""
    from jupyter_tasks_dashboard.sources import Filters

    from jupyter_tasks.manager import TaskManager

    db = tmp_path / "filtered.db"
    async with TaskManager(db, queues={"default": 4}, runs_background=False,
                           make_default=False) as worker:
        await worker.submit_spec({"command": ["true"]}, mode="job", queue="parked")
        source = DatabaseSource(db)
        await source.start()
        try:
            counts = await source.count(Filters(statuses=("queued",)))
        finally:
            await source.close()
    assert counts["queues"]["default"]["max_workers"] == 4, counts
    assert counts["queues"]["parked"]["max_workers"] == 0, counts


@pytest.mark.parametrize("size", [(120, 40), (100, 30)])
async def test_a_queues_counts_are_whole_beside_its_sparkline(tmp_path, size):
    """Before: the sparkline's fixed 32 cells cut the counts' end ("timeout▁▁▁")."""
    from jupyter_tasks.manager import TaskManager
    from jupyter_tasks.models import Task, new_task_id

    db = tmp_path / "counts.db"
    now = time.time()
    ended = [Task(id=new_task_id(), kind="subprocess", mode="job", status=status,
                  created_at=now - 5, started_at=now - 4, finished_at=now - 1,
                  updated_at=now - 1) for status in ("failed", "timeout", "succeeded")]
    async with TaskManager(db, runs_background=False, make_default=False) as writer:
        await writer.store.create_tasks(ended)
    app = TasksDashboard(DatabaseSource(db))
    async with app.run_test(size=size) as pilot:
        def queue_row() -> str:
            return next((line for line in app.screen_text().splitlines() if "slots" in line), "")

        await until(lambda: "last 5 min" in queue_row(), pilot, what="the queue's counts")
        assert "failed 1  timeout 1  " in queue_row(), queue_row()


async def test_the_details_follow_the_highlighted_row_while_pages_are_re_read(
        tmp_path, monkeypatch):
    """Another process writing steadily re-reads the page (every flush, 0.1 s) faster than
    the details wait for the cursor to rest: before, each re-read pushed the wait back,
    and the details showed a task no longer highlighted for as long as writes went on."""
    import asyncio

    from jupyter_tasks_dashboard import tasks_app

    from jupyter_tasks.manager import TaskManager

    # the re-reads come from the test (as writes or ctrl+r bring them), at a pace the
    # wait is certain to exceed, whatever the machine's speed
    monkeypatch.setattr(tasks_app, "DETAIL_DELAY", 4 * tasks_app.FLUSH_SECONDS)
    db = tmp_path / "churn.db"
    app = TasksDashboard(DatabaseSource(db))
    async with TaskManager(db, worker_kind="test", runs_background=False,
                           make_default=False) as writer:
        for i in range(20):
            await writer.submit_spec({"command": ["true"]}, mode="job", label=f"a{i:03d}",
                                     queue="parked")
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.ready and app.page_loads, pilot, what="started")
        stop = asyncio.Event()

        async def re_read() -> None:
            while not stop.is_set():
                loads = app.page_loads
                app.action_reload()
                await until(lambda loads=loads: app.page_loads > loads, pilot,
                            what="a page re-read")

        re_reading = asyncio.ensure_future(re_read())
        try:
            app.table.move_cursor(row=3)  # as the arrow keys move it
            await pilot.pause()
            target = app.table.selected_id
            await until(lambda: app.detail.task_id == target, pilot, timeout=30,
                        what="the details of the highlighted row while pages are re-read")
        finally:
            stop.set()
            await re_reading


async def test_the_details_of_a_running_task_count_its_time_on(tmp_path):
    """The table's duration counted on each second while the details' "ran" stayed where
    the last event left it (a task reporting no progress sends none)."""
    import re
    import time

    from jupyter_tasks.models import new_task_id
    from jupyter_tasks.store import Store

    db = tmp_path / "ran.db"
    task_id = new_task_id()
    async with await Store.open(db) as store:
        now = time.time()
        await store.insert_task_rows([{
            "id": task_id, "kind": "command", "mode": "job", "status": "running",
            "label": "quiet runner", "spec": {"command": ["sleep", "600"]},
            "queue": "parked", "worker_id": "elsewhere", "attempts": 1,
            "created_at": now - 5, "updated_at": now - 5, "started_at": now - 5}])
    app = TasksDashboard(DatabaseSource(db))
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.ready and task_id in app.table.tasks, pilot, what="the row")
        app.table.select(task_id)
        await until(lambda: app.detail.task_id == task_id and app.detail.built, pilot,
                    what="the details")

        def ran() -> str:
            found = re.search(r"· ran (\S+ ?\S*)", app.screen_text())
            return found.group(1) if found else ""

        first = await until(ran, pilot, what="the ran line")
        # one task is "1 task" (it read "1 tasks")
        await until(lambda: "1 task " in app.screen_text(), pilot, what="the count")
        assert "1 tasks" not in app.screen_text() and "1 tasks" not in str(app.sub_title)
        await until(lambda: ran() not in ("", first), pilot, timeout=30,
                    what=f"the ran line counting on from {first}")


async def test_a_database_replaced_under_the_dashboard_is_said_not_read_on(tmp_path):
    """Another file put where the database was (a recovery moved in place): before, the
    pages went on showing the old file's tasks, ctrl+r too, with nothing to say so."""
    from jupyter_tasks_dashboard.sources import ActionError, Filters

    from jupyter_tasks.manager import TaskManager

    db = tmp_path / "replaced.db"
    async with TaskManager(db, runs_background=False, make_default=False) as writer:
        await writer.submit_spec({"command": ["true"]}, mode="job", queue="parked",
                                 label="old file's task")
    source = DatabaseSource(db)
    await source.start()
    try:
        assert [t["label"] for t in (await source.list_tasks(Filters(), None, 10)).tasks] \
            == ["old file's task"]
        fresh = tmp_path / "fresh.db"
        async with TaskManager(fresh, runs_background=False, make_default=False):
            pass  # a new, empty database, moved to the same path
        fresh.rename(db)
        with pytest.raises(ActionError, match="replaced"):
            await source.list_tasks(Filters(), None, 10)
    finally:
        await source.close()


async def test_after_a_delete_the_cursor_stays_where_the_row_was(tmp_path):
    """Before: the cursor jumped to the first row, so a following 'y' copied (and 'c'
    would cancel) a task far from where the user looked."""
    from jupyter_tasks.manager import TaskManager

    db = tmp_path / "delete.db"
    async with TaskManager(db, runs_background=False, make_default=False) as writer:
        made = [await writer.submit_spec({"command": ["true"]}, mode="job", queue="parked",
                                         label=f"row {i}") for i in range(8)]
        for task in made:
            await writer.cancel(task.id)  # ended: deletable
    app = TasksDashboard(DatabaseSource(db))
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.ready and len(app.table.row_ids) == 8, pilot, what="rows")
        app.table.move_cursor(row=4)
        await pilot.pause()
        doomed = app.table.selected_id
        below = app.table.row_ids[5]
        await pilot.press("d", "y")
        await until(lambda: doomed not in app.table.tasks, pilot, what="deleted")
        assert app.table.cursor_row == 4
        assert app.table.selected_id == below


async def test_ctrl_r_starts_a_dashboard_whose_database_came_after_it(tmp_path):
    """Started before its database existed: before, ctrl+r answered "… is closed" and the
    counts read "counting…" until the dashboard was restarted."""
    from jupyter_tasks.manager import TaskManager

    db = tmp_path / "later.db"
    app = TasksDashboard(DatabaseSource(db))
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: "not connected" in str(app.sub_title), pilot,
                    what="the start refused (no database yet)")
        async with TaskManager(db, runs_background=False, make_default=False) as writer:
            task = await writer.submit_spec({"command": ["true"]}, mode="job",
                                            queue="parked", label="came later")
        await pilot.press("ctrl+r")
        await until(lambda: app.ready and task.id in app.table.tasks, pilot,
                    what="the database read after ctrl+r")
        await until(lambda: "1 task" in app.screen_text(), pilot, what="the counts")


def test_a_db_written_with_a_tilde_is_the_file_in_the_home_folder(monkeypatch, tmp_path):
    # `--db=~/tasks.db`: the shell leaves that tilde alone. Before: the dashboard looked
    # for a folder named `~` in the current folder, as `jupyter tasks --db` once did
    monkeypatch.setenv("HOME", str(tmp_path))
    args = build_parser().parse_args(["--db=~/tasks.db"])
    assert args.db == str(tmp_path / "tasks.db")
    assert describe(args) == f"database {tmp_path / 'tasks.db'}"


async def test_home_goes_to_the_first_row_as_end_goes_to_the_last(tmp_path):
    """Before: Home on the first page left the cursor where it was, and the next action
    (a cancel, a delete) went to that task, not to the top row the reader looked at."""
    from jupyter_tasks.manager import TaskManager

    db = tmp_path / "home.db"
    async with TaskManager(db, worker_kind="test", runs_background=False,
                           make_default=False) as writer:
        for i in range(8):
            await writer.submit_spec({"command": ["true"]}, mode="job", label=f"h{i}",
                                     queue="parked")
    app = TasksDashboard(DatabaseSource(db))
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.ready and app.table.row_count == 8, pilot, what="rows")
        await pilot.press("end")
        await until(lambda: app.table.cursor_row == 7, pilot, what="the last row")
        await pilot.press("home")
        await until(lambda: app.table.cursor_row == 0, pilot, what="the first row")
        top = app.table.row_ids[0]
        await until(lambda: app.detail.task_id == top, pilot, what="its details")


async def test_a_big_log_is_cut_to_the_lines_shown_before_they_are_read(tmp_path,
                                                                       monkeypatch):
    """Before: selecting a task whose log was 200 chunks of 1,200 lines (control and
    format characters in them) escaped, measured and wrote all 240,000 lines into the
    log pane, for the 300 it keeps: the whole UI froze 6-17 s."""
    from jupyter_tasks_dashboard.detail import LOG_LINES
    from jupyter_tasks_dashboard.log_tail import LogTail

    from jupyter_tasks.manager import TaskManager
    from jupyter_tasks.models import Task, new_task_id

    db = tmp_path / "biglog.db"
    now = time.time()
    task = Task(id=new_task_id(), kind="code", mode="job", status="succeeded", name=None,
                label="bulk log", created_at=now, started_at=now, finished_at=now,
                updated_at=now)
    chunks = [(now, "stdout", "".join(f"bulk {c}.{i} \u202eRTL \x00 nul\n" for i in range(1200)))
              for c in range(200)]
    async with TaskManager(db, runs_background=False, make_default=False) as writer:
        await writer.store.create_tasks([task])
        await writer.store.append_logs(task.id, chunks)
    written: list[int] = []
    write_lines = LogTail.write_lines

    def counting(self: LogTail, lines: Any, *args: Any, **kwargs: Any) -> Any:
        lines = list(lines)
        written.append(len(lines))
        return write_lines(self, lines, *args, **kwargs)

    monkeypatch.setattr(LogTail, "write_lines", counting)
    app = TasksDashboard(DatabaseSource(db))
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.ready and task.id in app.table.tasks, pilot, what="the row")
        app.table.select(task.id)
        await until(lambda: app.detail.task_id == task.id
                    and len(app.detail.log_view.lines) == LOG_LINES, pilot, timeout=60,
                    what="the log's last lines")
        lines = [str(line) for line in app.detail.log_view.lines]
        assert lines[-1] == "bulk 199.1199 \\u202eRTL \\x00 nul", lines[-1]
        assert lines[0] == f"bulk 199.{1200 - LOG_LINES} \\u202eRTL \\x00 nul", lines[0]
        assert sum(written) <= LOG_LINES, written  # only what the pane keeps was written


def test_the_last_lines_are_counted_across_chunks_that_end_mid_line():
    # review: a chunk ending mid-line goes on in the next; counted apart, two lines asked
    # gave one ("c" + "d"), or three
    from jupyter_tasks_dashboard.detail import last_lines

    def kept(texts: list[str], count: int) -> str:
        entries, _ = last_lines([{"text": text} for text in texts], count)
        return "".join(entry["text"] for entry in entries)

    assert kept(["a\nb\nc", "d\n"], 2) == "b\ncd\n"
    assert kept(["l1\nl2\nl3\n", "x"], 2) == "l3\nx"
    assert kept(["a\n"], 5) == "a\n"


async def test_the_details_of_a_task_deleted_elsewhere_do_not_stay_as_if_current(tmp_path):
    """Before: with the table empty once the task was deleted (by another dashboard, the
    REST API), the details pane kept showing it, status and all, for good."""
    from jupyter_tasks.manager import TaskManager
    from jupyter_tasks.models import Task, new_task_id

    db = tmp_path / "gone.db"
    now = time.time()
    task = Task(id=new_task_id(), kind="function", mode="job", status="succeeded",
                name="make_report", label="make_report", created_at=now, started_at=now,
                finished_at=now, updated_at=now, result=1)
    async with TaskManager(db, runs_background=False, make_default=False) as writer:
        await writer.store.create_tasks([task])
        app = TasksDashboard(DatabaseSource(db))
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: app.ready and app.detail.task_id == task.id, pilot,
                        what="its details")
            await writer.store.delete_task(task.id)
            await until(lambda: app.table.row_count == 0, pilot, what="the row gone")
            await until(lambda: app.detail.task_id is None, pilot, what="the details gone")
            summary = str(app.detail.summary.render())
            assert "deleted" in summary and "succeeded" not in summary, summary
