"""Issue 13: keys typed faster than a dialog opens or closes land where the user meant.

The keys are posted to the app back to back, as a fast typist's terminal delivers
them, without waiting for the app to settle between them (``Pilot.press`` would
wait for idle after each key).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jupyter_tasks_dashboard.app import TasksDashboard
from jupyter_tasks_dashboard.ask import AskScreen
from jupyter_tasks_dashboard.confirm import ConfirmScreen
from jupyter_tasks_dashboard.fork import ForkScreen
from jupyter_tasks_dashboard.ordering import Sort
from jupyter_tasks_dashboard.sources import DatabaseSource
from textual import events

from jupyter_tasks.context import current_context

from .conftest import until

SIZE = (180, 50)


def type_fast(app: TasksDashboard, *keys: str) -> None:
    """Deliver keys as one burst of terminal input (no settling in between)."""
    for key in keys:
        app.post_message(events.Key(key, key if len(key) == 1 else None))


async def parked_tasks(tmp_path: Path, count: int) -> tuple[Any, list[Any]]:
    from jupyter_tasks.manager import TaskManager

    writer = TaskManager(tmp_path / "fast.db", worker_kind="test", runs_background=False,
                         make_default=False)
    await writer.start()
    tasks = [await writer.submit_spec({"command": ["true"]}, mode="job", label=f"parked {i}",
                                      queue="parked") for i in range(count)]
    return writer, tasks


async def test_cancel_yes_then_down_cancels_and_moves_the_table_cursor(tmp_path):
    writer, tasks = await parked_tasks(tmp_path, 4)
    app = TasksDashboard(DatabaseSource(tmp_path / "fast.db"))
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: app.ready and app.table.row_count == 4, pilot, what="rows")
            table = app.table
            # newest first: a cancelled task keeps its row (running first would move it)
            loads = app.page_loads
            app.apply_sort(Sort("id", descending=True))
            await until(lambda: app.page_loads > loads, pilot, what="newest first")
            first = table.row_ids[0]
            assert table.cursor_row == 0
            type_fast(app, "c", "y", "down", "down")
            await until(lambda: (table.tasks.get(first) or {}).get("status") == "cancelled",
                        pilot, what="the first task cancelled")
            await until(lambda: not isinstance(app.screen, AskScreen), pilot, what="closed")
            await until(lambda: table.cursor_row == 2, pilot,
                        what="both downs moved the table's cursor")
            assert app.focused is table
            assert (await writer.get(first)).status == "cancelled"
            for other in tasks:
                if other.id != first:
                    assert (await writer.get(other.id)).status == "queued"
    finally:
        await writer.stop()


async def test_no_then_down_then_cancel_yes_acts_on_the_second_row(tmp_path):
    writer, _ = await parked_tasks(tmp_path, 3)
    app = TasksDashboard(DatabaseSource(tmp_path / "fast.db"))
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: app.ready and app.table.row_count == 3, pilot, what="rows")
            table = app.table
            first, second = table.row_ids[:2]
            type_fast(app, "c", "n", "down", "c", "y")
            await until(lambda: (table.tasks.get(second) or {}).get("status") == "cancelled",
                        pilot, what="the second task cancelled")
            await until(lambda: not isinstance(app.screen, AskScreen), pilot, what="closed")
            assert (await writer.get(first)).status == "queued"
            assert app.focused is table
    finally:
        await writer.stop()


async def test_enter_right_after_the_question_keeps_the_task_and_down_moves(tmp_path):
    writer, _ = await parked_tasks(tmp_path, 3)
    app = TasksDashboard(DatabaseSource(tmp_path / "fast.db"))
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: app.ready and app.table.row_count == 3, pilot, what="rows")
            table = app.table
            first = table.row_ids[0]
            # Enter is "no" (the focused, safe answer) even before the dialog has settled
            type_fast(app, "c", "enter", "down")
            await until(lambda: not isinstance(app.screen, AskScreen) and table.cursor_row == 1,
                        pilot, what="closed, and the cursor one row down")
            assert (await writer.get(first)).status == "queued"
            assert app.focused is table
    finally:
        await writer.stop()


async def test_typing_a_filter_fast_then_an_action_key(tmp_path):
    writer, tasks = await parked_tasks(tmp_path, 3)
    app = TasksDashboard(DatabaseSource(tmp_path / "fast.db"))
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: app.ready and app.table.row_count == 3, pilot, what="rows")
            search = app.query_one("#filter-search")
            # "/" then the text: every letter reaches the box; Enter, then "c" acts on the
            # table (asks to cancel) instead of being typed into the box
            type_fast(app, "slash", *"parked 1", "enter", "c")
            await until(lambda: isinstance(app.screen, AskScreen), pilot,
                        what="the cancel question")
            assert search.value == "parked 1"
            assert app.filters.search == "parked 1"
            await until(lambda: "Cancel parked 1" in app.screen_text(), pilot, what="asked")
            type_fast(app, "y")
            await until(lambda: not isinstance(app.screen, AskScreen), pilot, what="closed")
            await until(lambda: app.table.tasks.get(tasks[1].id, {}).get("status")
                        == "cancelled", pilot, what="parked 1 cancelled")
            assert app.focused is app.table
    finally:
        await writer.stop()


async def ask_ship() -> str:
    """Ask a question and return the answer (run in the test's own worker)."""
    return await current_context.get().confirm("ship it?", ["ship", "hold"])


async def test_enter_right_after_a_answers_the_first_choice_and_down_moves(tmp_path):
    from jupyter_tasks.manager import TaskManager

    writer, _ = await parked_tasks(tmp_path, 2)
    app = TasksDashboard(DatabaseSource(tmp_path / "fast.db"))
    try:
        async with TaskManager(tmp_path / "fast.db", worker_kind="test", make_default=False,
                               queues={"default": 1}) as runner, \
                app.run_test(size=SIZE) as pilot:
            asking = await runner.submit(ask_ship, mode="background", label="asks")
            table = app.table

            def waiting() -> bool:
                task = app.detail.current_task or {}
                return app.detail.task_id == asking.id and bool(task.get("confirmation"))

            await until(lambda: app.ready and asking.id in table.tasks, pilot, what="its row")
            # newest first: the asking task keeps its row when it ends. Running first would
            # move it to the finished group, and whether "down" came before or after that
            # reload decided the row (beside a CPU hog the check saw only the later one)
            loads = app.page_loads
            app.apply_sort(Sort("id", descending=True))
            await until(lambda: app.page_loads > loads, pilot, what="newest first")
            table.select(asking.id)
            await until(waiting, pilot, what="the question in the details")
            row = table.cursor_row
            # Enter answers with the first choice at once; "down" then moves the table's cursor
            type_fast(app, "a", "enter", "down")
            done = await runner.wait(asking.id, timeout=30)
            assert (done.status, done.result) == ("succeeded", "ship")
            await until(lambda: not isinstance(app.screen, ConfirmScreen)
                        and table.cursor_row == row + 1, pilot,
                        what="closed, and the cursor one row down")
            assert app.focused is table
    finally:
        await writer.stop()


async def test_keys_after_forking_reach_the_table_not_the_dialog(tmp_path):
    writer, tasks = await parked_tasks(tmp_path, 2)
    app = TasksDashboard(DatabaseSource(tmp_path / "fast.db"))
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: app.ready and app.table.row_count == 2, pilot, what="rows")
            table = app.table

            def copied() -> int:  # (the id is the row under the cursor when "y" arrives)
                return sum(note.startswith("Copied ") for note in app.notices)

            # ctrl+s sends the fork; "y" typed right behind it copies the selected task's id
            # (it is not typed into the JSON already sent)
            await pilot.press("f")
            await until(lambda: isinstance(app.screen, ForkScreen), pilot, what="the dialog")
            type_fast(app, "ctrl+s", "y")
            await until(lambda: table.row_count == 3, pilot, what="the fork's row")
            await until(lambda: copied() == 1, pilot, what="y acted on the table")
            assert not isinstance(app.screen, ForkScreen) and app.focused is table
            # the same through the dialog's button: Enter on it, then "y"
            await pilot.press("f")
            await until(lambda: isinstance(app.screen, ForkScreen), pilot, what="the dialog")
            app.screen.query_one("#fork-submit").focus()
            await until(lambda: app.focused is app.screen.query_one("#fork-submit"), pilot)
            type_fast(app, "enter", "y")
            await until(lambda: table.row_count == 4, pilot, what="the second fork's row")
            await until(lambda: copied() == 2, pilot, what="y acted on the table again")
            assert not isinstance(app.screen, ForkScreen) and app.focused is table
            forks = [t for t in table.tasks.values() if t["id"] not in {x.id for x in tasks}]
            assert all(t.get("relationship") == "fork" for t in forks), forks
    finally:
        await writer.stop()


