"""``WS /api/tasks/events`` with many clients while many tasks report progress (behaviour only)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from typing import Any

import pytest

from jupyter_tasks.models import Event
from tests.waiting import eventually

CLIENTS = 20
QUICK = 12
STATES = ["task.created", "task.started", "task.succeeded"]


@pytest.fixture
def tasks_config() -> dict[str, Any]:
    """Slots for the reporting tasks and the quick jobs beside them."""
    return {"workers": {"default": 64}}


async def start_reporters(api: Any, count: int) -> list[str]:
    """``count`` tasks running in the server (async sleeps), ready to have progress written."""
    ids = [(await api.submit({"name": "srv_wait", "params": {"seconds": 300}}))["id"]
           for _ in range(count)]

    async def all_running() -> bool:
        for task_id in ids:
            if (await api.get(task_id)).json["status"] != "running":
                return False
        return True

    await eventually(all_running, timeout=60, what=f"{count} tasks running")
    return ids


@contextlib.asynccontextmanager
async def progress_flood(store: Any, task_ids: list[str], message: str = "working",
                         every: float = 0.01):
    """Write every task's progress every ``every`` seconds, as the flush does, until the end."""

    async def flood() -> None:
        step = 0
        while True:
            step += 1
            await store.save_updates([(t, {"current": step, "total": None, "message": message})
                                      for t in task_ids])
            await asyncio.sleep(every)  # the pace of the load, not a wait for anything

    writer = asyncio.ensure_future(flood())
    try:
        yield
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer


async def read_state_changes(ws: Any, quick: set[str], timeout: float = 120.0
                             ) -> list[tuple[int, str, str]]:
    """(id, type, task id) of every non-progress message about ``quick`` until all succeeded."""
    seen: list[tuple[int, str, str]] = []
    succeeded: set[str] = set()
    deadline = time.monotonic() + timeout
    while succeeded != quick:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {len(succeeded)} of {len(quick)} endings arrived"
        raw = await asyncio.wait_for(ws.read_message(), remaining)
        assert raw is not None, "websocket closed"
        message = json.loads(raw)
        if message["type"] != "task.progress" and message["task_id"] in quick:
            seen.append((message["id"], message["type"], message["task_id"]))
            if message["type"] == "task.succeeded":
                succeeded.add(message["task_id"])
    return seen


async def submit_quick(api: Any, count: int) -> set[str]:
    return {(await api.submit({"name": "srv_job", "params": {"value": i}}))["id"]
            for i in range(count)}


async def test_every_client_gets_every_state_change_in_order_under_progress(
        api, tasks_app, jp_ws_fetch):
    store = tasks_app.manager.store
    reporters = await start_reporters(api, 40)
    clients = [await jp_ws_fetch("api", "tasks", "events") for _ in range(CLIENTS)]
    async with progress_flood(store, reporters):
        quick = await submit_quick(api, QUICK)
        received = await asyncio.gather(*(read_state_changes(ws, quick) for ws in clients))
    stored = [(e.id, e.type, e.task_id) for e in await store.events_after(0, limit=1_000_000)
              if e.task_id in quick and e.type != "task.progress"]
    assert [t for _, t, _ in stored].count("task.succeeded") == QUICK
    for seen in received:
        # all of them, once each, in the order they were stored
        assert seen == stored
    for ws in clients:
        ws.close()
    for task_id in reporters:
        await api.post(task_id, "cancel")


async def test_each_event_is_serialised_once_for_all_clients(api, tasks_app, jp_ws_fetch,
                                                              monkeypatch):
    calls: Counter[int] = Counter()
    original = Event.to_json

    def counting(self: Event) -> dict[str, Any]:
        calls[self.id] += 1
        return original(self)

    monkeypatch.setattr(Event, "to_json", counting)
    clients = [await jp_ws_fetch("api", "tasks", "events") for _ in range(CLIENTS)]
    # every client past its catch-up read before the measured events: a catch-up that
    # runs late serialises what it finds once more (one client's copy, not a repeat per
    # client). A parked task's creation reaching all twenty says they are past it.
    parked = (await api.submit({"name": "srv_job", "params": {"value": 0},
                                "queue": "parked"}))["id"]
    for ws in clients:
        while True:
            raw = await asyncio.wait_for(ws.read_message(), 60)
            assert raw is not None, "a websocket closed"
            if json.loads(raw).get("task_id") == parked:
                break
    quick = await submit_quick(api, 3)
    received = await asyncio.gather(*(read_state_changes(ws, quick) for ws in clients))
    ids = {event_id for seen in received for event_id, _, _ in seen}
    assert len(ids) == 3 * len(STATES)
    # twenty clients, one serialisation each: not one per client
    assert {calls[i] for i in ids} == {1}, calls
    for ws in clients:
        ws.close()


