"""The SQL of tasks, their logs and artifacts: reads, writes, pages, pruning."""
from __future__ import annotations

import base64
import dataclasses
import json
import math
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ..exceptions import (
    IdempotencyConflict,
    InvalidRequest,
    TaskNotFound,
    TaskStateConflict,
)
from ..models import (
    ACTIVE_STATUSES,
    JSON_COLUMNS,
    TERMINAL_STATUSES,
    Artifact,
    EventType,
    LogTailWrite,
    Task,
    TaskStatus,
)
from ..values import JSONText, is_unicode, storable_text
from ..values import encode as encode_value
from .connection import FOLD_CASE_FUNCTION
from .event_sql import insert_event

ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,254}$")



def valid_artifact_name(name: str) -> bool:
    """True for a plain file name: no separator, no ``..``, nothing hidden."""
    return bool(ARTIFACT_NAME.fullmatch(name)) and ".." not in name


# a media type as a Content-Type header carries it (RFC 9110), parameters included:
# a CR or LF in one made every download of its artifact a 500 (tornado refuses the header)
ARTIFACT_CONTENT_TYPE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+"
                                   r"(\s*;[\x20-\x7e\t]*)?\Z")
ARTIFACT_CONTENT_TYPE_MAX = 255


def valid_artifact_content_type(content_type: str) -> bool:
    """True for a media type a download may send as its Content-Type (``text/csv; charset=…``)."""
    return (isinstance(content_type, str) and len(content_type) <= ARTIFACT_CONTENT_TYPE_MAX
            and bool(ARTIFACT_CONTENT_TYPE.match(content_type)))


def check_artifact(name: str, content_type: str | None) -> None:
    """``ValueError`` unless ``name`` is a plain file name and ``content_type`` (if given)
    a media type a download may send."""
    if not valid_artifact_name(name):
        raise ValueError(f"artifact name {name!r} must be a plain file name: ASCII letters, "
                         "digits, '.', '_', '-' and spaces, starting with a letter or digit, "
                         "at most 255 characters, no '..'")
    if content_type is not None and not valid_artifact_content_type(content_type):
        raise ValueError(f"artifact content type {content_type!r} must be a media type "
                         "such as 'text/csv' or 'text/plain; charset=utf-8', on one line")


def encode_column(column: str, value: Any) -> Any:
    if column in JSON_COLUMNS and value is not None:
        if isinstance(value, JSONText):  # encoded by the caller under the storage rule
            return str(value)
        return encode_value(value, where=column).text
    if column == "cancel_requested":
        return int(bool(value))
    return value


GET_TASK = "SELECT * FROM tasks WHERE id = ?"


def _get_task(conn: sqlite3.Connection, task_id: str) -> Task | None:
    row = conn.execute(GET_TASK, (task_id,)).fetchone()
    return Task.from_row(row) if row else None


# the sort keys of page_tasks, in SQL: never NULL (a NULL would drop out of the keyset's
# comparisons), the same values the views show (label falls back to the name, origin is
# the notebook's path else the origin type, progress a fraction)
LIST_SORTS = ("created", "label", "owner", "origin", "status", "progress", "duration",
              "started", "finished", "priority")
SORT_SQL = {
    "created": "id",
    "label": "lower(coalesce(nullif(label, ''), nullif(name, ''), kind))",
    "owner": "lower(ifnull(owner, ''))",
    "origin": "CASE WHEN json_valid(origin) THEN ifnull(lower(coalesce("
              "nullif(json_extract(origin, '$.notebook'), ''), "
              "nullif(json_extract(origin, '$.notebook_path'), ''), "
              "nullif(json_extract(origin, '$.path'), ''), "
              "json_extract(origin, '$.type'))), '') ELSE '' END",
    "status": "CASE status WHEN 'running' THEN 0 WHEN 'queued' THEN 1 ELSE 2 END",
    # a total that is not a number (text compares above every number) would divide to NULL
    "progress": "CASE WHEN json_valid(progress) "
                "AND json_type(progress, '$.total') IN ('integer', 'real') "
                "AND json_extract(progress, '$.total') > 0 "
                "THEN ifnull(json_extract(progress, '$.current'), 0) * 1.0 "
                "/ json_extract(progress, '$.total') "
                "WHEN status = 'succeeded' THEN 1.0 ELSE -1.0 END",
    # a running task's duration grows: measured against the first page's clock (carried
    # in the cursor) so that a walk through the pages sees one consistent order
    "duration": "CASE WHEN started_at IS NULL THEN -1.0 "
                "ELSE max(0.0, ifnull(finished_at, ?) - started_at) END",
    "started": "ifnull(started_at, -1.0)",
    "finished": "ifnull(finished_at, -1.0)",
    "priority": "priority",
}


# what pruning walks (tasks_by_finished, migration 7): the finished sort's own key
FINISHED_KEY = SORT_SQL["finished"]

# sorts whose key is fixed once a task has ended: their indexes (migration 8) hold the
# ended tasks only, keyed by these expressions, SORT_SQL's own for a finished_at that is set
ENDED_SORT_SQL = {
    "duration": "CASE WHEN started_at IS NULL THEN -1.0 "
                "ELSE max(0.0, finished_at - started_at) END",
    "progress": SORT_SQL["progress"],
}


# the two parts of the tasks table a list reads apart (migration 11): the settled
# tasks, in the indexes of the filters and sorts, and the fresh ones (running, queued
# less than QUEUED_SETTLE_SECONDS, ended since the last settling: few), which a part
# reads along tasks_fresh
SETTLED = "fresh IS NULL"
FRESH = "fresh = 1"
# the settled tasks not ended (jobs settled while they waited in the queue), which the
# progress and duration indexes (of ended tasks) do not hold: ifnull(...) = -1.0 enters
# tasks_by_finished where they are
SETTLED_WAITING = "fresh IS NULL AND ifnull(finished_at, -1.0) = -1.0 AND finished_at IS NULL"


def merged_parts(arm: Callable[[str], tuple[str, list[Any]]], order_by: str, limit: int,
                 parts: Sequence[str] = (SETTLED, FRESH)) -> tuple[str, list[Any]]:
    """``arm``'s query over each part of the tasks, merged in ``order_by``: ``limit`` rows.

    ``arm`` builds one part's SELECT (ordered and limited itself) given that part's
    WHERE term; SQLite merges the ordered parts as it reads them.
    """
    queries = [arm(part) for part in parts]
    return (" UNION ALL ".join(f"SELECT * FROM ({sql})" for sql, _ in queries)
            + f" ORDER BY {order_by} LIMIT ?",
            [*(value for _, values in queries for value in values), int(limit)])


def page_query(sort: str, descending: bool, where: list[str], args: list[Any],
               after: tuple[Any, str, float] | None, now: float,
               limit: int, source: str = "tasks", walk_owner: bool = False,
               walk_rows: int | None = None) -> tuple[str, list[Any]]:
    """The SELECT of one page of ``page_tasks`` (``limit`` + 1 rows) and its arguments.

    ``where``/``args`` are the filters' (``task_filters``); ``after`` the decoded cursor.
    The keyset starts with a bare range on the sort key (``>=``/``<=``) so that the
    key's index is entered at the cursor instead of walked from its start.
    ``source`` is the table read: ``tasks`` (its parts, see ``merged_parts``), or a
    search's few hits (``search_hits``), sorted whole. ``walk_owner`` (a column sort
    whose filters ``owner_walked`` splits): the settled tasks as far as a walk of
    ``walk_rows`` rows finds them (None: OWNER_FIRST_WALK_ROWS), each row with a
    ``walked_found`` column, and every part's rows (``walk_filled`` tells whether the
    first ``limit`` + 1 are the page, ``longer_walk`` what to try next).
    """
    direction = "DESC" if descending else "ASC"
    order_by = f"id {direction}" if sort == "created" else f"sort_value {direction}, id DESC"
    if source != "tasks":
        return _page_part(sort, descending, where, args, after, now, limit, source, False)
    parts = (SETTLED, SETTLED_WAITING, FRESH) if sort in ENDED_SORT_SQL else (SETTLED, FRESH)
    modes = {SETTLED: WALK, SETTLED_WAITING: CHECK, FRESH: KEEP} if walk_owner else {}
    # a walk's every row, which walk_filled needs: the caller keeps the first ones
    rows = len(parts) * (int(limit) + 1) if walk_owner else int(limit) + 1
    walk = OWNER_FIRST_WALK_ROWS if walk_rows is None else walk_rows
    return merged_parts(lambda part: _page_part(sort, descending, [*where, part], args, after,
                                                now, limit, source, part == SETTLED,
                                                modes.get(part), walk),
                        order_by, rows, parts)


