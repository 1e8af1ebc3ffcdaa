"""Every REST route and error code (docs/reference/rest-api.md) through pytest-jupyter's server."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from tornado.simple_httpclient import HTTPTimeoutError

from jupyter_tasks.manager import LOOPBACK_HOSTS
from tests.waiting import eventually

TASK_FIELDS = {
    "id", "kind", "mode", "name", "label", "status", "params", "result", "error", "progress",
    "task_key", "idempotency_key", "queue", "priority", "owner", "origin", "attempts",
    "max_retries", "timeout", "parent_id", "relationship", "cancel_requested", "confirmation",
    "created_at", "started_at", "finished_at",
}
PARKED = "parked"  # a queue no worker serves: tasks stay queued


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.code == status, (response.code, response.body[:500])
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json
    assert {"type", "title", "status", "detail", "errors"} <= set(body)
    assert body["status"] == status
    return body


async def finished(api: Any, task_id: str, timeout: float = 20) -> dict[str, Any]:
    response = await api.get(task_id, "result", params={"timeout": timeout})
    assert response.code == 200, response.json
    return (await api.get(task_id)).json


# ------------------------------------------------------------------ submit


async def test_submit_returns_202_location_and_task(api, jp_base_url):
    response = await api.post(body={"name": "srv_job", "params": {"value": 7}, "label": "seven"})
    assert response.code == 202
    task = response.json
    assert set(task) >= TASK_FIELDS
    assert task["deduplicated"] is False
    assert task["kind"] == "function" and task["mode"] == "job" and task["label"] == "seven"
    assert response.headers["Location"] == f"{jp_base_url}api/tasks/{task['id']}"
    assert task["origin"]["type"] == "rest"
    done = await finished(api, task["id"])
    assert done["status"] == "succeeded" and done["result"] == {"value": 7}
    assert done["attempts"] == 1


async def test_a_memory_limit_is_refused_where_it_cannot_be_enforced(api):
    # before: a registered function's limit was accepted and never enforced
    for response in (await api.post(body={"name": "srv_job", "memory_limit_mb": 100}),
                     await api.post("schedules", body={
                         "name": "n", "cron": "0 3 * * *",
                         "job": {"name": "srv_job", "memory_limit_mb": 100}})):
        problem = assert_problem(response, 422)
        assert [e["field"] for e in problem["errors"]] in (
            ["memory_limit_mb"], ["job.memory_limit_mb"]), problem
    limited = await api.submit({"code": "x = 1", "memory_limit_mb": 100, "queue": PARKED})
    assert limited["kind"] == "code"


async def test_submit_command_job_runs_in_the_server(api, jp_root_dir):
    (jp_root_dir / "sub").mkdir()
    task = await api.submit({"command": ["python", "-c", "import os; print(os.getcwd())"],
                             "cwd": "sub"})
    assert task["kind"] == "subprocess"
    done = await finished(api, task["id"])
    assert done["status"] == "succeeded", done["error"]
    logs = (await api.get(task["id"], "logs")).json
    assert "".join(e["text"] for e in logs["entries"]).strip().endswith("sub")


@pytest.mark.parametrize("body, field", [
    ({"name": "srv_job", "surprise": 1}, "surprise"),
    ({}, "name"),
    ({"name": "srv_job", "command": ["ls"]}, "name,command"),
    ({"name": 5}, "name"),
    ({"command": "ls -l"}, "command"),
    ({"name": "srv_job", "priority": "high"}, "priority"),
    ({"name": "srv_job", "priority": True}, "priority"),
    ({"name": "srv_job", "timeout": -1}, "timeout"),
    ({"name": "srv_job", "max_retries": 1.5}, "max_retries"),
    ({"name": "srv_job", "params": [1]}, "params"),
    ({"command": ["ls"], "params": {}}, "params"),
    ({"name": "srv_job", "queue": "no spaces"}, "queue"),
    ({"command": ["ls"], "cwd": "../outside"}, "cwd"),
    ({"command": ["ls"], "env": {"A": 1}}, "env"),
])
async def test_submit_rejects_bad_bodies_with_422(api, body, field):
    response = await api.post(body=body)
    problem = assert_problem(response, 422)
    assert field in {e["field"] for e in problem["errors"]}, problem
    assert (await api.get(params={"limit": 500})).json["tasks"] == []  # nothing half-written


async def test_a_lone_surrogate_is_a_422_naming_where_it_is(api, tasks_app):
    # before: 400 "malformed JSON body: 'utf-8' codec can't encode character '\\ud800' in
    # position 34" for valid JSON, the position one in a text the client never sent
    before = await tasks_app.manager.store.count_tasks()
    raw = b'{"name": "srv_job", "params": {"value": "a\\ud800"}, "queue": "parked"}'
    problem = assert_problem(await api.post(raw=raw), 422)
    assert problem["errors"][0]["field"] == "params.value", problem
    assert "lone surrogate" in problem["errors"][0]["message"], problem
    keyed = b'{"name": "srv_job", "params": {"\\udc00k": 1}}'
    assert assert_problem(await api.post(raw=keyed), 422)["errors"][0]["field"] == "params"
    assert await tasks_app.manager.store.count_tasks() == before


async def test_a_key_given_twice_in_one_object_is_a_422_naming_it(api, tasks_app):
    # before: the last one won, silently: {"i": 1, "i": 2} ran with 2, while another
    # JSON reader (a proxy, a log viewer, the client's own checks) may take the first
    before = await tasks_app.manager.store.count_tasks()
    raw = b'{"name": "srv_job", "params": {"i": 1, "i": 2}, "queue": "parked"}'
    problem = assert_problem(await api.post(raw=raw), 422)
    assert problem["errors"][0]["field"] == "params.i", problem
    assert "more than once" in problem["errors"][0]["message"], problem
    top = b'{"name": "srv_job", "queue": "parked", "queue": "default"}'
    assert assert_problem(await api.post(raw=top), 422)["errors"][0]["field"] == "queue"
    # an object holding a key twice, itself dropped by its parent's key given twice: the
    # parent's is named (before: a 500, the first one looked for where it no longer was)
    dropped = b'{"name": "srv_job", "params": {"i": {"x": 1, "x": 2}, "i": 3}}'
    assert assert_problem(await api.post(raw=dropped), 422)["errors"][0]["field"] \
        == "params.i"
    assert await tasks_app.manager.store.count_tasks() == before


async def test_submit_error_codes(api):
    assert_problem(await api.post(raw=b"{not json"), 400)
    assert_problem(await api.post(raw=b""), 400)
    assert_problem(await api.post(raw=b'{"name": NaN}'), 400)
    assert_problem(await api.post(body=[1, 2]), 422)
    assert_problem(await api.post(body={"name": "no_such_task"}), 404)
    problem = assert_problem(await api.post(body={"name": "srv_add", "params": {"b": "x",
                                                                              "c": 1}}), 422)
    # named where the body holds them: a parameter is not taken for a submit option
    assert {e["field"] for e in problem["errors"]} == {"params.a", "params.b", "params.c"}
    callback = await api.post(body={"name": "srv_job",
                                    "callback_url": "http://169.254.169.254/latest"})
    assert "callback_url" in {e["field"] for e in assert_problem(callback, 422)["errors"]}
    assert "127.0.0.1" in LOOPBACK_HOSTS


@pytest.mark.parametrize(("method", "parts", "allowed"), [
    ("PUT", ("00000000000000000000000000000000",), {"GET", "DELETE", "OPTIONS"}),
    ("TRACE", ("stats",), {"GET", "OPTIONS"}),
    ("GET", ("00000000000000000000000000000000", "cancel"), {"POST", "OPTIONS"}),
])
async def test_a_method_a_route_lacks_is_405_naming_the_ones_it_has(api, method, parts,
                                                                     allowed):
    # RFC 9110: a 405 carries Allow, so a client can see what it may do instead
    response = await api.call(method, *parts)
    assert_problem(response, 405)
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == allowed


async def test_body_over_limit_is_413(api, tasks_app):
    big = {"name": "srv_job", "label": "x" * (tasks_app.max_body_bytes + 10)}
    assert_problem(await api.post(body=big), 413)


async def test_idempotency_key_header_and_body(api):
    body = {"name": "srv_job", "params": {"value": 1}, "queue": PARKED}
    first = await api.post(body=body, headers={"Idempotency-Key": "pay-1"})
    assert first.code == 202 and first.json["idempotency_key"] == "pay-1"
    again = await api.post(body={**body, "idempotency_key": "pay-1"})
    assert again.code == 200
    assert again.json["deduplicated"] is True and again.json["id"] == first.json["id"]
    other = await api.post(body={**body, "params": {"value": 2}},
                           headers={"Idempotency-Key": "pay-1"})
    assert_problem(other, 409)
    mismatch = await api.post(body={**body, "idempotency_key": "a"},
                              headers={"Idempotency-Key": "b"})
    assert_problem(mismatch, 422)
    listed = (await api.get(params={"idempotency_key": "pay-1"})).json["tasks"]
    assert [t["id"] for t in listed] == [first.json["id"]]


async def test_a_repeat_that_spells_out_a_default_is_the_same_payload(api):
    # before: 409 "reused with another payload" for a retry whose body (or the CLI's)
    # gave priority 0, max_retries 2 or the default queue, the very values stored
    body = {"name": "srv_job", "params": {"value": 1}}
    first = await api.post(body=body, headers={"Idempotency-Key": "spelled"})
    assert first.code == 202, first.json
    for extra in ({"priority": 0}, {"queue": "default"}, {"max_retries": 2},
                  {"priority": 0, "queue": "default", "max_retries": 2}):
        again = await api.post(body={**body, **extra}, headers={"Idempotency-Key": "spelled"})
        assert again.code == 200 and again.json["id"] == first.json["id"], (extra, again.json)
    other = await api.post(body={**body, "priority": 1}, headers={"Idempotency-Key": "spelled"})
    assert_problem(other, 409)
    await api.post(first.json["id"], "cancel")


async def test_a_submit_refuses_options_given_in_the_query(api, tasks_app):
    # before: POST /api/tasks?idempotency_key=x twice made two tasks (the query was
    # dropped without a word)
    before = await tasks_app.manager.store.count_tasks()
    body = {"name": "srv_job", "params": {"value": 1}, "queue": PARKED}
    for _ in range(2):
        response = await api.post(body=body, params={"idempotency_key": "in-the-query"})
        problem = assert_problem(response, 422)
        assert problem["errors"][0]["field"] == "idempotency_key", problem
    assert await tasks_app.manager.store.count_tasks() == before


async def test_task_key_returns_the_active_task(api):
    first = await api.submit({"name": "srv_job", "task_key": "reports.2026-04", "queue": PARKED})
    second = await api.post(body={"name": "srv_job", "task_key": "reports.2026-04",
                                  "queue": PARKED})
    assert second.code == 200 and second.json["id"] == first["id"]
    assert second.json["deduplicated"] is True


# -------------------------------------------------------------- list, get


async def test_list_filters_and_cursor_paging(api):
    ids = [(await api.submit({"name": "srv_job", "params": {"value": i}, "queue": PARKED,
                              "task_key": f"k.{i}"}))["id"] for i in range(5)]
    other = await api.submit({"name": "srv_add", "params": {"a": 1}, "queue": PARKED})
    newest_first = [other["id"], *reversed(ids)]
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get(params=params)).json
        seen += [t["id"] for t in page["tasks"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == newest_first
    by_name = (await api.get(params={"name": "srv_add"})).json["tasks"]
    assert [t["id"] for t in by_name] == [other["id"]]
    prefix = (await api.get(params={"key_prefix": "k."})).json["tasks"]
    assert len(prefix) == 5
    assert (await api.get(params={"task_key": "k.3"})).json["tasks"][0]["id"] == ids[3]
    queued = (await api.get(params={"status": "queued", "queue": PARKED})).json["tasks"]
    assert len(queued) == 6
    assert (await api.get(params={"status": "succeeded", "queue": PARKED})).json["tasks"] == []
    assert len((await api.get(params={"kind": "function"})).json["tasks"]) == 6
    assert (await api.get(params={"owner": "nobody-else"})).json["tasks"] == []
    listed = (await api.get()).json
    assert set(listed["tasks"][0]) >= TASK_FIELDS and listed["next_cursor"] is None


@pytest.mark.parametrize("params", [
    {"limit": 501}, {"limit": 0}, {"limit": "many"}, {"status": "bogus"}, {"kind": "bogus"},
    {"cursor": "not-an-id"},
    # int() takes these; a number in a query is plain ASCII digits
    {"limit": "1_0"}, {"limit": "+5"}, {"limit": "\u0665"}, {"limit": "9" * 5000},
])
async def test_list_rejects_bad_query_with_422(api, params):
    assert_problem(await api.get(params=params), 422)


@pytest.mark.parametrize("key", ["report ", " report", "ctl\u0001x", "tab\tx", "nul\u0000x"])
async def test_a_key_is_found_by_its_filter_as_it_was_stored(api, key):
    # before: the query's value went through tornado's get_argument, which strips spaces
    # and turns control characters into spaces: a key stored with either (202) was never
    # found by its own filter, so a script could not look up the task it had keyed
    task = await api.submit({"name": "srv_job", "queue": PARKED, "task_key": key,
                             "idempotency_key": key, "label": key})
    for field in ("task_key", "idempotency_key"):
        found = (await api.get(params={field: key})).json["tasks"]
        assert [t["id"] for t in found] == [task["id"]], (field, found)


async def test_a_misspelt_list_filter_is_a_422_not_every_task(api, jp_auth_header):
    # before: ?stauts=failed was ignored and every task listed, as if all had failed
    problem = assert_problem(await api.get(params={"stauts": "failed"}), 422)
    assert problem["errors"] == [{"field": "stauts", "message": "unknown query parameter"}]
    # the token in the query, as a curl line may give it
    token = jp_auth_header["Authorization"].split(" ", 1)[1]
    assert (await api.get(params={"token": token, "status": "failed"})).code == 200
    # the cache buster JupyterLab's ServerConnection appends to the panel's requests
    assert (await api.get(params={"1796593387127": ""})).code == 200
    assert_problem(await api.get(params={"1796593387127": "x"}), 422)


@pytest.mark.parametrize("route, misspelt", [
    (("{id}",), "veiw"), (("{id}", "result"), "timout"), (("{id}", "logs"), "aftr"),
    (("registry",), "tag"), (("registry", "srv_job"), "x"), (("stats",), "owner")])
async def test_a_misspelt_query_parameter_is_a_422_on_every_route(api, route, misspelt):
    # before: ignored on every route but the lists: /result?timout=30 answered at once,
    # /logs?aftr=5 from the start, /registry?tag=x with every task
    task = await api.submit({"name": "srv_job", "queue": PARKED})
    parts = [task["id"] if part == "{id}" else part for part in route]
    problem = assert_problem(await api.get(*parts, params={misspelt: "5"}), 422)
    assert problem["errors"] == [{"field": misspelt, "message": "unknown query parameter"}]
    assert (await api.get(*parts, params={"1796593387127": ""})).code in (200, 202)


async def test_get_one_and_full_view(api):
    task = await api.submit({"name": "srv_artifact"})
    done = await finished(api, task["id"])
    assert done["status"] == "succeeded"
    child = (await api.post(task["id"], "rerun")).json
    full = (await api.get(task["id"], params={"view": "full"})).json
    assert set(full) >= TASK_FIELDS
    assert [a["name"] for a in full["artifacts"]] == ["report.csv"]
    assert full["resource_usage"]["wall_seconds"] >= 0
    assert "spec" in full["content_hashes"]
    assert full["worker"]["kind"] == "server"
    assert [c["id"] for c in full["children"]] == [child["id"]]
    plain = (await api.get(task["id"])).json
    assert "artifacts" not in plain
    assert_problem(await api.get(task["id"], params={"view": "weird"}), 422)
    assert_problem(await api.get("0" * 32), 404)


async def test_route_patterns_never_take_names_for_ids(api):
    assert (await api.get("registry")).code == 200
    assert (await api.get("stats")).code == 200
    assert (await api.get("openapi.json")).code == 200
    assert_problem(await api.get("NOT-A-TASK-ID"), 404)
    assert_problem(await api.get("0" * 31), 404)
    assert_problem(await api.get("0" * 32, "nothing"), 404)


# ------------------------------------------------------------ result, logs


async def test_result_long_poll(api):
    task = await api.submit({"name": "srv_slow", "params": {"seconds": 1.0, "steps": 10}})
    early = await api.get(task["id"], "result", params={"timeout": 0})
    assert early.code == 202 and early.json["id"] == task["id"]
    assert early.json["status"] in ("queued", "running")
    late = await api.get(task["id"], "result", params={"timeout": 30})
    assert late.code == 200
    assert late.json == {"id": task["id"], "status": "succeeded", "result": "slept",
                         "error": None}
    assert_problem(await api.get(task["id"], "result", params={"timeout": 301}), 422)
    assert_problem(await api.get(task["id"], "result", params={"timeout": "soon"}), 422)
    for odd in ("1_0", "\u0665", "0x1"):  # float() takes all but the last
        assert_problem(await api.get(task["id"], "result", params={"timeout": odd}), 422)
    assert_problem(await api.get("f" * 32, "result"), 404)


async def test_logs_after_a_sequence_number(api):
    task = await api.submit({"name": "srv_slow", "params": {"seconds": 0.3, "steps": 6}})
    await finished(api, task["id"])
    everything = (await api.get(task["id"], "logs")).json
    texts = "".join(e["text"] for e in everything["entries"])
    assert [f"step {i}" for i in range(1, 7)] == texts.split()[1::2] or "step 6" in texts
    assert {"seq", "ts", "stream", "text"} <= set(everything["entries"][0])
    first_seq = everything["entries"][0]["seq"]
    after = (await api.get(task["id"], "logs", params={"after": first_seq})).json
    assert [e["seq"] for e in after["entries"]] == [e["seq"] for e in everything["entries"][1:]]
    assert after["next"] == everything["next"] == everything["entries"][-1]["seq"]
    page = (await api.get(task["id"], "logs", params={"after": 0, "limit": 1})).json
    assert len(page["entries"]) == 1 and page["next"] == first_seq
    empty = (await api.get(task["id"], "logs", params={"after": everything["next"]})).json
    assert empty == {"entries": [], "next": everything["next"]}
    assert_problem(await api.get(task["id"], "logs", params={"after": -1}), 422)
    assert_problem(await api.get("e" * 32, "logs"), 404)


# ---------------------------------------------------------------- actions


async def test_cancel_queued_running_and_finished(api):
    queued = await api.submit({"name": "srv_job", "queue": PARKED})
    response = await api.post(queued["id"], "cancel")
    assert response.code == 202 and response.json["status"] == "cancelled"
    again = await api.post(queued["id"], "cancel")
    assert again.code == 202 and again.json["status"] == "cancelled"

    running = await api.submit({"name": "srv_slow", "params": {"seconds": 30, "steps": 300}})

    async def is_running() -> bool:
        return (await api.get(running["id"])).json["status"] == "running"

    await eventually(is_running, what="slow job running")
    response = await api.post(running["id"], "cancel")
    assert response.code == 202
    assert response.json["cancel_requested"] is True or response.json["status"] == "cancelled"
    done = await finished(api, running["id"])
    assert done["status"] == "cancelled"

    quick = await api.submit({"name": "srv_job"})
    await finished(api, quick["id"])
    assert_problem(await api.post(quick["id"], "cancel"), 409)
    assert_problem(await api.post("a" * 32, "cancel"), 404)
    assert_problem(await api.post(quick["id"], "cancel", raw=b"{oops"), 400)


async def test_rerun_and_fork(api, jp_base_url):
    parent = await api.submit({"name": "srv_job", "params": {"value": 1}})
    await finished(api, parent["id"])
    rerun = await api.post(parent["id"], "rerun")
    assert rerun.code == 202
    assert rerun.headers["Location"] == f"{jp_base_url}api/tasks/{rerun.json['id']}"
    assert rerun.json["parent_id"] == parent["id"] and rerun.json["relationship"] == "rerun"
    assert rerun.json["params"] == {"value": 1}
    fork = await api.post(parent["id"], "fork", body={"params": {"value": 9}, "label": "nine"})
    assert fork.code == 202
    assert fork.json["relationship"] == "fork" and fork.json["label"] == "nine"
    assert (await finished(api, fork.json["id"]))["result"] == {"value": 9}
    assert_problem(await api.post(parent["id"], "fork", body={"command": ["ls"]}), 422)
    assert_problem(await api.post(parent["id"], "fork", body={"params": {"value": "x"}}), 422)
    assert_problem(await api.post(parent["id"], "fork", body={"label": 5}), 422)
    assert_problem(await api.post(parent["id"], "fork", raw=b"[}"), 400)
    assert_problem(await api.post("b" * 32, "rerun"), 404)
    # a rerun runs the same spec: changes in its body were ignored without a word
    # (the old params ran); they are refused, pointing at fork. An empty object is fine.
    tasks_before = (await api.get()).json["tasks"]
    problem = assert_problem(
        await api.post(parent["id"], "rerun", body={"params": {"value": 5}}), 422)
    assert "fork" in problem["detail"] and problem["errors"][0]["field"] == "params", problem
    assert (await api.get()).json["tasks"] == tasks_before  # nothing was queued
    assert (await api.post(parent["id"], "rerun", body={})).code == 202


async def test_confirm(api):
    started = await api.post("registry", "srv_confirm", "execute",
                             headers={"Prefer": "respond-async"})
    assert started.code == 202
    task_id = started.headers["X-Task-Id"]

    async def asking() -> Any:
        task = (await api.get(task_id)).json
        return task["confirmation"] and task["confirmation"]["choices"] == ["yes", "no"]

    await eventually(asking, what="confirmation pending")
    problem = assert_problem(await api.post(task_id, "confirm", body={"answer": "maybe"}), 422)
    assert problem["errors"][0]["field"] == "answer"
    assert_problem(await api.post(task_id, "confirm", body={"reply": "yes"}), 422)
    assert_problem(await api.post(task_id, "confirm", body={"answer": 1}), 422)
    # an answer naming another question (one answered and replaced while the sender's
    # view was stale) is refused, whole, in the store's transaction
    asked_at = (await api.get(task_id)).json["confirmation"]["asked_at"]
    stale = assert_problem(await api.post(task_id, "confirm",
                                          body={"answer": "yes", "asked_at": asked_at - 1}), 409)
    assert "no longer asks that question; it now asks 'proceed?'" in stale["detail"]
    assert_problem(await api.post(task_id, "confirm", body={"answer": "yes", "asked_at": "x"}),
                   422)
    answered = await api.post(task_id, "confirm", body={"answer": "yes", "asked_at": asked_at})
    assert answered.code == 200 and answered.json["confirmation"]["answer"] == "yes"
    assert_problem(await api.post(task_id, "confirm",
                                  body={"answer": "no", "asked_at": asked_at}), 409)
    done = await finished(api, task_id)
    assert done["result"] == "yes"
    assert_problem(await api.post(task_id, "confirm", body={"answer": "yes"}), 409)
    assert_problem(await api.post("c" * 32, "confirm", body={"answer": "yes"}), 404)


async def test_delete(api):
    active = await api.submit({"name": "srv_job", "queue": PARKED})
    assert_problem(await api.call("DELETE", active["id"]), 409)
    await api.post(active["id"], "cancel")
    response = await api.call("DELETE", active["id"])
    assert response.code == 204 and not response.body
    assert_problem(await api.get(active["id"]), 404)
    assert_problem(await api.call("DELETE", active["id"]), 404)


# -------------------------------------------------------------- artifacts


async def test_artifacts_etag_head_and_names(api):
    text = "x,y\n" + "1,2\n" * 1000
    task = await api.submit({"name": "srv_artifact", "params": {"text": text}})
    await finished(api, task["id"])
    sha = hashlib.sha256(text.encode()).hexdigest()
    listed = (await api.get(task["id"], "artifacts")).json
    assert listed == [{"name": "report.csv", "size": len(text), "sha256": sha,
                       "content_type": "text/csv", "created_at": listed[0]["created_at"]}]
    got = await api.get(task["id"], "artifacts", "report.csv")
    assert got.code == 200 and got.body == text.encode()
    assert got.headers["ETag"] == f'"{sha}"'
    assert got.headers["Content-Length"] == str(len(text))
    assert got.headers["Content-Type"] == "text/csv"
    head = await api.call("HEAD", task["id"], "artifacts", "report.csv")
    assert head.code == 200 and head.body == b""
    assert head.headers["ETag"] == f'"{sha}"' and head.headers["Content-Length"] == str(len(text))
    cached = await api.get(task["id"], "artifacts", "report.csv",
                           headers={"If-None-Match": f'"{sha}"'})
    assert cached.code == 304 and cached.body == b""
    stale = await api.get(task["id"], "artifacts", "report.csv",
                          headers={"If-None-Match": '"0000"'})
    assert stale.code == 200
    assert_problem(await api.get(task["id"], "artifacts", "missing.csv"), 404)
    assert_problem(await api.get("d" * 32, "artifacts"), 404)
    for bad in ("..", "../tasks.db", "a/b", "..%2F..%2Ftasks.db", ".hidden"):
        response = await api.get(task["id"], "artifacts", bad)
        assert response.code in (400, 404), (bad, response.code)
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert b"SQLite" not in response.body


# --------------------------------------------------------------- registry


async def test_registry_list_get_and_tags(api):
    everything = (await api.get("registry")).json
    names = {info["name"] for info in everything}
    assert {"srv_add", "srv_slow", "srv_confirm"} <= names
    math_only = (await api.get("registry", params={"tags": "test,math"})).json
    assert [info["name"] for info in math_only] == ["srv_add"]
    info = (await api.get("registry", "srv_add")).json
    assert set(info) >= {"name", "docstring", "signature", "parameters", "tags", "mode",
                         "params_schema"}
    assert info["parameters"][0] == {"name": "a", "annotation": "int", "default": None,
                                     "required": True}
    assert info["params_schema"]["required"] == ["a"]
    assert_problem(await api.get("registry", "nope"), 404)


async def test_execute_sync_async_and_wait(api, jp_base_url):
    ok = await api.post("registry", "srv_add", "execute", body={"params": {"a": 2, "b": 3}})
    assert ok.code == 200
    assert ok.json == {"task_id": ok.headers["X-Task-Id"], "task_name": "srv_add",
                       "params": {"a": 2, "b": 3}, "status": "succeeded", "result": 5,
                       "error": None}
    assert (await api.get(ok.json["task_id"])).json["mode"] == "background"
    failed = await api.post("registry", "srv_fail", "execute", body={"params": {"message": "no"}})
    assert failed.code == 200 and failed.json["status"] == "failed"
    assert failed.json["error"]["type"] == "ValueError" and "no" in failed.json["error"]["message"]
    at_once = await api.post("registry", "srv_wait", "execute", body={"params": {"seconds": 5}},
                             headers={"Prefer": "respond-async"})
    assert at_once.code == 202
    assert at_once.headers["Location"] == f"{jp_base_url}api/tasks/{at_once.headers['X-Task-Id']}"
    assert at_once.headers["Preference-Applied"] == "respond-async"
    in_time = await api.post("registry", "srv_wait", "execute", body={"params": {"seconds": 0}},
                             headers={"Prefer": "respond-async, wait=10"})
    assert in_time.code == 200 and in_time.json["result"] == "waited"
    too_slow = await api.post("registry", "srv_wait", "execute",
                              body={"params": {"seconds": 30}},
                              headers={"Prefer": "respond-async, wait=0.2"})
    assert too_slow.code == 202
    assert too_slow.headers["Preference-Applied"] == "respond-async, wait=0.2"
    # a wait alone, run out: 202 too, applying the wait (before: it claimed respond-async,
    # which was not asked for)
    waited = await api.post("registry", "srv_wait", "execute", body={"params": {"seconds": 30}},
                            headers={"Prefer": "wait=0.2"})
    assert waited.code == 202 and waited.headers["Preference-Applied"] == "wait=0.2"
    job = await api.post("registry", "srv_job", "execute", body={"params": {"value": 4}})
    assert job.code == 200 and job.json["result"] == {"value": 4}
    assert (await api.get(job.json["task_id"])).json["mode"] == "job"
    keyed = await api.post("registry", "srv_job", "execute", body={"queue": PARKED},
                           headers={"Prefer": "respond-async", "Idempotency-Key": "exec-1"})
    assert (await api.get(keyed.headers["X-Task-Id"])).json["idempotency_key"] == "exec-1"
    assert_problem(await api.post("registry", "nope", "execute"), 404)
    assert_problem(await api.post("registry", "srv_add", "execute", body={"params": {}}), 422)
    assert_problem(await api.post("registry", "srv_add", "execute", body={"x": 1}), 422)
    assert_problem(await api.post("registry", "srv_add", "execute", raw=b"{"), 400)
    for task_id in (at_once.headers["X-Task-Id"], too_slow.headers["X-Task-Id"]):
        await api.post(task_id, "cancel")


@pytest.mark.parametrize("route", ["execute", "result"])
async def test_a_long_wait_ends_when_its_client_goes_away(api, tasks_app, route):
    # a synchronous execute waits as long as the task runs: a client that gave up
    # (a timeout, a closed notebook) must not leave the server waiting for nobody
    feed = tasks_app.manager.feed
    running = await api.submit({"name": "srv_wait", "params": {"seconds": 120}})
    parts = ("registry", "srv_wait", "execute") if route == "execute" else \
        (running["id"], "result")
    request = {"method": "POST", "body": json.dumps({"params": {"seconds": 120}})} \
        if route == "execute" else {"method": "GET", "params": {"timeout": 60}}
    with pytest.raises(HTTPTimeoutError):  # the client gives up and closes the connection
        await api.fetch("api", "tasks", *parts, request_timeout=1, **request)
    waited = running["id"]
    if route == "execute":  # the task the execute started
        listed = (await api.get(params={"name": "srv_wait"})).json["tasks"]
        [waited] = [t["id"] for t in listed if t["id"] != running["id"]]

    async def nobody_waits() -> bool:
        return not feed.waiters.get(waited)

    await eventually(nobody_waits, timeout=15, what="the server's wait given up")
    assert (await api.get(waited)).json["status"] == "running"  # the task itself goes on
    for task in (await api.get(params={"status": "running"})).json["tasks"]:
        await api.post(task["id"], "cancel")


# ------------------------------------------------------------ stats, doc


async def test_stats(api, tasks_app):
    await api.submit({"name": "srv_job", "queue": PARKED})
    stats = (await api.get("stats")).json
    assert stats["queues"]["default"]["max_workers"] == 2
    assert stats["queues"][PARKED] == {"queued": 1, "running": 0, "max_workers": 0}
    assert stats["statuses"]["queued"] == 1
    worker = next(w for w in stats["workers"] if w["id"] == tasks_app.manager.worker_id)
    assert {"id", "kind", "pid", "host", "heartbeat_at"} <= set(worker)


async def test_stats_count_the_slots_of_every_live_worker(api, tasks_app):
    """A queue's max_workers is what all its live workers run at once: a worker process
    beside the server adds its slots (before, only the server's own configuration)."""
    from jupyter_tasks.manager import TaskManager

    async with TaskManager(tasks_app.manager.store.path, queues={"default": 3, "gpu": 1},
                           runs_background=False, make_default=False):
        stats = (await api.get("stats")).json
        assert stats["queues"]["default"]["max_workers"] == 2 + 3
        assert stats["queues"]["gpu"] == {"queued": 0, "running": 0, "max_workers": 1}
    stats = (await api.get("stats")).json  # that worker stopped: its slots went with it
    assert stats["queues"]["default"]["max_workers"] == 2 and "gpu" not in stats["queues"]


async def test_openapi_describes_every_route(api, jp_base_url):
    response = await api.get("openapi.json")
    doc = response.json
    assert doc["openapi"].startswith("3.")
    assert doc["servers"] == [{"url": jp_base_url.rstrip("/")}]
    expected = {
        "/api/tasks": {"get", "post"}, "/api/tasks/{task_id}": {"get", "delete"},
        "/api/tasks/{task_id}/result": {"get"}, "/api/tasks/{task_id}/logs": {"get"},
        "/api/tasks/{task_id}/cancel": {"post"}, "/api/tasks/{task_id}/rerun": {"post"},
        "/api/tasks/{task_id}/fork": {"post"}, "/api/tasks/{task_id}/confirm": {"post"},
        "/api/tasks/{task_id}/artifacts": {"get"},
        "/api/tasks/{task_id}/artifacts/{name}": {"get", "head"},
        "/api/tasks/registry": {"get"}, "/api/tasks/registry/{name}": {"get"},
        "/api/tasks/registry/{name}/execute": {"post"}, "/api/tasks/stats": {"get"},
        "/api/tasks/openapi.json": {"get"}, "/api/tasks/events": {"get"},
    }
    for path, methods in expected.items():
        assert methods <= set(doc["paths"][path]) - {"parameters"}, path
    json.dumps(doc)  # serializable as served


async def test_activity_is_reported_while_tasks_run(api, tasks_app, jp_serverapp):
    assert tasks_app.current_activity() is None
    task = await api.submit({"name": "srv_job", "queue": PARKED})
    before = jp_serverapp.web_app.last_activity()
    await tasks_app.refresh_activity()
    assert [a["id"] for a in tasks_app.current_activity()] == [task["id"]]
    assert jp_serverapp.extension_manager.any_activity()
    assert jp_serverapp.web_app.last_activity() >= before
    assert "jupyter_tasks_last_activity" in jp_serverapp.web_app.settings
    await api.post(task["id"], "cancel")
    await tasks_app.refresh_activity()
    assert tasks_app.current_activity() is None


@pytest.fixture
def tasks_config(request: Any) -> dict[str, Any]:
    marker = request.node.get_closest_marker("tasks_config")
    return dict(marker.kwargs) if marker else {}


@pytest.mark.tasks_config(history_days=1e-6, prune_interval=0.05, max_body_bytes=200)
async def test_history_retention_prunes_finished_tasks_and_body_limit_is_configurable(api):
    assert_problem(await api.post(body={"name": "srv_job", "label": "x" * 300}), 413)
    done = await api.submit({"name": "srv_job"})
    waiting = await api.submit({"name": "srv_job", "queue": PARKED})
    # (no wait for its result first: it may be pruned 0.09 s after it ends, before that
    # read, and only a finished task is pruned)

    async def pruned() -> bool:
        return (await api.get(done["id"])).code == 404

    await eventually(pruned, what="finished task pruned")
    assert (await api.get(waiting["id"])).json["status"] == "queued"  # active tasks stay


async def test_a_status_repeated_past_sqlites_compound_limit_is_read_once(api) -> None:
    # before: 501 copies of one status were 501 parts of one SQL compound: a 500
    task = await api.submit({"name": "srv_job", "queue": "parked"})
    response = await api.get(params={"status": ",".join(["queued"] * 501)})
    assert response.code == 200, response.json
    assert task["id"] in {t["id"] for t in response.json["tasks"]}
    await api.post(task["id"], "cancel")


async def test_a_short_or_mistyped_task_id_is_an_unknown_task_not_an_unknown_route(api) -> None:
    # before: "no such route: /api/tasks/18ee92af18" for the last 10 characters the views
    # show, as if the client had the URL wrong
    task = await api.submit({"name": "srv_job", "queue": "parked"})
    for method, parts in [("GET", (task["id"][-10:],)), ("GET", ("zzz", "result")),
                          ("POST", (task["id"][:-1], "cancel")), ("GET", ("Nope", "logs"))]:
        response = await api.call(method, *parts, body={} if method == "POST" else None)
        assert response.code == 404, (method, parts)
        assert response.json["title"] == "Task not found", response.json
        assert "a task id is 32 hexadecimal characters" in response.json["detail"]
    other = await api.get(task["id"], "nonsense")
    assert other.code == 404 and other.json["detail"].startswith("no such route")
    # before: "a task id is 32 hexadecimal characters" for an existing id given with a
    # trailing slash, or in capitals (which are hexadecimal too)
    slash = await api.call("GET", task["id"] + "/")
    assert slash.code == 404 and "without the trailing '/'" in slash.json["detail"], slash.json
    capitals = await api.get(task["id"].upper())
    assert capitals.code == 404 and f"lowercase: {task['id']}" in capitals.json["detail"]
    await api.post(task["id"], "cancel")


@pytest.mark.tasks_config(executor="dask", dask_scheduler_address="")
async def test_dask_without_a_scheduler_address_is_said_on_every_route(api, tasks_app) -> None:
    # before: the extension failed to load (a warning in the log), the routes answered
    # 404 pages, and its stop crashed on what the failed load never set, so SIGTERM left
    # the server running
    for response in (await api.get(), await api.post(body={"name": "srv_job"})):
        assert_problem(response, 503)
        assert "needs dask_scheduler_address" in response.json["detail"]
    await tasks_app.stop_extension()  # and it stops
    assert not tasks_app.manager.running


@pytest.mark.parametrize("sent", [[1, 2], "x", 42, {"force": True}])
async def test_cancel_refuses_a_body_it_would_ignore(api, sent):
    # before: 202 and the body dropped ({"force": true} read as taken, and nothing forced)
    task = await api.submit({"name": "srv_job", "queue": PARKED})
    refused = await api.post(task["id"], "cancel", body=sent)
    assert refused.code == 422, refused.json
    assert (await api.get(task["id"])).json["status"] == "queued"
    assert (await api.post(task["id"], "cancel", body={})).code == 202

