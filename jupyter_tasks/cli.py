"""``jupyter tasks …``: list, show, submit, run, cancel, rerun, logs, doctor, recover, worker,
lab, dashboard.

``list``, ``show``, ``logs`` and ``doctor`` open the database read-only: they never
create it, never migrate it, never register as a worker.

Task ids: every command takes a full id or a unique part of one, its start (as
``git`` takes a commit) or its end (what the views show: the last
:data:`SHORT_ID` characters). Output shows ids in that short form; ``--full``
(and ``--json``) show them whole.

``run`` takes papermill's command line (``papermill in.ipynb out.ipynb -p a 1`` becomes
``jupyter tasks run in.ipynb out.ipynb -p a 1``) and submits a notebook job.

Task modules: ``submit``, ``rerun`` and ``worker`` import the same task modules
as the server: ``JupyterTasksApp.task_modules`` from the Jupyter configuration
files, ``JUPYTER_TASKS_MODULES``, the ``jupyter_tasks`` entry points, plus
``--modules``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import errno
import json
import logging
import os
import select
import shlex
import shutil
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from . import dbfile
from ._version import __version__
from .cli_common import (
    DB_HELP,
    SHORT_ID,
    CliError,
    cell_width,
    creating_database,
    db_file,
    db_option,
    json_option,
    log_text_for,
    pad,
    printable,
    queue_name,
    read_text_file,
    run_parameters,
    shield_parameter_values,
    short_id,
)
from .cli_common import papermill_value as papermill_value  # where it was before
from .engine.config import DEFAULT_MAX_LOG_CHARS, ManagerConfig
from .engine.options import MAX_SLOTS, check_options
from .exceptions import JupyterTasksError, KeyGivenTwice, UnknownTask
from .jobs.kernel import STARTUP_TIMEOUT
from .jobs.notebook_record import URL
from .liveness import live_workers
from .manager import TaskManager, was_deduplicated
from .migrations import LATEST_VERSION
from .models import Task, TaskStatus, WorkerInfo, failure_reason, progress_fraction
from .paths import DB_ENV, default_db_path
from .registry import (
    MODULES_ENV,
    configured_task_modules,
    import_module_or_path,
    load_task_modules,
)
from .store import Store
from .values import check_input, is_unicode, loads_keys_once


def _import_given_modules(modules: Sequence[str]) -> None:
    """The ``--modules`` (and the env's, the entry points'); one error line if one fails."""
    try:
        load_task_modules(modules)
    except ImportError as exc:  # a file that is missing or fails to import
        file = Path(f"{exc.name}.py")
        # a command imports names from the environment, not from its folder
        here = (f" ({file} in this folder is given by its path: --modules {file})"
                if exc.name in modules and file.is_file() else "")
        raise CliError(f"{exc}{here}") from None
    except Exception as exc:
        # the module's own code failed (a bug, a syntax error): one line naming the module
        # and where it failed, not importlib's traceback
        raise CliError(_failed_import(modules, exc)) from None


def _failed_import(modules: Sequence[str], exc: Exception) -> str:
    """``task module M failed to import: Type: message (file, line N)``."""
    import importlib
    import traceback

    # the frames of the import machinery (ours, importlib's) are not the module's
    machinery = (Path(__file__).resolve().parent, Path(importlib.__file__).resolve().parent)
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith("<")
              and not any(m in Path(f.filename).resolve().parents for m in machinery)]
    if isinstance(exc, SyntaxError) and exc.filename:
        module_file, where = exc.filename, ""  # its message names the file and line
    elif frames:
        module_file = frames[0].filename  # the module's own top level
        line = [f for f in frames if f.filename == module_file][-1].lineno
        where = f" ({module_file}, line {line})"
    else:
        module_file, where = "", ""
    given = [*modules, *os.environ.get(MODULES_ENV, "").split(",")]
    named = next((m.strip() for m in given if m.strip() and module_file and Path(
        m.strip()).expanduser().resolve() == Path(module_file).resolve()), module_file)
    return (f"task module {named or '(an entry point)'} failed to import: "
            f"{type(exc).__name__}: {exc}{where}")


def _load_modules(args: argparse.Namespace) -> None:
    """The server's task modules (configuration, env, entry points) and ``--modules``.

    Modules named on the command line must import; a configured one that does not
    (e.g. a relative ``.py`` path meant for the server's directory) is a warning.
    """
    _import_given_modules(getattr(args, "modules", None) or [])  # also env, entry points
    for spec in configured_task_modules():
        try:
            import_module_or_path(spec)
        except Exception as exc:
            print(f"warning: task module {spec} (JupyterTasksApp.task_modules) not "
                  f"imported: {exc}", file=sys.stderr)


# ---------------------------------------------------------------------- task ids


async def _resolve(store: Store, ref: str) -> str:
    """The one task id ``ref`` names: a full id, or the start or end of exactly one."""
    ref = ref.strip().lstrip("…").lower()
    if not ref:
        raise CliError("a task id is required")
    if not is_unicode(ref):  # a byte the locale could not decode: no id holds one
        raise CliError(f"{ref.encode('utf-8', 'backslashreplace').decode()!r} is not valid "
                       "Unicode (a byte the locale could not decode): no task id holds one")
    if await store.get_task(ref) is not None:
        return ref

    rows = await store.match_ids(ref, limit=11)
    if len(rows) == 1:
        return rows[0][0]
    if not rows and len(ref) == 32:
        raise CliError(f"no task with id {ref}")
    if not rows:
        raise CliError(f"no task matches {ref!r} (give a task id, or its start or end; "
                       "`jupyter tasks list` shows them)")
    lines = [f"  {task_id}  {status}  {printable(str(label or ''))[:50]}"
             for task_id, status, label in rows[:10]]
    more = "\n  …and more" if len(rows) > 10 else ""
    raise CliError(f"{ref!r} matches more than one task; give more characters:\n"
                   + "\n".join(lines) + more)


async def _resolve_id(args: argparse.Namespace) -> str:
    async with _read_only(args) as store:
        return await _resolve(store, args.id)


def _manager(args: argparse.Namespace, *, create: bool = False) -> TaskManager:
    # the CLI writes requests and leaves; work it submits runs in a server or worker. It is
    # no worker itself: no worker row, no heartbeat, no reaper settling others' tasks
    return TaskManager(args.db, worker_kind="cli", origin={"type": "cli"},
                       runs_background=False, make_default=False, as_worker=False,
                       create_db=create)


@contextlib.asynccontextmanager
async def _read_only(args: argparse.Namespace) -> AsyncIterator[Store]:
    """The database opened read-only: looking at tasks writes nothing and creates no file."""
    store = await Store.open(args.db or default_db_path(), read_only=True)
    try:
        yield store
    finally:
        await store.close()


def _age(task: Task) -> str:
    end = task.finished_at or time.time()
    start = task.started_at or task.created_at
    return f"{end - start:.1f}s"


def _progress(task: Task) -> str:
    if task.status == TaskStatus.QUEUED.value:
        # a job back in its queue keeps its last attempt's progress in the row; its next
        # attempt starts from nothing (the panel and the dashboard show none either)
        return ""
    fraction = progress_fraction(task.progress)
    if fraction is not None:
        return f"{100 * fraction:.0f}%"
    current = task.progress.get("current") if isinstance(task.progress, dict) else None
    return printable(str(current))[:20] if current is not None else ""


def _print_table(tasks: Sequence[Task], args: argparse.Namespace) -> None:
    rows = [("ID", "STATUS", "KIND", "LABEL", "PROGRESS", "TIME", "OWNER")]
    for t in tasks:
        rows.append((short_id(t.id, args), t.status, t.kind, printable((t.label or "")[:40]),
                     _progress(t), _age(t), printable(t.owner or "")))
    widths = [max(cell_width(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(pad(c, w) for c, w in zip(r, widths, strict=True)).rstrip())


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = json_option(args.params, "--params", obj=True) or {}
    for item in args.param or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"--param takes key=value, not {item!r}")
        if not key:
            raise CliError(f"--param takes key=value; the key is empty in {item!r}")
        try:
            params[key] = loads_keys_once(value)
        except KeyGivenTwice as exc:
            raise CliError(f"--param {key}=…: {exc}") from None
        except json.JSONDecodeError:
            params[key] = value  # a bare word is a string
        except RecursionError:
            raise CliError(f"--param {key}=… is nested too deep for JSON here") from None
    return params


async def _cmd_list(args: argparse.Namespace) -> int:
    async with _read_only(args) as store:
        # one more than shown: whether the table stopped short of what matches
        tasks = await store.list_tasks(statuses=args.status, name=args.name,
                                       queue=args.queue, key_prefix=args.key_prefix,
                                       limit=args.limit + 1)
    more, tasks = len(tasks) > args.limit, tasks[:args.limit]
    if more:
        print(f"note: the newest {args.limit} shown; more match (--limit N shows more)",
              file=sys.stderr)
    if args.json:
        print(json.dumps([t.to_json() for t in tasks], indent=2))
    else:
        _print_table(tasks, args)
    return 0


async def _cmd_show(args: argparse.Namespace) -> int:
    async with _read_only(args) as store:
        task = await store.require_task(await _resolve(store, args.id))
        data = task.to_json(full=True)
        data["artifacts"] = [a.to_json() for a in await store.list_artifacts(task.id)]
        data["children"] = [c.id for c in await store.children(task.id)]
    print(json.dumps(data, indent=2))
    return 0


async def _cmd_submit(args: argparse.Namespace) -> int:
    _load_modules(args)
    if args.code_file is not None:
        args.code = read_text_file(args.code_file, "--code-file")
    elif args.code is not None and "\n" not in args.code and os.path.isfile(args.code):
        # the source "job.py" would run as such, and fail on the worker with
        # "NameError: name 'job' is not defined"
        raise CliError(f"--code takes Python source, and {args.code} is a file here: give "
                       f"--code-file {args.code} to run its source")
    # an option the work does not take is refused, not dropped without a word
    if args.code is not None and (args.param or args.params):
        raise CliError("--param and --params go with --name or --notebook; a code job "
                       "takes its data as --input JSON")
    if args.command and (args.param or args.params):
        raise CliError("--param and --params go with --name or --notebook; a command "
                       "takes its arguments after --command")
    if args.command == []:  # given, with nothing after it: not "no work given"
        raise CliError("--command needs the command's arguments after it (and goes last: "
                       "every word after it is the command's)")
    input_option = "--input"
    if args.input_file is not None:
        args.input = read_text_file(args.input_file, "--input-file")
        input_option = f"--input-file {args.input_file}"
        if not args.input.strip():  # read as no input at all, without a word
            raise CliError(f"{input_option} is empty: it holds the input as JSON (null "
                           "for none)")
    elif args.input is not None and "\n" not in args.input and os.path.isfile(args.input):
        try:  # a file whose name is JSON too ("3") is taken as the JSON it is
            json.loads(args.input)
        except ValueError:
            raise CliError(f"--input takes JSON, and {args.input} is a file here: give "
                           f"--input-file {args.input} to use its content") from None
    if args.input is not None and args.code is None:
        raise CliError("--input goes with --code; give --name and --notebook their values "
                       "with --param or --params")
    if args.name:
        spec: dict[str, Any] = {"name": args.name, "params": _params(args)}
    elif args.command:
        spec = {"command": args.command}
    elif args.notebook:
        spec = {"notebook": args.notebook, "parameters": _params(args)}
    else:
        spec = {"code": args.code, "input_data": json_option(args.input, input_option)}
    options = dict(label=args.label, task_key=args.task_key,
                   idempotency_key=args.idempotency_key, queue=args.queue,
                   priority=args.priority, timeout=args.timeout, max_retries=args.max_retries,
                   memory_limit_mb=args.memory_limit)
    # before anything else: a bad option is the error, whether or not the name is known here
    check_options(options)
    with creating_database(args.db):  # a first start may well be a submit
        return await _submit(args, spec, options)


async def _submit(args: argparse.Namespace, spec: dict[str, Any],
                  options: dict[str, Any]) -> int:
    async with _manager(args, create=True) as m:
        try:
            task = await m.submit_spec(spec, mode="job", **options)
        except UnknownTask as exc:
            live = await _live_workers(m, args.queue)
            knowing = [w for w in live if w.tasks is None or args.name in w.tasks]
            if knowing:
                # a live worker registered it (a server given the module on its command
                # line): it checks the params when it runs the job
                params = spec["params"]
                task = await m.enqueue_by_name(
                    args.name, params, label=args.label or args.name,
                    **{k: v for k, v in options.items() if k != "label"})
                w = knowing[0]
                print(f"note: {args.name!r} is not registered in this shell; queued for "
                      f"a {w.kind} that has it (pid {w.pid} on {w.host})", file=sys.stderr)
                return _print_submitted(args, await _wait(m, task, args) if args.wait
                                        else task)
            if live:
                # workers serve the queue and none has the name: most likely a typo, and
                # queued it would wait for good
                names = sorted({n for w in live for n in w.tasks or ()})
                raise CliError(
                    f"no live worker of queue {args.queue!r} has a task named {args.name!r}"
                    + (f"; they have: {', '.join(names)}" if names else "")) from None
            raise CliError(
                f"{exc.message}. This command imports the modules of "
                "JupyterTasksApp.task_modules in the Jupyter config files (e.g. "
                "jupyter_server_config.json), of $JUPYTER_TASKS_MODULES, of the "
                "'jupyter_tasks' entry points and of --modules; a module given to the "
                "server only on its command line is unknown here: pass it with --modules "
                "or put it in the config"
                + (f" (known here: {', '.join(sorted(m.registry.names()))})"
                   if m.registry.names() else "")) from None
        if was_deduplicated(task):
            print(f"existing task {short_id(task.id, args)} ({task.status})", file=sys.stderr)
        elif not await _live_runner(m, args.queue):
            _say_unserved(args.queue)
        if args.wait:
            task = await _wait(m, task, args)
    return _print_submitted(args, task)


T = TypeVar("T")

# how often a wait looks whether its database file is still there: a wait on a file
# deleted or moved away would otherwise never end, and never say why
FILE_CHECK_SECONDS = 1.0
RUNNER_CHECK_SECONDS = 2.0


async def _while_the_file_stays(store: Store, work: Awaitable[T],
                                watch: _RunnerWatch | None = None) -> T:
    """``work``'s outcome; ``StoreUnavailable`` (and ``work`` cancelled) once the file goes.
    ``watch``: told each second, to say when the task's runner is gone."""
    waiting = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=FILE_CHECK_SECONDS)
            if done:
                return waiting.result()
            store.check_file()
            if watch is not None:
                await watch.check()
    finally:
        waiting.cancel()


