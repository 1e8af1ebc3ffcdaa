"""REST handlers of schedules and of notebook parameters: auth, parse, one call, answer."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..exceptions import InvalidRequest
from ..notebook_params import notebook_parameters
from ..scheduler import Scheduler, preview
from ..schedules import Schedule, ScheduleNotFound
from .auth import (
    OTHERS,
    check_may_call_back,
    check_may_read_files,
    check_may_run,
    may,
    owners_filter,
    work_resource,
)
from .handlers import TasksHandler, hidden_under, inside_root, parse_job_body, reject
from .problems import Problem

SCHEDULE_ID = r"(?P<schedule_id>[0-9a-f]{32})"


class ScheduleHandler(TasksHandler):
    """Common parts: the scheduler, the job parser under the server root, access checks."""

    @property
    def scheduler(self) -> Scheduler:
        return self.tasks_app.scheduler

    @property
    def root(self) -> str:
        return self.root_dir

    def parse_job(self, job: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The job body checked as ``POST /api/tasks`` checks it; fields named ``job.<field>``."""
        try:
            spec, options = parse_job_body(job, self.root,
                                           allow_hidden=self.contents_manager.allow_hidden)
        except Problem as exc:
            errors = [{**e, "field": f"job.{e['field']}"} for e in exc.errors]
            raise Problem(422, f"invalid job: {exc.detail}", title="Invalid request",
                          errors=errors) from None
        url = options.get("callback_url")
        if url is not None:
            # on the allow-list as a submit's: stored unchecked, it was refused at each firing
            try:
                self.manager.check_callback_url(url)
            except InvalidRequest as exc:
                raise Problem(422, f"invalid job: {exc.message}", title="Invalid request",
                              errors=[{"field": "job.callback_url", "message": exc.message}]
                              ) from None
        return spec, options

    async def visible_schedule(self, schedule_id: str, action: str = "read") -> Schedule:
        """The schedule if the user may ``action`` it; 404 if they may not see it, else 403."""
        schedule = await self.manager.store.require_schedule(schedule_id)
        if schedule.owner == self.user_name or await may(self, action, OTHERS):
            return schedule
        if action != "read" and await may(self, "read", OTHERS):
            raise Problem(403, f"you may not {action} schedules of other users")
        raise ScheduleNotFound(f"no schedule with id {schedule_id}")

    async def check_may_fire(self, schedule: Schedule, job: Any = None) -> None:
        """403 unless the user may run the work the schedule's ``job`` (or its own) runs.

        As a rerun is: running a schedule now, resuming it or changing it makes its job
        run, by whoever owns it, so who does that needs the work's permission too.
        """
        await check_may_run(self, *work_resource(schedule.job if job is None else job))


class ScheduleCollectionHandler(ScheduleHandler):
    """``GET /api/tasks/schedules`` (list) and ``POST`` (create)."""

    @web.authenticated
    @authorized("read")
    async def get(self) -> None:
        # the list takes no parameters: '?limit=0' or a filter was read as none before
        self.only_query()
        schedules = await self.manager.store.list_schedules(await owners_filter(self))
        self.answer(200, {"schedules": [s.to_json() for s in schedules]})

    @web.authenticated
    @authorized("execute")
    async def post(self) -> None:
        self.only_query()
        body = self.json_object()
        await check_may_run(self, *work_resource(body.get("job")))
        await check_may_call_back(self, _callback_of(body.get("job")))
        schedule = await self.scheduler.create(body, owner=self.user_name,
                                               parse_job=self.parse_job)
        self.answer(201, schedule.to_json(), Location=self.location("schedules", schedule.id))


