"""``WS /api/tasks/events``: stored events after ``since``, then live ones, no gap, no duplicate.

One hub per server holds the manager's subscription and serialises each event
once for every client. A handler joins the hub *before* replaying from the
store and then skips live events it already sent, so nothing falls in the gap
between the two. The hub never waits on a socket: it puts each event in every
client's inbox, and each client's pump writes what is queued and awaits only
its own flush. Every message goes out in id order (clients skip an id below one
they have); progress is coalesced per task (at most one every ``PROGRESS_INTERVAL``
seconds, longer when many tasks report, the latest always delivered), and what is
held back goes out before any later event. A client whose inbox overflows (it reads
slowly, or not at all) drops it and catches up from the store by event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import weakref
from collections import deque
from typing import Any

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web, websocket

from ..manager import Subscription, TaskManager
from ..models import (
    SINCE_HEADER,
    STREAM_RESET,
    STREAM_START,
    TERMINAL_STATUSES,
    Event,
    EventType,
    TaskStatus,
    iso,
)
from ..values import safe_dumps
from .auth import RESOURCE, may, owners_filter
from .handlers import ID_RE, MAX_EVENT_ID, query_integer, query_problems
from .problems import PROBLEM_TYPE, Problem, problem_for, status_for

PROGRESS = EventType.PROGRESS.value
PROGRESS_INTERVAL = 0.1
REPLAY_PAGE = 500
FIRST_REPLAY_PAGE = 50  # read without waiting for other clients' replays (_catch_up)
SUBSCRIPTION_SIZE = 5000  # events one client may have waiting before it resyncs
HUB_SIZE = 100_000  # events the hub may have waiting before every client resyncs
# progress messages a second one client gets at most: with many tasks reporting, each
# task's progress is coalesced longer (state changes are never held back)
PROGRESS_PER_SECOND = 250
# how often an idle client's pump looks whether the store became unusable
HEALTH_CHECK_SECONDS = 2.0


# what the stream's handshake takes (besides the server's own token and _xsrf)
STREAM_QUERY = frozenset({"since", "task_id", "announce"})


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
        if status == 426:  # the version this server speaks (send_error cleared the headers)
            self.set_header("Sec-WebSocket-Version", "13")
        if status == 405:  # RFC 9110, as every REST route's 405 says its methods
            self.set_header("Allow", "GET")
        self.finish(json.dumps(problem_for(status, exc)))

    def _check_handshake(self) -> None:
        """The checks tornado makes of a websocket handshake, answered as problem+json
        (tornado's own answers are text/html, or a 426 with no body)."""
        headers = self.request.headers
        if headers.get("Upgrade", "").lower() != "websocket":
            raise Problem(400, "this route is a websocket: connect with an Upgrade: "
                               "websocket request (GET /api/tasks lists tasks over REST)")
        if "upgrade" not in (part.strip().lower()
                             for part in headers.get("Connection", "").split(",")):
            raise Problem(400, 'a websocket handshake needs "Connection: Upgrade"')
        if headers.get("Sec-WebSocket-Version") not in ("7", "8", "13"):  # as tornado takes
            raise Problem(426, "this server speaks websocket version 13 (RFC 6455): "
                               "send Sec-WebSocket-Version: 13")
        # as tornado checks it (a browser's handshake carries its page's origin), but said
        origin = headers.get("Origin", headers.get("Sec-Websocket-Origin"))
        if origin and not self.check_origin(origin):
            raise Problem(403, f"a websocket from a page at {origin} is not allowed here: "
                               "only this server's own pages, or origins its "
                               "ServerApp.allow_origin settings allow, may connect")
        if not headers.get("Sec-WebSocket-Key"):
            raise Problem(400, "a websocket handshake needs a Sec-WebSocket-Key header")

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Authenticate and authorize (``read`` on ``tasks``), check the query, then upgrade."""
        if not await may(self, "read", RESOURCE):
            raise web.HTTPError(403, "not authorized to read tasks")
        since = self.get_argument("since", None)
        self._since: int | None = None
        if since not in (None, ""):
            self._since = query_integer(since)  # type: ignore[arg-type]
            if self._since is None or self._since > MAX_EVENT_ID:
                raise Problem(400, "since must be an event id (an integer from 0 to 2**62)")
        task_id = self.get_argument("task_id", None) or None
        if task_id is not None and not ID_RE.fullmatch(task_id):
            raise Problem(400, "task_id must be a task id (32 hex digits)")
        self._task_id = task_id
        announce = self.get_argument("announce", "")
        if announce not in ("", "0", "1"):
            raise Problem(400, "announce must be 1 (or 0, the default)")
        # as REST: a misspelt since was read as none (the history asked for, lost), a
        # repeated one at its last, ?since=%00 as absent
        problems = query_problems(self.request.query_arguments, STREAM_QUERY)
        if problems:
            raise Problem(400, f"query parameter {problems[0]['field']!r}: "
                               f"{problems[0]['message']} (this stream takes since, task_id "
                               "and announce)")
        self._announce = announce == "1"
        owners = await owners_filter(self)
        self._owners = None if owners is None else set(owners)
        self._check_handshake()
        await self.settings["jupyter_tasks_app"].ensure_started()
        store = self.manager.store
        newest = await store.last_event_id()
        # a since past the newest event comes from another history: the database file
        # was replaced (moved aside to start empty, ids begin again). The client is told
        # to start over from the newest (a browser cannot read a refused handshake's
        # status); kept, it would drop every live event below its old id, silently.
        # So is a since whose next events were pruned (a client away longer than the
        # history is kept): its replay would skip them, a task's end among them. 0 asks
        # for all that is kept, and gets it
        self._reset = self._since is not None and (
            self._since > newest or 0 < self._since < await store.first_event_id() - 1)
        if self._since is None or self._reset:
            # "from now" is the store's newest event, which the manager's tail may not
            # have dispatched yet: those are skipped, later ones replayed or sent live
            self._since = newest
        # where this stream starts: a client that asked "from now" and loses the
        # connection before its first event reconnects from here, missing nothing
        self.set_header(SINCE_HEADER, str(self._since))
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().open(*args, **kwargs)
        # join the hub first: everything after this instant reaches the inbox
        self._sender = _Sender(self)
        self._hub = EventHub.of(self.manager)
        self._hub.join(self._sender)
        self._pump_task = asyncio.ensure_future(self._pump())

    def on_message(self, message: Any) -> None:
        """Clients only listen; messages are ignored."""

    def on_close(self) -> None:
        super().on_close()
        hub = getattr(self, "_hub", None)
        if hub is not None:
            hub.leave(self._sender)
        pump = getattr(self, "_pump_task", None)
        if pump is not None:
            pump.cancel()

    # ------------------------------------------------------------------ pump

    def _wanted(self, event: Event) -> bool:
        if self._task_id is not None and event.task_id != self._task_id:
            return False
        return self._owners is None or event.owner in self._owners

    async def _pump(self) -> None:
        sender = self._sender
        try:
            if self._reset:
                await self.write_message(safe_dumps(stream_reset(self._since)))
            elif self._announce:
                await self.write_message(safe_dumps(stream_start(self._since)))
            # the store covers everything up to now, the inbox everything after
            await self._catch_up(self._since, sender)
            while True:
                if self.manager.store.unusable is not None:
                    # its file went (or is damaged): no event will come, and an open
                    # socket kept the panel saying "live" while every request got a 503.
                    # Closed, the client reconnects, and the handshake's 503 says why
                    self.close(1011, "the task database cannot be used")
                    return
                if sender.overflowed:
                    await self._resync(sender)
                    continue
                sender.take_inbox()
                # the only await on this client's socket: a slow reader slows itself alone
                await sender.write_ready()
                await sender.idle()
        except (websocket.WebSocketClosedError, asyncio.CancelledError):
            pass
        except Exception:
            self.log.exception("task events websocket failed")
            self.close(1011, "internal error")
        finally:
            hub = getattr(self, "_hub", None)
            if hub is not None:
                hub.leave(sender)

    async def _catch_up(self, after: int, sender: _Sender) -> None:
        """Send stored events after ``after`` (page by page) through the coalescer."""
        store = self.manager.store
        owners = None if self._owners is None else sorted(self._owners)
        sender.last_id = max(sender.last_id, after)  # nothing at or before it goes out
        # a short gap (a client starting from now, a panel back after a blip) is read
        # at once; a longer one, page by page in turn with every other client's replay:
        # twenty replays of a long history at once held a listening client's events
        # back for a second, each page's parsing and encoding a long turn of the loop.
        # Taken in turn, the live stream waits for one page at most. The flush is
        # awaited outside the turn, so a client reading slowly holds back no replay
        limit, turn = FIRST_REPLAY_PAGE, contextlib.nullcontext()
        while True:
            async with turn:
                events = await store.events_after(after, limit=limit,
                                                  task_id=self._task_id, owners=owners)
                for event in events:
                    sender.intake(_Message(event))
                flushed = sender.write_queued()
            if flushed is not None:
                await flushed
            if len(events) < limit:
                return
            after = events[-1].id
            limit, turn = REPLAY_PAGE, self._hub.replay_turn

    async def _resync(self, sender: _Sender) -> None:
        """The inbox overflowed: drop it and read the gap from the store."""
        sender.overflowed = False
        sender.inbox.clear()
        await self._catch_up(sender.last_id, sender)


def stream_reset(newest: int) -> dict[str, Any]:
    """The message that tells a client resuming from another history to start over: forget
    what it shows, read it again, and resume after ``newest`` (its ``id``)."""
    return {"id": newest, "type": STREAM_RESET, "task_id": None,
            "ts": iso(time.time()), "task": None}


def stream_start(since: int) -> dict[str, Any]:
    """The first message to a client that asked (``announce=1``): its stream starts after
    event ``since`` (``id``), the id to resume from should it drop before its first event."""
    return {"id": since, "type": STREAM_START, "task_id": None, "ts": iso(time.time()),
            "task": None}


class _Message:
    """One event on its way to every client: serialised once, on first need."""

    __slots__ = ("_data", "event")

    def __init__(self, event: Event) -> None:
        self.event = event
        self._data: bytes | None = None

    @property
    def data(self) -> bytes:
        if self._data is None:
            # bytes: tornado sends them as the text frame without encoding them per client
            self._data = safe_dumps(self.event.to_json()).encode()
        return self._data


_HUBS: weakref.WeakKeyDictionary[TaskManager, EventHub] = weakref.WeakKeyDictionary()


class EventHub:
    """The server's one subscription to the manager's feed, fanned out to every websocket.

    Each event is serialised once for all clients and put in each client's inbox
    without waiting: a client that reads slowly (or never) holds back no other.
    """

    def __init__(self, manager: TaskManager) -> None:
        self.manager = manager
        self.senders: set[_Sender] = set()
        self._sub: Subscription | None = None
        self._task: asyncio.Future[None] | None = None
        # held while a client's replay reads, encodes and writes one page (_catch_up)
        self.replay_turn = asyncio.Lock()

    @classmethod
    def of(cls, manager: TaskManager) -> EventHub:
        """The hub of ``manager`` (made on first use)."""
        hub = _HUBS.get(manager)
        if hub is None:
            hub = _HUBS[manager] = cls(manager)
        return hub

    def join(self, sender: _Sender) -> None:
        """Feed ``sender`` every event from now on."""
        self.senders.add(sender)
        if self._task is None or self._task.done():
            self._sub = self.manager.subscribe(maxsize=HUB_SIZE)
            self._task = asyncio.ensure_future(self._pump(self._sub))

    def leave(self, sender: _Sender) -> None:
        """Stop feeding ``sender``; the last one out closes the subscription."""
        self.senders.discard(sender)
        if not self.senders and self._task is not None:
            self._task.cancel()
            self._task = None
            if self._sub is not None:
                self._sub.close()
                self._sub = None

    async def _pump(self, sub: Subscription) -> None:
        while True:
            event = await sub.get()
            if sub.overflowed:
                # the hub itself fell behind and the feed dropped events: every client
                # reads its gap from the store
                sub.overflowed = False
                while not sub.queue.empty():
                    sub.queue.get_nowait()
                for sender in self.senders:
                    sender.overflow()
                continue
            message = _Message(event)
            for sender in self.senders:
                sender.offer(message)


class _Sender:
    """One client's side: an inbox the hub fills, a coalescer, and writes that never block others.

    State changes go out in id order as soon as the socket has flushed the last
    batch; progress is held per task, at most once per ``progress_interval``
    (``PROGRESS_INTERVAL``, longer when so many tasks report that one client would get
    more than ``PROGRESS_PER_SECOND`` messages a second). Held progress never waits
    behind a later id: all of it goes with the next state change, or once one is due.
    """

    def __init__(self, handler: EventsWebSocket) -> None:
        self.handler = handler
        self.inbox: deque[_Message] = deque()  # from the hub, not looked at yet
        self.limit = SUBSCRIPTION_SIZE
        self.overflowed = False
        self.last_id = 0  # every event up to here was sent, filtered out or coalesced
        self.ready: deque[_Message] = deque()  # to write, in id order
        self.sent_at: dict[str, float] = {}  # task id -> when its last progress went out
        self.pending: dict[str, tuple[_Message, float]] = {}  # task id -> (latest progress, due)
        self._wake = asyncio.Event()

    # ------------------------------------------------------------- from the hub

    def offer(self, message: _Message) -> None:
        """Queue ``message`` without waiting; a full inbox makes this client resync."""
        if len(self.inbox) >= self.limit:
            self.overflow()
            return
        self.inbox.append(message)
        self._wake.set()

    def overflow(self) -> None:
        """Events were lost on the way here: the pump reads them from the store."""
        self.overflowed = True
        self.inbox.clear()
        self._wake.set()

    # ------------------------------------------------------------------ pump

    def take_inbox(self) -> None:
        """Run everything the hub queued through the coalescer."""
        inbox = self.inbox
        while inbox:
            self.intake(inbox.popleft())

    def intake(self, message: _Message) -> None:
        """Skip a duplicate or filtered event, hold back progress, queue the rest."""
        event = message.event
        if event.id <= self.last_id:
            return  # already replayed
        self.last_id = event.id
        if not self.handler._wanted(event):
            return
        task_id = event.task_id
        if event.type == PROGRESS:
            due = self.sent_at.get(task_id, 0.0) + self.progress_interval()
            self.pending[task_id] = (message, due)
            return
        # a later event's snapshot supersedes a held-back progress of the same task
        self.pending.pop(task_id, None)
        # and the rest goes out before it: a client skips an id below one it has (the
        # panel, TasksClient.events()), and would never show that progress
        self.release_pending()
        if event.type in _FINAL:
            self.sent_at.pop(task_id, None)
        self.ready.append(message)

    def release_pending(self) -> None:
        """Queue every held-back progress, in id order, as sent now."""
        if not self.pending:
            return
        now = time.monotonic()
        for task_id, (message, _) in sorted(self.pending.items(),
                                            key=lambda item: item[1][0].event.id):
            self.sent_at[task_id] = now
            self.ready.append(message)
        self.pending.clear()

    def progress_interval(self) -> float:
        """Seconds between two progress messages of one task to this client."""
        return max(PROGRESS_INTERVAL, len(self.sent_at) / PROGRESS_PER_SECOND)

    async def write_ready(self) -> None:
        """Write the queued events, then the progress that is due; wait until flushed."""
        last = self.write_queued()
        if last is not None:
            await last

    def write_queued(self) -> asyncio.Future[None] | None:
        """Hand the queued events, then the progress that is due, to the socket; the last
        write's future (done once flushed), None when nothing was written."""
        last: asyncio.Future[None] | None = None
        write = self.handler.write_message
        # once one task's progress is due, all held progress goes: a later id sent alone
        # would overtake the others' (ids only grow on the wire)
        now = time.monotonic()
        if any(at <= now for _, at in self.pending.values()):
            self.release_pending()
        while self.ready:
            last = write(self.ready.popleft().data)
            last.add_done_callback(_retrieve)
        return last

    async def idle(self) -> None:
        """Wait for the hub's next event, or the next held progress falling due."""
        if self.inbox or self.overflowed:
            return
        self._wake.clear()
        # woken now and then with nothing to send too: the pump looks at the store's health
        timeout = HEALTH_CHECK_SECONDS
        if self.pending:
            timeout = min(timeout, max(0.0, min(at for _, at in self.pending.values())
                                       - time.monotonic()))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)


def _retrieve(future: asyncio.Future[None]) -> None:
    # a write to a socket that closed fails; the pump sees the close, not each write
    if not future.cancelled():
        future.exception()


_FINAL = {EventType.for_status(TaskStatus(s)).value for s in TERMINAL_STATUSES} | {
    EventType.DELETED.value}