class _RunnerWatch:
    """Says once, on stderr, that the process running a followed task is gone: no event
    tells it (the task says running until a reaper looks), and a wait was silent for good."""

    def __init__(self, store: Store, task_id: str,
                 lease_seconds: float = ManagerConfig.lease_seconds) -> None:
        self.store = store
        self.task_id = task_id
        self.lease_seconds = lease_seconds  # a worker elsewhere is judged by its heartbeat
        self.said = False
        self.next_look = 0.0

    async def check(self) -> None:
        """Look, at most every RUNNER_CHECK_SECONDS."""
        if self.said or time.monotonic() < self.next_look:
            return
        self.next_look = time.monotonic() + RUNNER_CHECK_SECONDS
        task = await self.store.get_task(self.task_id)
        if task is None or task.status != TaskStatus.RUNNING.value or not task.worker_id:
            return
        worker = await self.store.get_worker(task.worker_id)
        if worker is not None and live_workers([worker], self.lease_seconds):
            return
        self.said = True
        print(f"note: {task.worker_id}, which runs it, is gone (its process ended, or, on "
              "another machine, its heartbeat stopped); it "
              "says running until a server or `jupyter tasks worker` on this database "
              "starts and puts it back in its queue (or ends it). Still waiting",
              file=sys.stderr)


