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

from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from .exceptions import InvalidRequest

MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight",
                    "@hourly"})
CATCH_UP = ("once", "skip")
MISFIRE_GRACE = 60.0
# croniter steps taken past second passes of a repeated hour (one is ever needed)
_SEARCH_LIMIT = 4


@dataclass(frozen=True)
class CronRule:
    """A validated cron expression and the time zone it is read in."""

    cron: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        problems = cron_problems(self.cron, self.timezone)
        if problems:
            raise InvalidRequest("invalid schedule", errors=problems)

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


def cron_problems(cron: object, zone: object) -> list[dict[str, str]]:
    """The problems of a cron expression and time zone, as problem+json ``errors`` entries."""
    problems: list[dict[str, str]] = []
    if not isinstance(cron, str) or not cron.strip():
        problems.append({"field": "cron", "message": "a cron expression is required"})
    else:
        text = cron.strip()
        if text.startswith("@"):
            if text.lower() not in MACROS:
                problems.append({"field": "cron", "message":
                                 f"unknown macro {text!r}; one of {', '.join(sorted(MACROS))}"})
        elif len(text.split()) != 5:
            problems.append({"field": "cron", "message":
                             "five fields: minute hour day-of-month month day-of-week"})
        elif not croniter.is_valid(text):
            problems.append({"field": "cron", "message": f"not a valid cron expression: {text!r}"})
    if not isinstance(zone, str) or not zone:
        problems.append({"field": "timezone", "message": "an IANA time zone such as 'UTC'"})
    else:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append({"field": "timezone", "message": f"unknown time zone {zone!r}"})
    return problems


@dataclass(frozen=True)
class Firing:
    """What a due schedule does now: fire for ``due_at`` (or not), and when it is next due."""

    due_at: float | None
    next_run_at: float
    missed: int


def plan_firing(rule: CronRule, next_run_at: float, now: float, catch_up: str = "once",
                grace: float = MISFIRE_GRACE) -> Firing:
    """Decide a due schedule's firing at ``now`` (``next_run_at <= now``)."""
    due_times = [next_run_at]
    moment = next_run_at
    # count the due times up to now, but never walk an outage of years minute by minute
    while len(due_times) < 100_000:
        moment = rule.next_after(moment)
        if moment > now:
            break
        due_times.append(moment)
    else:
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
