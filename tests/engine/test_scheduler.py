"""The scheduler loop on a real database with an injected clock: no double, no missed firing."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from jupyter_tasks import TaskManager
from jupyter_tasks.exceptions import InvalidRequest, ValueNotStorable
from jupyter_tasks.registry import Registry
from jupyter_tasks.scheduler import Scheduler
from jupyter_tasks.server.handlers import parse_job_body

# a Monday, on the minute
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc).timestamp()
JOB = {"command": ["true"], "queue": "nowhere"}


class FakeClock:
    """Simulated time: ``sleep`` moves it instead of waiting."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def parse(job: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return parse_job_body(job, os.getcwd())


def firings(db_path: Path) -> list[tuple[str, str]]:
    """(schedule_id, idempotency_key) of every task a schedule fired, from the file itself."""
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT schedule_id, idempotency_key FROM tasks "
                            "WHERE schedule_id IS NOT NULL").fetchall()


@pytest.fixture
async def manager(db_path: Path):
    # no queues: fired jobs stay queued, the test counts them
    async with TaskManager(db_path, runs_background=False, make_default=False) as m:
        yield m


async def test_100_schedules_each_minute_for_30_minutes(manager: TaskManager,
                                                        db_path: Path) -> None:
    clock = FakeClock(T0 - 0.5)
    scheduler = Scheduler(manager, clock=clock, sleep=clock.sleep)
    ids = [(await scheduler.create({"name": f"s{i}", "cron": "* * * * *", "job": JOB},
                                   owner="me", parse_job=parse)).id for i in range(100)]
    end = T0 + 30 * 60 - 1  # due times T0, T0+60, ..., T0+29*60

    async def sleep(seconds: float) -> None:
        await clock.sleep(seconds)
        if clock.now >= end:
            scheduler.request_stop()

    scheduler.sleep = sleep
    await scheduler.run()
    fired = firings(db_path)
    per_schedule = Counter(sid for sid, _ in fired)
    assert len(fired) == 100 * 30
    assert set(per_schedule) == set(ids) and set(per_schedule.values()) == {30}
    assert len(set(fired)) == len(fired), "a due time fired twice"
    expected_keys = {f"schedule:{sid}:{int(T0) + 60 * m}" for sid in ids for m in range(30)}
    assert {key for _, key in fired} == expected_keys, "a due time was missed"
    # the loop slept until the next due time, never more than a second, never spinning
    assert max(clock.slept) <= 1.0
    assert len(clock.slept) <= 30 * 60 + 30 * 2


async def test_two_loops_sharing_the_database_never_fire_twice(db_path: Path) -> None:
    clock = FakeClock(T0 - 0.5)
    async with TaskManager(db_path, runs_background=False, make_default=False) as a, \
            TaskManager(db_path, runs_background=False, make_default=False) as b:
        first, second = (Scheduler(m, clock=clock) for m in (a, b))
        for i in range(20):
            await first.create({"name": f"s{i}", "cron": "* * * * *", "job": JOB},
                               owner="me", parse_job=parse)
        made = 0
        while clock.now < T0 + 10 * 60 - 1:
            # both see the same due schedules at the same instant and race to fire them
            results = await asyncio.gather(first.tick(), second.tick())
            made += sum(len(r) for r in results)
            clock.now += 1.0
    fired = firings(db_path)
    assert len(fired) == len(set(fired)) == 20 * 10
    assert made == 20 * 10


async def test_a_crash_between_submit_and_advance_fires_once(manager: TaskManager,
                                                             db_path: Path) -> None:
    clock = FakeClock(T0 - 0.5)
    scheduler = Scheduler(manager, clock=clock)
    schedule = await scheduler.create({"name": "n", "cron": "* * * * *", "job": JOB},
                                      owner="me", parse_job=parse)
    clock.now = T0 + 0.2
    await scheduler.fire(schedule, T0)  # submitted, then "crashed" before the compare-and-set
    assert await scheduler.tick() == []  # the same key again: deduplicated
    assert len(firings(db_path)) == 1
    after = await manager.store.require_schedule(schedule.id)
    assert after.next_run_at == T0 + 60 and after.last_task_id is not None


