"""The dashboard against a real ``jupyter server``: live rows, progress, and every action."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from jupyter_tasks_dashboard.app import TasksDashboard
from jupyter_tasks_dashboard.ask import AskScreen
from jupyter_tasks_dashboard.confirm import ConfirmScreen
from jupyter_tasks_dashboard.fork import ForkScreen
from jupyter_tasks_dashboard.sources import ActionError, ServerSource
from rich.text import Text
from textual.widgets import Button, TextArea

from jupyter_tasks.client import TasksClient

from .conftest import until

pytestmark = pytest.mark.slow
SIZE = (180, 50)


def dashboard(server: Any) -> TasksDashboard:
    return TasksDashboard(ServerSource(server.url, server.token))


def cell(app: TasksDashboard, task_id: str, column: str) -> str:
    return app.table.cell_text(task_id, column)


def notes(app: TasksDashboard) -> list[str]:
    return list(app.notices)


async def started(app: TasksDashboard, pilot: Any) -> None:
    await until(lambda: app.ready and app.page_loads > 0, pilot, what="first page")


async def select(app: TasksDashboard, pilot: Any, task_id: str) -> None:
    """Put the table's cursor on a task and wait for its details."""
    await until(lambda: task_id in app.table.tasks, pilot, what=f"row {task_id}")
    app.table.focus()
    app.table.select(task_id)
    await until(lambda: app.detail.task_id == task_id, pilot, what="details")


async def test_submitted_job_appears_and_its_progress_moves(server):
    client = TasksClient(server.url, server.token)
    app = dashboard(server)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        # a minute of steps, cancelled at the end: on a loaded machine a short job could end
        # before three progress values were seen, failing a test about progress, not speed
        task = await client.submit("dash_steps", {"steps": 2000, "delay": 0.03},
                                   label="counting sheep")
        await until(lambda: task["id"] in app.table.tasks, pilot, what="the new row")
        assert cell(app, task["id"], "label") == "counting sheep"
        seen: set[str] = set()

        def progress_moved() -> bool:
            text = cell(app, task["id"], "progress")
            if text.strip():
                seen.add(text)
            return len(seen) >= 3

        await until(progress_moved, pilot, what="three distinct progress values")
        percents = sorted(int(s.rsplit(" ", 1)[1].rstrip("%")) for s in seen)
        assert percents[-1] > percents[0]
        assert cell(app, task["id"], "status") == "running"
        assert "counting sheep" in app.screen_text()
        await client.cancel(task["id"])


async def test_cancel_from_the_dashboard_ends_the_task_cancelled(server):
    client = TasksClient(server.url, server.token)
    task = await client.submit("dash_steps", {"steps": 500, "delay": 0.05}, label="to cancel")
    app = dashboard(server)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await select(app, pilot, task["id"])
        await until(lambda: cell(app, task["id"], "status") == "running", pilot, what="running")
        await pilot.press("c")
        await until(lambda: isinstance(app.screen, AskScreen), pilot, what="the question")
        assert "Cancel to cancel" in app.screen_text()
        await pilot.press("y")
        await until(lambda: cell(app, task["id"], "status") == "cancelled", pilot,
                    what="cancelled in the table")
        assert any("Cancel" in n for n in notes(app)), notes(app)
        assert "cancelled" in app.detail.query_one("#summary").render().plain
    assert (await client.get(task["id"]))["status"] == "cancelled"


async def test_rerun_creates_a_child_shown_in_the_lineage(server):
    client = TasksClient(server.url, server.token)
    task = await client.submit("dash_echo", {"value": 3}, label="echo three")
    await client.wait(task["id"], timeout=30)
    app = dashboard(server)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await select(app, pilot, task["id"])
        await pilot.press("r")

        async def children() -> list[dict]:  # (the page, not the reply: it is always truthy)
            return (await client.list(parent_id=task["id"]))["tasks"]

        child = (await until(children, pilot, what="a child over REST"))[0]
        await until(lambda: [label for label in app.detail.lineage_labels if "rerun:" in label],
                    pilot, what="the rerun in the lineage tree")
        assert child["relationship"] == "rerun"
        assert any(child["id"][-10:] in label for label in app.detail.lineage_labels)
        assert any("Rerun of echo three" in n for n in notes(app)), notes(app)
        assert (await client.wait(child["id"], timeout=30))["result"] == {"value": 3,
                                                                          "word": "plain"}


