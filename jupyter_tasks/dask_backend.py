"""Run ``job`` tasks on a Dask cluster (``pip install jupyter-tasks[dask]``).

The hub (the server, or any ``TaskManager`` with job queues) keeps the store
and the durable queue: its job workers claim jobs as usual, then hand each one
to Dask instead of running it locally::

    backend = DaskBackend("tcp://scheduler:8786")
    backend.install(manager)        # or JupyterTasksApp.executor = "dask"

* **Fresh keys.** Every attempt is submitted with ``pure=False`` and the key
  ``jupyter-tasks-<task id>-<attempt>-<nonce>``: a rerun, a retry or a job
  handed back by a stopped hub never collapses onto an older run.
* **Reporting.** On the Dask worker, ``run_on_worker`` runs the task with a
  worker-side ``TaskContext``. Progress (coalesced, a few per second) and log
  chunks go to the hub as ``worker.log_event(TOPIC, msg)``; the hub subscribes
  with ``client.subscribe_topic(TOPIC, handler)`` and writes them to the store
  through the task's own context. A run's outcome (status, result, last logs)
  that is small and plain (``OUTCOME_EVENT_MAX_BYTES`` of msgpack, no
  artifacts) comes back as one more event, ahead of the task's completion on
  the same streams, so the hub fetches nothing from the worker for it. Larger
  outcomes, artifacts (as bytes) and results that only pickle travel as the
  Dask task's result (fetched through the scheduler, not kept in its event
  log). The logs are written after the last event, so nothing arrives after
  the task settles.
* **Task code on the worker.** Registered functions are imported on the
  worker from the function's module (by name, else by file path), from
  ``JUPYTER_TASKS_MODULES`` and from the ``jupyter_tasks`` entry points.
  ``subprocess``, ``code`` and ``notebook`` jobs run in their own process
  group (a kernel for notebooks) on the worker, through the same executors as
  locally. Notebooks travel as content: the file need not exist on the worker.
* **Cancel and timeout.** The hub sets the Dask ``Event``
  ``jupyter-tasks-cancel-<task id>-<attempt>-<nonce>`` (one per run key: a
  job handed back by a stopping hub runs again unstopped). The worker polls that event (every
  0.25 s) while the task runs: ``ctx.cancelled`` becomes true,
  subprocess-based work is killed (its asyncio task is cancelled, which kills
  the process group / kernel), and a synchronous function additionally gets
  ``TaskCancelled`` raised in its thread at its next bytecode. The hub waits
  for the run's last report (up to ``stop_timeout``): only then is the task
  written ``cancelled`` / ``timeout`` (it shows running, cancel requested,
  until then), with the run's last logs and artifacts, the partly executed
  notebook included, as a local run keeps them. A run that ended on its own
  before the stop reached its code (it succeeded without reading
  ``ctx.cancelled``) is written ``succeeded`` with its value, cancel requested:
  its work was done. A run that has not started on a worker yet is simply
  dropped (its future cancelled). A hub that shuts down stops its runs the same
  way (waiting ``SHUTDOWN_STOP_SECONDS`` at most, within the manager's grace) and
  hands the job back, unless the run ended on its own meanwhile: that end is
  kept, so the next hub does not run it a second time.
* **Lost workers.** When a Dask worker dies mid-job, Dask runs the task again
  on another worker. A run announces itself with a ``start`` event before its
  first other event, or once it has run ``REPORT_INTERVAL``: a short run says
  nothing until its outcome, which spares the scheduler a message per job. The
  hub counts the runs of the current attempt and adds the extra ones to the
  task's ``attempts`` and ``lost_attempts`` (a lost worker does not use up
  ``max_retries``), with the log's attempt marker; a run lost before it
  announced itself is not counted. A cancel of a run that has not announced
  itself drops it, as it drops a run not started yet. When Dask gives up
  (``KilledWorker``) or the future is lost, the attempt fails and the
  manager's own retry (new attempt, new key) takes over.
* **Lost scheduler.** A future lost with the hub's connection to the scheduler
  is ``DaskSchedulerLost``: its run may still go on unseen on a worker, so the
  attempt ends ``interrupted`` and is not retried; a retry could run beside it.
  A worker that loses its scheduler closes itself at once (distributed does not
  reconnect workers), and whatever its runs return reaches nobody: the watcher
  stops the runs of a closing worker as a cancel does (``ctx.cancelled``, then
  the interrupt; a process group is ended), instead of letting them run through
  distributed's close timeout (30 s). A scheduler that lost only the hub drops
  its runs' keys, which stops them the same way.

Not carried over: ``ctx.confirm`` (no way to wait for a person on a worker),
memory limits of plain functions (only process-based kinds are measured).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import os
import pickle
import queue
import random
import signal
import socket
import tempfile
import threading
import time
import types
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from . import print_capture
from .context import TaskContext, current_context
from .exceptions import DuplicateTaskName, RunOutOfReach, TaskCancelled, WorkNotStarted
from .jobs._util import run_to_end
from .models import Task, TaskKind, TaskMode, TaskStatus
from .runners import (
    KILL_GRACE_SECONDS,
    MemoryLimitExceeded,
    ProcessUsage,
    ThreadRun,
    interrupt_thread,
    programs_waited_on,
    signal_each,
    uncancel,
)
from .tracebacks import error_message, user_traceback
from .values import MAX_RESULT_CHARS, encode, nested_within, plain

_log = logging.getLogger("jupyter_tasks.dask")

TOPIC = "jupyter-tasks"
CANCEL_PREFIX = "jupyter-tasks-cancel-"
KEY_PREFIX = "jupyter-tasks-"
REPORT_INTERVAL = 0.2
UNREACHABLE_RETRY_SECONDS = 10.0  # a job whose scheduler did not answer, tried again
# how long a hub's shutdown waits for a run's last report: within the manager's own grace
# (5 s by default, the server's), else its hand-back would come after the store closed
SHUTDOWN_STOP_SECONDS = 3.0
OWN_KEYS_KEPT = 10_000  # run keys remembered for late log lines (a run's end is seconds)
# how long a cancel waits for the scheduler to say whether the run is on a worker
PROCESSING_ASK_SECONDS = 2.0
CANCEL_POLL = 0.25
COOPERATIVE_GRACE = 1.0
INTERRUPT_EVERY = 0.05  # after the grace, how often a sync function is interrupted again
ASKING_THREADS = 4  # cancel checks of one worker process under way at once
STOP_TIMEOUT = 60.0  # how long a cancel or timeout waits for the worker to confirm the stop
MAX_EVENT_LOG_CHARS = 256 * 1024
# an outcome up to this size (msgpack) comes back as an event: the scheduler keeps a
# topic's last events (distributed.admin.log-length, 10,000), so only small ones go there.
# It saves the hub a gather (a round trip to the scheduler, and from it to the worker)
# per job: 1,000 short jobs (benchmarks/bench_jobs_dask.py, 3 alternated runs) took
# 1.30x plain client.submit before, 1.03x after, with the scheduler in a process of its own
OUTCOME_EVENT_MAX_BYTES = 2048
DEFAULT_KINDS = (TaskKind.FUNCTION.value, TaskKind.SUBPROCESS.value,
                 TaskKind.NOTEBOOK.value, TaskKind.CODE.value)


class RemoteTaskError(Exception):
    """A task raised on a Dask worker (the subclass carries the original type name)."""


class DaskJobLost(Exception):
    """Dask could not finish the job (worker deaths beyond its limit, lost future)."""


class DaskSchedulerLost(RunOutOfReach, DaskJobLost):
    """The hub lost its Dask scheduler while a run was on it: the run may go on unseen."""


class DaskWorkersLost(RunOutOfReach, DaskJobLost):
    """Dask gave up on a run whose workers kept dying under it (``KilledWorker``).

    Ended ``interrupted`` and not run again, as a local job whose worker was lost time
    after time: a run that kills its worker (its memory, a crash) is not the work
    failing, and a retry would only spend Dask's allowance of deaths once more.
    """


_remote_types: dict[str, type[RemoteTaskError]] = {}


def cancel_event_name(key: str) -> str:
    """The Dask ``Event`` that stops the run submitted under ``key``."""
    return CANCEL_PREFIX + key.removeprefix(KEY_PREFIX)


def remote_error(error: dict[str, Any], worker: str | None) -> RemoteTaskError:
    """An exception whose type name, message and traceback are the worker's."""
    name = str(error.get("type") or "RemoteTaskError")
    if not name.isidentifier():
        name = "RemoteTaskError"
    cls = _remote_types.get(name)
    if cls is None:
        cls = _remote_types[name] = types.new_class(
            name, (RemoteTaskError,), exec_body=lambda ns: ns.update(__module__="remote"))
    exc = cls(error.get("message") or name)
    if error.get("traceback"):
        exc.add_note(f"Raised on Dask worker {worker}:\n{error['traceback']}")
    return exc


