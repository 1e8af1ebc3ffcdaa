"""The event feed: tail the events table, react to what other processes asked, fan events out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

from ..exceptions import TaskNotFound
from ..models import Event, EventType, Task, TaskMode, TaskStatus
from .execution import Execution
from .loop_failures import LoopFailures
from .state import Doorbell, EngineState

log = logging.getLogger("jupyter_tasks")

# events after which a task's waiters have their answer: its end, or its deletion
ENDING_EVENTS = frozenset(
    {EventType.for_status(s).value for s in TaskStatus if s.is_terminal}
    | {EventType.DELETED.value}
)
# how many events one read of the table takes
PAGE = 1000
# the least time between the starts of two reads of the table (a read made at once
# when rung after a quiet spell; a storm of commits is read in batches)
RUNG_GAP = 0.003


def deleted(task_id: str) -> TaskNotFound:
    """The error of a wait whose task was deleted before its end was read."""
    return TaskNotFound(f"task {task_id} was deleted before its end was read")


def task_fields_from_api_json(data: dict[str, Any]) -> dict[str, Any]:
    """The ``Task`` fields present in its API JSON (an event's snapshot), times as epochs."""

    def ts(value: str | None) -> float | None:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None

    fields = {k: v for k, v in data.items() if k in Task.__dataclass_fields__}
    for key in ("created_at", "started_at", "finished_at", "updated_at"):
        if key in fields:
            fields[key] = ts(fields[key]) or 0.0 if key in ("created_at", "updated_at") \
                else ts(fields[key])
    return fields


def task_from_api_json(data: dict[str, Any]) -> Task:
    """A ``Task`` from its API JSON (an event's snapshot, a REST answer)."""
    return Task(**task_fields_from_api_json(data))


class Subscription:
    """A live feed of every event this manager sees, in id order."""

    def __init__(self, feed: EventFeed, maxsize: int) -> None:
        self._feed = feed
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.overflowed = False

    def offer(self, event: Event) -> None:
        """Queue ``event`` without waiting; a full queue marks the subscription overflowed."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            # a slow consumer must never block the manager: mark it; it resyncs from the store
            self.overflowed = True

    async def get(self) -> Event:
        """The next event."""
        return await self.queue.get()

    def close(self) -> None:
        """Stop receiving events."""
        self._feed.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()


class EventFeed:
    """Follows the events table: wakes job loops, stops and answers tasks, feeds subscribers."""

    def __init__(self, state: EngineState, execution: Execution) -> None:
        self.state = state
        self.execution = execution
        self.last_event_id = 0
        self.subscribers: set[Subscription] = set()
        self.waiters: dict[str, list[asyncio.Future[Task]]] = {}
        self._seen_version: tuple[int, int] | None = None
        # one read at a time: a second reader would see the version the first one noted
        # and return before the first dispatched what it read (or read it twice)
        self._reading = asyncio.Lock()
        # rung by nudge(): something was committed (here, or by a process that rang our bell)
        self._doorbell = Doorbell()
        self._handlers: dict[str, Callable[[Event], None]] = {
            EventType.CANCEL_REQUESTED.value: self._on_cancel_requested,
            EventType.CONFIRMATION.value: self._on_confirmation,
            EventType.CREATED.value: self._on_created,
            EventType.RETRYING.value: self._on_retrying,
        }

    async def tail_loop(self) -> None:
        """Follow the events table and react to what other processes asked of our tasks.

        It reads when nudged (a commit of ours, another process's wake-up bell),
        and every ``poll_interval`` in case a wake-up was missed.
        """
        loop = asyncio.get_running_loop()
        doorbell = self._doorbell
        failures = LoopFailures(log, "reading events failed")
        while True:
            rung = doorbell.rung
            doorbell.clear()
            began = loop.time()
            try:
                await self.poll(changed=rung)
                failures.succeeded()
            except Exception:
                failures.failed()
            # at once if a nudge came during the read: read again
            await doorbell.wait(self.state.config.poll_interval)
            # rung again soon after a read: the next read takes every commit of the gap
            # at once, where a read per commit would cost a busy worker its throughput
            gap = RUNG_GAP - (loop.time() - began)
            if gap > 0:
                await asyncio.sleep(gap)

    def committed_here(self) -> None:
        """After a commit of this process: read at once if someone waits for events."""
        # our own events matter to waiters and subscribers (a websocket); with neither, the
        # poll reads them soon enough, and a notebook loop of submits, a commit each, is
        # spared a read of the events after every one of them
        if self.subscribers or self.waiters:
            self.nudge()

    def nudge(self) -> None:
        """Read the events table now: something was committed that may concern us."""
        self._doorbell.ring()

    async def poll(self, changed: bool = False) -> None:
        """Read and dispatch events newer than the last one seen (cheap when nothing changed).

        ``changed``: a commit is known to have happened; skip the check for one.
        """
        async with self._reading:
            store = self.state.store
            if changed:
                self._seen_version = None  # the next timed poll reads the version again
            else:
                version = (await store.data_version(), store.commits)
                if version == self._seen_version:
                    return
                self._seen_version = version
            while True:
                events = await store.events_after(self.last_event_id, limit=PAGE)
                for event in events:
                    self.last_event_id = event.id
                    self.dispatch(event)
                if len(events) < PAGE:
                    return

    def dispatch(self, event: Event) -> None:
        """React to one event, then hand it to waiters and subscribers."""
        # a table keyed by the event type's text: an Enum's .value is a Python-level
        # property, and an if-chain of them cost ~2 us for each of every job's events
        handler = self._handlers.get(event.type)
        if handler is not None:
            handler(event)
        if event.type in ENDING_EVENTS:
            for fut in self.waiters.get(event.task_id, []):
                if fut.done() or event.task is None:
                    continue
                if event.type == EventType.DELETED.value:
                    # its end was not read here (the delete took its events): the deleted
                    # snapshot has no result to answer with
                    fut.set_exception(deleted(event.task_id))
                else:
                    fut.set_result(task_from_api_json(event.task))
        for sub in list(self.subscribers):
            sub.offer(event)

    # ------------------------------------------------------------ subscriptions

    def subscribe(self, maxsize: int = 10_000) -> Subscription:
        """A live feed of events from now on (every process's, via the store)."""
        sub = Subscription(self, maxsize)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop feeding ``sub``."""
        self.subscribers.discard(sub)

    async def wait(self, task_id: str, timeout: float | None) -> Task:
        """Wait until the task ends (or ``timeout`` passes); returns its latest state."""
        store = self.state.store
        task = await store.require_task(task_id)
        if task.is_terminal or timeout == 0:
            return task
        fut: asyncio.Future[Task] = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(task_id, []).append(fut)
        try:
            task = await store.require_task(task_id)  # it may have ended before we registered
            if task.is_terminal:
                return task
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(fut), timeout)
        finally:
            waiters = self.waiters.get(task_id, [])
            if fut in waiters:
                waiters.remove(fut)
            if not waiters:
                self.waiters.pop(task_id, None)
        # the event carried the public snapshot; the row has everything
        latest = await store.get_task(task_id)
        if latest is not None:
            return latest
        if fut.done():
            return fut.result()
        raise deleted(task_id)

    # --------------------------------------------------------------- reactions

    def _on_cancel_requested(self, event: Event) -> None:
        if event.task_id not in self.state.running:
            # a job claimed here may not have started yet: its start looks for this
            self.state.note_cancel(event.task_id)
        self.execution.stop_by_id(event.task_id, "cancel")

    def _on_confirmation(self, event: Event) -> None:
        if event.task:
            self.execution.deliver_answer(event.task_id, event.task.get("confirmation"))

    def _on_created(self, event: Event) -> None:
        state = self.state
        if event.task_id in state.created_here:
            state.created_here.discard(event.task_id)  # our own submit already woke its queue
            return
        snapshot = event.task
        if not snapshot:
            return
        if snapshot.get("mode") == TaskMode.JOB:
            state.wake(snapshot.get("queue"))
        elif snapshot.get("status") == TaskStatus.QUEUED \
                and snapshot.get("kind") in state.kinds:
            state.spawn(self.execution.run_targeted(event.task_id))

    def _on_retrying(self, event: Event) -> None:
        if event.task:
            self.state.wake(event.task.get("queue"))