def _page_part(sort: str, descending: bool, where: list[str], args: list[Any],
               after: tuple[Any, str, float] | None, now: float, limit: int, source: str,
               settled: bool, owner_mode: str | None = None,
               walk_rows: int = 0) -> tuple[str, list[Any]]:
    """One part of ``page_query``: ``limit`` + 1 rows of ``source`` matching ``where``."""
    expr_args = [now] if sort == "duration" else []
    if settled and sort in ENDED_SORT_SQL:
        # the settled tasks that have ended: the sort's index holds them by the ended key
        # (the others are SETTLED_WAITING's)
        return _sorted_part(ENDED_SORT_SQL[sort], [], descending,
                            ["finished_at IS NOT NULL", *where], args, after, limit, source,
                            owner_mode, walk_rows)
    if sort != "created":
        return _sorted_part(SORT_SQL[sort], expr_args, descending, where, args, after, limit,
                            source, owner_mode, walk_rows)
    where, args = list(where), list(args)
    if after:
        where.append("id < ?" if descending else "id > ?")
        args.append(after[1])
    order_by = "id " + ("DESC" if descending else "ASC")
    statuses = len(where[0][len("status IN ("):-1].split(",")) \
        if where and where[0].startswith("status IN (") else 0  # active: small sets
    if statuses > 1:
        # status IN (a, b) walks two ranges of tasks_by_status that only a sort over every
        # match would merge (all finished tasks, for the finished statuses): one ordered,
        # limited walk per status instead, merged over at most limit + 1 rows each
        rest = " AND ".join(where[1:])
        parts = []
        part_args: list[Any] = []
        for i in range(statuses):
            parts.append(f"SELECT * FROM (SELECT * FROM {source} WHERE status = ?"
                         f"{' AND ' + rest if rest else ''} ORDER BY {order_by} LIMIT ?)")
            part_args += [args[i], *args[statuses:], int(limit) + 1]
        return (" UNION ALL ".join(parts) + f" ORDER BY {order_by} LIMIT ?",
                [*part_args, int(limit) + 1])
    return (_from_tasks("SELECT *", where, source) + f" ORDER BY {order_by} LIMIT ?",
            [*args, int(limit) + 1])


# descending sorts walked a tie group at a time (see tie_group_query): those whose index
# (key, id DESC) walked backwards gives ties oldest first (progress and duration have
# an index per direction; created sorts by id alone)
GROUP_WALKED_SORTS = ("label", "owner", "origin", "status", "priority", "started",
                      "finished")


def next_key_query(sort: str, where: list[str], args: list[Any], below: Any,
                   walk_owner: bool = False) -> tuple[str, list[Any]]:
    """The largest sort key among the matching tasks (below ``below``, when given).

    Both parts of the tasks in one statement (``merged_parts``), as every read of a
    page: a task settled between two of its reads is in one part or the other. With
    ``walk_owner``, each part's largest key instead (two rows at most), the settled
    tasks' as far as a walk of OWNER_KEY_WALK_ROWS rows finds it (``owner_walked``), with
    1 in a ``walked`` column: without such a row the key may lie further on.
    """
    expr = SORT_SQL[sort]

    def arm(part: str) -> tuple[str, list[Any]]:
        terms, values = [*where, part], list(args)
        owner: tuple[str, list[Any]] | None = None
        if walk_owner and part == SETTLED:  # the fresh tasks are few
            split = owner_walked(terms, values)
            assert split is not None, "walk_owner without an owner term to walk"
            terms, values, owner = split
        if below is not None:
            terms.append(f"({expr}) < ?")
            values.append(below)
        if owner is None:
            walked = ", NULL AS walked" if walk_owner else ""
            return _from_tasks(f"SELECT {expr} AS sort_value{walked}", terms) + \
                f" ORDER BY {expr} DESC LIMIT 1", values
        term, owner_args = owner
        return ("SELECT sort_value, 1 AS walked FROM ("
                + _from_tasks(f"SELECT {expr} AS sort_value, owner", terms)
                + f" ORDER BY {expr} DESC LIMIT ?) WHERE {term} ORDER BY sort_value DESC "
                "LIMIT 1", [*values, OWNER_KEY_WALK_ROWS, *owner_args])

    return merged_parts(arm, "sort_value DESC", 2 if walk_owner else 1)


def tie_group_query(sort: str, where: list[str], args: list[Any], key: Any,
                    below_id: str | None, limit: int) -> tuple[str, list[Any]]:
    """Up to ``limit`` matching tasks whose sort key is ``key``, newest first.

    A descending sort walks its (key, id DESC) index backwards, which gives each tie
    oldest first: SQLite then sorts every tie whole, and a status sorted descending
    sorted the million ended tasks for each page (3 s). Entered at one key instead,
    the same index gives the tie newest first, ``limit`` rows read. Both parts in
    one statement, as ``next_key_query``.
    """
    expr = SORT_SQL[sort]

    def arm(part: str) -> tuple[str, list[Any]]:
        terms, values = [*where, part, f"({expr}) = ?"], [*args, key]
        if below_id is not None:
            terms.append("id < ?")
            values.append(below_id)
        return (_from_tasks(f"SELECT *, {expr} AS sort_value", terms)
                + " ORDER BY id DESC LIMIT ?", [*values, int(limit)])

    return merged_parts(arm, "id DESC", limit)


def _sorted_part(expr: str, expr_args: list[Any], descending: bool, where: list[str],
                 args: list[Any], after: tuple[Any, str, float] | None, limit: int,
                 source: str = "tasks", owner_mode: str | None = None, walk_rows: int = 0
                 ) -> tuple[str, list[Any]]:
    """The tasks matching ``where`` past the cursor in ``expr`` order, ``limit`` + 1 of them.

    ``owner_mode`` (one of an owner's walked page, see ``page_query``): WALK, those
    among the first ``walk_rows`` rows in that order that match the rest of
    ``where`` too (see ``owner_walked``), with how many matched there in a
    ``walked_found`` column; CHECK, the owner checked on the rows the rest finds;
    KEEP, as without a mode. The last two with a NULL ``walked_found``.
    """
    where, args = list(where), list(args)
    owner: tuple[str, list[Any]] | None = None
    if owner_mode == WALK:
        split = owner_walked(where, args)
        assert split is not None, "a walk without an owner term to walk"
        where, args, owner = split
    elif owner_mode == CHECK:
        where = ["+" + t if t.startswith("owner IN (") else t for t in where]
    if after:
        # past the last row: further along the sort, or level with it and older
        cmp = "<" if descending else ">"
        where.append(f"({expr}) {cmp}= ? AND (({expr}) {cmp} ? OR id < ?)")
        args += [*expr_args, after[0], *expr_args, after[0], after[1]]
    direction = "DESC" if descending else "ASC"
    order_by = f"{expr} {direction}, id DESC"
    found = ", NULL AS walked_found" if owner_mode in (CHECK, KEEP) else ""
    # the select's and the order's copies of the expression's arguments around the rest
    sql = _from_tasks(f"SELECT *, {expr} AS sort_value{found}", where, source) + \
        f" ORDER BY {order_by} LIMIT ?"
    if owner is None:
        return sql, [*expr_args, *args, *expr_args, int(limit) + 1]
    term, owner_args = owner
    return (f"SELECT *, count(*) OVER () AS walked_found FROM ({sql}) WHERE {term} "
            f"ORDER BY sort_value {direction}, id DESC LIMIT ?",
            [*expr_args, *args, *expr_args, int(walk_rows), *owner_args, int(limit) + 1])


# an owner's sort key (SORT_SQL's) from the owner's name (the argument)
OWNER_SORT_KEY = f"SELECT {SORT_SQL['owner']} FROM (SELECT ? AS owner)"
# An owner's tasks in a column's order: the owner's index gives them unsorted, so a
# big owner's (a third of a million-task history) were all read and sorted for each
# page (200-1,300 ms). So the page is first looked for along the sort's own index,
# the owner checked on each row: a first walk of OWNER_FIRST_WALK_ROWS rows (an
# owner of a quarter of the tasks fills a page of 50 there, ~1 ms), then, if what it
# found says a walk of OWNER_WALK_ROWS would fill the page (an owner of a fortieth
# or more, 2-6 ms over a million tasks), that one (``longer_walk``). Else, or if
# that walk too leaves the page short (the owner's tasks lie further along that
# order, or the last page), the page is read the old way (Store.page_tasks).
OWNER_FIRST_WALK_ROWS = 200
OWNER_WALK_ROWS = 2000
# a next key is one row: within 200 rows an owner of a fortieth of the tasks is missed
# once in 160 (the key is then read as before). OWNER_WALK_ROWS for each of a
# descending page's tie groups made an owner's label-sorted page 20-22 ms
OWNER_KEY_WALK_ROWS = 200
# how each part of an owner's walked page checks the owner (_sorted_part's owner_mode):
# the settled tasks along a bounded walk; the settled ones waiting in a queue (few,
# found by their own range of tasks_by_finished) on each row; the fresh ones as always
WALK, CHECK, KEEP = "walk", "check", "keep"


