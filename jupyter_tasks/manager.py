"""``TaskManager``: one per process; submits, runs, watches and settles tasks through the store."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import getpass
import hashlib
import heapq
import inspect
import itertools
import json
import logging
import os
import random
import socket
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psutil

from . import callbacks, runtime
from .context import TaskContext, current_context
from .exceptions import (
    InvalidRequest,
    ManagerNotRunning,
    NotRerunnable,
    StoreError,
    TaskCancelled,
    TaskFailed,
    TaskTimedOut,
)
from .liveness import pid_alive
from .models import (
    MAX_LOST_ATTEMPTS,
    Event,
    EventType,
    Task,
    TaskKind,
    TaskMode,
    TaskStatus,
    WorkerInfo,
    dumps,
    failure_reason,
    new_task_id,
)
from .paths import default_db_path
from .registry import Registry, default_registry
from .runners import (
    MemoryLimitExceeded,
    ProcessUsage,
    ThreadRun,
    end_recorded_groups,
    run_in_thread,
    run_process,
)
from .runners import validate_argv as _validate_argv
from .store import Store
from .tracebacks import full_traceback, user_traceback
from .values import MAX_RESULT_CHARS, RESULT_ARTIFACT, JSONText, encode_input
from .values import encode as encode_value

log = logging.getLogger("jupyter_tasks")
T = TypeVar("T")

# The four kinds of work a submission can name; exactly one per task.
WORK_FIELDS = ("name", "command", "notebook", "code")
# Fork overrides each kind accepts.
FORK_OVERRIDES = {
    TaskKind.FUNCTION.value: {"params", "label"},
    TaskKind.SUBPROCESS.value: {"command", "label"},
    TaskKind.NOTEBOOK.value: {"parameters", "label"},
    TaskKind.CODE.value: {"code", "input_data", "label"},
    TaskKind.CELL.value: {"code", "label"},
}
LOOPBACK_HOSTS = callbacks.LOOPBACK_HOSTS

Executor = Callable[[Task, TaskContext, Any], Awaitable[Any]]


@dataclass
class _Running:
    """A task this process is executing."""

    task: Task
    ctx: TaskContext
    aio_task: asyncio.Task[Any] | None = None
    stop_reason: str | None = None  # "cancel" or "timeout" once we stop it ourselves
    thread: ThreadRun = field(default_factory=ThreadRun)
    process: ProcessUsage = field(default_factory=ProcessUsage)
    answer: asyncio.Future[str] | None = None
    timer: asyncio.TimerHandle | None = None
    cancel_sent: bool = False
    started: float = field(default_factory=time.time)
    groups: dict[int, dict[str, Any]] = field(default_factory=dict)  # live process groups


_EXIT_RECORDING_KINDS = (TaskKind.SUBPROCESS.value, TaskKind.CODE.value)


class _LocalQueue:
    """Concurrency limit with priorities for work started in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    async def acquire(self, priority: int) -> None:
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
        self.running -= 1
        while self._waiting and self.running < self.limit:
            _, _, fut = heapq.heappop(self._waiting)
            if not fut.done():
                self.running += 1
                fut.set_result(None)


