"""The task table: one page of tasks at a time, paged by cursor, updated in place.

A line-API widget (``ScrollView`` + ``render_line``) rather than ``DataTable``:
a page of tasks becomes one pre-formatted ``Strip`` per row, built once when the
page arrives (or when a row changes) and only cropped when Textual asks for a
line. A page turn therefore rebuilds ~50 strips and repaints this widget alone,
instead of ``DataTable`` re-measuring and re-rendering every cell through Rich.
"""

from __future__ import annotations

from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from .formatting import STATUS_STYLES, fit_cell, row_cells
from .ordering import Sort
from .skeleton import TABLE_COLUMNS

COLUMNS = TABLE_COLUMNS  # (key, header, width), shared with the pre-Textual skeleton
COLUMN_KEYS = tuple(key for key, _, _ in COLUMNS)
WIDTHS = tuple(width for _, _, width in COLUMNS)
STATUS_COLUMN = COLUMN_KEYS.index("status")
TABLE_WIDTH = sum(width + 2 for width in WIDTHS)  # one space of padding either side
# where each column starts on a line (for clicks on the header)
STARTS = tuple(sum(width + 2 for width in WIDTHS[:i]) for i in range(len(WIDTHS)))
SKELETON = tuple("━" * max(2, width * (3 + i % 3) // 6) for i, width in enumerate(WIDTHS))
_STATUS_STYLES = {status: Style.parse(style) for status, style in STATUS_STYLES.items()}


class TaskTable(ScrollView, can_focus=True):
    """One page of tasks (API JSON) with a fixed header row and a row cursor.

    The table never holds more than a page: ``page_cursors[i]`` is the cursor
    that loads page ``i`` (None for the first), ``next_cursor`` the one after
    the shown page. Loading is the app's job (``RequestPage``); this widget
    only shows pages, moves its cursor (``RowHighlighted``) and patches rows as
    events arrive.
    """

    COMPONENT_CLASSES = {"task-table--header", "task-table--cursor", "task-table--odd",
                         "task-table--skeleton"}

    BINDINGS = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pagedown,n", "next_page", "Next page", show=True),
        Binding("pageup,p", "prev_page", "Prev page", show=True),
        Binding("home", "first_page", "First row of the first page", show=False),
        Binding("end", "last_row", "Last row", show=False),
    ]

    class RequestPage(Message):
        """Ask the app to load the page that starts at ``cursor`` (page number ``index``)."""

        def __init__(self, index: int, cursor: str | None) -> None:
            super().__init__()
            self.index = index
            self.cursor = cursor

    class SortRequested(Message):
        """A click on a column's header: sort by it (again: the other direction)."""

        def __init__(self, column: str) -> None:
            super().__init__()
            self.column = column

    class RowHighlighted(Message):
        """The cursor rests on another row (``task_id`` None when the page is empty)."""

        def __init__(self, table: TaskTable, row: int, task_id: str | None) -> None:
            super().__init__()
            self.table = table
            self.row = row
            self.task_id = task_id

        @property
        def control(self) -> TaskTable:
            return self.table

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tasks: dict[str, dict[str, Any]] = {}
        self.row_ids: list[str] = []
        self.rows_of: dict[str, int] = {}
        self._cells: list[tuple[str, ...]] = []
        self._strips: dict[tuple[int, bool], Strip] = {}  # (row, under cursor) -> full strip
        self._header: Strip | None = None
        self._styles: tuple[Style, Style, Style, Style, Style] | None = None
        self.cursor_row = 0
        self.page_cursors: list[str | None] = [None]
        self.page_index = 0
        self.next_cursor: str | None = None
        # a page turn asked for and not shown yet, and the turns typed meanwhile (+ down,
        # - up): each key turns a page, as many as were typed (before: three PageDowns
        # typed before the next page arrived all asked for that same page)
        self.turn_under_way = False
        self.turns_typed_ahead = 0
        self.pages_shown = 0
        self.sort = Sort()
        self.skeleton = True  # skeleton rows until the first page arrives
        self.virtual_size = Size(TABLE_WIDTH, 1)

    # ---------------------------------------------------------------- rendering

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._forget_strips()

    def _forget_strips(self) -> None:
        self._strips.clear()
        self._header = None
        self._styles = None

    def _row_styles(self) -> tuple[Style, Style, Style, Style, Style]:
        """(base, odd row, cursor, header) rich styles, looked up once per style change."""
        if self._styles is None:
            base = self.rich_style
            self._styles = (
                base,
                base + self.get_component_rich_style("task-table--odd"),
                base + self.get_component_rich_style("task-table--cursor"),
                base + self.get_component_rich_style("task-table--header"),
                base + self.get_component_rich_style("task-table--skeleton"),
            )
        return self._styles

    def header_labels(self) -> list[str]:
        """The header's column titles, the sorted one with its arrow."""
        return [f"{label} {self.sort.arrow()}" if key == self.sort.column else label
                for key, label, _ in COLUMNS]

    def set_sort(self, sort: Sort) -> None:
        self.sort = sort
        self._header = None
        self.refresh_line(0)

    def _header_strip(self) -> Strip:
        if self._header is None:
            style = self._row_styles()[3]
            text = "".join(f" {fit_cell(label, width)} "
                           for label, width in zip(self.header_labels(), WIDTHS, strict=True))
            self._header = Strip([Segment(text, style)], TABLE_WIDTH)
        return self._header

    def _skeleton_strip(self, row: int) -> Strip:
        key = (-1, bool(row % 2))  # two placeholder rows, built once per style
        strip = self._strips.get(key)
        if strip is None:
            style = self._row_styles()[4]
            cells = SKELETON if row % 2 else SKELETON[::-1]
            # "━" is one cell wide: plain slicing and padding, no cell measuring
            text = "".join(f" {cell[:width].ljust(width)} "
                           for cell, width in zip(cells, WIDTHS, strict=True))
            strip = self._strips[key] = Strip([Segment(text, style)], TABLE_WIDTH)
        return strip

    def _row_strip(self, row: int, under_cursor: bool) -> Strip:
        key = (row, under_cursor)
        strip = self._strips.get(key)
        if strip is None:
            base, odd, cursor, _, _ = self._row_styles()
            style = cursor if under_cursor else (odd if row % 2 else base)
            cells = self._cells[row]
            segments = []
            for i, (text, width) in enumerate(zip(cells, WIDTHS, strict=True)):
                cell = f" {fit_cell(text, width)} "
                if i == STATUS_COLUMN and not under_cursor:
                    status = self.tasks[self.row_ids[row]].get("status") or ""
                    colour = _STATUS_STYLES.get(status)
                    segments.append(Segment(cell, style + colour if colour else style))
                else:
                    segments.append(Segment(cell, style))
            strip = self._strips[key] = Strip(Segment.simplify(segments), TABLE_WIDTH)
        return strip

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        base = self._row_styles()[0]
        if y == 0:
            strip = self._header_strip()
        else:
            row = scroll_y + y - 1
            if not 0 <= row < len(self._cells):
                if self.skeleton and not self._cells:
                    return self._skeleton_strip(row).crop_extend(scroll_x, scroll_x + width, base)
                return Strip.blank(width, base)
            strip = self._row_strip(row, row == self.cursor_row)
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    def _refresh_row(self, row: int) -> None:
        self.refresh_line(row + 1)  # the header is line 0

    # ------------------------------------------------------------------- pages

    def show_page(self, index: int, cursor: str | None, tasks: list[dict[str, Any]],
                  next_cursor: str | None, *, reread: bool = False) -> None:
        """Put a freshly loaded page in the rows, keeping the selected task if present
        (``reread``: the page on screen read again, as changes or ctrl+r re-read it)."""
        selected = self.selected_id
        # the same page read again without the selected task (deleted, or moved away):
        # the cursor stays where it was, on the row that took its place, not on the first
        # (a delete then 'y' copied another task's id, far from where the user looked)
        same_page_row = self.cursor_row if reread and index == self.page_index else 0
        self.skeleton = False
        if not reread:
            self.turn_under_way = False
        del self.page_cursors[index + 1:]
        if index >= len(self.page_cursors):
            self.page_cursors.append(cursor)
        self.page_cursors[index] = cursor
        self.page_index = index
        self.next_cursor = next_cursor
        self.tasks = {t["id"]: t for t in tasks}
        self.row_ids = [t["id"] for t in tasks]
        self.rows_of = {task_id: i for i, task_id in enumerate(self.row_ids)}
        self._cells = [row_cells(t) for t in tasks]
        self._strips.clear()
        self.virtual_size = Size(TABLE_WIDTH, len(tasks) + 1)
        row = self.rows_of.get(selected, same_page_row) if selected is not None else 0
        self.cursor_row = min(row, max(0, len(tasks) - 1))
        if selected not in self.rows_of and not same_page_row:
            self.scroll_to(y=0, animate=False)
        self._scroll_cursor_into_view()
        self.refresh()
        self.pages_shown += 1
        if not reread:
            self._turn_typed_ahead()

    def _turn_typed_ahead(self) -> None:
        """Turn the next of the pages typed while this one loaded."""
        if self.turns_typed_ahead > 0:
            self.turns_typed_ahead -= 1
            self.action_next_page()
        elif self.turns_typed_ahead < 0:
            self.turns_typed_ahead += 1
            self.action_prev_page()

    def turn_found_nothing(self) -> None:
        """The page after the last one came back empty: stay on the last one."""
        self.next_cursor = None
        self.turn_failed()
        self.app.bell()

    def turn_failed(self) -> None:
        """A page turn ended without a page: forget it and the turns typed after it."""
        self.turn_under_way = False
        self.turns_typed_ahead = 0

    def _request_page(self, index: int, cursor: str | None) -> None:
        self.turn_under_way = True
        self.post_message(self.RequestPage(index, cursor))

    def reset_paging(self) -> None:
        """Forget the cursors (after a filter or order change)."""
        self.page_cursors = [None]
        self.page_index = 0
        self.next_cursor = None
        self.turns_typed_ahead = 0

    def action_next_page(self) -> None:
        if self.turn_under_way:
            self.turns_typed_ahead += 1
            return
        if self.next_cursor is None:
            self.turns_typed_ahead = 0
            self.app.bell()
            return
        self._request_page(self.page_index + 1, self.next_cursor)

    def action_prev_page(self) -> None:
        if self.turn_under_way:
            self.turns_typed_ahead -= 1
            return
        if self.page_index == 0:
            self._request_page(0, None)
            return
        index = self.page_index - 1
        self._request_page(index, self.page_cursors[index])

    def action_first_page(self) -> None:
        # the first row too, as End is the last one (before: on the first page the cursor
        # stayed where it was, and the next action went to that task)
        self.move_cursor(0)
        self.turns_typed_ahead = 0
        self._request_page(0, None)

    # ------------------------------------------------------------------ cursor

    @property
    def row_count(self) -> int:
        return len(self.row_ids)

    def move_cursor(self, row: int) -> None:
        """Put the cursor on ``row`` (clamped), scroll it into view, announce it."""
        if not self.row_ids:
            return
        row = max(0, min(row, len(self.row_ids) - 1))
        old, self.cursor_row = self.cursor_row, row
        if old != row:
            self._refresh_row(old)
            self._refresh_row(row)
        self._scroll_cursor_into_view()
        self.post_message(self.RowHighlighted(self, row, self.row_ids[row]))

    def _scroll_cursor_into_view(self) -> None:
        # rows below the header and above the horizontal scrollbar, when there is one (a
        # row under it was selected, shown in the details, and not drawn)
        visible = max(1, self.scrollable_content_region.height - 1)
        top = round(self.scroll_y)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False)
        elif self.cursor_row >= top + visible:
            self.scroll_to(y=self.cursor_row - visible + 1, animate=False)

    def action_cursor_up(self) -> None:
        self.move_cursor(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor_row + 1)

    def action_last_row(self) -> None:
        self.move_cursor(len(self.row_ids) - 1)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y < 1:
            x = offset.x + round(self.scroll_x)
            for key, start, width in zip(COLUMN_KEYS, STARTS, WIDTHS, strict=True):
                if start <= x < start + width + 2:
                    self.post_message(self.SortRequested(key))
                    return
            return
        self.move_cursor(round(self.scroll_y) + offset.y - 1)

    def on_resize(self, event: events.Resize) -> None:
        self._scroll_cursor_into_view()

    # -------------------------------------------------------------------- rows

    @property
    def selected_id(self) -> str | None:
        """The id of the task under the cursor."""
        row = self.cursor_row
        return self.row_ids[row] if 0 <= row < len(self.row_ids) else None

    def select(self, task_id: str) -> None:
        """Move the cursor to a shown task."""
        self.move_cursor(self.rows_of[task_id])

    def cell_text(self, task_id: str, column: str) -> str:
        """The plain text of one shown task's cell (before fitting to the column)."""
        return self._cells[self.rows_of[task_id]][COLUMN_KEYS.index(column)]

    @property
    def selected(self) -> dict[str, Any] | None:
        """The task under the cursor (as last seen)."""
        task_id = self.selected_id
        return self.tasks.get(task_id) if task_id else None

    def _set_cells(self, row: int, cells: tuple[str, ...]) -> None:
        if cells != self._cells[row]:
            self._cells[row] = cells
            self._strips.pop((row, False), None)
            self._strips.pop((row, True), None)
            self._refresh_row(row)

    def patch(self, task: dict[str, Any]) -> bool:
        """Update a shown task's row in place; False when it is not on this page."""
        task_id = task["id"]
        if task_id not in self.tasks:
            return False
        old_status = self.tasks[task_id].get("status")
        self.tasks[task_id] = task
        row = self.rows_of[task_id]
        if old_status != task.get("status"):
            self._strips.pop((row, False), None)  # the status colour changes
        self._set_cells(row, row_cells(task))
        return True

    def refresh_durations(self) -> None:
        """Tick the duration of running tasks (called about once a second)."""
        for task in self.tasks.values():
            if task.get("status") == "running":
                row = self.rows_of[task["id"]]
                self._set_cells(row, row_cells(task))
