"""One source per contract: the task JSON, its event snapshot, its OpenAPI schema and its
TypeScript type agree; the store is the one door to the database; no dependency's privates."""

from __future__ import annotations

import ast
import http.client
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

import jupyter_tasks
from jupyter_tasks.exceptions import InvalidRequest
from jupyter_tasks.models import Task, new_task_id
from jupyter_tasks.schedules import Schedule
from jupyter_tasks.server.openapi import SCHEMAS
from jupyter_tasks.store import Store

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(jupyter_tasks.__file__).resolve().parent


def _task(**fields: Any) -> Task:
    now = time.time()
    base: dict[str, Any] = dict(id=new_task_id(), kind="function", mode="job",
                                status="queued", created_at=now, updated_at=now, name="add")
    base.update(fields)
    return Task(**base)


def _brief_keys() -> list[str]:
    return list(_task().to_json())


def _full_only_keys() -> list[str]:
    brief = set(_brief_keys())
    return [key for key in _task().to_json(full=True) if key not in brief]


# ------------------------------------------------------------------- task JSON


async def test_event_snapshots_are_the_task_json_of_the_same_row(db_path: Path) -> None:
    # values that exercise each kind of field: JSON columns, times with milliseconds,
    # the flag, the derived max_attempts, nulls
    async with await Store.open(db_path) as store:
        first, _ = await store.create_task(_task(
            params={"a": [1, 2.5, None, "é"]}, label="l", task_key="k", priority=3,
            owner="ana", origin={"type": "kernel", "notebook": "n.ipynb"}, max_retries=2,
            timeout=1.5, created_at=1_700_000_000.1239, updated_at=1_700_000_000.1239))
        second, _ = await store.create_task(_task(mode="background", status="running",
                                                  started_at=1_700_000_001.999))
        await store.transition(second.id, {"progress": {"current": 1, "total": 3},
                                           "cancel_requested": True,
                                           "confirmation": {"choices": ["y", "n"]}},
                               "task.progress")
        await store.transition(second.id, {"status": "succeeded", "result": {"x": [1]},
                                           "finished_at": 1_700_000_002.5,
                                           "retry_reason": "why", "lost_attempts": 1},
                               "task.succeeded")
        events = await store.events_after(0)
        latest = {event.task_id: event.task for event in events}
        for task in (first, second):
            current = await store.require_task(task.id)
            snapshot = latest[task.id]
            assert snapshot is not None
            assert list(snapshot) == list(current.to_json())
            assert snapshot == current.to_json()


def test_to_json_is_the_field_table() -> None:
    from jupyter_tasks.models import TASK_JSON

    task = _task()
    assert list(task.to_json()) == [f.key for f in TASK_JSON if not f.full]
    assert list(task.to_json(full=True)) == [f.key for f in TASK_JSON]


def test_openapi_task_schema_is_the_task_json() -> None:
    schema = SCHEMAS["Task"]
    # deduplicated: added by POST /api/tasks when an existing task is returned
    assert set(schema["properties"]) - {"deduplicated"} == set(_brief_keys())
    assert schema["required"] == _brief_keys()


def test_openapi_full_task_schema_is_the_full_task_json() -> None:
    base, extra = SCHEMAS["TaskFull"]["allOf"]
    assert base == {"$ref": "#/components/schemas/Task"}
    added_by_handler = {"artifacts", "worker", "children"}
    assert set(extra["properties"]) - added_by_handler == set(_full_only_keys())
    assert set(_full_only_keys()) <= set(extra["required"])


def test_openapi_takes_the_artifact_names_and_keys_the_server_takes() -> None:
    from jupyter_tasks.jobs.code import artifact_name_for
    from jupyter_tasks.server.openapi import openapi_document

    paths = openapi_document("/")["paths"]
    name_param = paths["/api/tasks/{task_id}/artifacts/{name}"]["parameters"][1]
    artifact_schema = SCHEMAS["Artifact"]["properties"]["name"]
    for relative in ("plots/a b.txt", "report-2026.12.csv", "x" * 300):
        name = artifact_name_for(relative)
        assert name is not None
        assert re.match(name_param["schema"]["pattern"], name), name
        assert re.match(artifact_schema["pattern"], name), name
    # the Idempotency-Key header is the body's idempotency_key, under the same rules
    submit = paths["/api/tasks"]["post"]
    header = next(p for p in submit["parameters"] if p["name"] == "Idempotency-Key")
    body = SCHEMAS["Submission"]["properties"]["idempotency_key"]
    assert header["schema"] == body


def _ts_interface(name: str) -> list[str]:
    """The member names of ``export interface <name> { ... }`` in labextension's types.ts."""
    text = (ROOT / "labextension" / "src" / "types.ts").read_text()
    match = re.search(r"export interface " + name + r"\s*\{(.*?)\n\}", text, re.S)
    assert match is not None, f"no interface {name} in types.ts"
    body = re.sub(r"/\*.*?\*/|//[^\n]*", "", match.group(1), flags=re.S)
    return re.findall(r"^\s*(\w+)\??\s*:", body, re.M)


def test_the_typescript_task_has_the_task_json_fields() -> None:
    ts = _ts_interface("ITask")
    brief = _brief_keys()
    missing, extra = sorted(set(brief) - set(ts)), sorted(set(ts) - set(brief))
    assert not (missing or extra), f"types.ts ITask lacks {missing} and has extra {extra}"


