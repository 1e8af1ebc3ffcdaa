"""The store's connections: the one writer thread, the reader, migrations, group commit."""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import aiosqlite

from ..exceptions import (
    StoreBusy,
    StoreError,
    StoreFull,
    StoreUnavailable,
)
from ..migrations import LATEST_VERSION, MIGRATIONS

T = TypeVar("T")
# a queued write: fn(connection, *args), and the future its caller awaits
Op = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]

BUSY_TIMEOUT_MS = 30_000
CHECKPOINT_SECONDS = 1.0
AUTOCHECKPOINT_PAGES = 20_000
# bounds a transaction, so reads queued behind it wait at most this many writes
MAX_OPS_PER_COMMIT = 256
# A write that finds another process's write lock tries again after LOCK_RETRY_SECONDS,
# the pause doubling up to LOCK_RETRY_MAX_SECONDS. SQLite's own busy handler sleeps 1,
# 2, 5, 10 ... up to 100 ms between tries, and another process writing one transaction
# after another (a server pruning its history) leaves gaps far shorter than that: a
# kernel's submit beside a million-task prune waited up to 3,044 ms (186 ms with these)
LOCK_RETRY_SECONDS = 0.0001
LOCK_RETRY_MAX_SECONDS = 0.002


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
        # held while a function uses the connection, on the thread or in run_here
        self._using = threading.Lock()
        # done once the thread closed the connection (see close)
        self._stopped: concurrent.futures.Future[None] | None = None

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

    def run_here(self, fn: Callable[[], Any]) -> bool:
        """Run ``fn()`` in the calling thread if the connection is idle now; False if busy.

        Saves the two thread switches of a queued call (each a wake-up that a loaded
        machine can delay) for short work; ``fn`` must not wait for anything.
        """
        if not self._using.acquire(blocking=False):
            return False
        try:
            fn()
        finally:
            self._using.release()
        return True

    async def close(self) -> None:
        """Run what is queued, close the connection and end the thread; safe to call twice.

        Twice at once too: both wait for the one close (a second stop queued behind
        the first would never be served).
        """
        if self._stopped is None:
            if not self._thread.is_alive():
                return
            stopped = self._stopped = concurrent.futures.Future()
            connection, self._connection = self._connection, None

            def close_connection() -> None:
                try:
                    if connection is not None:
                        connection.close()
                except BaseException as exc:
                    stopped.set_exception(exc)
                else:
                    stopped.set_result(None)

            self._calls.put((close_connection, None))
            self._calls.put((None, None))
        await asyncio.wrap_future(self._stopped)

    def _serve(self) -> None:
        while True:
            fn, future = self._calls.get()
            if fn is None:
                return
            try:
                with self._using:
                    result = fn()
            except BaseException as exc:  # handed to the caller; the thread goes on
                if future is not None:
                    _settle_from_thread(future, False, exc)
            else:
                if future is not None:
                    _settle_from_thread(future, True, result)


