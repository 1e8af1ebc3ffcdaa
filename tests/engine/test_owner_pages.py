"""An owner's pages in a column's order: what a user who sees only their own tasks lists.

Over a million tasks the owner's index gave a third of them unsorted, and each page
read and sorted them all (200-1,300 ms). A page is now first looked for by bounded
walks along the sort's own index (task_sql.OWNER_FIRST_WALK_ROWS rows, then
OWNER_WALK_ROWS), and read the old way when they leave it short. Both ways must
give exactly the brute force's pages, and a walk must read about a page's worth,
not the owner's history.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest

from jupyter_tasks.models import new_task_id
from jupyter_tasks.store import Store, task_sql
from jupyter_tasks.store import store as store_module
from jupyter_tasks.store.task_sql import LIST_SORTS
from tests.engine.brute_force import brute_force_order, walk
from tests.engine.vm_steps import StepCount

STATUSES = ("succeeded", "failed", "succeeded", "cancelled", "succeeded")
SORTED = [s for s in LIST_SORTS if s != "created"]


def task_row(i: int, start: float, owner: str) -> dict[str, Any]:
    status = "running" if i % 97 == 0 else "queued" if i % 89 == 0 else STATUSES[i % 5]
    created = start + i
    ended = status not in ("running", "queued")
    return dict(
        id=new_task_id(), kind=("function", "notebook", "code")[i % 3], mode="job",
        status=status, name=f"job_{i % 5}",
        label=(None, "", f"Train {i % 7}", f"etl {i}")[i % 4], queue="default",
        priority=i % 3, owner=owner,
        origin={"type": "kernel", "notebook": f"NB/{i % 13}.ipynb"} if i % 4 else None,
        progress={"current": i % 10, "total": 10}, created_at=created,
        started_at=None if i % 11 == 0 or status == "queued" else created + 0.1,
        finished_at=created + 0.1 + (i % 9) if ended else None, updated_at=created + 1,
    )


async def build(path: Path, owner_of: Any, count: int) -> None:
    store = await Store.open(path)
    try:
        start = time.time() - 2 * count
        await store.insert_task_rows(task_row(i, start, owner_of(i)) for i in range(count))
        await store.settle()  # the ended tasks into the history indexes, as upkeep would
    finally:
        await store.close()


def skewed_owner(i: int) -> str:
    # "Big": most of the history; "rare": a task in fifty, spread; "late": only among
    # the oldest tasks, so a walk from the newest end never reaches them
    if i % 50 == 0:
        return "rare"
    if i < 200 and i % 2:
        return "late"
    return "Big"


async def test_an_owners_pages_equal_a_brute_force_sort_walked_or_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tasks.db"
    await build(path, skewed_owner, 1_500)
    # short walks, so that on 1,500 tasks they fill some pages and fall short of others
    monkeypatch.setattr(task_sql, "OWNER_FIRST_WALK_ROWS", 20)
    monkeypatch.setattr(task_sql, "OWNER_WALK_ROWS", 60)
    monkeypatch.setattr(task_sql, "OWNER_KEY_WALK_ROWS", 10)
    store = await Store.open(path)
    outcomes: dict[str, list[bool]] = {"Big": [], "rare": [], "late": []}
    walked_page = store._walked_page

    async def recorded(sort: str, descending: bool, where: list[str], args: list[Any],
                       *rest: Any) -> Any:
        rows = await walked_page(sort, descending, where, args, *rest)
        owner = next(a for a in args if a in outcomes)
        outcomes[owner].append(rows is not None)
        return rows

    monkeypatch.setattr(store, "_walked_page", recorded)
    next_walks: list[int] = []
    longer_walk = store_module.longer_walk

    def counted(rows: Any, limit: int, walked: int | None) -> int:
        next_walks.append(longer_walk(rows, limit, walked))
        return next_walks[-1]

    monkeypatch.setattr(store_module, "longer_walk", counted)
    try:
        everything = await store.list_tasks(limit=2_000, oldest_first=True)
        assert len(everything) == 1_500
        for owner in outcomes:
            for sort in SORTED:
                for order in ("asc", "desc"):
                    filters: dict[str, Any] = {"owners": [owner]}
                    expected = brute_force_order(everything, sort, order, filters)
                    got = await walk(store, sort, order, filters, limit=29)
                    assert got == expected, (owner, sort, order, len(got), len(expected))
            # and beside another filter, which the walk keeps on its side
            filters = {"owners": [owner], "statuses": ["succeeded", "failed"]}
            assert await walk(store, "label", "asc", filters, limit=29) == \
                brute_force_order(everything, "label", "asc", filters)
    finally:
        await store.close()
    # both ways were taken: walks filled pages of the owner of most tasks, and the
    # others' (too few to fill one, or out of their reach) were read the old way
    assert any(outcomes["Big"]) and not all(outcomes["Big"])
    assert 60 in next_walks and 0 in next_walks  # the longer walk, and giving up
    assert not any(outcomes["rare"])
    assert not all(outcomes["late"])


class StepsOfReads:
    """The VM instructions (per 100) of the store's read connection while counting."""

    def __init__(self) -> None:
        self.count = StepCount()

    async def of(self, store: Store, **page: Any) -> int:
        assert store._reader is not None
        self.count.steps = 0
        await store._reader.set_progress_handler(self.count.tick, 100)
        try:
            await store.page_tasks(limit=20, **page)
        finally:
            await store._reader.set_progress_handler(None, 100)
        return self.count.steps


async def test_an_owners_first_page_reads_about_a_walk_not_the_owners_history(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # three owners of ~4,000 tasks each; a first walk of 100 rows. Before, each page
    # read and sorted all of the owner's tasks (raising=False: that code had no walk)
    path = tmp_path / "tasks.db"
    # spread at random: i % 3 would make each priority (i % 3) one owner's alone
    await build(path, lambda i: ("ana", "Bo", "cy")[random.Random(i).randrange(3)], 12_000)
    monkeypatch.setattr(task_sql, "OWNER_FIRST_WALK_ROWS", 100, raising=False)
    monkeypatch.setattr(task_sql, "OWNER_WALK_ROWS", 400, raising=False)
    store = await Store.open(path)
    steps = StepsOfReads()
    try:
        for sort in SORTED:
            for order in ("asc", "desc"):
                everyone = await steps.of(store, sort=sort, order=order)
                own = await steps.of(store, sort=sort, order=order, owners=["Bo"])
                # at most twice the unfiltered page's work (a walk of 100 rows for a
                # page of 20): reading Bo's ~4,000 tasks cost 2.6-13 times
                assert own <= 2 * everyone + 40, (sort, order, own, everyone)
    finally:
        await store.close()
