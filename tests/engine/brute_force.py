"""What a page of tasks should hold, worked out without SQL: the tests' brute force."""

from __future__ import annotations

import time
from typing import Any

from jupyter_tasks.models import Task
from jupyter_tasks.store import Store


def sort_key(task: Task, sort: str) -> Any:
    if sort == "label":
        return (task.label or task.name or task.kind).lower()
    if sort == "owner":
        return (task.owner or "").lower()
    if sort == "origin":
        origin = task.origin or {}
        return (origin.get("notebook") or origin.get("type") or "").lower()
    if sort == "status":
        return {"running": 0, "queued": 1}.get(task.status, 2)
    if sort == "finished":
        return -1.0 if task.finished_at is None else task.finished_at
    if sort == "started":
        return -1.0 if task.started_at is None else task.started_at
    if sort == "priority":
        return task.priority
    if sort == "progress":
        progress = task.progress or {}
        if progress.get("total"):
            return (progress.get("current") or 0) / progress["total"]
        return 1.0 if task.status == "succeeded" else -1.0
    if sort == "duration":
        # a running task's against now: hours here, longer than any ended one's seconds
        if task.started_at is None:
            return -1.0
        return max(0.0, (task.finished_at or time.time()) - task.started_at)
    raise AssertionError(sort)


def matches(task: Task, filters: dict[str, Any]) -> bool:
    search = filters.get("search")
    return ((not filters.get("statuses") or task.status in filters["statuses"])
            and filters.get("name") in (None, task.name)
            and filters.get("kind") in (None, task.kind)
            and (filters.get("owners") is None or task.owner in filters["owners"])
            and (not search or search in (task.label or "").lower()
                 or search in (task.name or "").lower() or task.id.startswith(search)))


async def walk(store: Store, sort: str, order: str, filters: dict[str, Any],
               limit: int = 700) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page = await store.page_tasks(sort=sort, order=order, cursor=cursor, limit=limit,
                                      **filters)
        ids += [t.id for t in page.tasks]
        cursor = page.next_cursor
        if cursor is None:
            return ids


def brute_force_order(tasks: list[Task], sort: str, order: str,
                      filters: dict[str, Any]) -> list[str]:
    """The ids of the tasks ``filters`` match in ``sort`` and ``order``, ties newest first."""
    chosen = sorted((t for t in tasks if matches(t, filters)), key=lambda t: t.id, reverse=True)
    if sort == "created":
        return [t.id for t in (chosen if order == "desc" else reversed(chosen))]
    # a stable sort on the key keeps the newest first within each tie, both directions
    return [t.id for t in sorted(chosen, key=lambda t: sort_key(t, sort),
                                 reverse=order == "desc")]