class Subscription:
    """A live feed of every event this manager sees, in id order."""

    def __init__(self, manager: TaskManager, maxsize: int) -> None:
        self._manager = manager
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.overflowed = False

    def _offer(self, event: Event) -> None:
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
        self._manager._subscribers.discard(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()


class TaskManager:
    """Submits and runs tasks in this process, and runs durable jobs when given queues.

    Use ``async with TaskManager(path) as manager:``; in a thread-based program
    (a kernel), ``jupyter_tasks.runtime.start_manager()`` runs one on its own
    event loop in a daemon thread.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str] | None = None,
        *,
        registry: Registry | None = None,
        owner: str | None = None,
        origin: Mapping[str, Any] | None = None,
        worker_kind: str = "process",
        queues: Mapping[str, int] | None = None,
        queue_limits: Mapping[str, int] | None = None,
        flush_interval: float = 0.2,
        poll_interval: float = 0.02,
        heartbeat_interval: float = 2.0,
        lease_seconds: float = 30.0,
        reaper_interval: float = 1.0,
        retry_base_delay: float = 1.0,
        retry_max_delay: float = 300.0,
        max_lost_attempts: int = MAX_LOST_ATTEMPTS,
        callback_allowlist: Iterable[str] | None = None,
        runs_background: bool = True,
        claim_batch: int = 8,
        make_default: bool = True,
        flush_batch: int | None = None,
        busy_timeout: float = 30.0,
        as_worker: bool = True,
        create_db: bool = True,
    ) -> None:
        self.db_path = os.fspath(db_path) if db_path is not None else str(default_db_path())
        self.registry = registry or default_registry
        self.owner = owner or os.environ.get("JUPYTER_TASKS_OWNER") or _login_name()
        self.origin = dict(origin or {"type": "python"})
        self.worker_kind = worker_kind
        self.queues = dict(queues or {})
        self.queue_limits = dict(queue_limits or {})
        self.flush_interval = flush_interval
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.lease_seconds = lease_seconds
        self.reaper_interval = reaper_interval
        self.retry_base_delay = retry_base_delay
        self.retry_max_delay = retry_max_delay
        # times a job's worker may be lost (requeued whatever max_retries says) before
        # the job ends interrupted: work that kills its worker must not loop forever
        self.max_lost_attempts = max_lost_attempts
        self.callback_allowlist = list(
            LOOPBACK_HOSTS if callback_allowlist is None else callback_allowlist
        )
        callbacks.CallbackPolicy.from_entries(self.callback_allowlist)  # a bad entry fails here
        self.runs_background = runs_background
        self.claim_batch = claim_batch
        self.make_default = make_default
        # tasks per progress/log transaction (None: all in one); smaller batches let other
        # database work (state changes, the event tail) run between them
        self.flush_batch = flush_batch
        # how long a write waits for another process's lock before StoreBusy (503)
        self.busy_timeout = busy_timeout
        # False for tools that look and steer (the dashboard, the CLI): no worker row, no
        # heartbeat, no reaper, no job queues; requests they write are carried out by workers
        if not as_worker and (self.queues or runs_background):
            raise ValueError("a manager that is no worker runs nothing: give no queues and "
                             "runs_background=False")
        self.as_worker = as_worker
        self.create_db = create_db  # False: a missing database file is an error, not created
        self.worker_id = f"{worker_kind}-{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        self.executors: dict[str, Executor] = {
            TaskKind.FUNCTION.value: self._exec_function,
            TaskKind.SUBPROCESS.value: self._exec_subprocess,
        }
        from .jobs import install_job_executors  # notebook + code kinds (nbclient loads lazily)

        install_job_executors(self)
        self.store: Store = None  # type: ignore[assignment]
        self.loop: asyncio.AbstractEventLoop | None = None
        self.last_event_id = 0
        self._running: dict[str, _Running] = {}
        self._local_work: dict[str, tuple[Any, tuple[Any, ...], dict[str, Any]]] = {}
        self._local_results: OrderedDict[str, tuple[bool, Any]] = OrderedDict()
        self._waiters: dict[str, list[asyncio.Future[Task]]] = {}
        self._subscribers: set[Subscription] = set()
        self._local_queues: dict[str, _LocalQueue] = {}
        self._job_slots: dict[str, int] = {}
        self._wake_queues: dict[str, asyncio.Event] = {}
        self._loops: list[asyncio.Task[Any]] = []
        self._background: set[asyncio.Task[Any]] = set()
        # queued tasks created by this manager whose task.created event the tail has not
        # read yet: their snapshots need not be decoded to learn what to wake
        self._created_here: set[str] = set()
        # each runs claimed jobs one after another until its queue is empty
        self._job_runs: set[asyncio.Task[Any]] = set()
        self._started = False
        self._stopping = False
        self._seen_version: tuple[int, int] | None = None
        self._event_handlers: dict[str, Callable[[Event], None]] = {
            EventType.CANCEL_REQUESTED.value: self._on_cancel_requested,
            EventType.CONFIRMATION.value: self._on_confirmation,
            EventType.CREATED.value: self._on_created,
            EventType.RETRYING.value: self._on_retrying,
        }

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> TaskManager:
        """Open the store, announce this worker, and start the background loops."""
        if self._started:
            return self
        self.loop = asyncio.get_running_loop()
        self.store = await Store.open(self.db_path, busy_timeout=self.busy_timeout,
                                      create=self.create_db)
        if self.as_worker:
            me = psutil.Process()
            now = time.time()
            await self.store.register_worker(WorkerInfo(
                id=self.worker_id, kind=self.worker_kind, pid=os.getpid(),
                host=socket.gethostname(), started_at=now, heartbeat_at=now,
                pid_started_at=me.create_time(), queues=sorted(self.queues),
            ))
        self.last_event_id = await self.store.last_event_id()
        if self.as_worker:
            await self.reap_dead_workers()
        self._started = True
        for queue, concurrency in self.queues.items():
            self._job_slots[queue] = concurrency
            self._wake_queues[queue] = asyncio.Event()
            self._loops.append(asyncio.create_task(self._job_loop(queue, concurrency)))
        self._loops += [
            asyncio.create_task(self._flush_loop()),
            asyncio.create_task(self._tail_loop()),
        ]
        if self.as_worker:
            self._loops += [asyncio.create_task(self._heartbeat_loop()),
                            asyncio.create_task(self._reaper_loop())]
        if self.make_default:
            runtime.set_default_manager(self)
        return self

    async def stop(self, *, grace: float = 5.0) -> None:
        """Stop loops; local background work ends ``interrupted``, claimed jobs are handed back."""
        if not self._started or self._stopping:
            return
        self._stopping = True
        for running in list(self._running.values()):
            running.stop_reason = "shutdown"
            if running.aio_task is not None:
                running.aio_task.cancel()
        pending = {r.aio_task for r in self._running.values() if r.aio_task is not None}
        # and job runs between two jobs: the next one, claimed as stop() began, goes back
        pending |= self._job_runs
        if pending:
            await asyncio.wait(pending, timeout=grace)
        await self._flush()
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        if self.as_worker:
            with contextlib.suppress(Exception):
                await self.store.stop_worker(self.worker_id)
        await self.store.close()
        if runtime.get_default_manager() is self:
            runtime.set_default_manager(None)
        self._started = False

    async def __aenter__(self) -> TaskManager:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        """True between ``start`` and ``stop``."""
        return self._started and not self._stopping

    # ------------------------------------------------------------------- submit

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
        """
        options = dict(label=label, task_key=task_key, idempotency_key=idempotency_key,
                       queue=queue, priority=priority, timeout=timeout, max_retries=max_retries,
                       memory_limit_mb=memory_limit_mb, owner=owner, origin=origin,
                       callback_url=callback_url)
        if isinstance(target, str):
            if args:
                raise InvalidRequest("a registered task takes keyword parameters only")
            spec = {"name": target, "params": {**(params or {}), **kwargs}}
            info = self.registry.get_info(target)
            return await self.submit_spec(spec, mode=mode or info.mode, **options)
        if isinstance(target, (list, tuple)):
            spec = {"command": list(target), "cwd": cwd, "env": dict(env) if env else None}
            return await self.submit_spec(spec, mode=mode or TaskMode.BACKGROUND.value, **options)
        if inspect.iscoroutine(target) or callable(target):
            if inspect.iscoroutine(target) and (args or kwargs):
                raise InvalidRequest("arguments go into the coroutine call, not to submit()")
            mode = mode or TaskMode.BACKGROUND.value
            if mode == TaskMode.JOB:
                if inspect.iscoroutine(target):
                    target.close()
                raise InvalidRequest(
                    "a job must be re-creatable in another process: register the function "
                    "with @task and submit it by name"
                )
            fn = target.cr_code if inspect.iscoroutine(target) else target
            qualname = _qualified_name(fn)
            spec = {"callable": qualname}
            return await self._create_and_start(
                TaskKind.FUNCTION.value, mode, spec, name=None,
                label=label or qualname.rsplit(".", 1)[-1], params=None,
                local=(target, args, kwargs), options=options,
            )
        raise InvalidRequest(
            f"cannot submit {target!r}: give a coroutine, a callable, a registered task name or "
            "an argv list"
        )

    async def submit_spec(self, spec: Mapping[str, Any], *, mode: str = "job",
                          parent: Task | None = None, relationship: str | None = None,
                          **options: Any) -> Task:
        """Submit serializable work: exactly one of ``name``/``command``/``notebook``/``code``.

        Validates before anything is written: a bad request leaves no row.
        """
        spec = {k: v for k, v in spec.items() if v is not None}
        present = [f for f in WORK_FIELDS if f in spec]
        if len(present) != 1:
            raise InvalidRequest(
                f"give exactly one of {', '.join(WORK_FIELDS)} (got {present or 'none'})",
                errors=[{"field": f, "message": "only one work field allowed"} for f in present]
                or [{"field": "name", "message": "one work field is required"}],
            )
        try:
            mode = TaskMode(mode).value
        except ValueError:
            raise InvalidRequest(f"mode must be one of sync, background, job (got {mode!r})") \
                from None
        work = present[0]
        name = None
        params = None
        if work == "name":
            name = spec["name"]
            info = self.registry.get_info(name)
            params = info.validate(spec.get("params"))
            kind = TaskKind.FUNCTION.value
            clean = {"name": name, "params": params}
        elif work == "command":
            kind = TaskKind.SUBPROCESS.value
            clean = {"command": _validate_argv(spec["command"])}
            if spec.get("cwd") is not None:
                clean["cwd"] = _check_str(spec["cwd"], "cwd")
            if spec.get("env") is not None:
                clean["env"] = _check_env(spec["env"])
        elif work == "notebook":
            kind = TaskKind.NOTEBOOK.value
            clean = {"notebook": _check_str(spec["notebook"], "notebook"),
                     "parameters": _check_obj(spec.get("parameters") or {}, "parameters"),
                     "root_dir": spec.get("root_dir") or os.getcwd()}
            # where else to write the executed notebook (checked by the validation below)
            clean.update({k: spec[k] for k in ("output_path", "export_html") if k in spec})
            from .jobs.notebook import validate_notebook_spec

            # a missing notebook or a parameter that cannot be a variable: 422 now, not later
            validate_notebook_spec(clean)
        else:
            kind = TaskKind.CODE.value
            clean = {"code": _check_str(spec["code"], "code"),
                     "input_data": spec.get("input_data")}
        for key in ("root_dir", "kernel_name"):
            if key in spec:
                clean[key] = spec[key]
        if kind not in self.executors and mode != TaskMode.JOB:
            raise InvalidRequest(f"this process cannot run {kind} tasks; submit them as jobs")
        default_label = name or (" ".join(clean["command"]) if kind == "subprocess" else None) \
            or clean.get("notebook") or "code"
        return await self._create_and_start(
            kind, mode, clean, name=name, label=options.pop("label", None) or default_label,
            params=params if kind == TaskKind.FUNCTION else clean.get("parameters"),
            local=None, options=options, parent=parent, relationship=relationship,
        )

    async def _create_and_start(
        self, kind: str, mode: str, spec: dict[str, Any], *, name: str | None,
        label: str, params: Any, local: tuple[Any, tuple[Any, ...], dict[str, Any]] | None,
        options: dict[str, Any], parent: Task | None = None, relationship: str | None = None,
        target_worker: str | None = None,
    ) -> Task:
        self._require_running()
        callback_url = options.get("callback_url")
        if callback_url is not None:
            self.check_callback_url(callback_url)
        timeout = options.get("timeout")
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
            raise InvalidRequest("timeout must be a positive number of seconds")
        max_retries = options.get("max_retries")
        if max_retries is None:
            # retries are for failures only (a lost worker is retried apart): function
            # jobs keep their two; a notebook, code or command that failed would fail
            # again, repeating its side effects, so they run once unless asked
            max_retries = 2 if mode == TaskMode.JOB and kind == TaskKind.FUNCTION else 0
        now = time.time()
        queue = options.get("queue") or "default"
        local_start = mode != TaskMode.JOB and target_worker is None
        limited = local_start and queue in self.queue_limits
        direct = local_start and not limited
        hashes, texts = _content_hashes(spec)
        # the row's spec and params columns hold the very texts just hashed
        encoded = {"spec": texts["spec"]}
        for key in ("params", "parameters"):
            if params is not None and key in texts and spec.get(key) is params:
                encoded["params"] = texts[key]
        task = Task.build(
            id=new_task_id(), kind=kind, mode=mode,
            status=TaskStatus.RUNNING.value if direct else TaskStatus.QUEUED.value,
            name=name, label=label, params=params, spec=spec,
            task_key=options.get("task_key"), idempotency_key=options.get("idempotency_key"),
            payload_hash=_payload_hash(spec, mode, options),
            queue=queue, priority=int(options.get("priority") or 0),
            owner=options.get("owner") or self.owner,
            origin=dict(options.get("origin") or self.origin),
            attempts=1 if direct else 0, max_retries=int(max_retries),
            timeout=timeout, memory_limit_mb=options.get("memory_limit_mb"),
            parent_id=parent.id if parent else None, relationship=relationship,
            schedule_id=options.get("schedule_id"),
            worker_id=self.worker_id if local_start else target_worker,
            lease_expires_at=now + self.lease_seconds if direct else None,
            callback_url=callback_url, content_hashes=hashes,
            created_at=now, started_at=now if direct else None, updated_at=now,
        )
        created, deduplicated = await self.store.create_task(task, encoded=encoded)
        if deduplicated:
            if local is not None and inspect.iscoroutine(local[0]):
                local[0].close()  # never started: avoid "coroutine was never awaited"
            return _mark_dedup(created)
        if created.status == TaskStatus.QUEUED:  # a direct start's event is task.started
            self._created_here.add(created.id)
        if mode == TaskMode.JOB:
            wake = self._wake_queues.get(queue)
            if wake is not None:
                wake.set()
            return created
        if target_worker is not None:
            return created
        if local is not None:
            self._local_work[created.id] = local
        if mode == TaskMode.SYNC:
            await self._run_task(created, limited=limited)
            return await self.store.require_task(created.id)
        self._spawn(self._run_task(created, limited=limited))
        return created

    def check_callback_url(self, url: str) -> None:
        """Refuse (``InvalidRequest``) an invalid callback URL or one off the allow-list."""
        callbacks.check_url(url, callbacks.CallbackPolicy.from_entries(self.callback_allowlist))

    # -------------------------------------------------------------------- reads

    async def get(self, task_id: str) -> Task:
        """The task, or ``TaskNotFound``."""
        return await self.store.require_task(task_id)

    async def wait(self, task_id: str, timeout: float | None = None) -> Task:
        """Wait until the task ends (or ``timeout`` passes); returns its latest state."""
        task = await self.get(task_id)
        if task.is_terminal or timeout == 0:
            return task
        fut: asyncio.Future[Task] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(task_id, []).append(fut)
        try:
            task = await self.get(task_id)  # it may have ended before we registered
            if task.is_terminal:
                return task
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(fut), timeout)
        finally:
            waiters = self._waiters.get(task_id, [])
            if fut in waiters:
                waiters.remove(fut)
            if not waiters:
                self._waiters.pop(task_id, None)
        # the event carried the public snapshot; the row has everything
        latest = await self.store.get_task(task_id)
        return latest if latest is not None else fut.result()

    async def result(self, task_id: str, timeout: float | None = None) -> Any:
        """The task's result once it succeeds; ``TaskFailed`` otherwise."""
        task = await self.wait(task_id, timeout)
        if not task.is_terminal:
            raise asyncio.TimeoutError(f"task {task_id} still {task.status} after {timeout}s")
        if task.status != TaskStatus.SUCCEEDED:
            raise TaskFailed(task.id, task.status, task.error)
        local = self._local_results.get(task_id)
        return local[1] if local and local[0] else task.result

    def outcome(self, task: Task) -> Any:
        """An ended task's value: the real object if it ran here, else its JSON result.

        A failure that happened in this process re-raises its original exception;
        any other unsuccessful end raises ``TaskFailed``.
        """
        local = self._local_results.get(task.id)
        if task.status == TaskStatus.SUCCEEDED:
            return local[1] if local and local[0] else task.result
        if local and not local[0] and isinstance(local[1], Exception) \
                and task.status == TaskStatus.FAILED:
            raise local[1]
        raise TaskFailed(task.id, task.status, task.error)

    def local_result(self, task_id: str) -> tuple[bool, Any] | None:
        """(ok, value or exception) of a task run in this process, if still remembered."""
        return self._local_results.get(task_id)

    # ------------------------------------------------------------------ actions

    async def cancel(self, task_id: str) -> Task:
        """Cancel a queued task, or ask its owner to stop a running one."""
        task = await self.store.request_cancel(task_id)
        running = self._running.get(task_id)
        if running is not None and not task.is_terminal:
            self._stop_local(running, "cancel")
        return task

    async def rerun(self, task_id: str, *, owner: str | None = None,
                    origin: Mapping[str, Any] | None = None) -> Task:
        """Run the same spec again as a new task with ``relationship='rerun'``."""
        return await self._again(await self.get(task_id), {}, "rerun", owner, origin)

    async def fork(self, task_id: str, overrides: Mapping[str, Any], *,
                   owner: str | None = None, origin: Mapping[str, Any] | None = None) -> Task:
        """Run the spec with overrides (params, code, command, parameters, label)."""
        parent = await self.get(task_id)
        allowed = FORK_OVERRIDES.get(parent.kind, set())
        bad = [k for k in overrides if k not in allowed]
        if bad or not isinstance(overrides, Mapping):
            raise InvalidRequest(
                f"a {parent.kind} task can be forked with {sorted(allowed)}, not {bad}",
                errors=[{"field": k, "message": f"not an override for {parent.kind} tasks"}
                        for k in bad],
            )
        return await self._again(parent, dict(overrides), "fork", owner, origin)

    async def _again(self, parent: Task, overrides: dict[str, Any], relationship: str,
                     owner: str | None, origin: Mapping[str, Any] | None) -> Task:
        spec = dict(parent.spec or {})
        if "callable" in spec:
            raise NotRerunnable(
                f"task {parent.id} ran an in-process object ({spec['callable']}); register it "
                "with @task to make it rerunnable"
            )
        label = overrides.pop("label", None) or parent.label
        options = dict(queue=parent.queue, priority=parent.priority, timeout=parent.timeout,
                       max_retries=parent.max_retries, memory_limit_mb=parent.memory_limit_mb,
                       owner=owner or parent.owner, origin=origin or parent.origin,
                       callback_url=parent.callback_url)
        if parent.kind == TaskKind.CELL:
            if "code" in overrides:
                spec["source"] = _check_str(overrides["code"], "code")
            kernel_worker = spec.get("kernel_worker") or parent.worker_id
            if kernel_worker == self.worker_id and TaskKind.CELL.value in self.executors:
                target = None
            else:
                alive = {w.id for w in await self.store.list_workers()}
                if kernel_worker not in alive:
                    raise NotRerunnable(
                        f"the kernel that ran cell task {parent.id} is gone; open its notebook "
                        "and run the cell again"
                    )
                target = kernel_worker
            return await self._create_and_start(
                parent.kind, TaskMode.BACKGROUND.value, spec, name=parent.name, label=label,
                params=None, local=None, options=options, parent=parent,
                relationship=relationship, target_worker=target,
            )
        if "params" in overrides:
            spec["params"] = {**(spec.get("params") or {}), **_check_obj(overrides["params"],
                                                                           "params")}
        if "parameters" in overrides:
            spec["parameters"] = {**(spec.get("parameters") or {}),
                                  **_check_obj(overrides["parameters"], "parameters")}
        for key in ("command", "code", "input_data"):
            if key in overrides:
                spec[key] = overrides[key]
        if parent.kind == TaskKind.FUNCTION and parent.name not in self.registry:
            # this process does not import the task's module (the dashboard or the CLI on
            # the database): queue the new task as a job for a worker that does; that worker
            # binds the params when it runs it, so a bad fork fails there, not with a 422 here
            return await self._create_and_start(
                parent.kind, TaskMode.JOB.value, spec, name=parent.name, label=label,
                params=spec.get("params"), local=None, options=options, parent=parent,
                relationship=relationship,
            )
        mode = parent.mode
        if mode != TaskMode.JOB and (not self.runs_background
                                     or parent.kind not in self.executors):
            mode = TaskMode.JOB.value
        if mode == TaskMode.SYNC:
            mode = TaskMode.BACKGROUND.value  # a rerun never blocks whoever asked for it
        # lineage goes into the row as it is created, so task.created already names the parent
        return await self.submit_spec(spec, mode=mode, label=label, parent=parent,
                                      relationship=relationship, **options)

    async def confirm(self, task_id: str, answer: str) -> Task:
        """Answer a task's pending question."""
        task = await self.store.answer_confirmation(task_id, answer)
        self._deliver_answer(task)
        return task

    async def delete(self, task_id: str) -> Task:
        """Forget a finished task."""
        task = await self.store.delete_task(task_id)
        self._local_results.pop(task_id, None)
        return task

    # --------------------------------------------------------------- event feed

    def subscribe(self, maxsize: int = 10_000) -> Subscription:
        """A live feed of events from now on (every process's, via the store)."""
        sub = Subscription(self, maxsize)
        self._subscribers.add(sub)
        return sub

    # --------------------------------------------------------- thread bridging

    async def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on this manager's loop from whichever loop we are on."""
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is self.loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def run_sync(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on this manager's loop from another thread and wait for it."""
        self._require_running()
        try:
            if asyncio.get_running_loop() is self.loop:
                coro.close()
                raise RuntimeError("run_sync() would deadlock on the manager's own loop; await it")
        except RuntimeError as exc:
            if "deadlock" in str(exc):
                raise
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    # ---------------------------------------------------------------- execution

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _run_task(self, task: Task, *, limited: bool = False) -> None:
        """Run a task this process owns to a final state (or back to the queue)."""
        slot = self._local_queues.get(task.queue) if limited else None
        if limited:
            slot = self._local_queues.setdefault(task.queue,
                                                 _LocalQueue(self.queue_limits[task.queue]))
            await slot.acquire(task.priority)
            started = await self.store.transition(
                task.id, {"status": TaskStatus.RUNNING.value, "started_at": time.time(),
                          "attempts": task.attempts + 1, "worker_id": self.worker_id,
                          "lease_expires_at": time.time() + self.lease_seconds},
                EventType.STARTED, when_status=(TaskStatus.QUEUED.value,),
            )
            if started is None:  # cancelled while waiting for a slot
                slot.release()
                self._local_work.pop(task.id, None)
                return
            task = started
        try:
            while True:
                outcome = await self._attempt(task)
                if outcome is None:
                    return
                # a background retry after its backoff, or the job claimed on the way out
                task = outcome
        finally:
            if slot is not None:
                slot.release()

    async def _attempt(self, task: Task) -> Task | None:
        ctx = TaskContext(task.id, self, self.loop)
        running = _Running(task, ctx)
        running.aio_task = asyncio.current_task()
        running.process.on_group = functools.partial(self._record_group, running)
        if task.kind in _EXIT_RECORDING_KINDS:
            # the command's shim writes its exit into the row: a reaper finishing the
            # task after our death uses it instead of running the command again
            running.process.record_exit = (str(self.store.path), task.id, task.attempts)
        self._running[task.id] = running
        if task.attempts > 1:
            # log lines carry no attempt number: a marker line lets the log view
            # (and a reader of the raw log) see where this attempt's output begins
            await self.store.append_logs(task.id, [(time.time(), "log",
                                                    _attempt_marker(task))])
        if task.cancel_requested:
            running.stop_reason = "cancel"
        if task.timeout:
            running.timer = self.loop.call_later(task.timeout, self._stop_local, running, "timeout")
        token = current_context.set(ctx)
        value: Any = None
        error: BaseException | None = None
        status = TaskStatus.SUCCEEDED
        try:
            if running.stop_reason == "cancel":
                raise TaskCancelled("cancelled before it started")
            if self._stopping:  # a job claimed while stop() began: hand it back untouched
                running.stop_reason = "shutdown"
                raise asyncio.CancelledError
            executor = self.executors.get(task.kind)
            if executor is None:
                raise UnsupportedKind(f"this process ({self.worker_kind}) cannot run "
                                      f"{task.kind} tasks")
            value = await executor(task, ctx, running)
        except asyncio.CancelledError as exc:
            reason = running.stop_reason
            # no reason: something outside cancelled us (the loop is closing)
            status = {"timeout": TaskStatus.TIMEOUT, "cancel": TaskStatus.CANCELLED}.get(
                reason or "", TaskStatus.INTERRUPTED)
            error = exc
        except TaskCancelled as exc:
            status = TaskStatus.TIMEOUT if running.stop_reason == "timeout" else \
                TaskStatus.CANCELLED
            error = exc
        except TaskTimedOut as exc:
            status, error = TaskStatus.TIMEOUT, exc
        except MemoryLimitExceeded as exc:
            status, error = TaskStatus.OOM, exc
        except Exception as exc:
            status, error = TaskStatus.FAILED, exc
            if running.stop_reason in ("cancel", "timeout"):
                status = TaskStatus.CANCELLED if running.stop_reason == "cancel" \
                    else TaskStatus.TIMEOUT
        finally:
            current_context.reset(token)
            if running.timer is not None:
                running.timer.cancel()
            self._running.pop(task.id, None)
        return await self._settle(task, running, status, value, error)

    async def _settle(self, task: Task, running: _Running, status: TaskStatus, value: Any,
                      error: BaseException | None) -> Task | None:
        """Write a finished attempt: final status, a retry, or a return to the queue."""
        ctx = running.ctx
        progress = ctx.current_progress
        logs = ctx.take_logs()
        if logs:
            await self.store.append_logs(task.id, logs)
        usage = self._usage(running)
        now = time.time()
        err_json = _error_json(error, status, task) if status != TaskStatus.SUCCEEDED else None
        if status == TaskStatus.INTERRUPTED and task.mode == TaskMode.JOB \
                and running.stop_reason == "shutdown":
            # a clean shutdown hands the job back without spending an attempt
            await self.store.transition(
                task.id, {"status": TaskStatus.QUEUED.value, "worker_id": None,
                          "lease_expires_at": None, "attempts": max(task.attempts - 1, 0),
                          "progress": progress, "started_at": None},
                EventType.RETRYING, when_status=(TaskStatus.RUNNING.value,),
                when_worker=self.worker_id)
            self._local_work.pop(task.id, None)
            return None
        if status == TaskStatus.FAILED and task.work_attempts <= task.max_retries:
            delay = self._backoff(task.attempts)
            if task.mode == TaskMode.JOB:
                await self.store.retry_later(task.id, self.worker_id, now + delay, err_json or {})
                return None
            retried = await self.store.transition(
                task.id, {"status": TaskStatus.QUEUED.value, "not_before": now + delay,
                          "error": err_json, "progress": progress,
                          "retry_reason": failure_reason(err_json)},
                EventType.RETRYING, when_status=(TaskStatus.RUNNING.value,))
            if retried is None:
                return None
            await asyncio.sleep(delay)
            again = await self.store.transition(
                task.id, {"status": TaskStatus.RUNNING.value, "attempts": task.attempts + 1,
                          "started_at": time.time(), "not_before": None,
                          "lease_expires_at": time.time() + self.lease_seconds},
                EventType.STARTED, when_status=(TaskStatus.QUEUED.value,))
            return again
        changes: dict[str, Any] = {
            "status": status.value, "result": None, "error": err_json, "progress": progress,
            "finished_at": now, "lease_expires_at": None, "resource_usage": usage}
        # a job slot that stays busy takes its next job in the same transaction; not
        # after a cancel, whose CancelledError must not leak into the next job
        keep_busy = task.mode == TaskMode.JOB and not self._stopping \
            and not running.cancel_sent and task.queue in self._wake_queues
        try:
            if status == TaskStatus.SUCCEEDED:
                changes.update(await self._stored_result(task, value))
            finished = await self.store.finish(
                task.id, changes, EventType.for_status(status), worker_id=self.worker_id,
                claim_queue=task.queue if keep_busy else None, lease_seconds=self.lease_seconds,
            )
        except Exception as exc:
            # the end of a task must be written even when its values are refused: write
            # it failed, with nothing but why, rather than leave it running forever
            log.exception("writing the end of task %s failed", task.id)
            status = TaskStatus.FAILED
            error = exc
            finished = await self.store.finish(
                task.id,
                {"status": status.value, "result": None, "progress": None,
                 "finished_at": now, "lease_expires_at": None,
                 "error": {"type": "TaskEndNotStored",
                           "message": f"the task ended {changes['status']} but that could "
                                      f"not be stored: {type(exc).__name__}: {exc}",
                           "traceback": None}},
                EventType.FAILED, worker_id=self.worker_id)
        self._local_work.pop(task.id, None)
        self._remember(task.id, status == TaskStatus.SUCCEEDED,
                       value if status == TaskStatus.SUCCEEDED else error)
        if finished.callback_url:
            self._spawn(self._post_callback(task.id))
        if task.mode == TaskMode.SYNC and error is not None and status == TaskStatus.FAILED:
            raise error
        return finished.next_job

    async def _stored_result(self, task: Task, value: Any) -> dict[str, Any]:
        """The row's result under the storage rule, the whole value as an artifact if cut."""
        encoded = encode_value(value, where="result", limit=MAX_RESULT_CHARS)
        if encoded.full_text is not None:
            await self.store.add_artifact(task.id, RESULT_ARTIFACT, encoded.full_text.encode(),
                                          "application/json")
        return {"result": JSONText(encoded.text), "value_notes": encoded.notes or None}

    def _remember(self, task_id: str, ok: bool, value: Any) -> None:
        self._local_results[task_id] = (ok, value)
        while len(self._local_results) > 1000:
            self._local_results.popitem(last=False)

    def _backoff(self, attempt: int) -> float:
        base = min(self.retry_max_delay, self.retry_base_delay * 2 ** (attempt - 1))
        return base * (0.5 + random.random() / 2)  # "equal jitter": spread, never zero

    def _usage(self, running: _Running) -> dict[str, Any]:
        usage: dict[str, Any] = {"wall_seconds": round(time.time() - running.started, 6)}
        if running.thread.cpu_seconds:
            usage["cpu_seconds"] = round(running.thread.cpu_seconds, 6)
        if running.process.pid is not None:
            usage["cpu_seconds"] = round(running.process.cpu_seconds, 6)
            usage["peak_memory_mb"] = round(running.process.peak_rss_mb, 3)
        return usage

    def _stop_local(self, running: _Running, reason: str) -> None:
        """Stop a task running here: cancel its asyncio task; its runner stops threads/processes."""
        if running.stop_reason is None or reason == "cancel":
            running.stop_reason = reason
        running.ctx._request_cancel()
        if running.answer is not None and not running.answer.done():
            running.answer.cancel()
        # once only: the cancel arrives both directly and through the event feed,
        # and a second CancelledError would cut short the runner's own clean-up
        if running.aio_task is not None and not running.aio_task.done() \
                and not running.cancel_sent:
            running.cancel_sent = True
            running.aio_task.cancel()

    async def _record_group(self, running: _Running, pgid: int,
                            record: dict[str, Any] | None) -> None:
        """Keep the task's row's ``process`` in step with the groups its work has running."""
        if record is None:
            running.groups.pop(pgid, None)
        else:
            running.groups[pgid] = record
        live = list(running.groups.values())
        # the newest group first; more than one only when a task runs several at once
        process = {**live[-1], "others": live[:-1]} if len(live) > 1 else \
            (live[0] if live else None)
        await self.store.set_process(running.task.id, self.worker_id, process)

    async def _exec_function(self, task: Task, ctx: TaskContext, running: _Running) -> Any:
        local = self._local_work.get(task.id)
        if local is not None:
            obj, args, kwargs = local
            if inspect.iscoroutine(obj):
                return await obj
            if inspect.iscoroutinefunction(obj):
                return await obj(*args, **kwargs)
            result = await run_in_thread(obj, args, kwargs, running.thread)
            if inspect.isawaitable(result):
                return await result
            return result
        if task.spec and "callable" in task.spec:
            raise NotRerunnable(f"the in-process object of task {task.id} is gone")
        info = self.registry.get_info(task.name or "")
        kwargs = info.bind(task.params or {}, {TaskContext: ctx})
        if info.is_async:
            return await info.fn(**kwargs)
        return await run_in_thread(info.fn, (), kwargs, running.thread)

    async def _exec_subprocess(self, task: Task, ctx: TaskContext, running: _Running) -> Any:
        spec = task.spec or {}
        completed = await run_process(
            spec["command"], ctx=ctx, cwd=spec.get("cwd"), env=spec.get("env"),
            memory_limit_mb=task.memory_limit_mb, usage=running.process,
            capture_output=False,
        )
        if completed.returncode != 0:
            raise SubprocessFailed(completed.returncode, spec["command"])
        return {"returncode": completed.returncode}

    # -------------------------------------------------------------- confirmation

    async def _ask(self, ctx: TaskContext, prompt: str, choices: list[str],
                   timeout: float | None) -> str:
        if not choices or not all(isinstance(c, str) for c in choices):
            raise InvalidRequest("choices must be a non-empty list of strings")
        running = self._running.get(ctx.task_id)
        if running is None:
            raise ManagerNotRunning(f"task {ctx.task_id} is not running in this process")
        running.answer = self.loop.create_future()
        asked = await self.store.ask_confirmation(
            ctx.task_id, {"prompt": prompt, "choices": choices, "answer": None,
                          "asked_at": time.time()})
        if asked is None:
            raise TaskCancelled(f"task {ctx.task_id} ended while asking")
        try:
            return await asyncio.wait_for(asyncio.shield(running.answer), timeout)
        except asyncio.CancelledError:
            if running.stop_reason is not None:
                raise TaskCancelled(f"task {ctx.task_id} was cancelled while waiting") from None
            raise
        finally:
            running.answer = None

    def _deliver_answer(self, task: Task) -> None:
        running = self._running.get(task.id)
        answer = (task.confirmation or {}).get("answer")
        if running is not None and answer is not None and running.answer is not None \
                and not running.answer.done():
            running.answer.set_result(answer)

    # ---------------------------------------------------------------- job loops

    async def _job_loop(self, queue: str, concurrency: int) -> None:
        """Claim due jobs of ``queue`` whenever a slot is free; run each to its end."""
        wake = self._wake_queues[queue]
        active: set[asyncio.Task[Any]] = set()
        slot_freed = asyncio.Event()

        def done(t: asyncio.Task[Any]) -> None:
            active.discard(t)
            self._job_runs.discard(t)
            slot_freed.set()

        while not self._stopping:
            free = concurrency - len(active)
            claimed: list[Task] = []
            if free > 0:
                wake.clear()
                try:
                    claimed = await self.store.claim_jobs(
                        queue, self.worker_id, self.lease_seconds, min(free, self.claim_batch))
                except Exception:  # the database may be locked for a moment; try again soon
                    log.exception("claiming jobs of queue %s failed", queue)
                for job in claimed:
                    t = asyncio.ensure_future(self._run_task(job))
                    active.add(t)
                    self._job_runs.add(t)
                    t.add_done_callback(done)
                if claimed:
                    continue
                waiters = [wake.wait()]
            else:
                slot_freed.clear()
                waiters = [slot_freed.wait()]
            # the periodic poll catches delayed retries (not_before) and missed wake-ups
            wait_tasks = [asyncio.ensure_future(w) for w in waiters]
            try:
                await asyncio.wait(wait_tasks, timeout=0.5)
            finally:
                for w in wait_tasks:
                    w.cancel()
        if active:
            await asyncio.gather(*active, return_exceptions=True)

    # ------------------------------------------------------------ housekeeping

    async def _flush(self) -> None:
        progress: list[tuple[str, dict[str, Any]]] = []
        logs: list[tuple[str, list[tuple[float, str, str]]]] = []
        for task_id, running in list(self._running.items()):
            ctx = running.ctx
            if ctx.dirty:
                ctx.dirty = False
                value = ctx.current_progress
                if value is not None:
                    progress.append((task_id, value))
            if ctx.has_logs:
                logs.append((task_id, ctx.take_logs()))
        size = self.flush_batch or max(len(progress), len(logs), 1)
        for start in range(0, max(len(progress), len(logs)), size):
            batch = progress[start:start + size], logs[start:start + size]
            try:
                await self.store.save_updates(*batch)
            except StoreError:
                raise  # the database itself is gone or busy: a task alone would fail too
            except Exception:
                # one task's bad write must not cost the others their lines: each alone
                log.exception("writing progress and logs failed; retrying each task alone")
                for task_id in {t for t, _ in batch[0]} | {t for t, _ in batch[1]}:
                    try:
                        await self.store.save_updates(
                            [p for p in batch[0] if p[0] == task_id],
                            [entry for entry in batch[1] if entry[0] == task_id])
                    except Exception:
                        log.exception("writing progress and logs of task %s failed", task_id)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                await self._flush()
            except Exception:
                log.exception("writing progress failed")

    async def _tail_loop(self) -> None:
        """Follow the events table and react to what other processes asked of our tasks."""
        while True:
            try:
                await self.poll_events()
            except Exception:
                log.exception("reading events failed")
            await asyncio.sleep(self.poll_interval)

    async def poll_events(self) -> None:
        """Read and dispatch events newer than the last one seen (cheap when nothing changed)."""
        version = (await self.store.data_version(), self.store_commits())
        if version == self._seen_version:
            return
        self._seen_version = version
        while True:
            events = await self.store.events_after(self.last_event_id, limit=1000)
            for event in events:
                self.last_event_id = event.id
                self._dispatch(event)
            if len(events) < 1000:
                return

    def store_commits(self) -> int:
        """How many transactions this process's own connection committed."""
        return self.store.commits

    def _dispatch(self, event: Event) -> None:
        # a table keyed by the event type's text: an Enum's .value is a Python-level
        # property, and an if-chain of them cost ~2 us for each of every job's events
        handler = self._event_handlers.get(event.type)
        if handler is not None:
            handler(event)
        if event.type in _ENDING_EVENTS:
            for fut in self._waiters.get(event.task_id, []):
                if not fut.done() and event.task is not None:
                    fut.set_result(Task(**_task_fields_from_json(event.task)))
        for sub in list(self._subscribers):
            sub._offer(event)

    def _on_cancel_requested(self, event: Event) -> None:
        running = self._running.get(event.task_id)
        if running is not None:
            self._stop_local(running, "cancel")

    def _on_confirmation(self, event: Event) -> None:
        running = self._running.get(event.task_id)
        if running is None or running.answer is None or running.answer.done() \
                or not event.task:
            return
        answer = (event.task.get("confirmation") or {}).get("answer")
        if answer is not None:
            running.answer.set_result(answer)

    def _on_created(self, event: Event) -> None:
        if event.task_id in self._created_here:
            self._created_here.discard(event.task_id)  # our own submit already woke its queue
            return
        snapshot = event.task
        if not snapshot:
            return
        if snapshot.get("mode") == TaskMode.JOB:
            wake = self._wake_queues.get(snapshot.get("queue"))
            if wake is not None:
                wake.set()
        elif snapshot.get("status") == TaskStatus.QUEUED \
                and snapshot.get("kind") in self.executors:
            self._spawn(self._maybe_run_targeted(event.task_id))

    def _on_retrying(self, event: Event) -> None:
        if event.task:
            wake = self._wake_queues.get(event.task.get("queue"))
            if wake is not None:
                wake.set()

    async def _maybe_run_targeted(self, task_id: str) -> None:
        """Run a background task another process created for this worker (a cell rerun)."""
        task = await self.store.get_task(task_id)
        if task is None or task.worker_id != self.worker_id or task.mode == TaskMode.JOB:
            return
        if task.id in self._running or task.status != TaskStatus.QUEUED:
            return
        started = await self.store.transition(
            task.id, {"status": TaskStatus.RUNNING.value, "started_at": time.time(),
                      "attempts": task.attempts + 1,
                      "lease_expires_at": time.time() + self.lease_seconds},
            EventType.STARTED, when_status=(TaskStatus.QUEUED.value,),
            when_worker=self.worker_id)
        if started is not None:
            await self._run_task(started)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                await self.store.heartbeat(self.worker_id, self.lease_seconds)
            except Exception:
                log.exception("heartbeat failed")

    async def _reaper_loop(self) -> None:
        while True:
            await asyncio.sleep(self.reaper_interval)
            try:
                await self.reap_dead_workers()
            except Exception:
                log.exception("reaping dead workers failed")

    async def reap_dead_workers(self) -> list[Task]:
        """Settle the tasks of workers that died (pid gone here, or heartbeat too old)."""
        now = time.time()
        host = socket.gethostname()
        dead = []
        for worker in await self.store.list_workers():
            if worker.id == self.worker_id:
                continue
            gone_here = worker.host == host and not pid_alive(worker.pid, worker.pid_started_at)
            silent = worker.heartbeat_at < now - self.lease_seconds
            if gone_here or silent:
                dead.append(worker.id)
        cleared = await self._end_leftover_groups(dead, now, host)
        settled = await self.store.reap(dead, now, cleared, self.max_lost_attempts)
        if settled:
            for wake in self._wake_queues.values():
                wake.set()
        for task in settled:
            # ended from the exit its process recorded: told as the lost worker would have
            if task.status in (TaskStatus.SUCCEEDED.value, TaskStatus.FAILED.value) \
                    and task.callback_url:
                self._spawn(self._post_callback(task.id))
        return settled

    async def _end_leftover_groups(self, dead: list[str], now: float,
                                   host: str) -> dict[str, dict[str, Any]]:
        """End the process groups of tasks about to be reaped; id -> record of those now safe.

        A task's group on this host is ended (SIGTERM, SIGKILL) and checked gone
        before its row may go back to ``queued``: until then the row stays
        ``running``, so no slot can claim it beside a survivor. A group on
        another host cannot be ended from here: its task waits for its lease.
        """
        cleared: dict[str, dict[str, Any]] = {}
        for task in await self.store.reap_candidates(dead, now):
            process = task.process
            if not process:
                continue
            if process.get("host") != host:
                if task.lease_expires_at is not None and task.lease_expires_at < now:
                    cleared[task.id] = process
                continue
            if await asyncio.to_thread(end_recorded_groups, process):
                cleared[task.id] = process
            else:
                log.warning("process group %s of task %s survived SIGKILL; the task stays "
                            "running until it is gone", process.get("pgid"), task.id)
        return cleared

    async def _post_callback(self, task_id: str, attempts: int = 4) -> None:
        task = await self.store.require_task(task_id)
        body = json.dumps(task.to_json()).encode()
        await callbacks.post_callback(task.id, task.callback_url, body,
                                      self.callback_allowlist, attempts=attempts)

    def _require_running(self) -> None:
        if not self._started or self._stopping:
            raise ManagerNotRunning(
                "the task manager is not running: use `async with TaskManager() as m:` or "
                "`jupyter_tasks.start_manager()`"
            )


class UnsupportedKind(Exception):
    """A task reached a process that has no executor for its kind."""


class SubprocessFailed(Exception):
    """A subprocess task exited with a non-zero code."""

    def __init__(self, returncode: int, argv: list[str]) -> None:
        super().__init__(f"command {argv[0]!r} exited with code {returncode}")
        self.returncode = returncode


# events after which a task's waiters have their answer: its end, or its deletion
_ENDING_EVENTS = frozenset(
    {EventType.for_status(s).value for s in TaskStatus if s.is_terminal}
    | {EventType.DELETED.value}
)


def _task_fields_from_json(data: dict[str, Any]) -> dict[str, Any]:
    from datetime import datetime

    def ts(value: str | None) -> float | None:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None

    fields = {k: v for k, v in data.items() if k in Task.__dataclass_fields__}
    for key in ("created_at", "started_at", "finished_at", "updated_at"):
        if key in fields:
            fields[key] = ts(fields[key]) or 0.0 if key in ("created_at", "updated_at") \
                else ts(fields[key])
    return fields


def _qualified_name(fn: Any) -> str:
    module = getattr(fn, "__module__", None) or ""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "co_name", None) or repr(fn)
    return f"{module}.{name}".lstrip(".")