# ======================================================================= hub


def scheduler_lost(exc: BaseException) -> bool:
    """Whether a future was cancelled because the client lost its scheduler."""
    # not a cancel anyone asked for: the scheduler died or could not be reached
    return getattr(exc, "reason", None) == "scheduler-connection-lost"


def lost_future_message(key: str, exc: BaseException, scheduler: str | None = None,
                        worker: str | None = None) -> str:
    """Why a job's Dask future was cancelled, from distributed's reason, in its error."""
    if scheduler_lost(exc):
        named = f" {scheduler}" if scheduler else ""
        where = f"ran on worker {worker}" if worker else "was there (running, or waiting to)"
        # nothing can ask the worker any more, and it learns of the loss on its own: a
        # worker that loses its scheduler closes itself at once and its watcher stops
        # the runs of a closing worker (as a cancel does; a function deaf to the interrupt
        # goes on until the worker's process exits, after distributed's close timeout,
        # 30 s); a scheduler that lost only the hub drops its runs, which stops them
        # the same way. Until then a retry could overlap the run
        return (f"the connection to the Dask scheduler{named} was lost while future {key} "
                f"{where}; the run may still be going on, so it was not started again: "
                "its worker stops it once it has lost the scheduler too (the worker then "
                "closes itself) or the scheduler has dropped the run; rerun the task then")
    reason = getattr(exc, "reason", None)
    return f"the Dask future {key} was cancelled outside jupyter-tasks ({reason or 'unknown'})"


@dataclass
class _RemoteRun:
    key: str
    task: Task
    ctx: TaskContext
    running: Any = None  # the hub's record of the attempt (its process groups)
    runs: set[str] = field(default_factory=set)
    workers: list[str] = field(default_factory=list)
    outcome: asyncio.Future[dict[str, Any]] | None = None  # set by its 'outcome' event


