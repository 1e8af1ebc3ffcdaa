"""The table's order: a column and a direction, and how a page is read in that order.

Every order holds over the whole history, never just within the page on screen:

* ``status`` (the default, "running first"): the running tasks, then the queued
  ones, then the finished ones, each newest first (descending reverses the
  groups). Read group after group, each with the API's status filter (its index
  makes this the fastest first page); the page cursor is ``"<group>:<cursor>"``.
* any other column: the API's own ``sort`` (``API_SORTS`` maps column to sort), paged
  by the API's keyset cursor; ties newest first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .sources import TERMINAL, DataSource, Filters, Page

# the table's columns, in order (table.py lays them out)
COLUMNS = ("id", "label", "status", "progress", "owner", "origin", "started", "duration")
# the API's sort for each column (status is read group by group instead)
API_SORTS = {"id": "created", "label": "label", "progress": "progress", "owner": "owner",
             "origin": "origin", "started": "started", "duration": "duration"}
# the direction a column starts in when chosen: newest, longest, furthest along first
DESCENDING_FIRST = frozenset({"id", "started", "duration", "progress"})
GROUPS: tuple[tuple[str, ...], ...] = (("running",), ("queued",), TERMINAL)


@dataclass(frozen=True)
class Sort:
    """The column the table is sorted by and the direction."""

    column: str = "status"
    descending: bool = False

    @property
    def grouped(self) -> bool:
        """True when pages are read status group by status group (running first)."""
        return self.column not in API_SORTS

    def arrow(self) -> str:
        return "▼" if self.descending else "▲"

    def describe(self) -> str:
        if self.column == "status":
            return "finished first" if self.descending else "running first"
        if self.column == "id":
            return "newest first" if self.descending else "oldest first"
        return f"by {self.column} {self.arrow()}"

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
        ordered = replace(filters, sort=API_SORTS[sort.column], descending=sort.descending)
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
        part = replace(filters, statuses=groups[group], sort="created", descending=True)
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
    return Page(tasks, next_cursor, elapsed)