class ScheduleItemHandler(ScheduleHandler):
    """``GET``, ``PATCH`` and ``DELETE /api/tasks/schedules/{id}``."""

    @web.authenticated
    @authorized("read")
    async def get(self, schedule_id: str) -> None:
        self.only_query()
        self.answer(200, (await self.visible_schedule(schedule_id)).to_json())

    @web.authenticated
    @authorized("write")
    async def patch(self, schedule_id: str) -> None:
        self.only_query()
        body = self.json_object()
        current = await self.visible_schedule(schedule_id, "write")
        if body.get("job") is not None:
            await self.check_may_fire(current, body["job"])
            await check_may_call_back(self, _callback_of(body["job"]))
        if {"cron", "timezone"} & body.keys() or body.get("paused") is False:
            await self.check_may_fire(current)  # its job runs on new times
        schedule = await self.scheduler.update(schedule_id, body, parse_job=self.parse_job)
        self.answer(200, schedule.to_json())

    @web.authenticated
    @authorized("write")
    async def delete(self, schedule_id: str) -> None:
        self.only_query()
        await self.visible_schedule(schedule_id, "write")
        await self.scheduler.delete(schedule_id)
        self.set_status(204)
        self.finish()


class ScheduleActionHandler(ScheduleHandler):
    """``POST /api/tasks/schedules/{id}/pause|resume|run``."""

    @web.authenticated
    @authorized("write")
    async def post(self, schedule_id: str, action: str) -> None:
        self.only_query()
        # a run takes its schedule's job as it is (a PATCH changes it)
        self.takes_no_body(f"a schedule's {action}")
        schedule = await self.visible_schedule(schedule_id, "write")
        if action != "pause":
            await self.check_may_fire(schedule)
        if action == "run":
            # the run its job's task_key already had, if any, is answered as a submit's is
            self.answer_created(await self.scheduler.run_now(schedule_id))
            return
        schedule = await (self.scheduler.pause(schedule_id) if action == "pause"
                          else self.scheduler.resume(schedule_id))
        self.answer(200, schedule.to_json())


class SchedulePreviewHandler(ScheduleHandler):
    """``POST /api/tasks/schedules/preview``: the next firing times of a cron rule."""

    @web.authenticated
    @authorized("read")
    async def post(self) -> None:
        self.only_query()
        body = self.json_object()
        reject([{"field": k, "message": "unknown field"} for k in body
                 if k not in ("cron", "timezone", "count")])
        # an empty time zone refused, as a schedule's is
        self.answer(200, {"next_runs": preview(body.get("cron"), body.get("timezone", "UTC"),
                                               body.get("count", 5))})


class NotebookParametersHandler(ScheduleHandler):
    """``GET /api/tasks/notebook-parameters?path=REL.ipynb``: the ``parameters`` cell's names."""

    @web.authenticated
    @authorized("read")
    async def get(self) -> None:
        self.only_query("path")
        await check_may_read_files(self, "notebooks")
        # as sent: get_argument strips spaces, and " a.ipynb" named a.ipynb here while a
        # submit of it says no such notebook
        relative = self.exact_argument("path") or ""
        if not relative:
            reject([{"field": "path", "message": "a notebook path is required"}],
                    "invalid query parameter")
        path = inside_root(self.root, relative, "path", "invalid query parameter")
        # what the server's contents API would not serve either: a hidden file, or one in
        # a hidden folder, unless the server allows them (ContentsManager.allow_hidden);
        # judged by the name given, as that API and a submit judge it (a link to a hidden
        # folder is served by its own name)
        hidden = not self.contents_manager.allow_hidden and hidden_under(self.root, relative)
        if hidden or not os.path.isfile(path):
            raise Problem(404, f"no notebook at {relative!r}")
        # up to 50 MB of JSON: read and parsed beside the loop, which serves everyone else
        found = await asyncio.to_thread(notebook_parameters, path)
        self.answer(200, {"path": relative, **found})


def schedule_handlers() -> list[tuple[str, type]]:
    """The schedule routes, to go before the catch-all 404 (and before ``/api/tasks/{id}``)."""
    return [
        (r"/api/tasks/schedules", ScheduleCollectionHandler),
        (r"/api/tasks/schedules/preview", SchedulePreviewHandler),
        (rf"/api/tasks/schedules/{SCHEDULE_ID}", ScheduleItemHandler),
        (rf"/api/tasks/schedules/{SCHEDULE_ID}/(?P<action>pause|resume|run)",
         ScheduleActionHandler),
        (r"/api/tasks/notebook-parameters", NotebookParametersHandler),
    ]


def _callback_of(job: Any) -> Any:
    """A job body's ``callback_url`` (None when the body is no object: its check says so)."""
    return job.get("callback_url") if isinstance(job, dict) else None
