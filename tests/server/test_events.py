"""``WS /api/tasks/events``: replay then live with no gap and no duplicate, filters, coalescing."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from jupyter_tasks.server import events as events_module
from tests.waiting import eventually

PARKED = "parked"


async def read_until(ws: Any, done: Any, timeout: float = 20.0) -> list[dict[str, Any]]:
    """Messages until ``done(message)`` is true; fails on close or after ``timeout``."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"condition not met; got {len(messages)} messages"
        raw = await asyncio.wait_for(ws.read_message(), remaining)
        assert raw is not None, "websocket closed"
        message = json.loads(raw)
        messages.append(message)
        if done(message):
            return messages


async def stored_ids(store: Any, after: int = 0, **filters: Any) -> list[int]:
    return [e.id for e in await store.events_after(after, limit=1_000_000, **filters)
            if e.type != "task.progress"]


async def test_replay_then_live_without_gap_or_duplicate(api, tasks_app, jp_ws_fetch):
    store = tasks_app.manager.store
    task = await api.submit({"name": "srv_job", "queue": PARKED})
    stop = asyncio.Event()
    written = 0

    async def writer() -> None:
        nonlocal written
        while not stop.is_set():
            await store.append_logs(task["id"], [(time.time(), "stdout", f"line {written}\n")])
            written += 1
            await asyncio.sleep(0.001)

    async def enough() -> bool:
        return written >= 100

    producing = asyncio.ensure_future(writer())
    try:
        await eventually(enough, what="events stored")
        at_connect = await store.last_event_id()
        ws = await jp_ws_fetch("api", "tasks", "events", params={"since": "0"})
        # keep writing while the socket switches from replay to live
        first = await read_until(ws, lambda m: m["id"] > at_connect + 100)
    finally:
        stop.set()
        await producing
    last = await store.last_event_id()
    rest = [] if first[-1]["id"] == last else await read_until(ws, lambda m: m["id"] == last)
    received = [m["id"] for m in first + rest]
    assert received == await stored_ids(store)  # in order, none missing, none twice
    assert received[0] <= at_connect < received[-1]  # some replayed, some live
    message = first[0]
    assert set(message) == {"id", "type", "task_id", "ts", "task"}
    assert message["type"] == "task.created" and message["task"]["id"] == task["id"]
    ws.close()


async def test_without_since_starts_live_from_now(api, tasks_app, jp_ws_fetch):
    old = await api.submit({"name": "srv_job", "queue": PARKED})
    before = await tasks_app.manager.store.last_event_id()
    ws = await jp_ws_fetch("api", "tasks", "events")
    await api.post(old["id"], "cancel")
    messages = await read_until(ws, lambda m: m["type"] == "task.cancelled")
    assert [m["type"] for m in messages] == ["task.cancelled"]
    assert messages[0]["id"] > before and messages[0]["task"]["status"] == "cancelled"
    ws.close()


async def test_a_since_past_the_newest_event_is_told_to_start_over(api, tasks_app, jp_ws_fetch):
    # a client resuming with an id of another history (the database was moved aside to
    # start empty, and ids begin again): before, it was accepted and every live event
    # with a lower id was dropped, so the panel showed nothing new, silently
    old = await api.submit({"name": "srv_job", "queue": PARKED})
    newest = await tasks_app.manager.store.last_event_id()
    ws = await jp_ws_fetch("api", "tasks", "events", params={"since": str(newest + 5000)})
    first = await read_until(ws, lambda m: True)
    assert first[0]["type"] == "stream.reset" and first[0]["id"] == newest, first
    assert first[0]["task_id"] is None and first[0]["task"] is None
    await api.post(old["id"], "cancel")  # then live events, after that id
    live = await read_until(ws, lambda m: m["type"] == "task.cancelled")
    assert [m["type"] for m in live] == ["task.cancelled"] and live[0]["id"] > newest
    ws.close()
    # a since the database has reached is no reset
    ws = await jp_ws_fetch("api", "tasks", "events", params={"since": str(newest)})
    await api.post(old["id"], "cancel")
    await api.submit({"name": "srv_job", "queue": PARKED})
    later = await read_until(ws, lambda m: m["type"] == "task.created")
    assert "stream.reset" not in [m["type"] for m in later]
    ws.close()


