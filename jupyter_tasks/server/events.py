"""``WS /api/tasks/events``: stored events after ``since``, then live ones, no gap, no duplicate.

The handler subscribes to the manager's feed *before* replaying from the store
and then skips live events it already sent, so nothing falls in the gap between
the two. Progress events are coalesced per task (at most one every
``PROGRESS_INTERVAL`` seconds, the latest always delivered). A client that
reads slowly only delays its own pump: when its subscription overflows, the
pump drops the queue and catches up from the store by event id.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web, websocket

from ..manager import Subscription, TaskManager
from ..models import TERMINAL_STATUSES, Event, EventType, TaskStatus
from ..values import safe_dumps
from .auth import RESOURCE, may, owners_filter
from .handlers import ID_RE
from .problems import PROBLEM_TYPE, Problem, problem_for, status_for

PROGRESS = EventType.PROGRESS.value
PROGRESS_INTERVAL = 0.1
REPLAY_PAGE = 1000
SUBSCRIPTION_SIZE = 5000


class EventsWebSocket(WebSocketMixin, JupyterHandler, websocket.WebSocketHandler):
    """One JSON message per event: ``{"id", "type", "task_id", "ts", "task"}``."""

    auth_resource = RESOURCE

    @property
    def manager(self) -> TaskManager:
        return self.settings["jupyter_tasks_manager"]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = (kwargs.get("exc_info") or (None, None, None))[1]
        status = status_for(exc, status_code)  # an unusable database is 503, as over REST
        self.set_status(status)
        self.set_header("Content-Type", PROBLEM_TYPE)
        self.finish(json.dumps(problem_for(status, exc)))

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Authenticate and authorize (``read`` on ``tasks``), check the query, then upgrade."""
        if not await may(self, "read", RESOURCE):
            raise web.HTTPError(403, "not authorized to read tasks")
        since = self.get_argument("since", None)
        self._since: int | None = None
        if since not in (None, ""):
            try:
                self._since = int(since)  # type: ignore[arg-type]
            except ValueError:
                self._since = -1
            if self._since < 0:
                raise Problem(400, "since must be a non-negative event id")
        task_id = self.get_argument("task_id", None) or None
        if task_id is not None and not ID_RE.match(task_id):
            raise Problem(400, "task_id must be a task id (32 hex digits)")
        self._task_id = task_id
        owners = await owners_filter(self)
        self._owners = None if owners is None else set(owners)
        await self.settings["jupyter_tasks_app"].ensure_started()
        if self._since is None:
            # "from now" is the store's newest event, which the manager's tail may not
            # have dispatched yet: those are skipped, later ones replayed or sent live
            self._since = await self.manager.store.last_event_id()
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().open(*args, **kwargs)
        # subscribe first: everything after this instant reaches the queue
        self._sub: Subscription = self.manager.subscribe(maxsize=SUBSCRIPTION_SIZE)
        self._pump_task = asyncio.ensure_future(self._pump())

    def on_message(self, message: Any) -> None:
        """Clients only listen; messages are ignored."""

    def on_close(self) -> None:
        super().on_close()
        sub = getattr(self, "_sub", None)
        if sub is not None:
            sub.close()
        pump = getattr(self, "_pump_task", None)
        if pump is not None:
            pump.cancel()

    # ------------------------------------------------------------------ pump

    def _wanted(self, event: Event) -> bool:
        if self._task_id is not None and event.task_id != self._task_id:
            return False
        return self._owners is None or event.owner in self._owners

    async def _pump(self) -> None:
        sender = _Sender(self)
        try:
            # the store covers everything up to now, the subscription everything after
            await self._catch_up(self._since, sender)
            while True:
                if self._sub.overflowed:
                    await self._resync(sender)
                    continue
                timeout = sender.next_deadline()
                try:
                    event = await asyncio.wait_for(self._sub.get(), timeout)
                except asyncio.TimeoutError:
                    await sender.flush_due()
                    continue
                await sender.offer(event)
        except (websocket.WebSocketClosedError, asyncio.CancelledError):
            pass
        except Exception:
            self.log.exception("task events websocket failed")
            self.close(1011, "internal error")
        finally:
            self._sub.close()

    async def _catch_up(self, after: int, sender: _Sender) -> None:
        """Send stored events after ``after`` (page by page) through the coalescer."""
        store = self.manager.store
        owners = None if self._owners is None else sorted(self._owners)
        sender.last_id = max(sender.last_id, after)  # nothing at or before it goes out
        while True:
            events = await store.events_after(after, limit=REPLAY_PAGE, task_id=self._task_id,
                                              owners=owners)
            for event in events:
                await sender.offer(event)
            if len(events) < REPLAY_PAGE:
                return
            after = events[-1].id

    async def _resync(self, sender: _Sender) -> None:
        """The subscription overflowed: drop its queue and read the gap from the store."""
        self._sub.overflowed = False
        while not self._sub.queue.empty():
            self._sub.queue.get_nowait()
        await self._catch_up(sender.last_id, sender)


class _Sender:
    """Writes events in order, skipping duplicates and coalescing progress per task."""

    def __init__(self, handler: EventsWebSocket) -> None:
        self.handler = handler
        self.last_id = 0  # every event up to here was sent, filtered out or coalesced
        self.sent_at: dict[str, float] = {}  # task id -> when its last progress went out
        self.pending: dict[str, tuple[Event, float]] = {}  # task id -> (latest progress, due)

    async def offer(self, event: Event) -> None:
        if event.id <= self.last_id:
            return  # already replayed
        self.last_id = event.id
        if not self.handler._wanted(event):
            return
        if event.type == PROGRESS:
            now = time.monotonic()
            due = self.sent_at.get(event.task_id, 0.0) + PROGRESS_INTERVAL
            if now < due:
                self.pending[event.task_id] = (event, due)
                await self.flush_due()
                return
            self.pending.pop(event.task_id, None)
            self.sent_at[event.task_id] = now
        else:
            # a later event's snapshot supersedes a held-back progress of the same task
            self.pending.pop(event.task_id, None)
            if event.type in _FINAL:
                self.sent_at.pop(event.task_id, None)
        await self._write(event)
        if self.pending:
            await self.flush_due()

    def next_deadline(self) -> float | None:
        if not self.pending:
            return None
        return max(0.0, min(due for _, due in self.pending.values()) - time.monotonic())

    async def flush_due(self) -> None:
        now = time.monotonic()
        for task_id, (event, due) in list(self.pending.items()):
            if due <= now:
                del self.pending[task_id]
                self.sent_at[task_id] = now
                await self._write(event)

    async def _write(self, event: Event) -> None:
        # awaiting the write makes a slow client slow only its own pump
        await self.handler.write_message(safe_dumps(event.to_json()))


_FINAL = {EventType.for_status(TaskStatus(s)).value for s in TERMINAL_STATUSES} | {
    EventType.DELETED.value}
