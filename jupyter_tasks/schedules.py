"""When a schedule fires: cron expressions in a time zone, and the missed-firing policy.

Pure logic, no I/O: the store keeps schedule rows, the scheduler loop asks this
module what is due. The rules, stated once (the user guide repeats them):

* An expression has the five cron fields (minute hour day month weekday) or is
  one of ``@yearly @annually @monthly @weekly @daily @midnight @hourly``.
  Seconds fields and ``@reboot`` are refused: a schedule fires at most once a minute.
* Times are read in the schedule's IANA time zone (``Europe/Paris``; ``UTC`` by
  default). On the night clocks go back, a wall-clock time that happens twice
  fires once (the first); on the night they go forward, a time that does not
  exist fires at the first minute after the gap, as cronie does.
* A firing is *on time* when it is noticed within ``MISFIRE_GRACE`` seconds of
  its due time. Firings noticed later were missed (the server was down or
  paused too long): ``catch_up="once"`` (the default) runs the newest of them
  once, ``catch_up="skip"`` runs none; either way the next firing is the next
  due time after now, so a long outage never causes a burst.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from .exceptions import InvalidRequest, TaskNotFound
from .values import is_unicode

MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight",
                    "@hourly"})
CATCH_UP = ("once", "skip")
MISFIRE_GRACE = 60.0
# croniter steps taken past the second passes of a repeated span: a rule of every
# minute has one per minute of it, and a span lasts up to two hours (double summer time)
_SEARCH_LIMIT = 2 * 60 + 1
# due times counted one by one when a schedule is late: each step costs croniter tens of
# microseconds on the server's loop, and a server back after days would otherwise walk
# every minute of them, for each schedule
MISSED_COUNTED = 100


@dataclass(frozen=True)
class CronRule:
    """A validated cron expression and the time zone it is read in."""

    cron: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        problems = cron_problems(self.cron, self.timezone)
        if problems:
            raise InvalidRequest("invalid schedule", errors=problems)
        # the rule as validated: croniter refuses "@daily " that the check strips
        object.__setattr__(self, "cron", self.cron.strip())

    @property
    def zone(self) -> ZoneInfo:
        """The time zone as a ``ZoneInfo``."""
        return ZoneInfo(self.timezone)

    @property
    def hour_fixed(self) -> bool:
        """True when the expression names its hours (not ``*`` or ``@hourly``)."""
        text = self.cron.strip().lower()
        if text.startswith("@"):
            return text != "@hourly"
        return not text.split()[1].startswith("*")

    def next_after(self, moment: float) -> float:
        """The first due time strictly after ``moment`` (Unix seconds)."""
        times = croniter(self.cron, datetime.fromtimestamp(moment, self.zone))
        for _ in range(_SEARCH_LIMIT):
            due: datetime = times.get_next(datetime)
            # clocks going back show a wall-clock time twice: a job at fixed hours
            # fires on the first pass only (an hourly one fires on both, as in cron)
            if not (self.hour_fixed and _second_pass(due)):
                break
        return due.timestamp()

    def last_at_or_before(self, moment: float) -> float:
        """The latest due time at or before ``moment`` (Unix seconds)."""
        times = croniter(self.cron, datetime.fromtimestamp(moment, self.zone))
        due: datetime = times.get_prev(datetime)
        following = self.next_after(due.timestamp())
        if following <= moment:  # ``moment`` is a due time itself (get_prev is strictly before)
            return following
        if self.hour_fixed and _second_pass(due):
            # the same wall-clock time an offset earlier is the pass that fired
            return due.replace(fold=0).timestamp()
        return due.timestamp()

    def next_times(self, after: float, count: int = 5) -> list[float]:
        """The next ``count`` due times after ``after``."""
        times: list[float] = []
        moment = after
        for _ in range(count):
            moment = self.next_after(moment)
            times.append(moment)
        return times


def _second_pass(due: datetime) -> bool:
    """True when ``due`` is the later of two instants showing the same wall-clock time."""
    naive = due.replace(tzinfo=None)
    first = naive.replace(tzinfo=due.tzinfo, fold=0)
    second = naive.replace(tzinfo=due.tzinfo, fold=1)
    return first.utcoffset() != second.utcoffset() and due.timestamp() == second.timestamp() \
        and first.timestamp() != second.timestamp()


# croniter's random field, in any form it takes (R, R(0-30), R/5): no month or weekday
# name starts with an R
_RANDOM = re.compile(r"R.*", re.IGNORECASE)
# a numeric range, stepped or not (5-1, 31-1/2)
_RANGE = re.compile(r"([0-9]+)-([0-9]+)(/[0-9]+)?")
# the longest rule taken: every value of every field named one by one is 356 characters.
# croniter reads a rule again at each step, in time growing with its length: a 100 KB
# rule held the server's loop for seconds at each preview, list and firing
MAX_CRON_CHARS = 512


def cron_problems(cron: object, zone: object) -> list[dict[str, str]]:
    """The problems of a cron expression and time zone, as problem+json ``errors`` entries."""
    problems: list[dict[str, str]] = []
    if not isinstance(cron, str) or not cron.strip():
        problems.append({"field": "cron", "message": "a cron expression is required"})
    else:
        text = cron.strip()
        backwards = [part for field in text.split() for part in field.split(",")
                     if (m := _RANGE.fullmatch(part)) and int(m[1]) > int(m[2])]
        if len(text) > MAX_CRON_CHARS:
            problems.append({"field": "cron", "message":
                             f"longer than {MAX_CRON_CHARS} characters ({len(text):,})"})
        elif text.startswith("@"):
            if text.lower() not in MACROS:
                problems.append({"field": "cron", "message":
                                 f"unknown macro {text!r}; one of {', '.join(sorted(MACROS))}"})
        elif len(text.split()) != 5:
            problems.append({"field": "cron", "message":
                             "five fields: minute hour day-of-month month day-of-week"})
        elif any(_RANDOM.fullmatch(part) for field in text.split() for part in field.split(",")):
            # croniter draws a random field again at each step: a rule would fire at
            # several minutes of one hour, and a preview list times it would not keep
            problems.append({"field": "cron", "message":
                             f"random fields (R) are not supported: name the time ({text!r})"})
        elif backwards:
            # croniter reads 5-1 as every value (it fired every minute); cron refuses it
            problems.append({"field": "cron", "message":
                             f"the range {backwards[0]!r} runs backwards"})
        elif not croniter.is_valid(text):
            problems.append({"field": "cron", "message": f"not a valid cron expression: {text!r}"})
    if not isinstance(zone, str) or not zone:
        problems.append({"field": "timezone", "message": "an IANA time zone such as 'UTC'"})
    else:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            # OSError: a folder of the zone database ('Europe') is read as a file
            problems.append({"field": "timezone", "message": f"unknown time zone {zone!r}"})
    if not problems:
        # valid fields can still name no date at all (0 0 31 2 *): refused, never a 500 later
        try:
            croniter(cron.strip(), datetime.now(ZoneInfo(zone))).get_next(datetime)
        except (CroniterBadDateError, ValueError, KeyError):
            problems.append({"field": "cron", "message": f"{cron.strip()!r} never fires"})
    return problems


@dataclass(frozen=True)
class Firing:
    """What a due schedule does now: fire for ``due_at`` (or not), and when it is next due."""

    due_at: float | None
    next_run_at: float
    # due times not fired on time; past MISSED_COUNTED, a floor of them
    missed: int


def plan_firing(rule: CronRule, next_run_at: float, now: float, catch_up: str = "once",
                grace: float = MISFIRE_GRACE) -> Firing:
    """Decide a due schedule's firing at ``now`` (``next_run_at <= now``)."""
    due_times = [next_run_at]
    moment = next_run_at
    while len(due_times) <= MISSED_COUNTED:
        moment = rule.next_after(moment)
        if moment > now:
            break
        due_times.append(moment)
    else:  # a long outage: its newest due time found from now (``missed`` is then a floor)
        due_times.append(max(rule.last_at_or_before(now), due_times[-1]))
        moment = rule.next_after(now)
    newest = due_times[-1]
    on_time = now - newest <= grace
    missed = len(due_times) - (1 if on_time else 0)
    if on_time or catch_up == "once":
        return Firing(due_at=newest, next_run_at=moment, missed=missed)
    return Firing(due_at=None, next_run_at=moment, missed=missed)