async def _wait(m: TaskManager, task: Task, args: argparse.Namespace) -> Task:
    """The end of the job ``submit --wait`` queued; Ctrl-C stops the waiting, not the job."""
    ident = short_id(task.id, args)
    if not task.is_terminal:
        # said at once: the id is printed with the end, which Ctrl-C (or a queue nobody
        # serves) may never bring
        print(f"{ident} {task.status}; waiting for it (Ctrl-C stops waiting, not the job)",
              file=sys.stderr)
    try:
        return await _while_the_file_stays(m.store, m.wait(task.id),
                                           _RunnerWatch(m.store, task.id,
                                                        m.config.lease_seconds))
    except asyncio.CancelledError:
        _say_stopped_waiting(ident)
        raise


def _say_unserved(queue: str) -> None:
    print(f"note: no server or `jupyter tasks worker` serves queue {queue!r} now; the job "
          "waits for one", file=sys.stderr)


def _say_stopped_waiting(ident: str) -> None:
    print(f"\nstopped waiting; {ident} goes on (`jupyter tasks cancel {ident}` stops it)",
          file=sys.stderr)


async def _live_workers(m: TaskManager, queue: str) -> list[WorkerInfo]:
    """The live workers (servers too) that serve ``queue``."""
    return [w for w in live_workers(await m.store.list_workers(), m.config.lease_seconds)
            if queue in (w.queues or [])]