@pytest.mark.parametrize(("catch_up", "expected"), [("once", 1), ("skip", 0)])
async def test_an_outage_of_three_hours(manager: TaskManager, db_path: Path, catch_up: str,
                                        expected: int) -> None:
    clock = FakeClock(T0 - 0.5)
    scheduler = Scheduler(manager, clock=clock)
    schedule = await scheduler.create(
        {"name": "n", "cron": "*/5 * * * *", "catch_up": catch_up, "job": JOB},
        owner="me", parse_job=parse)
    # nothing ran from T0 - 0.5 until now; the newest due time (T0 + 3 h) is 150 s late,
    # past the grace, so even it was missed
    clock.now = T0 + 3 * 3600 + 150
    await scheduler.tick()
    await scheduler.tick()
    fired = firings(db_path)
    assert len(fired) == expected
    if expected:  # the newest missed due time, once
        assert fired[0][1] == f"schedule:{schedule.id}:{int(T0) + 3 * 3600}"
    after = await manager.store.require_schedule(schedule.id)
    assert after.next_run_at == T0 + 3 * 3600 + 300  # no burst: the next one after now


async def test_pause_resume_and_edit_recompute_next_run(manager: TaskManager,
                                                        db_path: Path) -> None:
    clock = FakeClock(T0 + 10)
    scheduler = Scheduler(manager, clock=clock)
    schedule = await scheduler.create({"name": "n", "cron": "0 * * * *", "job": JOB},
                                      owner="me", parse_job=parse)
    assert schedule.next_run_at == T0 + 3600
    assert len(schedule.to_json()["next_runs"]) == 5
    paused = await scheduler.pause(schedule.id)
    assert paused.paused and paused.next_run_at is None
    assert paused.to_json()["next_runs"] == []
    clock.now = T0 + 2 * 3600 + 5
    assert await scheduler.tick() == []  # paused: nothing fires
    resumed = await scheduler.resume(schedule.id)
    assert resumed.next_run_at == T0 + 3 * 3600  # from now, missed ones not run
    edited = await scheduler.update(schedule.id, {"cron": "30 * * * *",
                                                  "timezone": "Asia/Kolkata"})
    # :30 in UTC+05:30 is :00 UTC; the next after T0+2h+5s is T0+3h
    assert edited.next_run_at == T0 + 3 * 3600
    renamed = await scheduler.update(schedule.id, {"name": "renamed"})
    assert renamed.next_run_at == edited.next_run_at and renamed.name == "renamed"
    assert firings(db_path) == []


async def test_an_edit_that_keeps_the_timing_keeps_a_due_firing(manager: TaskManager,
                                                                db_path: Path) -> None:
    clock = FakeClock(T0 - 0.5)
    scheduler = Scheduler(manager, clock=clock)
    schedule = await scheduler.create({"name": "n", "cron": "0 * * * *", "job": JOB},
                                      owner="me", parse_job=parse)
    # due at T0, not fired yet (the loop held up, or no process running): the edit
    # dialog sends the rule as it was with a new name, a CLI resumes the running schedule
    clock.now = T0 + 20
    await scheduler.update(schedule.id, {"name": "renamed", "cron": "0 * * * *",
                                         "timezone": "UTC", "paused": False})
    await scheduler.resume(schedule.id)
    assert (await manager.store.require_schedule(schedule.id)).next_run_at == T0
    await scheduler.tick()
    assert [key for _, key in firings(db_path)] == [f"schedule:{schedule.id}:{int(T0)}"]