def iso(moment: float | None) -> str | None:
    """A Unix time as ISO 8601 in UTC, as the API writes times."""
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, timezone.utc).isoformat().replace("+00:00", "Z")


class ScheduleNotFound(TaskNotFound):
    """No schedule with this id (or not one the caller may see)."""

    title = "Schedule not found"


SCHEDULE_FIELDS = ("name", "cron", "timezone", "catch_up", "paused", "job")
# the firing owns these job options: the label is the schedule's name, the key is per firing
FIRING_OWNED = ("idempotency_key",)
# the start of each firing's idempotency key, which no submit may use: a task submitted
# with a firing's key beforehand took that firing's place, and the firing never ran
FIRING_KEY_PREFIX = "schedule:"


@dataclass(frozen=True)
class Schedule:
    """A stored schedule: a job definition (body, validated spec and options) and its cron rule."""

    id: str
    name: str
    owner: str | None
    cron: str
    timezone: str
    catch_up: str
    paused: bool
    job: dict[str, Any]
    spec: dict[str, Any]
    options: dict[str, Any]
    next_run_at: float | None
    last_run_at: float | None
    last_task_id: str | None
    created_at: float
    updated_at: float
    last_status: str | None = None

    @property
    def rule(self) -> CronRule:
        """The cron rule in its time zone."""
        return CronRule(self.cron, self.timezone)

    def firing_key(self, due_at: float) -> str:
        """The idempotency key of the firing due at ``due_at``: one task per due time."""
        return f"{FIRING_KEY_PREFIX}{self.id}:{round(due_at)}"

    def to_json(self) -> dict[str, Any]:
        """The API's schedule JSON."""
        next_runs: list[float] = []
        if self.next_run_at is not None:
            try:
                next_runs = [self.next_run_at, *self.rule.next_times(self.next_run_at, 4)]
            except InvalidRequest:
                # a time zone this machine's tz database lacks: the stored time is all there
                # is, and the list of schedules is no 422 for it
                next_runs = [self.next_run_at]
        return {
            "id": self.id, "name": self.name, "owner": self.owner, "cron": self.cron,
            "timezone": self.timezone, "catch_up": self.catch_up, "paused": self.paused,
            "job": self.job, "next_run_at": iso(self.next_run_at),
            "next_runs": [iso(t) for t in next_runs], "last_run_at": iso(self.last_run_at),
            "last_task_id": self.last_task_id, "last_status": self.last_status,
            "created_at": iso(self.created_at), "updated_at": iso(self.updated_at),
        }