def _print_submitted(args: argparse.Namespace, task: Task) -> int:
    print(json.dumps(task.to_json(), indent=2) if args.json or args.wait
          else short_id(task.id, args))
    return 0 if task.status in (TaskStatus.SUCCEEDED.value, TaskStatus.QUEUED.value,
                                TaskStatus.RUNNING.value) else 1


# ------------------------------------------------------------- papermill-shaped run

# papermill flags that change nothing about the executed notebook: accepted and ignored
PAPERMILL_IGNORED = ("--request-save-on-cell-execute", "--no-request-save-on-cell-execute",
                     "--autosave-cell-every", "--progress-bar", "--no-progress-bar",
                     "--log-output", "--no-log-output", "--log-level", "--prepare-execute",
                     "--no-report-mode", f"--start-timeout (up to {STARTUP_TIMEOUT})")
# how long a notebook job waits for its kernel
KERNEL_START_SECONDS = STARTUP_TIMEOUT
# exit status of ``run --wait`` for a job that ran out of time, as timeout(1) has it
EXIT_TIMEOUT = 124
# exit status when stdout's reader went away, as a tool that SIGPIPE ended has it
EXIT_BROKEN_PIPE = 141
# what a write to standard output raises when the file behind it cannot take more (the
# store's own errors come as JupyterTasksError, and a named file's carry its name)
OUTPUT_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO)



def _refuse_unsupported(args: argparse.Namespace) -> None:
    """papermill flags whose effect jupyter-tasks cannot give: an error saying so."""
    refused = {
        "--help-notebook": (args.help_notebook, "not available; open the notebook's "
                            "parameters cell"),
        "--prepare-only": (args.prepare_only, "notebook jobs always execute"),
        "--report-mode": (args.report_mode, "the executed notebook keeps its inputs"),
        "--stdout-file": (args.stdout_file, "the job's output is its log: "
                          "`jupyter tasks logs ID`"),
        "--stderr-file": (args.stderr_file, "the job's output is its log: "
                          "`jupyter tasks logs ID`"),
        "--execution-timeout": (args.execution_timeout is not None,
                                "there is no per-cell limit; --timeout S limits the whole run"),
        "--engine": (args.engine not in (None, "nbclient"),
                     "notebook jobs run with nbclient (--engine nbclient) only"),
        "--language": (args.language not in (None, "python"),
                       "parameters are injected as Python only"),
        "--start-timeout": (args.start_timeout is not None
                            and args.start_timeout > KERNEL_START_SECONDS,
                            f"a kernel is given {KERNEL_START_SECONDS}s to start"),
    }
    for flag, (given, why) in refused.items():
        if given:
            raise CliError(f"{flag} is not supported: {why}")
    for path, what in ((args.notebook, "NOTEBOOK"), (args.output, "OUTPUT")):
        if path == "-":
            raise CliError(f"{what} '-' (a pipe) is not supported: give a file path")
        if path and URL.match(path):
            # papermill's remote storage (s3://, gs://, https://...): taken as a path,
            # an OUTPUT was written to a local folder named `s3:`, "succeeded"
            raise CliError(f"{what} {path!r} (a URL) is not supported: notebook jobs read "
                           "and write files inside this folder; give a file path")


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _int_in(low: int, high: int) -> Any:
    """An argparse type: an integer from ``low`` to ``high`` (a clear error otherwise)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, not {text}")
        return value

    parse.__name__ = "int"
    return parse


def run_spec(args: argparse.Namespace) -> dict[str, Any]:
    """The notebook spec ``run`` submits, checked as the server checks it (``CliError``)."""
    from .jobs.notebook import validate_notebook_spec

    _refuse_unsupported(args)
    spec: dict[str, Any] = {
        "notebook": args.notebook, "parameters": run_parameters(args),
        # an empty -k (an unset `-k "$KERNEL"`) is the notebook's kernel, as in papermill
        "root_dir": os.getcwd(), "kernel_name": args.kernel or None,
        "output_path": args.output or None, "export_html": True if args.html else None}
    spec = {k: v for k, v in spec.items() if v is not None}
    try:
        check_input(spec["parameters"], where="parameters")
        path = validate_notebook_spec(spec)
    except JupyterTasksError as exc:
        raise CliError(exc.message) from None
    # a notebook job's kernel starts in the notebook's folder: papermill's --cwd is
    # honoured when it names that folder, refused otherwise (never silently dropped)
    if args.cwd is not None and os.path.realpath(args.cwd) != os.path.dirname(path):
        raise CliError(f"--cwd {args.cwd} is not supported: a notebook job runs in the "
                       f"notebook's folder ({os.path.dirname(path)})")
    return spec


async def _live_runner(m: TaskManager, queue: str) -> bool:
    """Whether a live server or worker serves ``queue``."""
    return bool(await _live_workers(m, queue))


async def _follow(m: TaskManager, task_id: str) -> Task:
    """Print the task's log as it is written (stdout and stderr as written) until it ends."""
    after = 0
    watch = _RunnerWatch(m.store, task_id, m.config.lease_seconds)
    with m.subscribe() as events:
        while True:
            # the state before the log: a job writes its last lines before it ends, so
            # once the state read first is an end the log read after holds all of them
            task = await m.get(task_id)
            entries = await m.store.get_logs(task_id, after=after)
            for entry in entries:
                stream = sys.stderr if entry.stream == "stderr" else sys.stdout
                stream.write(log_text_for(stream, entry.text))
                stream.flush()
                after = entry.seq
            if entries:
                continue  # a page at a time: there may be more
            if task.is_terminal:
                return task
            # subscribed before the reads above: nothing written since is missed
            while (await _while_the_file_stays(m.store, events.get(), watch)
                   ).task_id != task_id:
                pass


