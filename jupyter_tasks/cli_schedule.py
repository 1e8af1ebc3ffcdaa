"""``jupyter tasks schedule add|list|pause|resume|rm|run``: schedules from the command line.

The job of ``add`` is given as ``run`` gives it (a notebook with papermill's ``-p``,
``-r``, ``-y``, ``-f``, ``-b``) or as ``--command ARGV...``, and is checked by the
same parser as ``POST /api/tasks`` (paths are relative to the current folder).
Firing is done by a running server or ``jupyter tasks worker`` on the database.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from typing import Any

from .cli_common import (
    CliError,
    cell_width,
    creating_database,
    pad,
    printable,
    queue_name,
    run_parameters,
    short_id,
)
from .manager import TaskManager, was_deduplicated
from .scheduler import Scheduler
from .schedules import CATCH_UP, Schedule


def add_schedule_parser(sub: Any, db: argparse.ArgumentParser) -> None:
    """Add ``schedule`` and its subcommands (each taking the ``db`` parent's ``--db`` too)
    to the ``jupyter tasks`` subparsers."""
    parser = sub.add_parser("schedule", help="run jobs on a cron schedule (add, list, pause, "
                                             "resume, rm, run)", parents=[db])
    actions = parser.add_subparsers(dest="schedule_cmd", required=True)

    p = actions.add_parser("add", help="add a schedule: a job and a cron rule", parents=[db],
                           description="NOTEBOOK with papermill's parameter flags, or "
                                       "--command ARGV... (put it last).")
    p.add_argument("--name", required=True, help="the schedule's name (its jobs' label)")
    p.add_argument("--cron", required=True,
                   help="five cron fields (minute hour day month weekday) or @daily etc.")
    p.add_argument("--tz", default="UTC", help="IANA time zone the rule is read in")
    p.add_argument("--catch-up", choices=CATCH_UP, default="once",
                   help="missed firings (no process was running): run the newest once, "
                        "or skip them")
    p.add_argument("--paused", action="store_true", help="add it paused")
    p.add_argument("notebook", metavar="NOTEBOOK", nargs="?", help="notebook path")
    p.add_argument("-p", "--parameters", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="a parameter, VALUE read as papermill does")
    p.add_argument("-r", "--parameters_raw", nargs=2, action="append",
                   metavar=("NAME", "VALUE"), help="a parameter whose VALUE stays text")
    p.add_argument("-f", "--parameters_file", action="append", metavar="FILE")
    p.add_argument("-y", "--parameters_yaml", action="append", metavar="YAML")
    p.add_argument("-b", "--parameters_base64", action="append", metavar="BASE64")
    p.add_argument("-k", "--kernel", help=argparse.SUPPRESS)
    p.add_argument("--command", nargs=argparse.REMAINDER, help="argv of a command job (last)")
    p.add_argument("--queue", default="default", metavar="Q", type=queue_name)
    p.add_argument("--timeout", type=float, metavar="S", help="seconds each run may take")
    p.add_argument("--memory-limit", type=int, metavar="MB")
    p.add_argument("--json", action="store_true", help="print the schedule as JSON")
    p.set_defaults(run=_cmd_add, inject_input_path=False, inject_output_path=False,
                   inject_paths=False, output=None)

    p = actions.add_parser("list", help="schedules, newest first", parents=[db])
    p.add_argument("--json", action="store_true")
    p.add_argument("--full", action="store_true", help="whole ids")
    p.set_defaults(run=_cmd_list)

    for name, fn, text in (("pause", _cmd_pause, "stop firing"),
                           ("resume", _cmd_resume, "fire again from the next due time"),
                           ("rm", _cmd_rm, "delete (the jobs it fired stay)"),
                           ("run", _cmd_run, "fire once now (the next due time stays)")):
        p = actions.add_parser(name, help=text, parents=[db])
        p.add_argument("schedule", help="schedule id (or its start or end) or name")
        p.add_argument("--full", action="store_true", help="whole ids")
        p.set_defaults(run=fn)


def _manager(args: argparse.Namespace, *, create: bool = False) -> TaskManager:
    # no worker: the CLI writes and leaves; servers and workers fire the schedules. Only
    # `add` may create the database: a mistyped --db made `list` show an empty table of
    # a new file
    return TaskManager(args.db, worker_kind="cli", origin={"type": "cli"},
                       runs_background=False, make_default=False, as_worker=False,
                       create_db=create)


def _job(args: argparse.Namespace) -> dict[str, Any]:
    """The job body (as POST /api/tasks takes it) of ``add``."""
    if bool(args.notebook) == bool(args.command):
        raise CliError("give a NOTEBOOK or --command ARGV... (one of them)")
    if args.command:
        job: dict[str, Any] = {"command": list(args.command)}
    else:
        job = {"notebook": args.notebook, "parameters": run_parameters(args)}
        if args.kernel:
            raise CliError("-k is not supported by schedules: the notebook's kernel is used")
    job["queue"] = args.queue
    if args.timeout is not None:
        job["timeout"] = args.timeout
    if args.memory_limit is not None:
        job["memory_limit_mb"] = args.memory_limit
    return job


def parse_job_here(job: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The job checked as the server checks a submitted one, paths under the current folder."""
    from .server.handlers import parse_job_body
    from .server.problems import Problem

    try:
        return parse_job_body(job, os.getcwd())
    except Problem as exc:
        # the server's words for a request; here the job is this command's options, and
        # its root the current folder
        raise CliError(exc.detail.replace("invalid request body: ", "invalid job: ", 1)
                       .replace("the server root", f"the current folder ({os.getcwd()})")
                       ) from None


async def _resolve(scheduler: Scheduler, ref: str) -> Schedule:
    """The one schedule ``ref`` names: its id, the start or end of it, or its name."""
    ref = ref.strip().lstrip("…")
    schedules = await scheduler.manager.store.list_schedules()
    whole_id = [s for s in schedules if s.id == ref]
    # a name and the short id `list` prints for another schedule are both meant as a
    # reference: the same text naming two schedules is ambiguous, not the name's
    found = whole_id or [s for s in schedules if s.name == ref or (
        ref and (s.id.startswith(ref.lower()) or s.id.endswith(ref.lower())))]
    if len(found) == 1:
        return found[0]
    if not found:
        raise CliError(f"no schedule matches {ref!r} (`jupyter tasks schedule list` "
                       "shows them)")
    # listed as a task's ambiguity is: a user who typed a name has no id to give more of
    lines = [f"  {s.id}  {printable(s.name)[:50]}  {s.cron}"
             f"{'  (paused)' if s.paused else ''}" for s in found]
    raise CliError(f"{ref!r} matches {len(found)} schedules; give one's id (or more of it):\n"
                   + "\n".join(lines))


def _local(iso_time: str | None) -> str:
    if not iso_time:
        return "-"
    moment = datetime.fromisoformat(iso_time.replace("Z", "+00:00")).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M %Z")


def _print(schedule: Schedule, args: argparse.Namespace) -> None:
    if getattr(args, "json", False):
        print(json.dumps(schedule.to_json(), indent=2))
    else:
        data = schedule.to_json()
        state = "paused" if schedule.paused else f"next {_local(data['next_run_at'])}"
        print(f"{short_id(schedule.id, args)}  {printable(schedule.name)}  ({state})")


async def _cmd_add(args: argparse.Namespace) -> int:
    job = _job(args)
    with creating_database(args.db):
        async with _manager(args, create=True) as manager:
            schedule = await Scheduler(manager).create(
                {"name": args.name, "cron": args.cron, "timezone": args.tz,
                 "catch_up": args.catch_up, "paused": args.paused, "job": job},
                owner=manager.owner, parse_job=parse_job_here)
    _print(schedule, args)
    return 0


async def _cmd_list(args: argparse.Namespace) -> int:
    async with _manager(args) as manager:
        schedules = await manager.store.list_schedules()
    if args.json:
        print(json.dumps([s.to_json() for s in schedules], indent=2))
        return 0
    rows = [("ID", "NAME", "CRON", "TZ", "NEXT RUN (LOCAL)", "LAST STATUS", "PAUSED")]
    for s in schedules:
        data = s.to_json()
        rows.append((short_id(s.id, args), printable(s.name), s.cron, s.timezone,
                     _local(data["next_run_at"]), s.last_status or "-",
                     "yes" if s.paused else "no"))
    widths = [max(cell_width(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = zip(row, widths, strict=True)
        print("  ".join(pad(str(cell), width) for cell, width in cells).rstrip())
    return 0


async def _act(args: argparse.Namespace, action: str) -> int:
    async with _manager(args) as manager:
        scheduler = Scheduler(manager)
        schedule = await _resolve(scheduler, args.schedule)
        if action == "rm":
            await scheduler.delete(schedule.id)
            print(f"deleted {short_id(schedule.id, args)}  {printable(schedule.name)}")
        elif action == "run":
            task = await scheduler.run_now(schedule.id)
            if was_deduplicated(task):  # its job's task_key has a run active: none queued
                print(f"not run now: its task key has a run {task.status} already",
                      file=sys.stderr)
            print(short_id(task.id, args))
        else:
            changed = await (scheduler.pause(schedule.id) if action == "pause"
                             else scheduler.resume(schedule.id))
            _print(changed, args)
    return 0


async def _cmd_pause(args: argparse.Namespace) -> int:
    return await _act(args, "pause")


async def _cmd_resume(args: argparse.Namespace) -> int:
    return await _act(args, "resume")


async def _cmd_rm(args: argparse.Namespace) -> int:
    return await _act(args, "rm")


async def _cmd_run(args: argparse.Namespace) -> int:
    return await _act(args, "run")
