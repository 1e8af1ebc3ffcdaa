"""Schedules over REST and the websocket, in pytest-jupyter's server on a real database."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_server.auth import Authorizer

from jupyter_tasks import notebook_params
from jupyter_tasks.server import schedule_handlers
from tests.server.test_auth_users import TwoUsers, as_user
from tests.server.test_events import read_until
from tests.waiting import eventually

# how long the held read waits for its release: a read on the loop holds the server so long
HELD_READ_SECONDS = 10

PARKED = "parked"  # no worker serves it: fired jobs stay queued
JOB = {"command": ["true"], "queue": PARKED}


def body(**extra: Any) -> dict[str, Any]:
    return {"name": "nightly", "cron": "0 3 * * *", "timezone": "Europe/Paris", "job": JOB,
            **extra}


def fields(response: Any) -> set[str]:
    return {e["field"] for e in response.json["errors"]}


async def test_create_read_list_edit_delete(api: Any) -> None:
    created = await api.post("schedules", body=body())
    assert created.code == 201, created.json
    schedule = created.json
    assert created.headers["Location"].endswith(f"/api/tasks/schedules/{schedule['id']}")
    assert (schedule["cron"], schedule["timezone"], schedule["catch_up"], schedule["paused"]) \
        == ("0 3 * * *", "Europe/Paris", "once", False)
    assert schedule["job"] == JOB and len(schedule["next_runs"]) == 5
    assert schedule["next_runs"][0] == schedule["next_run_at"]
    assert schedule["last_run_at"] is None and schedule["last_status"] is None
    # 03:00 in Paris is 01:00 or 02:00 UTC depending on the season
    assert schedule["next_run_at"][11:16] in ("01:00", "02:00")
    second = (await api.post("schedules", body=body(name="second"))).json
    listed = (await api.get("schedules")).json["schedules"]
    assert [s["id"] for s in listed] == [second["id"], schedule["id"]]  # newest first
    got = await api.get("schedules", schedule["id"])
    assert got.code == 200 and got.json == schedule
    patched = await api.call("PATCH", "schedules", schedule["id"],
                             body={"cron": "15 * * * *", "timezone": "UTC", "name": "hourly"})
    assert patched.code == 200, patched.json
    assert patched.json["name"] == "hourly" and patched.json["next_run_at"][14:16] == "15"
    paused = await api.post("schedules", schedule["id"], "pause")
    assert paused.code == 200 and paused.json["paused"] is True
    assert paused.json["next_run_at"] is None and paused.json["next_runs"] == []
    resumed = await api.post("schedules", schedule["id"], "resume")
    assert resumed.json["paused"] is False and resumed.json["next_run_at"] is not None
    deleted = await api.call("DELETE", "schedules", schedule["id"])
    assert deleted.code == 204
    assert (await api.get("schedules", schedule["id"])).code == 404


@pytest.mark.parametrize(("change", "field"), [
    ({"cron": "every day"}, "cron"),
    ({"cron": "0 3 * * * *"}, "cron"),
    ({"cron": "0 0 31 2 *"}, "cron"),
    ({"timezone": "Europe/Atlantis"}, "timezone"),
    ({"catch_up": "all"}, "catch_up"),
    ({"job": {"command": "true"}}, "job.command"),
    ({"job": {"command": ["true"], "notebook": "x.ipynb"}}, "job.command,notebook"),
    ({"job": {"notebook": "../outside.ipynb"}}, "job.notebook"),
    ({"job": {"notebook": "missing.ipynb"}}, "job.notebook"),
    ({"job": {"command": ["true"], "frobnicate": 1}}, "job.frobnicate"),
    # a function's parameter, named where the body holds it (was "job.nope")
    ({"job": {"name": "srv_add", "params": {"a": 1, "nope": 2}}}, "job.params.nope"),
    # before: stored (201/200), then refused at every firing
    ({"job": {"command": ["true"], "callback_url": "http://169.254.169.254/x"}},
     "job.callback_url"),
    ({"job": {"command": ["true"], "callback_url": "gopher://127.0.0.1/x"}},
     "job.callback_url"),
    ({"frequency": "daily"}, "frequency"),
    ({"name": ""}, "name"),
])
async def test_bad_definitions_are_422_naming_the_field(api: Any, change: dict[str, Any],
                                                       field: str) -> None:
    response = await api.post("schedules", body=body(**change))
    assert response.code == 422, response.json
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert field in fields(response)
    assert (await api.get("schedules")).json["schedules"] == []  # nothing half-written
    if set(change) <= {"cron", "timezone", "catch_up", "name", "job"}:
        schedule = (await api.post("schedules", body=body())).json
        patched = await api.call("PATCH", "schedules", schedule["id"], body=change)
        assert patched.code == 422 and field in fields(patched)
        assert (await api.get("schedules", schedule["id"])).json == schedule


async def test_unknown_schedule_is_404(api: Any) -> None:
    missing = "0" * 32
    for method, parts in [("GET", ()), ("PATCH", ()), ("DELETE", ()), ("POST", ("pause",)),
                          ("POST", ("run",))]:
        response = await api.call(method, "schedules", missing, *parts,
                                  body={} if method == "PATCH" else None)
        assert response.code == 404, (method, parts, response.json)
        assert response.json["status"] == 404
        assert response.json["title"] == "Schedule not found", response.json  # not "Task"


async def test_run_now_fires_a_linked_task_and_the_list_filter(api: Any) -> None:
    schedule = (await api.post("schedules", body=body())).json
    other = (await api.post("schedules", body=body(name="other"))).json
    run = await api.post("schedules", schedule["id"], "run")
    assert run.code == 202, run.json
    task = run.json
    assert (task["schedule_id"], task["label"], task["relationship"], task["mode"]) == (
        schedule["id"], "nightly", "scheduled", "job")
    await api.post("schedules", other["id"], "run")
    plain = await api.submit(JOB)
    assert plain["schedule_id"] is None
    listed = (await api.get(params={"schedule_id": schedule["id"]})).json["tasks"]
    assert [t["id"] for t in listed] == [task["id"]]
    after = (await api.get("schedules", schedule["id"])).json
    assert after["next_run_at"] == schedule["next_run_at"]  # run now does not move it
    assert (after["last_task_id"], after["last_status"]) == (task["id"], "queued")
    await api.call("DELETE", "schedules", schedule["id"])
    kept = (await api.get(task["id"])).json
    assert kept["schedule_id"] == schedule["id"]  # history stays


async def test_preview(api: Any) -> None:
    ok = await api.post("schedules", "preview",
                        body={"cron": "30 9 * * 1-5", "timezone": "Asia/Kolkata", "count": 3})
    assert ok.code == 200, ok.json
    runs = ok.json["next_runs"]
    assert len(runs) == 3 and all(r.endswith("04:00:00Z") for r in runs)  # 09:30 IST
    bad = await api.post("schedules", "preview", body={"cron": "nope"})
    assert bad.code == 422 and "cron" in fields(bad)
    many = await api.post("schedules", "preview", body={"cron": "* * * * *", "count": 1000})
    assert many.code == 422 and "count" in fields(many)
    # refused as a schedule's own empty time zone is (before, read as UTC here alone)
    empty = await api.post("schedules", "preview", body={"cron": "@daily", "timezone": ""})
    assert empty.code == 422 and fields(empty) == {"timezone"}, empty.json


async def test_spaces_around_a_macro_are_no_500(api: Any) -> None:
    # before: "@daily " passed the check, which strips, and croniter raised on it: a 500
    preview = await api.post("schedules", "preview", body={"cron": "@daily ", "count": 1})
    assert preview.code == 200, preview.json
    assert preview.json["next_runs"][0].endswith("T00:00:00Z")
    created = await api.post("schedules", body={"name": "spaced", "cron": " @daily\n",
                                                "job": {"name": "srv_job", "queue": "parked"}})
    assert created.code == 201, created.json
    assert created.json["cron"] == "@daily" and created.json["next_run_at"]
    await api.call("DELETE", "schedules", created.json["id"])


async def test_notebook_parameters(api: Any, jp_root_dir: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# report"),
                nbformat.v4.new_code_cell(
                    "day = 'today'\nn: int = 3\nratio = 0.5\nflags = [1, 2]\n"
                    "opts = {'a': None}\nok = True\nnothing = None\nnow = time.time()",
                    metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("print(day)")]
    (jp_root_dir / "reports").mkdir()
    nbformat.write(nb, jp_root_dir / "reports" / "daily.ipynb")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]),
                   jp_root_dir / "plain.ipynb")
    response = await api.get("notebook-parameters", params={"path": "reports/daily.ipynb"})
    assert response.code == 200, response.json
    data = response.json
    assert data["path"] == "reports/daily.ipynb" and data["has_parameters_cell"] is True
    by_name = {p["name"]: p for p in data["parameters"]}
    assert [p["name"] for p in data["parameters"]] == [
        "day", "n", "ratio", "flags", "opts", "ok", "nothing", "now"]
    assert {k: (v["default"], v["type"]) for k, v in by_name.items()} == {
        "day": ("today", "str"), "n": (3, "int"), "ratio": (0.5, "float"),
        "flags": ([1, 2], "list"), "opts": ({"a": None}, "dict"), "ok": (True, "bool"),
        "nothing": (None, "None"), "now": (None, "other")}
    assert by_name["now"]["source"] == "time.time()"
    assert by_name["day"]["source"] == "'today'"
    plain = (await api.get("notebook-parameters", params={"path": "plain.ipynb"})).json
    assert plain["has_parameters_cell"] is False and plain["parameters"] == []
    outside = await api.get("notebook-parameters", params={"path": "../etc/passwd"})
    assert outside.code == 422 and "path" in fields(outside)
    # a query parameter, said as one (before: "invalid request body")
    assert outside.json["detail"].startswith("invalid query parameter"), outside.json
    missing = await api.get("notebook-parameters", params={"path": "nope.ipynb"})
    assert missing.code == 404
    (jp_root_dir / "broken.ipynb").write_text("{not json")
    broken = await api.get("notebook-parameters", params={"path": "broken.ipynb"})
    assert broken.code == 422


async def test_a_parameters_cell_with_magics_or_chained_assignments_lists_them_all(
        api: Any, jp_root_dir: Path) -> None:
    # before: {"has_parameters_cell": true, "parameters": []} for a cell holding one
    # magic line (the whole cell was skipped as a syntax error), and `b = c = 2` and
    # `x, y = 1, 2` were left out; papermill lists them
    source = ("%matplotlib inline\nalpha: float = 0.5\n!echo hi\nitems = [1, 2, 3]\n"
              "beta = gamma = 2\nx, y = 1, 'two'\nlabel = 'run'  # the run's name\n")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        source, metadata={"tags": ["parameters"]})]), jp_root_dir / "magic.ipynb")
    data = (await api.get("notebook-parameters", params={"path": "magic.ipynb"})).json
    assert {p["name"]: (p["default"], p["type"]) for p in data["parameters"]} == {
        "alpha": (0.5, "float"), "items": ([1, 2, 3], "list"), "beta": (2, "int"),
        "gamma": (2, "int"), "x": (1, "int"), "y": ("two", "str"), "label": ("run", "str")}
    assert [p["name"] for p in data["parameters"]] == [
        "alpha", "items", "beta", "gamma", "x", "y", "label"]
    # read as IPython reads it (review: blanking lines broke a string holding "%d" and
    # an indented magic's block)
    source = ('%matplotlib inline\nfmt = """\n%d\n"""\nif True:\n    %time 1\nn = 3\n')
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        source, metadata={"tags": ["parameters"]})]), jp_root_dir / "magic2.ipynb")
    data = (await api.get("notebook-parameters", params={"path": "magic2.ipynb"})).json
    assert {p["name"]: p["default"] for p in data["parameters"]} == {
        "fmt": "\n%d\n", "n": 3}, data


async def test_reading_a_notebooks_parameters_leaves_the_server_serving(
        api: Any, jp_root_dir: Path, monkeypatch: Any) -> None:
    # a notebook of up to 50 MB (images kept in its outputs) was read and parsed on the
    # server's event loop: every other request and websocket waited for it. Here the
    # read is held until another request has been answered
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "n = 3", metadata={"tags": ["parameters"]})]), jp_root_dir / "held.ipynb")
    reading, release = threading.Event(), threading.Event()

    def held_read(path: str) -> dict[str, Any]:
        reading.set()
        release.wait(HELD_READ_SECONDS)  # on the loop, this holds the whole server
        return notebook_params.notebook_parameters(path)

    monkeypatch.setattr(schedule_handlers, "notebook_parameters", held_read)
    async def read_began() -> bool:
        return reading.is_set()

    pending = asyncio.ensure_future(api.get("notebook-parameters", params={"path": "held.ipynb"}))
    try:
        await eventually(read_began, what="the read began")
        me = await api.get("me")
        assert me.code == 200
        assert not pending.done(), "another request waited for the notebook's read"
    finally:
        release.set()
    answer = await pending
    assert answer.code == 200 and answer.json["parameters"][0]["name"] == "n"


async def test_the_schedule_list_refuses_parameters_it_does_not_take(api: Any) -> None:
    # before: 200 with every schedule, as if '?limit=0' or a filter had been applied
    for params in ({"foo": "1"}, {"limit": "0"}, {"owner": "someone"}):
        response = await api.get("schedules", params=params)
        assert response.code == 422, (params, response.code)
        assert [e["field"] for e in response.json["errors"]] == list(params)
    assert (await api.get("schedules", params={"1796593387127": ""})).code == 200


async def test_notebook_parameters_of_a_hidden_file_are_not_read(api: Any, jp_fetch: Any,
                                                                   jp_root_dir: Path) -> None:
    # before: the server refuses hidden files (ContentsManager.allow_hidden, off by
    # default: its contents API answers 404), yet this route read their parameters
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "token = 's3cret'", metadata={"tags": ["parameters"]})])
    (jp_root_dir / ".private").mkdir()
    nbformat.write(nb, jp_root_dir / ".private" / "keys.ipynb")
    nbformat.write(nb, jp_root_dir / ".keys.ipynb")
    for path in (".private/keys.ipynb", ".keys.ipynb"):
        contents = await jp_fetch("api", "contents", *path.split("/"), raise_error=False)
        assert contents.code == 404, path
        response = await api.get("notebook-parameters", params={"path": path})
        assert response.code == 404, (path, response.json)
        assert b"s3cret" not in response.body

async def test_a_notebook_job_of_a_hidden_file_is_refused_as_its_contents_are(
        api: Any, jp_root_dir: Path) -> None:
    # before: 202, and the job ran .private/keys.ipynb (or wrote its copy into a hidden
    # folder) although the contents API and notebook-parameters answer 404 for it
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    (jp_root_dir / ".private").mkdir()
    nbformat.write(nb, jp_root_dir / ".private" / "keys.ipynb")
    nbformat.write(nb, jp_root_dir / "plain.ipynb")
    before = len((await api.get()).json["tasks"])
    for job, field in (({"notebook": ".private/keys.ipynb"}, "notebook"),
                       ({"notebook": "plain.ipynb", "output_path": ".out/run.ipynb"},
                        "output_path")):
        for response in (await api.post(body=job),
                         await api.post("schedules", body=body(job=job))):
            assert response.code == 422, (job, response.json)
            assert [e["field"] for e in response.json["errors"]] in (
                [field], [f"job.{field}"]), response.json
            assert "hidden" in response.json["detail"], response.json
    assert len((await api.get()).json["tasks"]) == before  # nothing queued
    assert (await api.post(body={"notebook": "plain.ipynb"})).code == 202


async def test_schedule_changed_events_on_the_websocket(api: Any, jp_ws_fetch: Any) -> None:
    ws = await jp_ws_fetch("api", "tasks", "events")
    try:
        schedule = (await api.post("schedules", body=body())).json

        def for_it(kind: str) -> Any:
            return lambda m: m["type"] == kind and m.get("schedule_id") == schedule["id"]

        created = (await read_until(ws, for_it("schedule.changed")))[-1]
        assert created["schedule"] == schedule and created["task"] is None
        await api.post("schedules", schedule["id"], "pause")
        paused = (await read_until(ws, for_it("schedule.changed")))[-1]
        assert paused["schedule"]["paused"] is True
        task = (await api.post("schedules", schedule["id"], "run")).json
        fired = (await read_until(ws, lambda m: m["type"] == "schedule.changed" and (
            m["schedule"] or {}).get("last_task_id") == task["id"]))[-1]
        assert fired["schedule"]["last_status"] in ("queued", "running", "succeeded")
        await api.call("DELETE", "schedules", schedule["id"])
        deleted = (await read_until(ws, for_it("schedule.changed")))[-1]
        assert deleted["schedule"] is None
    finally:
        ws.close()


class OwnOnly(Authorizer):
    """Grants everything on ``tasks`` and nothing on ``tasks-others``."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource != "tasks-others"