class DaskBackend:
    """Sends a manager's ``job`` tasks to a Dask scheduler and brings their reports back."""

    def __init__(self, address: str | None = None, *, client: Any = None,
                 kinds: Iterable[str] = DEFAULT_KINDS, topic: str = TOPIC,
                 modules: Iterable[str] = (), stop_timeout: float = STOP_TIMEOUT) -> None:
        if address is None and client is None:
            raise ValueError("give a Dask scheduler address (or an asynchronous client)")
        self.address = address
        self.kinds = tuple(kinds)
        self.topic = topic
        self.modules = list(modules)
        self.stop_timeout = stop_timeout
        self.manager: Any = None
        self._client = client
        self._owns_client = client is None
        self._client_lock: asyncio.Lock | None = None
        self._runs: dict[str, _RemoteRun] = {}
        # the run keys this hub submitted, newest last (bounded): another hub on the same
        # cluster shares the topic, and its runs' late lines are not this hub's to store
        self._own_keys: OrderedDict[str, str] = OrderedDict()
        self._subscribed = False
        self._unreachable_said = False  # the scheduler's silence logged, until it answers
        self._subscribed_comm: Any = None  # the scheduler connection the topic was asked on
        self._late: set[asyncio.Task[Any]] = set()
        self.submitted = 0

    # ---------------------------------------------------------------- set-up

    def install(self, manager: Any) -> DaskBackend:
        """Route the manager's ``job`` tasks of ``kinds`` to Dask; other modes stay local."""
        self.manager = manager
        manager.dask_backend = self
        for kind in self.kinds:
            manager.install_kind(DaskRoutedKind(self, kind, manager.kinds.get(kind)))
        return self

    async def client(self) -> Any:
        """The asynchronous Dask client on the manager's loop (connected on first use)."""
        if self._client_lock is None:
            self._client_lock = asyncio.Lock()
        async with self._client_lock:
            if self._client is not None and self.address is not None \
                    and self._client.status in ("closing", "closed"):
                # a scheduler away longer than the client's reconnect window: the client
                # closed itself for good; a new one reaches the scheduler once it is back
                # (a client the caller gave, with no address, stays the caller's)
                with contextlib.suppress(Exception):
                    self._client.unsubscribe_topic(self.topic)
                self._client = None
                self._subscribed = False
                self._owns_client = True
            if self._client is None:
                from distributed import Client

                self._client = await Client(self.address, asynchronous=True,
                                            name="jupyter-tasks-hub")
            # a client that reconnected (the scheduler restarted) talks to a scheduler
            # that never heard of the subscription: every outcome sent as an event was
            # lost, each job then ran again and failed, until the server restarted
            comm = self._client.scheduler_comm
            if not self._subscribed or comm is not self._subscribed_comm:
                self._client.subscribe_topic(self.topic, self._on_event)
                self._subscribed = True
                self._subscribed_comm = comm
        return self._client

    async def _reachable_client(self) -> Any:
        """``client()``; ``WorkNotStarted`` (the job waits in its queue) when the scheduler
        does not answer: said once in the log while it lasts, not a failure per job."""
        try:
            client = await self.client()
            if client.status == "connecting":
                # it lost its scheduler and tries to reconnect: a job given to it now
                # waits there unseen and, once it gives up, is cancelled as if by someone
                raise OSError("the connection was lost; reconnecting")
        except (OSError, asyncio.TimeoutError) as exc:
            message = f"cannot reach the Dask scheduler {self.address}: {exc}"
            if not self._unreachable_said:
                self._unreachable_said = True
                _log.error("%s; jobs for it wait in their queue, tried again every %g s",
                           message, UNREACHABLE_RETRY_SECONDS)
            raise WorkNotStarted(message, retry_in=UNREACHABLE_RETRY_SECONDS) from None
        if self._unreachable_said:
            self._unreachable_said = False
            _log.warning("the Dask scheduler %s answers again", self.address)
        return client

    async def close(self) -> None:
        """Stop listening; close the client if this backend opened it."""
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            client.unsubscribe_topic(self.topic)
        self._subscribed = False
        if self._owns_client:
            with contextlib.suppress(Exception):
                await client.close()
        if self._late:
            await asyncio.gather(*self._late, return_exceptions=True)

    # ------------------------------------------------------------- execution

    def _payload(self, task: Task, key: str, output_path: str | None) -> dict[str, Any]:
        modules = list(self.modules)
        function_module = None
        notebook_json = None
        if task.kind == TaskKind.FUNCTION.value and task.name:
            import inspect

            info = self.manager.registry.get_info(task.name)
            module = getattr(info.fn, "__module__", None) or ""
            with contextlib.suppress(TypeError, OSError):
                path = inspect.getfile(info.fn)
                function_module = path if module == "__main__" else f"{module}|{path}"
        if task.kind == TaskKind.NOTEBOOK.value:
            from .jobs.notebook import validate_notebook_spec

            with open(validate_notebook_spec(task.spec or {}), encoding="utf-8") as f:
                notebook_json = f.read()
        if output_path is not None:  # where the hub writes the copy, as the notebook says it
            root = os.path.realpath((task.spec or {}).get("root_dir") or os.getcwd())
            output_path = os.path.relpath(output_path, root)
        return {"task": task, "key": key, "topic": self.topic, "modules": modules,
                "function_module": function_module, "notebook_json": notebook_json,
                "output_path": output_path, "cancel_event": cancel_event_name(key),
                "hub": _this_process()}

    async def execute(self, task: Task, ctx: TaskContext, running: Any) -> Any:
        """Run one attempt of ``task`` on Dask; raises like a local executor would."""
        from distributed.client import FutureCancelledError

        client = await self._reachable_client()
        # a PRNG, as for task ids: os.urandom is a system call, and each call that lets
        # go of the GIL waits to get it back from a busy scheduler thread
        key = f"{KEY_PREFIX}{task.id}-{task.attempts}-{_ids.getrandbits(24):06x}"
        from .jobs.notebook import output_path_now

        # the notebook's output_path is in the server root, here: named once, for the copy
        # the hub writes and for the path the worker's notebook and result record
        output_path = output_path_now(task)
        payload = self._payload(task, key, output_path)
        run = _RemoteRun(key, task, ctx, running,
                         outcome=asyncio.get_running_loop().create_future())
        self._runs[task.id] = run
        self._own_keys[key] = task.id
        if len(self._own_keys) > OWN_KEYS_KEPT:
            self._own_keys.popitem(last=False)
        future = client.submit(run_on_worker, payload, key=key, pure=False, retries=0)
        self.submitted += 1
        try:
            outcome = await self._outcome(run, future)
        except FutureCancelledError as exc:
            if scheduler_lost(exc):
                raise DaskSchedulerLost(lost_future_message(
                    key, exc, self.address or client.scheduler.address,
                    run.workers[-1] if run.workers else None)) from None
            raise DaskJobLost(lost_future_message(key, exc)) from None
        except asyncio.CancelledError:
            # a run that already ended (its outcome came, or its future is done) is not
            # dropped as one not started yet: what it returned is taken below. A hub's
            # shutdown asks too: a run that ends on its own meanwhile (a dropped run goes
            # on for a moment on its worker) keeps that end, as a local one does, and is
            # not handed back to run a second time
            if getattr(running, "stop_reason", None) in ("cancel", "timeout", "shutdown") \
                    and (_ended(run, future) or self._started_remotely(task.id)
                         or await run_to_end(self._processing(client, key))
                         or _ended(run, future)):
                # the task stays running (cancel requested) until the worker confirms
                # the run is over, and keeps what it left, as a local run does
                wait = self.stop_timeout if running.stop_reason != "shutdown" \
                    else min(SHUTDOWN_STOP_SECONDS, self.stop_timeout)
                outcome = await run_to_end(self._stop_remote(run, future, wait))
                if outcome is None or not finished_before_stop(outcome):
                    if outcome is not None:
                        await run_to_end(self._take_reports(outcome, task, ctx, running,
                                                            output_path))
                    raise
                # the function returned its value before the cancel (or timeout) could
                # stop it: its work is done and its side effects exist, so the task
                # ends succeeded with that value (cancel_requested still says a cancel
                # was asked for), as a local function that returned first does. The
                # cancel was delivered, here, once (stop_local sends it once): taken
                # back, so that nothing later in this attempt sees it as pending
                uncancel()
            else:
                # a run not started on a worker yet (or stopped for no reason): drop it
                await run_to_end(self._cancel_remote(key, future))
                raise
        except Exception as exc:
            if type(exc).__name__ == "KilledWorker":  # distributed.scheduler's
                # Dask ran it allowed_failures + 1 times; a run killed before its first
                # report sent no start event, so the count comes from Dask
                allowed = getattr(exc, "allowed_failures", None)
                starts = max(len(run.runs), allowed + 1 if isinstance(allowed, int) else 1)
                await run_to_end(self._count_lost_runs(run, starts))
                raise DaskWorkersLost(
                    f"the Dask workers running {key} died {starts} time"
                    f"{'' if starts == 1 else 's'} (on {', '.join(run.workers) or '?'}); "
                    f"Dask gave up on it ({exc}), and it is not retried again") from exc
            raise DaskJobLost(f"Dask could not run {key}: {type(exc).__name__}: {exc}") \
                from exc
        finally:
            self._runs.pop(task.id, None)
            with contextlib.suppress(Exception):
                future.release()
        return await self._apply(outcome, task, ctx, running, output_path)

    async def _outcome(self, run: _RemoteRun, future: Any) -> dict[str, Any]:
        """The run's outcome: from its event if it came that way, else the future's result."""
        assert run.outcome is not None
        # the end of the task (``exception()`` waits for it and fetches nothing), not
        # ``await future``: that fetches the result (a round trip through the scheduler to
        # the worker) as soon as the task ends, though the outcome came ahead of the end
        settled = asyncio.ensure_future(future.exception())
        try:
            await asyncio.wait((run.outcome, settled), return_when=asyncio.FIRST_COMPLETED)
        finally:
            settled.cancel()
        if run.outcome.done():
            return run.outcome.result()
        outcome = await future
        if isinstance(outcome, dict) and "outcome_sent" in outcome:
            # sent as an event that never came (the hub's subscription was lost meanwhile)
            raise DaskJobLost(f"the outcome of the Dask run {run.key} was lost on its way")
        return outcome

    async def _processing(self, client: Any, key: str) -> bool:
        """Whether the run executes on a worker now (started, not announced yet), or has
        already ended there.

        A run tells the hub nothing in its first REPORT_INTERVAL (a message per short job
        spared); a cancel then was written at once while the run went on for a second,
        until its watcher polled the cancel event, overlapping a rerun. Asked only then.
        """
        try:
            processing = await asyncio.wait_for(client.processing(), PROCESSING_ASK_SECONDS)
            # "processing" includes a run a worker holds behind another: ask that worker
            workers = [w for w, keys in processing.items() if key in keys]
            if workers:
                answers = await asyncio.wait_for(
                    client.run(_executing, key, workers=workers), PROCESSING_ASK_SECONDS)
                if any(answers.values()):
                    return True
            # not executing: not started yet, or ended a moment ago (a run that returns a
            # few ms after the cancel) with its outcome still on its way here, which a
            # drop would throw away: an ended run's key is held by a worker
            held = await asyncio.wait_for(client.scheduler.who_has(keys=[key]),
                                          PROCESSING_ASK_SECONDS)
        except Exception:  # nobody can say: drop the run, as before
            return False
        return bool(held.get(key))

    def _started_remotely(self, task_id: str) -> bool:
        run = self._runs.get(task_id)
        return run is not None and bool(run.runs)

    async def _stop_remote(self, run: _RemoteRun, future: Any,
                           wait: float) -> dict[str, Any] | None:
        """Ask the worker to stop the run and wait for its last report, ``wait`` seconds at
        most (None if it never came: the run is dropped)."""
        from distributed import Event

        key, ctx = run.key, run.ctx
        client = self._client
        if client is None:
            return None
        if not _ended(run, future):  # a run already over has nothing left to stop
            with contextlib.suppress(Exception):
                await Event(cancel_event_name(key), client=client).set()
        try:
            return await asyncio.wait_for(self._outcome(run, future), wait)
        except asyncio.TimeoutError:
            ctx.log(f"[jupyter-tasks] the Dask worker did not confirm the stop within "
                    f"{wait:g} s; its run was dropped", "log")
        except Exception as exc:  # the worker died meanwhile: nothing more will come
            ctx.log(f"[jupyter-tasks] the Dask run ended without its last report: "
                    f"{type(exc).__name__}: {exc}", "log")
        await self._cancel_remote(key, future)
        return None

    async def _cancel_remote(self, key: str, future: Any) -> None:
        from distributed import Event

        client = self._client
        if client is None:
            return
        with contextlib.suppress(Exception):
            await Event(cancel_event_name(key), client=client).set()
        with contextlib.suppress(Exception):
            await client.cancel([future])

    async def _apply(self, outcome: dict[str, Any], task: Task, ctx: TaskContext,
                     running: Any, output_path: str | None) -> Any:
        await self._take_reports(outcome, task, ctx, running, output_path)
        usage = outcome.get("usage") or {}
        status = outcome.get("status")
        worker = outcome.get("worker")
        if status == TaskStatus.SUCCEEDED.value:
            return outcome.get("result")
        error = outcome.get("error") or {}
        if status == TaskStatus.OOM.value:
            raise MemoryLimitExceeded(usage.get("peak_rss_mb", 0.0),
                                      task.memory_limit_mb or 0)
        if status == TaskStatus.CANCELLED.value:
            raise TaskCancelled(error.get("message") or "cancelled on the Dask worker")
        raise remote_error(error, worker)

    async def _take_reports(self, outcome: dict[str, Any], task: Task, ctx: TaskContext,
                            running: Any, output_path: str | None) -> None:
        """The run's last logs, progress, artifacts and usage into the task, whatever its end."""
        for _ts, stream, text in outcome.get("logs") or []:
            ctx.write(text, stream)
        if outcome.get("progress"):
            p = outcome["progress"]
            ctx.progress(p["current"], p.get("total"), p.get("message"))
        artifacts = outcome.get("artifacts") or []
        for name, data, content_type in artifacts:
            await ctx.artifact(name, data, content_type)
        # a notebook's output_path is in the server root, which is here, not on the worker
        from .jobs.notebook import write_output_copies

        await write_output_copies(task, artifacts, ctx, output_path)
        usage = outcome.get("usage") or {}
        if usage.get("pid") is not None:
            running.process.pid = usage["pid"]
            running.process.cpu_seconds = usage.get("cpu_seconds", 0.0)
            running.process.peak_rss_mb = usage.get("peak_rss_mb", 0.0)
        elif usage.get("cpu_seconds"):
            running.thread.cpu_seconds = usage["cpu_seconds"]

    # ---------------------------------------------------------------- events

    def _on_event(self, event: Any) -> None:
        """Reports from workers (runs on the client's loop, the manager's loop)."""
        try:
            _ts, msg = event
            task_id = msg.get("task")
            run = self._runs.get(task_id)
            if run is None or msg.get("key") != run.key:
                if self._own_keys.get(msg.get("key")) == task_id:  # a run of this hub's
                    self._store_late_logs(task_id, msg.get("logs"))
                return
            if msg.get("type") == "outcome":
                outcome = msg.get("outcome")
                if isinstance(outcome, dict) and run.outcome is not None \
                        and not run.outcome.done():
                    run.outcome.set_result(outcome)
                return
            if msg.get("type") == "start":
                self._started(run, msg)
            if msg.get("type") == "process" and run.running is not None \
                    and hasattr(self.manager, "record_group"):
                # the worker's process group goes into the task's row like a local one:
                # a reaper on that host ends it, elsewhere the retry waits for the lease
                self._spawn(self.manager.record_group(run.running, int(msg["pgid"]),
                                                       msg.get("process")))
            for _when, stream, text in msg.get("logs") or []:
                run.ctx.write(text, stream)
            progress = msg.get("progress")
            if progress:
                run.ctx.progress(progress["current"], progress.get("total"),
                                 progress.get("message"))
        except Exception:  # a malformed event must never break the client's loop
            _log.exception("bad Dask event %r", event)

    def _started(self, run: _RemoteRun, msg: dict[str, Any]) -> None:
        run.runs.add(msg.get("run", ""))
        run.workers.append(msg.get("worker", "?"))
        extra = len(run.runs) - 1
        if extra <= 0:
            return
        attempts = run.task.attempts + extra
        # a lost worker is not a failure of the work: counted apart, as the manager counts it
        lost = run.task.lost_attempts + extra
        of = run.task.max_retries + 1 + lost
        run.ctx.log(f"— attempt {attempts} of {of}: worker lost —\n"
                    f"[jupyter-tasks] Dask worker {run.workers[-2]} was lost; the job restarted "
                    f"on {run.workers[-1]}", "log")
        manager = self.manager
        self._spawn(manager.store.transition(
            run.task.id, {"attempts": attempts, "lost_attempts": lost,
                          "retry_reason": "worker lost"}, None,
            when_status=(TaskStatus.RUNNING.value,), when_worker=manager.worker_id))

    async def _count_lost_runs(self, run: _RemoteRun, starts: int) -> None:
        """The row's attempts and lost attempts once Dask ran the job ``starts`` times,
        each lost with its worker (as ``_started`` counts the ones it heard of)."""
        extra = starts - 1
        if extra <= len(run.runs) - 1:
            return  # each start was heard and counted
        await self.manager.store.transition(
            run.task.id, {"attempts": run.task.attempts + extra,
                          "lost_attempts": run.task.lost_attempts + extra,
                          "retry_reason": "worker lost"}, None,
            when_status=(TaskStatus.RUNNING.value,), when_worker=self.manager.worker_id)

    def _store_late_logs(self, task_id: str | None, logs: Any) -> None:
        if task_id and logs and self.manager is not None and self.manager.running:
            entries = [(float(ts), str(stream), str(text)) for ts, stream, text in logs]
            self._spawn(self.manager.store.append_logs(task_id, entries))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._late.add(task)
        task.add_done_callback(self._late.discard)