async def test_a_since_whose_next_events_were_pruned_is_told_to_start_over(
        api, tasks_app, jp_ws_fetch):
    # a client away longer than history_days (a laptop asleep over a week): the events
    # after its id were pruned, and before, its resume replayed what was left, silently.
    # It kept showing a task running whose end was among the pruned events
    store = tasks_app.manager.store
    away = await api.submit({"name": "srv_job", "queue": PARKED})
    since = await store.last_event_id()
    await api.post(away["id"], "cancel")  # the end the client will not see replayed
    await api.submit({"name": "srv_job", "queue": PARKED})
    await store.prune(finished_before=0, events_before=time.time() + 60)
    newest = await store.last_event_id()
    ws = await jp_ws_fetch("api", "tasks", "events", params={"since": str(since)})
    first = await read_until(ws, lambda m: True)
    assert first[0]["type"] == "stream.reset" and first[0]["id"] == newest, first
    ws.close()
    # from 0, "all that is kept", is no resume: the kept events, no reset
    ws = await jp_ws_fetch("api", "tasks", "events", params={"since": "0"})
    kept = await read_until(ws, lambda m: True)
    assert kept[0]["type"] != "stream.reset" and kept[0]["id"] == newest, kept
    ws.close()


async def test_task_id_filter(api, tasks_app, jp_ws_fetch):
    mine = await api.submit({"name": "srv_job", "queue": PARKED})
    other = await api.submit({"name": "srv_job", "queue": PARKED})
    await api.post(other["id"], "cancel")
    await api.post(mine["id"], "cancel")
    ws = await jp_ws_fetch("api", "tasks", "events", params={"since": "0", "task_id": mine["id"]})
    messages = await read_until(ws, lambda m: m["type"] == "task.cancelled")
    assert {m["task_id"] for m in messages} == {mine["id"]}
    assert [m["type"] for m in messages] == ["task.created", "task.cancelled"]
    ws.close()


async def test_task_id_filter_replays_a_task_that_ran_at_once(api, tasks_app, jp_ws_fetch):
    # run at once (no task.created event), between other tasks' events
    before = await api.submit({"name": "srv_job", "queue": PARKED})
    ran = await api.post("registry", "srv_add", "execute", body={"params": {"a": 2, "b": 3}})
    after = await api.submit({"name": "srv_job", "queue": PARKED})
    for other in (before, after):
        await api.post(other["id"], "cancel")
    task_id = ran.json["task_id"]
    ws = await jp_ws_fetch("api", "tasks", "events", params={"since": "0", "task_id": task_id})
    messages = await read_until(ws, lambda m: m["type"] == "task.succeeded")
    assert [m["type"] for m in messages] == ["task.started", "task.succeeded"]
    assert {m["task_id"] for m in messages} == {task_id}
    assert messages[-1]["task"]["status"] == "succeeded"
    ws.close()


async def test_progress_is_coalesced_and_the_latest_always_arrives(api, tasks_app, jp_ws_fetch):
    store = tasks_app.manager.store
    # a job that reports no progress of its own: the flood below is the only writer
    task = await api.submit({"name": "srv_wait", "params": {"seconds": 60}})

    async def running() -> bool:
        return (await api.get(task["id"])).json["status"] == "running"

    await eventually(running, what="job running")
    ws = await jp_ws_fetch("api", "tasks", "events", params={"task_id": task["id"]})
    started = time.monotonic()
    total = 400
    for i in range(total):
        await store.save_updates([(task["id"], {"current": 10_000 + i, "total": 99_999,
                                                "message": "flood"})])
    elapsed = time.monotonic() - started

    def latest(m: dict[str, Any]) -> bool:
        progress = (m["task"] or {}).get("progress") or {}
        return m["type"] == "task.progress" and progress.get("current") == 10_000 + total - 1

    messages = await read_until(ws, latest)
    progress = [m for m in messages if m["type"] == "task.progress"]
    stored = [e for e in await store.events_after(0, limit=100_000, task_id=task["id"])
              if e.type == "task.progress"]
    assert len(stored) >= total
    # at most one per 100 ms per task, plus the first and the final one
    assert len(progress) <= (time.monotonic() - started) / events_module.PROGRESS_INTERVAL + 3, (
        len(progress), elapsed)
    assert len(progress) < total / 4
    ids = [m["id"] for m in messages]
    assert len(ids) == len(set(ids))
    await api.post(task["id"], "cancel")
    ws.close()


