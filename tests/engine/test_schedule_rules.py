"""Cron rules and the missed-firing policy (jupyter_tasks.schedules), no I/O."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from jupyter_tasks.exceptions import InvalidRequest
from jupyter_tasks.schedules import MISSED_COUNTED, CronRule, cron_problems, plan_firing

PARIS = ZoneInfo("Europe/Paris")


def local(*args: int) -> float:
    return datetime(*args, tzinfo=PARIS).timestamp()


def wall(moment: float) -> str:
    return datetime.fromtimestamp(moment, PARIS).isoformat()


@pytest.mark.parametrize("cron, zone, field", [
    ("61 * * * *", "UTC", "cron"),
    ("* * * *", "UTC", "cron"),
    ("0 * * * * *", "UTC", "cron"),  # seconds: at most once a minute
    ("@reboot", "UTC", "cron"),
    ("", "UTC", "cron"),
    ("0 9 * * 1-5", "Mars/Olympus", "timezone"),
    ("0 9 * * 1-5", "", "timezone"),
    # a folder of the zone database: before, IsADirectoryError through the CLI and REST
    ("0 9 * * 1-5", "Europe", "timezone"),
    ("0 9 * * 1-5", "America/Argentina", "timezone"),
    # croniter's random fields: drawn again at each step, so a rule fired several times
    # an hour, and the preview listed times it would not keep
    ("R * * * *", "UTC", "cron"),
    ("0 R * * *", "UTC", "cron"),
    # with a step: before, accepted, and its times changed at each call
    ("R/5 * * * *", "UTC", "cron"),
    ("0 R/2 * * *", "UTC", "cron"),
    ("0 9 * * r(1-5)", "UTC", "cron"),
    # a range that runs backwards: before, accepted and fired every minute (cronie
    # refuses it)
    ("1-0 * * * *", "UTC", "cron"),
    ("0 9 * * 5-1", "UTC", "cron"),
    ("0 9 31-1/2 * *", "UTC", "cron"),
    # before: no bound; each reading of a 100 KB rule held the server's loop for seconds
    (",".join(["0-59"] * 200) + " * * * *", "UTC", "cron"),
])
def test_bad_rules_are_refused_by_field(cron: str, zone: str, field: str) -> None:
    assert [p["field"] for p in cron_problems(cron, zone)] == [field]
    with pytest.raises(InvalidRequest):
        CronRule(cron, zone)


# the longest plain rule: every value of every field named one by one
EVERY_VALUE_NAMED = " ".join(",".join(str(v) for v in values) for values in (
    range(60), range(24), range(1, 32), range(1, 13), range(7)))


@pytest.mark.parametrize("cron", ["0 9 * * 1-5", "*/15 * * * *", "@daily", "@HOURLY",
                                  "0-0 9 * * 1-1", EVERY_VALUE_NAMED])
def test_good_rules_pass(cron: str) -> None:
    assert cron_problems(cron, "Europe/Paris") == []


@pytest.mark.parametrize("cron", ["@daily ", " @daily", "@daily\n", " 0 9 * * 1-5 "])
def test_spaces_around_a_rule_are_not_part_of_it(cron: str) -> None:
    # the check stripped them and croniter did not: a 500 over REST, a traceback in the CLI
    rule = CronRule(cron, "UTC")
    assert rule.cron == cron.strip()
    assert rule.next_after(0.0) == CronRule(cron.strip(), "UTC").next_after(0.0)


def test_weekday_mornings_in_their_zone() -> None:
    rule = CronRule("0 9 * * 1-5", "Europe/Paris")
    # Friday 2026-12-04 10:00 Paris: next are Monday to Friday of the next week
    times = rule.next_times(local(2026, 12, 4, 10, 0), 3)
    assert [wall(t) for t in times] == ["2026-12-07T09:00:00+01:00", "2026-12-08T09:00:00+01:00",
                                       "2026-12-09T09:00:00+01:00"]


def test_clocks_going_back_fire_a_fixed_time_once() -> None:
    rule = CronRule("30 2 * * *", "Europe/Paris")
    times = rule.next_times(local(2026, 10, 24, 12, 0), 2)
    assert [wall(t) for t in times] == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]


def test_clocks_going_back_fire_an_hourly_rule_every_hour() -> None:
    rule = CronRule("0 * * * *", "Europe/Paris")
    times = rule.next_times(local(2026, 10, 25, 1, 30), 3)
    assert [t - times[0] for t in times] == [0, 3600, 7200]


@pytest.mark.parametrize("cron, first_pass", [
    ("*/15 2 * * *", ["02:00", "02:15", "02:30", "02:45"]),
    ("* 2 * * *", [f"02:{m:02d}" for m in range(60)]),
])
def test_clocks_going_back_fire_a_fixed_hour_once_however_often_it_fires(
        cron: str, first_pass: list[str]) -> None:
    # before, past four second-pass times the search gave up and fired the fifth: 02:45
    # CET after 02:45 CEST, and fifteen more for a rule of every minute
    rule = CronRule(cron, "Europe/Paris")
    times = rule.next_times(local(2026, 10, 25, 1, 0), len(first_pass) + 1)
    assert [wall(t)[11:16] for t in times[:-1]] == first_pass
    assert all(wall(t).endswith("+02:00") for t in times[:-1])
    assert wall(times[-1]) == "2026-10-26T02:00:00+01:00"


def test_clocks_going_forward_fire_after_the_gap() -> None:
    rule = CronRule("30 2 * * *", "Europe/Paris")
    assert wall(rule.next_after(local(2026, 3, 28, 12, 0))) == "2026-03-29T03:00:00+02:00"


def test_on_time_firing_fires_its_due_time() -> None:
    rule = CronRule("* * * * *")
    firing = plan_firing(rule, next_run_at=120.0, now=120.4)
    assert (firing.due_at, firing.next_run_at, firing.missed) == (120.0, 180.0, 0)


@pytest.mark.parametrize("catch_up, fires", [("once", True), ("skip", False)])
def test_an_outage_fires_once_or_not_at_all(catch_up: str, fires: bool) -> None:
    rule = CronRule("0 * * * *")
    # due at 01:00, the server came back at 05:30: 01:00..05:00 were missed
    firing = plan_firing(rule, next_run_at=3600.0, now=5.5 * 3600, catch_up=catch_up)
    assert firing.missed == 5
    assert firing.due_at == (5 * 3600.0 if fires else None)
    assert firing.next_run_at == 6 * 3600.0


def test_a_due_time_under_the_grace_is_not_missed_even_with_skip() -> None:
    # as the guide says: back 30 s after 05:00, an hourly schedule's 05:00 is on time
    # (it runs with "skip" too); 01:00..04:00 were missed
    rule = CronRule("0 * * * *")
    firing = plan_firing(rule, next_run_at=3600.0, now=5 * 3600 + 30.0, catch_up="skip")
    assert (firing.due_at, firing.missed) == (5 * 3600.0, 4)


def test_a_long_outage_is_not_walked_minute_by_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    # before, a server back after 100 days stepped through each of their 144,000 minutes
    # (100,000 at most) for each every-minute schedule, on its event loop
    rule = CronRule("* * * * *")
    steps = 0
    next_after = CronRule.next_after

    def counted(self: CronRule, moment: float) -> float:
        nonlocal steps
        steps += 1
        return next_after(self, moment)

    monkeypatch.setattr(CronRule, "next_after", counted)
    now = 100 * 86400 + 30.0
    firing = plan_firing(rule, next_run_at=60.0, now=now, catch_up="once")
    assert (firing.due_at, firing.next_run_at) == (100 * 86400, 100 * 86400 + 60)
    assert firing.missed > MISSED_COUNTED
    assert steps <= MISSED_COUNTED + 5


def test_the_newest_missed_time_of_a_fixed_hour_is_its_first_pass() -> None:
    rule = CronRule("45 2 * * *", "Europe/Paris")
    # clocks went back at 03:00 CEST; the outage ends at 02:50 CET, an hour after 02:45 CEST
    now = datetime(2026, 10, 25, 2, 50, tzinfo=PARIS, fold=1).timestamp()
    assert wall(rule.last_at_or_before(now)) == "2026-10-25T02:45:00+02:00"
    assert rule.last_at_or_before(local(2026, 10, 24, 2, 45)) == local(2026, 10, 24, 2, 45)