@pytest.fixture
def users_config(jp_server_config: Any) -> Any:
    jp_server_config.ServerApp.identity_provider_class = TwoUsers
    jp_server_config.ServerApp.authorizer_class = OwnOnly
    return jp_server_config


@pytest.mark.usefixtures("users_config")
async def test_another_user_cannot_see_mine(api: Any, jp_ws_fetch: Any) -> None:
    alice, bob = as_user("alice-token"), as_user("bob-token")
    ws = await jp_ws_fetch("api", "tasks", "events", headers=bob)
    try:
        mine = await api.post("schedules", body=body(), headers=alice)
        assert mine.code == 201 and mine.json["owner"] == "alice"
        sid = mine.json["id"]
        assert (await api.get("schedules", headers=bob)).json["schedules"] == []
        for method, parts in [("GET", ()), ("PATCH", ()), ("DELETE", ()),
                              ("POST", ("run",)), ("POST", ("pause",))]:
            response = await api.call(method, "schedules", sid, *parts, headers=bob,
                                      body={"name": "x"} if method == "PATCH" else None)
            assert response.code == 404, (method, parts)
        run = await api.post("schedules", sid, "run", headers=alice)
        assert run.code == 202
        assert (await api.get(params={"schedule_id": sid}, headers=bob)).json["tasks"] == []
        # bob's feed carries his own schedule's event but never alice's
        own = (await api.post("schedules", body=body(name="bob's"), headers=bob)).json
        seen = await read_until(ws, lambda m: m.get("schedule_id") == own["id"])
        assert all(m.get("schedule_id") != sid for m in seen)
        assert all((m.get("task") or {}).get("owner") != "alice" for m in seen)
    finally:
        ws.close()
    assert json.dumps(mine.json)  # alice's schedule is intact
    assert (await api.get("schedules", sid, headers=alice)).code == 200