def walk_filled(rows: Sequence[sqlite3.Row], limit: int) -> bool:
    """Whether the first ``limit`` + 1 of an owner's walked page query's rows are the page.

    Only if the walk of the settled tasks found more than ``limit`` of them (its rows
    say so): then each part gave its own first rows, and their merge begins the page.
    Else a settled task beyond the walk could belong in it.
    """
    return any(row["walked_found"] is not None and row["walked_found"] > limit
               for row in rows)


# descending sorts whose ties are few (a clock's instants): page_query's walk, which
# sorts each tie as it meets it, stays short (see GROUP_WALKED_SORTS for the others)
FEW_TIES_SORTS = ("started", "finished")


def longer_walk(rows: Sequence[sqlite3.Row], limit: int, walked: int | None) -> int:
    """After a walk of ``walked`` rows (None: the first) that left an owner's page short:
    the rows of the walk to try next, or 0 to read the page the old way.

    The long walk, if the first one's matches say it holds ``limit`` + 1 of them
    (for a page of 50, an owner in about a fortieth of the rows); a rarer owner goes
    the old way at once, where the long walk would fall short and cost its rows on
    top.
    """
    walked = OWNER_FIRST_WALK_ROWS if walked is None else walked
    if walked >= OWNER_WALK_ROWS:
        return 0
    found = max((row["walked_found"] or 0 for row in rows), default=0)
    return OWNER_WALK_ROWS if (limit + 1) * walked <= found * OWNER_WALK_ROWS else 0


def owner_walked(where: list[str], args: list[Any]
                 ) -> tuple[list[str], list[Any], tuple[str, list[Any]]] | None:
    """``task_filters``' terms without the owner's (and the arguments without its), and
    that term with its arguments: when a column sort's walk may check the owner on rows.

    None when there is no owner term, or the rows are found by another index anyway:
    a key's (the owner is then checked on rows already, ``+owner``) or the active
    statuses' (few tasks, a plain ``status IN``; a mix of active and ended statuses is
    rare enough to be read as before).
    """
    at = 0
    for i, term in enumerate(where):
        count = term.count("?")
        if term.startswith("status IN ("):  # always the first term
            return None
        if term.startswith("owner IN ("):
            return ([*where[:i], *where[i + 1:]], [*args[:at], *args[at + count:]],
                    (term, args[at:at + count]))
        at += count
    return None


def id_order_query(where: list[str], args: list[Any], oldest_first: bool, limit: int,
                   source: str = "tasks") -> tuple[str, list[Any]]:
    """``Store.list_tasks``' SELECT: ``limit`` matching tasks in id order, of every part."""
    order_by = "id " + ("ASC" if oldest_first else "DESC")

    def part(term: str | None) -> tuple[str, list[Any]]:
        return (_from_tasks("SELECT *", [*where, term], source)
                + f" ORDER BY {order_by} LIMIT ?", [*args, int(limit)])

    return merged_parts(part, order_by, limit) if source == "tasks" else part(None)


def stats_query(where: list[str], args: list[Any], source: str = "tasks",
                by_status: bool = False) -> tuple[str, list[Any]]:
    """``Store.stats``' counts of the tasks ``where`` matches: (queue, status, count) rows.

    With a filter, one row per queue and status: the rows are read anyway, once.
    With none, or ``by_status`` (``where`` is the statuses' term alone), the statuses
    are counted apart (a NULL queue), along the status index: a million finished
    tasks take ~50 ms to walk there, where a count per queue and status reads every
    row (0.5 s); then the queued and running tasks per queue, few and found by the
    same index. Over the tasks table each count is of its two parts (``merged_parts``):
    a status or a queue may come in two rows, which the caller adds up.
    """
    parts: list[str | None] = [SETTLED, FRESH] if source == "tasks" else [None]

    def counted(select: str, terms: list[str], values: list[Any], group_by: str
                ) -> tuple[str, list[Any]]:
        """``select`` grouped by ``group_by``, a query per part, and its arguments."""
        return (" UNION ALL ".join(_from_tasks(select, [*terms, part], source)
                                   + f" GROUP BY {group_by}" for part in parts),
                list(values) * len(parts))

    if where and not by_status:
        return counted("SELECT queue, status, count(*)", where, args, "queue, status")
    statuses_sql, statuses_args = counted("SELECT NULL, status, count(*)", where, args,
                                          "status")
    active_sql, active_args = counted(
        "SELECT queue, status, count(*)",
        [f"status IN ({', '.join('?' * len(ACTIVE_STATUSES))})", *where],
        [*ACTIVE_STATUSES, *args], "queue, status")
    return f"{statuses_sql} UNION ALL {active_sql}", [*statuses_args, *active_args]


def _from_tasks(select: str, where: list[str | None], source: str = "tasks") -> str:
    """``select`` from ``source`` (the tasks table), with the WHERE of ``where``'s terms if any."""
    terms = [term for term in where if term is not None]
    return f"{select} FROM {source}" + (" WHERE " + " AND ".join(terms) if terms else "")


class TaskPage(NamedTuple):
    """A page of ``Store.page_tasks`` and the cursor of the next one (None at the end)."""

    tasks: list[Task]
    next_cursor: str | None
    # the characters of JSON its tasks' values were stored as: a large page is decoded,
    # and best encoded again, off the event loop (see LARGE_PAGE_CHARS)
    stored_chars: int = 0


# a page past this much stored JSON is decoded on a thread: 100 tasks of 1 MB results
# each held the event loop of a server (every other request, every websocket) for ~2.5 s
LARGE_PAGE_CHARS = 1_000_000


def stored_json_chars(rows: Sequence[sqlite3.Row]) -> int:
    """The characters of the JSON columns of ``rows`` (what decoding them walks)."""
    if not rows:
        return 0
    columns = [c for c in rows[0].keys() if c in JSON_COLUMNS]  # noqa: SIM118 (a Row iterates values)
    return sum(len(v) for row in rows for c in columns if isinstance(v := row[c], str))


# how the statuses' term of task_filters begins (it is always the first term)
STATUS_TERMS = ("status IN (", "likelihood(status IN (")


