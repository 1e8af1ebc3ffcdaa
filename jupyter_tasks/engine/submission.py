"""Submission: validate work, deduplicate, apply idempotency, create rows, start what runs here."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
import socket
import time
from collections.abc import Mapping
from typing import Any

from .. import callbacks
from ..exceptions import (
    InvalidRequest,
    JupyterTasksError,
    KeyedRunStopping,
    ManagerNotRunning,
    NotRerunnable,
)
from ..liveness import live_workers, pid_alive
from ..models import Task, TaskKind, TaskMode, TaskStatus, dumps, new_task_id
from ..values import check_params_size, encode_input
from .execution import Execution
from .kinds import check_obj, check_str
from .options import NO_MEMORY_LIMIT, check_options, memory_limit_errors, shown_label
from .state import EngineState, LocalWork

# The kinds of work a submission can name (each a kind's ``work_field``); exactly one per task.
WORK_FIELDS = ("name", "command", "notebook", "code")
# Fork overrides each kind accepts.
FORK_OVERRIDES = {
    TaskKind.FUNCTION.value: {"params", "label"},
    TaskKind.SUBPROCESS.value: {"command", "label"},
    TaskKind.NOTEBOOK.value: {"parameters", "label"},
    TaskKind.CODE.value: {"code", "input_data", "label"},
    TaskKind.CELL.value: {"code", "label"},
}


class Submission:
    """Turns submissions into rows, and starts those this process runs."""

    def __init__(self, state: EngineState, execution: Execution) -> None:
        self.state = state
        self.execution = execution

    def require_running(self) -> None:
        """``ManagerNotRunning`` unless the manager is between start and stop."""
        if not self.state.started or self.state.stopping:
            raise ManagerNotRunning(
                f"the task manager is not running. {ManagerNotRunning.how_to_start}")

    async def submit(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any], *,
                     mode: str | None, params: Mapping[str, Any] | None, cwd: str | None,
                     env: Mapping[str, str] | None, options: dict[str, Any]) -> Task:
        """``TaskManager.submit``: a coroutine, callable, registered name or argv."""
        label = options.get("label")
        if isinstance(target, str):
            if args:
                raise InvalidRequest("a registered task takes keyword parameters only")
            spec = {"name": target, "params": {**(params or {}), **kwargs}}
            info = self.state.registry.get_info(target)
            return await self.submit_spec(spec, mode=mode or info.mode, **options)
        if isinstance(target, (list, tuple)):
            spec = {"command": list(target), "cwd": cwd, "env": dict(env) if env else None}
            return await self.submit_spec(spec, mode=mode or TaskMode.BACKGROUND.value,
                                          **options)
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
            qualname = qualified_name(fn)
            return await self.create(
                TaskKind.FUNCTION.value, mode, {"callable": qualname}, name=None,
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
        kind = next((k for k in self.state.kinds.values() if k.work_field == work), None)
        if kind is None:
            raise InvalidRequest(f"this process has no job kind for {work!r} work; it is "
                                 "installed by the server extension or jupyter_tasks.kinds",
                                 errors=[{"field": work, "message": "no such job kind here"}])
        valid = kind.validate(spec, self.state.registry)
        check_files = getattr(kind, "check_files", None)
        if check_files is not None:
            # off the loop: a 28 MiB notebook read and parsed here held it 134 ms
            await asyncio.to_thread(check_files, valid.spec)
        clean = valid.spec
        for key in ("root_dir", "kernel_name"):
            if key in spec:
                clean[key] = spec[key]
        if kind.kind == TaskKind.SUBPROCESS and mode != TaskMode.JOB:
            # run here, in this process's folder: named whole, so a rerun once this
            # process is gone (a worker's job) runs there, not in the worker's own
            clean["cwd"] = os.path.abspath(clean.get("cwd") or os.getcwd())
        return await self.create(
            kind.kind, mode, clean, name=valid.name,
            label=options.pop("label", None) or valid.label or "code",
            params=valid.params, local=None, options=options, parent=parent,
            relationship=relationship,
        )

    async def create(
        self, kind: str, mode: str, spec: dict[str, Any], *, name: str | None,
        label: str, params: Any, local: LocalWork | None, options: dict[str, Any],
        parent: Task | None = None, relationship: str | None = None,
        target_worker: str | None = None,
    ) -> Task:
        """Write the task's row (or find its duplicate) and start it if it runs here.

        ``spec`` must already be valid for ``kind``: this is the step after
        validation, for callers (the kernel's cells, a job for a task this
        process does not import) whose work no kind here validates.
        """
        self.require_running()
        state = self.state
        config = state.config
        # the label as given, which submit_spec takes out of the options
        check_options({**options, "label": label})
        limit_errors = memory_limit_errors(kind, options.get("memory_limit_mb"))
        if limit_errors and relationship is None:  # a rerun keeps what its parent had
            raise InvalidRequest(f"memory_limit_mb {NO_MEMORY_LIMIT}", errors=limit_errors)
        label = shown_label(label)  # a command's argv, a 5 MB text from a notebook
        callback_url = options.get("callback_url")
        if callback_url is not None:
            self.check_callback_url(callback_url)
        timeout = options.get("timeout")
        max_retries = options.get("max_retries")
        if max_retries is None:
            # retries are for failures only (a lost worker is retried apart): function
            # jobs keep their two; a notebook, code or command that failed would fail
            # again, repeating its side effects, so they run once unless asked
            max_retries = 2 if mode == TaskMode.JOB and kind == TaskKind.FUNCTION else 0
        if mode != TaskMode.JOB and target_worker is None and kind not in state.kinds:
            raise InvalidRequest(f"this process cannot run {kind} tasks; submit them as jobs")
        now = time.time()
        queue = options.get("queue") or "default"
        local_start = mode != TaskMode.JOB and target_worker is None
        limited = local_start and queue in (config.queue_limits or {})
        direct = local_start and not limited
        hashes, texts = content_hashes(spec)
        # the row's spec and params columns hold the very texts just hashed
        encoded = {"spec": texts["spec"]}
        for key in ("params", "parameters"):
            if params is not None and key in texts and spec.get(key) is params:
                encoded["params"] = texts[key]
                check_params_size(texts[key], where=key)
        task = Task.build(
            id=new_task_id(), kind=kind, mode=mode,
            status=TaskStatus.RUNNING.value if direct else TaskStatus.QUEUED.value,
            name=name, label=label, params=params, spec=spec,
            task_key=options.get("task_key"), idempotency_key=options.get("idempotency_key"),
            # the label too (submit_spec takes it out of the options), and the values
            # stored, not as given: a repeat that spells out a default is the same payload
            payload_hash=payload_hash(spec, mode, {
                **options, "label": label, "queue": queue, "max_retries": int(max_retries),
                "priority": int(options.get("priority") or 0)}),
            queue=queue, priority=int(options.get("priority") or 0),
            owner=options.get("owner") or config.owner,
            origin=dict(options.get("origin") or config.origin or {}),
            attempts=1 if direct else 0, max_retries=int(max_retries),
            timeout=timeout, memory_limit_mb=options.get("memory_limit_mb"),
            parent_id=parent.id if parent else None, relationship=relationship,
            schedule_id=options.get("schedule_id"),
            worker_id=state.worker_id if local_start else target_worker,
            lease_expires_at=now + config.lease_seconds if direct else None,
            callback_url=callback_url, content_hashes=hashes,
            created_at=now, started_at=now if direct else None, updated_at=now,
        )
        # marked before the write: the feed, nudged by the commit, may read the task's
        # event before we resume, and must not take it for another process's (a direct
        # start's event is task.started)
        if task.status == TaskStatus.QUEUED:
            state.created_here.add(task.id)
        try:
            created, deduplicated = await state.store.create_task(task, encoded=encoded)
        except BaseException:
            state.created_here.discard(task.id)
            raise
        if deduplicated:
            state.created_here.discard(task.id)
            if local is not None and inspect.iscoroutine(local[0]):
                local[0].close()  # never started: avoid "coroutine was never awaited"
            replayed = task.idempotency_key is not None \
                and created.idempotency_key == task.idempotency_key
            if created.cancel_requested and not created.is_terminal and not replayed:
                # its task_key's run, stopping: answering with it would run nothing (a
                # cancel, then a rerun); a retry with its own idempotency key is that run
                raise KeyedRunStopping(
                    f"the run of task_key {task.task_key!r}, …{created.id[-10:]}, is being "
                    "cancelled; one run of a key is active at a time: submit again once it "
                    "has ended")
            return mark_deduplicated(created)
        if mode == TaskMode.JOB:
            state.wake(queue)
            return created
        if target_worker is not None:
            return created
        if local is not None:
            state.local_work[created.id] = local
        if mode == TaskMode.SYNC:
            await self.execution.run_task(created, limited=limited)
            return await state.store.require_task(created.id)
        state.spawn(self.execution.run_task(created, limited=limited))
        return created

    def check_callback_url(self, url: str) -> None:
        """Refuse (``InvalidRequest``) an invalid callback URL or one off the allow-list."""
        callbacks.check_url(url, callbacks.CallbackPolicy.from_entries(
            self.state.config.callback_allowlist or []))

    async def record_refused(self, spec: Mapping[str, Any], error: JupyterTasksError,
                             message: str, *, label: str, options: dict[str, Any]) -> Task:
        """A job that could not be submitted (a schedule's firing whose task or notebook is
        gone), kept as a task that failed at once saying why: before, only a process's
        log said it, and every view kept showing the schedule's last run.

        Keyed as the job would have been (its ``idempotency_key``): the processes that
        meet the same refusal for the same firing keep one such task.
        """
        self.require_running()
        work = next((f for f in WORK_FIELDS if spec.get(f) is not None), "name")
        kind = {"name": TaskKind.FUNCTION, "command": TaskKind.SUBPROCESS,
                "notebook": TaskKind.NOTEBOOK, "code": TaskKind.CODE}[work].value
        spec = dict(spec)
        hashes, _ = content_hashes(spec)
        now = time.time()
        task = Task.build(
            id=new_task_id(), kind=kind, mode=TaskMode.JOB.value,
            status=TaskStatus.FAILED.value, name=spec.get("name"), label=shown_label(label),
            params=spec.get("params"), spec=spec,
            error={"type": type(error).__name__, "message": message, "traceback": None},
            idempotency_key=options.get("idempotency_key"),
            payload_hash=payload_hash(spec, TaskMode.JOB.value, {**options, "label": label}),
            queue=options.get("queue") or "default", priority=int(options.get("priority") or 0),
            owner=options.get("owner") or self.state.config.owner,
            origin=dict(options.get("origin") or {}), attempts=0,
            max_retries=int(options.get("max_retries") or 0),
            relationship="scheduled", schedule_id=options.get("schedule_id"),
            content_hashes=hashes, created_at=now, finished_at=now, updated_at=now)
        return (await self.state.store.create_task(task))[0]

    # ---------------------------------------------------------- rerun and fork

    async def fork(self, parent: Task, overrides: Mapping[str, Any], owner: str | None,
                   origin: Mapping[str, Any] | None, idempotency_key: str | None) -> Task:
        """``parent``'s spec with ``overrides`` (those its kind takes) as a new task."""
        allowed = FORK_OVERRIDES.get(parent.kind, set())
        bad = [k for k in overrides if k not in allowed]
        if bad or not isinstance(overrides, Mapping):
            raise InvalidRequest(
                f"a {parent.kind} task can be forked with {sorted(allowed)}, not {bad}",
                errors=[{"field": k, "message": f"not an override for {parent.kind} tasks"}
                        for k in bad],
            )
        return await self.again(parent, dict(overrides), "fork", owner, origin,
                                idempotency_key)

    async def again(self, parent: Task, overrides: dict[str, Any], relationship: str,
                    owner: str | None, origin: Mapping[str, Any] | None,
                    idempotency_key: str | None = None) -> Task:
        """A new task running ``parent``'s spec (with ``overrides``) as its rerun or fork.

        A rerun is the same work, so it keeps the parent's ``task_key`` (a run of it
        already active is returned, as a submit's is); a fork is other work and does not.
        """
        state = self.state
        spec = dict(parent.spec or {})
        if "callable" in spec:
            raise NotRerunnable(
                f"task {parent.id} ran an in-process object ({spec['callable']}); register it "
                "with @task to make it rerunnable"
            )
        label = overrides.pop("label", None) or parent.label
        owner = owner or parent.owner
        options = dict(queue=parent.queue, priority=parent.priority, timeout=parent.timeout,
                       max_retries=parent.max_retries, memory_limit_mb=parent.memory_limit_mb,
                       owner=owner, origin=origin or parent.origin,
                       # the parent's owner's hook is told of their own runs only: another
                       # user's fork (its params, its result) is not theirs to be sent
                       callback_url=parent.callback_url if owner == parent.owner else None,
                       task_key=parent.task_key if relationship == "rerun" else None,
                       idempotency_key=idempotency_key,
                       # one key, one request: a rerun of another task (or a plain submit of
                       # the same spec) with this key is another payload
                       again=f"{relationship} of {parent.id}")
        if parent.kind == TaskKind.CELL:
            # a cell's rerun runs in that cell's kernel: its view belongs under the cell
            # (restorable there), whoever asked for it
            options["origin"] = {**(origin or {}), **(parent.origin or {})}
            if "code" in overrides:
                spec["source"] = check_str(overrides["code"], "code")
            kernel_worker = spec.get("kernel_worker") or parent.worker_id
            if TaskKind.CELL.value in state.kinds and (
                    kernel_worker == state.worker_id
                    or await self._worker_of_this_process(kernel_worker)):
                target = None  # this kernel (its manager may have been restarted since)
            else:
                if kernel_worker not in await self._live_worker_ids():
                    raise NotRerunnable(
                        f"the kernel that ran cell task {parent.id} is gone; open its notebook "
                        "and run the cell again"
                    )
                target = kernel_worker
            return await self.create(
                parent.kind, TaskMode.BACKGROUND.value, spec, name=parent.name, label=label,
                params=None, local=None, options=options, parent=parent,
                relationship=relationship, target_worker=target,
            )
        if "params" in overrides:
            spec["params"] = {**(spec.get("params") or {}), **check_obj(overrides["params"],
                                                                          "params")}
        if "parameters" in overrides:
            spec["parameters"] = {**(spec.get("parameters") or {}),
                                  **check_obj(overrides["parameters"], "parameters")}
        for key in ("command", "code", "input_data"):
            if key in overrides:
                spec[key] = overrides[key]
        if parent.kind == TaskKind.FUNCTION and parent.name not in state.registry:
            # this process does not import the task's module (the dashboard or the CLI on
            # the database): queue the new task as a job for a worker that does; that worker
            # binds the params when it runs it, so a bad fork fails there, not with a 422 here
            return await self.create(
                parent.kind, TaskMode.JOB.value, spec, name=parent.name, label=label,
                params=spec.get("params"), local=None, options=options, parent=parent,
                relationship=relationship,
            )
        mode = parent.mode
        if mode != TaskMode.JOB and (not state.config.runs_background
                                     or parent.kind not in state.kinds):
            owner_worker = await self._live_background_worker(parent)
            if owner_worker is not None:
                # a kernel's background command (its worker takes no jobs, and none may
                # be running): that worker runs it again, as a cell rerun goes to its kernel
                valid = state.kinds[parent.kind].validate(spec, state.registry)
                return await self.create(
                    parent.kind, TaskMode.BACKGROUND.value, valid.spec, name=valid.name,
                    label=label, params=valid.params, local=None, options=options,
                    parent=parent, relationship=relationship, target_worker=owner_worker)
            if parent.kind == TaskKind.SUBPROCESS and not os.path.isabs(spec.get("cwd") or ""):
                # it ran in its process's folder, not recorded (or named from there, as an
                # earlier version kept a relative cwd): a worker's job would run it in the
                # worker's own (`rm -r build` there, not where it ran)
                raise NotRerunnable(
                    f"task {parent.id} ran in the folder of a process that is gone, and the "
                    "folder it ran in was not recorded; run the command again from there")
            mode = TaskMode.JOB.value
        if mode == TaskMode.SYNC:
            mode = TaskMode.BACKGROUND.value  # a rerun never blocks whoever asked for it
        # lineage goes into the row as it is created, so task.created already names the parent
        return await self.submit_spec(spec, mode=mode, label=label, parent=parent,
                                      relationship=relationship, **options)


    async def _live_background_worker(self, parent: Task) -> str | None:
        """The live worker that ran background task ``parent`` (not a function, whose
        module this process may lack), when this process can check the spec; else None."""
        kind = parent.kind
        if kind == TaskKind.FUNCTION or kind not in self.state.kinds or not parent.worker_id \
                or parent.worker_id == self.state.worker_id:
            return None
        return parent.worker_id if parent.worker_id in await self._live_worker_ids() else None

    async def _worker_of_this_process(self, worker_id: str | None) -> bool:
        """Whether ``worker_id`` was a manager of this very process (a kernel's, stopped
        and started again by ``%reload_ext``): same host, same pid, same start time."""
        worker = await self.state.store.get_worker(worker_id) if worker_id else None
        return worker is not None and worker.host == socket.gethostname() \
            and worker.pid == os.getpid() and pid_alive(worker.pid, worker.pid_started_at)

    async def _live_worker_ids(self) -> set[str]:
        """The workers whose process runs: not only those no reaper marked stopped yet
        (a kernel killed with -9 keeps its row until one runs, and work sent to it would
        wait for good)."""
        return {w.id for w in live_workers(await self.state.store.list_workers(),
                                           self.state.config.lease_seconds)}