# -------------------------------------------------------------------- schedules


async def test_schedule_json_is_its_openapi_schema_and_its_event(db_path: Path) -> None:
    now = time.time()
    async with await Store.open(db_path) as store:
        created = await store.create_schedule(Schedule(
            id=new_task_id(), name="nightly", owner="ana", cron="0 3 * * *", timezone="UTC",
            catch_up="once", paused=False, job={"name": "add"}, spec={"name": "add"},
            options={}, next_run_at=now + 60, last_run_at=None, last_task_id=None,
            created_at=now, updated_at=now))
        (event,) = [e for e in await store.events_after(0) if e.type == "schedule.changed"]
        stored = await store.require_schedule(created.id)
    data = stored.to_json()
    schema = SCHEMAS["Schedule"]
    assert set(schema["properties"]) == set(data)
    assert schema["required"] == list(data)
    assert event.to_json()["schedule"] == data


# ------------------------------------------------------------- one door to SQL


async def test_stats_counts_what_the_filters_of_list_tasks_match(db_path: Path) -> None:
    async with await Store.open(db_path) as store:
        await store.create_tasks([
            _task(name="a", owner="ana", queue="q1", label="Alpha one"),
            _task(name="a", owner="bo", queue="q2", status="running"),
            _task(name="b", owner="ana", queue="q1", status="failed", label="beta"),
        ])
        for filters in ({}, {"name": "a"}, {"owners": ["ana"]}, {"statuses": ["failed"]},
                        {"search": "alpha"}, {"owners": []}):
            stats = await store.stats(**filters)
            listed = await store.list_tasks(**filters, limit=100)
            assert sum(stats["statuses"].values()) == len(listed), filters
            for status, count in stats["statuses"].items():
                assert count == sum(t.status == status for t in listed), (filters, status)
            running = sum(q["running"] for q in stats["queues"].values())
            assert running == sum(t.status == "running" for t in listed)


async def test_insert_task_rows_writes_history_through_the_store(db_path: Path) -> None:
    rows = [{"id": new_task_id(), "kind": "function", "mode": "job", "status": "succeeded",
             "name": f"job_{i}", "params": {"i": i}, "created_at": 1_700_000_000.0 + i,
             "finished_at": 1_700_000_000.5 + i, "cancel_requested": False}
            for i in range(3)]
    async with await Store.open(db_path) as store:
        assert await store.insert_task_rows(rows) == 3
        got = await store.list_tasks(oldest_first=True)
        assert [(t.id, t.params, t.queue, t.cancel_requested) for t in got] == [
            (r["id"], r["params"], "default", False) for r in rows]
        assert await store.events_after(0) == []  # history: no events
        with pytest.raises(InvalidRequest, match="not a task column"):
            await store.insert_task_rows([{**rows[0], "id": new_task_id(), "colour": "red"}])
        with pytest.raises(InvalidRequest, match="required"):
            await store.insert_task_rows([{"id": new_task_id(), "kind": "function"}])
        assert await store.count_tasks() == 3  # nothing half-written


async def test_match_ids_finds_a_task_by_the_start_or_end_of_its_id(db_path: Path) -> None:
    async with await Store.open(db_path) as store:
        tasks = await store.create_tasks([_task(label="x"), _task(name="y")])
        one = tasks[0]
        assert await store.match_ids(one.id[:20]) == [(one.id, "queued", "x")]
        assert await store.match_ids(one.id[-12:]) == [(one.id, "queued", "x")]
        assert await store.match_ids("zz") == []


# -------------------------------------------------------- dependencies' privates


def _private(names: Any) -> set[str]:
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def _dependency_privates() -> set[str]:
    """Private attribute names of the dependency objects jupyter_tasks works with."""
    names = _private(dir(aiosqlite.Connection)) | _private(dir(http.client.HTTPConnection))
    names |= _private(dir(sqlite3.Connection))
    unopened = aiosqlite.connect(":memory:")  # never awaited: no thread, nothing to close
    names |= _private(vars(unopened))
    names |= _private(vars(http.client.HTTPConnection("localhost")))
    return names


def _own_names(trees: list[ast.Module]) -> set[str]:
    """Names jupyter_tasks defines itself (functions, attributes it assigns, class members)."""
    own: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                own.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) \
                    and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                own.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                own.add(node.id)
    return own


def test_no_private_name_of_a_dependency_is_used() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    trees = [ast.parse(f.read_text(), str(f)) for f in files]
    foreign = _dependency_privates() - _own_names(trees)
    found = []
    for path, tree in zip(files, trees, strict=True):
        where = path.relative_to(PACKAGE.parent)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                parts = node.module.split(".")
                if parts[0] != "jupyter_tasks" and any(p.startswith("_") for p in parts[1:]):
                    found.append(f"{where}:{node.lineno} imports {node.module}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    if parts[0] != "jupyter_tasks" and any(p.startswith("_") for p in parts[1:]):
                        found.append(f"{where}:{node.lineno} imports {alias.name}")
            elif isinstance(node, ast.Attribute) and node.attr in foreign:
                found.append(f"{where}:{node.lineno} uses .{node.attr}")
    assert found == []