async def test_a_client_that_never_reads_holds_back_no_other(api, tasks_app, jp_ws_fetch):
    store = tasks_app.manager.store
    reporters = await start_reporters(api, 20)
    # never read: tornado's client stops taking frames off the socket after one message,
    # so the server's writes to it back up once the socket buffers are full
    stalled = await jp_ws_fetch("api", "tasks", "events")
    readers = [await jp_ws_fetch("api", "tasks", "events") for _ in range(3)]
    # 20 tasks x 10 messages/s x ~50 kB to each client: the stalled socket's buffers
    # (a few MB on loopback) are full within the first rounds
    async with progress_flood(store, reporters, message="x" * 50_000, every=0.05):
        for _ in range(10):  # many rounds: the stall is well under way by the last
            quick = await submit_quick(api, 4)
            received = await asyncio.gather(*(read_state_changes(ws, quick)
                                              for ws in readers))
            stored = [(e.id, e.type, e.task_id)
                      for e in await store.events_after(0, limit=1_000_000)
                      if e.task_id in quick and e.type != "task.progress"]
            for seen in received:
                assert seen == stored
    # the server still answers, and the stalled client's connection is still open
    assert (await api.get("stats")).code == 200
    for ws in [stalled, *readers]:
        ws.close()
    for task_id in reporters:
        await api.post(task_id, "cancel")


async def test_long_replays_are_read_a_page_at_a_time_across_clients(
        api, tasks_app, jp_ws_fetch, monkeypatch):
    # before: every replaying client read and encoded its pages at the same time, and a
    # client that only listened waited behind all of them (twenty replays of 100,000
    # events: a second, benchmarks/bench_server_replay.py)
    from jupyter_tasks.server import events as events_module

    store = tasks_app.manager.store
    reporter = await start_reporters(api, 1)
    page = events_module.REPLAY_PAGE
    for step in range(3 * page):  # a history of three full pages (an event per write)
        await store.save_updates([(reporter[0], {"current": step, "total": None,
                                                 "message": "history"})])
    last = await store.last_event_id()
    in_flight = 0
    most = 0
    read = store.events_after

    async def counted(*args: Any, **kwargs: Any) -> list[Event]:
        nonlocal in_flight, most
        if kwargs.get("limit") != page:
            return await read(*args, **kwargs)
        in_flight += 1
        most = max(most, in_flight)
        try:
            return await read(*args, **kwargs)
        finally:
            in_flight -= 1

    monkeypatch.setattr(store, "events_after", counted)
    clients = [await jp_ws_fetch("api", "tasks", "events", params={"since": "0"})
               for _ in range(4)]
    for ws in clients:  # to the history's end (its progress coalesced on the way)
        while True:
            raw = await asyncio.wait_for(ws.read_message(), 60)
            assert raw is not None, "websocket closed"
            if json.loads(raw)["id"] >= last:
                break
        ws.close()
    assert most == 1, f"{most} replay pages were read at once"


async def test_a_client_starting_from_now_does_not_wait_for_replays(
        api, tasks_app, jp_ws_fetch):
    # a long replay holds the turn: a client that starts from now reads its short gap at
    # once, and live events reach it
    from jupyter_tasks.server.events import EventHub

    hub = EventHub.of(tasks_app.manager)
    async with hub.replay_turn:
        ws = await jp_ws_fetch("api", "tasks", "events")
        task = await api.submit({"name": "srv_wait", "params": {"seconds": 0}})
        while True:
            raw = await asyncio.wait_for(ws.read_message(), 30)
            assert raw is not None, "websocket closed"
            message = json.loads(raw)
            if message["task_id"] == task["id"] and message["type"] == "task.created":
                break
        ws.close()
