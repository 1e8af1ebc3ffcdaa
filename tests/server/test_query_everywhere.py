"""Every route refuses a query parameter it does not take (422), and does nothing then.

Before, only the GET routes and the submit did: ``DELETE /api/tasks/{id}?force=1``
deleted, ``POST .../cancel?reason=x`` cancelled and ``/me?user=bob`` answered for the
caller, each with the parameter dropped without a word, as the docs say no route does.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.server.test_api import PARKED, assert_problem, finished

SCHEDULE = {"name": "nightly", "cron": "0 3 * * *", "job": {"command": ["true"],
                                                             "queue": PARKED}}
PAGE = {"cells": [{"cell_type": "code", "source": "x = 1", "metadata": {"tags": ["parameters"]},
                   "outputs": [], "execution_count": None}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}

# (method, path parts, body, what must still hold after the refusal)
ROUTES = [
    ("DELETE", ("{done}",), None, "done kept"),
    ("POST", ("{queued}", "cancel"), None, "queued kept"),
    ("POST", ("{done}", "rerun"), None, "nothing new"),
    ("POST", ("{done}", "fork"), {"params": {"text": "x"}}, "nothing new"),
    ("POST", ("{queued}", "confirm"), {"answer": "yes"}, "queued kept"),
    ("GET", ("{done}", "artifacts"), None, ""),
    ("GET", ("{done}", "artifacts", "report.csv"), None, ""),
    ("HEAD", ("{done}", "artifacts", "report.csv"), None, ""),
    ("POST", ("registry", "srv_job", "execute"), {"params": {"value": 1}}, "nothing new"),
    ("GET", ("me",), None, ""),
    ("GET", ("openapi.json",), None, ""),
    ("GET", ("schedules", "{schedule}"), None, ""),
    ("PATCH", ("schedules", "{schedule}"), {"paused": True}, "schedule kept"),
    ("DELETE", ("schedules", "{schedule}"), None, "schedule kept"),
    ("POST", ("schedules", "{schedule}", "run"), None, "nothing new"),
    ("POST", ("schedules", "preview"), {"cron": "@daily"}, ""),
    ("POST", ("schedules",), SCHEDULE, "one schedule"),
    ("GET", ("notebook-parameters",), None, ""),
]


@pytest.mark.parametrize(("method", "parts", "body", "kept"), ROUTES,
                         ids=[f"{m} {'/'.join(p)}" for m, p, _, _ in ROUTES])
async def test_a_misspelt_query_parameter_is_refused_and_changes_nothing(
        api: Any, tasks_app: Any, jp_root_dir: Any, method: str, parts: tuple[str, ...],
        body: Any, kept: str) -> None:
    done = await api.submit({"name": "srv_artifact"})
    await finished(api, done["id"])
    queued = await api.submit({"name": "srv_job", "queue": PARKED})
    schedule = (await api.post("schedules", body=SCHEDULE)).json
    (jp_root_dir / "page.ipynb").write_text(json.dumps(PAGE))
    names = {"{done}": done["id"], "{queued}": queued["id"], "{schedule}": schedule["id"]}
    path = [names.get(part, part) for part in parts]
    params = {"pathh" if parts == ("notebook-parameters",) else "force": "1"}
    if parts == ("notebook-parameters",):
        params["path"] = "page.ipynb"
    store = tasks_app.manager.store
    before = await store.count_tasks()

    response = await api.call(method, *path, body=body, params=params)
    if method == "HEAD":  # no body to read: the status says it
        assert response.code == 422, response.code
    else:
        problem = assert_problem(response, 422)
        assert {"field": next(iter(params)), "message": "unknown query parameter"} \
            in problem["errors"], problem

    if kept == "done kept":
        assert (await api.get(done["id"])).code == 200
    elif kept == "queued kept":
        assert (await api.get(queued["id"])).json["status"] == "queued"
    elif kept == "nothing new":
        assert await store.count_tasks() == before
    elif kept == "schedule kept":
        got = (await api.get("schedules", schedule["id"])).json
        assert got["id"] == schedule["id"] and got["paused"] is False, got
    elif kept == "one schedule":
        assert len((await api.get("schedules")).json["schedules"]) == 1
    # without the misspelt parameter, the same call is taken (the route was reachable)
    params.pop("force", None)
    params.pop("pathh", None)
    answered = await api.call(method, *path, body=body, params=params)
    assert answered.code != 422, (answered.code, answered.json)
    await api.post(queued["id"], "cancel")


@pytest.mark.parametrize(("parts", "repeated"), [
    ((), "limit"), ((), "sort"), (("{id}",), "view"), (("{id}", "result"), "timeout"),
    (("{id}", "logs"), "after")])
async def test_a_parameter_given_twice_is_refused_not_read_at_its_last(
        api: Any, parts: tuple[str, ...], repeated: str) -> None:
    # before: ?limit=600&limit=1 answered 200 (the last was read) while ?limit=1&limit=600
    # was a 422; which one a client's library sends last is nothing it can see
    task = await api.submit({"name": "srv_job", "queue": PARKED})
    path = [task["id"] if part == "{id}" else part for part in parts]
    values = {"limit": ["600", "1"], "sort": ["label", "created"], "view": ["x", "full"],
              "timeout": ["-1", "0"], "after": ["x", "0"]}[repeated]
    response = await api.get(*path, params=[(repeated, v) for v in values])
    problem = assert_problem(response, 422)
    assert {"field": repeated, "message": "given more than once; it takes one value"} \
        in problem["errors"], problem
    # a status, which may be repeated, still is
    if not parts:
        assert (await api.get(params=[("status", "queued"), ("status", "running")])).code == 200
    await api.post(task["id"], "cancel")


@pytest.mark.parametrize("params", [{"status": "\x00"}, {"limit": "\x00"},
                                    {"sort": "\x01"}, {"search": "x\x1b"}])
async def test_a_control_character_in_a_query_value_is_refused_not_read_as_absent(
        api: Any, params: dict[str, str]) -> None:
    # before: tornado turned it into a space and stripped it: ?status=%00 listed every task
    problem = assert_problem(await api.get(params=params), 422)
    assert {"field": next(iter(params)), "message": "holds a control character"} \
        in problem["errors"], problem


async def test_the_parameters_a_route_reads_every_value_of_may_repeat(api: Any) -> None:
    # found in review: ?tags=a&tags=b, which the registry reads whole, became a 422
    listed = await api.get("registry", params=[("tags", "test"), ("tags", "math")])
    assert listed.code == 200, listed.json
    assert (await api.get(params={"_xsrf": "x"})).code == 200  # the server's own, as elsewhere
    # and on the routes checked this session: the server's own and the cache-buster pass
    task = await api.submit({"name": "srv_job", "queue": PARKED})
    answered = await api.post(task["id"], "cancel", params={"_xsrf": "x", "1796593387127": ""})
    assert answered.code == 202, answered.json
