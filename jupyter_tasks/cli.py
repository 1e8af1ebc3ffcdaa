"""``jupyter tasks …``: list, show, submit, cancel, rerun, logs, doctor, worker, lab, dashboard.

``list``, ``show``, ``logs`` and ``doctor`` open the database read-only: they never
create it, never migrate it, never register as a worker.

Task ids: every command takes a full id or a unique part of one, its start (as
``git`` takes a commit) or its end (what the views show: the last
:data:`SHORT_ID` characters). Output shows ids in that short form; ``--full``
(and ``--json``) show them whole.

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
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from . import dbfile
from .exceptions import JupyterTasksError, UnknownTask
from .manager import TaskManager, was_deduplicated
from .migrations import LATEST_VERSION
from .models import Task, TaskStatus
from .paths import default_db_path
from .registry import _import_module_or_path, load_task_modules
from .store import Store

SHORT_ID = 10  # the dashboard and the cards show the last 10 characters of an id
CONFIG_FILES = ("jupyter_config", "jupyter_server_config", "jupyter_lab_config",
                "jupyter_notebook_config", "jupyter_tasks_config")


class CliError(Exception):
    """A problem the user can fix, printed as ``error: …`` (exit status 2)."""


def short_id(task_id: str, args: argparse.Namespace | None = None) -> str:
    """The id as the views show it (its end), or whole with ``--full``."""
    if args is not None and getattr(args, "full", False):
        return task_id
    return task_id[-SHORT_ID:]


# ------------------------------------------------------------------ task modules


def configured_task_modules() -> list[str]:
    """``JupyterTasksApp.task_modules`` from the Jupyter configuration files the server reads.

    Files named ``jupyter_{server,lab,notebook,tasks}_config`` (``.json``, ``.py``, and the
    ``.d/*.json`` folders) in every directory of ``jupyter --paths``' config path, the
    highest-priority directory winning, as in Jupyter. A file that fails to load is skipped
    with a warning.
    """
    from jupyter_core.paths import jupyter_config_path
    from traitlets.config.loader import Config, JSONFileConfigLoader, PyFileConfigLoader

    config = Config()
    for directory in reversed(jupyter_config_path()):  # lowest priority first
        for base in CONFIG_FILES:
            folder = Path(directory, base + ".d")
            files = sorted(folder.glob("*.json")) if folder.is_dir() else []
            files += [Path(directory, base + ext) for ext in (".json", ".py")]
            for path in files:
                if not path.is_file():
                    continue
                loader = PyFileConfigLoader if path.suffix == ".py" else JSONFileConfigLoader
                try:
                    config.merge(loader(path.name, str(path.parent)).load_config())
                except Exception as exc:
                    print(f"warning: skipping Jupyter config file {path}: {exc}",
                          file=sys.stderr)
    app = config.get("JupyterTasksApp", {})
    modules = app.get("task_modules", []) if hasattr(app, "get") else []
    if isinstance(modules, str):
        modules = modules.split(",")
    return [str(m).strip() for m in modules if str(m).strip()]


def _load_modules(args: argparse.Namespace) -> None:
    """The server's task modules (configuration, env, entry points) and ``--modules``.

    Modules named on the command line must import; a configured one that does not
    (e.g. a relative ``.py`` path meant for the server's directory) is a warning.
    """
    load_task_modules(getattr(args, "modules", None) or [])  # also the env and entry points
    for spec in configured_task_modules():
        try:
            _import_module_or_path(spec)
        except Exception as exc:
            print(f"warning: task module {spec} (JupyterTasksApp.task_modules) not "
                  f"imported: {exc}", file=sys.stderr)


# ---------------------------------------------------------------------- task ids


async def _resolve(store: Store, ref: str) -> str:
    """The one task id ``ref`` names: a full id, or the start or end of exactly one."""
    ref = ref.strip().lstrip("…").lower()
    if not ref:
        raise CliError("a task id is required")
    if await store.get_task(ref) is not None:
        return ref

    def find(conn: Any) -> list[tuple[str, str, str]]:
        return conn.execute(
            "SELECT id, status, coalesce(label, name, '') FROM tasks "
            "WHERE (id >= ? AND id < ?) OR substr(id, -?) = ? ORDER BY id DESC LIMIT 11",
            (ref, ref + "\U0010ffff", len(ref), ref)).fetchall()

    rows = await store._read(find)
    if len(rows) == 1:
        return rows[0][0]
    if not rows and len(ref) == 32:
        raise CliError(f"no task with id {ref}")
    if not rows:
        raise CliError(f"no task matches {ref!r} (give a task id, or its start or end; "
                       "`jupyter tasks list` shows them)")
    lines = [f"  {task_id}  {status}  {label[:50]}" for task_id, status, label in rows[:10]]
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
    p = task.progress or {}
    if p.get("total"):
        return f"{100 * (p.get('current') or 0) / p['total']:.0f}%"
    return str(p.get("current", "")) if p else ""


def _print_table(tasks: Sequence[Task], args: argparse.Namespace) -> None:
    rows = [("ID", "STATUS", "KIND", "LABEL", "PROGRESS", "TIME", "OWNER")]
    for t in tasks:
        rows.append((short_id(t.id, args), t.status, t.kind, (t.label or "")[:40],
                     _progress(t), _age(t), t.owner or ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = json.loads(args.params) if args.params else {}
    for item in args.param or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--param takes key=value, not {item!r}")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value  # a bare word is a string
    return params


async def _cmd_list(args: argparse.Namespace) -> int:
    async with _read_only(args) as store:
        tasks = await store.list_tasks(statuses=args.status, name=args.name,
                                       queue=args.queue, key_prefix=args.key_prefix,
                                       limit=args.limit)
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
    if args.name:
        spec: dict[str, Any] = {"name": args.name, "params": _params(args)}
    elif args.command:
        spec = {"command": args.command}
    elif args.notebook:
        spec = {"notebook": args.notebook, "parameters": _params(args)}
    else:
        spec = {"code": args.code, "input_data": json.loads(args.input) if args.input else None}
    options = dict(label=args.label, task_key=args.task_key,
                   idempotency_key=args.idempotency_key, queue=args.queue,
                   priority=args.priority, timeout=args.timeout, max_retries=args.max_retries)
    async with _manager(args, create=True) as m:  # a first start may well be a submit
        try:
            task = await m.submit_spec(spec, mode="job", **options)
        except UnknownTask as exc:
            served = await _served_by_a_server(m, args.queue)
            if served is not None:
                # the server registered it (e.g. from its command line): its workers
                # know the task and check the params when they run it
                print(f"note: {args.name!r} is not registered in this shell; queued for "
                      f"the server's workers ({served})", file=sys.stderr)
                params = spec["params"]
                task = await m._create_and_start(
                    "function", "job", {"name": args.name, "params": params},
                    name=args.name, label=args.label or args.name, params=params, local=None,
                    options={k: v for k, v in options.items() if k != "label"})
                return _print_submitted(args, await m.wait(task.id) if args.wait else task)
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
        if args.wait:
            task = await m.wait(task.id)
    return _print_submitted(args, task)


async def _served_by_a_server(m: TaskManager, queue: str) -> str | None:
    """A live server process (recent heartbeat) serving ``queue``, described; else None."""
    now = time.time()
    for w in await m.store.list_workers():
        if w.kind == "server" and queue in (w.queues or []) and now - w.heartbeat_at < 120:
            return f"pid {w.pid} on {w.host}"
    return None


def _print_submitted(args: argparse.Namespace, task: Task) -> int:
    print(json.dumps(task.to_json(), indent=2) if args.json or args.wait
          else short_id(task.id, args))
    return 0 if task.status in (TaskStatus.SUCCEEDED.value, TaskStatus.QUEUED.value,
                                TaskStatus.RUNNING.value) else 1


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
    print(short_id(task.id, args))
    return 0


async def _cmd_logs(args: argparse.Namespace) -> int:
    async with _read_only(args) as store:
        args.id = await _resolve(store, args.id)
        after = 0
        while True:
            entries = await store.get_logs(args.id, after=after)
            for entry in entries:
                stream = sys.stderr if entry.stream == "stderr" else sys.stdout
                stream.write(entry.text)
                after = entry.seq
            sys.stdout.flush()
            if not args.follow:
                return 0
            task = await store.require_task(args.id)
            if task.is_terminal and not entries:
                return 0
            await asyncio.sleep(0.25)


async def _cmd_doctor(args: argparse.Namespace) -> int:
    report = dbfile.inspect(args.db or default_db_path())
    if args.json:
        print(json.dumps({**dataclasses.asdict(report), "path": str(report.path),
                          "latest_version": LATEST_VERSION, "ok": report.ok}, indent=2))
        return 0 if report.ok else 1
    wal = "" if report.wal_size is None else f"; WAL {report.wal_size:,} bytes"
    print(f"database: {report.path}" + (f" ({report.size:,} bytes{wal})" if report.exists
                                         else " (missing)"))
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


async def _cmd_worker(args: argparse.Namespace) -> int:
    from .worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    await run_worker(args.db, queues=args.queue or ["default"], concurrency=args.concurrency,
                     task_modules=[*(args.modules or []), *configured_task_modules()])
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


def _cmd_lab(argv: Sequence[str]) -> int:
    command = lab_argv(argv)
    exe = shutil.which("jupyter-lab") or shutil.which("jupyter")
    if exe is None:
        print("error: jupyter lab is not installed (pip install jupyterlab)", file=sys.stderr)
        return 2
    if exe.endswith("jupyter-lab"):
        command = [exe, *command[2:]]
    sys.stdout.flush()
    os.execvp(command[0], command)  # the server replaces this process: signals reach it
    return 0  # pragma: no cover


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``jupyter tasks``."""
    parser = argparse.ArgumentParser(prog="jupyter tasks",
                                     description="Inspect and steer jupyter-tasks.")
    parser.add_argument("--db", help="database file (default: $JUPYTER_TASKS_DB or the "
                                     "Jupyter data dir)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    full = argparse.ArgumentParser(add_help=False)
    full.add_argument("--full", action="store_true",
                      help=f"print whole task ids (default: their last {SHORT_ID} characters)")

    p = sub.add_parser("list", help="list tasks, newest first", parents=[full])
    p.add_argument("--status", action="append", choices=[s.value for s in TaskStatus])
    p.add_argument("--name")
    p.add_argument("--queue")
    p.add_argument("--key-prefix")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_cmd_list)

    p = sub.add_parser("show", help="one task in full, as JSON")
    p.add_argument("id", help="task id, or its start or end")
    p.set_defaults(run=_cmd_show)

    p = sub.add_parser("submit", help="submit a durable job", parents=[full])
    work = p.add_mutually_exclusive_group(required=True)
    work.add_argument("--name", help="registered task name")
    work.add_argument("--notebook", help="notebook path")
    work.add_argument("--code", help="Python source")
    work.add_argument("--command", nargs=argparse.REMAINDER, help="argv (put it last)")
    p.add_argument("--param", action="append", help="key=value (value parsed as JSON if it can)")
    p.add_argument("--params", help="all parameters as a JSON object")
    p.add_argument("--input", help="input data (JSON) for --code")
    p.add_argument("--modules", action="append", help="task module to import (name or .py)")
    p.add_argument("--label")
    p.add_argument("--task-key")
    p.add_argument("--idempotency-key")
    p.add_argument("--queue", default="default")
    p.add_argument("--priority", type=int, default=0)
    p.add_argument("--timeout", type=float)
    p.add_argument("--max-retries", type=int)
    p.add_argument("--wait", action="store_true", help="wait for the end and print the task")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_cmd_submit)

    for name, fn, text in (("cancel", _cmd_cancel, "cancel a task"),
                           ("rerun", _cmd_rerun, "run a task's spec again")):
        p = sub.add_parser(name, help=text, parents=[full])
        p.add_argument("id", help="task id, or its start or end")
        p.set_defaults(run=fn)
        if name == "rerun":
            p.add_argument("--modules", action="append",
                           help="task module to import (name or .py)")

    p = sub.add_parser("logs", help="print a task's log")
    p.add_argument("id", help="task id, or its start or end")
    p.add_argument("-f", "--follow", action="store_true")
    p.set_defaults(run=_cmd_logs)

    p = sub.add_parser("doctor", help="check the database file (read-only) and say how to "
                                      "recover it")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_cmd_doctor)

    p = sub.add_parser("worker", help="run queued jobs until stopped")
    p.add_argument("--queue", action="append", help="queue to serve (repeatable)")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--modules", action="append", help="task module to import (name or .py)")
    p.set_defaults(run=_cmd_worker)

    p = sub.add_parser("lab", help="start JupyterLab (adds --allow-root when run as root)",
                       add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(run=None)

    p = sub.add_parser("dashboard", help="the terminal dashboard", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(run=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``jupyter-tasks`` (``jupyter tasks``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["dashboard"]:
        from jupyter_tasks_dashboard.app import main as dashboard_main

        return dashboard_main(argv[1:])
    if argv[:1] == ["lab"]:
        return _cmd_lab(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(args.run(args))
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except JupyterTasksError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        for problem in exc.errors:
            print(f"  {problem.get('field')}: {problem.get('message')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