async def test_bad_definitions_are_refused_and_nothing_is_written(manager: TaskManager) -> None:
    scheduler = Scheduler(manager)
    for body, field in [({"name": "n", "cron": "61 * * * *", "job": JOB}, "cron"),
                        ({"name": "n", "cron": "* * * * *", "timezone": "Mars/Base",
                          "job": JOB}, "timezone"),
                        ({"name": "n", "cron": "* * * * *", "job": JOB, "extra": 1}, "extra"),
                        ({"name": "n", "cron": "* * * * *", "catch_up": "all",
                          "job": JOB}, "catch_up"),
                        ({"name": "n", "cron": "* * * * *", "job": {**JOB,
                          "idempotency_key": "k"}}, "job.idempotency_key")]:
        with pytest.raises(InvalidRequest) as info:
            await scheduler.create(body, owner="me", parse_job=parse)
        assert field in {e["field"] for e in info.value.errors}
    assert await manager.store.list_schedules() == []


async def test_a_job_value_no_firing_could_store_is_refused_when_saved(
        manager: TaskManager) -> None:
    # `jupyter tasks schedule add nb.ipynb -p alpha nan` saved a schedule whose every
    # firing would be refused; `jupyter tasks run` refuses the same line at once
    scheduler = Scheduler(manager)
    job = {"code": "print(1)", "input_data": {"alpha": float("nan")}, "queue": "nowhere"}
    with pytest.raises(ValueNotStorable) as info:
        await scheduler.create({"name": "n", "cron": "* * * * *", "job": job}, owner="me",
                               parse_job=parse)
    assert "alpha" in str(info.value)
    assert await manager.store.list_schedules() == []


async def test_run_now_links_the_task_and_keeps_next_run(manager: TaskManager) -> None:
    clock = FakeClock(T0 + 10)
    scheduler = Scheduler(manager, clock=clock)
    schedule = await scheduler.create({"name": "nightly", "cron": "0 3 * * *", "job": JOB},
                                      owner="me", parse_job=parse)
    task = await scheduler.run_now(schedule.id)
    assert (task.schedule_id, task.label, task.relationship, task.mode) == (
        schedule.id, "nightly", "scheduled", "job")
    after = await manager.store.require_schedule(schedule.id)
    assert after.next_run_at == schedule.next_run_at
    assert (after.last_task_id, after.last_status) == (task.id, "queued")
    listed = await manager.store.list_tasks(schedule_id=schedule.id)
    assert [t.id for t in listed] == [task.id]
    await scheduler.delete(schedule.id)
    assert (await manager.get(task.id)).schedule_id == schedule.id  # kept as history


