"""Dialogs fit a small terminal: their buttons stay on screen, however few rows there are."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_tasks_dashboard.app import TasksDashboard
from jupyter_tasks_dashboard.fork import ForkScreen
from jupyter_tasks_dashboard.sources import DatabaseSource
from textual.widget import Widget
from textual.widgets import Button, TextArea

from .conftest import until
from .test_fast_keys import parked_tasks


def shown(app: TasksDashboard, widget: Widget) -> bool:
    """Whether all of ``widget`` is drawn (not clipped by the dialog or the screen)."""
    where = app.screen.find_widget(widget)
    return where.region.height > 0 and where.visible_region == where.region


@contextlib.asynccontextmanager
async def fork_dialog(tmp_path: Path, size: tuple[int, int]) -> AsyncIterator[tuple[Any, Any]]:
    """(app, pilot) with the fork dialog of a parked task open, at ``size``."""
    writer, _ = await parked_tasks(tmp_path, 1)
    app = TasksDashboard(DatabaseSource(tmp_path / "fast.db"))
    try:
        async with app.run_test(size=size) as pilot:
            await until(lambda: app.ready and app.table.row_count == 1, pilot, what="the row")
            await pilot.press("f")
            await until(lambda: isinstance(app.screen, ForkScreen), pilot, what="the dialog")
            await pilot.pause()
            yield app, pilot
    finally:
        await writer.stop()


@pytest.mark.parametrize("size", [(80, 24), (80, 20)])
async def test_the_fork_dialogs_buttons_and_text_are_on_screen(tmp_path, size):
    # before: the dialog took 26 rows whatever the terminal had; at 24 rows (and 20) its
    # Fork and Close buttons were cut off at its bottom, unseen
    async with fork_dialog(tmp_path, size) as (app, _):
        for button in app.screen.query(Button):
            assert shown(app, button), (size, button.id, app.screen.find_widget(button))
        editor = app.screen.query_one("#fork-json", TextArea)
        assert shown(app, editor) and editor.region.height >= 5, (size, editor.region)


async def test_on_a_tiny_terminal_the_fork_dialog_scrolls_to_its_buttons(tmp_path):
    # 60x16 leaves no room for all of it: a button reached by Tab is scrolled into view
    async with fork_dialog(tmp_path, (60, 16)) as (app, pilot):
        dialog = app.screen.query_one("#fork-dialog")
        assert shown(app, dialog), app.screen.find_widget(dialog)  # not wider than the screen
        for button_id in ("fork-submit", "fork-close"):
            button = app.screen.query_one(f"#{button_id}", Button)
            for _ in range(10):  # a handful of widgets: Tab reaches each in fewer
                if app.focused is button:
                    break
                await pilot.press("tab")
            assert app.focused is button, (button_id, app.focused)
            await until(lambda b=button: shown(app, b), pilot, what=f"{button_id} shown")


def cursor_row_drawn(app: TasksDashboard) -> bool:
    """Whether the table draws its selected row in the rows its scrollbars leave."""
    table = app.table
    rows = table.scrollable_content_region.height - 1  # below the header
    top = round(table.scroll_y)
    return top <= table.cursor_row < top + rows


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_the_selected_row_is_never_under_the_scrollbar(tmp_path, size):
    # before: End (or Down onto the last row shown) selected a row drawn under the
    # horizontal scrollbar: the details showed a task the table did not
    writer, _ = await parked_tasks(tmp_path, 60)
    app = TasksDashboard(DatabaseSource(tmp_path / "fast.db"))
    try:
        async with app.run_test(size=size) as pilot:
            await until(lambda: app.ready and app.table.row_count > 20, pilot, what="rows")
            table = app.table
            assert table.show_horizontal_scrollbar, "the columns fit: no scrollbar to test"
            await pilot.press("end")
            await until(lambda: table.cursor_row == table.row_count - 1, pilot, what="end")
            await pilot.pause()
            assert cursor_row_drawn(app), (table.cursor_row, table.scroll_y)
            await pilot.press("home")
            for _ in range(table.scrollable_content_region.height):
                await pilot.press("down")
            await pilot.pause()
            assert cursor_row_drawn(app), (table.cursor_row, table.scroll_y)
            # a smaller terminal keeps the selected row in sight
            await pilot.resize_terminal(60, 15)
            await pilot.pause()
            await until(lambda: cursor_row_drawn(app), pilot, what="the row after a resize")
    finally:
        await writer.stop()