class DaskRoutedKind:
    """A job kind whose ``job`` tasks run on Dask; other modes run locally as before."""

    def __init__(self, backend: DaskBackend, kind: str, local: Any) -> None:
        self.backend = backend
        self.kind = kind
        self.local = local  # the kind installed before (None: Dask only)
        self.work_field = getattr(local, "work_field", None)

    def validate(self, spec: Any, registry: Any) -> Any:
        """The local kind's validation (a Dask job is checked where it is submitted)."""
        if self.local is None:
            raise RuntimeError(f"no local kind validates {self.kind} tasks")
        return self.local.validate(spec, registry)

    async def execute(self, task: Task, ctx: TaskContext, run: Any) -> Any:
        """A job on Dask, anything else locally."""
        if task.mode == TaskMode.JOB.value:
            return await self.backend.execute(task, ctx, run)
        if self.local is None:
            raise RuntimeError(f"no local executor for {task.kind} tasks")
        return await self.local.execute(task, ctx, run)


def install_dask_backend(manager: Any, address: str | None = None, **kwargs: Any) -> DaskBackend:
    """``DaskBackend(address, **kwargs).install(manager)``."""
    return DaskBackend(address, **kwargs).install(manager)


# ==================================================================== worker


class WorkerContext(TaskContext):
    """The ``TaskContext`` of a task running on a Dask worker: artifacts are kept for the hub."""

    __slots__ = ("artifacts",)

    def __init__(self, task_id: str) -> None:
        super().__init__(task_id, None, None)
        self.artifacts: list[tuple[str, bytes, str | None]] = []

    async def artifact(self, name: str, data: Any, content_type: str | None = None
                       ) -> dict[str, Any]:
        return self.artifact_sync(name, data, content_type)

    def artifact_sync(self, name: str, data: Any, content_type: str | None = None
                      ) -> dict[str, Any]:
        from .store.store import artifact_content
        from .store.task_sql import check_artifact

        check_artifact(name, content_type)
        content = artifact_content(data)
        data = content if isinstance(content, bytes) else content.read_bytes()
        self.artifacts = [a for a in self.artifacts if a[0] != name]
        self.artifacts.append((name, data, content_type))
        return {"name": name, "size": len(data)}

    async def confirm(self, prompt: str, choices: Any = ("yes", "no"),
                      timeout: float | None = None) -> str:
        raise NotImplementedError("confirm() is not available in jobs running on Dask")

    def confirm_sync(self, prompt: str, choices: Any = ("yes", "no"),
                     timeout: float | None = None) -> str:
        raise NotImplementedError("confirm() is not available in jobs running on Dask")


