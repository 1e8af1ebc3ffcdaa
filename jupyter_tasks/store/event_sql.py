"""The SQL of events: the snapshot rendered by SQLite, inserting and reading events."""
from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from typing import Any

from ..models import (
    TASK_JSON,
    EventType,
    JsonField,
    Task,
)


def _iso_sql(column: str) -> str:
    # the same truncation to milliseconds as models.iso()
    return (f"CASE WHEN {column} IS NULL THEN NULL ELSE "
            f"strftime('%Y-%m-%dT%H:%M:%S', CAST({column} AS INTEGER), 'unixepoch') || "
            f"printf('.%03dZ', CAST(({column} - CAST({column} AS INTEGER)) * 1000 AS INTEGER)) END")


# How each kind of TASK_JSON field is rendered in SQL (models.JsonField.source),
# and the derived ones' expressions: the snapshot is generated from the one table.
_SNAPSHOT_SOURCES: dict[str, Callable[[str], str]] = {
    "column": lambda column: column,
    "json": lambda column: f"json({column})",
    "time": _iso_sql,
    "flag": lambda column: f"json(CASE WHEN {column} THEN 'true' ELSE 'false' END)",
}
_DERIVED_SQL = {"max_attempts": "max_retries + 1 + lost_attempts"}


def _snapshot_expr(f: JsonField) -> str:
    if f.source == "derived":
        return _DERIVED_SQL[f.key]  # a KeyError at import: a derived field needs its SQL
    return _SNAPSHOT_SOURCES[f.source](f.key)


# The API's task JSON (Task.to_json()) rendered by SQLite itself, from the same
# field table (models.TASK_JSON): an event's snapshot then costs no Python
# decoding or encoding, which matters for the steady stream of progress events
# of many running tasks.
SNAPSHOT_SQL = "json_object(" + ", ".join(
    f"'{f.key}', {_snapshot_expr(f)}" for f in TASK_JSON if not f.full) + ")"
_INSERT_EVENT = (
    "INSERT INTO events (task_id, type, ts, owner, task) "
    f"SELECT id, ?, ?, owner, {SNAPSHOT_SQL} FROM tasks WHERE id = ?"
)


# the same snapshot for a row whose JSON columns SQLite cannot parse (written by
# something else, or an older version): such a value goes in as a JSON string
_SNAPSHOT_SQL_TOLERANT = re.sub(r"json\((\w+)\)",
                                r"iif(json_valid(\1), json(\1), json_quote(\1))", SNAPSHOT_SQL)
_INSERT_EVENT_TOLERANT = _INSERT_EVENT.replace(SNAPSHOT_SQL, _SNAPSHOT_SQL_TOLERANT)


def insert_event(conn: sqlite3.Connection, task: Task | str, event: EventType | str,
                  ts: float) -> None:
    """Append an event with the task's current row as its snapshot (nothing if no such row)."""
    task_id = task if isinstance(task, str) else task.id
    args = (getattr(event, "value", event), ts, task_id)
    try:
        conn.execute(_INSERT_EVENT, args)
    except sqlite3.OperationalError as exc:
        # a failed statement changed nothing: the tolerant form costs a second parse
        # of each column, so only rows that need it pay for it
        if "JSON" not in str(exc):
            raise
        conn.execute(_INSERT_EVENT_TOLERANT, args)


def events_query(after_id: int, limit: int, task_id: str | None,
                  owners: list[str] | None) -> tuple[str, list[Any]]:
    # a 'feed.mark' row only holds the numbering of a feed pruned empty (migration 3)
    sql = "SELECT id, type, task_id, ts, owner, task FROM events WHERE id > ? " \
        "AND type != 'feed.mark'"
    args: list[Any] = [after_id]
    if task_id is not None:
        # along events_by_task: the task's own events, whatever else the table holds
        sql += " AND task_id = ?"
        args.append(task_id)
    if owners is not None:
        sql += f" AND owner IN ({','.join('?' * len(owners))})"
        args += owners
    sql += " ORDER BY id LIMIT ?"
    args.append(limit)
    return sql, args