def _settle_from_thread(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
        future.get_loop().call_soon_threadsafe(settle_futures, [(future, ok, value)])


async def open_reader(database: str, busy_timeout: float, *,
                       uri: bool = False) -> aiosqlite.Connection:
    """The read connection: aiosqlite, set up through its public API only."""
    reader = await aiosqlite.connect(database, uri=uri, isolation_level=None,
                                     timeout=busy_timeout)
    try:
        reader.row_factory = sqlite3.Row
        await reader.create_function(FOLD_CASE_FUNCTION, 1, fold_case, deterministic=True)
        await reader.execute_fetchall(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        await reader.execute_fetchall("PRAGMA temp_store = MEMORY")
        # a guard: a write slipped onto this connection would take the lock beside the writer
        await reader.execute_fetchall("PRAGMA query_only = ON")
    except BaseException:
        await reader.close()
        raise
    return reader


def open_point_reader(database: str, *, uri: bool = False) -> sqlite3.Connection:
    """A connection for primary-key reads on the event loop itself; it never waits for a lock."""
    # timeout 0: under WAL a read takes no lock a writer holds, so SQLITE_BUSY means a rare
    # case (another process's exclusive lock, a recovery) that the caller hands to the reader
    conn = sqlite3.connect(database, isolation_level=None, timeout=0, check_same_thread=False,
                           uri=uri)
    try:
        conn.row_factory = sqlite3.Row
        register_functions(conn)
        conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn


# ========================================================================
# Functions below run in the database thread with a sqlite3.Connection.
# ========================================================================


def fold_case(text: str | None) -> str | None:
    """``text`` lowered as Python lowers it, every letter with a case (not only ASCII's)."""
    return text.lower() if isinstance(text, str) else text


# SQLite's lower() folds ASCII letters only (an "Ü" stays): a search for text with other
# letters compares through this function, registered on each of the store's connections.
# Only queries name it, never an index or a trigger, which another program's connection
# (without it) runs too
FOLD_CASE_FUNCTION = "jupyter_tasks_fold_case"


def register_functions(conn: sqlite3.Connection) -> None:
    """The store's own SQL functions on ``conn`` (see FOLD_CASE_FUNCTION)."""
    conn.create_function(FOLD_CASE_FUNCTION, 1, fold_case, deterministic=True)


def setup_connection(conn: sqlite3.Connection, busy_timeout: float) -> None:
    conn.row_factory = sqlite3.Row
    register_functions(conn)
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


def check_version_read_only(version: int, path: str) -> None:
    if version > LATEST_VERSION:
        raise StoreError(
            f"database schema version {version} of {path} is newer than this jupyter-tasks "
            f"understands ({LATEST_VERSION}); upgrade jupyter-tasks")
    if version < LATEST_VERSION:
        raise StoreError(
            f"database {path} has schema version {version}, older than this jupyter-tasks "
            f"({LATEST_VERSION}); it cannot be upgraded read-only: start the server (or any "
            "writer) once to migrate it")


def fetchall(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> list[sqlite3.Row]:
    return conn.execute(sql, args).fetchall()


def translate(exc: BaseException) -> BaseException:
    """The store's error for an SQLite one: a held lock is ``StoreBusy`` (503, retry)."""
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        if "database is locked" in text or "database is busy" in text:
            return StoreBusy(
                "the task database is busy: another process held its write lock past the "
                "busy timeout; try again")
        if "database or disk is full" in text:
            return StoreFull(
                "the disk holding the task database is full: nothing was changed; free "
                "some space and try again")
        if "readonly database" in text:
            # the file, its folder or its disk may not be written by this process: said
            # as such (a 503 over REST, one error line in the CLI), not as a traceback
            return StoreUnavailable(
                "the task database cannot be written by this process (a read-only file, "
                "folder or disk, or one owned by another user): nothing was changed; "
                "give this user write access to it and its folder, or another --db")
    return exc





def begin_immediate(conn: sqlite3.Connection, timeout: float) -> None:
    """``BEGIN IMMEDIATE``, tried again while another connection holds the write lock.

    For a connection whose busy timeout is 0 (each try answers at once); past
    ``timeout`` seconds the last try's ``database is locked`` error is raised.
    """
    pause = LOCK_RETRY_SECONDS
    deadline: float | None = None
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if not isinstance(translate(exc), StoreBusy):
                raise
            now = time.monotonic()
            if deadline is None:
                deadline = now + timeout
            if now >= deadline:
                raise
            time.sleep(min(pause, deadline - now))
            pause = min(pause * 2, LOCK_RETRY_MAX_SECONDS)


def wait_for_locks_by_own_tries(conn: sqlite3.Connection) -> None:
    """Busy timeout 0 for the writer once it is set up: each ``BEGIN IMMEDIATE`` then
    answers at once, and ``begin_immediate`` (or a try a turn later on the event loop)
    waits for another process's lock instead of SQLite's handler, which sleeps up to
    100 ms between tries."""
    conn.execute("PRAGMA busy_timeout = 0")


def migrate(conn: sqlite3.Connection) -> None:
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
                for statement in split_sql(script):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
        conn.execute("COMMIT")
    except BaseException as exc:
        # SQLite has rolled back by itself after some errors (a full disk): a ROLLBACK of
        # its own then failed, "no transaction is active", and hid the cause
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        said = translate(exc)
        if said is exc:
            raise
        raise said from None


def split_sql(script: str) -> list[str]:
    """The statements of a migration script, comment lines dropped.

    Split at each ``;`` that ends a complete statement (``sqlite3.complete_statement``),
    so a trigger's body stays with its ``CREATE TRIGGER``.
    """
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    statements: list[str] = []
    pending = ""
    for piece in "\n".join(lines).split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip().removesuffix(";").strip())
            pending = ""
    if pending.strip(" \n;"):
        statements.append(pending.strip().removesuffix(";").strip())
    return [s for s in statements if s]


def stream_transaction(
    conn: sqlite3.Connection, ops: queue.SimpleQueue[Op], limit: int, *, wait: float,
    before_commit: Callable[[], None] | None = None,
) -> tuple[list[tuple[asyncio.Future[Any], bool, Any]], bool] | None:
    """Take writes from ``ops`` into one transaction until none is left; returns their outcomes.

    The transaction waits up to ``wait`` seconds for another connection's write
    lock (``begin_immediate``; the connection's own busy timeout is 0). With
    ``wait`` 0, a transaction that cannot begin returns None with nothing taken:
    for a caller that must not wait.
    ``before_commit`` runs just before COMMIT; if it raises, every write taken
    is rolled back and fails with its exception.

    Optimistic: almost every batch succeeds whole, and a savepoint per write
    would cost two more statements. If a write raises, the batch is rolled back
    and rerun with a savepoint per write, so the failing one is undone alone
    (writes are functions of the database and their arguments, so the rerun
    repeats what succeeded).
    """
    taken: list[Op] = []
    values: list[Any] = []

    def fail_all(exc: BaseException) -> tuple[list[tuple[asyncio.Future[Any], bool, Any]], bool]:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        exc = translate(exc)
        return [(future, False, exc) for _, _, future in taken], False

    if not wait:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if isinstance(translate(exc), StoreBusy):
                return None
            raise
    else:
        try:
            begin_immediate(conn, wait)
        except BaseException as exc:  # locked past the busy timeout: fail what waits now
            while True:
                try:
                    taken.append(ops.get_nowait())
                except queue.Empty:
                    break
            return fail_all(exc)
    try:
        # where a failing batch goes back to, keeping the write lock (see
        # _in_isolated_transaction)
        conn.execute("SAVEPOINT batch")
        while len(taken) < limit:
            try:
                op = ops.get_nowait()
            except queue.Empty:
                break
            taken.append(op)
            values.append(op[0](conn, *op[1]))
    except Exception as exc:
        if len(taken) <= 1:  # alone in its transaction: a rollback undoes just it
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if not taken:  # the savepoint itself failed: nothing was taken to answer
                raise
            return [(taken[0][2], False, translate(exc))], False
        try:
            isolated = _in_isolated_transaction(conn, [(fn, args) for fn, args, _ in taken],
                                                wait, before_commit)
        except BaseException as exc2:
            return fail_all(exc2)
        return [(future, ok, value) for (_, _, future), (ok, value)
                in zip(taken, isolated, strict=True)], True
    except BaseException as exc:
        return fail_all(exc)
    try:
        if before_commit is not None:
            before_commit()
        conn.execute("COMMIT")
    except BaseException as exc:
        return fail_all(exc)
    return [(future, True, value) for (_, _, future), value
            in zip(taken, values, strict=True)], True


def settle_futures(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in outcomes:
        if future.done():
            continue  # the caller stopped waiting (cancelled)
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def nothing(conn: sqlite3.Connection) -> None:
    return None


def _in_isolated_transaction(
    conn: sqlite3.Connection, ops: list[tuple[Callable[..., Any], tuple[Any, ...]]],
    wait: float, before_commit: Callable[[], None] | None = None,
) -> list[tuple[bool, Any]]:
    """The writes of a failed batch again, each in its own savepoint: a failing one is
    undone alone.

    In the batch's own transaction, rolled back to its start, while SQLite kept it
    open: the write lock is kept, so no other process can take it in between (on the
    event loop, which does not wait for a lock, the good writes would fail with
    ``StoreBusy``). Else (an error that ended the transaction) in a new one.
    """
    outcomes: list[tuple[bool, Any]] = []
    kept = conn.in_transaction
    if not kept:
        begin_immediate(conn, wait)
    try:
        if kept:
            conn.execute("ROLLBACK TO batch")
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
        if before_commit is not None:
            before_commit()
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


def checkpoint(conn: sqlite3.Connection) -> int:
    """A passive checkpoint; how many frames the WAL holds (copied back or not)."""
    return conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]


def scalar(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> Any:
    return conn.execute(sql, args).fetchone()[0]