def _ending(task: Task, args: argparse.Namespace) -> int:
    """One line saying how the job ended; the exit status of ``run --wait``."""
    ident = short_id(task.id, args)
    if task.status == TaskStatus.SUCCEEDED.value:
        output = (task.result or {}).get("output_path") if isinstance(task.result, dict) \
            else None
        print(f"{ident} succeeded" + (f"; output: {output}" if output else ""),
              file=sys.stderr)
        return 0
    if task.status == TaskStatus.TIMEOUT.value:
        after = f" after {task.timeout:g}s" if task.timeout else ""
        print(f"error: {ident} timed out{after}", file=sys.stderr)
        return EXIT_TIMEOUT
    reason = "cancelled" if task.status == TaskStatus.CANCELLED.value \
        else f"{task.status}: {failure_reason(task.error)}"
    print(f"error: {ident} {printable(reason)}", file=sys.stderr)
    return 1


async def _cmd_run(args: argparse.Namespace) -> int:
    spec = run_spec(args)  # before the database is touched: bad input submits nothing
    with creating_database(args.db):
        return await _run(args, spec)


async def _run(args: argparse.Namespace, spec: dict[str, Any]) -> int:
    async with _manager(args, create=True) as m:
        task = await m.submit_spec(spec, mode="job", queue=args.queue, timeout=args.timeout,
                                   memory_limit_mb=args.memory_limit)
        ident = short_id(task.id, args)
        if not await _live_runner(m, args.queue):
            _say_unserved(args.queue)
        if not args.wait:
            print(ident)
            return 0
        print(f"{ident} queued; waiting for it (Ctrl-C stops waiting, not the job)",
              file=sys.stderr)
        try:
            task = await _follow(m, task.id)
        except asyncio.CancelledError:
            _say_stopped_waiting(ident)
            raise
    return _ending(task, args)


async def _cmd_cancel(args: argparse.Namespace) -> int:
    task_id = await _resolve_id(args)
    async with _manager(args) as m:
        task = await m.cancel(task_id)
    print(f"{short_id(task.id, args)} {task.status}"
          f"{' (cancel requested)' if not task.is_terminal else ''}")
    return 0


async def _cmd_rerun(args: argparse.Namespace) -> int:
    task_id = await _resolve_id(args)
    _load_modules(args)
    async with _manager(args) as m:
        task = await m.rerun(task_id)
    if was_deduplicated(task):  # its task_key's run, already active: no second run queued
        print(f"not rerun: its task key has a run {task.status} already, "
              f"{short_id(task.id, args)}", file=sys.stderr)
    print(short_id(task.id, args))
    return 0


async def _cmd_logs(args: argparse.Namespace) -> int:
    async with _read_only(args) as store:
        args.id = await _resolve(store, args.id)
        after = 0
        watch = _RunnerWatch(store, args.id)
        while True:
            # the state before the log (see _follow): an end read first means the log
            # read after holds every line
            task = await store.require_task(args.id) if args.follow else None
            entries = await store.get_logs(args.id, after=after)
            for entry in entries:
                stream = sys.stderr if entry.stream == "stderr" else sys.stdout
                stream.write(log_text_for(stream, entry.text))
                after = entry.seq
            sys.stdout.flush()
            if task is None:
                return 0
            if task.is_terminal and not entries:
                return 0
            if not entries:
                store.check_file()  # a file deleted meanwhile would be followed for good
                await watch.check()
                await asyncio.sleep(0.25)


