"""The table's order: a column and a direction, and how a page is read in that order.

The API pages by id only (newest or oldest first), so three kinds of order exist:

* ``started``/``id``: the API's own order (creation time), over the whole history.
* ``status`` (the default, "running first"): the running tasks, then the queued
  ones, then the finished ones, each newest first (descending reverses the
  groups). Read group after group, each with the API's status filter, so it too
  holds over the whole history; the page cursor is ``"<group>:<task id>"``.
* any other column (label, progress, owner, origin, duration): the running-first
  page, sorted by that column on screen. No API sorts by those, so the order is
  the page's, and the header says so ("within page").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from .formatting import duration_seconds, label_text, origin_text
from .sources import TERMINAL, DataSource, Filters, Page

# the table's columns, in order (table.py lays them out)
COLUMNS = ("id", "label", "status", "progress", "owner", "origin", "started", "duration")
GLOBAL = frozenset({"id", "started"})
# the direction a column starts in when chosen: newest, longest, furthest along first
DESCENDING_FIRST = frozenset({"id", "started", "duration", "progress"})
GROUPS: tuple[tuple[str, ...], ...] = (("running",), ("queued",), TERMINAL)


@dataclass(frozen=True)
class Sort:
    """The column the table is sorted by and the direction."""

    column: str = "status"
    descending: bool = False

    @property
    def within_page(self) -> bool:
        """True when only the rows of the page are sorted (no API order for the column)."""
        return self.column not in GLOBAL and self.column != "status"

    @property
    def grouped(self) -> bool:
        """True when pages are read status group by status group (running first)."""
        return self.column not in GLOBAL

    def arrow(self) -> str:
        return "▼" if self.descending else "▲"

    def describe(self) -> str:
        if self.column == "status":
            return "finished first" if self.descending else "running first"
        if self.column in GLOBAL:
            return "newest first" if self.descending else "oldest first"
        return f"by {self.column} {self.arrow()} within page"

    def choose(self, column: str) -> Sort:
        """This column (its first direction), or the other direction if already chosen."""
        if column == self.column:
            return Sort(column, not self.descending)
        return Sort(column, column in DESCENDING_FIRST)

    def next_column(self) -> Sort:
        """The next column of the cycle ``s`` walks through."""
        cycle = ("status", "started", "duration", "label", "progress", "owner", "origin", "id")
        index = cycle.index(self.column) if self.column in cycle else -1
        column = cycle[(index + 1) % len(cycle)]
        return Sort(column, column in DESCENDING_FIRST)

    def flipped(self) -> Sort:
        return Sort(self.column, not self.descending)

    def group_of(self, task: dict[str, Any]) -> int:
        """The index of the status group a task belongs to (grouped sorts)."""
        status = task.get("status")
        for i, group in enumerate(GROUPS):
            if status in group:
                return i
        return len(GROUPS)


def _groups(filters: Filters, sort: Sort) -> list[tuple[str, ...]]:
    groups = GROUPS[::-1] if sort.column == "status" and sort.descending else GROUPS
    if not filters.statuses:
        return list(groups)
    wanted = set(filters.statuses)
    return [kept for group in groups if (kept := tuple(s for s in group if s in wanted))]


async def fetch_page(source: DataSource, filters: Filters, sort: Sort, cursor: str | None,
                     limit: int) -> Page:
    """One page of tasks in ``sort`` order starting at ``cursor`` (None: the first)."""
    if not sort.grouped:
        ordered = replace(filters, oldest_first=not sort.descending)
        return await source.list_tasks(ordered, cursor, limit)
    groups = _groups(filters, sort)
    group, after = 0, None
    if cursor:
        head, _, rest = cursor.partition(":")
        group, after = int(head), rest or None
    tasks: list[dict[str, Any]] = []
    elapsed = 0.0
    next_cursor: str | None = None
    while group < len(groups) and len(tasks) < limit:
        part = replace(filters, statuses=groups[group], oldest_first=False)
        page = await source.list_tasks(part, after, limit - len(tasks))
        elapsed += page.elapsed
        tasks += page.tasks
        if page.next_cursor is not None:
            next_cursor = f"{group}:{page.next_cursor}"
            break
        group, after = group + 1, None
    else:
        if group < len(groups):
            next_cursor = f"{group}:"
    if sort.within_page:
        tasks = sort_rows(tasks, sort)
    return Page(tasks, next_cursor, elapsed)


def sort_rows(tasks: list[dict[str, Any]], sort: Sort) -> list[dict[str, Any]]:
    """A page's rows sorted by a column (stable: ties keep the running-first order)."""
    now = time.time()

    def key(task: dict[str, Any]) -> Any:
        column = sort.column
        if column == "label":
            return label_text(task).lower()
        if column == "owner":
            return (task.get("owner") or "").lower()
        if column == "origin":
            return origin_text(task).lower()
        if column == "duration":
            seconds = duration_seconds(task, now)
            return -1.0 if seconds is None else seconds
        if column == "progress":
            progress = task.get("progress") or {}
            total, current = progress.get("total"), progress.get("current")
            if total:
                return (current or 0) / total
            return 1.0 if task.get("status") == "succeeded" else -1.0
        return task.get("id") or ""

    return sorted(tasks, key=key, reverse=sort.descending)
