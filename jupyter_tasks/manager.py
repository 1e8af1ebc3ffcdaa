"""``TaskManager``: one per process; the façade over the engine's parts (``jupyter_tasks.engine``).

It submits (``engine.submission``), runs (``engine.execution``), claims jobs
(``engine.worker_loop``), tails events (``engine.feed``) and keeps house
(``engine.housekeeping``), all through one store. The job kinds it runs are
plug-ins (``engine.kinds``) chosen by whoever builds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any, TypeVar

from . import callbacks, runtime
from .context import TaskContext
from .engine.bell import WakeBell
from .engine.config import ManagerConfig
from .engine.execution import Execution
from .engine.feed import (
    EventFeed,
    Subscription,
    task_fields_from_api_json,
    task_from_api_json,
)
from .engine.housekeeping import Housekeeping
from .engine.kinds import JobKind, default_kinds
from .engine.state import EngineState, RunningTask
from .engine.submission import FORK_OVERRIDES, WORK_FIELDS, Submission, was_deduplicated
from .engine.worker_loop import JobWorker
from .exceptions import TaskFailed
from .models import Task, TaskKind, TaskMode, TaskStatus
from .registry import Registry, default_registry
from .runners import GroupHook
from .runtime import on_its_loop
from .store import Store

T = TypeVar("T")
LOOPBACK_HOSTS = callbacks.LOOPBACK_HOSTS
# after another process's ring woke an idle job loop, the feed reads this much later:
# about what the loop's look and claim take on an idle machine
FEED_AFTER_IDLE_LOOK = 0.001

__all__ = [
    "FORK_OVERRIDES", "LOOPBACK_HOSTS", "WORK_FIELDS", "ManagerConfig", "Subscription",
    "TaskManager", "task_fields_from_api_json",
    "task_from_api_json", "was_deduplicated",
]


class TaskManager:
    """Submits and runs tasks in this process, and runs durable jobs when given queues.

    Use ``async with TaskManager(path) as manager:``; in a thread-based program
    (a kernel), ``jupyter_tasks.start_manager()`` runs one on its own event
    loop in a daemon thread. The keywords are the fields of ``ManagerConfig``
    (or pass ``config=``); ``kinds`` are the job kinds it runs (default:
    ``engine.kinds.default_kinds()``, the standard ones once ``jupyter_tasks``
    is imported).
    """

    def __init__(self, db_path: str | os.PathLike[str] | None = None, *,
                 registry: Registry | None = None, kinds: Iterable[JobKind] | None = None,
                 config: ManagerConfig | None = None, **options: Any) -> None:
        if config is not None and options:
            raise TypeError("give config= or keyword options, not both")
        if db_path is not None:
            options["db_path"] = db_path
        try:
            self.config = config or ManagerConfig(**options)
        except TypeError as exc:
            raise TypeError(f"TaskManager: {exc} (the options are the fields of "
                            f"ManagerConfig: {', '.join(ManagerConfig.field_names())})") \
                from None
        config = self.config
        self.registry = registry or default_registry
        self.worker_id = (f"{config.worker_kind}-{socket.gethostname()}-{os.getpid()}-"
                          f"{os.urandom(3).hex()}")
        self.state = EngineState(config, self.registry, self, self.worker_id)
        for kind in default_kinds() if kinds is None else kinds:
            self.install_kind(kind)
        self.housekeeping = Housekeeping(self.state)
        self.execution = Execution(self.state, self.housekeeping.post_callback)
        self.submission = Submission(self.state, self.execution)
        self.feed = EventFeed(self.state, self.execution)
        self.worker = JobWorker(self.state, self.execution)
        self._loops: list[asyncio.Task[Any]] = []
        self._started = False
        self._stopped: asyncio.Future[None] | None = None  # the stop, once one began
        # rung by other processes' commits, rings them after ours (None: poll only)
        self.bell: WakeBell | None = None

    # the settings, read where they were read before the config existed
    db_path = property(lambda self: self.config.db_path, doc="The database file.")
    owner = property(lambda self: self.config.owner, doc="Who new tasks belong to.")
    origin = property(lambda self: self.config.origin, doc="Where new tasks come from.")
    worker_kind = property(lambda self: self.config.worker_kind, doc="What kind of worker.")
    queues = property(lambda self: self.config.queues, doc="Job queue -> concurrency.")
    queue_limits = property(lambda self: self.config.queue_limits,
                            doc="Queue -> limit of background tasks running at once.")
    lease_seconds = property(lambda self: self.config.lease_seconds, doc="A claim's lease.")
    callback_allowlist = property(lambda self: self.config.callback_allowlist,
                                  doc="Hosts callbacks may go to.")
    runs_background = property(lambda self: self.config.runs_background,
                               doc="Whether background tasks run here.")
    as_worker = property(lambda self: self.config.as_worker, doc="Whether this is a worker.")

    @property
    def store(self) -> Store:
        """The open store (None before ``start``)."""
        return self.state.store

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the manager runs on."""
        return self.state.loop

    @property
    def kinds(self) -> dict[str, JobKind]:
        """Kind -> the plug-in that validates and executes it."""
        return self.state.kinds

    def install_kind(self, kind: JobKind) -> None:
        """Run tasks of ``kind.kind`` with this plug-in (replacing any before it)."""
        self.state.kinds[kind.kind] = kind

    @property
    def last_event_id(self) -> int:
        """The id of the newest event the feed has read."""
        return self.feed.last_event_id

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> TaskManager:
        """Open the store, announce this worker, and start the background loops."""
        if self._started:
            return self
        config = self.config
        state = self.state
        state.loop = asyncio.get_running_loop()
        state.store = await Store.open(config.db_path, busy_timeout=config.busy_timeout,
                                       create=config.create_db)
        try:
            await self._announce()
        except BaseException:
            # the store's threads would keep the process from exiting (a worker on a
            # read-only file printed its error, then hung)
            if self.bell is not None:
                self.bell.close()
            await state.store.close()
            raise
        state.started = True
        self._started = True
        self._loops = [*self.worker.start_queues(),
                       asyncio.create_task(self.housekeeping.flush_loop()),
                       asyncio.create_task(self.feed.tail_loop())]
        if config.as_worker:
            self._loops += [asyncio.create_task(self.worker.heartbeat_loop()),
                            asyncio.create_task(self.housekeeping.reaper_loop())]
        if config.make_default:
            runtime.set_default_manager(self)
        return self

    async def _announce(self) -> None:
        """Bind the feed to the store's commits, write this worker's row, reap the dead."""
        config, state = self.config, self.state
        # the feed reads at once after our commits, and after others' through the bell;
        # bound before the feed's starting point is read, so no later commit goes unheard
        state.store.after_commit.append(self.feed.committed_here)
        if config.wake_bell:
            self.bell = WakeBell(config.db_path, self._rung)
            self.bell.open(state.loop)
            state.store.after_commit.append(self.bell.ring)
        if config.as_worker:
            await self.worker.register()
        self.feed.last_event_id = await state.store.last_event_id()
        if config.as_worker:
            await self.reap_dead_workers()

    def _rung(self) -> None:
        # another process committed: idle job loops look for work at once, and the feed
        # reads the events; while a loop was idle, a moment later, so the claim the ring
        # woke is not queued behind that read (a job's start from idle waits for its claim)
        if self.state.wake_all():
            asyncio.get_running_loop().call_later(FEED_AFTER_IDLE_LOOK, self.feed.nudge)
        else:
            self.feed.nudge()

    async def stop(self, *, grace: float = 5.0) -> None:
        """Stop loops; local background work ends ``interrupted``, claimed jobs are handed back."""
        # a second caller (two shutdowns at once) waits for the stop under way
        if self._stopped is None:
            if not self._started:
                return
            self._stopped = asyncio.ensure_future(self._stop(grace))
        await asyncio.shield(self._stopped)

    async def _stop(self, grace: float) -> None:
        self.state.stopping = True
        # job loops waiting for work end now, waiting for their runs (a claim under
        # way hands back what it took if it is cancelled: see outcome_despite_cancel)
        self.state.wake_all()
        pending = self.execution.stop_all()
        # and job runs between two jobs: the next one, claimed as stop() began, goes back
        pending |= (job_runs := set(self.worker.job_runs))
        if pending:
            await asyncio.wait(pending, timeout=grace)
        self.worker.note_left_at_stop(job_runs)
        await self.housekeeping.flush()
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        with contextlib.suppress(Exception):  # the file may be gone: nothing to hand back
            await self.housekeeping.stop_callbacks()
        if self.config.as_worker:
            with contextlib.suppress(Exception):
                await self.store.stop_worker(self.worker_id)
        await self.store.close()
        if self.bell is not None:
            self.bell.close()
        if runtime.get_default_manager() is self:
            runtime.set_default_manager(None)
        self.state.started = False
        self._started = False

    async def __aenter__(self) -> TaskManager:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        """True between ``start`` and ``stop``."""
        return self._started and not self.state.stopping

    @property
    def stopping(self) -> bool:
        """True once ``stop`` began (a stopped manager is not started again by a server)."""
        return self.state.stopping

    # ------------------------------------------------------------------- submit

    @on_its_loop
    async def submit(
        self,
        target: Any = None,
        /,
        *args: Any,
        mode: str | None = None,
        label: str | None = None,
        task_key: str | None = None,
        idempotency_key: str | None = None,
        queue: str = "default",
        priority: int = 0,
        timeout: float | None = None,
        max_retries: int | None = None,
        memory_limit_mb: int | None = None,
        owner: str | None = None,
        origin: Mapping[str, Any] | None = None,
        callback_url: str | None = None,
        params: Mapping[str, Any] | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Task:
        """Submit work and return its task (for ``sync`` mode, once it has ended).

        ``target`` is a coroutine object, a callable (with ``*args``/``**kwargs``),
        the name of a registered task (``params`` or ``**kwargs`` are its
        parameters), or an argv list for a subprocess. Objects that only live in
        this process (coroutines, callables) cannot be ``job`` tasks.

        The options are held to the REST API's rules (``queue`` a queue name,
        ``priority`` from -1,000,000 to 1,000,000, ``timeout`` a finite positive number
        of seconds, ``max_retries`` from 0 to 100, ``memory_limit_mb`` from 1 to
        10,000,000): anything else raises ``InvalidRequest`` naming the option, and
        nothing is written.
        """
        options = dict(label=label, task_key=task_key, idempotency_key=idempotency_key,
                       queue=queue, priority=priority, timeout=timeout, max_retries=max_retries,
                       memory_limit_mb=memory_limit_mb, owner=owner, origin=origin,
                       callback_url=callback_url)
        return await self.submission.submit(target, args, kwargs, mode=mode, params=params,
                                            cwd=cwd, env=env, options=options)

    @on_its_loop
    async def submit_spec(self, spec: Mapping[str, Any], *, mode: str = "job",
                          parent: Task | None = None, relationship: str | None = None,
                          **options: Any) -> Task:
        """Submit serializable work: exactly one of ``name``/``command``/``notebook``/``code``.

        Validates before anything is written: a bad request leaves no row.
        """
        return await self.submission.submit_spec(spec, mode=mode, parent=parent,
                                                 relationship=relationship, **options)

    @on_its_loop
    async def submit_cell(self, spec: Mapping[str, Any], *, label: str,
                          **options: Any) -> Task:
        """Create a background ``cell`` task for the kernel side and start it here.

        ``spec`` holds the cell's ``source`` (and where it came from); the
        ``cell`` kind installed by the kernel side runs it.
        """
        return await self.submission.create(
            TaskKind.CELL.value, TaskMode.BACKGROUND.value, dict(spec), name=None,
            label=label, params=None, local=None, options=options)

    @on_its_loop
    async def enqueue_by_name(self, name: str, params: Mapping[str, Any], *, label: str,
                              **options: Any) -> Task:
        """Queue a job of a registered task this process does not import (unchecked here).

        The worker that imports it binds ``params`` when it runs the job, so a
        bad parameter fails the job there instead of being refused here.
        """
        params = dict(params)
        return await self.submission.create(
            TaskKind.FUNCTION.value, TaskMode.JOB.value, {"name": name, "params": params},
            name=name, label=label, params=params, local=None, options=options)

    def check_callback_url(self, url: str) -> None:
        """Refuse (``InvalidRequest``) an invalid callback URL or one off the allow-list."""
        self.submission.check_callback_url(url)

    # -------------------------------------------------------------------- reads

    @on_its_loop
    async def get(self, task_id: str) -> Task:
        """The task, or ``TaskNotFound``."""
        return await self.store.require_task(task_id)

    @on_its_loop
    async def wait(self, task_id: str, timeout: float | None = None) -> Task:
        """Wait until the task ends (or ``timeout`` passes); returns its latest state."""
        return await self.feed.wait(task_id, timeout)

    @on_its_loop
    async def result(self, task_id: str, timeout: float | None = None) -> Any:
        """The task's result once it succeeds; ``TaskFailed`` otherwise."""
        task = await self.wait(task_id, timeout)
        if not task.is_terminal:
            raise asyncio.TimeoutError(f"task {task_id} still {task.status} after {timeout}s")
        if task.status != TaskStatus.SUCCEEDED:
            raise TaskFailed(task.id, task.status, task.error)
        local = self.state.local_results.get(task_id)
        return local[1] if local and local[0] else task.result

    def outcome(self, task: Task, *, reraised: type[BaseException] = Exception) -> Any:
        """An ended task's value: the real object if it ran here, else its JSON result.

        A failure here of type ``reraised`` re-raises its original exception (a blocking
        cell asks for every BaseException, ``sys.exit()`` too); else ``TaskFailed``.
        """
        local = self.state.local_results.get(task.id)
        if task.status == TaskStatus.SUCCEEDED:
            return local[1] if local and local[0] else task.result
        if local and not local[0] and isinstance(local[1], reraised) \
                and task.status == TaskStatus.FAILED:
            raise local[1]
        raise TaskFailed(task.id, task.status, task.error)

    def local_result(self, task_id: str) -> tuple[bool, Any] | None:
        """(ok, value or exception) of a task run in this process, if still remembered."""
        return self.state.local_results.get(task_id)

    def running_context(self, task_id: str) -> TaskContext | None:
        """The context of a task running in this process, or None."""
        running = self.state.running.get(task_id)
        return running.ctx if running is not None else None

    def live_progress(self, task_id: str) -> dict[str, Any] | None:
        """The progress a task running here recorded, newer than the row's; None if none."""
        ctx = self.running_context(task_id)
        return ctx.current_progress if ctx is not None else None

    # ------------------------------------------------------------------ actions

    @on_its_loop
    async def cancel(self, task_id: str) -> Task:
        """Cancel a queued task, or ask its owner to stop a running one."""
        task, ended_here = await self.store.request_cancel(task_id)
        if ended_here and task.callback_url and self.config.as_worker:
            # no worker ends it: its POST goes from here; a process that is no worker
            # (the CLI) leaves it to a worker's or the server's sweep of the outbox
            self.state.spawn(self.housekeeping.post_callback(task.id))
        if not task.is_terminal:
            self.execution.stop_by_id(task_id, "cancel")
        return task

    @on_its_loop
    async def rerun(self, task_id: str, *, owner: str | None = None,
                    origin: Mapping[str, Any] | None = None,
                    idempotency_key: str | None = None) -> Task:
        """Run the same spec again as a new task with ``relationship='rerun'`` (or return
        the run of its ``task_key`` already active, as a submit does)."""
        return await self.submission.again(await self.get(task_id), {}, "rerun", owner, origin,
                                           idempotency_key)

    @on_its_loop
    async def fork(self, task_id: str, overrides: Mapping[str, Any], *,
                   owner: str | None = None, origin: Mapping[str, Any] | None = None,
                   idempotency_key: str | None = None) -> Task:
        """Run the spec with overrides (params, code, command, parameters, label)."""
        return await self.submission.fork(await self.get(task_id), overrides, owner, origin,
                                          idempotency_key)

    @on_its_loop
    async def confirm(self, task_id: str, answer: str, asked_at: float | None = None) -> Task:
        """Answer a task's pending question (the one asked at ``asked_at``, if given)."""
        task = await self.store.answer_confirmation(task_id, answer, asked_at)
        self.execution.deliver_answer(task.id, task.confirmation)
        return task

    @on_its_loop
    async def delete(self, task_id: str) -> Task:
        """Forget a finished task."""
        task = await self.store.delete_task(task_id)
        self.state.local_results.pop(task_id, None)
        return task

    async def ask(self, ctx: TaskContext, prompt: str, choices: list[str],
                  timeout: float | None) -> str:
        """Ask a person for one of ``choices`` for the task of ``ctx`` (running here)."""
        return await self.execution.ask(ctx, prompt, choices, timeout)

    # --------------------------------------------------------------- event feed

    def subscribe(self, maxsize: int = 10_000) -> Subscription:
        """A live feed of events from now on (every process's, via the store)."""
        return self.feed.subscribe(maxsize)

    async def poll_events(self) -> None:
        """Read and dispatch events newer than the last one seen (cheap when nothing changed)."""
        await self.feed.poll()

    def store_commits(self) -> int:
        """How many transactions this process's own connection committed."""
        return self.store.commits

    # ------------------------------------------------------------ housekeeping

    async def reap_dead_workers(self) -> list[Task]:
        """Settle the tasks of workers that died (pid gone here, or heartbeat too old)."""
        return await self.housekeeping.reap_dead_workers()

    async def record_group(self, running: RunningTask, pgid: int,
                           record: dict[str, Any] | None) -> None:
        """Write into the task's row that its work started (``record``) or ended a process group."""
        await self.execution.record_group(running, pgid, record)

    def group_recorder(self, task_id: str) -> GroupHook | None:
        """A hook recording a running task's process groups from any loop; None if not running."""
        running = self.state.running.get(task_id)
        if running is None:
            return None

        async def on_group(pgid: int, record: dict[str, Any] | None) -> None:
            # the row and the task's group list belong to the manager's loop, maybe not ours
            await self.run_on_loop(self.execution.record_group(running, pgid, record))

        return on_group

    # --------------------------------------------------------- thread bridging

    async def run_on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on this manager's loop from whichever loop we are on."""
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is self.loop:
            return await coro
        assert self.loop is not None
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def run_sync(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on this manager's loop from another thread and wait for it."""
        if not self.running:
            coro.close()
            self.submission.require_running()
        try:
            if asyncio.get_running_loop() is self.loop:
                coro.close()
                raise RuntimeError("run_sync() would deadlock on the manager's own loop; await it")
        except RuntimeError as exc:
            if "deadlock" in str(exc):
                raise
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

