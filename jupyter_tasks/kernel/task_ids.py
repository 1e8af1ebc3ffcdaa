"""A task id as a person gives it: whole, or the start or end of one that cards show."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..exceptions import TaskNotFound

if TYPE_CHECKING:
    from ..manager import TaskManager

ID_CHARS = 32  # a whole task id


def full_task_id(manager: TaskManager, ref: str) -> str:
    """The task id ``ref`` names: a whole id, or the start or end of exactly one task's
    (cards, the dashboard and the CLI show the last 10 characters)."""
    __tracebackhide__ = True
    if not isinstance(ref, str) or len(ref) == ID_CHARS:
        return ref  # a whole id (or no string at all) is looked up, and said, as it is
    ref = ref.strip().lstrip("…").lower()
    rows = manager.run_sync(manager.store.match_ids(ref, limit=11), 30) if ref else []
    if len(rows) == 1:
        return rows[0][0]
    if not rows:
        raise TaskNotFound(f"no task with id {ref!r}, nor one whose id starts or ends with "
                           "it")
    named = ", ".join(task_id for task_id, _, _ in rows[:10])
    raise TaskNotFound(f"{ref!r} is the start or end of more than one task's id ({named}"
                       f"{', …' if len(rows) > 10 else ''}): give more of it")
