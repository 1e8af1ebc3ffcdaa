"""The task table: one page of tasks at a time, paged by cursor, updated in place."""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from .formatting import row_cells

COLUMNS = (
    ("id", "id", 11),
    ("label", "label", 24),
    ("status", "status", 10),
    ("progress", "progress", 15),
    ("owner", "owner", 8),
    ("origin", "origin", 14),
    ("started", "started", 8),
    ("duration", "duration", 8),
)
COLUMN_KEYS = tuple(key for key, _, _ in COLUMNS)


class TaskTable(DataTable):
    """A ``DataTable`` of one page of tasks (API JSON), keyed by task id.

    The table never holds more than a page: ``page_cursors[i]`` is the cursor
    that loads page ``i`` (None for the first), ``next_cursor`` the one after
    the shown page. Loading is the app's job (``RequestPage``); this widget
    only shows pages and patches rows as events arrive.
    """

    BINDINGS = [
        Binding("pagedown,n", "next_page", "Next page", show=True),
        Binding("pageup,p", "prev_page", "Prev page", show=True),
        Binding("home", "first_page", "First page", show=False),
    ]

    class RequestPage(Message):
        """Ask the app to load the page that starts at ``cursor`` (page number ``index``)."""

        def __init__(self, index: int, cursor: str | None) -> None:
            super().__init__()
            self.index = index
            self.cursor = cursor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.tasks: dict[str, dict[str, Any]] = {}
        self.row_ids: list[str] = []
        self.rows_of: dict[str, int] = {}
        self.page_cursors: list[str | None] = [None]
        self.page_index = 0
        self.next_cursor: str | None = None
        self.pages_shown = 0

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

    # ------------------------------------------------------------------- pages

    def show_page(self, index: int, cursor: str | None, tasks: list[dict[str, Any]],
                  next_cursor: str | None) -> None:
        """Put a freshly loaded page in the rows, keeping the selected task if present.

        Rows are keyed by position (``r0``, ``r1``…), not by task id: a new page
        rewrites the cells of the rows already there instead of clearing the
        table, which would make ``DataTable`` re-measure every cell and re-lay
        out the screen.
        """
        selected = self.selected_id
        del self.page_cursors[index + 1:]
        if index >= len(self.page_cursors):
            self.page_cursors.append(cursor)
        self.page_cursors[index] = cursor
        self.page_index = index
        self.next_cursor = next_cursor
        self.tasks = {t["id"]: t for t in tasks}
        self.row_ids = [t["id"] for t in tasks]
        self.rows_of = {task_id: i for i, task_id in enumerate(self.row_ids)}
        shown = self.row_count
        for i, task in enumerate(tasks):
            cells = row_cells(task)
            if i < shown:
                row = f"r{i}"
                for key, value in zip(COLUMN_KEYS, cells, strict=True):
                    self.update_cell(row, key, value)
            else:
                self.add_row(*cells, key=f"r{i}")
        for i in range(len(tasks), shown):
            self.remove_row(f"r{i}")
        if selected in self.rows_of:
            self.move_cursor(row=self.rows_of[selected], animate=False)
        elif tasks:
            self.move_cursor(row=0, animate=False)
        self.pages_shown += 1

    def reset_paging(self) -> None:
        """Forget the cursors (after a filter or order change)."""
        self.page_cursors = [None]
        self.page_index = 0
        self.next_cursor = None

    def action_next_page(self) -> None:
        if self.next_cursor is None:
            self.app.bell()
            return
        self.post_message(self.RequestPage(self.page_index + 1, self.next_cursor))

    def action_prev_page(self) -> None:
        if self.page_index == 0:
            self.post_message(self.RequestPage(0, None))
            return
        index = self.page_index - 1
        self.post_message(self.RequestPage(index, self.page_cursors[index]))

    def action_first_page(self) -> None:
        self.post_message(self.RequestPage(0, None))

    # -------------------------------------------------------------------- rows

    @property
    def selected_id(self) -> str | None:
        """The id of the task under the cursor."""
        row = self.cursor_row
        return self.row_ids[row] if 0 <= row < len(self.row_ids) else None

    def select(self, task_id: str) -> None:
        """Move the cursor to a shown task."""
        self.move_cursor(row=self.rows_of[task_id], animate=False)

    def cell_text(self, task_id: str, column: str) -> str:
        """The plain text of one shown task's cell."""
        value = self.get_cell(f"r{self.rows_of[task_id]}", column)
        return getattr(value, "plain", str(value))

    @property
    def selected(self) -> dict[str, Any] | None:
        """The task under the cursor (as last seen)."""
        task_id = self.selected_id
        return self.tasks.get(task_id) if task_id else None

    def patch(self, task: dict[str, Any]) -> bool:
        """Update a shown task's cells in place; False when it is not on this page."""
        task_id = task["id"]
        if task_id not in self.tasks:
            return False
        old = self.tasks[task_id]
        self.tasks[task_id] = task
        old_cells = row_cells(old)
        row = f"r{self.rows_of[task_id]}"
        for key, before, after in zip(COLUMN_KEYS, old_cells, row_cells(task), strict=True):
            if before != after:
                self.update_cell(row, key, after)
        return True

    def refresh_durations(self) -> None:
        """Tick the duration of running tasks (called about once a second)."""
        for task in self.tasks.values():
            if task.get("status") == "running":
                self.update_cell(f"r{self.rows_of[task['id']]}", "duration",
                                 row_cells(task)[-1])