class _Reporter:
    """Sends a running task's progress and logs to the hub a few times per second."""

    def __init__(self, worker: Any, topic: str, task_id: str, key: str,
                 ctx: WorkerContext, start: dict[str, Any]) -> None:
        self.worker = worker
        self.topic = topic
        self.base = {"task": task_id, "key": key}
        self.ctx = ctx
        self._start: dict[str, Any] | None = start
        self._lock = threading.Lock()

    def announce(self) -> None:
        """Send the run's ``start`` event, once, before anything else it sends."""
        with self._lock:
            start, self._start = self._start, None
            if start is not None:
                self.worker.log_event(self.topic, {**self.base, "type": "start", **start})

    def send(self, **fields: Any) -> None:
        self.announce()
        self.worker.log_event(self.topic, {**self.base, **fields})

    def flush(self) -> None:
        ctx = self.ctx
        progress = None
        if ctx.dirty:
            ctx.dirty = False
            progress = ctx.current_progress
        logs = ctx.take_logs() if ctx.has_logs else []
        if progress is None and not logs:
            return
        batch: list[list[Any]] = []
        size = 0
        for ts, stream, text in logs:
            batch.append([ts, stream, text])
            size += len(text)
            if size >= MAX_EVENT_LOG_CHARS:
                self.send(type="report", logs=batch)
                batch, size = [], 0
        self.send(type="report", logs=batch, progress=progress)


_loaded_modules: set[str] = set()
_modules_lock = threading.Lock()


def _load_modules(modules: Iterable[str]) -> None:
    """Import the task modules a job needs, once per worker process."""
    from .registry import import_module_or_path, load_task_modules

    with _modules_lock:
        if "" not in _loaded_modules:
            load_task_modules(())  # JUPYTER_TASKS_MODULES and entry points
            _loaded_modules.add("")
        for item in modules:
            if item in _loaded_modules:
                continue
            # "module" or "path.py", or "module|path.py": the name first, the file if that fails
            name, _, path = item.partition("|")
            try:
                import_module_or_path(name)
            except ImportError:
                if not path:
                    raise
                import_module_or_path(path)
            except DuplicateTaskName:
                pass  # the same file was already imported under another module name
            _loaded_modules.add(item)