async def test_fork_validates_json_and_runs_with_edited_params(server):
    client = TasksClient(server.url, server.token)
    task = await client.submit("dash_echo", {"value": 1}, label="echo one")
    await client.wait(task["id"], timeout=30)
    app = dashboard(server)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await select(app, pilot, task["id"])
        await pilot.press("f")
        modal = await until(lambda: isinstance(app.screen, ForkScreen) and app.screen, pilot,
                            what="the fork modal")
        editor = modal.query_one("#fork-json", TextArea)
        assert json.loads(editor.text) == {"value": 1}
        assert "Fork" in app.screen_text() and '"value": 1' in app.screen_text()

        def error_text() -> str:
            return str(modal.query_one("#fork-error").render())

        editor.text = '{"value": 42,'  # not JSON
        await pilot.press("ctrl+s")
        await until(lambda: "invalid JSON" in error_text(), pilot, what="syntax error shown")
        editor.text = "[42]"  # JSON, but not an object
        await pilot.press("ctrl+s")
        await until(lambda: "JSON object" in error_text(), pilot, what="type error shown")
        editor.text = '{"value": NaN}'  # Python's json takes it; before, the app crashed
        await pilot.press("ctrl+s")
        await until(lambda: "NaN is not a JSON number" in error_text(), pilot,
                    what="NaN refused")
        editor.text = '{"value": 1, "value": 2}'  # before: the last one, silently
        await pilot.press("ctrl+s")
        await until(lambda: "value: given more than once" in error_text(), pilot,
                    what="a key given twice refused")
        editor.text = '{"value": "abc"}'  # a 422 naming params.value: said once
        await pilot.press("ctrl+s")
        await until(lambda: "expected int" in error_text(), pilot, what="type refused")
        assert error_text().count("expected int") == 1, error_text()
        editor.text = '{"no_such_param": 1}'  # the server answers 422
        await pilot.press("ctrl+s")
        await until(lambda: "no_such_param" in error_text(), pilot, what="server 422 shown")
        assert isinstance(app.screen, ForkScreen)
        assert any("Fork refused" in n for n in notes(app)), notes(app)
        assert not (await client.list(parent_id=task["id"]))["tasks"]

        editor.text = '{"value": 42, "word": "forked"}'
        await pilot.press("ctrl+s")
        await until(lambda: not isinstance(app.screen, ForkScreen), pilot, what="modal closed")
        children = await until(lambda: client.list(parent_id=task["id"]), pilot,
                               what="the fork over REST")
        fork = children["tasks"][0]
        assert fork["relationship"] == "fork"
        assert fork["params"] == {"value": 42, "word": "forked"}
        done = await client.wait(fork["id"], timeout=30)
        assert done["status"] == "succeeded"
        assert done["result"] == {"value": 42, "word": "forked"}
        await until(lambda: [label for label in app.detail.lineage_labels if "fork:" in label],
                    pilot, what="the fork in the lineage tree")
        assert any("Fork of echo one" in n for n in notes(app)), notes(app)


async def asking(app: TasksDashboard, pilot: Any, task_id: str) -> None:
    """Wait for the first page, select the task, and wait for its question in the table."""
    await started(app, pilot)
    await select(app, pilot, task_id)
    await until(lambda: cell(app, task_id, "status") == "asking?", pilot,
                what="the question in the table")


async def test_a_confirmation_is_answered_from_the_dashboard(server):
    client = TasksClient(server.url, server.token)
    task = await client.submit("dash_ask", label="release")
    app = dashboard(server)
    async with app.run_test(size=SIZE) as pilot:
        await asking(app, pilot, task["id"])
        await until(lambda: "ship it?" in str(app.detail.query_one("#confirmation").render()),
                    pilot, what="the question in the details")
        await pilot.press("a")
        modal = await until(lambda: isinstance(app.screen, ConfirmScreen) and app.screen, pilot,
                            what="the answer modal")
        assert [str(b.label) for b in modal.query(Button)] == ["ship (1)", "hold (2)", "Later"]
        assert "ship it?" in app.screen_text()
        await pilot.click("#choice-1")
        done = await client.wait(task["id"], timeout=30)
        assert done["status"] == "succeeded" and done["result"] == "hold"
        await until(lambda: cell(app, task["id"], "status") == "succeeded", pilot,
                    what="succeeded in the table")
        assert any("Answered 'hold'" in n for n in notes(app)), notes(app)
        # nothing pending any more: the action says so instead of opening a modal
        await pilot.press("a")
        await until(lambda: any("not waiting" in n for n in notes(app)), pilot,
                    what="nothing to answer")


async def test_a_question_answered_elsewhere_closes_the_open_answer_dialog(server):
    """The dialog left open offered choices that no longer counted; a key in it failed."""
    client = TasksClient(server.url, server.token)
    task = await client.submit("dash_ask", label="release")
    app = dashboard(server)
    async with app.run_test(size=SIZE) as pilot:
        await asking(app, pilot, task["id"])
        await pilot.press("a")
        await until(lambda: isinstance(app.screen, ConfirmScreen), pilot,
                    what="the answer modal")
        await client.confirm(task["id"], "hold")  # a colleague, from the panel
        await until(lambda: not isinstance(app.screen, ConfirmScreen), pilot,
                    what="the dialog closed by the answer from elsewhere")
        await until(lambda: any("answered 'hold' elsewhere" in n for n in notes(app)), pilot,
                    what="the notice of the other answer")
        assert not any("Answer failed" in n for n in notes(app)), notes(app)
        done = await client.wait(task["id"], timeout=30)
        assert done["result"] == "hold"