def task_filters(statuses: Iterable[str] | None, name: str | None, kind: str | None,
                  owners: Iterable[str] | None, queue: str | None, task_key: str | None,
                  key_prefix: str | None, idempotency_key: str | None, parent_id: str | None,
                  worker_id: str | None, search: str | None, schedule_id: str | None = None
                  ) -> tuple[list[str], list[Any]] | None:
    """WHERE terms and their arguments of the list filters; None when nothing can match.

    Text that is not Unicode (a lone surrogate, left by a bad decode) raises
    ``InvalidRequest`` naming its field: SQLite takes UTF-8 only.
    """
    statuses = None if statuses is None else list(statuses)
    owners = None if owners is None else list(owners)
    for field, value in (("name", name), ("kind", kind), ("queue", queue),
                         ("task_key", task_key), ("key_prefix", key_prefix),
                         ("idempotency_key", idempotency_key), ("parent_id", parent_id),
                         ("worker_id", worker_id), ("search", search),
                         ("schedule_id", schedule_id), *(("owner", o) for o in owners or ()),
                         *(("status", s) for s in statuses or ())):
        if isinstance(value, str) and not is_unicode(value):
            raise InvalidRequest(f"{field} is not valid text", errors=[
                {"field": field, "message": "not valid Unicode (a lone surrogate)"}])
    where: list[str] = []
    args: list[Any] = []
    # a key names a task or a few, and tasks still queued or running are few too: beside
    # either, the name and kind (and beside a key, the owner) are checked on the rows
    # that index finds ("+" takes no index). Else the planner walks that name's, kind's or
    # owner's whole history along its index, which gives the created order unsorted: the
    # cards a notebook restores (kind=cell&status=queued,running) read every cell task
    # ever run. An owner's active tasks have an index of their own (migration 15); a key
    # prefix may match most of the history, so it is no key here
    keyed = any(v is not None for v in (task_key, idempotency_key, parent_id, schedule_id))
    active = bool(statuses) and set(statuses) <= set(ACTIVE_STATUSES)
    unindexed = "+" if keyed or active else ""
    if statuses:
        term = f"status IN ({','.join('?' * len(statuses))})"
        if set(statuses) <= set(TERMINAL_STATUSES):
            # most of a long history: tell the planner so, and it walks the sort's index
            # (filtering as it goes) rather than sorting every finished task
            term = f"likelihood({term}, 0.9)"
        where.append(term)
        args += statuses
    for column, value in ((f"{unindexed}name", name), (f"{unindexed}kind", kind),
                          ("queue", queue), ("task_key", task_key),
                          ("idempotency_key", idempotency_key), ("parent_id", parent_id),
                          ("worker_id", worker_id), ("schedule_id", schedule_id)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if owners is not None:
        if not owners:
            return None
        where.append(f"{'+' if keyed else ''}owner IN ({','.join('?' * len(owners))})")
        args += owners
    if key_prefix is not None:
        # a range keeps the task_key index usable where LIKE would not
        where.append("task_key >= ? AND task_key < ?")
        args += [key_prefix, key_prefix + "\U0010ffff"]
    if search:
        # an id prefix by instr, not LIKE: '%' or '_' typed in the box are no wildcards.
        # For an ASCII needle SQLite's own lower(), a fraction of a Python call a row: the
        # text's other letters cannot be the needle's (but for rare ones Python lowers to
        # ASCII, such as the Kelvin sign)
        needle = search.lower()
        lower = "lower" if needle.isascii() else FOLD_CASE_FUNCTION
        tail = " OR substr(id, -?) = ?" if is_id_tail(needle) else ""
        where.append(f"(instr({lower}(ifnull(label, '')), ?) "
                     f"OR instr({lower}(ifnull(name, '')), ?) OR instr(id, ?) = 1{tail})")
        args += [needle, needle, needle] + ([len(needle), needle] if tail else [])
    return where, args


_ID_TAIL = re.compile(r"[0-9a-f]{6,32}")


def is_id_tail(needle: str) -> bool:
    """Whether a search may be the end of an id, as the views show ids (their last ten
    characters): six hex digits or more, which a random id's end matches one time in
    sixteen million, so no other task comes up by chance."""
    return _ID_TAIL.fullmatch(needle) is not None


# ------------------------------------------------------------------ search index

# the text the search index (migration 9, task_search) holds of a task: its triggers
# spell the same for the old and new row
SEARCH_TEXT_SQL = "lower(ifnull(label, '')) || char(10) || lower(ifnull(name, ''))"
# a search is answered from the index when its pieces are in at most SEARCH_HITS_MAX
# tasks and at most SEARCH_BACKLOG_MAX rowids wait to be indexed; else by the sort's walk
# over tasks, which a common word's many matches end quickly (a page is soon full).
# Over a million tasks a hit costs ~1.5-3 us (1,100: 6 ms, 11,000: 30 ms, 111,000:
# 150 ms), the walk ~1 us a task it passes: 1 s for 11,000 hits all far from its start
SEARCH_HITS_MAX = 5000
SEARCH_BACKLOG_MAX = 5000
# Past SEARCH_HITS_MAX, a page in created order still reads the hits when the walk would
# pass more than SEARCH_WALK_PER_HIT tasks per hit to fill it, up to SEARCH_HITS_FAR_MAX
# hits (~200 ms of reading, the most a wrong guess of the walk costs): many old hits,
# which the walk from the newest task reaches only at the end
SEARCH_WALK_PER_HIT = 2
SEARCH_HITS_FAR_MAX = 150_000
# A newest-first page of such a search first reads the hits nearest its start: this many
# times the page (fourfold again while the page is not whole, up to NEAR_HITS_MAX),
# unless more than NEAR_DISORDER_MAX tasks were inserted out of id order (an import)
NEAR_HITS_FIRST = 4
NEAR_HITS_MAX = 5000
NEAR_DISORDER_MAX = 1000
# trigrams of a long needle asked of the index: a few narrow as well as all of them
SEARCH_GRAMS_MAX = 12
# tasks indexed per transaction at most: ~10 ms of the writer
SEARCH_INDEX_BATCH = 500
# queued changes (deleted tasks, mostly) per transaction at most: a deletion costs the
# index ~40 us, several times an insertion (over a million tasks, 200 a batch: 6 ms at the
# median; 500: 15 ms, and up to 97 ms)
SEARCH_QUEUE_BATCH = 200
# A batch's time on the writer: past it, the batch stops after its current step and
# commits what it did. Sizes alone left a batch's time to the machine: during a
# million-task prune (a checkpoint copying, submits committing) a batch of 200
# deletions and its merge took 50-90 ms where they took 8 ms alone.
SEARCH_BATCH_SECONDS = 0.015
# the steps between two looks at the clock: queued changes, then tasks
SEARCH_QUEUE_STEP = 25
SEARCH_INDEX_STEP = 100
# pages of the index's segments merged after each batch (migration 9 turns its own
# merging off), in steps: merging a whole level inside one batch took up to 160 ms,
# and 50 pages in one step up to 34 ms with nothing else running (4-6 ms at the
# median), where a step of 16 takes 1-3 ms. A batch owes SEARCH_MERGE_STEPS steps,
# each in a transaction of its own: the first right after it, the others while the
# batch's time lasts, and the store pays the rest later (see Store.index_search).
# The merging must keep pace with what goes in, else the segments pile up: cut short
# at the batch's time and never paid, it left searches up to 1.8x slower after
# 200,000 tasks; done whole in each batch, submits during a million-task prune
# waited up to 160-200 ms where they waited 85-89 ms with the steps paid later. A
# step stops only between two of the index's terms, so one that meets a common
# piece's entries (a piece in most of a million tasks, 900k of them being deleted)
# takes them whole: 50-64 ms, at 4 pages a step as at 16. Steps of 4 pages cost 2.25
# times as much in all (27,000 of them against 6,750 of 16, draining those 900k
# deletions). Such a step in the same transaction as a batch of deletions held the
# writer up to 85-93 ms; a merge transaction that took further steps while it had
# time left, up to 102 ms.
SEARCH_MERGE_PAGES = 16
SEARCH_MERGE_STEPS = 3

# rowids past the mark: tasks a search reads directly
SEARCH_BACKLOG = ("SELECT ifnull((SELECT max(rowid) FROM tasks), 0) - indexed_to "
                  "FROM task_search_mark")
# is any work left for tx_index_search?
SEARCH_WORK_LEFT = (f"SELECT ({SEARCH_BACKLOG}) > 0 "
                    "OR EXISTS (SELECT 1 FROM task_search_queue)")
SEARCH_PROBE = ("SELECT (SELECT count(*) FROM (SELECT 1 FROM task_search "
                "WHERE task_search MATCH ? LIMIT ?)), "
                f"({SEARCH_BACKLOG})")
# where a walk in created order starts (the cursor's task, else past either end), and
# the last rowid
SEARCH_WALK_START = ("SELECT ifnull((SELECT rowid FROM tasks WHERE id = ?), ?), "
                     "ifnull((SELECT max(rowid) FROM tasks), 0)")
# the rowid of the n-th hit (OFFSET) after a walk's start, in its direction
SEARCH_NTH_HIT = {
    descending: "SELECT rowid FROM task_search WHERE task_search MATCH ? AND rowid "
                f"{'<' if descending else '>'} ? ORDER BY rowid "
                f"{'DESC' if descending else 'ASC'} LIMIT 1 OFFSET ?"
    for descending in (True, False)}


def _gram_token(gram: str) -> str:
    # hex of the UTF-8: letters and digits the ascii tokenizer keeps whole, whatever the
    # text (spaces, punctuation, any script); UTF-8 is prefix-free, so no two pieces share one
    return gram.encode("utf-8", "surrogatepass").hex()


def search_grams(text: str) -> str:
    """What the index holds of a task's text: a token per distinct piece of 1 to 3 characters.

    Every substring of the text, of any length, is made of pieces it holds: a piece
    of up to three characters is one; a longer one is its trigrams. The text is
    lowered here, every letter (SEARCH_TEXT_SQL lowers ASCII's only), as a needle is.
    """
    text = text.lower()
    pieces = dict.fromkeys(text[i:i + n] for n in (1, 2, 3) for i in range(len(text) - n + 1))
    return " ".join(_gram_token(piece) for piece in pieces)


def search_match(needle: str) -> str | None:
    """The index query every task containing ``needle`` satisfies; None for an empty one.

    The needle itself up to three characters, else its trigrams (all of them up to
    SEARCH_GRAMS_MAX, else that many spread over it).
    """
    if not needle:
        return None
    grams = [needle] if len(needle) <= 3 else \
        list(dict.fromkeys(needle[i:i + 3] for i in range(len(needle) - 2)))
    if len(grams) > SEARCH_GRAMS_MAX:  # spread over the needle, its last one included
        last = len(grams) - 1
        grams = [grams[i * last // (SEARCH_GRAMS_MAX - 1)] for i in range(SEARCH_GRAMS_MAX)]
    # each token quoted: a string, never FTS5 query syntax
    return " ".join(f'"{_gram_token(gram)}"' for gram in grams)


# what search_hits copies of each hit: the columns its query's filters and sort name
# (hit_columns); the page's own rows are then read whole (whole_rows_query), as a result
# or the params can be large. Over 11,000 hits, copying whole rows was 58 ms of a 84 ms
# search; the four columns of a search in created order take ~16 ms
def hit_columns(query_sql: str) -> str:
    """The columns of tasks that ``query_sql`` (a query's terms over the hits) names, and id."""
    named = set(re.findall(r"[a-z_]+", query_sql)) & set(_TASK_COLUMNS)
    return ", ".join(sorted(named | {"id"}))


def search_hits(match: str, needle: str, columns: str,
                near: tuple[int, int] | None = None) -> tuple[str, list[Any]]:
    """``WITH search_hits``: the tasks a search may match, for ``page_query``'s ``source``.

    Those the index gives for ``match``, those not indexed yet (past the mark, or
    relabelled and queued), and those whose id starts with ``needle``. Materialized,
    so the page's filters and sort run over these few rows, not through an index of
    the whole history. A superset: the search's own WHERE term (``task_filters``)
    still decides. Each row is the task's rowid (``task_rowid``) and ``columns``
    (``hit_columns``): a page selected from it is read whole by ``whole_rows_query``.
    With ``near`` (a rowid, a count) only that many of the index's hits below that
    rowid, nearest first, and every task inserted out of id order (``task_disorder``).
    """
    if near is None:
        indexed, indexed_args = "SELECT rowid FROM task_search WHERE task_search MATCH ?", [match]
    else:
        indexed = (f"SELECT rowid FROM ({SEARCH_NEAR_HITS}) "
                   "UNION ALL SELECT task_rowid FROM task_disorder")
        indexed_args = [match, *near]
    # an id's end (what the views show): read off the id index whole (a scan of short
    # keys, for such searches only)
    tail, tail_args = ("UNION ALL SELECT rowid FROM tasks WHERE substr(id, -?) = ?",
                       [len(needle), needle]) if is_id_tail(needle) else ("", [])
    return ("WITH search_hits AS MATERIALIZED (SELECT rowid AS task_rowid, "
            f"{columns} FROM tasks WHERE rowid IN ({indexed} "
            "UNION ALL SELECT rowid FROM tasks "
            "WHERE rowid > (SELECT indexed_to FROM task_search_mark) "
            "UNION ALL SELECT task_rowid FROM task_search_queue WHERE op = 'insert' "
            f"UNION ALL SELECT rowid FROM tasks WHERE id >= ? AND id < ? {tail})) ",
            [*indexed_args, needle, needle + "\U0010ffff", *tail_args])


# the index's hits below a rowid, nearest first (arguments: match, rowid, how many)
SEARCH_NEAR_HITS = ("SELECT rowid FROM task_search WHERE task_search MATCH ? AND rowid < ? "
                    "ORDER BY rowid DESC LIMIT ?")
# how many tasks were inserted out of id order, counted up to a limit
DISORDER_COUNT = "SELECT count(*) FROM (SELECT 1 FROM task_disorder LIMIT ?)"
# Above what id a page read from SEARCH_NEAR_HITS is whole (near_page_query): the id of
# the nearest indexed task in id order below the last hit read (near_last). Every hit
# the page did not read is such a task (it reads all others: those out of order and
# those not indexed yet), and such tasks' ids rise with their rowids. near_cut 0: the
# page read every hit below its rowid; a NULL near_bound: no such task lies below.
_NEAR_LAST = ("near_last AS (SELECT rowid FROM task_search WHERE task_search MATCH ? "
              "AND rowid < ? ORDER BY rowid DESC LIMIT 1 OFFSET ?)")
_NEAR_BOUND = (
    "(SELECT count(*) FROM near_last) AS near_cut, "
    "(SELECT (SELECT id FROM tasks WHERE rowid < near_last.rowid "
    "AND rowid <= (SELECT indexed_to FROM task_search_mark) "
    "AND rowid NOT IN (SELECT task_rowid FROM task_disorder) ORDER BY rowid DESC LIMIT 1) "
    "FROM near_last) AS near_bound")


def near_page_query(with_sql: str, page_sql: str) -> str:
    """A newest-first page over ``search_hits`` read near a rowid, and where it is whole.

    One statement, so the hits, the page and its bound are read in one snapshot (an
    index batch or a prune between two would move the hits under the bound). Its
    arguments: ``search_hits``' (with ``near``), (match, rowid, hits read - 1), the
    page's. Each row has ``near_cut`` and ``near_bound`` (_NEAR_BOUND); an empty page
    is one row with a NULL id.
    """
    return (f"{with_sql.rstrip()}, {_NEAR_LAST}, near_page AS ({page_sql}) "
            f"SELECT near_page.*, near.* FROM (SELECT {_NEAR_BOUND}) AS near "
            "LEFT JOIN near_page ON 1 ORDER BY near_page.id DESC")


# rowids per whole_rows_query (under any SQLite's limit on bound variables, 999 before 3.32)
WHOLE_ROWS_PER_READ = 500


def whole_rows_query(count: int) -> str:
    """The whole rows of ``count`` tasks by rowid (``task_rowid``, then every column)."""
    return f"SELECT rowid AS task_rowid, * FROM tasks WHERE rowid IN ({','.join('?' * count)})"


def tx_index_search(conn: sqlite3.Connection, limit: int,
                    seconds: float = SEARCH_BATCH_SECONDS, forget: bool = True) -> int:
    """Bring the search index one batch nearer the tasks table; how many rows it took.

    First (unless not ``forget``) up to SEARCH_QUEUE_BATCH changes the triggers queued
    (deleted tasks' texts out, relabelled ones' in), in their order; then up to ``limit``
    tasks past the mark go in, unless the mark sits below a deleted task still queued: a task there
    reuses its rowid, and the old text must be out before the new one goes in (the
    old one's deletion would take the pieces both share). Stops at the first step
    (SEARCH_QUEUE_STEP changes, SEARCH_INDEX_STEP tasks) that ends past ``seconds``;
    the first step is always taken, so every batch moves the index on. The merging
    the batch calls for is ``tx_merge_search``'s, in a transaction of its own.
    """
    deadline = time.perf_counter() + seconds
    queued = conn.execute("SELECT seq, task_rowid, op, text FROM task_search_queue "
                          "ORDER BY seq LIMIT ?", (SEARCH_QUEUE_BATCH,)).fetchall() \
        if forget else []
    taken = 0
    for _, rowid, op, text in queued:
        if taken and taken % SEARCH_QUEUE_STEP == 0 and time.perf_counter() >= deadline:
            break
        if op == "delete":
            conn.execute("INSERT INTO task_search (task_search, rowid, grams) "
                         "VALUES ('delete', ?, ?)", (rowid, search_grams(text)))
        else:
            conn.execute("INSERT INTO task_search (rowid, grams) VALUES (?, ?)",
                         (rowid, search_grams(text)))
        taken += 1
    if taken:
        conn.execute("DELETE FROM task_search_queue WHERE seq <= ?", (queued[taken - 1][0],))
    if forget and taken == len(queued) < SEARCH_QUEUE_BATCH:  # none left
        conn.execute("UPDATE task_search_mark SET pending_max = 0 WHERE pending_max != 0")
    mark, pending_max, highest = conn.execute(
        "SELECT indexed_to, pending_max, max_id FROM task_search_mark").fetchone()
    rows = [] if mark < pending_max or (taken and time.perf_counter() >= deadline) \
        else conn.execute(
            f"SELECT rowid, id, {SEARCH_TEXT_SQL} FROM tasks WHERE rowid > ? ORDER BY rowid "
            "LIMIT ?", (mark, int(limit))).fetchall()
    indexed = 0
    disorder = []
    while indexed < len(rows):
        if indexed and time.perf_counter() >= deadline:
            break
        step = rows[indexed:indexed + SEARCH_INDEX_STEP]
        conn.executemany("INSERT INTO task_search (rowid, grams) VALUES (?, ?)",
                         [(rowid, search_grams(text)) for rowid, _, text in step])
        # (Python orders str as SQLite orders UTF-8 text: by code point)
        for rowid, task_id, _ in step:
            if task_id < highest:
                disorder.append((rowid,))
            else:
                highest = task_id
        indexed += len(step)
    if indexed:
        conn.executemany("INSERT OR IGNORE INTO task_disorder (task_rowid) VALUES (?)",
                         disorder)
        conn.execute("UPDATE task_search_mark SET indexed_to = ?, max_id = ?",
                     (rows[indexed - 1][0], highest))
    return taken + indexed


# Forgetting a deleted task costs the search index a deletion (~40 us, several times an
# insertion) and the merge steps that drain it. Pruning 900k of a million tasks, such
# steps took up to 93-115 ms each (a piece of text most tasks share is one long term,
# which a step takes whole), and the drain up to 137 s. When more deleted tasks wait
# to leave the index than there are tasks, it starts over instead (Store.prune): the
# queue is emptied (tx_clear_search_queue), the index set aside for a new empty one
# (tx_restart_search), and the old one's pages deleted (tx_drop_old_search), each in
# transactions of SEARCH_BATCH_SECONDS: done in one, that took 658 ms. The batches
# then index the tasks left, which searches read directly meanwhile.
# How many changes the queue holds (read off its ends: it is drained from the front,
# so its seqs run unbroken), and how many tasks there are, counted up to that many (the
# smaller of the two is what the reads cost).
SEARCH_QUEUED_CHANGES = ("SELECT ifnull((SELECT max(seq) FROM task_search_queue) "
                         "- (SELECT min(seq) FROM task_search_queue) + 1, 0)")
TASKS_UP_TO = "SELECT count(*) FROM (SELECT 1 FROM tasks LIMIT ?)"
# whether a batch's worth is left: tasks past the mark, or (arguments) queued changes
# (a prune that holds its deletions passes a number none reaches)
SEARCH_BATCH_LEFT = (f"SELECT ({SEARCH_BACKLOG}) >= ? OR ({SEARCH_QUEUED_CHANGES}) >= ?")
# the index as migration 9 made it, with its own merging off
SEARCH_INDEX_TABLE = ("CREATE VIRTUAL TABLE task_search USING fts5("
                      "grams, content='', detail=none, columnsize=0, tokenize='ascii')")
SEARCH_INDEX_CONFIG = (("automerge", 0), ("crisismerge", 64))
# an index set aside, its pages not all deleted yet
SEARCH_DROPPED_EXISTS = ("SELECT EXISTS (SELECT 1 FROM sqlite_schema "
                         "WHERE name = 'task_search_dropped')")
# rows deleted between two looks at the clock: queued changes (~80 a page), and pages
# of the index set aside (FTS5 keeps its own records at rowids 1 and 10, which its
# DROP TABLE reads)
SEARCH_CLEAR_STEP = 1000
SEARCH_DROP_STEP = 100


def _delete_in_steps(conn: sqlite3.Connection, sql: str, step: int, seconds: float) -> bool:
    """Run a DELETE of up to ``step`` rows (its one argument) until one deletes fewer, or
    for about ``seconds``; whether rows may be left."""
    deadline = time.perf_counter() + seconds
    while conn.execute(sql, (step,)).rowcount == step:
        if time.perf_counter() >= deadline:
            return True
    return False


def tx_clear_search_queue(conn: sqlite3.Connection,
                          seconds: float = SEARCH_BATCH_SECONDS) -> bool:
    """Delete queued changes, oldest first, for about ``seconds``; whether any are left."""
    return _delete_in_steps(conn, "DELETE FROM task_search_queue WHERE seq IN "
                            "(SELECT seq FROM task_search_queue ORDER BY seq LIMIT ?)",
                            SEARCH_CLEAR_STEP, seconds)


def tx_restart_search(conn: sqlite3.Connection) -> bool:
    """Set the search index aside for an empty one: every task past the mark, none queued
    to leave it. False (nothing done) while another set aside is still there."""
    if conn.execute(SEARCH_DROPPED_EXISTS).fetchone()[0]:
        return False
    conn.execute("ALTER TABLE task_search RENAME TO task_search_dropped")
    conn.execute(SEARCH_INDEX_TABLE)
    conn.executemany("INSERT INTO task_search (task_search, rank) VALUES (?, ?)",
                     SEARCH_INDEX_CONFIG)
    # what was queued since the queue was emptied (no trigger queues below a mark of 0)
    conn.execute("DELETE FROM task_search_queue")
    conn.execute("DELETE FROM task_disorder")
    conn.execute("UPDATE task_search_mark SET indexed_to = 0, pending_max = 0, max_id = ''")
    return True


def tx_drop_old_search(conn: sqlite3.Connection, seconds: float = SEARCH_BATCH_SECONDS) -> bool:
    """Delete the pages of the index set aside for about ``seconds``, and the index once
    they are gone; whether any is left."""
    if not conn.execute(SEARCH_DROPPED_EXISTS).fetchone()[0]:
        return False
    if _delete_in_steps(conn, "DELETE FROM task_search_dropped_data WHERE rowid IN (SELECT "
                        "rowid FROM task_search_dropped_data WHERE rowid > 10 LIMIT ?)",
                        SEARCH_DROP_STEP, seconds):
        return True
    conn.execute("DROP TABLE task_search_dropped")
    return False


# tasks settled per transaction at most (see migration 11): each enters the ~15
# indexes of the list's filters and sorts, where a batch's entries share pages
SETTLE_BATCH = 500
# the ended tasks waiting to settle, along tasks_settling (a task queued with an end
# time, which only an import writes, is left to the queued jobs' turn)
SETTLE_WHERE = ("fresh = 1 AND finished_at IS NOT NULL "
                "AND status NOT IN ('queued', 'running')")
SETTLE_SELECT = f"SELECT rowid FROM tasks WHERE {SETTLE_WHERE} LIMIT ?"
# the jobs queued before an id (a time: new_task_id), along tasks_fresh from the oldest
SETTLE_WAITING_WHERE = "fresh = 1 AND id < ? AND status = 'queued'"
SETTLE_WAITING_SELECT = f"SELECT rowid FROM tasks WHERE {SETTLE_WAITING_WHERE} LIMIT ?"
# is any task waiting? (a read: an idle store takes no write lock to find out); its
# argument: the id before which a queued job has waited long enough
SETTLE_WORK_LEFT = (f"SELECT EXISTS (SELECT 1 FROM tasks WHERE {SETTLE_WHERE}) "
                    f"OR EXISTS (SELECT 1 FROM tasks WHERE {SETTLE_WAITING_WHERE})")


def queued_before(seconds_ago: float) -> str:
    """The smallest id a job queued ``seconds_ago`` would have had (ids begin with the time)."""
    return f"{max(0, time.time_ns() - int(seconds_ago * 1e9)):016x}"


def tx_settle(conn: sqlite3.Connection, limit: int = SETTLE_BATCH,
              waited: str = "") -> int:
    """Settle up to ``limit`` fresh tasks: ended ones, then jobs queued before ``waited``."""
    settled = conn.execute(f"UPDATE tasks SET fresh = NULL WHERE rowid IN ({SETTLE_SELECT})",
                           (int(limit),)).rowcount
    if settled < limit and waited:
        settled += conn.execute(
            f"UPDATE tasks SET fresh = NULL WHERE rowid IN ({SETTLE_WAITING_SELECT})",
            (waited, int(limit) - settled)).rowcount
    return settled


def tx_merge_search(conn: sqlite3.Connection) -> None:
    """One step merging the search index's segments (SEARCH_MERGE_PAGES pages)."""
    conn.execute("INSERT INTO task_search (task_search, rank) VALUES ('merge', ?)",
                 (SEARCH_MERGE_PAGES,))


def encode_list_cursor(sort: str, order: str, value: Any, task_id: str, now: float) -> str:
    raw = json.dumps([sort, order, value, task_id, now], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_list_cursor(cursor: str, sort: str, order: str) -> tuple[Any, str, float]:
    """(sort value, id, clock) of a cursor made for this sort and order, else InvalidRequest."""
    def bad(why: str) -> InvalidRequest:
        return InvalidRequest(f"invalid cursor: {why}",
                              errors=[{"field": "cursor", "message": why}])

    if sort == "created":
        if not _TASK_ID_RE.fullmatch(cursor):
            raise bad("not a next_cursor of this sort and order")
        return None, cursor, 0.0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_for, made_order, value, task_id, now = json.loads(raw)
    except (ValueError, TypeError, RecursionError):  # forged: nested past the parser
        raise bad("not a next_cursor of this API") from None
    if made_for != sort or made_order != order:
        raise bad(f"made for sort={made_for} order={made_order}, not sort={sort} order={order}")
    if not (isinstance(task_id, str) and _TASK_ID_RE.fullmatch(task_id)
            and _sql_value(value) and isinstance(now, (int, float)) and math.isfinite(now)):
        raise bad("not a next_cursor of this API")
    return value, task_id, float(now)


def _sql_value(value: Any) -> bool:
    """A value a sort column holds: text, a finite float, or an int of 64 bits (what SQLite
    can bind; a forged cursor's 2**64 would be an OverflowError, not a refused cursor, and
    its lone surrogate a UnicodeEncodeError)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -2**63 <= value < 2**63
    if isinstance(value, str):
        return is_unicode(value)
    return isinstance(value, float) and math.isfinite(value)


_TASK_ID_RE = re.compile(r"^[0-9a-f]{32}$")


_TASK_COLUMNS = [
    "id", "kind", "mode", "status", "name", "label", "params", "spec", "result", "error",
    "progress", "task_key", "idempotency_key", "payload_hash", "queue", "priority", "owner",
    "origin", "attempts", "max_retries", "lost_attempts", "retry_reason", "timeout",
    "memory_limit_mb", "not_before", "parent_id", "relationship", "schedule_id", "worker_id",
    "lease_expires_at", "cancel_requested", "confirmation",
    "callback_url", "resource_usage", "content_hashes", "process", "value_notes", "created_at",
    "started_at", "finished_at", "updated_at",
]
# a task not ended goes in fresh (migration 11), an ended one (an import) settled at once;
# ?N is the N-th value again: its status, its finished_at
_INSERT_TASK = (
    f"INSERT INTO tasks ({', '.join(_TASK_COLUMNS)}, fresh) "
    f"VALUES ({', '.join('?' * len(_TASK_COLUMNS))}, "
    f"CASE WHEN ?{_TASK_COLUMNS.index('finished_at') + 1} IS NULL "
    f"OR ?{_TASK_COLUMNS.index('status') + 1} IN ('queued', 'running') THEN 1 END)"
)


_TASK_JSON_AT = [i for i, c in enumerate(_TASK_COLUMNS) if c in JSON_COLUMNS]
_TASK_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Task)
                  if f.default is not dataclasses.MISSING}


def task_row_values(row: Mapping[str, Any]) -> list[Any]:
    """One row of ``insert_task_rows`` as the values of ``_INSERT_TASK``, encoded."""
    problems = [{"field": column, "message": "not a task column"}
                for column in sorted(row.keys() - set(_TASK_COLUMNS))]
    problems += [{"field": column, "message": "required"}
                 for column in _TASK_COLUMNS if column not in _TASK_DEFAULTS and column not in row]
    if problems:
        raise InvalidRequest(f"invalid task row: {problems}", errors=problems)
    return [encode_column(column, row.get(column, _TASK_DEFAULTS.get(column)))
            for column in _TASK_COLUMNS]


def tx_insert_rows(conn: sqlite3.Connection, values: list[list[Any]]) -> int:
    conn.executemany(_INSERT_TASK, values)
    return len(values)


def _insert_task(conn: sqlite3.Connection, task: Task,
                 encoded: Mapping[str, str] | None = None) -> None:
    values = [getattr(task, c) for c in _TASK_COLUMNS]
    for i in _TASK_JSON_AT:
        if encoded and _TASK_COLUMNS[i] in encoded:
            values[i] = encoded[_TASK_COLUMNS[i]]
        elif values[i] is not None:
            values[i] = encode_value(values[i], where=_TASK_COLUMNS[i]).text
    values[_TASK_COLUMNS.index("cancel_requested")] = int(task.cancel_requested)
    conn.execute(_INSERT_TASK, values)
    insert_event(conn, task, EventType.for_status(task.status_enum), task.created_at)


def tx_create_task(conn: sqlite3.Connection, task: Task,
                    encoded: Mapping[str, str]) -> tuple[Task, bool]:
    if task.idempotency_key is not None:
        row = conn.execute(
            "SELECT * FROM tasks WHERE ifnull(owner, '') = ifnull(?, '') AND idempotency_key = ?",
            (task.owner, task.idempotency_key),
        ).fetchone()
        if row is not None:
            existing = Task.from_row(row)
            if existing.payload_hash != task.payload_hash:
                raise IdempotencyConflict(
                    f"idempotency key {task.idempotency_key!r} was already used by task "
                    f"{existing.id} with a different payload"
                )
            return existing, True
    if task.task_key is not None:
        row = conn.execute(
            "SELECT * FROM tasks WHERE ifnull(owner, '') = ifnull(?, '') AND task_key = ? "
            "AND status IN (?, ?)",
            (task.owner, task.task_key, *ACTIVE_STATUSES),
        ).fetchone()
        if row is not None:
            return Task.from_row(row), True
    if task.parent_id is not None and conn.execute(
            "SELECT 1 FROM tasks WHERE id = ?", (task.parent_id,)).fetchone() is None:
        # a rerun or fork that read its parent just before a DELETE committed: it would
        # run the params the user just deleted, its lineage naming nothing
        raise TaskNotFound(f"task {task.parent_id}, which it would run again, was deleted")
    _insert_task(conn, task, encoded)
    return task, False


def tx_create_many(conn: sqlite3.Connection, tasks: list[Task]) -> list[Task]:
    for task in tasks:
        _insert_task(conn, task)
    return tasks


def update_task(
    conn: sqlite3.Connection,
    task_id: str,
    changes: dict[str, Any],
    when_status: Sequence[str] | None = None,
    when_worker: str | None = None,
) -> Task | None:
    changes = {**changes, "updated_at": changes.get("updated_at", time.time())}
    sets = ", ".join(f"{column} = ?" for column in changes)
    args = [encode_column(c, v) for c, v in changes.items()]
    sql = f"UPDATE tasks SET {sets} WHERE id = ?"
    args.append(task_id)
    if when_status is not None:
        sql += f" AND status IN ({','.join('?' * len(when_status))})"
        args += list(when_status)
    if when_worker is not None:
        sql += " AND worker_id = ?"
        args.append(when_worker)
    row = conn.execute(sql + " RETURNING *", args).fetchone()
    return Task.from_row(row) if row else None


def tx_transition(
    conn: sqlite3.Connection,
    task_id: str,
    changes: dict[str, Any],
    event: EventType | str | None,
    when_status: Sequence[str] | None,
    when_worker: str | None,
) -> Task | None:
    task = update_task(conn, task_id, changes, when_status, when_worker)
    if task is not None and event is not None:
        insert_event(conn, task, event, task.updated_at)
    return task



def tx_updates(
    conn: sqlite3.Connection,
    progress: list[tuple[str, dict[str, Any]]],
    logs: list[tuple[str, list[tuple[float, str, str]]]],
    tails: list[LogTailWrite],
) -> list[list[int]]:
    for task_id, entries in logs:
        tx_append_logs(conn, task_id, entries)
    # after the heads: a tail's first flush follows its head's last rows
    written = [tx_write_log_tail(conn, tail) for tail in tails]
    now = time.time()
    for task_id, value in progress:
        changed = conn.execute(
            "UPDATE tasks SET progress = ?, updated_at = ? WHERE id = ? AND status = 'running'",
            (encode_value(value, where="progress").text, now, task_id),
        ).rowcount
        if changed:
            insert_event(conn, task_id, EventType.PROGRESS, now)
    return written


def tx_request_cancel(conn: sqlite3.Connection, task_id: str) -> tuple[Task, bool]:
    """(the task, whether this call ended it): a queued task ends cancelled at once, a
    running one is asked to stop (its owner writes the end)."""
    now = time.time()
    task = update_task(
        conn, task_id,
        {"status": TaskStatus.CANCELLED.value, "cancel_requested": True, "finished_at": now,
         "updated_at": now},
        (TaskStatus.QUEUED.value,),
    )
    if task is not None:
        insert_event(conn, task, EventType.CANCELLED, now)
        return task, True
    current = _get_task(conn, task_id)
    if current is None:
        raise TaskNotFound(f"no task with id {task_id}")
    if current.status == TaskStatus.CANCELLED.value:
        return current, False
    if current.is_terminal:
        raise TaskStateConflict(f"task {task_id} already ended {current.status}")
    if current.cancel_requested:
        return current, False
    task = update_task(conn, task_id, {"cancel_requested": True, "updated_at": now})
    assert task is not None
    insert_event(conn, task, EventType.CANCEL_REQUESTED, now)
    return task, False


def tx_answer(conn: sqlite3.Connection, task_id: str, answer: str,
              asked_at: float | None = None) -> Task:
    from ..exceptions import InvalidAnswer, NothingToConfirm

    task = _get_task(conn, task_id)
    if task is None:
        raise TaskNotFound(f"no task with id {task_id}")
    pending = task.confirmation
    if task.is_terminal or not pending or pending.get("answer") is not None:
        pending = None
    if asked_at is not None and (pending is None or pending.get("asked_at") != asked_at):
        # the question answered is gone (answered elsewhere, maybe followed by another):
        # given to the next one, a "yes" would answer a question its sender never saw
        now = f"; it now asks {pending.get('prompt')!r}" if pending else ""
        raise NothingToConfirm(f"task {task_id} no longer asks that question{now}")
    if pending is None:
        raise NothingToConfirm(f"task {task_id} is not waiting for a confirmation")
    choices = pending.get("choices") or []
    if answer not in choices:
        raise InvalidAnswer(
            f"answer {answer!r} is not one of {choices}",
            errors=[{"field": "answer", "message": f"must be one of {choices}"}],
        )
    now = time.time()
    updated = update_task(
        conn, task_id, {"confirmation": {**pending, "answer": answer, "answered_at": now}}
    )
    assert updated is not None
    insert_event(conn, updated, EventType.CONFIRMATION, now)
    return updated


def tx_withdraw_confirmation(conn: sqlite3.Connection, task_id: str) -> str | None:
    """Take back a running task's unanswered question; the answer instead if one came first."""
    task = _get_task(conn, task_id)
    pending = task.confirmation if task is not None and not task.is_terminal else None
    if not pending:
        return None
    if pending.get("answer") is not None:
        return pending["answer"]
    now = time.time()
    updated = update_task(conn, task_id, {"confirmation": None, "updated_at": now})
    assert updated is not None
    insert_event(conn, updated, EventType.CONFIRMATION, now)
    return None


# the fields of a task.deleted snapshot that held the task's data, not its identity
_DELETED_DATA = ("params", "result", "error", "retry_reason", "progress", "confirmation",
                 "origin")
_FORGET_EVENT_DATA = ("UPDATE events SET task = json_set(task, "
                      + ", ".join(f"'$.{field}', NULL" for field in _DELETED_DATA)
                      + ") WHERE id = last_insert_rowid()")


def tx_delete(conn: sqlite3.Connection, task_id: str) -> Task:
    task = _get_task(conn, task_id)
    if task is None:
        raise TaskNotFound(f"no task with id {task_id}")
    if not task.is_terminal:
        raise TaskStateConflict(f"task {task_id} is {task.status}; cancel it before deleting")
    # the event first: its snapshot is read from the row about to go, and its id stays
    # the highest (the events below it go: a reused id would be one a client has seen)
    insert_event(conn, task, EventType.DELETED, time.time())
    # a DELETE is how a user takes back params or a result that should not have been
    # kept: what the events recorded of the task goes too, and its task.deleted names it
    # (id, name, label, owner, status, times) without its data
    conn.execute(_FORGET_EVENT_DATA)
    conn.execute("DELETE FROM events WHERE task_id = ? AND id < last_insert_rowid()",
                 (task_id,))
    conn.execute("DELETE FROM tasks WHERE id = ?", (task_id,))
    conn.execute("DELETE FROM task_logs WHERE task_id = ?", (task_id,))
    conn.execute("DELETE FROM artifacts WHERE task_id = ?", (task_id,))
    return task


_INSERT_LOG = "INSERT INTO task_logs (task_id, ts, stream, text) VALUES (?, ?, ?, ?)"


def tx_append_logs(
    conn: sqlite3.Connection, task_id: str, entries: list[tuple[float, str, str]],
    own_line: bool = False,
) -> int:
    if own_line and entries:
        # the first entry starts a line of its own: after a chunk cut mid-line (a
        # program killed as it wrote, a progress line) it was drawn glued to its end
        row = conn.execute("SELECT text FROM task_logs WHERE task_id = ? ORDER BY seq DESC "
                           "LIMIT 1", (task_id,)).fetchone()
        if row is not None and row[0] and not row[0].endswith("\n"):
            ts, stream, text = entries[0]
            entries = [(ts, stream, "\n" + text), *entries[1:]]
    conn.executemany(
        _INSERT_LOG,
        [(task_id, ts, stream, storable_text(text)) for ts, stream, text in entries],
    )
    last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
    insert_event(conn, task_id, EventType.LOG, time.time())
    return last


def tx_write_log_tail(conn: sqlite3.Connection, tail: LogTailWrite) -> list[int]:
    """Add a rolling tail's new rows and drop its oldest; returns the new rows' seqs."""
    conn.executemany("DELETE FROM task_logs WHERE task_id = ? AND seq = ?",
                     [(tail.task_id, seq) for seq in tail.drop])
    seqs = [conn.execute(_INSERT_LOG, (tail.task_id, ts, stream, storable_text(text))).lastrowid
            for ts, stream, text in tail.entries]
    if seqs:
        insert_event(conn, tail.task_id, EventType.LOG, time.time())
    return seqs


def tx_add_artifact(conn: sqlite3.Connection, a: Artifact) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO artifacts (task_id, name, size, sha256, content_type, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (a.task_id, a.name, a.size, a.sha256, a.content_type, a.created_at),
    )


def is_task_id(name: str) -> bool:
    """Whether ``name`` has the form of a task id (32 lowercase hex digits)."""
    return _TASK_ID_RE.fullmatch(name) is not None


def tasks_present_query(task_ids: Sequence[str]) -> tuple[str, list[Any]]:
    """Which of ``task_ids`` (at most a few hundred) have a row."""
    return f"SELECT id FROM tasks WHERE id IN ({','.join('?' * len(task_ids))})", \
        list(task_ids)


def artifacts_query(task_id: str, name: str | None) -> tuple[str, list[Any]]:
    sql = "SELECT task_id, name, size, sha256, content_type, created_at FROM artifacts " \
          "WHERE task_id = ?"
    args: list[Any] = [task_id]
    if name is not None:
        sql += " AND name = ?"
        args.append(name)
    return sql + " ORDER BY name", args


# a prune chunk's first guess; each next chunk is sized from the last one's time, so
# the writer (and every write queued behind it) is held about PRUNE_CHUNK_SECONDS at most
# (a fourth of the 100 ms a write may wait: a chunk under load runs a few times slower)
PRUNE_CHUNK = 500
PRUNE_CHUNK_SECONDS = 0.025
# A chunk also stops at its first PRUNE_STEP tasks that end past PRUNE_CHUNK_SECONDS: a
# size from the last chunk's pace missed now and then by several times (80-150 ms
# chunks in a million-task prune), when its pages were not cached or a checkpoint ran
PRUNE_STEP = 100
# the same for events, by ids (a range of them): an events chunk of one DELETE took
# 50-72 ms in a million-task prune
PRUNE_EVENTS_STEP = 500
# how much pruning (chunks and the writes between them) goes between two checkpoints:
# the automatic checkpoint, still due now and then, copies only what came since. On a
# million-task prune beside a writer: 0.25 s, longest write 92 ms (one run); 0.1 s, 71-107
# ms (five runs); 0.05 s, 63 ms, the prune twice as long (65 s); after every chunk, 10 min
PRUNE_CHECKPOINT_SECONDS = 0.05


# '+status': no index on status for this one (the planner would take tasks_by_status
# and sort every finished task by time for each chunk)
# the range starts past -1.0, the key of every unfinished task: those sit at the head of
# the index, and a chunk that walked them (a backlog queued meanwhile) read each row
PRUNE_SELECT = (f"SELECT id FROM tasks WHERE {SETTLED} "
                f"AND {FINISHED_KEY} > -1.0 AND {FINISHED_KEY} < ? "
                f"AND +status IN ({','.join('?' * len(TERMINAL_STATUSES))}) "
                f"ORDER BY {FINISHED_KEY} LIMIT ?")


def tx_prune_tasks(conn: sqlite3.Connection, finished_before: float, limit: int,
                   seconds: float = PRUNE_CHUNK_SECONDS) -> tuple[int, list[str], bool]:
    """Delete up to ``limit`` tasks finished before a time (their logs and artifact rows).

    (tasks deleted, ids of those that had artifacts, whether more may be left). Walks
    tasks_by_finished from the oldest, so each chunk reads only the rows it deletes;
    never an active task. Stops at the first PRUNE_STEP tasks that end past ``seconds``.
    """
    deadline = time.perf_counter() + seconds
    ids = [r[0] for r in conn.execute(
        PRUNE_SELECT, [finished_before, *TERMINAL_STATUSES, int(limit)])]
    if not ids:
        return 0, [], False
    with_files = [r[0] for r in conn.execute(
        f"SELECT DISTINCT task_id FROM artifacts WHERE task_id IN ({','.join('?' * len(ids))})",
        ids)]
    deleted = 0
    while deleted < len(ids):
        if deleted and time.perf_counter() >= deadline:
            break
        keys = [(task_id,) for task_id in ids[deleted:deleted + PRUNE_STEP]]
        conn.executemany("DELETE FROM tasks WHERE id = ?", keys)
        conn.executemany("DELETE FROM task_logs WHERE task_id = ?", keys)
        conn.executemany("DELETE FROM artifacts WHERE task_id = ?", keys)
        deleted += len(keys)
    if deleted < len(ids):
        kept = set(ids[deleted:])
        with_files = [task_id for task_id in with_files if task_id not in kept]
    return deleted, with_files, deleted < len(ids) or len(ids) == limit


def tx_prune_events(conn: sqlite3.Connection, events_before: float, limit: int,
                    seconds: float = PRUNE_CHUNK_SECONDS) -> tuple[int, bool]:
    """Delete events older than a time among the ``limit`` oldest ids; (deleted, done).

    events has no index on ts (every event would pay for it): ids grow with time,
    so the old events are the lowest rowids, a range read. Done once the range held a
    newer event (one out of clock order waits for a later pass). Never the newest
    event: the largest id is what the next id counts from, so ids (clients' cursors)
    never go back. Deletes PRUNE_EVENTS_STEP ids at a time and stops at the first
    step that ends past ``seconds``.
    """
    # two subqueries: SQLite reads a lone min() or max() off an end of the rowid, but
    # "SELECT min(id), max(id)" reads every event
    low, newest = conn.execute(
        "SELECT (SELECT min(id) FROM events), (SELECT max(id) FROM events)").fetchone()
    if low is None:
        return 0, True
    high = min(low + int(limit), newest)
    deadline = time.perf_counter() + seconds
    deleted = 0
    reached = low
    while reached < high:
        if reached > low and time.perf_counter() >= deadline:
            break
        step_end = min(reached + PRUNE_EVENTS_STEP, high)
        deleted += conn.execute("DELETE FROM events WHERE id >= ? AND id < ? AND ts < ?",
                                (reached, step_end, events_before)).rowcount
        reached = step_end
    kept = conn.execute("SELECT 1 FROM events WHERE id >= ? AND id < ? LIMIT 1",
                        (low, reached)).fetchone()
    return deleted, kept is not None or reached == newest


def file_chunks(path: Path, size: int = 1 << 20) -> Iterable[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(size):
            yield chunk