def schedule_problems(body: dict[str, Any], *, partial: bool) -> list[dict[str, str]]:
    """Problems of a schedule body's own fields (the job is checked by the job parser)."""
    problems: list[dict[str, str]] = [
        {"field": key, "message": "unknown field"} for key in body if key not in SCHEDULE_FIELDS]
    required = () if partial else ("name", "cron", "job")
    problems += [{"field": key, "message": "required"} for key in required
                 if body.get(key) is None]
    name = body.get("name")
    # valid Unicode: a command-line argument that is not UTF-8 comes as lone surrogates,
    # which the database cannot store (and no firing could take as its label)
    if name is not None and not (isinstance(name, str) and 0 < len(name.strip()) <= 200
                                 and is_unicode(name)):
        problems.append({"field": "name", "message":
                         "a non-empty string of valid Unicode of at most 200 chars"})
    if "cron" in body or "timezone" in body:
        problems += [p for p in cron_problems(body.get("cron", "* * * * *"),
                                              body.get("timezone", "UTC"))
                     if p["field"] in body or not partial]
    if body.get("catch_up") is not None and body["catch_up"] not in CATCH_UP:
        problems.append({"field": "catch_up", "message": f"one of {', '.join(CATCH_UP)}"})
    if "paused" in body and not isinstance(body["paused"], bool):
        problems.append({"field": "paused", "message": "true or false"})
    job = body.get("job")
    if job is not None and not isinstance(job, dict):
        problems.append({"field": "job", "message": "an object: the body POST /api/tasks takes"})
    elif isinstance(job, dict):
        problems += [{"field": f"job.{key}", "message": "set by each firing, not the schedule"}
                     for key in FIRING_OWNED if job.get(key) is not None]
    return problems