async def _cmd_doctor(args: argparse.Namespace) -> int:
    report = dbfile.inspect(args.db or default_db_path())
    if args.json:
        print(json.dumps({**dataclasses.asdict(report), "path": str(report.path),
                          "latest_version": LATEST_VERSION, "ok": report.ok}, indent=2))
        return 0 if report.ok else 1
    wal = "" if report.wal_size is None else f"; WAL {report.wal_size:,} bytes"
    where = (" (missing)" if not report.exists else " (a folder)" if report.path.is_dir()
             else f" ({report.size:,} bytes{wal})")
    print(f"database: {report.path}{where}")
    if report.quick_check:
        print(f"quick_check: {'; '.join(report.quick_check)}")
    if report.schema_version is not None:
        print(f"schema version: {report.schema_version} (this jupyter-tasks: {LATEST_VERSION})")
    if report.journal_mode is not None:
        print(f"journal mode: {report.journal_mode}")
    if report.workers:
        print("workers:")
        for w in report.workers:
            print(f"  {w['id']}  {w['kind']}  pid {w['pid']} on {w['host']}  {w['state']}  "
                  f"last heartbeat {w['heartbeat_age']}s ago")
    if report.counts:
        print("tasks: " + ", ".join(f"{status}: {n}" for status, n in report.counts.items()))
    for note in report.notes:
        print(f"note: {note}")
    if report.ok:
        print("no problem found")
        return 0
    print("problems:")
    for problem in report.problems:
        print(f"  - {problem}")
    if report.advice:
        print("what to do:")
        for advice in report.advice:
            print(f"  - {advice}")
    return 1


async def _cmd_recover(args: argparse.Namespace) -> int:
    from .recovery import recover

    source = Path(args.db or default_db_path())
    target = Path(args.output or f"{source}.recovered")
    done = await recover(source, target)
    for table, count in done.copied.items():
        lost = done.unreadable.get(table)
        print(f"{table}: {count:,} rows copied"
              + (f"; an unreadable stretch of {lost:,} row ids stepped over" if lost else ""))
    for table in done.missing:
        print(f"{table}: not in {source} (or unreadable)")
    print(f"written to {target}; check it with `jupyter tasks doctor --db "
          f"{shlex.quote(str(target))}`, then, with the server stopped, move it in place "
          f"of {source} (and remove {source}'s -wal and -shm files)")
    return 0


async def _cmd_worker(args: argparse.Namespace) -> int:
    from .worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # the configured ones too (a worker runs what they register, where submit only checks
    # params): one error line, before anything starts
    modules = [*(args.modules or []), *configured_task_modules()]
    _import_given_modules(modules)
    # a worker on a mistyped --db (or a unit without $JUPYTER_TASKS_DB) serves a new, empty
    # file while the jobs wait in the real one: said as submit says it
    with creating_database(args.db):
        await run_worker(args.db, queues=args.queue or ["default"],
                         concurrency=args.concurrency, task_modules=modules,
                         max_log_chars=args.max_log_chars)
    return 0


def lab_argv(argv: Sequence[str], uid: int | None = None) -> list[str]:
    """``jupyter lab`` with ``argv``, plus ``--allow-root`` when run as root.

    Jupyter refuses root without that flag ("Running as root is not recommended"), and
    a fresh container or VM runs as root; a normal user's command line is left alone.
    """
    uid = os.geteuid() if uid is None and hasattr(os, "geteuid") else uid
    argv = list(argv)
    if uid == 0 and not any(a == "--allow-root" or a.startswith("--allow-root=")
                            or a.endswith(".allow_root=True") for a in argv):
        argv.append("--allow-root")
    return ["jupyter", "lab", *argv]


def lab_executable(python: str | None = None) -> str | None:
    """The ``jupyter-lab`` of this Python's environment, else the first on ``PATH``.

    The environment's own first: ``/venv/bin/jupyter tasks lab`` run without activating
    the venv found another environment's JupyterLab on ``PATH``, without this extension
    (every ``/api/tasks`` call answered 404).
    """
    beside = Path(python or sys.executable).with_name("jupyter-lab")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("jupyter-lab") or shutil.which("jupyter")


def _cmd_lab(argv: Sequence[str]) -> int:
    command = lab_argv(argv)
    exe = lab_executable()
    if exe is None:
        print("error: jupyter lab is not installed (pip install jupyterlab)", file=sys.stderr)
        return 2
    if exe.endswith("jupyter-lab"):
        command = [exe, *command[2:]]
    sys.stdout.flush()
    os.execvp(command[0], command)  # the server replaces this process: signals reach it
    return 0  # pragma: no cover


