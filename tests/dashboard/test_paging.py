"""Page turns land where the keys meant: a burst of PageDown, and the end of the list.

The tasks sit in a real database file read through ``DatabaseSource``; keys go
to the app as a fast typist's terminal delivers them (``type_fast``).
"""

from __future__ import annotations

from pathlib import Path

from jupyter_tasks_dashboard.app import TasksDashboard
from jupyter_tasks_dashboard.sources import DatabaseSource

from .conftest import until
from .test_fast_keys import SIZE, parked_tasks, type_fast


async def test_a_burst_of_page_downs_turns_as_many_pages(tmp_path: Path) -> None:
    # before: each PageDown asked for "the page after the one on screen"; three typed
    # before the first page arrived asked for the same page three times: one turn
    writer, _ = await parked_tasks(tmp_path, 12)
    app = TasksDashboard(DatabaseSource(tmp_path / "fast.db"), page_size=3)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: app.ready and app.table.row_count == 3, pilot, what="rows")
            type_fast(app, "pagedown", "pagedown", "pagedown")
            await until(lambda: app.table.page_index == 3, pilot,
                        what="the fourth page (three turns)")
            seen = set(app.table.row_ids)
            type_fast(app, "pageup", "pageup")
            await until(lambda: app.table.page_index == 1, pilot, what="back two pages")
            assert not seen & set(app.table.row_ids)
            assert app.table.row_count == 3
    finally:
        await writer.stop()


async def test_no_page_turn_past_the_last_task(tmp_path: Path) -> None:
    # before: with the tasks filling the last page exactly (grouped order, the default:
    # running, queued, then the rest), PageDown there showed an empty page
    writer, _ = await parked_tasks(tmp_path, 6)
    app = TasksDashboard(DatabaseSource(tmp_path / "fast.db"), page_size=3)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: app.ready and app.table.row_count == 3, pilot, what="rows")
            await pilot.press("pagedown")
            await until(lambda: app.table.page_index == 1, pilot, what="the second page")
            last_page = list(app.table.row_ids)
            assert len(last_page) == 3
            loads = app.page_loads
            bells = []
            app.bell = lambda: bells.append(1)  # type: ignore[method-assign]
            await pilot.press("pagedown")
            await until(lambda: app.page_loads > loads, pilot, what="the page after read")
            assert bells, "the end of the list is rung, as PageDown there always was"
            assert app.table.page_index == 1
            assert app.table.row_ids == last_page
    finally:
        await writer.stop()
