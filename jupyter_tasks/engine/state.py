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
from ..exceptions import RaisedInThread
from ..models import Task
from ..registry import Registry
from ..runners import ProcessUsage, ThreadRun, uncancel
from ..store import Store
from ..values import EncodedWithValue
from .config import ManagerConfig

# (callable or coroutine, args, kwargs) of a task whose work is an object of this process
LocalWork = tuple[Any, tuple[Any, ...], dict[str, Any]]


class Doorbell:
    """A wake-up one loop awaits with a deadline: a job loop's, the event feed's.

    Unlike ``asyncio.Event`` awaited through ``asyncio.wait`` (or ``wait_for``), a
    wait costs no task and a ring reaches the waiter in a single turn of the loop:
    a job's start from idle waits for exactly that.
    """

    def __init__(self) -> None:
        self.rung = False
        # a job loop's, set before it waits: whether it has a free slot (work would start)
        self.has_free_slot = False
        self._waiter: asyncio.Future[None] | None = None

    def ring(self) -> None:
        """Wake the waiter now, or make its next wait return at once."""
        self.rung = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def idle(self) -> bool:
        """Whether its loop waits with a free slot: a ring now may start a job at once."""
        return self.has_free_slot and self._waiter is not None and not self._waiter.done()

    def clear(self) -> None:
        """Forget rings so far (the waiter is about to look for itself)."""
        self.rung = False

    async def wait(self, timeout: float) -> None:
        """Until rung (at once if it was since the last ``clear``) or ``timeout`` passes."""
        if self.rung:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout, _settle, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


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
    asked_at: float | None = None  # when the question ``answer`` waits for was asked
    timer: asyncio.TimerHandle | None = None
    cancel_sent: bool = False
    started: float = field(default_factory=time.time)
    groups: dict[int, dict[str, Any]] = field(default_factory=dict)  # live process groups
    # its kind kept the end its work reached on its own before the stop (``keep_own_end``)
    kept_own_end: bool = False

    def resource_usage(self) -> dict[str, Any]:
        """Wall and CPU seconds, peak memory of the run (the row's ``resource_usage``)."""
        usage: dict[str, Any] = {"wall_seconds": round(time.time() - self.started, 6)}
        if self.thread.cpu_seconds:
            usage["cpu_seconds"] = round(self.thread.cpu_seconds, 6)
        if self.process.pid is not None:
            usage["cpu_seconds"] = round(self.process.cpu_seconds, 6)
            usage["peak_memory_mb"] = round(self.process.peak_rss_mb, 3)
        return usage

    def being_closed(self) -> bool:
        """Whether a GeneratorExit at the attempt's await is its coroutine being closed.

        A close (the loop gone, the coroutine collected) throws it in from outside the
        attempt's asyncio task; raised by the task's code, it comes in that task's step.
        """
        try:
            return asyncio.current_task() is not self.aio_task
        except RuntimeError:  # no running loop
            return True

    def keep_own_end(self) -> bool:
        """Whether the attempt may keep the end its work reached on its own before a cancel,
        timeout or shutdown reached it; if so, that stop is taken back.

        Its kind asks once it knows the work had ended (a function's return, a command's
        exit, a notebook's last cell): the stop came too late to stop anything, and
        writing it cancelled threw away a result whose side effects exist; a shutdown
        handing it back had the next worker run it a second time. Taken back, nothing
        later in the attempt takes the stop as pending, and a failure stays a failure.
        """
        if self.stop_reason not in ("cancel", "timeout", "shutdown"):
            return False
        uncancel()
        self.kept_own_end = True
        return True

    def kept_exit(self) -> int | None:
        """The exit code of the attempt's process that had ended on its own when the stop
        reached it, if the attempt keeps that end (``keep_own_end``); else None."""
        code = self.process.exit_before_stop
        return code if code is not None and self.keep_own_end() else None

    def retry_refused(self) -> bool:
        """Whether a failure of this attempt is the task's end, never retried."""
        # one kept over a cancel (``keep_own_end``): the user asked the task to stop, and
        # another attempt would be claimed only to be cancelled there, the failure kept
        # here hidden behind that cancel
        return self.stop_reason == "cancel"

    def stop_swallowed(self) -> bool:
        """Whether a cancel or timeout reached the task's code, which caught it and
        returned what it had (on the attempt's own asyncio task).

        A kind that kept a value returned before the stop came took the cancel back
        (see ``call_in_thread``); one that returns with the cancel still pending ran
        over it.
        """
        # Task.cancelling() is Python 3.11's: before it, a caught cancel goes unseen
        cancelling = getattr(asyncio.current_task(), "cancelling", None)
        return self.cancel_sent and self.stop_reason in ("cancel", "timeout") \
            and cancelling is not None and cancelling() > 0


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
        # tasks this process runs, from their start until their end is written: the
        # heartbeat renews their leases and no others
        self.leased: set[str] = set()
        self.local_work: dict[str, LocalWork] = {}
        self.local_results: OrderedDict[str, tuple[bool, Any]] = OrderedDict()
        self.wake_queues: dict[str, Doorbell] = {}
        # kind -> its JobKind plug-in (typed loosely: engine.kinds builds on this module)
        self.kinds: dict[str, Any] = {}
        # queued tasks created by this manager whose task.created event the tail has not
        # read yet: their snapshots need not be decoded to learn what to wake
        self.created_here: set[str] = set()
        self.background: set[asyncio.Task[Any]] = set()
        # task id -> when a cancel was asked for it while it ran nowhere here: a job this
        # worker claimed may not have started yet (see note_cancel)
        self.early_cancels: OrderedDict[str, float] = OrderedDict()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` in the background, keeping a reference until it ends."""
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    def wake(self, queue: str | None) -> None:
        """Tell the job loop of ``queue`` (if this process serves it) to claim now."""
        bell = self.wake_queues.get(queue) if queue is not None else None
        if bell is not None:
            bell.ring()

    def wake_all(self) -> bool:
        """Tell every job loop of this process to claim now; whether one had a free slot."""
        idle = False
        for bell in self.wake_queues.values():
            idle = idle or bell.idle
            bell.ring()
        return idle

    def note_cancel(self, task_id: str) -> None:
        """Keep a cancel asked for a task not running here, for a start that comes after it.

        The row a claim returned has no cancel in it when the request came after the
        claim's commit, and the feed may read that request before the job's run begins.
        Kept for a lease: a claimed job starts well within it, or is lost anyway.
        """
        now = time.monotonic()
        cancels = self.early_cancels
        cancels[task_id] = now
        cancels.move_to_end(task_id)
        oldest = now - self.config.lease_seconds
        while cancels and (next(iter(cancels.values())) < oldest or len(cancels) > 10_000):
            cancels.popitem(last=False)

    def cancel_came_early(self, task_id: str) -> bool:
        """Whether a cancel of ``task_id`` came before its run here began (forgotten now)."""
        return self.early_cancels.pop(task_id, None) is not None

    def remember(self, task_id: str, ok: bool, value: Any) -> None:
        """Keep the outcome of a task run here (the last 1000)."""
        # type(), not isinstance(): a value's own __class__ may raise (a dead weakref
        # proxy), and the end was never written
        if type(value) is EncodedWithValue:  # the row takes its encoding
            value = value.value
        if type(value) is RaisedInThread and isinstance(value.__cause__, GeneratorExit):
            # what the code in the thread raised, which a future cannot carry: its outcome
            # as if raised here, TaskFailed for a BaseException like the others (not a
            # StopIteration: re-raised in a coroutine it becomes a RuntimeError)
            value = value.__cause__
        self.local_results[task_id] = (ok, value)
        while len(self.local_results) > 1000:
            self.local_results.popitem(last=False)
