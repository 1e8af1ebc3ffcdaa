"""Where the dashboard's data comes from: a Jupyter server (REST + websocket) or the database.

Both sources speak the API's JSON (task dicts as in ``docs/reference/rest-api.md``) so the widgets
never care which one they talk to. Errors of actions are raised as
``ActionError`` with the message people should read (the server's
problem+json ``detail`` and field problems, or the engine's message).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

# jupyter_tasks.client (and through it the engine package and tornado) is imported when a
# ServerSource starts, not here: the dashboard's first frame must not wait for it

TERMINAL = ("succeeded", "failed", "timeout", "oom", "cancelled", "interrupted")
ACTIVE = ("queued", "running")
STATUSES = (*ACTIVE, *TERMINAL)
RESYNC = "dashboard.resync"  # pseudo-event: re-read everything shown (resumed without an id)
# pseudo-events: the live connection dropped (what is shown may be stale), and came back
OFFLINE = "dashboard.offline"
ONLINE = "dashboard.online"
RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 5.0
COUNT_PAGE = 500  # the server's largest page
COUNT_PAGES = 20  # a filtered count over REST stops here (10,000 tasks) and says "at least"


class ActionError(Exception):
    """An action the source refused; ``str()`` is the message for people."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Filters:
    """What the table shows: status set, exact name and owner, free text, order.

    ``sort`` is one of the list API's sorts (``GET /api/tasks?sort=``); ``descending``
    its direction.
    """

    statuses: tuple[str, ...] = ()
    name: str | None = None
    owner: str | None = None
    search: str | None = None
    sort: str = "created"
    descending: bool = True
    schedule_id: str | None = None  # the firings of one schedule


    def matches(self, task: dict[str, Any]) -> bool:
        """Whether a task (API JSON) passes the filters (used for live inserts)."""
        if self.statuses and task.get("status") not in self.statuses:
            return False
        if self.name and task.get("name") != self.name:
            return False
        if self.owner and task.get("owner") != self.owner:
            return False
        if self.schedule_id and task.get("schedule_id") != self.schedule_id:
            return False
        if self.search:
            needle = self.search.lower()
            hay = ((task.get("label") or "").lower(), (task.get("name") or "").lower())
            if not any(needle in h for h in hay) and not task.get("id", "").startswith(needle):
                return False
        return True

    @property
    def narrows(self) -> bool:
        """Whether anything beyond the status set narrows the tasks."""
        return bool(self.name or self.owner or self.search or self.schedule_id)

    @property
    def active(self) -> bool:
        return bool(self.statuses) or self.narrows


def tally(tasks: list[dict[str, Any]], counts: dict[str, Any]) -> None:
    """Add tasks (API JSON) to ``{"queues", "statuses"}`` counts."""
    for task in tasks:
        status = task.get("status") or ""
        counts["statuses"][status] = counts["statuses"].get(status, 0) + 1
        queue = counts["queues"].setdefault(task.get("queue") or "default",
                                            {"queued": 0, "running": 0})
        if status in ACTIVE:
            queue[status] += 1


def restrict(stats: dict[str, Any], statuses: tuple[str, ...]) -> dict[str, Any]:
    """Whole-hub counts cut down to a status set (for a status-only filter)."""
    wanted = set(statuses)
    queues = {q: {**c, "queued": c.get("queued", 0) if "queued" in wanted else 0,
                  "running": c.get("running", 0) if "running" in wanted else 0}
              for q, c in (stats.get("queues") or {}).items()}
    return {**stats, "queues": queues,
            "statuses": {s: n for s, n in (stats.get("statuses") or {}).items() if s in wanted}}


@dataclass
class Page:
    """One page of tasks and the cursor of the next one (None at the end)."""

    tasks: list[dict[str, Any]]
    next_cursor: str | None
    elapsed: float = 0.0


@dataclass
class Details:
    """Everything the detail pane shows about one task."""

    task: dict[str, Any]
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    children: list[dict[str, Any]] = field(default_factory=list)
    lineage_root: dict[str, Any] | None = None
    lineage: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