def qualified_name(fn: Any) -> str:
    """``module.qualname`` of a function or code object."""
    module = getattr(fn, "__module__", None) or ""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "co_name", None) or repr(fn)
    return f"{module}.{name}".lstrip(".")


def mark_deduplicated(task: Task) -> Task:
    """Flag ``task`` as an existing task a submission returned instead of creating one."""
    object.__setattr__(task, "_deduplicated", True)
    return task


def was_deduplicated(task: Task) -> bool:
    """True when ``submit`` returned an existing task instead of creating one."""
    return getattr(task, "_deduplicated", False)


def answer_json(task: Task) -> dict[str, Any]:
    """The API JSON answering a submit, rerun or run now: the task, and ``deduplicated``."""
    return {**task.to_json(), "deduplicated": was_deduplicated(task)}


def payload_hash(spec: dict[str, Any], mode: str, options: dict[str, Any]) -> str | None:
    """What two submissions with one idempotency key must agree on, hashed (else None)."""
    if options.get("idempotency_key") is None:
        return None  # only compared between tasks with the same idempotency key
    payload = {"spec": spec, "mode": mode,
               **{k: options.get(k) for k in ("label", "task_key", "queue", "priority",
                                              "timeout", "max_retries", "memory_limit_mb",
                                              "callback_url")}}
    if options.get("again") is not None:  # absent from a submit's: its hashes stay as stored
        payload["again"] = options["again"]
    return hashlib.sha256(dumps(payload).encode()).hexdigest()


def content_hashes(spec: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
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
                # within the spec just checked: its keys need no second walk
                data = texts[key] = encode_input(value, where=key, keys_checked=True)
            hashes[key] = hashlib.sha256(data.encode()).hexdigest()
    return hashes, texts
