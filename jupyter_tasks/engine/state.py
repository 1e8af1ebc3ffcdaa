"""What the engine's parts share while a manager runs: its store, loop, tasks running here."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from ..context import TaskContext, TaskHost
from ..models import Task
from ..registry import Registry
from ..runners import ProcessUsage, ThreadRun
from ..store import Store
from .config import ManagerConfig

# (callable or coroutine, args, kwargs) of a task whose work is an object of this process
LocalWork = tuple[Any, tuple[Any, ...], dict[str, Any]]


@dataclass
class RunningTask:
    """A task this process is executing, as its kind's ``execute`` sees it."""

    task: Task
    ctx: TaskContext
    registry: Registry
    local: LocalWork | None = None  # the in-process object to run, if the work is one
    aio_task: asyncio.Task[Any] | None = None
    stop_reason: str | None = None  # "cancel", "timeout" or "shutdown" once we stop it ourselves
    thread: ThreadRun = field(default_factory=ThreadRun)
    process: ProcessUsage = field(default_factory=ProcessUsage)
    answer: asyncio.Future[str] | None = None
    timer: asyncio.TimerHandle | None = None
    cancel_sent: bool = False
    started: float = field(default_factory=time.time)
    groups: dict[int, dict[str, Any]] = field(default_factory=dict)  # live process groups


class LocalQueue:
    """Concurrency limit with priorities for work started in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    async def acquire(self, priority: int) -> None:
        """Wait for a free slot; higher ``priority`` first, then first come."""
        if self.running < self.limit and not self._waiting:
            self.running += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (-priority, next(self._seq), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()
            raise

    def release(self) -> None:
        """Free a slot and hand it to the next waiter."""
        self.running -= 1
        while self._waiting and self.running < self.limit:
            _, _, fut = heapq.heappop(self._waiting)
            if not fut.done():
                self.running += 1
                fut.set_result(None)


class EngineState:
    """The run-time state every part reads: set up by the façade, shared, never copied."""

    def __init__(self, config: ManagerConfig, registry: Registry, host: TaskHost,
                 worker_id: str) -> None:
        self.config = config
        self.registry = registry
        self.host = host  # the façade: what task contexts call back into
        self.worker_id = worker_id
        self.store: Store = None  # type: ignore[assignment]  # opened by start()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.started = False  # between the façade's start() and stop()
        self.stopping = False  # once stop() began; stays set
        self.running: dict[str, RunningTask] = {}
        self.local_work: dict[str, LocalWork] = {}
        self.local_results: OrderedDict[str, tuple[bool, Any]] = OrderedDict()
        self.wake_queues: dict[str, asyncio.Event] = {}
        # kind -> its JobKind plug-in (typed loosely: engine.kinds builds on this module)
        self.kinds: dict[str, Any] = {}
        # queued tasks created by this manager whose task.created event the tail has not
        # read yet: their snapshots need not be decoded to learn what to wake
        self.created_here: set[str] = set()
        self.background: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` in the background, keeping a reference until it ends."""
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    def wake(self, queue: str | None) -> None:
        """Tell the job loop of ``queue`` (if this process serves it) to claim now."""
        event = self.wake_queues.get(queue) if queue is not None else None
        if event is not None:
            event.set()

    def wake_all(self) -> None:
        """Tell every job loop of this process to claim now."""
        for event in self.wake_queues.values():
            event.set()

    def remember(self, task_id: str, ok: bool, value: Any) -> None:
        """Keep the outcome of a task run here (the last 1000)."""
        self.local_results[task_id] = (ok, value)
        while len(self.local_results) > 1000:
            self.local_results.popitem(last=False)
