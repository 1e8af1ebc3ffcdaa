"""The SQL of schedules: rows, edits, and their events."""
from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from ..models import (
    SCHEDULE_CHANGED,
    dumps,
)
from ..schedules import Schedule, ScheduleNotFound

# ----------------------------------------------------------------------- schedules

_SCHEDULE_JSON = ("job", "spec", "options")
SCHEDULE_SELECT = ("SELECT s.*, t.status AS last_status FROM schedules s "
                    "LEFT JOIN tasks t ON t.id = s.last_task_id")


def schedule_from_row(row: sqlite3.Row) -> Schedule:
    values = dict(row)
    for column in _SCHEDULE_JSON:
        values[column] = json.loads(values[column])
    values["paused"] = bool(values["paused"])
    return Schedule(**values)


def _get_schedule(conn: sqlite3.Connection, schedule_id: str) -> Schedule | None:
    row = conn.execute(SCHEDULE_SELECT + " WHERE s.id = ?", (schedule_id,)).fetchone()
    return schedule_from_row(row) if row is not None else None


def _insert_schedule_event(conn: sqlite3.Connection, schedule_id: str, owner: str | None,
                           schedule: Schedule | None, ts: float) -> None:
    # the snapshot column holds the schedule JSON (NULL once deleted); Event.to_json
    # turns it into {type: "schedule.changed", schedule_id, schedule}
    snapshot = dumps(schedule.to_json()) if schedule is not None else None
    conn.execute("INSERT INTO events (task_id, type, ts, owner, task) VALUES (?, ?, ?, ?, ?)",
                 (schedule_id, SCHEDULE_CHANGED, ts, owner, snapshot))


def tx_create_schedule(conn: sqlite3.Connection, schedule: Schedule) -> Schedule:
    columns = [c for c in Schedule.__dataclass_fields__ if c != "last_status"]
    values = [getattr(schedule, c) for c in columns]
    for i, column in enumerate(columns):
        if column in _SCHEDULE_JSON:
            values[i] = dumps(values[i])
        elif column == "paused":
            values[i] = int(values[i])
    conn.execute(f"INSERT INTO schedules ({', '.join(columns)}) "
                 f"VALUES ({', '.join('?' * len(columns))})", values)
    created = _get_schedule(conn, schedule.id)
    assert created is not None
    _insert_schedule_event(conn, created.id, created.owner, created, created.updated_at)
    return created


_SCHEDULE_COLUMNS = frozenset({"name", "cron", "timezone", "catch_up", "paused", "job", "spec",
                               "options", "next_run_at", "last_run_at", "last_task_id"})


def tx_update_schedule(conn: sqlite3.Connection, schedule_id: str, changes: dict[str, Any],
                        expected_next: float | None) -> Schedule | None:
    unknown = changes.keys() - _SCHEDULE_COLUMNS
    if unknown:
        raise ValueError(f"not schedule columns: {sorted(unknown)}")
    now = time.time()
    sets = [f"{column} = ?" for column in changes] + ["updated_at = ?"]
    args: list[Any] = [dumps(v) if k in _SCHEDULE_JSON else int(v) if k == "paused" else v
                       for k, v in changes.items()]
    args += [now, schedule_id]
    sql = f"UPDATE schedules SET {', '.join(sets)} WHERE id = ?"
    if expected_next is not None:
        sql += " AND next_run_at = ?"  # the compare-and-set of a firing
        args.append(expected_next)
    if conn.execute(sql, args).rowcount == 0:
        if expected_next is not None:
            return None
        raise ScheduleNotFound(f"no schedule with id {schedule_id}")
    updated = _get_schedule(conn, schedule_id)
    assert updated is not None
    _insert_schedule_event(conn, schedule_id, updated.owner, updated, now)
    return updated


def tx_delete_schedule(conn: sqlite3.Connection, schedule_id: str) -> Schedule:
    schedule = _get_schedule(conn, schedule_id)
    if schedule is None:
        raise ScheduleNotFound(f"no schedule with id {schedule_id}")
    conn.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,))
    _insert_schedule_event(conn, schedule_id, schedule.owner, None, time.time())
    return schedule