async def test_the_dashboards_answer_names_the_question_it_showed(server):
    # an answer sent while the dialog's question was being replaced goes to no other one
    client = TasksClient(server.url, server.token)
    task = await client.submit("dash_ask", label="release")
    source = ServerSource(server.url, server.token)

    async def asked() -> Any:
        return (await client.get(task["id"])).get("confirmation")

    asked_at = (await until(asked, None, what="the question"))["asked_at"]
    await source.start()
    try:
        with pytest.raises(ActionError, match="no longer asks that question"):
            await source.confirm(task["id"], "ship", asked_at - 1)
        answered = await source.confirm(task["id"], "ship", asked_at)
        assert answered["confirmation"]["answer"] == "ship"
    finally:
        await source.close()


async def test_delete_copy_and_errors_are_reported(server):
    client = TasksClient(server.url, server.token)
    done = await client.submit("dash_echo", {"value": 9}, label="to delete")
    await client.wait(done["id"], timeout=30)
    active = await client.submit("dash_steps", {"steps": 400, "delay": 0.05}, label="busy")
    app = dashboard(server)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await select(app, pilot, active["id"])
        # a task still running is said so at once (before: the dialog asked "Delete …?
        # forgotten for good", then the server refused)
        await pilot.press("d")
        await until(lambda: any("busy" in n and "cancel it before deleting" in n
                                for n in notes(app)), pilot, what="the refusal")
        assert active["id"] in app.table.tasks
        await pilot.press("c", "y")
        await select(app, pilot, done["id"])
        await pilot.press("y")
        assert app.clipboard == done["id"]
        await pilot.press("d", "y")
        await until(lambda: done["id"] not in app.table.tasks, pilot, what="the row gone")
        assert any("Deleted to delete" in n for n in notes(app)), notes(app)
    code, _ = server.request("GET", f"api/tasks/{done['id']}")
    assert code == 404


async def test_filters_and_sort(server):
    client = TasksClient(server.url, server.token)
    marked = await client.submit("dash_echo", {"value": 5}, label="needle-in-haystack")
    await client.wait(marked["id"], timeout=30)
    app = dashboard(server)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await until(lambda: len(app.table.tasks) > 1, pilot, what="several rows")
        await pilot.press("slash")
        await pilot.press(*"needle")
        await pilot.press("enter")
        await until(lambda: list(app.table.tasks) == [marked["id"]], pilot,
                    what="only the matching task")
        assert app.focused is app.table  # Enter gives the table the keys back
        # the counts are those of the filter, the same in the totals line and the title
        await until(lambda: "1 matching" in totals_of(app), pilot,
                    what="the filtered count")
        assert "· 1 matching ·" in app.sub_title
        screen = app.screen_text()
        assert "needle-in-haystack" in screen and "echo one" not in screen
        app.query_one("#filter-search").value = ""
        app.apply_filters(app.query_one("#filters").filters)
        await until(lambda: len(app.table.tasks) > 1, pilot, what="all rows again")
        await until(lambda: "tasks" in totals_of(app), pilot, what="all counted")
        app.table.focus()
        await pilot.press("s")  # status (running first) -> started, latest first
        await until(lambda: app.sort.column == "started" and "by started ▼" in app.sub_title,
                    pilot, what="latest started first")
        await pilot.press("S")
        await until(lambda: "by started ▲" in app.sub_title and started_times(app) == sorted(
            started_times(app)) and len(table_ids(app)) > 1, pilot, what="earliest first")
        assert "started ▲" in app.screen_text()


def totals_of(app: TasksDashboard) -> str:
    """The totals line as plain text."""
    return Text.from_markup(app.overview.totals_text()).plain


def started_times(app: TasksDashboard) -> list[str]:
    """The rows' start times (ISO text sorts as time; never started: first)."""
    return [app.table.tasks[i].get("started_at") or "" for i in app.table.row_ids]


def table_ids(app: TasksDashboard) -> list[str]:
    return list(app.table.row_ids)


class SubmitsAfterTheFirstPage(ServerSource):
    """A source that submits a task right after reading its first page, before it goes live."""

    submitted: dict[str, Any] | None = None

    async def list_tasks(self, filters: Any, cursor: str | None, limit: int) -> Any:
        page = await super().list_tasks(filters, cursor, limit)
        if self.submitted is None:
            client = TasksClient(self.url, self.token)
            self.submitted = await client.submit("dash_steps", {"steps": 2000, "delay": 0.03},
                                                 label="in between")
            # running before the feed opens: from then on only its progress events come
            deadline = time.monotonic() + 30
            while (await client.get(self.submitted["id"]))["status"] != "running":
                assert time.monotonic() < deadline, "the job did not start"
                await asyncio.sleep(0.02)
        return page


async def test_a_task_created_between_the_first_page_and_the_feed_gets_its_row(server):
    # found in CI: the feed connected after the first page with nothing to resume from,
    # so a task submitted in between never appeared
    source = SubmitsAfterTheFirstPage(server.url, server.token)
    app = TasksDashboard(source)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        assert source.submitted is not None
        await until(lambda: source.submitted["id"] in app.table.tasks, pilot,
                    what="the row of the task submitted between page and feed")
        await TasksClient(server.url, server.token).cancel(source.submitted["id"])