class DataSource(ABC):
    """The operations the dashboard needs."""

    description: str = ""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect (called once, on the app's loop)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Disconnect."""

    @abstractmethod
    async def list_tasks(self, filters: Filters, cursor: str | None, limit: int) -> Page: ...

    @abstractmethod
    async def get_task(self, task_id: str) -> dict[str, Any]: ...

    @abstractmethod
    async def children(self, task_id: str) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def artifacts(self, task_id: str) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def logs(self, task_id: str, after: int = 0, limit: int = 500) -> tuple[list[dict], int]:
        ...

    @abstractmethod
    async def stats(self) -> dict[str, Any]: ...

    async def count(self, filters: Filters) -> dict[str, Any]:
        """``stats()`` for the tasks ``filters`` match: ``{"queues", "statuses", "workers",
        "exact"}``; ``exact`` False when the count stopped early (then it is a lower bound)."""
        stats = await self.stats()
        if filters.statuses:
            stats = restrict(stats, filters.statuses)
        return {**stats, "exact": True}

    @abstractmethod
    async def cancel(self, task_id: str) -> dict[str, Any]: ...

    @abstractmethod
    async def rerun(self, task_id: str) -> dict[str, Any]: ...

    @abstractmethod
    async def fork(self, task_id: str, overrides: dict[str, Any]) -> dict[str, Any]: ...

    @abstractmethod
    async def confirm(self, task_id: str, answer: str,
                      asked_at: float | None = None) -> dict[str, Any]:
        """Answer the pending question (refused if it is no longer the one asked at
        ``asked_at``: the dialog shown was stale)."""

    @abstractmethod
    async def delete(self, task_id: str) -> None: ...

    @abstractmethod
    def events(self) -> AsyncIterator[dict[str, Any]]:
        """Live events (``{"id", "type", "task_id", "ts", "task"}``), forever."""

    # schedules (the API's schedule JSON); each raises ActionError like the task actions

    @abstractmethod
    async def list_schedules(self) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def pause_schedule(self, schedule_id: str) -> dict[str, Any]: ...

    @abstractmethod
    async def resume_schedule(self, schedule_id: str) -> dict[str, Any]: ...

    @abstractmethod
    async def run_schedule(self, schedule_id: str) -> dict[str, Any]:
        """Fire the schedule now; the new task."""

    @abstractmethod
    async def delete_schedule(self, schedule_id: str) -> None: ...

    async def details(self, task_id: str) -> Details:
        """The task, its artifacts, and the lineage tree it belongs to."""
        task = await self.get_task(task_id)
        artifacts = await self.artifacts(task_id)
        # walk up to the first ancestor, then down through reruns and forks
        root = task
        seen = {task["id"]}
        while root.get("parent_id") and len(seen) < 50:
            try:
                parent = await self.get_task(root["parent_id"])
            except ActionError:
                break
            if parent["id"] in seen:
                break
            seen.add(parent["id"])
            root = parent
        lineage: dict[str, list[dict[str, Any]]] = {}
        frontier = [root["id"]]
        budget = 200  # lineage trees are small; never walk a pathological one forever
        while frontier and budget > 0:
            node = frontier.pop()
            kids = await self.children(node)
            lineage[node] = kids
            budget -= 1 + len(kids)
            frontier += [k["id"] for k in kids]
        return Details(task, artifacts, lineage.get(task_id, []), root, lineage)


# --------------------------------------------------------------------- server


class ServerSource(DataSource):
    """A Jupyter server's jupyter-tasks API over ``TasksClient``."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.token = token
        self.client: Any = None  # a TasksClient once started
        self.description = f"server {url}"
        self.last_event_id: int | None = None
        self.connections = 0  # websocket connections opened (reconnects = connections - 1)
        self.connected = asyncio.Event()
        self._early: Any = None  # the feed opened by start(), handed to the first events()

    async def _call(self, coro: Any) -> Any:
        from jupyter_tasks.client import TasksClientError
        from jupyter_tasks.exceptions import JupyterTasksError

        try:
            return await coro
        except TasksClientError as exc:
            raise ActionError(exc.describe(), exc.status) from None
        except JupyterTasksError as exc:  # refused before it was sent (a NaN in a body)
            raise ActionError(exc.message, 422) from None

    async def start(self) -> None:
        # importing the client (the engine package, tornado) takes a few hundred ms: on a
        # thread, so the skeleton on screen keeps answering keys meanwhile
        client_module = await asyncio.to_thread(importlib.import_module, "jupyter_tasks.client")
        self.client = client_module.TasksClient(self.url, self.token)
        # the live feed opens before the first page is read: a first connection has no
        # event id to resume from, so whatever happened between the page and a later
        # connect would never arrive (a task submitted then never got its row). The
        # socket holds what arrives until events() reads it; a duplicate of what the
        # page shows is harmless. A refused or unreachable server fails here, as the
        # first page would.
        self._early = await self.client.connect_events(None)

    async def count(self, filters: Filters) -> dict[str, Any]:
        if not filters.narrows:
            return await super().count(filters)
        # the server counts only whole statuses: count name/owner/text matches page by page
        counts: dict[str, Any] = {"queues": {}, "statuses": {}, "workers": [], "exact": True}
        cursor: str | None = None
        for _ in range(COUNT_PAGES):
            page = await self.list_tasks(filters, cursor, COUNT_PAGE)
            tally(page.tasks, counts)
            cursor = page.next_cursor
            if cursor is None:
                break
        counts["exact"] = cursor is None
        stats = await self.stats()  # the queues' worker limits and the live workers
        for queue, whole in (stats.get("queues") or {}).items():
            counts["queues"].setdefault(queue, {"queued": 0, "running": 0})["max_workers"] = \
                whole.get("max_workers")
        counts["workers"] = stats.get("workers") or []
        return counts

    async def list_tasks(self, filters: Filters, cursor: str | None, limit: int) -> Page:
        t0 = time.perf_counter()
        params: dict[str, Any] = {"limit": limit, "cursor": cursor}
        if filters.statuses:
            params["status"] = ",".join(filters.statuses)
        if filters.name:
            params["name"] = filters.name
        if filters.owner:
            params["owner"] = filters.owner
        if filters.search:
            params["search"] = filters.search
        if filters.schedule_id:
            params["schedule_id"] = filters.schedule_id
        if filters.sort != "created":
            params["sort"] = filters.sort
        params["order"] = "desc" if filters.descending else "asc"
        answer = await self._call(self.client.request("GET", params=params))
        tasks = answer.get("tasks") or []
        return Page(tasks, answer.get("next_cursor"), time.perf_counter() - t0)

    async def get_task(self, task_id: str) -> dict[str, Any]:
        # the full view carries the spec: a subprocess task's argv, a notebook's path
        return await self._call(self.client.get(task_id, full=True))

    async def children(self, task_id: str) -> list[dict[str, Any]]:
        answer = await self._call(self.client.list(parent_id=task_id, limit=200))
        return sorted(answer.get("tasks") or [], key=lambda t: t["id"])

    async def artifacts(self, task_id: str) -> list[dict[str, Any]]:
        return await self._call(self.client.artifacts(task_id))

    async def logs(self, task_id: str, after: int = 0, limit: int = 500) -> tuple[list[dict], int]:
        answer = await self._call(self.client.logs(task_id, after, limit))
        return answer.get("entries") or [], answer.get("next") or after

    async def stats(self) -> dict[str, Any]:
        return await self._call(self.client.stats())

    async def cancel(self, task_id: str) -> dict[str, Any]:
        return await self._call(self.client.cancel(task_id))

    async def rerun(self, task_id: str) -> dict[str, Any]:
        return await self._call(self.client.rerun(task_id))

    async def fork(self, task_id: str, overrides: dict[str, Any]) -> dict[str, Any]:
        return await self._call(self.client.fork(task_id, overrides))

    async def confirm(self, task_id: str, answer: str,
                      asked_at: float | None = None) -> dict[str, Any]:
        return await self._call(self.client.confirm(task_id, answer, asked_at))

    async def close(self) -> None:
        """Close a feed opened at start that nobody read."""
        if self._early is not None:
            self._early.close()
            self._early = None

    async def delete(self, task_id: str) -> None:
        await self._call(self.client.delete(task_id))

    async def list_schedules(self) -> list[dict[str, Any]]:
        answer = await self._call(self.client.request("GET", "schedules"))
        return (answer or {}).get("schedules") or []

    async def pause_schedule(self, schedule_id: str) -> dict[str, Any]:
        return await self._call(self.client.request("POST", f"schedules/{schedule_id}/pause"))

    async def resume_schedule(self, schedule_id: str) -> dict[str, Any]:
        return await self._call(self.client.request("POST", f"schedules/{schedule_id}/resume"))

    async def run_schedule(self, schedule_id: str) -> dict[str, Any]:
        return await self._call(self.client.request("POST", f"schedules/{schedule_id}/run"))

    async def delete_schedule(self, schedule_id: str) -> None:
        await self._call(self.client.request("DELETE", f"schedules/{schedule_id}"))

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Live events; after a drop, reconnect with ``since=<last id seen>``.

        The server replays what happened meanwhile (even across its own restart:
        events live in the database), so nothing is missed and nothing repeats.
        When the connection dropped before any event arrived there is no id to
        resume from: a ``dashboard.resync`` pseudo-event then tells the app to
        re-read what it shows.
        """
        from jupyter_tasks.client import TasksClientError
        from jupyter_tasks.models import STREAM_RESET

        delay = RETRY_SECONDS
        online = True  # the app starts connected (its first page came from the server)
        while True:
            try:
                conn, self._early = self._early, None
                if conn is None:
                    conn = await self.client.connect_events(self.last_event_id)
            except TasksClientError as exc:
                if 400 <= exc.status < 500:
                    raise ActionError(exc.describe(), exc.status) from None
                if online:
                    online = False
                    yield _pseudo(OFFLINE)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_SECONDS)
                continue
            delay = RETRY_SECONDS
            self.connections += 1
            if not online:
                online = True
                yield _pseudo(ONLINE)
            if self.connections > 1 and self.last_event_id is None:
                yield _pseudo(RESYNC)
            try:
                while True:
                    message = await conn.read_message()
                    if message is None:
                        break
                    try:
                        event = json.loads(message)
                    except ValueError:
                        continue
                    if not isinstance(event, dict) or not isinstance(event.get("id"), int):
                        continue
                    if event.get("type") == STREAM_RESET:
                        # the database was replaced (ids begin again): re-read everything
                        self.last_event_id = event["id"]
                        yield _pseudo(RESYNC)
                        continue
                    if self.last_event_id is not None and event["id"] <= self.last_event_id:
                        continue  # never twice, whatever the server replays
                    self.last_event_id = event["id"]
                    yield event
            finally:
                conn.close()
            online = False
            yield _pseudo(OFFLINE)
            await asyncio.sleep(delay)