class _WorkerRun:
    """One run of a task on a Dask worker and the means to stop it."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.lock = threading.Lock()
        self.finished = threading.Event()
        self.thread_id: int | None = None  # set while a sync function runs
        self.loop: asyncio.AbstractEventLoop | None = None
        self.main: asyncio.Task[Any] | None = None
        self.cancelled = False
        self.interrupted = False  # TaskCancelled was raised into its thread
        self.programs_stopped_at = 0.0  # when its first interrupt signalled them

    def cancel(self) -> None:
        self.cancelled = True
        self.ctx.request_cancel()
        with self.lock:
            if self.loop is not None and self.main is not None:
                self.loop.call_soon_threadsafe(self.main.cancel)

    def interrupt(self) -> None:
        with self.lock:
            if self.thread_id is None or self.finished.is_set():
                return
            first = not self.interrupted
            self.interrupted = True
            interrupt_thread(self.thread_id, TaskCancelled)
            thread_id = self.thread_id
        now = time.monotonic()
        if first:
            self.programs_stopped_at = now
        elif now - self.programs_stopped_at < KILL_GRACE_SECONDS:
            return
        # a program the function waits on (subprocess.run) is its work, and the wait
        # returns only when it ends: SIGTERM at the first interrupt, SIGKILL after the grace
        signal_each(programs_waited_on(thread_id), signal.SIGTERM if first else signal.SIGKILL)


def _key_dropped(worker: Any, key: str | None) -> bool:
    """True once the scheduler no longer wants ``key`` from this worker (its client is gone)."""
    if key is None:
        return False
    try:
        state = worker.state.tasks.get(key)
    except Exception:
        return False
    return state is None or state.state in ("cancelled", "released", "forgotten")


# a worker in these has cancelled its runs' Dask tasks: nothing they return is delivered.
# A worker does not reconnect (distributed removed that in 2022, dask/distributed#6361):
# a lost scheduler connection closes it at once (Worker.handle_scheduler)
_CLOSING = ("closing", "closed", "failed")


def _worker_status(worker: Any) -> str:
    status = getattr(worker, "status", None)
    return str(getattr(status, "name", status))


def _worker_closing(worker: Any) -> bool:
    """True once the Dask worker is closing (a lost scheduler closes it at once)."""
    return _worker_status(worker) in _CLOSING


@dataclass(eq=False)
class _Watched:
    """What the watcher keeps of one run: its reporter, its cancel event and its clocks."""

    run: _WorkerRun
    reporter: _Reporter
    event_name: str
    client: Any
    worker: Any
    key: str | None
    next_report: float
    next_check: float
    event: Any = None
    asking: concurrent.futures.Future[bool] | None = None  # the last cancel check
    cancel_seen: bool = False
    interrupt_at: float | None = None  # set once the run was told to stop


class _Askers:
    """A few daemon threads that make blocking calls for the watcher and keep their answers.

    Not a ``ThreadPoolExecutor``: its threads are joined at interpreter exit, and a
    question the scheduler never answers would keep the worker process from exiting.
    """

    def __init__(self, threads: int) -> None:
        self._questions: queue.SimpleQueue[
            tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = queue.SimpleQueue()
        for i in range(threads):
            threading.Thread(target=self._serve, daemon=True,
                             name=f"jupyter-tasks-cancel-check-{i}").start()

    def submit(self, call: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        """Make ``call`` on one of the threads; its future answer."""
        answer: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._questions.put((call, answer))
        return answer

    def _serve(self) -> None:
        while True:
            call, answer = self._questions.get()
            if not answer.set_running_or_notify_cancel():
                continue
            try:
                answer.set_result(call())
            except BaseException as exc:  # the watcher reads it as "could not say"
                answer.set_exception(exc)


class _RunWatcher:
    """One thread per worker process that reports and checks cancels for all of its runs.

    A thread started per run cost more than a short job: each start waits for the
    new thread to take the GIL. Nothing is due for a run in its first
    ``REPORT_INTERVAL``, so the thread sleeps through most short jobs. Asking the
    scheduler whether a run was cancelled is a round trip that a busy or lost
    scheduler can hold for seconds: those questions go to a small pool, so that
    the reports and interrupts of the other runs are never held behind them.
    """

    def __init__(self) -> None:
        self._runs: list[_Watched] = []
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._wake_at = float("inf")  # when the thread wakes by itself next
        self._asking: _Askers | None = None

    def watch(self, run: _WorkerRun, reporter: _Reporter, event_name: str, client: Any,
              worker: Any, key: str | None) -> _Watched:
        """Start watching ``run`` until ``forget``."""
        now = time.monotonic()
        watched = _Watched(run, reporter, event_name, client, worker, key,
                           now + REPORT_INTERVAL, now + CANCEL_POLL)
        with self._changed:
            self._runs.append(watched)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, daemon=True,
                                                name="jupyter-tasks-run-watcher")
                self._thread.start()
            elif self._next(watched) < self._wake_at:
                self._changed.notify()
        return watched

    def forget(self, watched: _Watched) -> None:
        """Stop watching a run (it has ended)."""
        with self._changed:
            if watched in self._runs:
                self._runs.remove(watched)

    def _loop(self) -> None:
        while True:
            with self._changed:
                live = [w for w in self._runs if not w.run.finished.is_set()]
                due = min((self._next(w) for w in live), default=float("inf"))
                if due > time.monotonic():
                    self._wake_at = due
                    self._changed.wait(None if due == float("inf") else due - time.monotonic())
                    self._wake_at = float("inf")
                    continue  # woken early by a new run: the times are worked out again
            now = time.monotonic()
            for watched in live:
                if not watched.run.finished.is_set() and self._next(watched) <= now:
                    with contextlib.suppress(Exception):
                        self._tend(watched, now)

    @staticmethod
    def _next(watched: _Watched) -> float:
        if watched.interrupt_at is not None:
            return min(watched.next_report, watched.interrupt_at)
        return min(watched.next_report, watched.next_check)

    def _tend(self, watched: _Watched, now: float) -> None:
        run = watched.run
        if watched.next_report <= now:
            watched.next_report = now + REPORT_INTERVAL
            watched.reporter.announce()
            watched.reporter.flush()
        if watched.interrupt_at is not None:
            if watched.interrupt_at <= now:
                # a sync function that does not look at ctx.cancelled gets TaskCancelled
                # raised at its next bytecode until it ends
                watched.interrupt_at = now + INTERRUPT_EVERY
                run.interrupt()
            return
        if not watched.cancel_seen:  # set by the answer of a question to the scheduler
            if watched.next_check > now:
                return
            watched.next_check = now + CANCEL_POLL
            # a hub that died cannot set the event; Dask then drops the task's key, and
            # the run (its process group or kernel) must end with it: the hub's
            # successor will run the job again. A worker that is closing (it lost its
            # scheduler, or was told to close) has dropped its runs too: whatever they
            # return reaches nobody, while they went on for its close timeout (30 s),
            # perhaps beside a rerun
            if not _key_dropped(watched.worker, watched.key):
                if not _worker_closing(watched.worker):
                    self._ask(watched)
                    return
                _log.warning("jupyter-tasks: stopping the run %s of task %s: its Dask "
                             "worker %s is closing (%s)", watched.key,
                             watched.reporter.base.get("task"),
                             getattr(watched.worker, "address", "?"),
                             _worker_status(watched.worker))
        run.cancel()  # cooperative first (ctx.cancelled), then interrupts after the grace
        watched.interrupt_at = now + COOPERATIVE_GRACE

    def _ask(self, watched: _Watched) -> None:
        """Ask the scheduler whether the run's cancel event is set, unless still asking."""
        if watched.asking is not None and not watched.asking.done():
            return
        if watched.event is None:
            from distributed import Event

            watched.event = Event(watched.event_name, client=watched.client)
        if self._asking is None:
            self._asking = _Askers(ASKING_THREADS)
        watched.asking = self._asking.submit(watched.event.is_set)
        watched.asking.add_done_callback(functools.partial(self._answered, watched))

    def _answered(self, watched: _Watched, asking: concurrent.futures.Future[bool]) -> None:
        if asking.cancelled() or asking.exception() is not None or not asking.result():
            return  # not set, or the scheduler could not say: asked again at the next poll
        with self._changed:
            watched.cancel_seen = True
            watched.next_check = 0.0  # due at once: the watcher acts on it now
            self._changed.notify()


