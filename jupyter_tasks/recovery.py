"""``jupyter tasks recover``: copy what a damaged database still holds into a new one.

SQLite's own ``.recover`` is not in every ``sqlite3`` shell (Debian's 3.40 answers
"SQL logic error" and writes nothing, even for a sound file), and a pipe into a
second shell hides that: the "recovered" file was empty. This copies, with
Python's own SQLite, each table the history lives in from the damaged file into
a new file with this version's schema, a stretch of rows at a time; a stretch
SQLite cannot read is stepped over and counted, never taken for the end.

The source is opened read-only and never changed. The copy is written under a
working name (``<target>.partial``) and renamed to ``target`` only once whole: a
copy cut short (a kill, a full disk) leaves no file that passes for a recovered
one. The new file's search index is rebuilt by the store's upkeep the first time a
server opens it.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from .dbfile import read_only_uri
from .exceptions import StoreError
from .migrations import LATEST_VERSION
from .store import Store

# the tables that hold the history, in an order that keeps each row's task before it;
# workers are left behind (their processes are gone), the search index is rebuilt
TABLES = ("tasks", "schedules", "events", "task_logs", "artifacts")
STRETCH = 500  # rows read at a time


@dataclass
class Recovered:
    """What ``recover`` copied and what it could not read, per table."""

    target: Path
    copied: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, int] = field(default_factory=dict)  # row ids stepped over
    missing: list[str] = field(default_factory=list)  # tables the source did not have


async def recover(source: Path | str, target: Path | str) -> Recovered:
    """Copy the readable rows of ``source``'s history tables into a new ``target``.

    Blocking SQLite work on the caller's loop: for the CLI, which does nothing else.
    """
    source, target = Path(source), Path(target)
    if not source.is_file():
        raise StoreError(f"no database at {source}")
    if target.exists():
        raise StoreError(f"{target} exists already: move it aside or name another file")
    _refuse_a_newer_schema(source)
    working = Path(f"{target}.partial")
    _remove_database(working)  # what a recovery cut short left: only ever a part
    try:
        report = await _copy_into(source, working)
        report.target = target
        wal = Path(f"{working}-wal")
        if wal.exists() and wal.stat().st_size:
            raise StoreError(f"the copy's rows did not all reach {working}: its -wal file "
                             f"holds some still; nothing was written to {target}")
        working.rename(target)
    finally:
        _remove_database(working)
    return report


def _remove_database(path: Path) -> None:
    """Remove a database file and what the store keeps beside it."""
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    shutil.rmtree(f"{path}.wake", ignore_errors=True)


async def _copy_into(source: Path, target: Path) -> Recovered:
    """``recover`` into ``target``, a new file; its WAL folded in, so it is one file."""
    store = await Store.open(target)  # an empty database with this version's schema
    await store.close()
    report = Recovered(target)
    try:
        reader = sqlite3.connect(read_only_uri(source), uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {source} read-only: {exc}") from None
    writer = sqlite3.connect(target, isolation_level=None)
    try:
        for table in TABLES:
            columns = _shared_columns(reader, writer, table)
            if columns is None:
                report.missing.append(table)
                continue
            report.copied[table], report.unreadable[table] = _copy(reader, writer, table,
                                                                     columns)
        # the callbacks still owed (migration 20; an older file has none), claimed by
        # nobody: the processes that had them are gone
        columns = _shared_columns(reader, writer, "callback_outbox")
        if columns is not None:
            report.copied["callback_outbox"], report.unreadable["callback_outbox"] = _copy(
                reader, writer, "callback_outbox", columns)
            writer.execute("UPDATE callback_outbox SET claimed_by = NULL, claimed_until = NULL")
        # the search index starts again from the first task (see migrations 16-17)
        writer.execute("UPDATE task_search_mark SET indexed_to = 0, pending_max = 0")
        # every row in the main file, so the rename moves all of it
        writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        reader.close()
        writer.close()
    if not report.copied.get("tasks"):
        # a new file with no task would pass for a recovery (doctor finds nothing wrong
        # in it, events and logs of tasks it lists nowhere or not) and be moved in place
        # of the damaged one
        unread = "the tasks table is unreadable" if any(report.copied.values()) else \
            "nor schedule, event or log either"
        raise StoreError(
            f"no task could be read from {source} ({unread}), so nothing was written: the "
            "file is damaged past what recover reads (or holds nothing); keep it for a "
            "specialist, or move it aside, with its -wal and -shm files, to start empty")
    return report


def _refuse_a_newer_schema(source: Path) -> None:
    """A file a newer jupyter-tasks wrote is not copied into this version's older schema.

    Such a copy would drop what that version added (columns, tables) without a word,
    and pass ``doctor``. A header too damaged to read is no reason to stop.
    """
    try:
        reader = sqlite3.connect(read_only_uri(source), uri=True)
        try:
            version = reader.execute("PRAGMA user_version").fetchone()[0]
        finally:
            reader.close()
    except sqlite3.Error:
        return
    if version > LATEST_VERSION:
        raise StoreError(
            f"{source} has schema version {version}, newer than this jupyter-tasks "
            f"understands ({LATEST_VERSION}): a copy made here would drop what the newer "
            "version keeps; recover it with that version (upgrade jupyter-tasks)")


def _shared_columns(reader: sqlite3.Connection, writer: sqlite3.Connection,
                    table: str) -> list[str] | None:
    """The columns both files' ``table`` have (an older source lacks some), or None."""
    try:
        have = [row[1] for row in reader.execute(f"PRAGMA table_info({table})")]
    except sqlite3.DatabaseError:
        return None
    if not have:
        return None
    wanted = {row[1] for row in writer.execute(f"PRAGMA table_info({table})")}
    return [c for c in have if c in wanted]


