"""Schedules at work: the operations the API and CLI call, and the loop that fires due schedules.

Any process with a ``TaskManager`` on the database may run a ``Scheduler`` loop
(the server extension and ``jupyter tasks worker`` do). A firing is made so that
two loops sharing the database never both fire, and a crash never loses one:

1. submit the job with the idempotency key ``schedule:<id>:<due time>``; the
   store's unique (owner, idempotency key) index lets one task exist per due time,
   a second submission gets the first task back;
2. move ``next_run_at`` with a compare-and-set on its old value.

A loop that loses the race in (1) gets the existing task; in (2) it changes
nothing. A crash between (1) and (2) leaves the schedule due, and the next tick
resubmits the same key: deduplicated, so the job still runs once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .engine.loop_failures import LoopFailures
from .exceptions import IdempotencyConflict, InvalidRequest, JupyterTasksError, UnknownTask
from .liveness import live_workers
from .manager import TaskManager, was_deduplicated
from .models import Task, TaskKind, TaskMode, new_task_id
from .schedules import (
    CronRule,
    Schedule,
    cron_problems,
    iso,
    plan_firing,
    schedule_problems,
)
from .values import check_input

log = logging.getLogger("jupyter_tasks.scheduler")

# (job body) -> (spec, options): the POST /api/tasks body parser, paths under a root
JobParser = Callable[[dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]]
# longest sleep of the loop: how soon it notices schedules edited by another process
MAX_SLEEP = 1.0
MAX_PREVIEW = 50


def _invalid(problems: list[dict[str, str]]) -> None:
    if problems:
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise InvalidRequest(f"invalid schedule: {summary}", errors=problems)


def preview(cron: Any, timezone: Any = "UTC", count: Any = 5,
            after: float | None = None) -> list[str]:
    """The next ``count`` firing times of a cron rule as ISO strings (InvalidRequest if bad)."""
    problems = cron_problems(cron, timezone)
    if not (isinstance(count, int) and not isinstance(count, bool) and 1 <= count <= MAX_PREVIEW):
        problems.append({"field": "count", "message": f"an integer from 1 to {MAX_PREVIEW}"})
    _invalid(problems)
    rule = CronRule(cron, timezone)
    return [iso(t) or "" for t in rule.next_times(time.time() if after is None else after, count)]


class Scheduler:
    """Creates, edits and fires the schedules of one manager's database."""

    def __init__(self, manager: TaskManager, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 max_sleep: float = MAX_SLEEP) -> None:
        self.manager = manager
        self.clock = clock
        self.sleep = sleep
        self.max_sleep = max_sleep
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        # schedules whose rule this process cannot read, said once each
        self._unreadable: set[str] = set()

    # ------------------------------------------------------------- operations

    async def create(self, body: Mapping[str, Any], *, owner: str | None,
                     parse_job: JobParser) -> Schedule:
        """A new schedule from an API body (``name, cron, timezone?, catch_up?, paused?, job``)."""
        body = dict(body)
        _invalid(schedule_problems(body, partial=False))
        spec, options = _parse(parse_job, body["job"])
        _check_spec(self.manager, spec)
        now = self.clock()
        timezone = body.get("timezone") or "UTC"
        paused = bool(body.get("paused", False))
        rule = CronRule(body["cron"], timezone)
        schedule = Schedule(
            id=new_task_id(), name=body["name"].strip(), owner=owner, cron=body["cron"].strip(),
            timezone=timezone, catch_up=body.get("catch_up") or "once", paused=paused,
            job=body["job"], spec=spec, options=options,
            next_run_at=None if paused else rule.next_after(now),
            last_run_at=None, last_task_id=None, created_at=now, updated_at=now)
        return await self.manager.store.create_schedule(schedule)

    async def update(self, schedule_id: str, body: Mapping[str, Any], *,
                     parse_job: JobParser | None = None) -> Schedule:
        """Edit some fields; ``next_run_at`` is recomputed from now when the timing changes."""
        body = {k: v for k, v in body.items()}
        current = await self.manager.store.require_schedule(schedule_id)
        problems = schedule_problems(body, partial=True)
        if not problems and ("cron" in body or "timezone" in body):
            # a new time zone is checked with the current expression, and the other way round
            problems = cron_problems(body.get("cron", current.cron),
                                     body.get("timezone", current.timezone))
        for key in ("name", "cron", "timezone", "catch_up", "paused", "job"):
            if key in body and body[key] is None:
                problems.append({"field": key, "message": "cannot be null"})
        _invalid(problems)
        changes: dict[str, Any] = {}
        if "name" in body:
            changes["name"] = body["name"].strip()
        for key in ("cron", "timezone", "catch_up", "paused"):
            if key in body:
                changes[key] = body[key].strip() if key == "cron" else body[key]
        if "job" in body:
            if parse_job is None:
                raise InvalidRequest("the job cannot be changed here",
                                     errors=[{"field": "job", "message": "not editable here"}])
            changes["spec"], changes["options"] = _parse(parse_job, body["job"])
            _check_spec(self.manager, changes["spec"])
            changes["job"] = body["job"]
        # only a timing that changes: an edit form sends the rule as it was, a resume may
        # reach a running schedule, and recomputed from now they dropped a due time not
        # fired yet
        if any(key in changes and changes[key] != getattr(current, key)
               for key in ("cron", "timezone", "paused")):
            paused = changes.get("paused", current.paused)
            rule = CronRule(changes.get("cron", current.cron),
                            changes.get("timezone", current.timezone))
            changes["next_run_at"] = None if paused else rule.next_after(self.clock())
        return await self.manager.store.update_schedule(schedule_id, changes)

    async def pause(self, schedule_id: str) -> Schedule:
        """Stop firing (``next_run_at`` becomes null)."""
        return await self.update(schedule_id, {"paused": True})

    async def resume(self, schedule_id: str) -> Schedule:
        """Fire again from the next due time after now (firings missed while paused are not run)."""
        return await self.update(schedule_id, {"paused": False})

    async def delete(self, schedule_id: str) -> Schedule:
        """Delete a schedule; the tasks it fired stay, their ``schedule_id`` kept as history."""
        return await self.manager.store.delete_schedule(schedule_id)

    async def run_now(self, schedule_id: str) -> Task:
        """Fire once now, outside the rule: ``next_run_at`` does not move."""
        schedule = await self.manager.store.require_schedule(schedule_id)
        now = self.clock()
        task = await self.fire(schedule, None)
        if not was_deduplicated(task):  # the run its job's task_key had: nothing fired
            await self.manager.store.record_schedule_run(schedule.id, now, task.id)
        return task

    async def fire(self, schedule: Schedule, due_at: float | None) -> Task:
        """Submit the schedule's job as an ordinary job linked to it (keyed by ``due_at``)."""
        options: dict[str, Any] = {
            **schedule.options, "label": schedule.name, "owner": schedule.owner,
            "origin": {"type": "schedule", "schedule_id": schedule.id},
            "schedule_id": schedule.id,
        }
        if due_at is not None:
            options["idempotency_key"] = schedule.firing_key(due_at)
        try:
            return await self.manager.submit_spec(schedule.spec, mode=TaskMode.JOB.value,
                                                  relationship="scheduled", **options)
        except UnknownTask:
            # every process on the database fires, and one without the task's module (a
            # worker started without it) lost the firing for the processes that have it
            if not await self._others_have(schedule):
                raise
        # queued unchecked, as `jupyter tasks submit --name` queues it: the worker that
        # has the task checks the params when it runs the job
        name, params = schedule.spec["name"], dict(schedule.spec.get("params") or {})
        label = options.pop("label")
        return await self.manager.submission.create(
            TaskKind.FUNCTION.value, TaskMode.JOB.value, {"name": name, "params": params},
            name=name, label=label, params=params, local=None, options=options,
            relationship="scheduled")

    async def _record_refused(self, schedule: Schedule, due_at: float,
                              exc: JupyterTasksError) -> Task | None:
        """The firing at ``due_at`` as a task that failed at once, saying why (one per
        firing whichever processes meet the refusal; None if a task has the key already)."""
        options = {**schedule.options, "owner": schedule.owner, "schedule_id": schedule.id,
                   "origin": {"type": "schedule", "schedule_id": schedule.id},
                   "idempotency_key": schedule.firing_key(due_at)}
        try:
            return await self.manager.submission.record_refused(
                schedule.spec, exc, f"schedule {schedule.name!r} could not fire: {exc}",
                label=schedule.name, options=options)
        except IdempotencyConflict:  # this due time has a task already (another process's)
            return None

    async def _others_have(self, schedule: Schedule) -> bool:
        """True when a live process serving the job's queue has its registered task."""
        name, queue = schedule.spec.get("name"), schedule.options.get("queue") or "default"
        workers = live_workers(await self.manager.store.list_workers(),
                               self.manager.config.lease_seconds)
        return any(queue in (w.queues or []) and (w.tasks is None or name in w.tasks)
                   for w in workers if w.id != self.manager.worker_id)

    # ------------------------------------------------------------------ loop

    async def tick(self) -> list[Task]:
        """Fire every due schedule once; the tasks this call created (not deduplicated ones)."""
        now = self.clock()
        created: list[Task] = []
        for schedule in await self.manager.store.due_schedules(now):
            if schedule.next_run_at is None:
                continue
            try:
                plan = plan_firing(schedule.rule, schedule.next_run_at, now, schedule.catch_up)
            except InvalidRequest as exc:
                # saved by a process that reads its rule (a time zone newer than this
                # machine's tz database): left to that one; raised, it stopped the
                # firing of every schedule due after it, here, for good
                if schedule.id not in self._unreadable:
                    self._unreadable.add(schedule.id)
                    log.warning("schedule %s (%s) is not fired by this process: %s",
                                schedule.id, schedule.name, exc)
                continue
            task = None
            if plan.due_at is not None:
                try:
                    task = await self.fire(schedule, plan.due_at)
                except IdempotencyConflict:
                    pass  # this due time fired already, with the job as it was before an edit
                except JupyterTasksError as exc:
                    # e.g. the notebook was deleted: skip this firing rather than retry it
                    # every second; the schedule stays, its next firing tries again. The
                    # firing is a task that failed saying why: the schedule's last status,
                    # the panel's and the dashboard's failures show it
                    log.warning("schedule %s (%s) could not fire: %s", schedule.id,
                                schedule.name, exc)
                    task = await self._record_refused(schedule, plan.due_at, exc)
            # None when another loop moved it first: that loop recorded the same task
            await self.manager.store.advance_schedule(
                schedule.id, schedule.next_run_at, plan.next_run_at, plan.due_at,
                task.id if task is not None else None)
            if task is not None and not was_deduplicated(task):
                created.append(task)
        return created

    async def delay(self) -> float:
        """Seconds until the earliest due schedule, at most ``max_sleep``."""
        # not those it cannot fire: still due, they would make the loop spin
        due = await self.manager.store.next_schedule_due(exclude=self._unreadable)
        if due is None:
            return self.max_sleep
        return min(self.max_sleep, max(0.0, due - self.clock()))

    async def run(self) -> None:
        """Fire due schedules until ``stop``; sleeps until the next one is due (at most 1 s)."""
        failures = LoopFailures(log, "firing schedules failed")
        while not self._stopping:
            try:
                await self.tick()
                delay = await self.delay()
                failures.succeeded()
            except asyncio.CancelledError:
                raise
            except Exception:
                failures.failed()
                delay = self.max_sleep
            if self._stopping:
                break
            await self.sleep(delay)

    def start(self) -> Scheduler:
        """Run the loop as a task on the running event loop."""
        if self._loop_task is None or self._loop_task.done():
            self._stopping = False
            self._loop_task = asyncio.ensure_future(self.run())
        return self

    def request_stop(self) -> None:
        """Let the loop end after its current tick (for an injected sleep)."""
        self._stopping = True

    async def stop(self) -> None:
        """Stop the loop (a firing in progress is cancelled; its key makes a retry safe)."""
        self._stopping = True
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _parse(parse_job: JobParser, job: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(job, dict):
        _invalid([{"field": "job", "message": "an object: the body POST /api/tasks takes"}])
    return parse_job(job)


def _check_spec(manager: TaskManager, spec: Mapping[str, Any]) -> None:
    """What submit_spec checks beyond the body's shape, now rather than at the first firing."""
    # the values a job runs with follow the input rule (NaN, 1e999, too deep: refused),
    # or every firing would be refused in turn
    check_input(dict(spec), where="job")
    try:
        if "name" in spec:
            manager.registry.get_info(spec["name"]).validate(spec.get("params"))
        elif "notebook" in spec:
            from .jobs.notebook import validate_notebook_spec

            validate_notebook_spec(spec)
    except JupyterTasksError as exc:
        errors = [{**e, "field": f"job.{e.get('field') or ''}".rstrip(".")}
                  for e in getattr(exc, "errors", None) or []]
        raise InvalidRequest(f"invalid job: {exc}",
                             errors=errors or [{"field": "job", "message": str(exc)}]) from None
