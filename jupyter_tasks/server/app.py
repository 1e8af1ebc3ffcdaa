"""``JupyterTasksApp``: the server extension's configuration and lifecycle.

The extension owns one ``TaskManager`` started on the server's event loop. It
runs the durable-queue workers and the reaper, so a plain ``jupyter lab`` runs
submitted jobs with no other process, and a restart takes up jobs a killed
server left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import (
    Bool,
    Dict,
    Enum,
    Float,
    Int,
    List,
    TraitError,
    Unicode,
    default,
    validate,
)

from .. import dbfile, print_capture
from ..callbacks import CallbackPolicy
from ..engine.config import DEFAULT_MAX_LOG_CHARS
from ..engine.loop_failures import LoopFailures
from ..exceptions import StoreBusy, StoreCompanionHeld, StoreError, StoreFull, StoreUnavailable
from ..forks import fresh_signals_in_forked_children
from ..kinds import standard
from ..manager import LOOPBACK_HOSTS, TaskManager
from ..models import ACTIVE_STATUSES, utcnow
from ..paths import DB_ENV, default_db_path
from ..registry import load_task_modules
from ..scheduler import Scheduler

ACTIVITY_SETTING = "jupyter_tasks_last_activity"


class _Modules(List):
    """A list of module names or ``.py`` paths; a single string (comma-separated) is accepted."""

    def validate(self, obj: Any, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        elif isinstance(value, (list, tuple)):
            value = [part.strip() for item in value for part in str(item).split(",")
                     if part.strip()]
        return super().validate(obj, value)


class JupyterTasksApp(ExtensionApp):
    """Background tasks for Jupyter: REST and websocket API, job workers, reaper."""

    name = "jupyter_tasks"
    load_other_extensions = True

    db_path = Unicode(
        "", help="SQLite database shared with kernels and workers (default: $JUPYTER_TASKS_DB or "
                 "jupyter_tasks/tasks.db in the Jupyter data dir)."
    ).tag(config=True)

    workers = Dict(
        key_trait=Unicode(), value_trait=Int(),
        help="Durable-queue workers run inside the server: queue name -> concurrent jobs.",
    ).tag(config=True)

    task_modules = _Modules(
        Unicode(),
        help="Modules (names or .py paths) registering tasks with @task, imported at start-up "
             "besides JUPYTER_TASKS_MODULES and the 'jupyter_tasks' entry-point group.",
    ).tag(config=True)

    callback_allowlist = List(
        Unicode(), default_value=list(LOOPBACK_HOSTS),
        help="IP addresses, CIDR networks or host names a task's callback_url may point to "
             "(rules in jupyter_tasks/callbacks.py; default: loopback only; [] disables "
             "callbacks). A callback to this machine also needs the user's permission to "
             "execute terminals, as a terminal would reach it.",
    ).tag(config=True)

    max_body_bytes = Int(
        1024 * 1024, help="Largest accepted JSON request body in bytes (413 above)."
    ).tag(config=True)

    history_days = Float(
        30.0, help="Finished tasks and events older than this many days are pruned (0: keep all)."
    ).tag(config=True)

    prune_interval = Float(3600.0, help="Seconds between two pruning passes.").tag(config=True)

    executor = Enum(
        ["local", "dask"], default_value="local",
        help="Where the server's job workers run jobs: 'local' (in the server and its "
             "subprocesses) or 'dask' (sent to dask_scheduler_address; needs jupyter-tasks[dask]).",
    ).tag(config=True)

    dask_scheduler_address = Unicode(
        "", help="Dask scheduler address (e.g. tcp://host:8786) used when executor = 'dask'."
    ).tag(config=True)

    flush_batch = Int(
        20, help="Running tasks whose progress and logs share one database transaction; "
                 "small batches keep state changes flowing while hundreds of tasks report "
                 "(0: all in one)."
    ).tag(config=True)

    max_log_chars = Int(
        DEFAULT_MAX_LOG_CHARS,
        help="Characters one attempt of a task keeps in its log as it goes; past them only "
             "its last tenth is kept, rolling as it goes, after a line saying how much "
             "was left out (a task printing in a loop must not fill the disk)."
    ).tag(config=True)

    capture_print = Bool(
        True, help="What a task this server runs prints (sys.stdout and sys.stderr, from "
                   "its coroutine or its thread) goes to that task's log instead of the "
                   "server's terminal. False leaves the server's streams alone."
    ).tag(config=True)

    busy_timeout = Float(
        10.0, help="Seconds a write waits for another process's database lock before the "
                   "request answers 503 with Retry-After."
    ).tag(config=True)

    activity_interval = Float(
        5.0, help="Seconds between two checks for running tasks (reported as server activity)."
    ).tag(config=True)

    freeze_gc_at_start = Bool(
        True, help="Once started, move the objects the server holds (its modules, every "
                   "extension's) out of the garbage collector's full passes (gc.freeze). "
                   "Over the ~200,000 objects of a JupyterLab server each full pass stopped "
                   "the event loop for 70-190 ms, delaying every websocket event and REST "
                   "answer meanwhile. False leaves the collector as Python sets it."
    ).tag(config=True)

    @default("workers")
    def _default_workers(self) -> dict[str, int]:
        return {"default": 2}

    @validate("workers")
    def _check_workers(self, proposal: Any) -> dict[str, int]:
        value = proposal["value"]
        for queue, count in value.items():
            if count < 0:
                raise TraitError(f"workers[{queue!r}] must be >= 0, not {count}")
        return value

    @validate("history_days", "busy_timeout")
    def _check_not_negative(self, proposal: Any) -> float:
        # NaN compares False with everything: history_days=nan turned pruning off unsaid
        value = proposal["value"]
        if not (math.isfinite(value) and value >= 0):
            raise TraitError(f"{proposal['trait'].name} must be a number >= 0, not {value}")
        return value

    @validate("prune_interval", "activity_interval")
    def _check_positive(self, proposal: Any) -> float:
        value = proposal["value"]
        if not (math.isfinite(value) and value > 0):
            raise TraitError(f"{proposal['trait'].name} must be a number > 0, not {value}")
        return value

    @validate("max_log_chars")
    def _check_log_chars(self, proposal: Any) -> int:
        if proposal["value"] <= 0:
            raise TraitError("max_log_chars must be positive")
        return proposal["value"]

    @validate("callback_allowlist")
    def _check_allowlist(self, proposal: Any) -> list[str]:
        # read here, where a bad entry is a configuration problem said on every route;
        # the manager's own reading of it failed the extension's load
        try:
            CallbackPolicy.from_entries(proposal["value"])
        except ValueError as exc:
            raise TraitError(str(exc)) from None
        return proposal["value"]

    @validate("max_body_bytes")
    def _check_body(self, proposal: Any) -> int:
        if proposal["value"] <= 0:
            raise TraitError("max_body_bytes must be positive")
        return proposal["value"]

    # ------------------------------------------------------------------ set-up

    _config_problem: str | None = None

    def _link_jupyter_server_extension(self, serverapp: Any) -> None:
        try:
            super()._link_jupyter_server_extension(serverapp)
        except TraitError as exc:
            # jupyter_server logs a warning and loads the extension anyway, on its
            # defaults (another database, other workers); it stays up to say why instead
            self.serverapp = serverapp
            self._config_problem = f"invalid configuration: {exc}"

    def initialize_settings(self) -> None:
        """Resolve the database, share it with kernels, import task modules, build the manager."""
        if self.db_path:
            path = Path(self.db_path).expanduser()
            if not path.is_absolute():  # the server's own setting: from its root
                path = Path(self.serverapp.root_dir) / path
        else:
            # $JUPYTER_TASKS_DB (or the default) as every process reads it, the CLI in
            # the same shell too: from the working folder (before: from root_dir, so the
            # CLI found no database, and the file browser showed the server's)
            path = default_db_path().absolute()
        self.resolved_db_path = str(path)
        problem = self._config_problem
        if problem is None:
            # kernels (and any process) this server launches share the same database
            os.environ[DB_ENV] = self.resolved_db_path
            try:
                loaded = load_task_modules(self.task_modules)
            except Exception as exc:  # a SyntaxError, an ImportError, anything it raised
                self.log.error("jupyter_tasks | a task module failed to import", exc_info=True)
                problem = f"a task module failed to import: {type(exc).__name__}: {exc}"
            else:
                if loaded:
                    self.log.info("jupyter_tasks | task modules: %s", ", ".join(loaded))
        queues = {q: n for q, n in self.workers.items() if n > 0}
        self.manager = TaskManager(
            self.resolved_db_path, queues=queues, worker_kind="server", kinds=standard(),
            callback_allowlist=self.callback_allowlist, origin={"type": "server"},
            flush_batch=self.flush_batch or None, busy_timeout=self.busy_timeout,
            max_log_chars=self.max_log_chars,
        )
        # fires due schedules; any other process on the database may fire them too
        self.scheduler = Scheduler(self.manager)
        self.dask_backend = None
        self._unusable: str | None = None  # why the tasks cannot be served (then 503s)
        self._held_logged: str | None = None  # the last StoreCompanionHeld logged
        if problem is not None:
            # as jupyter_server would, had it not gone on without the extension: nothing
            # is opened or run on a guess, and every route says what to fix
            self._unusable = (f"jupyter_tasks cannot start: {problem}. Fix the "
                              "configuration (or the module) and restart the server")
            self.log.error("jupyter_tasks | %s", self._unusable)
        elif self.executor == "dask" and not self.dask_scheduler_address:
            # jupyter_server only warns when an extension fails to load, and then served
            # 404s (and its stop crashed, so SIGTERM left it running): the server stays up
            # to say what is missing on every route, as for an unusable database
            self._unusable = ("executor = 'dask' needs dask_scheduler_address: set "
                              "c.JupyterTasksApp.dask_scheduler_address to the Dask "
                              "scheduler's address, or executor = 'local', and restart")
            self.log.error("jupyter_tasks | %s", self._unusable)
        elif self.executor == "dask":
            from ..dask_backend import install_dask_backend

            self.dask_backend = install_dask_backend(self.manager, self.dask_scheduler_address)
        self._start_lock = asyncio.Lock()
        self._loops: list[asyncio.Task[Any]] = []
        self._stopping: asyncio.Future[None] | None = None
        self._active: list[dict[str, Any]] = []
        self._froze_gc = False  # whether start froze the collector's objects (stop thaws)
        self._captures_print = False  # whether start wrapped sys.stdout/stderr (stop unwraps)
        self.settings.update({
            "jupyter_tasks_manager": self.manager,
            "jupyter_tasks_app": self,
            ACTIVITY_SETTING: utcnow(),
        })
        if self._unusable is None:  # else no database is opened: none to name
            self.log.info("jupyter_tasks | database %s, workers %s", self.resolved_db_path,
                          queues)

    def initialize_handlers(self) -> None:
        """Every route of docs/reference/rest-api.md."""
        from .events import EventsWebSocket
        from .routes import default_handlers

        self.handlers.extend(default_handlers(EventsWebSocket))

    # --------------------------------------------------------------- lifecycle

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        """Start the manager and the housekeeping loops on the server's loop."""
        # a job's forked children must neither run the server's stop handlers nor wake them
        fresh_signals_in_forked_children()
        # an unusable database is logged as an ERROR; every route then answers 503
        with contextlib.suppress(StoreUnavailable):
            try:
                await self.ensure_started()
            except StoreFull as exc:  # passes once space is freed: a request starts it then
                self.log.warning("jupyter_tasks | %s", exc.message)
        if self.capture_print and not self._captures_print:
            print_capture.install()
            self._captures_print = True
        if self.freeze_gc_at_start and not self._froze_gc:
            # what exists now lives as long as the server: collected once, then never
            # walked again; what comes later (tasks, requests) is collected as usual
            gc.collect()
            gc.freeze()
            self._froze_gc = True

    async def ensure_started(self) -> TaskManager:
        """Start the manager once (also called lazily by the first request).

        Raises ``StoreUnavailable`` (503 on every route) when the database file
        cannot be used: not a database, damaged, from a newer version.
        """
        if self.manager.running:
            return self.manager
        if self._unusable is not None:
            raise StoreUnavailable(self._unusable)
        async with self._start_lock:
            if self._unusable is not None:
                raise StoreUnavailable(self._unusable)
            if not self.manager.running and not self.manager.stopping:
                await self._start_manager()
                self.scheduler.start()
                self._loops = [asyncio.ensure_future(self._activity_loop())]
                if self.history_days > 0:
                    self._loops.append(asyncio.ensure_future(self._prune_loop()))
        return self.manager

    async def _start_manager(self) -> None:
        """Check the file (header, ``quick_check``), then start the manager.

        A file that cannot be used is logged once as an ERROR naming it and what
        to do, and remembered: the server stays up to say so on every route.
        """
        path = self.resolved_db_path
        try:
            await asyncio.to_thread(dbfile.verify, path)
            await self.manager.start()
        except (StoreError, sqlite3.DatabaseError) as exc:
            if isinstance(exc, (StoreBusy, StoreFull)) or (
                    isinstance(exc, sqlite3.OperationalError) and (
                        "locked" in str(exc) or "busy" in str(exc))):
                raise  # contention passes, space is freed: the next request tries again
            if isinstance(exc, StoreCompanionHeld):
                # passes once its holder has closed the file, as the message asks: the
                # next request opens it then (logged once while it lasts, not per request)
                if exc.message != self._held_logged:
                    self._held_logged = exc.message
                    self.log.error("jupyter_tasks | %s", exc.message)
                raise
            if isinstance(exc, StoreUnavailable):
                message = exc.message
            elif isinstance(exc, StoreError):
                message = f"the task database {path} cannot be used: {exc.message}"
            else:
                damaged = dbfile.unavailable_for(path, exc)
                message = damaged.message if damaged is not None else \
                    dbfile.damaged_message(path, f"cannot be opened ({exc})")
            self._unusable = message
            self.log.error("jupyter_tasks | %s", message)
            if self.manager.store is not None:  # opened, then failed: let its threads go
                with contextlib.suppress(Exception):
                    await self.manager.store.close()
            raise StoreUnavailable(message) from None

    async def stop_extension(self) -> None:
        """Stop the loops; running jobs go back to the queue, local work ends interrupted."""
        if not hasattr(self, "_loops"):
            return  # its settings failed (a task module that did not import): nothing ran
        # a second SIGTERM runs the server's cleanup again, which stops the event loop
        # once this returns: every call waits for the one stop, or the loop stopped under
        # it and the process hung for good, its jobs left running
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop_everything())
        await asyncio.shield(self._stopping)

    async def _stop_everything(self) -> None:
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []
        await self.scheduler.stop()
        if self.manager.running:
            await self.manager.stop()
        if self.dask_backend is not None:
            await self.dask_backend.close()
        if self._captures_print:
            print_capture.uninstall()
            self._captures_print = False
        if self._froze_gc:
            # a server run inside another program (a test) leaves its collector as it was
            gc.unfreeze()
            self._froze_gc = False

    # --------------------------------------------------------------- activity

    def current_activity(self) -> list[dict[str, Any]] | None:
        """Tasks queued or running: the server is busy and must not shut down when idle."""
        return list(self._active) or None

    async def refresh_activity(self) -> None:
        """Look for active tasks; while some exist, keep the server's last activity current."""
        tasks = await self.manager.store.list_tasks(statuses=ACTIVE_STATUSES, limit=50)
        self._active = [{"id": t.id, "label": t.label, "status": t.status} for t in tasks]
        if tasks:
            stamp = utcnow()
            self.settings[ACTIVITY_SETTING] = stamp
            self.serverapp.web_app.settings[ACTIVITY_SETTING] = stamp

    async def _activity_loop(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.refresh_activity()
            await asyncio.sleep(self.activity_interval)

    async def _prune_loop(self) -> None:
        failures = LoopFailures(self.log, "jupyter_tasks | pruning failed")
        while True:
            await self.prune_pass(failures)
            await asyncio.sleep(self.prune_interval)

    async def prune_pass(self, failures: LoopFailures) -> None:
        """Prune what ended more than ``history_days`` ago; a failure said as ``failures``
        says it (once, not a traceback each pass: a full disk fails every one)."""
        cutoff = time.time() - self.history_days * 86400
        try:
            pruned = await self.manager.store.prune(cutoff, cutoff)
        except Exception:
            failures.failed()
            return
        failures.succeeded()
        if pruned:
            self.log.info("jupyter_tasks | pruned %d finished tasks", pruned)
