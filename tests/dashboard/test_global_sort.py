"""Issue 13: the dashboard sorts any column over the whole history, not within the page.

Database mode (the store's own list query) and server mode (``GET /api/tasks?sort=``
of a real ``jupyter server``) walk every page of a 300-task history in one column's
order: each task appears once, the whole walk is in order, and the longest run of
all (an old task, far from the first page) tops the duration order.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from jupyter_tasks_dashboard.app import TasksDashboard
from jupyter_tasks_dashboard.sources import DatabaseSource, ServerSource

from .conftest import Server, build_history, until

SIZE = (180, 50)
HISTORY = 300
PAGE = 40
LONGEST = "history 5"  # an old task: not on the running-first first page


def _prepare(path: Path) -> None:
    asyncio.run(build_history(path, HISTORY))
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE tasks SET finished_at = started_at + 5000 WHERE label = ?",
                     (LONGEST,))
    conn.close()


def every_task(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT id, label FROM tasks"))
    finally:
        conn.close()


@pytest.fixture(scope="module")
def history_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dash-sort") / "tasks.db"
    _prepare(path)
    return path


@pytest.fixture(scope="module")
def history_server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("dash-sort-server")
    _prepare(root / "tasks.db")
    srv = Server(root, root / "tasks.db").start()
    yield srv
    srv.kill()


async def walk_pages(app: TasksDashboard, pilot: Any) -> list[dict[str, Any]]:
    """Every row of every page, pressing ``n`` until the last page."""
    table = app.table
    seen = [table.tasks[i] for i in table.row_ids]
    while table.next_cursor is not None:
        index, loads = table.page_index, app.page_loads
        await pilot.press("n")
        await until(lambda i=index, n=loads: app.page_loads > n and table.page_index == i + 1,
                    pilot, what=f"page {index + 2}")
        seen += [table.tasks[i] for i in table.row_ids]
    return seen


async def check_global_sort(app: TasksDashboard, pilot: Any, db: Path) -> None:
    await until(lambda: app.ready and app.paints, pilot, what="first page")
    table = app.table
    assert table.tasks[table.row_ids[0]]["status"] == "running"  # running first by default
    assert LONGEST not in {t["label"] for t in table.tasks.values()}

    loads = app.page_loads
    app.action_sort_by("duration")
    await until(lambda: app.page_loads > loads and app.sort.column == "duration", pilot,
                what="sorted by duration")
    assert app.sort.descending
    assert table.tasks[table.row_ids[0]]["label"] == LONGEST  # the longest of all, on top
    assert "by duration ▼" in app.sub_title and "within page" not in app.sub_title
    # the column's header whole, with its arrow (it read "duratio…" in a column of 8)
    from jupyter_tasks_dashboard.formatting import fit_cell
    from jupyter_tasks_dashboard.table import WIDTHS

    shown = [fit_cell(label, width) for label, width in zip(table.header_labels(), WIDTHS,
                                                            strict=True)]
    assert "duration ▼" in shown, shown

    loads = app.page_loads
    app.action_sort_by("label")
    await until(lambda: app.page_loads > loads and app.sort.column == "label", pilot,
                what="sorted by label")
    rows = await walk_pages(app, pilot)
    expected = every_task(db)
    ids = [t["id"] for t in rows]
    assert len(ids) == len(set(ids)) == len(expected), "a task skipped or repeated"
    assert set(ids) == set(expected)
    labels = [t["label"].lower() for t in rows]
    assert labels == sorted(labels)
    assert "by label ▲" in app.sub_title and "label ▲" in app.screen_text()


async def test_database_mode_sorts_the_whole_history(history_db):
    app = TasksDashboard(DatabaseSource(history_db), page_size=PAGE)
    async with app.run_test(size=SIZE) as pilot:
        await check_global_sort(app, pilot, history_db)


async def test_server_mode_sorts_the_whole_history(history_server):
    app = TasksDashboard(ServerSource(history_server.url, history_server.token),
                         page_size=PAGE)
    async with app.run_test(size=SIZE) as pilot:
        await check_global_sort(app, pilot, history_server.db)