async def test_the_server_fires_a_due_schedule(api: Any, tasks_app: Any) -> None:
    schedule = (await api.post("schedules", body=body(job={"command": ["true"]}))).json
    due = time.time() - 1
    # as if the due time had come: the extension's loop fires it within its next second
    await tasks_app.manager.store.update_schedule(schedule["id"], {"next_run_at": due})

    async def fired() -> Any:
        tasks = (await api.get(params={"schedule_id": schedule["id"]})).json["tasks"]
        return tasks if tasks and tasks[0]["status"] == "succeeded" else None

    (task,) = await eventually(fired, timeout=30, what="the server fired the schedule")
    assert task["idempotency_key"] == f"schedule:{schedule['id']}:{round(due)}"
    after = (await api.get("schedules", schedule["id"])).json
    assert (after["last_task_id"], after["last_status"]) == (task["id"], "succeeded")
    assert after["next_run_at"] == schedule["next_run_at"]


async def test_no_submit_takes_a_firings_key(api: Any) -> None:
    # before: a task submitted with "schedule:<id>:<due>" took that firing's place, and
    # the schedule skipped it without a word
    for where in ({"body": {"name": "srv_job", "queue": "parked",
                            "idempotency_key": "schedule:0123:1700000000"}},
                  {"body": {"name": "srv_job", "queue": "parked"},
                   "headers": {"Idempotency-Key": "schedule:0123:1700000000"}}):
        response = await api.post(**where)
        assert response.code == 422 and fields(response) == {"idempotency_key"}, response.json
    fine = await api.post(body={"name": "srv_job", "queue": "parked",
                                "idempotency_key": "my-schedule:1"})
    assert fine.code == 202, fine.json
    await api.post(fine.json["id"], "cancel")