async def test_slow_client_resyncs_from_the_store(api, tasks_app, jp_ws_fetch, monkeypatch):
    monkeypatch.setattr(events_module, "SUBSCRIPTION_SIZE", 4)
    resyncs = 0
    original = events_module.EventsWebSocket._resync

    async def counting(self: Any, sender: Any) -> None:
        nonlocal resyncs
        resyncs += 1
        await original(self, sender)

    monkeypatch.setattr(events_module.EventsWebSocket, "_resync", counting)
    store = tasks_app.manager.store
    task = await api.submit({"name": "srv_job", "queue": PARKED})
    before = await store.last_event_id()
    ws = await jp_ws_fetch("api", "tasks", "events")
    # a burst far larger than the subscription queue, written without yielding to the reader
    await asyncio.gather(*(store.append_logs(task["id"], [(time.time(), "stdout", f"{i}\n")])
                           for i in range(300)))
    # the server keeps answering meanwhile: the reader's backlog does not hold the loop
    assert (await api.get("stats")).code == 200
    last = await store.last_event_id()
    messages = await read_until(ws, lambda m: m["id"] == last)
    assert [m["id"] for m in messages] == await stored_ids(store, before)
    assert resyncs >= 1
    ws.close()


# an id past SQLite's integers was taken, then closed the socket with 1011 (an internal error)
@pytest.mark.parametrize("params", [{"since": "-1"}, {"since": "abc"}, {"task_id": "xyz"},
                                    {"since": "99999999999999999999999"}, {"since": "1e3"},
                                    # int() takes these; an event id is plain ASCII digits
                                    {"since": "1_000"}, {"since": "+5"},
                                    {"since": "\u0665"}, {"since": "9" * 5000},
                                    # before: upgraded, streaming from now: the history
                                    # asked for with the misspelt since was lost unsaid
                                    {"snice": "0"}, {"task": "0" * 32},
                                    # before: read as a space, stripped: from now on
                                    {"since": "\x00"}, {"task_id": "\x01"}])
async def test_bad_query_is_refused(jp_ws_fetch, tasks_app, params):
    with pytest.raises(HTTPClientError) as info:
        await jp_ws_fetch("api", "tasks", "events", params=params)
    assert info.value.code == 400


async def test_a_cache_buster_is_taken_as_every_rest_route_takes_it(jp_ws_fetch, tasks_app):
    # a number with no value (JupyterLab's cache-buster): REST takes it, so the stream
    # does too; before, it was refused as an unknown parameter
    ws = await jp_ws_fetch("api", "tasks", "events",
                           params={"since": "0", "1796593387127": ""})
    ws.close()
    with pytest.raises(HTTPClientError) as info:  # a value makes it a parameter again
        await jp_ws_fetch("api", "tasks", "events", params={"1796593387127": "x"})
    assert info.value.code == 400


async def test_since_given_twice_is_refused_not_read_at_its_last(jp_ws_fetch, tasks_app):
    # before: ?since=0&since=999 streamed from 999: the history asked for first was lost
    with pytest.raises(HTTPClientError) as info:
        await jp_ws_fetch("api", "tasks", "events", params=[("since", "0"), ("since", "5")])
    assert info.value.code == 400


async def test_a_plain_get_of_the_events_route_is_a_problem_not_an_html_page(api):
    # before: 400 text/html 'Can "Upgrade" only to "WebSocket".' (every other error of
    # the API is application/problem+json)
    response = await api.get("events")
    assert response.code == 400
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert "websocket" in response.json["detail"]


