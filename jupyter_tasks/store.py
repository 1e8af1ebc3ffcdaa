"""The SQLite store: every SQL statement of jupyter-tasks lives in this module.

Two connections per process. Writes go to one ``sqlite3`` connection used only
by a thread this module owns (``DatabaseThread``): each write is a function run
there inside ``BEGIN IMMEDIATE ... COMMIT``, so the task row and its event are
written together or not at all, and a whole group-committed transaction costs
one hop between the event loop and that thread. ``BEGIN IMMEDIATE`` takes the
write lock up front, so concurrent processes queue on ``busy_timeout`` instead
of failing on a read-to-write upgrade. Reads go through an aiosqlite connection
of their own, by its public API only (``execute_fetchall``): WAL lets them run
beside the writer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import mimetypes
import os
import queue
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import aiosqlite

from . import dbfile
from .exceptions import (
    IdempotencyConflict,
    InvalidRequest,
    StoreBusy,
    StoreError,
    StoreUnavailable,
    TaskNotFound,
    TaskStateConflict,
)
from .migrations import LATEST_VERSION, MIGRATIONS
from .models import (
    ACTIVE_STATUSES,
    JSON_COLUMNS,
    MAX_LOST_ATTEMPTS,
    SCHEDULE_CHANGED,
    TASK_JSON,
    TERMINAL_STATUSES,
    WORKER_LOST,
    Artifact,
    Event,
    EventType,
    JsonField,
    LogEntry,
    Task,
    TaskMode,
    TaskStatus,
    WorkerInfo,
    dumps,
    failure_reason,
)
from .schedules import Schedule, ScheduleNotFound
from .values import JSONText
from .values import encode as encode_value

T = TypeVar("T")
# a queued write: fn(connection, *args), and the future its caller awaits
_Op = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]

BUSY_TIMEOUT_MS = 30_000
CHECKPOINT_SECONDS = 1.0
AUTOCHECKPOINT_PAGES = 20_000
# bounds a transaction, so reads queued behind it wait at most this many writes
MAX_OPS_PER_COMMIT = 256
ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,254}$")


def valid_artifact_name(name: str) -> bool:
    """True for a plain file name: no separator, no ``..``, nothing hidden."""
    return bool(ARTIFACT_NAME.match(name)) and ".." not in name


def _encode(column: str, value: Any) -> Any:
    if column in JSON_COLUMNS and value is not None:
        if isinstance(value, JSONText):  # encoded by the caller under the storage rule
            return str(value)
        return encode_value(value, where=column).text
    if column == "cancel_requested":
        return int(bool(value))
    return value


class DatabaseThread:
    """One ``sqlite3`` connection and the thread that alone uses it: the store's writer.

    Owned here rather than borrowed from aiosqlite because a write transaction is a
    function run on the connection (group commit: see ``Store._drain``), which
    aiosqlite's public API does not offer. A daemon thread: it never keeps the
    interpreter alive at exit.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection], *, name: str) -> None:
        self._connect = connect
        # (function, its future or None); None as the function stops the thread
        self._calls: queue.SimpleQueue[
            tuple[Callable[[], Any] | None, asyncio.Future[Any] | None]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._connection: sqlite3.Connection | None = None

    @property
    def connection(self) -> sqlite3.Connection:
        """The connection, for functions running on this thread only."""
        if self._connection is None:
            raise StoreError("the database connection is closed")
        return self._connection

    async def start(self) -> None:
        """Start the thread and open the connection on it."""
        self._thread.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[sqlite3.Connection] = loop.create_future()
        self._calls.put((self._connect, future))
        try:
            self._connection = await future
        except BaseException:
            self._calls.put((None, None))
            raise

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)`` on the thread, after everything queued before."""
        connection = self.connection
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._calls.put((functools.partial(fn, connection, *args), future))
        return await future

    def call_soon(self, fn: Callable[[], Any]) -> None:
        """Queue ``fn()`` for the thread without waiting for it (from any thread)."""
        self._calls.put((fn, None))

    async def close(self) -> None:
        """Run what is queued, close the connection and end the thread; safe to call twice."""
        if not self._thread.is_alive():
            return
        connection, self._connection = self._connection, None
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._calls.put((connection.close if connection is not None else _no_op, future))
        self._calls.put((None, None))
        await future

    def _serve(self) -> None:
        while True:
            fn, future = self._calls.get()
            if fn is None:
                return
            try:
                result = fn()
            except BaseException as exc:  # handed to the caller; the thread goes on
                if future is not None:
                    _settle_from_thread(future, False, exc)
            else:
                if future is not None:
                    _settle_from_thread(future, True, result)


def _no_op() -> None:
    return None


def _settle_from_thread(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
        future.get_loop().call_soon_threadsafe(_settle_futures, [(future, ok, value)])


async def _open_reader(database: str, busy_timeout: float, *,
                       uri: bool = False) -> aiosqlite.Connection:
    """The read connection: aiosqlite, set up through its public API only."""
    reader = await aiosqlite.connect(database, uri=uri, isolation_level=None,
                                     timeout=busy_timeout)
    try:
        reader.row_factory = sqlite3.Row
        await reader.execute_fetchall(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        await reader.execute_fetchall("PRAGMA temp_store = MEMORY")
        # a guard: a write slipped onto this connection would take the lock beside the writer
        await reader.execute_fetchall("PRAGMA query_only = ON")
    except BaseException:
        await reader.close()
        raise
    return reader


class Finished(NamedTuple):
    """What :meth:`Store.finish` wrote: whether the task ended, its callback, the next job."""

    written: bool
    callback_url: str | None
    next_job: Task | None


class Store:
    """Async access to one jupyter-tasks database file and its artifact folder."""

    def __init__(self, path: str | os.PathLike[str], writer: DatabaseThread | None,
                 reader: aiosqlite.Connection | None = None) -> None:
        self.path = Path(path)
        self.artifacts_dir = self.path.with_name(self.path.name + ".artifacts")
        # None for a read-only store: it has the reader alone
        self._writer = writer
        # reads go to a connection (and thread) of their own: WAL lets them run beside
        # the writer, so a GET never waits behind a transaction or a held write lock
        self._reader = reader
        # transactions this connection committed: SQLite's data_version only
        # moves for other connections' commits, so the event tailer needs both
        self.commits = 0
        # group commit: writes queue here and the database thread takes them while
        # its transaction runs, committing when none is left (or MAX_OPS_PER_COMMIT);
        # a commit costs far more than a statement, and the thread starts on the
        # first write while the event loop is still producing the next ones
        self._ops: queue.SimpleQueue[_Op] = queue.SimpleQueue()
        self._drain_lock = threading.Lock()
        self._draining = False  # a drain is queued or running on the database thread
        self._closed = False
        self._checkpointer: asyncio.Task[None] | None = None
        # the file this store opened: before each write transaction the path must still
        # name it (dbfile.check_identity); once not, or once SQLite reports damage, this
        # holds why, and every operation fails with StoreUnavailable saying so
        # (absolute: a process that changes directory, a kernel's %cd, still means this file)
        self._file = Path(os.path.abspath(self.path))
        self._identity = dbfile.file_identity(self._file)
        self._unavailable: str | None = None
        self.read_only = False

    # ----------------------------------------------------------------- lifecycle

    @classmethod
    async def open(cls, path: str | os.PathLike[str], *,
                   busy_timeout: float = BUSY_TIMEOUT_MS / 1000, read_only: bool = False,
                   create: bool = True) -> Store:
        """Open (creating if needed) the database at ``path`` and bring its schema up to date.

        ``busy_timeout`` is how long a write waits for another process's write
        lock before failing with ``StoreBusy``. ``read_only`` opens an existing
        file for reading only (no schema change, no write; ``StoreUnavailable``
        when it does not exist). ``create=False`` refuses to create a missing
        file; even with ``create`` no file is created where WAL companions show
        that one was deleted in use (see ``dbfile.check_before_open``).
        """
        path = Path(path)
        dbfile.check_before_open(path, create=create and not read_only)
        if read_only:
            return await cls._open_read_only(path, busy_timeout)
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = DatabaseThread(functools.partial(
            sqlite3.connect, str(path), isolation_level=None, timeout=busy_timeout,
            check_same_thread=False), name=f"jupyter-tasks store {path.name}")
        await writer.start()
        store = cls(path, writer)
        reader: aiosqlite.Connection | None = None
        try:
            await store._run(_setup_connection, busy_timeout)
            await store._run(_migrate)
            reader = await _open_reader(str(path), busy_timeout)
        except BaseException:
            await writer.close()
            raise
        store._reader = reader
        store._checkpointer = asyncio.ensure_future(store._checkpoint_loop())
        return store

    @classmethod
    async def _open_read_only(cls, path: Path, busy_timeout: float) -> Store:
        reader = None
        try:
            reader = await _open_reader(dbfile.read_only_uri(path), busy_timeout, uri=True)
            version = (await reader.execute_fetchall("PRAGMA user_version"))
            _check_version_read_only(next(iter(version))[0], str(path))
        except BaseException as exc:
            if reader is not None:
                await reader.close()
            unavailable = dbfile.unavailable_for(path, exc)
            if unavailable is None:
                raise
            raise unavailable from exc
        store = cls(path, None, reader)
        store.read_only = True
        store._closed = True  # no write is ever queued (see _txn)
        return store

    async def close(self) -> None:
        """Finish pending writes and close the connection; safe to call twice."""
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            await asyncio.gather(self._checkpointer, return_exceptions=True)
            self._checkpointer = None
        if not self._closed:
            with self._drain_lock:
                busy = self._draining
            if busy:  # writes run in order: once this one is done, all earlier ones are
                with contextlib.suppress(Exception):
                    await self._txn(_nothing)
            self._closed = True
        if self._writer is not None:
            await self._writer.close()
        if self._reader is not None:
            await self._reader.close()
            self._reader = None

    async def _checkpoint_loop(self) -> None:
        # copy the WAL back into the database off the commit path: an automatic
        # checkpoint would fsync inside whichever commit crossed the threshold. It
        # has a connection of its own, so writes go on while it copies (WAL allows
        # that), and the copying runs in C on another core.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        running: asyncio.Future[None] | None = None
        try:
            while True:
                await asyncio.sleep(CHECKPOINT_SECONDS)
                running = asyncio.ensure_future(asyncio.to_thread(_checkpoint, conn))
                try:
                    await asyncio.shield(running)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    pass  # busy readers: the next round catches up
        finally:
            # closing under a checkpoint still running in its thread would crash
            if running is not None and not running.done():
                await asyncio.gather(running, return_exceptions=True)
            conn.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)`` in the writer's thread (one hop, no transaction)."""
        if self._writer is None:
            raise StoreError(f"the store of {self.path} was opened read-only")
        return await self._writer.call(fn, *args)

    async def _rows(self, sql: str, args: Sequence[Any] = ()) -> Sequence[sqlite3.Row]:
        """The rows of one query on the read connection, beside any write."""
        if self._unavailable is not None:
            raise StoreUnavailable(self._unavailable)
        reader = self._reader
        if reader is None:  # while opening, and after close
            return await self._run(_fetchall, sql, args)
        try:
            # fetchall's own list (aiosqlite types it as an Iterable)
            return await reader.execute_fetchall(sql, args)  # type: ignore[return-value]
        except sqlite3.OperationalError as exc:
            raise _translate(exc) from exc
        except sqlite3.DatabaseError as exc:
            unavailable = self._damaged(exc)
            if unavailable is None:
                raise
            raise unavailable from exc

    async def _scalar(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """The first column of the first row of one query (on the read connection)."""
        return (await self._rows(sql, args))[0][0]

    async def _txn(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)`` atomically, in the next group-committed transaction.

        A write that raises is rolled back alone and its exception re-raised
        here; the others in its transaction commit.
        """
        if self._unavailable is not None:
            raise StoreUnavailable(self._unavailable)
        if self._closed:
            if self.read_only:
                raise StoreError(f"the store of {self.path} was opened read-only")
            raise StoreError(f"the store of {self.path} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._ops.put((fn, args, future))
        with self._drain_lock:
            if not self._draining:
                self._draining = True
                self._queue_drain(loop)
        return await future

    def _queue_drain(self, loop: asyncio.AbstractEventLoop) -> None:
        # straight onto the writer thread's queue, not through a coroutine that
        # would start only on the loop's next turn
        assert self._writer is not None  # _txn refuses writes to a read-only store
        self._writer.call_soon(functools.partial(self._drain, loop))

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the database thread: commit one transaction of queued writes, return results."""
        try:
            self._check_identity()
            assert self._writer is not None
            outcomes, committed = _stream_transaction(self._writer.connection, self._ops,
                                                      MAX_OPS_PER_COMMIT)
        except BaseException as exc:  # a bug here must not leave callers waiting forever
            outcomes, committed = [], False
            while True:
                try:
                    outcomes.append((self._ops.get_nowait()[2], False, exc))
                except queue.Empty:
                    break
        if committed:
            self.commits += 1
        if outcomes:
            outcomes = self._translate_damage(outcomes)
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(_settle_futures, outcomes)
        with self._drain_lock:
            if self._ops.empty():
                self._draining = False
                return
        # more writes came in: go again, after the reads that queued up meanwhile
        self._queue_drain(loop)

    def _check_identity(self) -> None:
        """On the database thread, before a write transaction: is the path still our file?

        Never write into a file that was deleted (it would vanish with the last
        connection) or replaced (the writes would not be where others look).
        """
        if self._unavailable is None:
            self._unavailable = dbfile.check_identity(self._file, self._identity)
        if self._unavailable is not None:
            raise StoreUnavailable(self._unavailable)

    def _damaged(self, exc: BaseException) -> StoreUnavailable | None:
        """``StoreUnavailable`` (from now on, for everything) when ``exc`` means a damaged file."""
        unavailable = dbfile.unavailable_for(self._file, exc)
        if unavailable is not None and self._unavailable is None:
            self._unavailable = unavailable.message
        return unavailable

    def _translate_damage(self, outcomes: list[tuple[asyncio.Future[Any], bool, Any]]
                          ) -> list[tuple[asyncio.Future[Any], bool, Any]]:
        """Writes that failed because the file is damaged fail with ``StoreUnavailable``."""
        for i, (future, ok, value) in enumerate(outcomes):
            if not ok and isinstance(value, sqlite3.DatabaseError):
                unavailable = self._damaged(value)
                if unavailable is not None:
                    outcomes[i] = (future, False, unavailable)
        return outcomes

    # --------------------------------------------------------------------- tasks

    async def create_task(self, task: Task, *,
                          encoded: Mapping[str, str] | None = None) -> tuple[Task, bool]:
        """Insert ``task`` with its ``task.created`` event; returns (task, deduplicated).

        An active task with the same ``task_key`` and owner, or an earlier task
        with the same idempotency key and payload, is returned instead of a new
        one; the same idempotency key with another payload raises
        ``IdempotencyConflict``. Check and insert share one transaction.
        ``encoded`` gives JSON columns already encoded (``dumps`` text) by the caller.
        """
        return await self._txn(_tx_create_task, task, encoded or {})

    async def create_tasks(self, tasks: Sequence[Task]) -> list[Task]:
        """Insert many new tasks (no key checks) in one transaction."""
        return await self._txn(_tx_create_many, list(tasks))

    async def insert_task_rows(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert task rows as given, with no events (history: imports, fixtures); the count.

        Each row maps column names to values; a missing column takes the ``Task``
        default; an unknown column, or no id, kind, mode or status, raises
        ``InvalidRequest`` before anything is written.
        JSON columns take Python values (or ``JSONText``), encoded as the store
        always encodes them. All rows go in one transaction.
        """
        values = [_task_row_values(row) for row in rows]
        return await self._txn(_tx_insert_rows, values)

    async def get_task(self, task_id: str) -> Task | None:
        """The task with this id, or None."""
        rows = await self._rows(_GET_TASK, (task_id,))
        return Task.from_row(rows[0]) if rows else None

    async def require_task(self, task_id: str) -> Task:
        """The task with this id, or ``TaskNotFound``."""
        task = await self.get_task(task_id)
        if task is None:
            raise TaskNotFound(f"no task with id {task_id}")
        return task

    async def list_tasks(
        self,
        *,
        statuses: Iterable[str] | None = None,
        name: str | None = None,
        kind: str | None = None,
        owners: Iterable[str] | None = None,
        queue: str | None = None,
        task_key: str | None = None,
        key_prefix: str | None = None,
        idempotency_key: str | None = None,
        parent_id: str | None = None,
        worker_id: str | None = None,
        search: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        oldest_first: bool = False,
        schedule_id: str | None = None,
    ) -> list[Task]:
        """Tasks newest first (id order) matching every given filter.

        ``cursor`` is the id of the last task of the previous page; ``owners``
        restricts to those owners (None means anyone).
        """
        filtered = _task_filters(statuses, name, kind, owners, queue, task_key, key_prefix,
                                 idempotency_key, parent_id, worker_id, search, schedule_id)
        if filtered is None:
            return []
        where, args = filtered
        if cursor is not None:
            where.append("id > ?" if oldest_first else "id < ?")
            args.append(cursor)
        sql = "SELECT * FROM tasks"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id " + ("ASC" if oldest_first else "DESC") + " LIMIT ?"
        args.append(int(limit))
        return [Task.from_row(row) for row in await self._rows(sql, args)]

    async def page_tasks(
        self,
        *,
        sort: str = "created",
        order: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
        statuses: Iterable[str] | None = None,
        name: str | None = None,
        kind: str | None = None,
        owners: Iterable[str] | None = None,
        queue: str | None = None,
        task_key: str | None = None,
        key_prefix: str | None = None,
        idempotency_key: str | None = None,
        parent_id: str | None = None,
        search: str | None = None,
        schedule_id: str | None = None,
    ) -> TaskPage:
        """One page of the matching tasks in ``sort`` order, and the cursor of the next.

        ``sort`` is one of ``LIST_SORTS``; ``order`` is ``asc`` or ``desc`` (default:
        ``desc`` for ``created``, else ``asc``); ties go newest first. The cursor is
        opaque: the sort value and id of the last row (a keyset, so pages neither skip
        nor repeat rows), plus the clock of the first page for ``duration``. A bad
        sort, order or cursor raises ``InvalidRequest`` naming the field.
        """
        if sort not in LIST_SORTS:
            raise InvalidRequest(f"unknown sort {sort!r}", errors=[
                {"field": "sort", "message": f"must be one of {', '.join(LIST_SORTS)}"}])
        order = order or ("desc" if sort == "created" else "asc")
        if order not in ("asc", "desc"):
            raise InvalidRequest(f"unknown order {order!r}", errors=[
                {"field": "order", "message": "must be 'asc' or 'desc'"}])
        after = _decode_list_cursor(cursor, sort, order) if cursor else None
        now = after[2] if after else time.time()
        filtered = _task_filters(statuses, name, kind, owners, queue, task_key, key_prefix,
                                 idempotency_key, parent_id, None, search, schedule_id)
        if filtered is None:
            return TaskPage([], None)
        where, args = filtered
        expr = _SORT_SQL[sort]
        descending = order == "desc"
        if sort == "created":
            if after:
                where.append("id < ?" if descending else "id > ?")
                args.append(after[1])
            order_by = "id " + ("DESC" if descending else "ASC")
        else:
            expr_args = [now] if sort == "duration" else []
            if after:
                # past the last row: further along the sort, or level with it and older
                where.append(f"(({expr}) {'<' if descending else '>'} ? OR "
                             f"(({expr}) = ? AND id < ?))")
                args += [*expr_args, after[0], *expr_args, after[0], after[1]]
            order_by = f"sort_value {'DESC' if descending else 'ASC'}, id DESC"
        select = "SELECT *" if sort == "created" else f"SELECT *, {expr} AS sort_value"
        sql = select + " FROM tasks"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {order_by} LIMIT ?"
        head_args = [now] if sort == "duration" else []
        args = [*head_args, *args, int(limit) + 1]
        rows = await self._rows(sql, args)
        # the sort value of the page's last row, for the cursor of the next page
        last_value = rows[limit - 1]["sort_value"] if len(rows) > limit and sort != "created" \
            else None
        tasks = [Task.from_row(row) for row in rows]
        if len(tasks) <= limit:
            return TaskPage(tasks, None)
        tasks = tasks[:limit]
        if sort == "created":
            return TaskPage(tasks, tasks[-1].id)
        return TaskPage(tasks, _encode_list_cursor(sort, order, last_value, tasks[-1].id, now))

    async def match_ids(self, fragment: str, limit: int = 11) -> list[tuple[str, str, str]]:
        """(id, status, label or name) of tasks whose id starts or ends with ``fragment``.

        Newest first, at most ``limit``: how a short id typed by a person is resolved.
        """
        rows = await self._rows(
            "SELECT id, status, coalesce(label, name, '') FROM tasks "
            "WHERE (id >= ? AND id < ?) OR substr(id, -?) = ? ORDER BY id DESC LIMIT ?",
            (fragment, fragment + "\U0010ffff", len(fragment), fragment, int(limit)))
        return [(row[0], row[1], row[2]) for row in rows]

    async def count_tasks(self, owners: Iterable[str] | None = None) -> int:
        """How many tasks the store holds (for these owners)."""
        if owners is None:
            return await self._scalar("SELECT count(*) FROM tasks")
        owners = list(owners)
        return await self._scalar(
            f"SELECT count(*) FROM tasks WHERE owner IN ({','.join('?' * len(owners))})", owners)

    async def children(self, task_id: str) -> list[Task]:
        """Reruns and forks made from this task, oldest first."""
        rows = await self._rows("SELECT * FROM tasks WHERE parent_id = ? ORDER BY id", [task_id])
        return [Task.from_row(row) for row in rows]

    async def transition(
        self,
        task_id: str,
        changes: dict[str, Any],
        event: EventType | str | None,
        *,
        when_status: Sequence[str] | None = None,
        when_worker: str | None = None,
    ) -> Task | None:
        """Apply ``changes`` to a task and append ``event``, atomically.

        With ``when_status`` (or ``when_worker``) the change only happens if the
        task is still in one of those statuses (still held by that worker);
        otherwise nothing is written and None is returned.
        """
        return await self._txn(_tx_transition, task_id, changes, event, when_status, when_worker)

    async def finish(
        self,
        task_id: str,
        changes: dict[str, Any],
        event: EventType | str,
        *,
        worker_id: str,
        claim_queue: str | None = None,
        lease_seconds: float = 30.0,
    ) -> Finished:
        """Write the end of a running task held by ``worker_id``, and its event.

        With ``claim_queue`` the same transaction also claims this worker's next
        due job of that queue: a worker that keeps busy pays one commit per job
        for "finished" and "started" together, and never idles between the two.
        """
        return await self._txn(_tx_finish, task_id, changes, event, worker_id, claim_queue,
                               lease_seconds)

    async def save_updates(
        self,
        progress: Sequence[tuple[str, dict[str, Any]]],
        logs: Sequence[tuple[str, list[tuple[float, str, str]]]] = (),
    ) -> None:
        """Write the latest progress and new log chunks of several tasks in one transaction."""
        await self._txn(_tx_updates, list(progress), list(logs))

    async def request_cancel(self, task_id: str) -> Task:
        """Cancel a queued task at once, or flag a running one for its owner to stop."""
        return await self._txn(_tx_request_cancel, task_id)

    async def ask_confirmation(self, task_id: str, confirmation: dict[str, Any]) -> Task | None:
        """Record a pending question for a running task."""
        return await self.transition(
            task_id, {"confirmation": confirmation}, EventType.CONFIRMATION,
            when_status=(TaskStatus.RUNNING.value,),
        )

    async def answer_confirmation(self, task_id: str, answer: str) -> Task:
        """Record the answer to a pending question (checked against its choices)."""
        return await self._txn(_tx_answer, task_id, answer)

    async def delete_task(self, task_id: str) -> Task:
        """Forget a finished task: its row, logs, artifacts; a ``task.deleted`` event remains."""
        task = await self._txn(_tx_delete, task_id)
        shutil.rmtree(self.artifacts_dir / task_id, ignore_errors=True)
        return task

    # ---------------------------------------------------------------------- logs

    async def append_logs(self, task_id: str, entries: Sequence[tuple[float, str, str]]) -> int:
        """Append (ts, stream, text) chunks and one ``task.log`` event; returns the last seq."""
        return await self._txn(_tx_append_logs, task_id, list(entries))

    async def get_logs(self, task_id: str, after: int = 0, limit: int = 1000) -> list[LogEntry]:
        """Log chunks of a task with seq greater than ``after``, oldest first."""
        rows = await self._rows(
            "SELECT seq, ts, stream, text FROM task_logs WHERE task_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?", (task_id, after, limit))
        return [LogEntry(*row) for row in rows]

    # ------------------------------------------------------------- durable queue

    async def claim_jobs(
        self, queue: str, worker_id: str, lease_seconds: float, limit: int = 1
    ) -> list[Task]:
        """Atomically take up to ``limit`` due jobs of ``queue`` for this worker."""
        return await self._txn(_tx_claim, queue, worker_id, lease_seconds, limit)

    async def retry_later(self, task_id: str, worker_id: str, not_before: float,
                          error: dict[str, Any]) -> Task | None:
        """Put a failed job back in the queue for another attempt after ``not_before``."""
        return await self.transition(
            task_id,
            {"status": TaskStatus.QUEUED.value, "worker_id": None, "lease_expires_at": None,
             "not_before": not_before, "error": error, "started_at": None,
             "retry_reason": failure_reason(error)},
            EventType.RETRYING,
            when_status=(TaskStatus.RUNNING.value,), when_worker=worker_id,
        )

    async def register_worker(self, worker: WorkerInfo) -> None:
        """Record a worker process (insert or refresh)."""
        await self._txn(_tx_register_worker, worker)

    async def heartbeat(self, worker_id: str, lease_seconds: float) -> None:
        """Prove a worker alive and extend the lease of every task it runs."""
        await self._txn(_tx_heartbeat, worker_id, lease_seconds)

    async def stop_worker(self, worker_id: str) -> None:
        """Mark a worker stopped after a clean shutdown."""
        await self._txn(_tx_stop_worker, worker_id)

    async def list_workers(self, *, include_stopped: bool = False) -> list[WorkerInfo]:
        """Known workers, newest heartbeat first."""
        sql = "SELECT * FROM workers"
        if not include_stopped:
            sql += " WHERE stopped_at IS NULL"
        rows = await self._rows(sql + " ORDER BY heartbeat_at DESC")
        return [_worker_from_row(row) for row in rows]

    async def reap(self, dead_worker_ids: Sequence[str], now: float | None = None,
                   cleared: Mapping[str, Mapping[str, Any]] | None = None,
                   max_lost: int = MAX_LOST_ATTEMPTS) -> list[Task]:
        """Settle tasks of dead workers and tasks whose lease ran out.

        A ``job`` goes back to the queue ("worker lost": the work did not fail,
        so ``max_retries`` is not spent) until ``max_lost`` of its attempts were
        lost, then ends ``interrupted``; a ``background`` or ``sync`` task ends ``interrupted``
        (its process is gone and nothing else can resume it). A task with a
        recorded ``process`` is settled only if ``cleared`` maps its id to that
        very record (the caller saw the group ended, or may no longer wait for it).
        A record holding an ``exit`` (written by the command's shim, ``shim.py``)
        ends the task from it instead: ``succeeded`` for 0, else a failure
        (retried while ``max_retries`` allows); the work is not run again.
        """
        return await self._txn(_tx_reap, list(dead_worker_ids), now or time.time(),
                               dict(cleared or {}), max_lost)

    async def reap_candidates(self, dead_worker_ids: Sequence[str],
                              now: float | None = None) -> list[Task]:
        """The running tasks ``reap`` would settle now: of dead workers, or past their lease."""
        rows = await self._rows(*_reap_candidates_query(list(dead_worker_ids),
                                                        now or time.time()))
        return [Task.from_row(row) for row in rows]

    async def set_process(self, task_id: str, worker_id: str,
                          process: Mapping[str, Any] | None) -> bool:
        """Record (None: clear) where a running task's process group lives; False if not ours."""
        return await self._txn(_tx_set_process, task_id, worker_id,
                               None if process is None else dict(process))

    # ----------------------------------------------------------------- artifacts

    async def add_artifact(
        self,
        task_id: str,
        name: str,
        data: bytes | str | os.PathLike[str],
        content_type: str | None = None,
    ) -> Artifact:
        """Keep bytes (or a copy of a file) as an artifact of a task; replaces a same-named one."""
        if not valid_artifact_name(name):
            raise ValueError(f"artifact name {name!r} must be a plain file name")
        folder = self.artifacts_dir / task_id
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / name
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        digest = hashlib.sha256()
        size = 0
        with open(tmp, "wb") as out:
            if isinstance(data, (bytes, bytearray, memoryview)):
                chunks: Iterable[bytes] = [bytes(data)]
            else:
                chunks = _file_chunks(Path(data))
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        os.replace(tmp, final)
        content_type = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        artifact = Artifact(task_id, name, size, digest.hexdigest(), content_type, time.time())
        await self._txn(_tx_add_artifact, artifact)
        return artifact

    async def list_artifacts(self, task_id: str) -> list[Artifact]:
        """A task's artifacts by name."""
        return [Artifact(*row) for row in await self._rows(*_artifacts_query(task_id, None))]

    async def get_artifact(self, task_id: str, name: str) -> Artifact | None:
        """One artifact's record, or None."""
        if not valid_artifact_name(name):
            return None
        found = await self._rows(*_artifacts_query(task_id, name))
        return Artifact(*found[0]) if found else None

    def artifact_path(self, artifact: Artifact) -> Path:
        """Where an artifact's bytes are on disk (always inside the task's folder)."""
        return self.artifacts_dir / artifact.task_id / artifact.name

    # -------------------------------------------------------------------- events

    async def events_after(
        self,
        after_id: int,
        *,
        limit: int = 1000,
        task_id: str | None = None,
        owners: Iterable[str] | None = None,
    ) -> list[Event]:
        """Events with id greater than ``after_id``, oldest first."""
        rows = await self._rows(*_events_query(after_id, limit, task_id,
                                               None if owners is None else list(owners)))
        return [Event.from_row(row) for row in rows]

    async def last_event_id(self) -> int:
        """The id of the newest event (0 when none)."""
        return await self._scalar("SELECT ifnull(max(id), 0) FROM events")

    async def data_version(self) -> int:
        """SQLite's counter that moves when another connection commits."""
        if self._writer is None:  # read-only: its one connection
            return await self._scalar("PRAGMA data_version")
        return await self._run(_scalar, "PRAGMA data_version", ())

    # ----------------------------------------------------------------- schedules

    async def create_schedule(self, schedule: Schedule) -> Schedule:
        """Insert a schedule with its ``schedule.changed`` event."""
        return await self._txn(_tx_create_schedule, schedule)

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        """The schedule with this id (its last task's status joined in), or None."""
        rows = await self._rows(_SCHEDULE_SELECT + " WHERE s.id = ?", (schedule_id,))
        return _schedule_from_row(rows[0]) if rows else None

    async def require_schedule(self, schedule_id: str) -> Schedule:
        """The schedule with this id, or ``ScheduleNotFound``."""
        schedule = await self.get_schedule(schedule_id)
        if schedule is None:
            raise ScheduleNotFound(f"no schedule with id {schedule_id}")
        return schedule

    async def list_schedules(self, owners: Iterable[str] | None = None) -> list[Schedule]:
        """Schedules newest first (of these owners; None: everyone's)."""
        sql, args = _SCHEDULE_SELECT, []
        if owners is not None:
            args = list(owners)
            sql += f" WHERE s.owner IN ({','.join('?' * len(args))})"
        return [_schedule_from_row(r) for r in await self._rows(sql + " ORDER BY s.id DESC", args)]

    async def update_schedule(self, schedule_id: str, changes: Mapping[str, Any]) -> Schedule:
        """Apply column ``changes`` (``updated_at`` set here) and append the event."""
        return await self._txn(_tx_update_schedule, schedule_id, dict(changes), None)

    async def delete_schedule(self, schedule_id: str) -> Schedule:
        """Delete a schedule (its tasks keep their ``schedule_id``); event with no schedule."""
        return await self._txn(_tx_delete_schedule, schedule_id)

    async def due_schedules(self, now: float, limit: int = 1000) -> list[Schedule]:
        """Unpaused schedules whose next firing is at or before ``now``, earliest first."""
        rows = await self._rows(_SCHEDULE_SELECT + " WHERE s.next_run_at <= ? "
                                "ORDER BY s.next_run_at LIMIT ?", (now, limit))
        return [_schedule_from_row(r) for r in rows]

    async def next_schedule_due(self) -> float | None:
        """The earliest ``next_run_at`` of all unpaused schedules (None: none)."""
        return await self._scalar("SELECT min(next_run_at) FROM schedules "
                                  "WHERE next_run_at IS NOT NULL")

    async def advance_schedule(self, schedule_id: str, expected_next: float, next_run_at: float,
                               fired_at: float | None = None,
                               task_id: str | None = None) -> Schedule | None:
        """Move ``next_run_at`` only if it still is ``expected_next`` (compare-and-set).

        Records the firing (``fired_at``, ``task_id``) in the same write. None when
        another process moved it first, or the schedule was paused, edited or deleted.
        """
        changes: dict[str, Any] = {"next_run_at": next_run_at}
        if task_id is not None:
            changes.update(last_run_at=fired_at, last_task_id=task_id)
        return await self._txn(_tx_update_schedule, schedule_id, changes, expected_next)

    async def record_schedule_run(self, schedule_id: str, run_at: float,
                                  task_id: str) -> Schedule | None:
        """Record a firing outside the cron rule (run now) without moving ``next_run_at``."""
        try:
            return await self._txn(_tx_update_schedule, schedule_id,
                                   {"last_run_at": run_at, "last_task_id": task_id}, None)
        except ScheduleNotFound:
            return None  # deleted meanwhile: the task stands, linked by its schedule_id

    # --------------------------------------------------------------------- stats

    async def stats(self, owners: Iterable[str] | None = None, *,
                    statuses: Iterable[str] | None = None, name: str | None = None,
                    search: str | None = None, schedule_id: str | None = None
                    ) -> dict[str, Any]:
        """Counts per queue (queued/running) and per status, of the tasks the filters match.

        The filters are those of :meth:`list_tasks`; every status is in the result
        (0 when none).
        """
        counts: dict[str, int] = {s: 0 for s in (*ACTIVE_STATUSES, *TERMINAL_STATUSES)}
        queues: dict[str, dict[str, int]] = {}
        filtered = _task_filters(statuses, name, None, owners, None, None, None, None, None,
                                 None, search, schedule_id)
        if filtered is None:
            return {"queues": queues, "statuses": counts}
        where, args = filtered
        sql = "SELECT queue, status, count(*) FROM tasks"
        if where:
            sql += " WHERE " + " AND ".join(where)
        for queue_name, status, count in await self._rows(sql + " GROUP BY queue, status", args):
            q = queues.setdefault(queue_name, {"queued": 0, "running": 0})
            if status in ACTIVE_STATUSES:
                q[status] += count
            counts[status] = counts.get(status, 0) + count
        return {"queues": queues, "statuses": counts}

    async def prune(self, finished_before: float, events_before: float) -> int:
        """Forget finished tasks older than a time and events older than another."""
        ids = await self._txn(_tx_prune, finished_before, events_before)
        for task_id in ids:
            shutil.rmtree(self.artifacts_dir / task_id, ignore_errors=True)
        return len(ids)


# ========================================================================
# Functions below run in the database thread with a sqlite3.Connection.
# ========================================================================


def _setup_connection(conn: sqlite3.Connection, busy_timeout: float) -> None:
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode.lower() != "wal":
        raise StoreError(f"could not put the database in WAL mode (got {mode})")
    conn.execute("PRAGMA synchronous = NORMAL")
    # a batch with a failing write is rerun with a savepoint per write (see
    # _in_isolated_transaction), whose statement journal would otherwise be a file
    conn.execute("PRAGMA temp_store = MEMORY")
    # a fallback only: the store's own loop checkpoints every second (see _checkpoint_loop)
    conn.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}")
    conn.execute("PRAGMA foreign_keys = ON")


def _check_version_read_only(version: int, path: str) -> None:
    if version > LATEST_VERSION:
        raise StoreError(
            f"database schema version {version} of {path} is newer than this jupyter-tasks "
            f"understands ({LATEST_VERSION}); upgrade jupyter-tasks")
    if version < LATEST_VERSION:
        raise StoreError(
            f"database {path} has schema version {version}, older than this jupyter-tasks "
            f"({LATEST_VERSION}); it cannot be upgraded read-only: start the server (or any "
            "writer) once to migrate it")


def _fetchall(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> list[sqlite3.Row]:
    return conn.execute(sql, args).fetchall()


def _translate(exc: BaseException) -> BaseException:
    """The store's error for an SQLite one: a held lock is ``StoreBusy`` (503, retry)."""
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        if "database is locked" in text or "database is busy" in text:
            return StoreBusy(
                "the task database is busy: another process held its write lock past the "
                "busy timeout; try again")
    return exc





def _migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > LATEST_VERSION:
        raise StoreError(
            f"database schema version {version} is newer than this jupyter-tasks "
            f"understands ({LATEST_VERSION}); upgrade jupyter-tasks"
        )
    if version == LATEST_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        # another process may have migrated while we waited for the lock
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in MIGRATIONS:
            if number > version:
                for statement in _split_sql(script):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _split_sql(script: str) -> list[str]:
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _stream_transaction(
    conn: sqlite3.Connection, ops: queue.SimpleQueue[_Op], limit: int
) -> tuple[list[tuple[asyncio.Future[Any], bool, Any]], bool]:
    """Take writes from ``ops`` into one transaction until none is left; returns their outcomes.

    Optimistic: almost every batch succeeds whole, and a savepoint per write
    would cost two more statements. If a write raises, the batch is rolled back
    and rerun with a savepoint per write, so the failing one is undone alone
    (writes are functions of the database and their arguments, so the rerun
    repeats what succeeded).
    """
    taken: list[_Op] = []
    values: list[Any] = []

    def fail_all(exc: BaseException) -> tuple[list[tuple[asyncio.Future[Any], bool, Any]], bool]:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        exc = _translate(exc)
        return [(future, False, exc) for _, _, future in taken], False

    try:
        conn.execute("BEGIN IMMEDIATE")
    except BaseException as exc:  # locked past the busy timeout: fail what waits now
        while True:
            try:
                taken.append(ops.get_nowait())
            except queue.Empty:
                break
        return fail_all(exc)
    try:
        while len(taken) < limit:
            try:
                op = ops.get_nowait()
            except queue.Empty:
                break
            taken.append(op)
            values.append(op[0](conn, *op[1]))
    except Exception as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if len(taken) == 1:  # alone in its transaction: the rollback undid just it
            return [(taken[0][2], False, _translate(exc))], False
        try:
            isolated = _in_isolated_transaction(conn, [(fn, args) for fn, args, _ in taken])
        except BaseException as exc2:
            return fail_all(exc2)
        return [(future, ok, value) for (_, _, future), (ok, value)
                in zip(taken, isolated, strict=True)], True
    except BaseException as exc:
        return fail_all(exc)
    try:
        conn.execute("COMMIT")
    except BaseException as exc:
        return fail_all(exc)
    return [(future, True, value) for (_, _, future), value
            in zip(taken, values, strict=True)], True


def _settle_futures(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in outcomes:
        if future.done():
            continue  # the caller stopped waiting (cancelled)
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _nothing(conn: sqlite3.Connection) -> None:
    return None


def _in_isolated_transaction(
    conn: sqlite3.Connection, ops: list[tuple[Callable[..., Any], tuple[Any, ...]]]
) -> list[tuple[bool, Any]]:
    """One transaction, each write in its own savepoint: a failing one is undone alone."""
    outcomes: list[tuple[bool, Any]] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for fn, args in ops:
            conn.execute("SAVEPOINT op")
            try:
                value = fn(conn, *args)
            except Exception as exc:
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                outcomes.append((False, exc))
            else:
                conn.execute("RELEASE op")
                outcomes.append((True, value))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _checkpoint(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")


def _scalar(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> Any:
    return conn.execute(sql, args).fetchone()[0]


_GET_TASK = "SELECT * FROM tasks WHERE id = ?"


def _get_task(conn: sqlite3.Connection, task_id: str) -> Task | None:
    row = conn.execute(_GET_TASK, (task_id,)).fetchone()
    return Task.from_row(row) if row else None


# the sort keys of page_tasks, in SQL: never NULL (a NULL would drop out of the keyset's
# comparisons), the same values the views show (label falls back to the name, origin is
# the notebook's path else the origin type, progress a fraction)
LIST_SORTS = ("created", "label", "owner", "origin", "status", "progress", "duration",
              "started", "finished", "priority")
_SORT_SQL = {
    "created": "id",
    "label": "lower(coalesce(nullif(label, ''), nullif(name, ''), kind))",
    "owner": "lower(ifnull(owner, ''))",
    "origin": "CASE WHEN json_valid(origin) THEN ifnull(lower(coalesce("
              "nullif(json_extract(origin, '$.notebook'), ''), "
              "nullif(json_extract(origin, '$.notebook_path'), ''), "
              "nullif(json_extract(origin, '$.path'), ''), "
              "json_extract(origin, '$.type'))), '') ELSE '' END",
    "status": "CASE status WHEN 'running' THEN 0 WHEN 'queued' THEN 1 ELSE 2 END",
    "progress": "CASE WHEN json_valid(progress) AND json_extract(progress, '$.total') > 0 "
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


class TaskPage(NamedTuple):
    """A page of ``Store.page_tasks`` and the cursor of the next one (None at the end)."""

    tasks: list[Task]
    next_cursor: str | None


def _task_filters(statuses: Iterable[str] | None, name: str | None, kind: str | None,
                  owners: Iterable[str] | None, queue: str | None, task_key: str | None,
                  key_prefix: str | None, idempotency_key: str | None, parent_id: str | None,
                  worker_id: str | None, search: str | None, schedule_id: str | None = None
                  ) -> tuple[list[str], list[Any]] | None:
    """WHERE terms and their arguments of the list filters; None when nothing can match."""
    where: list[str] = []
    args: list[Any] = []
    if statuses:
        statuses = list(statuses)
        where.append(f"status IN ({','.join('?' * len(statuses))})")
        args += statuses
    for column, value in (("name", name), ("kind", kind), ("queue", queue),
                          ("task_key", task_key), ("idempotency_key", idempotency_key),
                          ("parent_id", parent_id), ("worker_id", worker_id),
                          ("schedule_id", schedule_id)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if owners is not None:
        owners = list(owners)
        if not owners:
            return None
        where.append(f"owner IN ({','.join('?' * len(owners))})")
        args += owners
    if key_prefix is not None:
        # a range keeps the task_key index usable where LIKE would not
        where.append("task_key >= ? AND task_key < ?")
        args += [key_prefix, key_prefix + "\U0010ffff"]
    if search:
        # an id prefix by instr, not LIKE: '%' or '_' typed in the box are no wildcards
        where.append("(instr(lower(ifnull(label, '')), ?) OR instr(lower(ifnull(name, '')), ?)"
                     " OR instr(id, ?) = 1)")
        needle = search.lower()
        args += [needle, needle, needle]
    return where, args


def _encode_list_cursor(sort: str, order: str, value: Any, task_id: str, now: float) -> str:
    raw = json.dumps([sort, order, value, task_id, now], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_list_cursor(cursor: str, sort: str, order: str) -> tuple[Any, str, float]:
    """(sort value, id, clock) of a cursor made for this sort and order, else InvalidRequest."""
    def bad(why: str) -> InvalidRequest:
        return InvalidRequest(f"invalid cursor: {why}",
                              errors=[{"field": "cursor", "message": why}])

    if sort == "created":
        if not _TASK_ID_RE.match(cursor):
            raise bad("not a next_cursor of this sort and order")
        return None, cursor, 0.0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_for, made_order, value, task_id, now = json.loads(raw)
    except (ValueError, TypeError):
        raise bad("not a next_cursor of this API") from None
    if made_for != sort or made_order != order:
        raise bad(f"made for sort={made_for} order={made_order}, not sort={sort} order={order}")
    if not (isinstance(task_id, str) and _TASK_ID_RE.match(task_id)
            and isinstance(value, (int, float, str)) and not isinstance(value, bool)
            and isinstance(now, (int, float)) and math.isfinite(now)):
        raise bad("not a next_cursor of this API")
    return value, task_id, float(now)


_TASK_ID_RE = re.compile(r"^[0-9a-f]{32}$")


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


def _insert_event(conn: sqlite3.Connection, task: Task | str, event: EventType | str,
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


_TASK_COLUMNS = [
    "id", "kind", "mode", "status", "name", "label", "params", "spec", "result", "error",
    "progress", "task_key", "idempotency_key", "payload_hash", "queue", "priority", "owner",
    "origin", "attempts", "max_retries", "lost_attempts", "retry_reason", "timeout",
    "memory_limit_mb", "not_before", "parent_id", "relationship", "schedule_id", "worker_id",
    "lease_expires_at", "cancel_requested", "confirmation",
    "callback_url", "resource_usage", "content_hashes", "process", "value_notes", "created_at",
    "started_at", "finished_at", "updated_at",
]
_INSERT_TASK = (
    f"INSERT INTO tasks ({', '.join(_TASK_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_TASK_COLUMNS))})"
)


_TASK_JSON_AT = [i for i, c in enumerate(_TASK_COLUMNS) if c in JSON_COLUMNS]
_TASK_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Task)
                  if f.default is not dataclasses.MISSING}


def _task_row_values(row: Mapping[str, Any]) -> list[Any]:
    """One row of ``insert_task_rows`` as the values of ``_INSERT_TASK``, encoded."""
    problems = [{"field": column, "message": "not a task column"}
                for column in sorted(row.keys() - set(_TASK_COLUMNS))]
    problems += [{"field": column, "message": "required"}
                 for column in _TASK_COLUMNS if column not in _TASK_DEFAULTS and column not in row]
    if problems:
        raise InvalidRequest(f"invalid task row: {problems}", errors=problems)
    return [_encode(column, row.get(column, _TASK_DEFAULTS.get(column)))
            for column in _TASK_COLUMNS]


def _tx_insert_rows(conn: sqlite3.Connection, values: list[list[Any]]) -> int:
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
    _insert_event(conn, task, EventType.for_status(task.status_enum), task.created_at)


def _tx_create_task(conn: sqlite3.Connection, task: Task,
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
    _insert_task(conn, task, encoded)
    return task, False


def _tx_create_many(conn: sqlite3.Connection, tasks: list[Task]) -> list[Task]:
    for task in tasks:
        _insert_task(conn, task)
    return tasks


def _update_task(
    conn: sqlite3.Connection,
    task_id: str,
    changes: dict[str, Any],
    when_status: Sequence[str] | None = None,
    when_worker: str | None = None,
) -> Task | None:
    changes = {**changes, "updated_at": changes.get("updated_at", time.time())}
    sets = ", ".join(f"{column} = ?" for column in changes)
    args = [_encode(c, v) for c, v in changes.items()]
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


def _tx_transition(
    conn: sqlite3.Connection,
    task_id: str,
    changes: dict[str, Any],
    event: EventType | str | None,
    when_status: Sequence[str] | None,
    when_worker: str | None,
) -> Task | None:
    task = _update_task(conn, task_id, changes, when_status, when_worker)
    if task is not None and event is not None:
        _insert_event(conn, task, event, task.updated_at)
    return task


def _tx_finish(
    conn: sqlite3.Connection,
    task_id: str,
    changes: dict[str, Any],
    event: EventType | str,
    worker_id: str,
    claim_queue: str | None,
    lease_seconds: float,
) -> Finished:
    changes = {**changes, "updated_at": changes.get("updated_at", time.time())}
    sets = ", ".join(f"{column} = ?" for column in changes)
    args = [_encode(c, v) for c, v in changes.items()]
    # only what the caller needs back: decoding the whole row costs more than the update
    row = conn.execute(
        f"UPDATE tasks SET {sets} WHERE id = ? AND status = 'running' AND worker_id = ? "
        "RETURNING callback_url",
        [*args, task_id, worker_id],
    ).fetchone()
    if row is not None:
        _insert_event(conn, task_id, event, changes["updated_at"])
    claimed = _tx_claim(conn, claim_queue, worker_id, lease_seconds, 1) if claim_queue else []
    return Finished(row is not None, row[0] if row is not None else None,
                    claimed[0] if claimed else None)


def _tx_updates(
    conn: sqlite3.Connection,
    progress: list[tuple[str, dict[str, Any]]],
    logs: list[tuple[str, list[tuple[float, str, str]]]],
) -> None:
    for task_id, entries in logs:
        _tx_append_logs(conn, task_id, entries)
    now = time.time()
    for task_id, value in progress:
        changed = conn.execute(
            "UPDATE tasks SET progress = ?, updated_at = ? WHERE id = ? AND status = 'running'",
            (encode_value(value, where="progress").text, now, task_id),
        ).rowcount
        if changed:
            _insert_event(conn, task_id, EventType.PROGRESS, now)


def _tx_request_cancel(conn: sqlite3.Connection, task_id: str) -> Task:
    now = time.time()
    task = _update_task(
        conn, task_id,
        {"status": TaskStatus.CANCELLED.value, "cancel_requested": True, "finished_at": now,
         "updated_at": now},
        (TaskStatus.QUEUED.value,),
    )
    if task is not None:
        _insert_event(conn, task, EventType.CANCELLED, now)
        return task
    current = _get_task(conn, task_id)
    if current is None:
        raise TaskNotFound(f"no task with id {task_id}")
    if current.status == TaskStatus.CANCELLED.value:
        return current
    if current.is_terminal:
        raise TaskStateConflict(f"task {task_id} already ended {current.status}")
    if current.cancel_requested:
        return current
    task = _update_task(conn, task_id, {"cancel_requested": True, "updated_at": now})
    assert task is not None
    _insert_event(conn, task, EventType.CANCEL_REQUESTED, now)
    return task


def _tx_answer(conn: sqlite3.Connection, task_id: str, answer: str) -> Task:
    from .exceptions import InvalidAnswer, NothingToConfirm

    task = _get_task(conn, task_id)
    if task is None:
        raise TaskNotFound(f"no task with id {task_id}")
    pending = task.confirmation
    if task.is_terminal or not pending or pending.get("answer") is not None:
        raise NothingToConfirm(f"task {task_id} is not waiting for a confirmation")
    choices = pending.get("choices") or []
    if answer not in choices:
        raise InvalidAnswer(
            f"answer {answer!r} is not one of {choices}",
            errors=[{"field": "answer", "message": f"must be one of {choices}"}],
        )
    now = time.time()
    updated = _update_task(
        conn, task_id, {"confirmation": {**pending, "answer": answer, "answered_at": now}}
    )
    assert updated is not None
    _insert_event(conn, updated, EventType.CONFIRMATION, now)
    return updated


def _tx_delete(conn: sqlite3.Connection, task_id: str) -> Task:
    task = _get_task(conn, task_id)
    if task is None:
        raise TaskNotFound(f"no task with id {task_id}")
    if not task.is_terminal:
        raise TaskStateConflict(f"task {task_id} is {task.status}; cancel it before deleting")
    # the event first: its snapshot is read from the row about to go
    _insert_event(conn, task, EventType.DELETED, time.time())
    conn.execute("DELETE FROM tasks WHERE id = ?", (task_id,))
    conn.execute("DELETE FROM task_logs WHERE task_id = ?", (task_id,))
    conn.execute("DELETE FROM artifacts WHERE task_id = ?", (task_id,))
    return task


def _tx_append_logs(
    conn: sqlite3.Connection, task_id: str, entries: list[tuple[float, str, str]]
) -> int:
    conn.executemany(
        "INSERT INTO task_logs (task_id, ts, stream, text) VALUES (?, ?, ?, ?)",
        [(task_id, ts, stream, text) for ts, stream, text in entries],
    )
    last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
    _insert_event(conn, task_id, EventType.LOG, time.time())
    return last


def _tx_claim(
    conn: sqlite3.Connection, queue: str, worker_id: str, lease_seconds: float, limit: int
) -> list[Task]:
    now = time.time()
    # one job (a busy slot's next) compares with the subquery's single id; several go
    # through IN, which builds a temporary index of the ids first
    rows = conn.execute(
        "UPDATE tasks SET status = 'running', worker_id = ?, lease_expires_at = ?, "
        "attempts = attempts + 1, started_at = ?, updated_at = ?, not_before = NULL, "
        "process = NULL "
        f"WHERE id {'=' if limit == 1 else 'IN'} (SELECT id FROM tasks WHERE status = 'queued' "
        "AND mode = 'job' AND queue = ? AND ifnull(not_before, 0) <= ? "
        "ORDER BY priority DESC, id LIMIT ?) RETURNING *",
        (worker_id, now + lease_seconds, now, now, queue, now, limit),
    ).fetchall()
    tasks = sorted((Task.from_row(r) for r in rows), key=lambda t: (-t.priority, t.id))
    for task in tasks:
        _insert_event(conn, task, EventType.STARTED, now)
    return tasks


def _tx_register_worker(conn: sqlite3.Connection, w: WorkerInfo) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO workers (id, kind, pid, host, pid_started_at, queues, started_at, "
        "heartbeat_at, stopped_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
        (w.id, w.kind, w.pid, w.host, w.pid_started_at, dumps(w.queues), w.started_at,
         w.heartbeat_at),
    )


def _tx_heartbeat(conn: sqlite3.Connection, worker_id: str, lease_seconds: float) -> None:
    now = time.time()
    conn.execute("UPDATE workers SET heartbeat_at = ? WHERE id = ?", (now, worker_id))
    conn.execute(
        "UPDATE tasks SET lease_expires_at = ? WHERE worker_id = ? AND status = 'running'",
        (now + lease_seconds, worker_id),
    )


def _tx_stop_worker(conn: sqlite3.Connection, worker_id: str) -> None:
    conn.execute("UPDATE workers SET stopped_at = ? WHERE id = ?", (time.time(), worker_id))


def _worker_from_row(row: sqlite3.Row) -> WorkerInfo:
    return WorkerInfo(
        id=row["id"], kind=row["kind"], pid=row["pid"], host=row["host"],
        started_at=row["started_at"], heartbeat_at=row["heartbeat_at"],
        pid_started_at=row["pid_started_at"], queues=json.loads(row["queues"] or "[]"),
        stopped_at=row["stopped_at"],
    )


def _reap_candidates_query(dead: list[str], now: float) -> tuple[str, list[Any]]:
    """The running tasks of dead workers, or past their lease: SQL and arguments."""
    if dead:
        marks = ",".join("?" * len(dead))
        return (f"SELECT * FROM tasks WHERE status = 'running' AND (worker_id IN ({marks}) "
                "OR lease_expires_at < ?)", [*dead, now])
    return "SELECT * FROM tasks WHERE status = 'running' AND lease_expires_at < ?", [now]


def _reap_candidates(conn: sqlite3.Connection, dead: list[str], now: float) -> list[Task]:
    return [Task.from_row(row) for row in conn.execute(*_reap_candidates_query(dead, now))]


def _tx_set_process(conn: sqlite3.Connection, task_id: str, worker_id: str,
                    process: dict[str, Any] | None) -> bool:
    # no event: the record is for reapers, not for people watching the task
    return conn.execute(
        "UPDATE tasks SET process = ? WHERE id = ? AND worker_id = ? AND status = 'running'",
        (None if process is None else dumps(process), task_id, worker_id),
    ).rowcount > 0


def _tx_reap(conn: sqlite3.Connection, dead: list[str], now: float,
             cleared: dict[str, Mapping[str, Any]], max_lost: int) -> list[Task]:
    if dead:
        marks = ",".join("?" * len(dead))
        conn.execute(f"UPDATE workers SET stopped_at = ? WHERE id IN ({marks})", [now, *dead])
    settled = []
    for task in _reap_candidates(conn, dead, now):
        if task.process is not None and cleared.get(task.id) != task.process:
            # its process group may still run (or was recorded after the caller looked):
            # it stays running until a reaper has seen that group end
            continue
        if task.process is not None and task.process.get("exit") is not None:
            # the work's process group recorded its exit before its worker died:
            # that is the outcome, the work is not run again
            changes, event = _ended_from_exit(task, task.process, now)
            _tx_append_logs(conn, task.id, [(now, "log", (
                f"[jupyter-tasks] worker {task.worker_id} was lost after the process exited "
                f"with code {task.process['exit']}; this end was written from that exit"))])
        else:
            changes, event = _lost(task, now, max_lost)
        updated = _update_task(conn, task.id, changes, (TaskStatus.RUNNING.value,))
        if updated is not None:
            _insert_event(conn, updated, event, now)
            settled.append(updated)
    return settled


def _lost(task: Task, now: float, max_lost: int) -> tuple[dict[str, Any], EventType]:
    """A lost worker's task with no recorded exit: back in the queue, or ended."""
    lost = {"type": "WorkerLost",
            "message": f"worker {task.worker_id} stopped while running this task",
            "traceback": None}
    if task.mode == TaskMode.JOB.value and task.lost_attempts < max_lost \
            and not task.cancel_requested:
        # the work did not fail: this attempt is not one of its max_retries
        return ({"status": TaskStatus.QUEUED.value, "worker_id": None,
                 "lease_expires_at": None, "not_before": None, "error": lost,
                 "started_at": None, "process": None, "retry_reason": WORKER_LOST,
                 "lost_attempts": task.lost_attempts + 1}, EventType.RETRYING)
    if task.mode == TaskMode.JOB.value and not task.cancel_requested:
        times = task.lost_attempts + 1
        lost = {**lost, "message": f"{lost['message']}; its worker was lost {times} "
                                   f"time{'' if times == 1 else 's'}, not retried again"}
    status = TaskStatus.CANCELLED if task.cancel_requested else TaskStatus.INTERRUPTED
    return ({"status": status.value, "error": lost, "finished_at": now,
             "lease_expires_at": None, "process": None}, EventType.for_status(status))


def _ended_from_exit(task: Task, process: Mapping[str, Any],
                     now: float) -> tuple[dict[str, Any], EventType]:
    """The end a lost worker would have written for a command (or code job) that exited."""
    code = int(process["exit"])
    ended_at = float(process.get("ended_at") or now)
    if code == 0:
        return ({"status": TaskStatus.SUCCEEDED.value, "result": {"returncode": 0},
                 "error": None, "finished_at": ended_at, "lease_expires_at": None,
                 "process": None}, EventType.SUCCEEDED)
    failed = {"type": "CodeFailed" if task.kind == "code" else "SubprocessFailed",
              "message": f"the process exited with code {code}; worker {task.worker_id} "
                         "was lost before it wrote this end",
              "traceback": None}
    # a failure like any other: retried while max_retries allows, as the worker would have
    if task.mode == TaskMode.JOB.value and task.work_attempts <= task.max_retries \
            and not task.cancel_requested:
        return ({"status": TaskStatus.QUEUED.value, "worker_id": None,
                 "lease_expires_at": None, "not_before": None, "error": failed,
                 "started_at": None, "process": None,
                 "retry_reason": failure_reason(failed)}, EventType.RETRYING)
    return ({"status": TaskStatus.FAILED.value, "error": failed, "finished_at": ended_at,
             "lease_expires_at": None, "process": None}, EventType.FAILED)


def _tx_add_artifact(conn: sqlite3.Connection, a: Artifact) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO artifacts (task_id, name, size, sha256, content_type, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (a.task_id, a.name, a.size, a.sha256, a.content_type, a.created_at),
    )


def _artifacts_query(task_id: str, name: str | None) -> tuple[str, list[Any]]:
    sql = "SELECT task_id, name, size, sha256, content_type, created_at FROM artifacts " \
          "WHERE task_id = ?"
    args: list[Any] = [task_id]
    if name is not None:
        sql += " AND name = ?"
        args.append(name)
    return sql + " ORDER BY name", args


def _events_query(after_id: int, limit: int, task_id: str | None,
                  owners: list[str] | None) -> tuple[str, list[Any]]:
    # a 'feed.mark' row only holds the numbering of a feed pruned empty (migration 3)
    sql = "SELECT id, type, task_id, ts, owner, task FROM events WHERE id > ? " \
        "AND type != 'feed.mark'"
    args: list[Any] = [after_id]
    if task_id is not None:
        # nothing of a task comes before its task.created event: the scan starts there
        # (a constant subquery, so the rowid range still bounds the scan)
        sql = sql.replace("id > ?", "id > max(?, ifnull((SELECT id - 1 FROM events "
                          "WHERE task_id = ? AND type = 'task.created'), 0))")
        sql += " AND task_id = ?"
        args += [task_id, task_id]
    if owners is not None:
        sql += f" AND owner IN ({','.join('?' * len(owners))})"
        args += owners
    sql += " ORDER BY id LIMIT ?"
    args.append(limit)
    return sql, args


def _tx_prune(conn: sqlite3.Connection, finished_before: float, events_before: float) -> list[str]:
    marks = ",".join("?" * len(TERMINAL_STATUSES))
    ids = [r[0] for r in conn.execute(
        f"SELECT id FROM tasks WHERE status IN ({marks}) AND finished_at < ?",
        [*TERMINAL_STATUSES, finished_before],
    )]
    for task_id in ids:
        conn.execute("DELETE FROM tasks WHERE id = ?", (task_id,))
        conn.execute("DELETE FROM task_logs WHERE task_id = ?", (task_id,))
        conn.execute("DELETE FROM artifacts WHERE task_id = ?", (task_id,))
    # never the newest event: event ids are rowids, and the largest one is what the
    # next id counts from, so ids (clients' cursors) never go back
    conn.execute("DELETE FROM events WHERE ts < ? AND id < (SELECT max(id) FROM events)",
                 (events_before,))
    return ids


def _file_chunks(path: Path, size: int = 1 << 20) -> Iterable[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(size):
            yield chunk


# ----------------------------------------------------------------------- schedules

_SCHEDULE_JSON = ("job", "spec", "options")
_SCHEDULE_SELECT = ("SELECT s.*, t.status AS last_status FROM schedules s "
                    "LEFT JOIN tasks t ON t.id = s.last_task_id")


def _schedule_from_row(row: sqlite3.Row) -> Schedule:
    values = dict(row)
    for column in _SCHEDULE_JSON:
        values[column] = json.loads(values[column])
    values["paused"] = bool(values["paused"])
    return Schedule(**values)


def _get_schedule(conn: sqlite3.Connection, schedule_id: str) -> Schedule | None:
    row = conn.execute(_SCHEDULE_SELECT + " WHERE s.id = ?", (schedule_id,)).fetchone()
    return _schedule_from_row(row) if row is not None else None


def _insert_schedule_event(conn: sqlite3.Connection, schedule_id: str, owner: str | None,
                           schedule: Schedule | None, ts: float) -> None:
    # the snapshot column holds the schedule JSON (NULL once deleted); Event.to_json
    # turns it into {type: "schedule.changed", schedule_id, schedule}
    snapshot = dumps(schedule.to_json()) if schedule is not None else None
    conn.execute("INSERT INTO events (task_id, type, ts, owner, task) VALUES (?, ?, ?, ?, ?)",
                 (schedule_id, SCHEDULE_CHANGED, ts, owner, snapshot))


def _tx_create_schedule(conn: sqlite3.Connection, schedule: Schedule) -> Schedule:
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


def _tx_update_schedule(conn: sqlite3.Connection, schedule_id: str, changes: dict[str, Any],
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


def _tx_delete_schedule(conn: sqlite3.Connection, schedule_id: str) -> Schedule:
    schedule = _get_schedule(conn, schedule_id)
    if schedule is None:
        raise ScheduleNotFound(f"no schedule with id {schedule_id}")
    conn.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,))
    _insert_schedule_event(conn, schedule_id, schedule.owner, None, time.time())
    return schedule