_watcher = _RunWatcher()
_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()
# run ids and key nonces: not the random module's own generator, which a job may seed
# (two runs seeded alike would draw the same id); no system call per id either
_ids = random.Random()


def _after_fork_in_child() -> None:
    # a forked child has none of the parent's threads, and its locks may be held
    global _watcher, _clients, _clients_lock
    _watcher = _RunWatcher()
    _clients = {}
    _clients_lock = threading.Lock()
    _ids.seed()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _worker_client(worker: Any) -> Any:
    """The worker's own client, looked up once per worker (each lookup messages the scheduler)."""
    from distributed import get_client

    with _clients_lock:  # a worker with several threads runs several jobs at once
        client = _clients.get(worker.address)
        if client is None or client.status not in ("running", "connecting", "newly-created"):
            client = _clients[worker.address] = get_client()
        return client


def _group_reporter(reporter: _Reporter) -> Any:
    """A ``ProcessUsage.on_group`` hook that tells the hub about the run's process groups."""

    async def hook(pgid: int, record: dict[str, Any] | None) -> None:
        reporter.send(type="process", pgid=pgid, process=record)

    return hook


def finished_before_stop(outcome: dict[str, Any]) -> bool:
    """Whether a run the hub asked to stop had ended on its own before the stop reached
    its code: it succeeded, and its code was never told of the cancel.

    A cooperative function that read ``ctx.cancelled`` and returned early was stopped by
    the cancel: that is a cancel, whatever it returned. An outcome without
    ``cancel_seen`` (a worker of an older version) is read as a cancel, as before.
    """
    return outcome.get("status") == TaskStatus.SUCCEEDED.value \
        and outcome.get("cancel_seen") is False


def _ended(run: _RemoteRun, future: Any) -> bool:
    """Whether the run's outcome is here (its event came) or its Dask task is over."""
    return (run.outcome is not None and run.outcome.done()) or future.done()


def _executing(key: str, dask_worker: Any = None) -> bool:
    """On a Dask worker (``client.run``): whether the run ``key`` is executing there now."""
    state = dask_worker.state
    return any(ts.key == key for ts in (*state.executing, *state.long_running))


def _result_json(value: Any) -> Any:
    """What goes back to the hub: the value itself when Dask can ship it, else its JSON copy.

    The hub applies the storage rule (``jupyter_tasks.values``) to it, notes and all;
    a value that does not pickle (a lock, a generator) arrives already converted. One
    nested deeper than the rule keeps is encoded here by it: pickling recurses once per
    level, and Dask's own pickling, on a deeper stack than this check's, failed on a
    list 500 deep that pickled here (the job was run again, then failed).
    """
    if not nested_within(value):
        return encode(value, where="result", limit=MAX_RESULT_CHARS)
    try:
        pickle.dumps(value)
    except Exception:
        return plain(value)
    return value


def _plain_enough(value: Any, budget: list[int]) -> bool:
    """True if msgpack carries ``value`` unchanged: None, bool, str, float, 64-bit int,
    lists and str-keyed dicts of them (no tuple, which would come back a list), within
    ``budget`` items."""
    budget[0] -= 1
    if budget[0] < 0:
        return False
    if value is None or isinstance(value, (bool, str, float)):
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**64
    if type(value) is list:
        return all(_plain_enough(item, budget) for item in value)
    if type(value) is dict:
        return all(isinstance(k, str) and _plain_enough(v, budget) for k, v in value.items())
    return False


def _outcome_event(outcome: dict[str, Any]) -> bool:
    """Whether the outcome may go back as an event: small, plain, without artifacts."""
    if outcome["artifacts"] or not _plain_enough(outcome["result"], [256]):
        return False
    import msgpack

    try:
        return len(msgpack.packb(outcome, use_bin_type=True)) <= OUTCOME_EVENT_MAX_BYTES
    except Exception:  # an error message msgpack cannot carry: the result path can
        return False


def _error_dict(exc: BaseException) -> dict[str, Any]:
    # the user's frames only, and its message, as a local run stores them (sys.exit(3)
    # says it ended the task, not "3"; a str() that raises is said, not lost); a stop's
    # own text as it is (its empty one reads "cancelled on the Dask worker")
    stopped = isinstance(exc, (asyncio.CancelledError, TaskCancelled))
    return {"type": type(exc).__name__, "message": str(exc) if stopped else error_message(exc),
            "traceback": user_traceback(exc)}


def _this_process() -> tuple[str, int]:
    """(host, pid): which process a payload was made in."""
    return socket.gethostname(), os.getpid()