@pytest.mark.parametrize("headers, code", [
    ({"Upgrade": "websocket", "Connection": "keep-alive"}, 400),
    ({"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}, 400),
    ({"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "x" * 24,
      "Sec-WebSocket-Version": "9"}, 426),
])
async def test_a_malformed_handshake_is_a_problem_not_an_html_page(api, headers, code):
    # before: tornado's own answers, text/html ('"Connection" must be "Upgrade".',
    # "Missing/Invalid WebSocket headers", a 426 with no body)
    response = await api.get("events", headers=headers)
    assert response.code == code, response.body
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json["status"] == code and response.json["detail"]
    if code == 426:
        assert response.headers["Sec-WebSocket-Version"] == "13"


async def test_a_deleted_task_leaves_no_data_to_replay(api, tasks_app, jp_ws_fetch):
    # DELETE is how a user takes back params or a result that should not have been kept:
    # what the events recorded of it goes with the row, as its logs and artifacts do
    ran = await api.post("registry", "srv_add", "execute", body={"params": {"a": 4000, "b": 2}})
    task_id = ran.json["task_id"]
    assert ran.json["result"] == 4002
    assert (await api.call("DELETE", task_id)).code == 204
    # a task written after the delete: the replay reads up to its end
    kept = await api.submit({"name": "srv_job", "params": {"value": 7}, "queue": PARKED})
    await api.post(kept["id"], "cancel")
    ws = await jp_ws_fetch("api", "tasks", "events", params={"since": "0"})
    messages = await read_until(
        ws, lambda m: m["task_id"] == kept["id"] and m["type"] == "task.cancelled")
    ws.close()
    of_deleted = [m for m in messages if m["task_id"] == task_id]
    assert [m["type"] for m in of_deleted] == ["task.deleted"]
    gone = of_deleted[0]["task"]
    assert (gone["id"], gone["name"], gone["status"]) == (task_id, "srv_add", "succeeded")
    assert gone["params"] is None and gone["result"] is None and gone["error"] is None
    assert "4000" not in json.dumps(of_deleted) and "4002" not in json.dumps(of_deleted)
    # another task's events are all still there
    kept_types = [m["type"] for m in messages if m["task_id"] == kept["id"]]
    assert kept_types[0] == "task.created" and kept_types[-1] == "task.cancelled"


async def test_held_back_progress_is_never_overtaken_by_a_later_event(
        api, tasks_app, jp_ws_fetch, monkeypatch):
    # held-back progress went out after later events (another task's first progress, any
    # state change): the panel and TasksClient.events() skip an id below one they have,
    # so that progress was dropped, and a bar stayed stale until the task reported again
    monkeypatch.setattr(events_module, "PROGRESS_INTERVAL", 30.0)  # held for the whole test
    store = tasks_app.manager.store
    reporters = [await api.submit({"name": "srv_wait", "params": {"seconds": 60}})
                 for _ in range(2)]
    parked = await api.submit({"name": "srv_job", "queue": PARKED})

    async def running() -> bool:
        return all([(await api.get(t["id"])).json["status"] == "running" for t in reporters])

    await eventually(running, what="reporters running")
    first, second = (t["id"] for t in reporters)
    ws = await jp_ws_fetch("api", "tasks", "events")

    def progress_of(task_id: str, current: int) -> Any:
        def seen(m: dict[str, Any]) -> bool:
            return m["task_id"] == task_id and m["type"] == "task.progress" \
                and m["task"]["progress"]["current"] == current
        return seen

    async def report(task_id: str, current: int) -> None:
        await store.save_updates([(task_id, {"current": current, "total": 10,
                                             "message": None})])

    await report(first, 1)
    messages = await read_until(ws, progress_of(first, 1))
    await report(first, 2)  # held back: the first task's progress went out just now
    await report(second, 1)  # the second task's first: due at once
    messages += await read_until(ws, progress_of(second, 1))
    await report(first, 3)  # held back again
    await api.post(parked["id"], "cancel")
    messages += await read_until(ws, lambda m: m["type"] == "task.cancelled")
    ids = [m["id"] for m in messages]
    assert ids == sorted(ids) and len(ids) == len(set(ids)), \
        [(m["id"], m["type"], m["task_id"][-4:]) for m in messages]
    # nothing lost on the way: the latest progress of each came before the later event
    assert any(progress_of(first, 2)(m) for m in messages)
    assert any(progress_of(first, 3)(m) for m in messages)
    ws.close()
    for task in reporters:
        await api.post(task["id"], "cancel")


async def test_a_cross_origin_handshake_is_a_problem_and_other_methods_say_allow(
        api, jp_serverapp, jp_http_port, jp_base_url):
    # before: a browser's cross-origin handshake (its login cookie) got tornado's 403
    # text/html "Cross origin websockets not allowed", and POST, DELETE or OPTIONS a 405
    # with no Allow (every REST route's 405 has one)
    from tornado.httpclient import AsyncHTTPClient

    from tests.server.test_auth_shared_token import logged_in

    client = AsyncHTTPClient()
    base = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    cookie = await logged_in(base, "me", password=jp_serverapp.identity_provider.token)
    handshake = {"Upgrade": "websocket", "Connection": "Upgrade",
                 "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                 "Cookie": cookie}
    response = await client.fetch(base + "api/tasks/events", raise_error=False,
                                  headers={**handshake, "Origin": "http://elsewhere.example"})
    assert response.code == 403, response.body
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert "http://elsewhere.example" in json.loads(response.body)["detail"]
    for method in ("POST", "DELETE", "OPTIONS"):
        refused = await api.call(method, "events", **({"body": {}} if method == "POST" else {}))
        assert refused.code == 405, (method, refused.code)
        assert refused.headers.get("Allow") == "GET", (method, dict(refused.headers))
