"""The dashboard following a server that dies and comes back: it catches up with ``since``."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from jupyter_tasks_dashboard.app import TasksDashboard
from jupyter_tasks_dashboard.sources import OFFLINE, ONLINE, RESYNC, ServerSource

from jupyter_tasks.client import TasksClient

from .conftest import Server, until

pytestmark = pytest.mark.slow
SIZE = (180, 50)


def recording(source: ServerSource) -> list[dict[str, Any]]:
    """Every event the source hands the app, in order."""
    seen: list[dict[str, Any]] = []
    events = source.events

    async def record():  # type: ignore[no-untyped-def]
        async for event in events():
            if event["type"] not in (OFFLINE, ONLINE):  # the dashboard's own, no id
                seen.append(event)
            yield event

    source.events = record  # type: ignore[method-assign]
    return seen


async def test_catches_up_over_a_server_restart_without_gaps_or_duplicates(tmp_path):
    from jupyter_tasks.manager import TaskManager

    db = tmp_path / "tasks.db"
    server = Server(tmp_path, db).start()
    try:
        client = TasksClient(server.url, server.token)
        source = ServerSource(server.url, server.token)
        seen = recording(source)
        app = TasksDashboard(source)
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: app.ready and app.page_loads and source.connections == 1, pilot,
                        what="following the server")
            before = await client.submit("dash_echo", {"value": 1}, label="before the crash")
            await client.wait(before["id"], timeout=30)
            await until(lambda: before["id"] in app.table.tasks
                        and app.table.tasks[before["id"]]["status"] == "succeeded", pilot,
                        what="the first task on screen")
            assert source.last_event_id is not None  # what the reconnect resumes from
            resume_from = source.last_event_id

            server.kill()
            # meanwhile another process writes straight into the database
            async with TaskManager(db, worker_kind="test", runs_background=False,
                                   make_default=False) as writer:
                missed = [await writer.submit_spec({"command": ["true"]}, mode="job",
                                                   label=f"while down {i}", queue="parked")
                          for i in range(3)]
                await writer.cancel(missed[0].id)  # one of them also finishes
            missed_ids = [t.id for t in missed]
            assert not any(task_id in app.table.tasks for task_id in missed_ids)

            # said on screen while the server is away: what it shows may be stale
            await until(lambda: "offline, reconnecting" in str(app.sub_title), pilot,
                        what="the header saying the server is away")
            server.start()  # same port, token and database
            await until(lambda: source.connections >= 2, pilot, timeout=60,
                        what="the websocket reconnected")
            await until(lambda: "offline" not in str(app.sub_title), pilot,
                        what="the header live again")
            await until(lambda: all(i in app.table.tasks for i in missed_ids)
                        and app.table.tasks[missed_ids[0]]["status"] == "cancelled", pilot,
                        timeout=30, what="the missed tasks on screen")

            # caught up by replay (since=<last id>), not by re-reading: no resync was needed
            assert not [e for e in seen if e["type"] == RESYNC]
            replayed = [e for e in seen if e["id"] > resume_from]
            kinds = Counter((e["task_id"], e["type"]) for e in replayed)
            for task_id in missed_ids:
                assert kinds[(task_id, "task.created")] == 1, kinds
            assert kinds[(missed_ids[0], "task.cancelled")] == 1, kinds
            ids = [e["id"] for e in seen]
            assert ids == sorted(set(ids)), "an event arrived twice or out of order"
            # nothing twice on screen either
            rows = app.table.row_ids
            assert len(rows) == len(set(rows)) == app.table.row_count
            assert rows[:3] == missed_ids[::-1]  # newest first
            assert rows[3] == before["id"]
            assert app.screen_text().count("while down 0") == 1
    finally:
        server.kill()


async def test_a_client_following_from_now_misses_nothing_when_dropped_before_its_first_event(
        tmp_path):
    # before: events() from now (since=None) that lost its connection before any event
    # came reconnected "from now" again, and every event written meanwhile was lost
    import asyncio

    from jupyter_tasks.manager import TaskManager

    db = tmp_path / "tasks.db"
    server = Server(tmp_path, db).start()
    try:
        client = TasksClient(server.url, server.token)
        earlier = await client.submit("dash_echo", {"value": 0}, label="before following")
        await client.wait(earlier["id"], timeout=30)
        opened: list[Any] = []
        connect = client.connect_events

        async def observed(*args: Any, **kwargs: Any) -> Any:  # the real call, counted
            conn = await connect(*args, **kwargs)
            opened.append(conn)
            return conn

        client.connect_events = observed  # type: ignore[method-assign]
        stream = client.events(retry_delay=0.05)
        first = asyncio.ensure_future(stream.__anext__())
        await until(lambda: len(opened) == 1, what="the stream open")
        server.kill()
        async with TaskManager(db, worker_kind="test", runs_background=False,
                               make_default=False) as writer:
            missed = await writer.submit_spec({"command": ["true"]}, mode="job",
                                              label="while down", queue="parked")
        server.start()
        await until(lambda: len(opened) == 2, what="the stream open again")
        after = await client.submit("dash_echo", {"value": 1}, label="after the restart")
        event = await asyncio.wait_for(first, 60)
        assert (event["task_id"], event["type"]) == (missed.id, "task.created"), \
            (event, "the event of the task written while down was lost", after["id"])
        await stream.aclose()
    finally:
        server.kill()


async def test_a_database_started_over_is_read_again_not_ignored(tmp_path):
    # the documented recovery: stop the server, move the file aside, start empty. Event
    # ids begin again below the one the dashboard resumes from; before, the server took
    # that since and the dashboard dropped every new event: nothing new ever showed
    db = tmp_path / "tasks.db"
    server = Server(tmp_path, db).start()
    try:
        client = TasksClient(server.url, server.token)
        source = ServerSource(server.url, server.token)
        app = TasksDashboard(source)
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: app.ready and app.page_loads and source.connections == 1, pilot,
                        what="following the server")
            old = [await client.submit("dash_echo", {"value": i}, label=f"old {i}")
                   for i in range(3)]
            for task in old:
                await client.wait(task["id"], timeout=30)
            await until(lambda: all(t["id"] in app.table.tasks for t in old), pilot,
                        what="the old tasks on screen")
            server.kill()
            aside = tmp_path / "aside"
            aside.mkdir()
            for path in tmp_path.glob("tasks.db*"):
                path.rename(aside / path.name)
            server.start()  # same port and token, an empty database
            await until(lambda: source.connections >= 2, pilot, timeout=60,
                        what="the websocket reconnected")
            new = await client.submit("dash_echo", {"value": 9}, label="after the start over")
            await until(lambda: new["id"] in app.table.tasks, pilot, timeout=30,
                        what="the new task on screen")
            # the old history is gone from the file, and from the screen
            await until(lambda: not any(t["id"] in app.table.tasks for t in old), pilot,
                        what="the old tasks gone")
            assert source.last_event_id is not None and source.last_event_id < 10
            # TasksClient.events says so too, then goes on after the server's newest id
            stream = client.events(since=10_000)
            reset = await stream.__anext__()
            assert reset["type"] == "stream.reset" and reset["id"] == source.last_event_id
            again = await client.submit("dash_echo", {"value": 10}, label="after the reset")
            following = await stream.__anext__()
            assert following["task_id"] == again["id"] and following["id"] > reset["id"]
            await stream.aclose()
    finally:
        server.kill()


async def test_a_server_that_closes_the_connection_mid_request_is_unreachable_not_a_crash():
    # before: raise_error=False still raised tornado's HTTPStreamClosedError (599) for a
    # server killed while it answered, and it ended the dashboard's page loader (CI)
    import asyncio

    from jupyter_tasks.client import TasksClientError

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # the request came; no answer
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        client = TasksClient(f"http://127.0.0.1:{port}", "token")
        with pytest.raises(TasksClientError, match="cannot reach") as info:
            await client.list()
        assert info.value.status == 0
    finally:
        server.close()
        await server.wait_closed()