async def test_a_database_moved_away_is_said_once_not_every_tick(
        manager: TaskManager, db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # before: the scheduler logged a full StoreUnavailable traceback every second, with
    # no end (and so did the heartbeat, the claims, the reaper, the event reader)
    clock = FakeClock(T0)
    scheduler = Scheduler(manager, clock=clock, sleep=clock.sleep)
    await scheduler.create({"name": "s", "cron": "* * * * *", "job": JOB}, owner="me",
                           parse_job=parse)
    os.rename(db_path, db_path.with_name("moved.db"))
    ticks = 0

    async def sleep(seconds: float) -> None:
        nonlocal ticks
        ticks += 1
        await clock.sleep(seconds)
        if ticks == 200:  # past the first firing, due again at every tick since
            scheduler.request_stop()

    scheduler.sleep = sleep
    await scheduler.run()
    said = [r for r in caplog.records if r.getMessage().startswith("firing schedules failed")]
    assert len(said) == 1, [r.getMessage() for r in said]
    # the store's own word, in one line: its traceback added nothing
    assert "was deleted or moved" in said[0].getMessage() and said[0].exc_info is None


def report(day: str = "today") -> str:
    return f"report of {day}"


async def test_a_process_without_the_task_does_not_lose_its_firing(db_path: Path) -> None:
    # a server given the task module and a worker started without it share the database:
    # both fire, and the worker's loop may well see the due time first
    knowing = Registry()
    knowing.register("report", report)
    clock = FakeClock(T0 - 0.5)
    async with TaskManager(db_path, registry=knowing, worker_kind="worker",
                           queues={"reports": 1}, make_default=False) as server, \
            TaskManager(db_path, registry=Registry(), runs_background=False,
                        make_default=False) as worker:
        schedule = await Scheduler(server, clock=clock).create(
            {"name": "r", "cron": "* * * * *",
             "job": {"name": "report", "params": {"day": "monday"}, "queue": "reports"}},
            owner="me", parse_job=parse)
        clock.now = T0 + 0.2
        made = await Scheduler(worker, clock=clock).tick()
        assert await Scheduler(server, clock=clock).tick() == []  # it fired: not again
        assert [key for _, key in firings(db_path)] == [f"schedule:{schedule.id}:{int(T0)}"]
        assert [t.relationship for t in made] == ["scheduled"]
        done = await server.wait(made[0].id, timeout=30)
        assert (done.status, done.result, done.label) == ("succeeded", "report of monday", "r")
        after = await server.store.require_schedule(schedule.id)
        assert after.next_run_at == T0 + 60 and after.last_task_id == made[0].id


async def test_a_schedule_this_process_cannot_read_leaves_the_others_firing(
        manager: TaskManager, db_path: Path) -> None:
    clock = FakeClock(T0 - 0.5)
    scheduler = Scheduler(manager, clock=clock)
    unreadable, other = [
        (await scheduler.create({"name": n, "cron": "* * * * *", "job": JOB}, owner="me",
                                parse_job=parse)).id for n in ("unreadable", "other")]
    # saved by a process whose tz database has a zone this one's lacks (a zone newer than
    # its tzdata): its row reads, its rule does not
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE schedules SET timezone = 'America/Newer_Than_Here', "
                     "next_run_at = ? WHERE id = ?", (T0 - 60, unreadable))
    clock.now = T0 + 0.2
    await scheduler.tick()
    await scheduler.tick()
    assert [sid for sid, _ in firings(db_path)] == [other]
    # the loop sleeps until the next due time it can fire, not 0 s over and over
    assert await scheduler.delay() == pytest.approx(1.0)
    listed = {s.id: s.to_json() for s in await manager.store.list_schedules()}
    assert listed[unreadable]["next_runs"] == [listed[unreadable]["next_run_at"]]


async def test_a_firing_that_cannot_be_submitted_is_a_failed_task_saying_why(
        db_path: Path) -> None:
    # before: only a warning in the log of each process; the schedule kept showing its
    # last run's status, and nothing anyone watches (the panel, the dashboard, the CLI)
    # said its job no longer ran
    knowing = Registry()
    knowing.register("report", report)
    clock = FakeClock(T0 - 0.5)
    async with TaskManager(db_path, registry=knowing, runs_background=False,
                           make_default=False) as before:
        schedule = await Scheduler(before, clock=clock).create(
            {"name": "r", "cron": "* * * * *",
             "job": {"name": "report", "params": {"day": "monday"}, "queue": "reports"}},
            owner="me", parse_job=parse)
    # the task's module is gone from every process now on the database
    async with TaskManager(db_path, registry=Registry(), runs_background=False,
                           make_default=False) as after, \
            TaskManager(db_path, registry=Registry(), runs_background=False,
                        make_default=False) as other:
        with after.subscribe() as feed:
            clock.now = T0 + 0.2
            made = await Scheduler(after, clock=clock).tick()
            assert await Scheduler(other, clock=clock).tick() == []  # one task per firing
            (failed,) = made
            assert (failed.status, failed.schedule_id, failed.label) == (
                "failed", schedule.id, "r")
            assert failed.error["type"] == "UnknownTask"
            assert "could not fire" in failed.error["message"]
            assert "'report'" in failed.error["message"]
            event = await asyncio.wait_for(feed.get(), 30)
            assert (event.type, event.task_id) == ("task.failed", failed.id)
        assert [key for _, key in firings(db_path)] == [f"schedule:{schedule.id}:{int(T0)}"]
        kept = await after.store.require_schedule(schedule.id)
        listed = kept.to_json()
        assert listed["last_task_id"] == failed.id and listed["last_status"] == "failed"
        assert kept.next_run_at == T0 + 60  # the next firing tries again