def run_on_worker(payload: dict[str, Any]) -> dict[str, Any]:
    """Runs on a Dask worker: one run of a jupyter-tasks job; never raises for task errors."""
    from distributed import get_worker

    worker = get_worker()
    task: Task = payload["task"]
    ctx = WorkerContext(task.id)
    run_id = f"{_ids.getrandbits(48):012x}"
    # announced with the first report or event, not now: most short jobs never need it
    reporter = _Reporter(worker, payload["topic"], task.id, payload["key"], ctx,
                         {"run": run_id, "worker": worker.address, "pid": os.getpid()})
    run = _WorkerRun(ctx)
    # no row to record an exit into here, but the shim's exit-time peak is wanted
    usage = ProcessUsage(exit_peak=True)
    thread = ThreadRun()
    usage.on_group = _group_reporter(reporter)
    # the worker's client is found here: the watcher's thread has no worker context
    watched = _watcher.watch(run, reporter,
                             payload.get("cancel_event") or cancel_event_name(payload["key"]),
                             _worker_client(worker), worker, payload["key"])
    if payload.get("hub") != _this_process():
        # what the job prints reaches its log as it does on a server or a worker; a
        # worker in the hub's own process (an in-process cluster) leaves that to the hub
        print_capture.install_for_process()
    token = current_context.set(ctx)
    status, result, error = TaskStatus.SUCCEEDED.value, None, None
    try:
        _load_modules(payload.get("modules") or ())
        if task.kind == TaskKind.FUNCTION.value and payload.get("function_module"):
            from .registry import default_registry

            try:
                default_registry.get_info(task.name or "")
            except Exception:  # not registered yet: import the module that defines it
                _load_modules([payload["function_module"]])
        if task.kind == TaskKind.FUNCTION.value:
            result = _run_function(task, ctx, run, thread)
        else:
            result = _run_async(run, _run_process_kind(task, ctx, usage, payload))
        result = _result_json(result)
    except (TaskCancelled, asyncio.CancelledError) as exc:
        status, error = TaskStatus.CANCELLED.value, _error_dict(exc)
    except MemoryLimitExceeded as exc:
        status, error = TaskStatus.OOM.value, _error_dict(exc)
    except BaseException as exc:
        status, error = TaskStatus.FAILED.value, _error_dict(exc)
        if run.cancelled:
            status = TaskStatus.CANCELLED.value
    finally:
        with run.lock:
            run.finished.set()
            run.thread_id = None
        _watcher.forget(watched)
        current_context.reset(token)
        ctx.ended = True  # a thread or callback it left behind prints to the worker again
    if status == TaskStatus.FAILED.value and isinstance(error, dict) and run.cancelled:
        status = TaskStatus.CANCELLED.value
    outcome = {
        "status": status, "result": result, "error": error, "run": run_id,
        # whether the task's code was told of the cancel: a run that succeeded without
        # it ran to its end before the cancel could stop it (see finished_before_stop)
        # (an interrupt tells it too: a function that caught it and returned what it had
        # was stopped, not ended on its own)
        "cancel_seen": ctx.cancel_seen or run.interrupted,
        "worker": worker.address, "artifacts": ctx.artifacts,
        "logs": ctx.take_logs(), "progress": ctx.current_progress,
        "usage": {"pid": usage.pid, "cpu_seconds": usage.cpu_seconds or thread.cpu_seconds,
                  "peak_rss_mb": usage.peak_rss_mb},
    }
    if _outcome_event(outcome):
        # on the worker's stream ahead of the task's completion, so the hub has it first
        worker.log_event(payload["topic"], {"task": task.id, "key": payload["key"],
                                            "type": "outcome", "outcome": outcome})
        return {"outcome_sent": run_id}
    return outcome


def _run_function(task: Task, ctx: WorkerContext, run: _WorkerRun, thread: ThreadRun) -> Any:
    from .registry import default_registry

    info = default_registry.get_info(task.name or "")
    kwargs = info.bind(task.params or {}, {TaskContext: ctx})
    if info.is_async:
        return _run_async(run, info.fn(**kwargs))
    started = time.thread_time()
    try:
        with run.lock:
            run.thread_id = threading.get_ident()
        if run.cancelled:
            raise TaskCancelled(f"task {task.id} was cancelled")
        try:
            return info.fn(**kwargs)
        finally:
            with run.lock:
                run.thread_id = None
    finally:
        thread.cpu_seconds = time.thread_time() - started


def _run_async(run: _WorkerRun, coro: Any) -> Any:
    """Run a coroutine on a fresh loop in this thread; the cancel watcher can cancel it."""
    loop = asyncio.new_event_loop()
    try:
        main = loop.create_task(coro)
        with run.lock:
            run.loop, run.main = loop, main
        if run.cancelled:
            main.cancel()
        return loop.run_until_complete(main)
    finally:
        with run.lock:
            run.loop, run.main = None, None
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _run_process_kind(task: Task, ctx: WorkerContext, usage: ProcessUsage,
                            payload: dict[str, Any]) -> Any:
    running = types.SimpleNamespace(process=usage, thread=ThreadRun())
    if task.kind == TaskKind.CODE.value:
        from .jobs.code import exec_code

        return await exec_code(task, ctx, running)
    if task.kind == TaskKind.NOTEBOOK.value:
        from .jobs.notebook import exec_notebook, resolve_notebook_path

        spec = task.spec or {}
        work_dir = None
        with contextlib.suppress(Exception):
            here = os.path.dirname(resolve_notebook_path(spec["notebook"], spec.get("root_dir")))
            if os.path.isdir(here):
                work_dir = here
        scratch = None
        if work_dir is None:
            scratch = work_dir = tempfile.mkdtemp(prefix=f"jupyter-tasks-nb-{task.id}-")
        try:
            return await exec_notebook(task, ctx, running,
                                       notebook_json=payload.get("notebook_json"),
                                       work_dir=work_dir,
                                       written_by_hub=payload.get("output_path"))
        finally:
            if scratch:
                import shutil

                shutil.rmtree(scratch, ignore_errors=True)
    if task.kind == TaskKind.SUBPROCESS.value:
        from .engine.kinds import SubprocessFailed
        from .runners import run_process

        spec = task.spec or {}
        completed = await run_process(spec["command"], ctx=ctx, cwd=spec.get("cwd"),
                                      env=spec.get("env"), memory_limit_mb=task.memory_limit_mb,
                                      usage=usage, capture_output=False)
        if completed.returncode != 0:
            raise SubprocessFailed(completed.returncode, spec["command"])
        return {"returncode": completed.returncode}
    raise ValueError(f"{task.kind} tasks cannot run on Dask")


__all__ = ["CANCEL_PREFIX", "TOPIC", "DaskBackend", "DaskJobLost", "DaskSchedulerLost",
           "RemoteTaskError", "WorkerContext", "cancel_event_name", "install_dask_backend",
           "run_on_worker"]