def _with_capacity(counts: dict[str, Any], workers: list[Any]) -> dict[str, Any]:
    """``counts`` with each queue's slots and the live workers (``WorkerInfo`` rows).

    A queue's capacity comes from the live workers' rows: 0 for a queue none of them
    serves, unknown (None) beside a worker of a version whose row has no slots.
    """
    from jupyter_tasks.models import slots_by_queue

    capacity = slots_by_queue(workers)
    unknown = any(w.queues and not w.slots for w in workers)
    for w in workers:
        for q in w.queues:
            counts["queues"].setdefault(q, {"queued": 0, "running": 0})
    for name, queue in counts["queues"].items():
        queue["max_workers"] = capacity.get(name, None if unknown else 0)
    counts["workers"] = [w.to_json() for w in workers]
    return counts


def _pseudo(kind: str) -> dict[str, Any]:
    """A pseudo-event of the dashboard's own (no id, no task)."""
    return {"id": None, "type": kind, "task_id": None, "ts": None, "task": None}


# ------------------------------------------------------------------- database


class DatabaseSource(DataSource):
    """The SQLite hub itself, through the engine's ``TaskManager`` (live by tailing events).

    The manager is no worker (``as_worker=False``): actions write their requests
    (a cancel, an answer, a rerun) and the workers that hold the tasks act on them.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.description = f"database {self.path}"
        self._manager: Any = None
        # counting a big history takes ~150 ms: it runs on a read-only store of its own
        # so that page queries, which share the manager's store, never wait behind it
        self._counter: Any = None
        self._scheduler: Any = None  # a jupyter_tasks.scheduler.Scheduler (no loop) once used

    async def start(self) -> None:
        from jupyter_tasks.manager import TaskManager

        # looking is no work: no worker row, heartbeat or reaper (another process's jobs
        # are not this dashboard's to settle), and no new file where none is
        manager = TaskManager(self.path, worker_kind="dashboard", runs_background=False,
                              make_default=False, origin={"type": "dashboard"},
                              as_worker=False, create_db=False)
        await manager.start()
        self._manager = manager
        self._sub = manager.subscribe()

    @property
    def manager(self) -> Any:
        """The engine's ``TaskManager``; ``ActionError`` once the source is closed.

        A worker of the app that is still running when quitting closed the source (a
        count started meanwhile) then meets a refusal it handles, not ``None``.
        """
        self._require_open()
        return self._manager

    def _require_open(self) -> None:
        if self._manager is None:
            raise ActionError(f"{self.description} is closed")

    async def close(self) -> None:
        if self._manager is not None:
            manager, self._manager = self._manager, None
            self._sub.close()
            await manager.stop()
        if self._counter is not None:
            counter, self._counter = self._counter, None
            await counter.close()

    async def _counts(self, filters: Filters | None = None) -> dict[str, Any]:
        """Per queue queued/running and per status counts, of the tasks ``filters`` match."""
        self._require_open()  # else a count after quitting would open a store again
        # the counter's connection reads on from a file deleted or moved away: the
        # totals and queue rows went on showing it as live, with nothing to say so
        self.manager.store.check_file()
        if self._counter is None:
            from jupyter_tasks.store import Store

            self._counter = await Store.open(self.path, read_only=True)
        if filters is None:
            return await self._counter.stats()
        return await self._counter.stats(
            statuses=filters.statuses or None, name=filters.name or None,
            owners=[filters.owner] if filters.owner else None, search=filters.search or None,
            schedule_id=filters.schedule_id)

    # Every read goes through _call: a database moved away or damaged under the dashboard
    # is an ActionError the views show, not a StoreUnavailable that ended the app with a
    # traceback (the counts and the detail pane's reads went to the store directly)
    async def count(self, filters: Filters) -> dict[str, Any]:
        return await self._call(self._count(filters))

    async def _count(self, filters: Filters) -> dict[str, Any]:
        if not filters.active:
            return {**await self._stats(), "exact": True}
        from jupyter_tasks.liveness import live_workers

        counts = await self._counts(filters)
        workers = live_workers(await self.manager.store.list_workers(),
                               self.manager.config.lease_seconds)
        # the queue rows' slots too (before: "slots 0" or "slots ?" once a filter was typed)
        return {**_with_capacity(counts, workers), "exact": True}

    async def _check_file(self) -> None:
        self.manager.store.check_file()

    async def _call(self, coro: Any) -> Any:
        from jupyter_tasks.exceptions import JupyterTasksError

        try:
            return await coro
        except JupyterTasksError as exc:
            raise ActionError(_engine_message(exc), getattr(exc, "http_status", None)) from None

    async def list_tasks(self, filters: Filters, cursor: str | None, limit: int) -> Page:
        t0 = time.perf_counter()
        # a file moved away or replaced is said, not read on from the old one: its
        # open connection would show the old file's tasks as current for good
        await self._call(self._check_file())
        # the server's list query itself: the same sorts, order and cursors as over REST
        page = await self._call(self.manager.store.page_tasks(
            sort=filters.sort, order="desc" if filters.descending else "asc", cursor=cursor,
            limit=limit, statuses=filters.statuses or None, name=filters.name or None,
            owners=[filters.owner] if filters.owner else None, search=filters.search or None,
            schedule_id=filters.schedule_id,
        ))
        return Page([t.to_json() for t in page.tasks], page.next_cursor,
                    time.perf_counter() - t0)

    async def get_task(self, task_id: str) -> dict[str, Any]:
        return (await self._call(self.manager.get(task_id))).to_json(full=True)

    async def children(self, task_id: str) -> list[dict[str, Any]]:
        return [t.to_json() for t in await self._call(self.manager.store.children(task_id))]

    async def artifacts(self, task_id: str) -> list[dict[str, Any]]:
        return [a.to_json() for a in
                await self._call(self.manager.store.list_artifacts(task_id))]

    async def logs(self, task_id: str, after: int = 0, limit: int = 500) -> tuple[list[dict], int]:
        entries = await self._call(self.manager.store.get_logs(task_id, after, limit))
        return [e.to_json() for e in entries], (entries[-1].seq if entries else after)

    async def stats(self) -> dict[str, Any]:
        return await self._call(self._stats())

    async def _stats(self) -> dict[str, Any]:
        store = self.manager.store
        from jupyter_tasks.liveness import live_workers

        stats = await self._counts()
        # a worker killed with -9 keeps its row until a reaper runs (none may, beside a
        # dashboard on the file): its process says whether it lives
        workers = live_workers(await store.list_workers(), self.manager.config.lease_seconds)
        return _with_capacity(stats, workers)

    async def cancel(self, task_id: str) -> dict[str, Any]:
        return (await self._call(self.manager.cancel(task_id))).to_json()

    async def rerun(self, task_id: str) -> dict[str, Any]:
        from jupyter_tasks.engine.submission import answer_json

        await self._import_task_modules()
        # as the server answers: the run its task_key already had, or a new one
        return answer_json(await self._call(self.manager.rerun(task_id)))

    async def fork(self, task_id: str, overrides: dict[str, Any]) -> dict[str, Any]:
        await self._import_task_modules()
        return (await self._call(self.manager.fork(task_id, overrides))).to_json()

    async def _import_task_modules(self) -> None:
        # at the first rerun or fork, not at start: the first frame waits for nothing
        from .task_modules import import_task_modules

        await asyncio.to_thread(import_task_modules)

    async def confirm(self, task_id: str, answer: str,
                      asked_at: float | None = None) -> dict[str, Any]:
        return (await self._call(self.manager.confirm(task_id, answer, asked_at))).to_json()

    async def delete(self, task_id: str) -> None:
        await self._call(self.manager.delete(task_id))

    def _schedules(self) -> Any:
        if self._scheduler is None:
            from jupyter_tasks.scheduler import Scheduler

            # its operations only: the firing loop belongs to the server and the workers
            self._scheduler = Scheduler(self.manager)
        return self._scheduler

    async def list_schedules(self) -> list[dict[str, Any]]:
        return [s.to_json() for s in await self._call(self.manager.store.list_schedules())]

    async def pause_schedule(self, schedule_id: str) -> dict[str, Any]:
        return (await self._call(self._schedules().pause(schedule_id))).to_json()

    async def resume_schedule(self, schedule_id: str) -> dict[str, Any]:
        return (await self._call(self._schedules().resume(schedule_id))).to_json()

    async def run_schedule(self, schedule_id: str) -> dict[str, Any]:
        from jupyter_tasks.engine.submission import answer_json

        # as the server answers: the run its job's task_key already had, or a new one
        return answer_json(await self._call(self._schedules().run_now(schedule_id)))

    async def delete_schedule(self, schedule_id: str) -> None:
        await self._call(self._schedules().delete(schedule_id))

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            event = await self._sub.get()
            yield event.to_json()


def _engine_message(exc: Exception) -> str:
    from jupyter_tasks.exceptions import said_with_errors

    return said_with_errors(getattr(exc, "message", None) or str(exc),
                            getattr(exc, "errors", None))


# ------------------------------------------------------------------ discovery


def find_local_server() -> tuple[str, str | None] | None:
    """(url, token) of a running Jupyter server from the runtime dir, or None.

    The newest server that answers wins; servers whose files outlived them are
    skipped (``list_running_servers`` already drops those whose pid is gone).
    """
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:  # pragma: no cover - jupyter_server is a dependency
        return None
    servers = list(list_running_servers())
    servers.sort(key=lambda s: s.get("pid", 0), reverse=True)
    for info in servers:
        url = info.get("url")
        if url:
            return url, info.get("token") or None
    return None
