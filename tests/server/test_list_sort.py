"""``GET /api/tasks?sort=…&order=…``: every column sorts the whole history, paging is exact."""

from __future__ import annotations

import base64
import itertools
import json
import time
from typing import Any

import pytest

from jupyter_tasks.models import Task, new_task_id

from .test_api import assert_problem

PARKED = "parked"  # no worker serves it: queued tasks stay queued
SORTS = ("created", "label", "owner", "origin", "status", "progress", "duration", "started",
         "finished", "priority")
STATUS_RANK = {"running": 0, "queued": 1}


def _history(count: int) -> list[Task]:
    """Tasks whose sort values collide often (ties must still page exactly)."""
    now = time.time() - 10_000
    statuses = ("succeeded", "failed", "queued", "cancelled", "succeeded", "timeout")
    tasks = []
    for i in range(count):
        status = statuses[i % len(statuses)]
        created = now + i * 10
        started = None if status == "queued" else created + (i % 4)
        finished = None if started is None else started + (i * 7) % 5
        origin = ({"type": "kernel", "notebook": f"nb/{i % 3}.ipynb"} if i % 4
                  else {"type": "rest"})
        tasks.append(Task.build(
            id=new_task_id(), kind="function", mode="job", status=status, name=f"job_{i % 5}",
            label=None if i % 6 == 0 else f"Label {chr(65 + i % 4)}", queue=PARKED,
            priority=i % 3, owner=("ana", "Bo", None)[i % 3], origin=origin,
            progress=None if i % 5 == 0 else {"current": i % 4, "total": 4},
            created_at=created, updated_at=created, started_at=started, finished_at=finished,
        ))
    return tasks


def _key(task: dict[str, Any], sort: str, now: float) -> Any:
    """What the API documents for each sort, computed in Python (the oracle)."""
    def ts(value: str | None) -> float:
        if value is None:
            return -1.0
        from datetime import datetime
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()

    if sort == "label":
        return (task["label"] or task["name"] or task["kind"]).lower()
    if sort == "owner":
        return (task["owner"] or "").lower()
    if sort == "origin":
        origin = task["origin"] or {}
        return str(origin.get("notebook") or origin.get("type") or "").lower()
    if sort == "status":
        return STATUS_RANK.get(task["status"], 2)
    if sort == "progress":
        progress = task["progress"] or {}
        if progress.get("total"):
            return (progress.get("current") or 0) / progress["total"]
        return 1.0 if task["status"] == "succeeded" else -1.0
    if sort == "duration":
        if task["started_at"] is None:
            return -1.0
        end = ts(task["finished_at"]) if task["finished_at"] else now
        return round(max(0.0, end - ts(task["started_at"])), 2)
    if sort in ("started", "finished"):
        return ts(task[f"{sort}_at"])
    if sort == "priority":
        return task["priority"]
    return task["id"]