RUN_DESCRIPTION = (
    "Submit NOTEBOOK as a notebook job. papermill's command line works with `papermill` "
    "replaced by `jupyter tasks run`. Accepted and ignored (they change nothing in the "
    "result): " + ", ".join(PAPERMILL_IGNORED) + ". Refused with the reason: "
    "--help-notebook, --prepare-only, --report-mode, --stdout-file, --stderr-file, "
    "--execution-timeout, --engine and --language other than nbclient and python, "
    "and '-' (pipes) or URLs (s3://, gs://, https://...) for NOTEBOOK or OUTPUT.")


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``run``: papermill's, plus the job's (queue, limits, --wait)."""
    p.add_argument("notebook", metavar="NOTEBOOK", help="notebook path, inside this folder")
    p.add_argument("output", metavar="OUTPUT", nargs="?",
                   help="where to write the executed notebook, inside this folder; {id}, "
                        "{date} and parameter names are filled in (the executed notebook "
                        "is always kept as the task's artifact too)")
    p.add_argument("-p", "--parameters", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="a parameter; VALUE read as papermill does (True, False, None, "
                        "int, float, else text)")
    p.add_argument("-r", "--parameters_raw", nargs=2, action="append",
                   metavar=("NAME", "VALUE"), help="a parameter whose VALUE stays text")
    p.add_argument("-f", "--parameters_file", action="append", metavar="FILE",
                   help="a YAML file of parameters")
    p.add_argument("-y", "--parameters_yaml", action="append", metavar="YAML",
                   help="parameters as a YAML string")
    p.add_argument("-b", "--parameters_base64", action="append", metavar="BASE64",
                   help="parameters as base64-encoded YAML")
    p.add_argument("--inject-input-path", action="store_true",
                   help="add NOTEBOOK as the parameter PAPERMILL_INPUT_PATH")
    p.add_argument("--inject-output-path", action="store_true",
                   help="add OUTPUT as the parameter PAPERMILL_OUTPUT_PATH")
    p.add_argument("--inject-paths", action="store_true", help="both of the above")
    p.add_argument("-k", "--kernel", help="kernel name (default: the notebook's)")
    p.add_argument("--cwd", help="the kernel's working folder: the notebook's folder "
                                 "(the only one a notebook job runs in)")
    p.add_argument("--html", action="store_true",
                   help="also keep the executed notebook as HTML (a second artifact)")
    p.add_argument("--timeout", type=_positive(float), metavar="S",
                   help="seconds the whole run may take")
    p.add_argument("--memory-limit", type=_positive(int), metavar="MB",
                   help="memory limit of the kernel and its children, in MB")
    p.add_argument("--queue", default="default", metavar="Q", type=queue_name)
    p.add_argument("--wait", action="store_true",
                   help="print the log as it is written and exit when the job ends: 0 "
                        f"succeeded, {EXIT_TIMEOUT} timed out, 1 otherwise")
    # papermill's flags without an effect here (PAPERMILL_IGNORED), and those refused
    hidden = argparse.SUPPRESS
    for flag in ("--request-save-on-cell-execute", "--no-request-save-on-cell-execute",
                 "--progress-bar", "--no-progress-bar", "--log-output", "--no-log-output",
                 "--prepare-execute", "--no-report-mode"):
        p.add_argument(flag, action="store_true", help=hidden,
                       dest="ignored_" + flag.strip("-").replace("-", "_"))
    p.add_argument("--autosave-cell-every", type=int, help=hidden)
    p.add_argument("--log-level", help=hidden, choices=["NOTSET", "DEBUG", "INFO", "WARNING",
                                                        "ERROR", "CRITICAL"])
    p.add_argument("--start-timeout", "--start_timeout", type=int, help=hidden)
    p.add_argument("--help-notebook", action="store_true", help=hidden)
    p.add_argument("--prepare-only", action="store_true", help=hidden)
    p.add_argument("--report-mode", action="store_true", help=hidden)
    p.add_argument("--stdout-file", help=hidden)
    p.add_argument("--stderr-file", help=hidden)
    p.add_argument("--execution-timeout", type=int, help=hidden)
    p.add_argument("--engine", help=hidden)
    p.add_argument("-l", "--language", help=hidden)
    p.set_defaults(run=_cmd_run, cmd="run")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``jupyter tasks``."""
    parser = argparse.ArgumentParser(prog="jupyter tasks",
                                     description="Inspect and steer jupyter-tasks.")
    parser.add_argument("--db", type=db_file, help=DB_HELP)
    # what a bug report needs first (before: "the following arguments are required: cmd")
    parser.add_argument("--version", action="version", version=f"jupyter-tasks {__version__}")
    sub = parser.add_subparsers(dest="cmd", required=True)
    db = db_option()
    full = argparse.ArgumentParser(add_help=False, parents=[db])
    full.add_argument("--full", action="store_true",
                      help=f"print whole task ids (default: their last {SHORT_ID} characters)")

    p = sub.add_parser("list", help="list tasks, newest first", parents=[full])
    p.add_argument("--status", action="append", choices=[s.value for s in TaskStatus])
    p.add_argument("--name")
    p.add_argument("--queue")
    p.add_argument("--key-prefix")
    # a negative LIMIT is no limit to SQLite: the whole history
    p.add_argument("--limit", type=_int_in(1, 1_000_000), default=50,
                   help="how many, newest first (default 50; a note on stderr says when "
                        "more match)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_cmd_list)

    p = sub.add_parser("show", help="one task in full, as JSON", parents=[db])
    p.add_argument("id", help="task id, or its start or end")
    p.set_defaults(run=_cmd_show)

    p = sub.add_parser("submit", help="submit a durable job", parents=[full])
    work = p.add_mutually_exclusive_group(required=True)
    work.add_argument("--name", help="registered task name")
    work.add_argument("--notebook", help="notebook path")
    work.add_argument("--code", help="Python source")
    work.add_argument("--code-file", metavar="PATH",
                      help="a Python file whose source is the code job's (read now)")
    work.add_argument("--command", nargs=argparse.REMAINDER, help="argv (put it last)")
    p.add_argument("--param", action="append", help="key=value (value parsed as JSON if it can)")
    p.add_argument("--params", help="all parameters as a JSON object")
    given = p.add_mutually_exclusive_group()
    given.add_argument("--input", help="input data (JSON) for --code")
    given.add_argument("--input-file", metavar="PATH",
                       help="a JSON file whose content is --code's input data (read now)")
    p.add_argument("--modules", action="append", help="task module to import (name or .py)")
    p.add_argument("--label")
    p.add_argument("--task-key")
    p.add_argument("--idempotency-key")
    p.add_argument("--queue", default="default", type=queue_name)
    p.add_argument("--priority", type=int, default=0)
    p.add_argument("--timeout", type=float)
    p.add_argument("--memory-limit", type=_positive(int), metavar="MB",
                   help="memory limit in MB of a command, code or notebook job and its "
                        "child processes (refused for --name: a function shares its worker)")
    p.add_argument("--max-retries", type=int)
    p.add_argument("--wait", action="store_true", help="wait for the end and print the task")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_cmd_submit)

    p = sub.add_parser("run", parents=[full], allow_abbrev=False,
                       help="run a notebook as a job, with papermill's command line",
                       description=RUN_DESCRIPTION)
    add_run_arguments(p)

    for name, fn, text in (("cancel", _cmd_cancel, "cancel a task"),
                           ("rerun", _cmd_rerun, "run a task's spec again")):
        p = sub.add_parser(name, help=text, parents=[full])
        p.add_argument("id", help="task id, or its start or end")
        p.set_defaults(run=fn)
        if name == "rerun":
            p.add_argument("--modules", action="append",
                           help="task module to import (name or .py)")

    p = sub.add_parser("logs", help="print a task's log", parents=[db])
    p.add_argument("id", help="task id, or its start or end")
    p.add_argument("-f", "--follow", action="store_true")
    p.set_defaults(run=_cmd_logs)

    p = sub.add_parser("doctor", help="check the database file (read-only) and say how to "
                                      "recover it", parents=[db])
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_cmd_doctor)

    p = sub.add_parser("recover", help="copy what a damaged database still holds into a "
                                       "new file (the damaged one is only read)", parents=[db])
    p.add_argument("output", nargs="?", help="the new file (default: the database's path "
                                             "with .recovered added)")
    p.set_defaults(run=_cmd_recover)

    p = sub.add_parser("worker", help="run queued jobs until stopped", parents=[db])
    p.add_argument("--queue", action="append", type=queue_name,
                   help="queue to serve (repeatable)")
    p.add_argument("--concurrency", type=_int_in(1, MAX_SLOTS), default=4)
    p.add_argument("--modules", action="append", help="task module to import (name or .py)")
    p.add_argument("--max-log-chars", type=_int_in(1, 10**12), default=DEFAULT_MAX_LOG_CHARS,
                   help="characters a job's log keeps as it goes; past them only its last "
                        f"tenth (default {DEFAULT_MAX_LOG_CHARS:,})")
    p.set_defaults(run=_cmd_worker)

    from .cli_schedule import add_schedule_parser

    add_schedule_parser(sub, db)

    p = sub.add_parser("lab", help="start JupyterLab (adds --allow-root when run as root)",
                       add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(run=None)

    p = sub.add_parser("dashboard", help="the terminal dashboard", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(run=None)
    return parser


def _command_index(argv: Sequence[str]) -> int:
    """Where the subcommand is in ``argv``: after the global options (``--db FILE``)."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] == "--db" else 1
    return i


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """``jupyter tasks ARGV`` parsed (but ``lab`` and ``dashboard``); exits on bad usage."""
    argv = list(argv)
    at = _command_index(argv)
    if argv[at:at + 1] == ["run"] or argv[at:at + 2] == ["schedule", "add"]:
        argv = shield_parameter_values(argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.cmd == "run" and rest:
        # papermill takes options between NOTEBOOK and OUTPUT; argparse needs its
        # intermixed parsing for that, which a parser with subcommands does not offer
        run = argparse.ArgumentParser(prog="jupyter tasks run", allow_abbrev=False,
                                      description=RUN_DESCRIPTION)
        run.add_argument("--full", action="store_true")
        run.add_argument("--db", default=argparse.SUPPRESS)
        add_run_arguments(run)
        args = run.parse_intermixed_args(argv[at + 1:], namespace=argparse.Namespace(db=args.db))
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``jupyter-tasks`` (``jupyter tasks``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    at = _command_index(argv)
    # these two parse their own arguments; a global --db before them is theirs too
    # (before, `jupyter tasks --db FILE dashboard` ended in a TypeError traceback)
    if argv[at:at + 1] == ["dashboard"]:
        from jupyter_tasks_dashboard.app import main as dashboard_main

        return dashboard_main([*argv[:at], *argv[at + 1:]], prog="jupyter tasks dashboard")
    if argv[at:at + 1] == ["lab"]:
        db = build_parser().parse_args(argv[:at + 1]).db
        if db is not None:  # the server and its kernels take the database from here
            os.environ[DB_ENV] = os.path.abspath(db)
        return _cmd_lab(argv[at + 1:])
    args = parse_args(argv)
    try:
        status = asyncio.run(args.run(args))
        # what is still buffered goes now, where a reader gone away is heard
        sys.stdout.flush()
        return status
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except JupyterTasksError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        for problem in exc.errors:
            line = f"{problem.get('field')}: {problem.get('message')}"
            if line not in exc.message:  # said once (most messages already hold them)
                print(f"  {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        if not _stdout_gone():
            raise
        # the reader left (``| head``): nothing more to say, and nothing to flush
        # into the closed pipe at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        if exc.filename is not None or exc.errno not in OUTPUT_ERRORS:
            raise
        # where the output goes cannot take it (a full disk behind `> file`): one line,
        # and nothing left to flush into it at exit
        print(f"error: the output could not be written: {exc.strerror or exc}",
              file=sys.stderr)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _stdout_gone() -> bool:
    """True when standard output is a pipe or socket whose reader has gone."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return False


if __name__ == "__main__":
    sys.exit(main())