def _rowid_alias(writer: sqlite3.Connection, table: str) -> bool:
    """Whether ``table`` has an INTEGER PRIMARY KEY, which is its rowid under another name."""
    keys = [row for row in writer.execute(f"PRAGMA table_info({table})") if row[5]]
    return len(keys) == 1 and keys[0][2].upper() == "INTEGER"


def _copy(reader: sqlite3.Connection, writer: sqlite3.Connection, table: str,
          columns: list[str]) -> tuple[int, int]:
    """(rows copied, rowids stepped over) of one table, in rowid order (rowids kept)."""
    names = ", ".join(columns)
    read = f"SELECT rowid, {names} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT {STRETCH}"
    alias = _rowid_alias(writer, table)  # then its column carries the rowid
    targets = names if alias else f"rowid, {names}"
    write = (f"INSERT OR IGNORE INTO {table} ({targets}) "
             f"VALUES ({', '.join('?' * (len(columns) + (0 if alias else 1)))})")
    copied = stepped_over = 0
    after = _end_rowid(reader, table, "min", 1) - 1
    last = _end_rowid(reader, table, "max", None)
    skip = 1
    while True:
        rows: list[tuple] = []
        damaged = False
        try:
            for row in reader.execute(read, (after,)):  # the rows before damage count too
                rows.append(row)
        except sqlite3.DatabaseError:
            damaged = True
        if rows:
            writer.execute("BEGIN")
            writer.executemany(write, [row[1:] if alias else row for row in rows])
            writer.execute("COMMIT")
            copied += len(rows)
            after, skip = rows[-1][0], 1
        elif damaged:
            # the page after ``after`` is unreadable: step over it, further each time
            if last is None or after >= last:
                break
            step = min(skip, last - after)
            after, skip, stepped_over = after + step, skip * 2, stepped_over + step
        if not damaged and len(rows) < STRETCH:
            return copied, stepped_over
    return copied, stepped_over


def _end_rowid(reader: sqlite3.Connection, table: str, end: str, unknown: int | None
               ) -> int | None:
    """The table's smallest or largest rowid (``end``: min or max); ``unknown`` if unread."""
    try:
        found = reader.execute(f"SELECT {end}(rowid) FROM {table}").fetchone()[0]
    except sqlite3.DatabaseError:
        return unknown
    return unknown if found is None else found
