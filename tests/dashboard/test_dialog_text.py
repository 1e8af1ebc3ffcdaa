"""A task's question is readable whole in the answer dialog, and each choice can be seen.

A real task asks through a real manager on a database file; the dashboard reads
that file (``DatabaseSource``) and the dialog opens with ``a``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jupyter_tasks_dashboard.app import TasksDashboard
from jupyter_tasks_dashboard.confirm import ConfirmScreen
from jupyter_tasks_dashboard.sources import DatabaseSource
from textual.geometry import Region
from textual.widgets import Button, Label

from jupyter_tasks.context import current_context

from .conftest import until

LONG_PROMPT = ("Delete the 4,812 intermediate parquet files under /data/scratch/run-7/parts "
               "and keep only the merged output? ") * 3 + "\nLast line: are you sure?"
LONG_CHOICES = ["yes, delete all of them now", "no, keep every file",
                "keep only the newest hundred files", "ask me again tomorrow morning",
                "move them to cold storage instead"]
ASKED: dict[str, Any] = {}


async def ask() -> str:
    """Ask the question of ``ASKED`` (set by the test)."""
    return await current_context.get().confirm(ASKED["prompt"], ASKED["choices"])


def inside(inner: Region, outer: Region) -> bool:
    return outer.x <= inner.x and inner.right <= outer.right


async def open_dialog(tmp_path: Path, size: tuple[int, int], prompt: str,
                      choices: list[str]) -> Any:
    """The dashboard with the asking task's answer dialog open: (app, pilot, runner, task)."""
    from jupyter_tasks.manager import TaskManager

    ASKED.update(prompt=prompt, choices=choices)
    db = tmp_path / "ask.db"
    app = TasksDashboard(DatabaseSource(db))
    runner = TaskManager(db, worker_kind="test", make_default=False, queues={"default": 1})
    await runner.start()
    asking = await runner.submit(ask, mode="background", label="cleanup")
    context = app.run_test(size=size)
    pilot = await context.__aenter__()

    def waiting() -> bool:
        task = app.detail.current_task or {}
        return app.detail.task_id == asking.id and bool(task.get("confirmation"))

    await until(lambda: app.ready and asking.id in app.table.tasks, pilot, what="its row")
    app.table.select(asking.id)
    await until(waiting, pilot, what="the question in the details")
    await pilot.press("a")
    await until(lambda: isinstance(app.screen, ConfirmScreen), pilot, what="the dialog")
    return app, pilot, context, runner, asking


async def test_a_long_question_wraps_and_every_choice_is_on_screen(tmp_path: Path) -> None:
    # before: the question was one line cut at the dialog's edge (its end never shown)
    # and the buttons one row, the third cut to "kee" and the last two off the dialog
    app, pilot, context, runner, asking = await open_dialog(
        tmp_path, (120, 30), LONG_PROMPT, LONG_CHOICES)
    try:
        box = app.screen.query_one("#confirm-dialog")
        # its start in sight: the focused first choice had scrolled the title away
        await until(lambda: box.scroll_y == 0, pilot, what="the dialog at its top")
        await pilot.pause()
        assert box.max_scroll_y > 0  # more than the 27 rows: it scrolls
        dialog = box.content_region
        prompt = app.screen.query_one("#confirm-prompt", Label)
        assert inside(prompt.region, dialog), (prompt.region, dialog)
        # three sentences of ~110 characters and the last line, in a 66-column box
        assert prompt.region.height >= 6, prompt.region
        buttons = list(app.screen.query(Button))
        assert len(buttons) == len(LONG_CHOICES) + 1  # and "Later"
        for button in buttons:
            assert button.region.area and inside(button.region, dialog), \
                (str(button.label), button.region, dialog)
        await pilot.press("5")
        done = await runner.wait(asking.id, timeout=30)
        assert done.result == LONG_CHOICES[4]
    finally:
        await context.__aexit__(None, None, None)
        await runner.stop()


@pytest.mark.parametrize("size, choices", [
    ((120, 30), ["Yes", "No", "Maybe", "Skip"]),  # short labels, each button 16 wide
    ((50, 30), ["yes, delete", "no, keep"]),  # a terminal narrower than the dialog
    ((120, 30), ["削除する", "保存する", "あとで決める"]),  # two cells a character
])
async def test_every_choice_is_inside_the_dialog(tmp_path: Path, size, choices) -> None:
    # before: the rule counted characters beside the label, not the 16-cell minimum a
    # button has nor wide characters, and took the dialog as 72 wide on any terminal:
    # "Skip (4)" and "Later" ended past its edge
    app, pilot, context, runner, asking = await open_dialog(tmp_path, size, "Go?", choices)
    try:
        await pilot.pause()
        dialog = app.screen.query_one("#confirm-dialog").content_region
        for button in app.screen.query(Button):
            assert button.region.area and inside(button.region, dialog), \
                (str(button.label), button.region, dialog)
        await pilot.press("1")
        assert (await runner.wait(asking.id, timeout=30)).result == choices[0]
    finally:
        await context.__aexit__(None, None, None)
        await runner.stop()