async def _walk(api: Any, params: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(200):
        response = await api.get(params={**params, "limit": limit,
                                         **({"cursor": cursor} if cursor else {})})
        assert response.code == 200, response.json
        seen += response.json["tasks"]
        cursor = response.json["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("paging never ended")


@pytest.fixture
async def history(tasks_app: Any) -> list[Task]:
    tasks = _history(47)
    await tasks_app.manager.store.create_tasks(tasks)
    return tasks


@pytest.mark.parametrize("sort", SORTS)
@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_paging_every_sort_returns_each_task_once_in_order(api, history, sort, order):
    every = await _walk(api, {"sort": sort, "order": order, "queue": PARKED}, limit=4)
    ids = [t["id"] for t in every]
    assert len(ids) == len(set(ids)) == len(history), "a task skipped or repeated"
    assert set(ids) == {t.id for t in history}
    now = time.time()
    keys = [_key(t, sort, now) for t in every]
    assert keys == sorted(keys, reverse=order == "desc"), f"not in {sort} {order} order"
    # ties: newest first, whatever the direction
    for a, b in itertools.pairwise(every):
        if _key(a, sort, now) == _key(b, sort, now):
            assert a["id"] > b["id"], f"tie between {a['id']} and {b['id']} not newest first"


async def test_sort_with_a_status_filter_pages_exactly(api, history):
    every = await _walk(api, {"sort": "label", "status": "succeeded,failed"}, limit=3)
    expected = {t.id for t in history if t.status in ("succeeded", "failed")}
    assert [t["id"] for t in every if t["id"] in expected] == [t["id"] for t in every]
    assert len(every) == len(expected) == len({t["id"] for t in every})


async def test_default_order_is_descending_for_created_else_ascending(api, history):
    newest = (await api.get(params={"limit": 500})).json["tasks"]
    assert [t["id"] for t in newest] == sorted((t.id for t in history), reverse=True)
    assert (await api.get(params={"sort": "created", "limit": 500})).json["tasks"] == newest
    by_priority = (await api.get(params={"sort": "priority", "limit": 500})).json["tasks"]
    assert [t["priority"] for t in by_priority] == sorted(t.priority for t in history)
    # the old spelling still works
    oldest = (await api.get(params={"order": "oldest", "limit": 500})).json["tasks"]
    assert [t["id"] for t in oldest] == sorted(t.id for t in history)


@pytest.mark.parametrize("params", [
    {"sort": "bogus"}, {"sort": "Label"}, {"order": "sideways"}, {"sort": "label", "order": ""},
])
async def test_unknown_sort_or_order_is_422(api, params):
    response = await api.get(params=params)
    assert_problem(response, 422)
    assert {e["field"] for e in response.json["errors"]} <= {"sort", "order"}


async def test_a_cursor_of_another_sort_or_a_forged_one_is_422(api, history):
    page = (await api.get(params={"sort": "label", "limit": 5})).json
    cursor = page["next_cursor"]
    assert cursor
    for params in ({"sort": "owner", "cursor": cursor},
                   {"sort": "label", "order": "desc", "cursor": cursor},
                   {"cursor": cursor},
                   {"sort": "label", "cursor": cursor[:-3] + "AAA"},
                   {"sort": "label", "cursor": "not a cursor"},
                   {"sort": "label", "cursor": history[0].id},
                   # nested past the JSON parser: before, its RecursionError was a 500
                   {"sort": "label",
                    "cursor": base64.urlsafe_b64encode(b"[" * 5000).decode().rstrip("=")}):
        response = await api.get(params=params)
        assert_problem(response, 422)
        assert [e["field"] for e in response.json["errors"]] == ["cursor"], params


def _cursor(sort: str, order: str, value: Any) -> str:
    """A cursor as the API encodes one, with a value of the caller's choosing."""
    raw = json.dumps([sort, order, value, "0" * 32, 1.0]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("value", [2**63, -2**63 - 1, 2**70, float("nan"), float("inf")])
async def test_a_cursor_with_a_value_sqlite_cannot_hold_is_422(api, history, value):
    # before: an int past 64 bits was bound as is, and SQLite's OverflowError was a 500
    for sort, order in (("priority", "asc"), ("finished", "desc"), ("duration", "asc")):
        response = await api.get(params={"sort": sort, "order": order,
                                         "cursor": _cursor(sort, order, value)})
        assert_problem(response, 422)
        assert [e["field"] for e in response.json["errors"]] == ["cursor"], (sort, value)
    # the largest values SQLite holds are a cursor's values like any other
    edge = (await api.get(params={"sort": "priority", "order": "asc",
                                  "cursor": _cursor("priority", "asc", 2**63 - 1)}))
    assert edge.code == 200 and edge.json["tasks"] == []


async def test_openapi_documents_sort_and_order(api):
    doc = (await api.get("openapi.json")).json
    params = {p["name"]: p for p in doc["paths"]["/api/tasks"]["get"]["parameters"]}
    assert params["sort"]["schema"]["enum"] == list(SORTS)
    assert set(params["order"]["schema"]["enum"]) >= {"asc", "desc"}


async def test_a_cursor_with_text_sqlite_cannot_encode_is_422(api, history):
    # before: a lone surrogate reached SQLite's binding, and its UnicodeEncodeError was a 500
    for sort in ("label", "owner", "origin"):
        response = await api.get(params={"sort": sort,
                                         "cursor": _cursor(sort, "asc", "\ud800")})
        assert_problem(response, 422)
        assert [e["field"] for e in response.json["errors"]] == ["cursor"], sort
    # the cursor's id too
    raw = json.dumps(["label", "asc", "a", "\ud800" * 32, 1.0]).encode()
    forged = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert_problem(await api.get(params={"sort": "label", "cursor": forged}), 422)
