"""Findings 1-3 and 8 of the trust issue: any value is stored by one rule, reads never crash.

Engine tests run a real TaskManager on a real SQLite file; server tests go through
a real Jupyter server (pytest-jupyter) and its websocket.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from jupyter_tasks import TaskManager
from jupyter_tasks.engine.options import MAX_TEXT_CHARS
from jupyter_tasks.exceptions import (
    InvalidCommand,
    InvalidParameters,
    InvalidRequest,
    ValueNotStorable,
)
from jupyter_tasks.values import MAX_DEPTH, MAX_PARAMS_BYTES, RESULT_ARTIFACT
from tests.reliability import hostile_tasks  # noqa: F401  (registers the tasks)
from tests.waiting import eventually


def strict_loads(text: str) -> Any:
    """json.loads that refuses NaN/Infinity, as browsers' JSON.parse does."""
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture
async def manager(db_path: Path):
    async with TaskManager(db_path, queues={"default": 2}, flush_interval=0.02,
                           retry_base_delay=0.05) as m:
        yield m


def raw_rows(db_path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute(sql, args).fetchall()


# ------------------------------------------------------------- finding 1: values


@pytest.mark.parametrize("kind, stored, note_path", [
    ("nan", None, "result"),
    ("inf", None, "result"),
    ("neg_inf", None, "result"),
    ("loss_dict", {"loss": None, "acc": 0.5, "history": [1.0, None]}, "result['loss']"),
    ("tuple_keys", {"(1, 2)": "pair", "3": "three"}, "result['(1, 2)']"),
])
async def test_a_value_json_cannot_hold_ends_the_task_with_a_note(
        manager: TaskManager, db_path: Path, kind: str, stored: Any, note_path: str) -> None:
    job = await manager.submit("hostile_value", kind=kind, mode="job")
    done = await manager.wait(job.id, timeout=20)
    assert done.status == "succeeded", done.error
    assert done.result == stored
    assert any(n["path"] == note_path for n in done.value_notes), done.value_notes
    # what the row and the event feed hold is JSON any reader accepts
    (text,), = raw_rows(db_path, "SELECT result FROM tasks WHERE id = ?", job.id)
    assert strict_loads(text) == stored
    for (snapshot,) in raw_rows(db_path, "SELECT task FROM events WHERE task_id = ?", job.id):
        strict_loads(snapshot)


DEPTHS = {"deep": 1_000, "very_deep": 50_000, "abyss": 200_000}


# "abyss": storing a value took time quadratic in its depth (50,000 levels 12 s, this
# one over 3 minutes, the task running all along); the deadline is for waiting only
@pytest.mark.parametrize("kind", ["deep", "very_deep", "abyss", "huge"])
async def test_too_deep_or_too_large_is_a_preview_plus_the_whole_as_an_artifact(
        manager: TaskManager, kind: str) -> None:
    job = await manager.submit("hostile_value", kind=kind, mode="job")
    done = await manager.wait(job.id, timeout=120)
    assert done.status == "succeeded", done.error
    assert set(done.result) == {"preview", "artifact", "chars", "reason"}
    assert done.result["artifact"] == RESULT_ARTIFACT
    artifact = await manager.store.get_artifact(job.id, RESULT_ARTIFACT)
    assert artifact is not None and artifact.size == done.result["chars"]
    text = manager.store.artifact_path(artifact).read_text()
    assert text.startswith(done.result["preview"][:100])
    if kind == "huge":
        assert json.loads(text) == ["x" * 1000] * 1000
    else:  # too deep for json.loads here; the brackets tell the depth
        depth = DEPTHS[kind]
        assert text == "[" * depth + "]" * depth


async def test_objects_and_huge_ints_are_stored_by_the_rule(manager: TaskManager) -> None:
    obj = await manager.wait((await manager.submit(
        "hostile_value", kind="object", mode="job")).id, timeout=20)
    assert obj.status == "succeeded" and obj.result.startswith("<object object at")
    big = await manager.wait((await manager.submit(
        "hostile_value", kind="big_int", mode="job")).id, timeout=20)
    assert big.status == "succeeded" and big.result == hex(10 ** 5000)


async def test_a_huge_int_is_stored_as_hex_where_the_int_limit_was_raised(
        manager: TaskManager) -> None:
    # before: a process that had lifted Python's int-to-text limit (a notebook doing
    # number theory) stored 10**5000 as 5,001 digits, which every other process, at the
    # default limit, read as {"unreadable": "ValueError: Exceeds the limit ..."}
    import sys

    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        task = await manager.submit("hostile_value", kind="big_int", mode="background")
        await manager.wait(task.id, timeout=20)
    finally:
        sys.set_int_max_str_digits(before)
    done = await manager.store.require_task(task.id)  # read back at the default limit
    assert done.status == "succeeded" and done.result == hex(10 ** 5000), str(done.result)[:80]
    assert done.value_notes and "hex" in done.value_notes[0]["stored_as"], done.value_notes


class ArrayLike:
    """An array as numpy's look: a size, a shape, a dtype; its tolist() is counted."""

    calls = 0

    def __init__(self, size: int) -> None:
        self.size, self.shape, self.dtype = size, (size,), "float64"

    def tolist(self) -> list[float]:
        ArrayLike.calls += 1
        return [0.5] * self.size


async def test_an_array_too_large_to_store_is_a_summary_not_gigabytes_of_json(
        manager: TaskManager) -> None:
    # before: a cell that ended in np.random.rand(20_000_000) (160 MB) froze its kernel
    # for 11.7 s and took 1.7 GB there, to write a 385 MB result.json no one reads
    import numpy as np

    big = np.zeros(3_000_000)
    task = await manager.submit(lambda: {"weights": big, "epochs": 3}, mode="background")
    done = await manager.wait(task.id, timeout=60)
    assert done.status == "succeeded", done.error
    assert done.result["epochs"] == 3
    summary = done.result["weights"]
    assert summary.startswith("<ndarray of shape (3000000,), float64: 3,000,000 items"), summary
    [note] = done.value_notes
    assert note["path"] == "result['weights']" and "3,000,000 items" in note["original"], note
    assert await manager.store.get_artifact(task.id, RESULT_ARTIFACT) is None
    assert (await manager.result(task.id, timeout=1))["weights"] is big  # still here whole
    # never turned into a list at all (that alone took the time and the memory)
    ArrayLike.calls = 0
    counted = await manager.wait((await manager.submit(
        lambda: ArrayLike(20_000_000), mode="background")).id, timeout=60)
    assert counted.status == "succeeded" and ArrayLike.calls == 0, counted.result
    # a job's is its result whole, as an artifact: the process that ran it is gone once
    # it ends (the summary would lose the data)
    job = await manager.wait((await manager.submit(
        "hostile_value", kind="big_array", mode="job")).id, timeout=120)
    assert job.status == "succeeded" and set(job.result) == {"preview", "artifact", "chars",
                                                              "reason"}, job.result
    artifact = await manager.store.get_artifact(job.id, RESULT_ARTIFACT)
    assert json.loads(manager.store.artifact_path(artifact).read_text()) == \
        list(range(1_500_000))
    # one within the bound is stored as its list, as before
    small = await manager.wait((await manager.submit(
        lambda: np.arange(5), mode="background")).id, timeout=60)
    assert small.result == [0, 1, 2, 3, 4]


async def test_background_and_sync_results_follow_the_same_rule(manager: TaskManager) -> None:
    task = await manager.submit(lambda: {"loss": float("nan")}, mode="background")
    done = await manager.wait(task.id, timeout=10)
    assert done.status == "succeeded" and done.result == {"loss": None}
    # this process still holds the real value
    value = await manager.result(task.id, timeout=1)
    assert value["loss"] != value["loss"]
    now = await manager.submit(lambda: float("inf"), mode="sync")
    assert (now.status, now.result) == ("succeeded", None)


async def test_nan_progress_never_wedges_the_task(manager: TaskManager, db_path: Path) -> None:
    job = await manager.submit("nan_progress", steps=30, mode="job")
    done = await manager.wait(job.id, timeout=20)
    assert done.status == "succeeded"
    assert done.progress == {"current": None, "total": None, "message": "diverged"}
    for (text,) in raw_rows(db_path, "SELECT task FROM events WHERE task_id = ?", job.id):
        strict_loads(text)


async def test_a_refused_end_is_written_failed_not_left_running(
        manager: TaskManager, monkeypatch: pytest.MonkeyPatch) -> None:
    from jupyter_tasks.engine import execution as manager_module

    def refuse(value: Any, **kwargs: Any) -> Any:
        if kwargs.get("where") == "result":
            raise RuntimeError("the disk said no")
        return real(value, **kwargs)

    real = manager_module.encode_value
    monkeypatch.setattr(manager_module, "encode_value", refuse)
    job = await manager.submit("hostile_value", kind="nan", mode="job", max_retries=0)
    done = await manager.wait(job.id, timeout=20)
    assert done.status == "failed"
    assert "the disk said no" in done.error["message"]


# ------------------------------------------------------ finding 2: neighbours


async def test_a_bad_writer_does_not_cost_its_neighbours_their_lines(
        manager: TaskManager) -> None:
    bad = await manager.submit("nan_progress", steps=200, mode="job")
    good = [await manager.submit("chatty", lines=100, mode="job") for _ in range(2)]
    for task in (*good, bad):
        done = await manager.wait(task.id, timeout=30)
        assert done.status == "succeeded", done.error
    for task in good:
        logs = await manager.store.get_logs(task.id)
        assert "".join(e.text for e in logs).count("line ") == 100


# ------------------------------------------------- finding 3: reads never crash


def nested_text(depth: int) -> str:
    return "[" * depth + "]" * depth


WORST = {
    "deep_result": ("result", nested_text(980)),
    "nan_text": ("result", '{"loss": NaN}'),
    "not_json": ("progress", "{not json"),
    "deep_params": ("params", '{"a": ' + nested_text(990) + "}"),
}


def plant_worst_rows(db_path: Path, template_id: str) -> list[str]:
    """Copy a finished task's row under new ids with the worst column values, straight in SQL."""
    ids = []
    with sqlite3.connect(db_path) as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(tasks)")]
        row = conn.execute("SELECT * FROM tasks WHERE id = ?", (template_id,)).fetchone()
        for column, text in WORST.values():
            values = dict(zip(columns, row, strict=True))
            # fresh ids: the template's own with its last two digits replaced collided
            # with the template when its id ended in 00..03 (a CI run hit it)
            values["id"] = uuid.uuid4().hex
            values[column] = text
            conn.execute(f"INSERT INTO tasks ({','.join(columns)}) "
                         f"VALUES ({','.join('?' * len(columns))})", list(values.values()))
            conn.execute("INSERT INTO events (task_id, type, ts, owner, task) "
                         "VALUES (?, 'task.succeeded', ?, ?, ?)",
                         (values["id"], time.time(), values["owner"],
                          f'{{"id": "{values["id"]}", "result": {nested_text(980)}}}'))
            ids.append(values["id"])
    return ids


@pytest.fixture
def tasks_config() -> dict[str, Any]:
    from tests.server.conftest import TASKS_MODULE

    # by module name: the same module this file imported, so its tasks register once
    return {"task_modules": [str(TASKS_MODULE), "tests.reliability.hostile_tasks"]}


async def test_list_get_and_replay_survive_the_worst_rows(api, tasks_app, jp_ws_fetch,
                                                           db_path: Path) -> None:
    template = await api.submit({"name": "srv_job", "params": {"value": 1}})
    await eventually(lambda: _status_is(api, template["id"], "succeeded"), what="template done")
    planted = plant_worst_rows(db_path, template["id"])
    for query in ({}, {"status": "succeeded"}, {"limit": "500"}):
        listed = await api.get(params=query)
        assert listed.code == 200, listed.body[:300]
        assert set(planted) <= {t["id"] for t in strict_loads(listed.body)["tasks"]}
    for task_id in planted:
        for view in ({}, {"view": "full"}):
            one = await api.get(task_id, params=view)
            assert one.code == 200, one.body[:300]
            strict_loads(one.body)
        result = await api.get(task_id, "result")
        assert result.code == 200, result.body[:300]
    ws = await jp_ws_fetch("api", "tasks", "events", params={"since": "0"})
    seen: set[str] = set()
    while not set(planted) <= seen:
        raw = await asyncio.wait_for(ws.read_message(), 20)
        assert raw is not None, "the websocket closed during replay"
        seen.add(strict_loads(raw)["task_id"])
    ws.close()
    # and the rows can still be acted on: deleting one writes an event from its snapshot
    deleted = await api.call("DELETE", planted[0])
    assert deleted.code == 204, deleted.body[:300]


async def _status_is(api: Any, task_id: str, status: str) -> bool:
    return (await api.get(task_id)).json["status"] == status


async def test_a_nan_result_over_rest_and_websocket(api, tasks_app, jp_ws_fetch) -> None:
    ws = await jp_ws_fetch("api", "tasks", "events", params={"since": "0"})
    task = await api.submit({"name": "hostile_value", "params": {"kind": "loss_dict"}})
    await eventually(lambda: _status_is(api, task["id"], "succeeded"), what="task ends")
    full = await api.get(task["id"], params={"view": "full"})
    body = strict_loads(full.body)
    assert body["result"]["loss"] is None
    assert {"path": "result['loss']", "original": "nan", "stored_as": "null"} \
        in body["value_notes"]
    while True:
        raw = await asyncio.wait_for(ws.read_message(), 20)
        assert raw is not None
        message = strict_loads(raw)
        if message["task_id"] == task["id"] and message["type"] == "task.succeeded":
            assert message["task"]["result"]["loss"] is None
            break
    ws.close()


# -------------------------------------------------------- finding 8: inputs


async def count_rows(db_path: Path) -> tuple[int, int]:
    (tasks,), = raw_rows(db_path, "SELECT count(*) FROM tasks")
    (events,), = raw_rows(db_path, "SELECT count(*) FROM events")
    return tasks, events


@pytest.mark.parametrize("route, body", [
    ((), b'{"name": "srv_add", "params": {"a": 1e999}}'),
    ((), b'{"name": "srv_add", "params": {"a": -1e999}}'),
    ((), b'{"notebook": "x.ipynb", "parameters": {"alpha": 1e999}}'),
    ((), b'{"code": "print(1)", "input_data": {"x": [1, 2, 1e400]}}'),
    ((), b'{"name": "srv_add", "params": {"a": 1}, "priority": 1e999}'),
    ((), b'{"name": "srv_add", "params": {"a": ' + b"[" * 150 + b"]" * 150 + b"}}"),
    (("registry", "srv_add", "execute"), b'{"params": {"a": 1e999}}'),
    ((), b'{"command": ["echo", "a\\u0000b"]}'),
    ((), b'{"command": ["env"], "env": {"A": "x\\u0000y"}}'),
    ((), b'{"command": ["env"], "env": {"A=B": "x"}}'),
    ((), b'{"command": ["env"], "env": {"": "x"}}'),
    # before: 202, then a failure blaming "the shim leading the process group of ''"
    ((), b'{"command": [""]}'),
    # valid JSON past what Python's parser takes: before, 400 "malformed JSON body:
    # maximum recursion depth exceeded", and "use sys.set_int_max_str_digits()"
    ((), b'{"name": "srv_add", "params": {"a": ' + b"[" * 5000 + b"]" * 5000 + b"}}"),
    ((), b'{"name": "srv_add", "params": {"a": 1}, "priority": ' + b"1" * 4301 + b"}"),
])
async def test_unstorable_input_is_a_422_with_nothing_written(
        api, tasks_app, db_path: Path, route: tuple[str, ...], body: bytes) -> None:
    before = await count_rows(db_path)
    response = await api.post(*route, raw=body)
    assert response.code == 422, (response.code, response.body[:300])
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json["errors"], response.json
    assert await count_rows(db_path) == before


async def test_fork_overrides_that_overflow_are_a_422(api, tasks_app, db_path: Path) -> None:
    task = await api.submit({"name": "srv_job", "params": {"value": 1}})
    await eventually(lambda: _status_is(api, task["id"], "succeeded"), what="task ends")
    before = await count_rows(db_path)
    response = await api.post(task["id"], "fork", raw=b'{"params": {"value": 1e999}}')
    assert response.code == 422, (response.code, response.body[:300])
    assert await count_rows(db_path) == before


async def test_a_long_search_is_a_422_and_wildcards_are_text(api, tasks_app) -> None:
    await api.submit({"name": "srv_job", "params": {"value": 1}})
    long = await api.get(params={"search": "a" * 50_000})
    assert long.code == 422, long.body[:300]
    assert (await api.get(params={"search": "%"})).json["tasks"] == []


async def test_python_submit_refuses_inputs_a_job_cannot_run_with(manager: TaskManager) -> None:
    with pytest.raises(ValueNotStorable, match=r"\['input_data'\]\['a'\]"):
        await manager.submit_spec({"code": "print(1)", "input_data": {"a": float("nan")}})
    with pytest.raises(InvalidCommand, match="NUL"):
        await manager.submit(["echo", "a\0b"], mode="job")
    with pytest.raises(InvalidRequest, match="'='"):
        await manager.submit(["env"], env={"A=B": "1"}, mode="job")
    assert await manager.store.count_tasks() == 0


@pytest.mark.parametrize(("params", "path", "why"), [
    ({"x": {1: "one"}}, r"\['x'\]\[1\]", "a key of type int"),
    ({"x": {None: "n", "b": 2}}, r"\['x'\]\[None\]", "a key of type NoneType"),
    ({"x": [{2.5: "f"}]}, r"\['x'\]\[0\]\[2.5\]", "a key of type float"),
    ({"x": {"s": {1, 2}}}, r"\['x'\]\['s'\]", "a set is not JSON"),
])
async def test_inputs_that_would_reach_the_job_changed_are_refused_naming_the_path(
        manager: TaskManager, params: dict, path: str, why: str) -> None:
    # before: {1: "one"} ran as {"1": "one"} (`1 in x` false in the job, true in sync
    # mode), and a set was refused with a message that named no path
    with pytest.raises(ValueNotStorable, match=f"\\['input_data'\\]{path}: {why}"):
        await manager.submit_spec({"code": "print(1)", "input_data": params})
    assert await manager.store.count_tasks() == 0


async def test_numpy_scalars_are_taken_as_the_numbers_they_hold(manager: TaskManager) -> None:
    # before: a loop over a DataFrame column (`submit(n=row.n)`, an np.int64) was refused
    # with "spec is not storable JSON: spec: cannot be stored as JSON", naming nothing,
    # while an np.float64 (a float subclass) went through
    np = pytest.importorskip("numpy")
    given = {"i": np.int64(3), "f": np.float32(0.5), "b": np.bool_(True), "u": np.uint8(255),
             "nested": [np.int16(-2), {"x": np.float64(1.25)}]}
    task = await manager.submit_spec({"name": "echo_types", "params": {"values": given}},
                                     mode="job")
    done = await manager.wait(task.id, timeout=60)
    assert done.status == "succeeded", done.error
    assert done.result == {"i": [3, "int"], "f": [0.5, "float"], "b": [True, "bool"],
                           "u": [255, "int"], "nested": [[-2, {"x": 1.25}], "list"]}


async def test_numpy_scalars_meet_int_float_and_bool_annotations(manager: TaskManager) -> None:
    # before: "n: expected int, got int64", and "flag: expected bool, got bool"
    np = pytest.importorskip("numpy")
    params = {"n": np.int64(7), "x": np.float32(0.25), "flag": np.bool_(True)}
    task = await manager.submit_spec({"name": "typed_numbers", "params": params}, mode="job")
    done = await manager.wait(task.id, timeout=60)
    assert done.result == [7, 0.25, True, "int"], done.error
    with pytest.raises(InvalidParameters, match="n: expected int, got float"):
        await manager.submit_spec({"name": "typed_numbers",
                                   "params": {**params, "n": np.float64(7.5)}}, mode="job")


async def test_an_array_as_input_is_refused_naming_its_path(manager: TaskManager) -> None:
    # an array would reach the job as a list: said, as a set is, not changed silently
    np = pytest.importorskip("numpy")
    with pytest.raises(ValueNotStorable,
                       match=r"\['input_data'\]\['xs'\]: an object of type ndarray .*tolist"):
        await manager.submit_spec({"code": "print(1)", "input_data": {"xs": np.arange(3)}})
    with pytest.raises(ValueNotStorable, match=r"\['input_data'\]\['n'\]: nan"):
        await manager.submit_spec({"code": "print(1)", "input_data": {"n": np.float64("nan")}})
    assert await manager.store.count_tasks() == 0


async def test_params_too_large_for_every_list_are_refused_from_python(
        manager: TaskManager) -> None:
    # before: a 5 MB param given from a notebook was stored in the row, and every list
    # page (the panel's, each refresh) and every event of the task carried all of it;
    # over REST the body limit (1 MiB) had always kept params smaller
    with pytest.raises(ValueNotStorable, match=r"params: .*bytes of JSON; the limit is"):
        await manager.submit_spec({"name": "echo_types",
                                   "params": {"values": {"blob": "z" * (MAX_PARAMS_BYTES + 1)}}},
                                  mode="job")
    assert await manager.store.count_tasks() == 0
    # what fits a REST body fits: non-ASCII text counts as its UTF-8 bytes, not the
    # six characters of its JSON escape
    wide = {"values": {"text": "é" * (MAX_PARAMS_BYTES // 2 - 100)}}
    task = await manager.submit_spec({"name": "echo_types", "params": wide}, mode="job")
    assert (await manager.wait(task.id, timeout=60)).status == "succeeded"


async def test_labels_and_keys_from_python_are_bounded_as_over_rest(
        manager: TaskManager) -> None:
    # before: a 5 MB label or task key given from Python was stored (REST refuses past
    # 1,000 characters), and a command's label, its argv, was as long as the argv
    task = await manager.submit_spec({"code": "print(1)"}, mode="job", label="L" * 5_000_000)
    assert len(task.label) == MAX_TEXT_CHARS and task.label.endswith("…")
    argv = ["echo", "y" * 100_000]
    command = await manager.submit(argv, mode="job")
    assert len(command.label) == MAX_TEXT_CHARS
    assert (await manager.wait(command.id, timeout=60)).status == "succeeded"
    assert (await manager.get(command.id)).spec["command"] == argv
    for key in ("task_key", "idempotency_key"):
        with pytest.raises(InvalidRequest, match=f"{key}: must be .*at most 1000 characters"):
            await manager.submit_spec({"code": "print(1)"}, mode="job", **{key: "k" * 1001})
    assert await manager.store.count_tasks() == 2


def test_the_depth_bound_is_far_below_what_readers_handle() -> None:
    # the reason for the bound: a list answer wraps a task in 4 more levels
    assert MAX_DEPTH + 10 < 900