async def test_run_now_answered_by_the_keys_run_says_so_as_a_submit_does(api: Any) -> None:
    # before: 202 with a Location, and no `deduplicated`, for the run already queued
    keyed = body(job={**JOB, "task_key": "nightly-run-now"})
    schedule = (await api.post("schedules", body=keyed)).json
    first = await api.post("schedules", schedule["id"], "run")
    assert first.code == 202 and first.json["deduplicated"] is False, first.json
    fired = (await api.get("schedules", schedule["id"])).json
    again = await api.post("schedules", schedule["id"], "run")
    assert again.code == 200, again.json
    assert again.json["id"] == first.json["id"] and again.json["deduplicated"] is True
    assert "Location" not in again.headers
    # nothing fired: the schedule's last run is still the first one
    after = (await api.get("schedules", schedule["id"])).json
    assert (after["last_run_at"], after["last_task_id"]) == (
        fired["last_run_at"], first.json["id"]), (fired, after)


@pytest.mark.parametrize(("action", "sent"), [
    ("run", {"params": {"name": "B"}}), ("pause", {"paused": False}), ("resume", [1]),
])
async def test_schedule_actions_refuse_a_body_they_would_ignore(api: Any, action: str,
                                                                sent: Any) -> None:
    # before: 200 or 202, the body dropped (a /pause with {"paused": false} paused)
    schedule = (await api.post("schedules", body=body())).json
    refused = await api.post("schedules", schedule["id"], action, body=sent)
    assert refused.code == 422, refused.json
    after = (await api.get("schedules", schedule["id"])).json
    assert after["paused"] is False and after["last_task_id"] is None, after
    assert (await api.post("schedules", schedule["id"], action, body={})).code in (200, 202)