def _mark_dedup(task: Task) -> Task:
    object.__setattr__(task, "_deduplicated", True)
    return task


def was_deduplicated(task: Task) -> bool:
    """True when ``submit`` returned an existing task instead of creating one."""
    return getattr(task, "_deduplicated", False)


def _payload_hash(spec: dict[str, Any], mode: str, options: dict[str, Any]) -> str | None:
    if options.get("idempotency_key") is None:
        return None  # only compared between tasks with the same idempotency key
    payload = {"spec": spec, "mode": mode,
               **{k: options.get(k) for k in ("label", "task_key", "queue", "priority",
                                              "timeout", "max_retries", "memory_limit_mb",
                                              "callback_url")}}
    return hashlib.sha256(dumps(payload).encode()).hexdigest()


def _content_hashes(spec: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """sha256 of the spec and of each work field, and the JSON texts that were hashed.

    The texts are what the row stores for those values, so the store reuses them
    instead of encoding the same objects again.
    """
    # a job runs with exactly its inputs: what JSON cannot hold is refused here, before
    # anything is written (values.encode_input names the path of each problem)
    spec_json = encode_input(spec, where="spec")
    hashes = {"spec": hashlib.sha256(spec_json.encode()).hexdigest()}
    texts = {"spec": spec_json}
    for key in ("code", "source", "params", "parameters", "input_data", "command"):
        if key in spec:
            value = spec[key]
            if isinstance(value, str):
                data = value
            else:
                data = texts[key] = encode_input(value, where=key)
            hashes[key] = hashlib.sha256(data.encode()).hexdigest()
    return hashes, texts


def _attempt_marker(task: Task) -> str:
    """``— attempt N of M: <why the last one ended> —`` (the log view draws it as a rule)."""
    reason = task.retry_reason or failure_reason(task.error)
    return f"— attempt {task.attempts} of {task.max_attempts}: {reason} —\n"


def _error_json(error: BaseException | None, status: TaskStatus, task: Task) -> dict[str, Any]:
    if status == TaskStatus.CANCELLED:
        return {"type": "TaskCancelled", "message": "the task was cancelled", "traceback": None}
    if status == TaskStatus.TIMEOUT:
        return {"type": "TaskTimedOut",
                "message": f"the task ran longer than its timeout of {task.timeout}s",
                "traceback": None}
    if status == TaskStatus.INTERRUPTED:
        return {"type": "Interrupted", "message": "the process running the task stopped",
                "traceback": None}
    if error is None:
        return {"type": status.value, "message": status.value, "traceback": None}
    # the user's frames by default; every frame (the engine's too) kept beside them
    return {
        "type": type(error).__name__,
        "message": str(error),
        "traceback": user_traceback(error),
        "traceback_full": full_traceback(error),
    }


def _check_str(value: Any, field_name: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{field_name} must be a non-empty string",
                             errors=[{"field": field_name, "message": "must be a string"}])
    return value


def _check_obj(value: Any, field_name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(f"{field_name} must be an object",
                             errors=[{"field": field_name, "message": "must be an object"}])
    return value


def _check_env(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidRequest("env must map strings to strings",
                             errors=[{"field": "env", "message": "must map strings to strings"}])
    # what exec would refuse later, when the task already counts as accepted
    errors = [{"field": f"env[{k!r}]", "message": problem} for k, v in value.items()
              for problem in (
                  "the name must not be empty" if not k else None,
                  "the name must not contain '='" if "=" in k else None,
                  "must not contain a NUL byte" if "\0" in k or "\0" in v else None)
              if problem]
    if errors:
        raise InvalidRequest("env has names or values a process cannot take: "
                             + "; ".join(f"{e['field']}: {e['message']}" for e in errors),
                             errors=errors)
    return value


def _login_name() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return f"uid-{os.getuid()}"