@pytest.mark.parametrize("spec", [{"code": "print('mine')", "input_data": {"word": "世界"}},
                                  {"command": ["echo", "mine"]}], ids=["code", "command"])
async def test_a_fork_sent_unchanged_runs_the_tasks_own_code_or_command(tmp_path, spec):
    """Before: the dialog of a code or command task held a sample, `print(1)`, sent as
    the fork's work: ctrl+s on it ran `python -c print(1)` in place of the task's own.
    And its JSON showed non-ASCII text as escapes."""
    from jupyter_tasks.manager import TaskManager

    db = tmp_path / "fork.db"
    async with TaskManager(db, worker_kind="test", runs_background=False,
                           make_default=False) as writer:
        original = await writer.submit_spec(spec, mode="job", queue="parked")
    app = TasksDashboard(DatabaseSource(db))
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.ready and app.table.row_count == 1, pilot, what="rows")
        await until(lambda: (app.detail.current_task or {}).get("spec"), pilot,
                    what="the task's details")
        await pilot.press("f")
        await until(lambda: isinstance(app.screen, ForkScreen), pilot, what="the dialog")
        if "code" in spec:  # text as it reads (before: "\u4e16\u754c")
            assert "世界" in app.screen.query_one("#fork-json").text
        type_fast(app, "ctrl+s")
        await until(lambda: app.table.row_count == 2, pilot, what="the fork's row")
    async with TaskManager(db, worker_kind="test", runs_background=False,
                           make_default=False) as reader:
        [fork] = [t for t in await reader.store.list_tasks() if t.id != original.id]
    assert {k: v for k, v in fork.spec.items() if k in spec} == spec, fork.spec
