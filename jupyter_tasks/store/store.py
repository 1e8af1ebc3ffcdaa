"""``Store``: async access to one database file and its artifact folder (the only door to it)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import hashlib
import mimetypes
import os
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from .. import dbfile
from ..exceptions import (
    InvalidRequest,
    StoreBusy,
    StoreError,
    StoreFull,
    StoreUnavailable,
    TaskNotFound,
)
from ..models import (
    ACTIVE_STATUSES,
    MAX_LOST_ATTEMPTS,
    TERMINAL_STATUSES,
    Artifact,
    Event,
    EventType,
    LogEntry,
    LogTailWrite,
    Task,
    TaskStatus,
    WorkerInfo,
    failure_reason,
)
from ..schedules import Schedule, ScheduleNotFound
from . import removals
from .callback_sql import (
    OWED_SQL,
    tx_callback_settled,
    tx_callback_tried,
    tx_claim_callback,
    tx_release_callbacks,
    tx_unclaim_callback,
)
from .connection import (
    BUSY_TIMEOUT_MS,
    CHECKPOINT_SECONDS,
    LOCK_RETRY_MAX_SECONDS,
    LOCK_RETRY_SECONDS,
    MAX_OPS_PER_COMMIT,
    DatabaseThread,
    Op,
    T,
    check_version_read_only,
    checkpoint,
    fetchall,
    migrate,
    nothing,
    open_point_reader,
    open_reader,
    scalar,
    settle_futures,
    setup_connection,
    stream_transaction,
    translate,
    wait_for_locks_by_own_tries,
)
from .event_sql import events_query
from .schedule_sql import (
    SCHEDULE_SELECT,
    schedule_from_row,
    tx_create_schedule,
    tx_delete_schedule,
    tx_update_schedule,
)
from .task_sql import (
    DISORDER_COUNT,
    FEW_TIES_SORTS,
    FRESH,
    GET_TASK,
    GROUP_WALKED_SORTS,
    LARGE_PAGE_CHARS,
    LIST_SORTS,
    NEAR_DISORDER_MAX,
    NEAR_HITS_FIRST,
    NEAR_HITS_MAX,
    OWNER_SORT_KEY,
    PRUNE_CHECKPOINT_SECONDS,
    PRUNE_CHUNK,
    PRUNE_CHUNK_SECONDS,
    SEARCH_BACKLOG_MAX,
    SEARCH_BATCH_LEFT,
    SEARCH_BATCH_SECONDS,
    SEARCH_DROPPED_EXISTS,
    SEARCH_HITS_FAR_MAX,
    SEARCH_HITS_MAX,
    SEARCH_INDEX_BATCH,
    SEARCH_MERGE_STEPS,
    SEARCH_NTH_HIT,
    SEARCH_PROBE,
    SEARCH_QUEUED_CHANGES,
    SEARCH_WALK_PER_HIT,
    SEARCH_WALK_START,
    SEARCH_WORK_LEFT,
    SETTLE_BATCH,
    SETTLE_WORK_LEFT,
    SETTLED,
    STATUS_TERMS,
    TASKS_UP_TO,
    WHOLE_ROWS_PER_READ,
    TaskPage,
    artifacts_query,
    check_artifact,
    decode_list_cursor,
    encode_list_cursor,
    file_chunks,
    hit_columns,
    id_order_query,
    is_task_id,
    longer_walk,
    near_page_query,
    next_key_query,
    owner_walked,
    page_query,
    queued_before,
    search_hits,
    search_match,
    stats_query,
    stored_json_chars,
    task_filters,
    task_row_values,
    tasks_present_query,
    tie_group_query,
    tx_add_artifact,
    tx_answer,
    tx_append_logs,
    tx_clear_search_queue,
    tx_create_many,
    tx_create_task,
    tx_delete,
    tx_drop_old_search,
    tx_index_search,
    tx_insert_rows,
    tx_merge_search,
    tx_prune_events,
    tx_prune_tasks,
    tx_request_cancel,
    tx_restart_search,
    tx_settle,
    tx_transition,
    tx_updates,
    tx_withdraw_confirmation,
    tx_write_log_tail,
    valid_artifact_name,
    walk_filled,
    whole_rows_query,
)
from .worker_sql import (
    DUE_JOB_SQL,
    Finished,
    Spared,
    due_args,
    finish_update,
    reap_candidates_query,
    tx_claim,
    tx_finish,
    tx_hand_back,
    tx_heartbeat,
    tx_reap,
    tx_register_worker,
    tx_set_process,
    tx_stop_worker,
    worker_from_row,
)

try:  # a thread's own context switches (loop_thread_blocks): Linux
    import resource

    _RUSAGE_THREAD: int | None = resource.RUSAGE_THREAD
except (ImportError, AttributeError):
    _RUSAGE_THREAD = None


# point reads (get_task, ~25 us each) answered in one turn of the event loop share it
# with the loop's other work: they go on without yielding while they have taken less
# than READ_SHARE_RATIO times what the rest of the loop took the last time they
# yielded (capped), and at least POINT_READ_TURN_SECONDS. With 4 busy job slots a
# fixed budget of 8 reads gave the reads about a quarter of the loop, an even share
# a little under half (benchmarks/bench_engine_reads.py: 2.04 times slower than
# beside idle slots). The larger share goes to the reads because their caller is
# waiting on them (a cell collecting results), while the slots' jobs run in the
# background and lose a fifth of their pace meanwhile.
POINT_READ_TURN_SECONDS = 0.0002
POINT_READ_TURN_MAX_SECONDS = 0.002
READ_SHARE_RATIO = 1.5
# the clock of that share (a name of its own, so a test can drive it)
turn_clock = time.perf_counter

# A WAL starts over (at its first frame) only when a transaction begins with every frame
# copied back; with writes going on while the checkpoint copies, some never are, and the
# WAL grows to the automatic checkpoint (connection.AUTOCHECKPOINT_PAGES), which then
# copies and syncs inside whichever commit crossed it: 70-118 ms commits of prune chunks
# and submits during a million-task prune. Past this many frames, the writer copies the
# rest itself after the checkpoint (20-40 ms between two transactions); in that prune
# the largest prune-chunk commit fell to 9 ms (submits' commits still reached ~60 ms).
TAIL_CHECKPOINT_FRAMES = 2000
# Before the writer copies the rest, a second copy beside the writes takes most of
# what was written during the first: the writer's own copy then has less to do (in a
# million-task prune its longest fell from 69 to 40 ms, its median from 26 to 24 ms)
PASSIVE_CHECKPOINTS = 2
# Jobs queued this long ago are settled too: a backlog, which the fresh part of every
# list would otherwise read whole (100,000 queued jobs: 20-320 ms a page, where settled
# they cost the usual ~1 ms). A job claimed within it, as any is when workers keep up,
# never enters the indexes before it ends.
QUEUED_SETTLE_SECONDS = 10.0
# how often a store settles the ended tasks (task_sql.tx_settle) and looks for tasks to add
# to the search index (task_sql.tx_index_search)
SEARCH_INDEX_SECONDS = 1.0
# The search index gives way to a stream of writes (a burst of submits): each of its
# batches holds the writer up to ~15 ms, and every write queued meanwhile waits for it.
# A burst of 20,000 submits with 64 in flight spent a quarter of its time so, the loop
# idle while its submits waited (1.8 s became 2.0-2.6 s). Once writes were seen since
# its last look, a batch waits until none has committed for SEARCH_QUIET_SECONDS, for at
# most SEARCH_GIVE_WAY_SECONDS a round; searches read the tasks not indexed yet directly.
SEARCH_QUIET_SECONDS = 0.05
SEARCH_GIVE_WAY_SECONDS = 5.0
# events_after reads up to this many events on the loop (a range of the rowid: a few pages)
EVENTS_HERE = 16

# Writes that take well under a millisecond, which a lone one may commit on the event
# loop (Store._flush): a submit, a job's claim, its start and its end.
SHORT_WRITES = frozenset({tx_create_task, tx_claim, tx_transition, tx_finish})
# Upkeep done in batches each sized to hold the writer ~25 ms (a prune chunk, a search
# index batch). Each commits alone, taking turns with the users' writes: grouped
# together, a submit queued between two of them waited for both (~100 ms stalls
# during a million-task prune).
def upkeep_barrier(conn: sqlite3.Connection) -> None:
    """Nothing, queued as upkeep: done once every upkeep batch queued before it is."""


# The writer's copy of the WAL's rest (see TAIL_CHECKPOINT_FRAMES) takes its turn with
# them too, outside any transaction. As a call queued on the writer thread of its own it
# went ahead of writes queued before it: a submit waited for it, the prune chunk that
# the alternation then let first, and the next one (80-93 ms in a million-task prune).
def tail_checkpoint(conn: sqlite3.Connection) -> int:
    """The writer's own checkpoint, queued as upkeep; how many frames the WAL holds."""
    return checkpoint(conn)


def tx_prune_tasks_noted(conn: sqlite3.Connection, cutoff: float, size: int, seconds: float,
                         artifacts: Path) -> tuple[int, list[str], bool, Path | None]:
    """``tx_prune_tasks``, and the note of the folders that go, written before the commit."""
    deleted, with_files, more = tx_prune_tasks(conn, cutoff, size, seconds)
    return deleted, with_files, more, removals.write_note(artifacts, with_files)


def tx_delete_noted(conn: sqlite3.Connection, task_id: str,
                    artifacts: Path) -> tuple[Task, Path | None]:
    """``tx_delete``, and the note of the task's folder, written before the commit."""
    return tx_delete(conn, task_id), removals.write_note(artifacts, [task_id])


UPKEEP_OUTSIDE_TRANSACTION = frozenset({tail_checkpoint})
UPKEEP_WRITES = frozenset({tx_prune_tasks, tx_prune_tasks_noted, tx_prune_events,
                           tx_index_search, tx_merge_search,
                           tx_clear_search_queue, tx_restart_search, tx_drop_old_search,
                           tx_settle,
                           upkeep_barrier, *UPKEEP_OUTSIDE_TRANSACTION})
# After each prune chunk the prune rests this many times as long as the chunk took,
# so the writes beside it get the writer and the disk. Pruning 900k of a million tasks
# beside a one-at-a-time writer (bench_million.py, 3 runs each): back to back, the writer
# committed ~230 writes/s, p99 26-27 ms, longest 69-181 ms (a write waits for a WAL
# copy's fdatasync); resting, 1,230-1,500 writes/s, p99 13-20 ms, longest 84-107 ms.
# The prune takes about twice as long (346-431 s against 193-215 s).
PRUNE_REST_RATIO = 1.0
# task ids of a removal note looked up at a time
REMOVAL_BATCH = 500


async def prune_rest(seconds: float) -> None:
    """The prune's rest between two chunks (a function of its own, so a test can watch it)."""
    await asyncio.sleep(seconds)


# Lone writes that find another process's write lock try again on the loop (pausing as
# connection.begin_immediate does, the loop serving meanwhile) for this long, then go
# to the writer thread to wait out the busy timeout there. On the thread, the writer
# holds the lock while the loop's Python takes the GIL between its statements: two
# worker processes on one database held it 1.6-2.1 ms per transaction of four job
# ends (0.75 ms on the loop), and drained trivial jobs at 0.80-0.91 of one process's
# rate (0.95-0.97 with the tries on the loop; benchmarks/bench_engine_queue.py)
HERE_LOCK_WAIT_SECONDS = 0.05
# While the store's threads have work (a transaction on the writer thread, a WAL copy,
# a read on aiosqlite's thread), the loop waits up to HELPER_YIELD_SECONDS for them
# every HELPER_YIELD_EVERY seconds. A loop that always has work ready drops the GIL
# for an instant in each turn (its select with no timeout) and takes it straight
# back; a thread waiting for the GIL is woken by each drop, finds it taken again and
# starts its wait over, so it never asks for its turn. Beside a coroutine computing
# in 1 ms steps, a burst of 64 submits waited 25-154 s for the writer thread
# (benchmarks/bench_engine_busy_loop.py), a one-row read about a second. A loop that
# blocked in its select since the last check gave the GIL away then, and does not wait
# (else a write waiting 5 s for another process's lock cost a REST server's reads a
# fifth of its loop: 12-30 % fewer GETs in bench_server_rest.py)
HELPER_YIELD_EVERY = 0.005
HELPER_YIELD_SECONDS = 0.001

# An upkeep transaction (a prune chunk, a search-index batch or merge step, a settling)
# and a WAL copy never run at once: beside a million-task prune, the longest index
# batches and merge steps (up to 100 and 96 ms, against 62 and 60 ms with no copy) and
# the longest waits of the writes queued behind them came when a copy shared the disk
# and the cores with them. An upkeep turn waits for a copy to end, looking this often
# whether short writes came in meanwhile (they go first: they commit beside a copy);
# a copy waits for the upkeep transaction running.
UPKEEP_COPY_POLL = 0.001


def loop_thread_blocks() -> int | None:
    """How many times the calling thread has blocked (voluntary context switches); None
    where the system does not count them per thread (the loop then always waits)."""
    if _RUSAGE_THREAD is None:
        return None
    return resource.getrusage(_RUSAGE_THREAD).ru_nvcsw


# above every rowid SQLite gives
MAX_ROWID = 2**63 - 1
# tie groups a descending page reads one by one before SQLite's own walk takes over
TIE_GROUPS_WALKED = 3


def artifact_content(data: bytes | str | os.PathLike[str]) -> bytes | Path:
    """What an artifact keeps of ``data``: bytes as they are, a ``str`` as its text (UTF-8),
    a path (``os.PathLike``) as the file it names; ``TypeError`` for anything else.

    A ``str`` is never taken for a path: before, one naming an existing file was read,
    and a task keeping a user's text kept any file the server could read instead.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        try:  # an undecodable byte as os.fsdecode gives it (\udc80) is that byte again
            return data.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"an artifact's text holds a lone surrogate {data[exc.start]!r} at character "
                f"{exc.start}, which UTF-8 cannot carry: give bytes, or text without it"
            ) from None
    if isinstance(data, os.PathLike):
        return Path(data)
    raise TypeError(f"an artifact's data is bytes, str or a path (pathlib.Path), "
                    f"not {type(data).__name__}")


def _keep_file(folder: Path, name: str, data: bytes | Path,
               mode: int = 0o700) -> tuple[int, str]:
    """Write ``data`` (bytes, or a file's content) as ``folder/name`` atomically: (size, sha256).

    A missing parent (the artifacts' folder) and ``folder`` (a task's) are made with
    ``mode``, the file with its read and write bits, whatever the umask: a worker run
    with umask 077 beside a database its group shares made them its own alone.
    """
    for made in (folder.parent, folder):
        try:
            made.mkdir()
            made.chmod(mode)
        except FileExistsError:
            pass  # made before, or by another process: its mode is left as it is
    # named apart from ``name``: a name of the file system's longest (255 bytes) made
    # a longer temporary one, refused, and the task failed with its other files lost
    tmp = folder / f".{os.getpid()}.{secrets.token_hex(4)}.tmp"
    digest = hashlib.sha256()
    size = 0
    try:
        with open(tmp, "wb") as out:
            os.fchmod(out.fileno(), mode & 0o666)
            chunks: Iterable[bytes] = [data] if isinstance(data, bytes) else file_chunks(data)
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        os.replace(tmp, folder / name)
    except BaseException as exc:
        # a half-written copy left behind kept a full disk full
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            # the same word as the database's own full disk: a task's end waits for space
            raise StoreFull(f"the disk holding the task artifacts is full ({folder}): "
                            "nothing was kept; free some space and try again") from exc
        raise
    return size, digest.hexdigest()


class Store:
    """Async access to one jupyter-tasks database file and its artifact folder."""

    def __init__(self, path: str | os.PathLike[str], writer: DatabaseThread | None,
                 reader: aiosqlite.Connection | None = None) -> None:
        self.path = Path(path)
        # named after the file's real path: a worker that reached it through a link kept
        # its artifacts beside the link, where the server found none
        real = Path(os.path.realpath(self.path))
        self.artifacts_dir = real.with_name(real.name + ".artifacts")
        # one artifact written at a time: the file that stays and its row agree
        self._artifact_lock = asyncio.Lock()
        # None for a read-only store: it has the reader alone
        self._writer = writer
        # reads go to a connection (and thread) of their own: WAL lets them run beside
        # the writer, so a GET never waits behind a transaction or a held write lock
        self._reader = reader
        # primary-key reads (a task view, result()) on the loop's own thread: no hop to a
        # thread and back, two wake-ups that a loop busy with job slots delays most (see
        # get_task); the lock keeps a second thread's loop, if any, on the reader instead
        self._point: sqlite3.Connection | None = None
        self._point_lock = threading.Lock()
        # when this turn's first point read began; None until one does (see get_task)
        self._turn_started: float | None = None
        self._others_took = 0.0  # how long the rest of the loop ran when reads last yielded
        # transactions this connection committed: SQLite's data_version only
        # moves for other connections' commits, so the event tailer needs both
        self.commits = 0
        self._own_write_commits = 0  # commits of writes other than the upkeep's
        # prunes deleting tasks now: the search index leaves their deletions queued until
        # they end, which then decide whether it forgets them or starts over (prune)
        self._pruning_tasks = 0
        # called on the event loop after each commit that changed a row: what other
        # parts (the feed, the cross-process wake-up bell) hang on "something was written"
        self.after_commit: list[Callable[[], None]] = []
        # group commit: writes queue here and the database thread takes them while
        # its transaction runs, committing when none is left (or MAX_OPS_PER_COMMIT);
        # a commit costs far more than a statement, and the thread starts on the
        # first write while the event loop is still producing the next ones
        self._ops: queue.SimpleQueue[Op] = queue.SimpleQueue()
        # UPKEEP_WRITES, one per transaction, alternating with those of _ops
        self._upkeep: queue.SimpleQueue[Op] = queue.SimpleQueue()
        self._upkeep_last = False  # the last transaction the thread ran was upkeep
        self._drain_lock = threading.Lock()
        self._draining = False  # a drain is queued or running on the database thread
        # a _flush is pending and every write queued since may commit on the loop
        self._flush_here = False
        self._busy_ms = BUSY_TIMEOUT_MS
        # since when lone writes have found another process's write lock (loop time;
        # None: not now), and the pause before their next try on the loop
        self._locked_since: float | None = None
        self._lock_pause = LOCK_RETRY_SECONDS
        self._closed = False
        self._checkpointer: asyncio.Task[None] | None = None
        self._upkeepers: list[asyncio.Task[None]] = []
        # the checkpoints' own connection, used by one checkpoint at a time (the loop's
        # every second, a prune's between its chunks)
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._checkpoint_lock = asyncio.Lock()
        self._checkpoint_running: asyncio.Future[None] | None = None
        # the loop's next wait for the store's threads (see HELPER_YIELD_EVERY), and
        # what they set each time they finish a piece of work
        self._helper_yield: asyncio.TimerHandle | None = None
        self._helper_done = threading.Event()
        # held by a WAL copy on its thread, or by an upkeep transaction (UPKEEP_COPY_POLL)
        self._copy_or_upkeep = threading.Lock()
        self._thread_calls = 0  # reads and calls the loop awaits from the store's threads
        self._loop_blocks: int | None = None  # loop_thread_blocks() at the last check
        # the file this store opened: before each write transaction the path must still
        # name it (dbfile.check_identity); once not, or once SQLite reports damage, this
        # holds why, and every operation fails with StoreUnavailable saying so
        # (absolute: a process that changes directory, a kernel's %cd, still means this file)
        self._file = Path(os.path.abspath(self.path))
        self._identity = dbfile.file_identity(self._file)
        # its write-ahead log and shared-memory index, once the writer opened them
        # (dbfile.check_companions)
        self._companions: dbfile.Companions = ()
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
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if create:
                dbfile.create_private(path)
        except OSError as exc:
            # a folder this user may not write in: one error line in the CLI (a 503 over
            # REST), not the traceback a worker and submit printed
            raise dbfile.cannot_create(path, exc) from None
        writer = DatabaseThread(functools.partial(
            sqlite3.connect, str(path), isolation_level=None, timeout=busy_timeout,
            check_same_thread=False), name=f"jupyter-tasks store {path.name}")
        await writer.start()
        store = cls(path, writer)
        store._busy_ms = int(busy_timeout * 1000)
        reader: aiosqlite.Connection | None = None
        try:
            await store._run(setup_connection, busy_timeout)
            await store._run(migrate)
            store._companions = dbfile.companion_identities(store._file)
            await store._run(wait_for_locks_by_own_tries)
            # never creating the file (a plain connect does): one deleted while this
            # store opened came back empty at its path, the writer on the old file
            uri = dbfile.existing_file_uri(path)
            reader = await open_reader(uri, busy_timeout, uri=True)
            store._point = open_point_reader(uri, uri=True)
            store._check_identity()  # every connection on the file the writer opened
        except BaseException as exc:
            if reader is not None:
                await reader.close()
            await writer.close()
            # a damaged file (cut short, overwritten) is said as such, with what to do,
            # wherever it is opened: the CLI and a worker printed a traceback
            damaged = dbfile.open_problem(path, exc)
            if damaged is not None:
                raise damaged from None
            raise
        store._reader = reader
        store._checkpointer = asyncio.ensure_future(store._checkpoint_loop())
        # apart: the search index may give way to the writes for seconds, the settling
        # (which keeps the lists' fresh part small) goes on meanwhile
        store._upkeepers = [asyncio.ensure_future(store._settle_loop()),
                            asyncio.ensure_future(store._search_index_loop())]
        return store

    @classmethod
    async def _open_read_only(cls, path: Path, busy_timeout: float) -> Store:
        reader = None
        try:
            reader = await open_reader(dbfile.read_only_uri(path), busy_timeout, uri=True)
            version = (await reader.execute_fetchall("PRAGMA user_version"))
            check_version_read_only(next(iter(version))[0], str(path))
        except BaseException as exc:
            if reader is not None:
                await reader.close()
            unavailable = dbfile.open_problem(path, exc)
            if unavailable is None:
                raise
            raise unavailable from exc
        store = cls(path, None, reader)
        store.read_only = True
        store._closed = True  # no write is ever queued (see _txn)
        return store

    async def close(self) -> None:
        """Finish pending writes and close the connection; safe to call twice."""
        upkeepers, self._upkeepers = self._upkeepers, []
        for upkeeper in upkeepers:
            upkeeper.cancel()
        await asyncio.gather(*upkeepers, return_exceptions=True)
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            await asyncio.gather(self._checkpointer, return_exceptions=True)
            self._checkpointer = None
        # closing under a copy of the WAL still running in its thread would crash: a
        # checkpoint under way (a prune's) ends after its current copy (it starts no
        # other once the checkpointer is gone), and a copy whose checkpoint was
        # cancelled still runs on
        async with self._checkpoint_lock:
            running = self._checkpoint_running
            if running is not None and not running.done():
                await asyncio.gather(running, return_exceptions=True)
            if self._checkpoint_conn is not None:
                self._checkpoint_conn.close()
                self._checkpoint_conn = None
        if not self._closed:
            # first, so that no write queues behind the barrier below: a later one is
            # refused (_txn), rather than left on a thread that stops under it
            self._closed = True
            with self._drain_lock:
                busy = self._draining
            if busy:  # each queue runs in order: once its last write is done, all
                # earlier ones are
                await asyncio.gather(self._queue_write(nothing, ()),
                                     self._queue_write(upkeep_barrier, ()),
                                     return_exceptions=True)
        if self._helper_yield is not None:
            self._helper_yield.cancel()
            self._helper_yield = None
        if self._writer is not None:
            await self._writer.close()
        reader, self._reader = self._reader, None  # taken first: close() may run twice at once
        if reader is not None:
            await reader.close()
        with self._point_lock:
            point, self._point = self._point, None
        if point is not None:
            point.close()

    async def _checkpoint_loop(self) -> None:
        # copy the WAL back into the database off the commit path: an automatic
        # checkpoint would fsync inside whichever commit crossed the threshold
        while True:
            await asyncio.sleep(CHECKPOINT_SECONDS)
            await self._checkpoint()

    async def _settle_loop(self) -> None:
        # behind the writes, a batch at a time: a job's own commits never pay for it
        while True:
            await asyncio.sleep(SEARCH_INDEX_SECONDS)
            with contextlib.suppress(StoreError):  # busy, or gone: the next round tries
                await self.settle()

    async def _search_index_loop(self) -> None:
        marks = (-1, -1)  # none seen yet: the first round waits for a quiet moment
        while True:
            await asyncio.sleep(SEARCH_INDEX_SECONDS)
            with contextlib.suppress(StoreError):  # busy, or gone: the next round tries
                await self.index_search(
                    give_way=(marks, time.monotonic() + SEARCH_GIVE_WAY_SECONDS))
                marks = await self._write_marks()

    @property
    def write_commits(self) -> int:
        """Transactions this store committed for its callers' writes (not its own upkeep:
        settling ended tasks, the search index, pruning)."""
        return self._own_write_commits

    async def _write_marks(self) -> tuple[int, int]:
        """What moves when a write commits: this store's own writes (not its upkeep), and
        SQLite's count of other connections' commits (other processes')."""
        return self._own_write_commits, await self.data_version()

    async def _give_way(self, since: tuple[int, int], until: float) -> tuple[int, int]:
        """If writes committed since the marks ``since``: wait until none has for
        SEARCH_QUIET_SECONDS, or until ``until`` (``time.monotonic()``); the marks now."""
        marks = await self._write_marks()
        while marks != since and time.monotonic() < until:
            await asyncio.sleep(SEARCH_QUIET_SECONDS)
            since, marks = marks, await self._write_marks()
        return marks

    async def settle(self) -> int:
        """Settle the ended fresh tasks and the jobs queued ``QUEUED_SETTLE_SECONDS`` ago or
        more, a batch per transaction; how many (migration 11).

        As ``index_search``, the writer is left alone between batches as long as the
        batch held it.
        """
        settled = 0
        waited = queued_before(QUEUED_SETTLE_SECONDS)
        while await self._scalar(SETTLE_WORK_LEFT, [waited]):
            started = time.perf_counter()
            batch = await self._txn(tx_settle, SETTLE_BATCH, waited)
            settled += batch
            if batch < SETTLE_BATCH:
                break
            await asyncio.sleep(time.perf_counter() - started)
        return settled

    async def index_search(self, give_way: tuple[tuple[int, int], float] | None = None) -> int:
        """Bring the search index up to date, a batch per transaction; how many rows it took.

        Between batches the writer is left alone as long as the batch held it, so
        a catch-up (a migrated history, a long prune's deletions) takes at most half
        of it from the other writes. Each batch's merge steps follow it, a transaction
        each (one step can hold the writer 50-64 ms, see SEARCH_MERGE_PAGES), while the
        batch's time lasts; those it had no time for come at the end, paced the same
        way. With ``give_way`` (the write marks of the last look, and a
        ``time.monotonic()`` deadline: a round of the store's own) each batch first gives
        way to a stream of writes (SEARCH_GIVE_WAY_SECONDS), and the round ends once less
        than a batch is left: beside a steady writer it went on in one tiny batch after
        another, each owing its merge steps (16,264 batches and 48,651 steps in a 467 s
        prune beside 500 writes a second).
        """
        if not self._pruning_tasks and await self._scalar(SEARCH_DROPPED_EXISTS):
            # set aside by a process that stopped before it had deleted it
            while await self._txn(tx_drop_old_search):
                await asyncio.sleep(SEARCH_BATCH_SECONDS)
        taken = 0
        owed = 0
        while await self._scalar(SEARCH_WORK_LEFT):
            if give_way is not None and taken and not await self._scalar(
                    SEARCH_BATCH_LEFT, [SEARCH_INDEX_BATCH,
                                        MAX_ROWID if self._pruning_tasks else SEARCH_INDEX_BATCH]):
                break  # a trickle of writes: the next round takes it in one batch
            if give_way is not None:
                marks, until = give_way
                give_way = await self._give_way(marks, until), until
            started = time.perf_counter()
            batch = await self._txn(tx_index_search, SEARCH_INDEX_BATCH, SEARCH_BATCH_SECONDS,
                                    not self._pruning_tasks)
            if not batch:
                break
            taken += batch
            owed += SEARCH_MERGE_STEPS
            merging = time.perf_counter()
            while owed > 0:
                await self._txn(tx_merge_search)
                owed -= 1
                if time.perf_counter() - merging >= SEARCH_BATCH_SECONDS:
                    break
            await asyncio.sleep(time.perf_counter() - started)
        while owed > 0:
            started = time.perf_counter()
            await self._txn(tx_merge_search)
            owed -= 1
            await asyncio.sleep(time.perf_counter() - started)
        return taken

    async def _search_source(self, search: str | None, reads: str,
                             walk: tuple[bool, str | None, int] | None = None,
                             most: int | None = None,
                             near: bool = False) -> tuple[str, str, list[Any]]:
        """The table a list with ``search`` reads: (WITH clause, table, its arguments).

        A needle the index finds in few tasks reads just those (and any not indexed
        yet): ``search_hits``, holding the columns named in ``reads`` (the query's
        filters and sort) of each. Otherwise (a common one, an index far behind) the tasks
        table, walked in the sort's order; unless ``walk`` (descending, the cursor's id,
        the page's size: a page in created order) would pass so many tasks before its
        page is full that reading the hits costs less (``_hits_the_walk_costs``).
        A count, which no page fills early, reads up to ``most`` hits (a page:
        SEARCH_HITS_MAX). With ``near`` (a descending walk), where the walk is that
        long, ``("", "near_hits", [rowid])``: the page may come from the hits nearest
        the walk's start, that rowid (``_page_from_near_hits``).
        """
        most = SEARCH_HITS_MAX if most is None else most
        match = search_match(search.lower()) if search else None
        if match is not None:
            hits, backlog = (await self._rows(SEARCH_PROBE, (match, most + 1)))[0]
            if hits > most and walk is not None and backlog <= SEARCH_BACKLOG_MAX:
                # (a rare word, most searches, costs no guess of the walk)
                most, start = await self._hits_the_walk_costs(match, *walk)
                if most > SEARCH_HITS_MAX and near and walk[0]:
                    # a first page from the top as this read sees it: tasks may have gone
                    # in (and into the index) since the guess read the newest rowid
                    return "", "near_hits", [start if walk[1] is not None else MAX_ROWID]
                if most > SEARCH_HITS_MAX:
                    hits, backlog = (await self._rows(SEARCH_PROBE, (match, most + 1)))[0]
            if hits <= most and backlog <= SEARCH_BACKLOG_MAX:
                with_sql, with_args = search_hits(match, search.lower(), hit_columns(reads))
                return with_sql, "search_hits", with_args
        return "", "tasks", []

    async def _hits_the_walk_costs(self, match: str, descending: bool, after_id: str | None,
                                   limit: int) -> tuple[int, int]:
        """How many of ``match``'s hits cost as much to read as the walk to a page of them,
        and the rowid the walk starts at.

        The walk in created order (the id, which rowids follow) passes about as many
        tasks as lie between its start and the page's last hit; a hit read costs as
        much as passing SEARCH_WALK_PER_HIT of them. At most SEARCH_HITS_FAR_MAX.
        """
        start, top = (await self._rows(SEARCH_WALK_START, (after_id or "", -1)))[0]
        if start == -1:  # no cursor (or its task is gone): from either end
            start = top + 1 if descending else 0
        nth = await self._rows(SEARCH_NTH_HIT[descending], (match, start, limit))
        end = nth[0][0] if nth else (0 if descending else top)
        passed = start - end if descending else end - start
        return min(passed // SEARCH_WALK_PER_HIT, SEARCH_HITS_FAR_MAX), start

    async def _page_from_near_hits(self, search: str, hits_sql: str, hits_args: list[Any],
                                   start: int, limit: int) -> list[sqlite3.Row] | None:
        """A newest-first page of a search from the index's hits nearest rowid ``start``.

        Tasks inserted in id order are in created order by rowid, so hits read from
        ``start`` down give the page (with every task inserted out of order, and those
        not indexed yet) once it holds ``limit`` + 1 rows all above the id the next
        unread hit could have (near_page_query). The hits read grow fourfold until
        it does, up to NEAR_HITS_MAX; None then (or with many tasks out of order):
        the caller reads as before. Over a million tasks, 111,000 old hits cost ~150 ms
        read whole and a few ms this way.
        """
        if (await self._scalar(DISORDER_COUNT, (NEAR_DISORDER_MAX + 1,))) > NEAR_DISORDER_MAX:
            return None
        needle = search.lower()
        match = search_match(needle)
        assert match is not None  # a search with no index query reads no hits
        count = NEAR_HITS_FIRST * (limit + 1)
        while True:
            count = min(count, NEAR_HITS_MAX)
            with_sql, with_args = search_hits(match, needle, hit_columns(hits_sql),
                                              near=(start, count))
            read = await self._rows(near_page_query(with_sql, hits_sql),
                                    [*with_args, match, start, count - 1, *hits_args])
            rows = [row for row in read if row["id"] is not None]
            cut, bound = read[0]["near_cut"], read[0]["near_bound"]
            if not cut or bound is None:
                return rows  # every hit below start was read
            if len(rows) > limit and rows[limit]["id"] > bound:
                return rows
            if count == NEAR_HITS_MAX:
                return None
            count *= 4

    def _copy_wal(self, conn: sqlite3.Connection) -> int:
        """On a thread: one passive WAL copy; then a loop waiting for it goes on."""
        try:
            with self._copy_or_upkeep:
                return checkpoint(conn)
        finally:
            self._helper_done.set()

    async def _checkpoint(self) -> None:
        """Copy the WAL back into the database now, beside any write (a passive checkpoint).

        On a connection of its own, so writes go on while it copies (WAL allows that),
        and the copying runs in C on another core. A failure (busy readers) is left
        for the next one to catch up.
        """
        async with self._checkpoint_lock:
            if self._checkpointer is None:  # closing (or read-only): nothing to copy
                return
            try:
                # each time: a copy from a write-ahead log deleted in use writes its pages
                # where the index, which another process's new log now fills, says
                self._check_identity()
            except StoreUnavailable:
                return
            if self._checkpoint_conn is None:
                # opened once the file is known to be still ours, and never creating one:
                # a plain connect made an empty database at the path of one deleted under
                # a dashboard, which every process then took for a replacement
                self._checkpoint_conn = sqlite3.connect(
                    dbfile.existing_file_uri(self.path), uri=True, isolation_level=None,
                    check_same_thread=False)
            frames = 0
            for _ in range(PASSIVE_CHECKPOINTS):
                if self._checkpointer is None:  # closing: close() waits for one copy only
                    break
                running = self._checkpoint_running = asyncio.ensure_future(
                    asyncio.to_thread(self._copy_wal, self._checkpoint_conn))
                self._watch_helpers(asyncio.get_running_loop())
                frames = 0
                with contextlib.suppress(Exception):
                    # shielded: a cancelled caller must not leave the thread using a
                    # connection that close() then closes (close waits for it)
                    frames = await asyncio.shield(running)
                if frames < TAIL_CHECKPOINT_FRAMES:
                    break
            if frames >= TAIL_CHECKPOINT_FRAMES and self._writer is not None \
                    and self._checkpointer is not None:
                # what was written while it copied, copied by the writer between two of
                # its transactions: its next one then finds the WAL all copied and starts
                # it over. Under the lock: a copy beside it would hold SQLite's copying
                # lock, and a passive copy that finds it taken gives up, copying nothing
                with contextlib.suppress(Exception):  # closing: the close checkpoints
                    self._check_identity()
                    await self._txn(tail_checkpoint)

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)`` in the writer's thread (one hop, no transaction)."""
        if self._writer is None:
            raise StoreError(f"the store of {self.path} was opened read-only")
        with self._on_a_thread():
            return await self._writer.call(fn, *args)

    @contextlib.contextmanager
    def _on_a_thread(self) -> Iterator[None]:
        """While the loop awaits a call on one of the store's threads (see HELPER_YIELD_EVERY)."""
        # locked: a second thread's loop may read through the same store (see _point)
        with self._drain_lock:
            self._thread_calls += 1
        self._watch_helpers(asyncio.get_running_loop())
        try:
            yield
        finally:
            with self._drain_lock:
                self._thread_calls -= 1

    async def off_loop(self, fn: Callable[[], T]) -> T:
        """``fn()`` on a thread, the loop yielding the GIL to it as to the store's own
        threads (decoding or encoding a large page would otherwise hold the loop)."""
        with self._on_a_thread():
            return await asyncio.to_thread(fn)

    def _read_failure(self, exc: sqlite3.OperationalError) -> BaseException:
        """What a read's SQLite error means: the store's error for it, or the file gone."""
        store_error = translate(exc)
        if store_error is exc:
            # a read of a file moved or deleted under us fails as "disk I/O error" (its
            # WAL companions stayed behind): said as what happened, as a write is
            self._unavailable = dbfile.check_identity(self._file, self._identity)
            if self._unavailable is not None:
                return StoreUnavailable(self._unavailable)
            return self._damaged(exc) or exc  # its write-ahead log deleted, say
        return store_error

    async def _rows(self, sql: str, args: Sequence[Any] = ()) -> Sequence[sqlite3.Row]:
        """The rows of one query on the read connection, beside any write."""
        if self._unavailable is not None:
            raise StoreUnavailable(self._unavailable)
        reader = self._reader
        if reader is None:  # while opening, and after close
            return await self._run(fetchall, sql, args)
        try:
            with self._on_a_thread():
                # fetchall's own list (aiosqlite types it as an Iterable)
                return await reader.execute_fetchall(sql, args)  # type: ignore[return-value]
        except sqlite3.OperationalError as exc:
            raise self._read_failure(exc) from exc
        except sqlite3.DatabaseError as exc:
            unavailable = self._damaged(exc)
            if unavailable is None:
                raise
            raise unavailable from exc

    @property
    def unusable(self) -> str | None:
        """Why this store refuses everything from now on (its file went, or is damaged)."""
        return self._unavailable

    def check_file(self) -> None:
        """``StoreUnavailable`` if the path no longer names the file this store opened
        (moved away or replaced): its open connections would go on reading the old one."""
        self._check_identity()

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
        return await self._queue_write(fn, args)

    async def _queue_write(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        """Queue a write for the next transaction and await its outcome (no checks)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        (self._upkeep if fn in UPKEEP_WRITES else self._ops).put((fn, args, future))
        short = fn in SHORT_WRITES
        with self._drain_lock:
            if not self._draining:
                self._draining = True
                if short:
                    # at the end of this turn of the loop, with whatever else this turn
                    # queued: a lone write then commits right here (see _flush)
                    self._flush_here = True
                    loop.call_soon(self._flush, loop)
                else:
                    self._to_writer_thread(loop)
            elif not short:
                self._flush_here = False
        return await future

    def queued_writes(self) -> int:
        """How many writes wait for the database thread now."""
        return self._ops.qsize() + self._upkeep.qsize()

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        # On the event loop: the writes one turn queued, when they are all short and
        # the connection is idle, commit in this thread. Two thread switches per
        # transaction (to the writer and back) cost a one-at-a-time submitter more
        # than the transaction, and a loaded machine delays each wake-up. However
        # many there are: on the writer thread they would not run beside the loop's
        # Python anyway (the GIL; a burst of 64 submits took as long in interleaved
        # runs), and a loop that is always busy starves that thread of the GIL (see
        # HELPER_YIELD_EVERY).
        with self._drain_lock:
            here, self._flush_here = self._flush_here, False
        assert self._writer is not None  # _txn refuses writes to a read-only store
        if here and self._may_commit_here() and self._writer.run_here(
                functools.partial(self._commit_queued, loop, self._busy_ms)):
            return
        self._locked_since = None
        self._to_writer_thread(loop)

    def _try_here_later(self, loop: asyncio.AbstractEventLoop) -> None:
        """Lone writes found another process's write lock: try them again on the loop soon.

        The pause doubles as ``begin_immediate``'s does (an idle loop's timer rounds
        it up to a millisecond); once the writes have waited
        HERE_LOCK_WAIT_SECONDS (or a write queued meanwhile is not short, see _txn)
        they go to the writer thread, which waits for the lock up to the busy timeout.
        """
        now = loop.time()
        if self._locked_since is None:
            self._locked_since, self._lock_pause = now, LOCK_RETRY_SECONDS
        elif now - self._locked_since >= HERE_LOCK_WAIT_SECONDS:
            self._locked_since = None
            self._to_writer_thread(loop)
            return
        else:
            self._lock_pause = min(self._lock_pause * 2, LOCK_RETRY_MAX_SECONDS)
        with self._drain_lock:
            self._flush_here = True
        loop.call_later(self._lock_pause, self._flush, loop)

    def _may_commit_here(self) -> bool:
        """Whether this turn's writes may commit on the event loop (else on the writer thread).

        Not while a WAL copy runs beside the writes: its closing fdatasync of the
        database holds up writes to the WAL (ext4 here: in a million-task prune a
        commit's pwrite returned only when the copy's 200-400 ms fdatasync did, the
        whole loop frozen meanwhile). On the writer thread such a write waits alone.
        """
        copying = self._checkpoint_running
        return copying is None or copying.done()

    def _thread_wait(self) -> float:
        """How long the writer thread waits for another process's write lock (never 0:
        a wait of 0 means a caller that must not wait, see stream_transaction)."""
        return max(self._busy_ms, 1) / 1000

    def _to_writer_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the loop: the queued writes go to the writer thread; the loop makes room for it."""
        self._queue_drain(loop)
        self._watch_helpers(loop)

    def _watch_helpers(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the loop: wait for the store's threads now and then while they have work."""
        if self._helper_yield is None:
            self._loop_blocks = loop_thread_blocks()
            self._helper_yield = loop.call_later(HELPER_YIELD_EVERY, self._yield_to_helpers,
                                                 loop)

    def _helpers_working(self) -> bool:
        copying = self._checkpoint_running
        with self._drain_lock:
            # a drain queued or running (not a flush pending on the loop), or a call awaited
            threads = (self._draining and not self._flush_here) or self._thread_calls > 0
        return threads or (copying is not None and not copying.done())

    def _yield_to_helpers(self, loop: asyncio.AbstractEventLoop) -> None:
        """Block the loop until a store thread ends a piece of work (HELPER_YIELD_SECONDS at most).

        Blocking is the point: the GIL is then free for the thread to take and keep
        (see HELPER_YIELD_EVERY). Only when the loop has not blocked since the last
        check: a loop that did gave the GIL away then.
        """
        self._helper_yield = None
        if self._closed or not self._helpers_working():
            return
        blocks = loop_thread_blocks()
        if blocks is None or blocks == self._loop_blocks:
            self._helper_done.clear()
            self._helper_done.wait(HELPER_YIELD_SECONDS)
        self._watch_helpers(loop)  # counting the loop's blocks from here

    def _queue_drain(self, loop: asyncio.AbstractEventLoop) -> None:
        # straight onto the writer thread's queue, not through a coroutine that
        # would start only on the loop's next turn
        assert self._writer is not None  # _txn refuses writes to a read-only store
        self._writer.call_soon(functools.partial(self._drain, loop))

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the database thread: commit one transaction of queued writes, return results."""
        self._commit_queued(loop, None)

    def _commit_queued(self, loop: asyncio.AbstractEventLoop, busy_ms: int | None) -> None:
        """Commit one transaction of queued writes and hand back their outcomes.

        On the database thread (``busy_ms`` None), or on the event loop through
        ``DatabaseThread.run_here`` (``busy_ms`` the busy timeout the thread uses):
        there the transaction starts only if no other process holds the write lock,
        else the writes are tried again on the loop a little later (_try_here_later).
        """
        here = busy_ms is not None
        result: tuple[list[tuple[asyncio.Future[Any], bool, Any]], bool] | None
        upkeep = False
        try:
            self._check_identity()
            assert self._writer is not None
            conn = self._writer.connection
            # a held write lock is waited for by begin_immediate's own tries on the
            # thread (on the loop by tries a turn later; see wait_for_locks_by_own_tries)
            wait = 0.0 if here else self._thread_wait()
            changes = conn.total_changes
            # the file may go while the transaction runs (its writes would vanish with
            # it): checked again just before COMMIT, which rolls back if it went
            # a batch of upkeep alone, when one waits and the last transaction was not
            # one (or nothing else waits); on the loop, only the short writes
            upkeep = (not here and not self._upkeep.empty()
                      and (not self._upkeep_last or self._ops.empty())
                      and self._upkeep_turn())
            self._upkeep_last = upkeep
            if upkeep:
                try:
                    result = self._run_upkeep(conn, self._upkeep.get_nowait())
                finally:
                    self._copy_or_upkeep.release()
            else:
                result = stream_transaction(conn, self._ops, MAX_OPS_PER_COMMIT,
                                            wait=wait, before_commit=self._check_identity)
        except BaseException as exc:  # a bug here must not leave callers waiting forever
            failed: list[tuple[asyncio.Future[Any], bool, Any]] = []
            for ops in (self._ops, self._upkeep):
                while True:
                    try:
                        failed.append((ops.get_nowait()[2], False, exc))
                    except queue.Empty:
                        break
            result = failed, False
        if result is None:  # on the loop, and another process holds the write lock
            assert here  # the thread always waits (_thread_wait is never 0)
            self._try_here_later(loop)
            return
        if here:
            self._locked_since = None
        outcomes, committed = result
        if committed:
            self.commits += 1
            if not upkeep:
                self._own_write_commits += 1
            # the transaction's own connection: the writer's may be closed by now (a
            # close() that began meanwhile), and the outcomes must still be handed back
            if self.after_commit and conn.total_changes != changes:
                for callback in self.after_commit:
                    if here:
                        loop.call_soon(callback)
                    else:
                        with contextlib.suppress(RuntimeError):  # the loop is gone
                            loop.call_soon_threadsafe(callback)
        if outcomes:
            outcomes = self._translate_damage(outcomes)
            if here:
                settle_futures(outcomes)
            else:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                    loop.call_soon_threadsafe(settle_futures, outcomes)
        if not here:
            self._helper_done.set()
        with self._drain_lock:
            if self._ops.empty() and self._upkeep.empty():
                self._draining = False
                return
        # more writes came in: go again, after the reads that queued up meanwhile
        if here:
            self._to_writer_thread(loop)
        else:
            self._queue_drain(loop)

    def _upkeep_turn(self) -> bool:
        """On the database thread: take the turn from WAL copies (True), or give it to
        short writes that came in while a copy ran (False: the upkeep waits)."""
        while not self._copy_or_upkeep.acquire(timeout=UPKEEP_COPY_POLL):
            if not self._ops.empty():
                return False
        return True

    def _run_upkeep(self, conn: sqlite3.Connection, op: Op,
                    ) -> tuple[list[tuple[asyncio.Future[Any], bool, Any]], bool]:
        """On the database thread: one upkeep write, alone in its transaction (or in none)."""
        fn, args, future = op
        if fn in UPKEEP_OUTSIDE_TRANSACTION:
            try:
                return [(future, True, fn(conn, *args))], False
            except Exception as exc:
                return [(future, False, translate(exc))], False
        alone: queue.SimpleQueue[Op] = queue.SimpleQueue()
        alone.put(op)
        result = stream_transaction(conn, alone, 1, wait=self._thread_wait(),
                                    before_commit=self._check_identity)
        assert result is not None  # it waits for the lock
        return result

    def _check_identity(self) -> None:
        """Before a write transaction and its COMMIT: is the path still our file?

        Never write into a file that was deleted (it would vanish with the last
        connection) or replaced (the writes would not be where others look).
        """
        if self._unavailable is None:
            self._unavailable = dbfile.check_identity(self._file, self._identity) \
                or dbfile.check_companions(self._file, self._companions)
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
        return await self._txn(tx_create_task, task, encoded or {})

    async def create_tasks(self, tasks: Sequence[Task]) -> list[Task]:
        """Insert many new tasks (no key checks) in one transaction."""
        return await self._txn(tx_create_many, list(tasks))

    async def insert_task_rows(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert task rows as given, with no events (history: imports, fixtures); the count.

        Each row maps column names to values; a missing column takes the ``Task``
        default; an unknown column, or no id, kind, mode or status, raises
        ``InvalidRequest`` before anything is written.
        JSON columns take Python values (or ``JSONText``), encoded as the store
        always encodes them. All rows go in one transaction.
        """
        values = [task_row_values(row) for row in rows]
        return await self._txn(tx_insert_rows, values)

    async def get_task(self, task_id: str) -> Task | None:
        """The task with this id, or None."""
        started = turn_clock()
        rows = self._point_rows(GET_TASK, (task_id,))
        if rows is None:
            rows = await self._rows(GET_TASK, (task_id,))
        elif self._read_share_spent(started):
            # let the loop turn: a caller that reads in a loop (a notebook polling a job
            # run by this very loop) must not starve the job slots
            yielded = turn_clock()
            await asyncio.sleep(0)
            self._others_took = turn_clock() - yielded
        return Task.from_row(rows[0]) if rows else None

    def _read_share_spent(self, started: float) -> bool:
        """A read answered without yielding; True once this turn's reads had their share.

        A share of the loop's time, as a scheduler gives: a yield after every read
        costs a whole turn of the loop each, which with busy job slots is most of the
        read's time; a yield once the reads took READ_SHARE_RATIO times as long as the
        rest of the loop did gives them that much more of it (see
        POINT_READ_TURN_SECONDS).
        """
        if self._turn_started is None:  # the first this turn: the share starts here
            asyncio.get_running_loop().call_soon(self._new_turn)
            self._turn_started = started
        share = min(max(self._others_took * READ_SHARE_RATIO, POINT_READ_TURN_SECONDS),
                    POINT_READ_TURN_MAX_SECONDS)
        return turn_clock() - self._turn_started >= share

    def _new_turn(self) -> None:
        self._turn_started = None

    def _point_rows(self, sql: str, args: Sequence[Any]) -> list[sqlite3.Row] | None:
        """The rows of one keyed query read here and now; None: ask the reader instead.

        A lookup by key (a primary key, an index's first entry) reads a few cached
        pages in microseconds, less than a hop to the reader's thread and back. Under
        WAL it waits for no writer: None only when another process holds the file
        exclusively (the reader then waits its busy timeout) or the connection is in
        use by another thread or closed.
        """
        if self._unavailable is not None:
            raise StoreUnavailable(self._unavailable)
        if not self._point_lock.acquire(blocking=False):
            return None
        try:
            if self._point is None:
                return None
            return self._point.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            failure = self._read_failure(exc)
            if isinstance(failure, StoreBusy):
                return None
            # before: a task looked up just as its file was deleted raised sqlite's
            # "disk I/O error" (a CLI's `submit --wait` printed it as a traceback)
            raise failure from exc
        except sqlite3.DatabaseError as exc:
            unavailable = self._damaged(exc)
            if unavailable is None:
                raise
            raise unavailable from exc
        finally:
            self._point_lock.release()

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
        filtered = task_filters(statuses, name, kind, owners, queue, task_key, key_prefix,
                                 idempotency_key, parent_id, worker_id, search, schedule_id)
        if filtered is None:
            return []
        where, args = filtered
        if cursor is not None:
            where.append("id > ?" if oldest_first else "id < ?")
            args.append(cursor)
        with_sql, source, with_args = await self._search_source(search, " ".join(where))
        sql, args = id_order_query(where, args, oldest_first, limit, source)
        rows = await self._rows(with_sql + sql, [*with_args, *args])
        if source == "search_hits":
            rows = await self._whole_rows(rows)
        return [Task.from_row(row) for row in rows]

    async def _whole_rows(self, hits: Sequence[sqlite3.Row]) -> list[sqlite3.Row]:
        """The tasks rows of ``search_hits`` rows, in their order; a task deleted since goes."""
        found: dict[int, sqlite3.Row] = {}
        for start in range(0, len(hits), WHOLE_ROWS_PER_READ):
            rowids = [hit["task_rowid"] for hit in hits[start:start + WHOLE_ROWS_PER_READ]]
            found.update((row[0], row) for row in await self._rows(
                whole_rows_query(len(rowids)), rowids))
        return [found[hit["task_rowid"]] for hit in hits if hit["task_rowid"] in found]

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
        after = decode_list_cursor(cursor, sort, order) if cursor else None
        now = after[2] if after else time.time()
        filtered = task_filters(statuses, name, kind, owners, queue, task_key, key_prefix,
                                 idempotency_key, parent_id, None, search, schedule_id)
        if filtered is None:
            return TaskPage([], None)
        where, args = filtered
        # the page over a search's few hits (sorted whole), if the search is answered so
        hits_sql, hits_args = page_query(sort, order == "desc", where, args, after, now, limit,
                                         "search_hits") if search else ("", [])
        walk = (order == "desc", after[1] if after else None, limit) \
            if sort == "created" else None
        with_sql, source, with_args = await self._search_source(search, hits_sql, walk,
                                                                near=True)
        rows: Sequence[sqlite3.Row] | None = None
        if source == "near_hits":
            assert search is not None
            rows = await self._page_from_near_hits(search, hits_sql, hits_args, with_args[0],
                                                   limit)
            if rows is None:
                with_sql, source, with_args = await self._search_source(search, hits_sql, walk)
            else:
                source = "search_hits"
        if rows is None and not search and sort != "created" and owners is not None:
            rows = await self._owner_rows(sort, order == "desc", where, args, after, now,
                                          limit)
        if rows is None:
            if source == "search_hits":
                rows = await self._rows(with_sql + hits_sql, [*with_args, *hits_args])
            elif order == "desc" and sort in GROUP_WALKED_SORTS:
                rows = await self._descending_rows(sort, where, args, after, now, limit)
            else:
                sql, args = page_query(sort, order == "desc", where, args, after, now, limit)
                rows = await self._rows(sql, args)
        # the sort value and id of the page's last row, for the cursor of the next page
        more = len(rows) > limit
        # each task once: a descending page read a tie group at a time (_descending_rows)
        # finds a task that changed groups between two reads in both (queued, then running)
        page: dict[str, sqlite3.Row] = {}
        for row in rows[:limit]:
            page.setdefault(row["id"], row)
        rows = list(page.values())
        last_value = rows[-1]["sort_value"] if more and sort != "created" else None
        last_id = rows[-1]["id"] if rows else None
        if source == "search_hits":
            rows = await self._whole_rows(rows)
        chars = stored_json_chars(rows)
        if chars > LARGE_PAGE_CHARS:  # off the loop, which the rest of the process shares
            tasks = await self.off_loop(lambda: [Task.from_row(row) for row in rows])
        else:
            tasks = [Task.from_row(row) for row in rows]
        if not more:
            return TaskPage(tasks, None, chars)
        if sort == "created":
            return TaskPage(tasks, last_id, chars)
        return TaskPage(tasks, encode_list_cursor(sort, order, last_value, last_id, now), chars)

    async def _owner_rows(self, sort: str, descending: bool, where: list[str], args: list[Any],
                          after: tuple[Any, str, float] | None, now: float, limit: int
                          ) -> Sequence[sqlite3.Row] | None:
        """``limit`` + 1 rows of an owner's page in a column's order, when found without
        reading all the owner's tasks; None: read the page as any other.

        Sorted by owner, one owner's tasks are one tie, newest first in either order:
        the owner's sort key found, the tie is read along its index. Else walks along
        the sort's index (``_walked_page``) where page_query reads in index order or
        the ties are few; another descending order is read a tie group at a time as
        for everyone, each next key looked for by a walk first (page_query's walk
        would sort a tie of most of the history whole: a status, a priority).
        """
        split = owner_walked(where, args)
        if split is None:
            return None
        if sort == "owner":
            owner_values = split[2][1]
            if len(set(owner_values)) != 1:
                return None
            key = await self._scalar(OWNER_SORT_KEY, owner_values[:1])
            if after is not None and after[0] != key:
                return None  # not this owner's cursor: the page as any other
            return await self._rows(*tie_group_query(
                sort, where, args, key, after[1] if after else None, limit + 1))
        if descending and sort in GROUP_WALKED_SORTS and sort not in FEW_TIES_SORTS:
            return await self._descending_rows(sort, where, args, after, now, limit,
                                               walk_owner=True)
        return await self._walked_page(sort, descending, where, args, after, now, limit)

    async def _walked_page(self, sort: str, descending: bool, where: list[str],
                           args: list[Any], after: tuple[Any, str, float] | None, now: float,
                           limit: int) -> Sequence[sqlite3.Row] | None:
        """``limit`` + 1 rows of an owner's page found by walks along the sort's index (a
        short one, then a longer one if that promises the page: ``longer_walk``); None
        if they leave it short."""
        walk: int | None = None  # the first
        while True:
            rows = await self._rows(*page_query(sort, descending, where, args, after, now,
                                                limit, walk_owner=True, walk_rows=walk))
            if walk_filled(rows, limit):
                return rows[:limit + 1]
            walk = longer_walk(rows, limit, walk)
            if not walk:
                return None

    async def _descending_rows(self, sort: str, where: list[str], args: list[Any],
                               after: tuple[Any, str, float] | None, now: float,
                               limit: int, walk_owner: bool = False) -> list[sqlite3.Row]:
        """``limit`` + 1 rows of a descending page, a tie group at a time (tie_group_query).

        After TIE_GROUPS_WALKED groups the page is still short only where ties are
        small (a key nearly unique, such as a start time): SQLite's own walk, which
        sorts each tie as it goes, ends the page. With ``walk_owner`` each next key is
        first looked for by a walk along the sort's index (``next_key_query``).
        """
        want = limit + 1
        rows: list[sqlite3.Row] = []
        key = None
        if after is not None:  # first the rest of the cursor's own tie
            key = after[0]
            rows += await self._rows(*tie_group_query(sort, where, args, key, after[1], want))
        for _ in range(TIE_GROUPS_WALKED):
            if len(rows) >= want:
                return rows[:want]
            found: Sequence[sqlite3.Row] = []
            if walk_owner:
                found = await self._rows(*next_key_query(sort, where, args, key,
                                                         walk_owner=True))
                # the largest of the parts' keys, if the walk found the settled tasks'
                found = found[:1] if any(row["walked"] for row in found) else []
            if not found:  # no walk, or none within it: the key may lie further on
                found = await self._rows(*next_key_query(sort, where, args, key))
            if not found:
                return rows
            key = found[0]["sort_value"]
            rows += await self._rows(*tie_group_query(sort, where, args, key, None,
                                                      want - len(rows)))
        if len(rows) >= want:
            return rows[:want]
        last = rows[-1] if rows else None
        cursor = (last["sort_value"], last["id"], now) if last is not None else after
        rest = want - len(rows) - 1
        if walk_owner:
            walked = await self._walked_page(sort, True, where, args, cursor, now, rest)
            if walked is not None:
                return rows + list(walked)
        sql, sql_args = page_query(sort, True, where, args, cursor, now, rest)
        return rows + await self._rows(sql, sql_args)

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
        # a count of each part (SETTLED, FRESH): only the settled tasks are in tasks_by_owner
        mine = f"owner IN ({','.join('?' * len(owners))})"
        return await self._scalar(
            f"SELECT (SELECT count(*) FROM tasks WHERE {SETTLED} AND {mine}) "
            f"+ (SELECT count(*) FROM tasks WHERE {FRESH} AND {mine})", [*owners, *owners])

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
        return await self._txn(tx_transition, task_id, changes, event, when_status, when_worker)

    async def hand_back(self, task_id: str, worker_id: str, changes: dict[str, Any]) -> Task | None:
        """Put a job running on ``worker_id`` back in its queue, or end it cancelled when a
        cancel was asked meanwhile; None if it is no longer that worker's running job."""
        return await self._txn(tx_hand_back, task_id, worker_id, changes)

    async def finish(
        self,
        task_id: str,
        changes: dict[str, Any],
        event: EventType | str,
        *,
        worker_id: str,
        claim_queue: str | None = None,
        lease_seconds: float = 30.0,
        runnable: str | None = None,
    ) -> Finished:
        """Write the end of a running task held by ``worker_id``, and its event.

        With ``claim_queue`` the same transaction also claims this worker's next
        due job of that queue: a worker that keeps busy pays one commit per job
        for "finished" and "started" together, and never idles between the two.
        """
        # the values encoded before, and the next job decoded after, the transaction
        # (the decoder tolerates any stored value: a claimed job is not left running unseen)
        outcome = await self._txn(tx_finish, task_id, finish_update(changes), event, worker_id,
                                  claim_queue, lease_seconds, runnable)
        next_row = outcome.next_row
        return Finished(outcome.written, outcome.callback_url,
                        None if next_row is None else Task.from_row(next_row))

    async def save_updates(
        self,
        progress: Sequence[tuple[str, dict[str, Any]]],
        logs: Sequence[tuple[str, list[tuple[float, str, str]]]] = (),
        tails: Sequence[LogTailWrite] = (),
    ) -> list[list[int]]:
        """Write the latest progress, new log chunks and rolling log tails of several tasks
        in one transaction; returns the seqs of each tail's new rows."""
        return await self._txn(tx_updates, list(progress), list(logs), list(tails))

    async def request_cancel(self, task_id: str) -> tuple[Task, bool]:
        """Cancel a queued task at once, or flag a running one for its owner to stop;
        with whether this call ended it (then nothing else will post its callback)."""
        return await self._txn(tx_request_cancel, task_id)

    async def ask_confirmation(self, task_id: str, confirmation: dict[str, Any]) -> Task | None:
        """Record a pending question for a running task."""
        return await self.transition(
            task_id, {"confirmation": confirmation}, EventType.CONFIRMATION,
            when_status=(TaskStatus.RUNNING.value,),
        )

    async def answer_confirmation(self, task_id: str, answer: str,
                                  asked_at: float | None = None) -> Task:
        """Record the answer to a pending question (checked against its choices, and
        against the time it was asked when ``asked_at`` is given)."""
        return await self._txn(tx_answer, task_id, answer, asked_at)

    async def withdraw_confirmation(self, task_id: str) -> str | None:
        """Take back a running task's unanswered question (its wait gave up); the answer
        instead if one was recorded first."""
        return await self._txn(tx_withdraw_confirmation, task_id)

    async def delete_task(self, task_id: str) -> Task:
        """Forget a finished task: its row, logs, artifacts, events; a ``task.deleted`` remains."""
        task, note = await self._txn(tx_delete_noted, task_id, self.artifacts_dir)
        await asyncio.to_thread(removals.remove_folders, self.artifacts_dir, [task_id], note)
        return task

    # ---------------------------------------------------------------------- logs

    async def append_logs(self, task_id: str, entries: Sequence[tuple[float, str, str]],
                          *, own_line: bool = False) -> int:
        """Append (ts, stream, text) chunks and one ``task.log`` event; returns the last seq.

        ``own_line``: the first chunk starts a line, after a log that ended mid-line."""
        return await self._txn(tx_append_logs, task_id, list(entries), own_line)

    async def write_log_tail(self, tail: LogTailWrite) -> list[int]:
        """Flush a log's rolling tail (see ``LogTailWrite``); returns its new rows' seqs."""
        return await self._txn(tx_write_log_tail, tail)

    async def last_logs(self, task_id: str, limit: int = 200) -> list[LogEntry]:
        """The last ``limit`` log chunks of a task, oldest first."""
        rows = await self._rows(
            "SELECT seq, ts, stream, text FROM task_logs WHERE task_id = ? "
            "ORDER BY seq DESC LIMIT ?", (task_id, limit))
        return [LogEntry(*row) for row in reversed(rows)]

    async def get_logs(self, task_id: str, after: int = 0, limit: int = 1000) -> list[LogEntry]:
        """Log chunks of a task with seq greater than ``after``, oldest first."""
        rows = await self._rows(
            "SELECT seq, ts, stream, text FROM task_logs WHERE task_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?", (task_id, after, limit))
        return [LogEntry(*row) for row in rows]

    # ------------------------------------------------------------- durable queue

    async def claim_jobs(
        self, queue: str, worker_id: str, lease_seconds: float, limit: int = 1,
        runnable: str | None = None,
    ) -> list[Task]:
        """Atomically take up to ``limit`` due jobs of ``queue`` for this worker (of its
        ``runnable`` task names only, a JSON list, when given: see ``tx_claim``)."""
        rows = await self._txn(tx_claim, queue, worker_id, lease_seconds, limit, runnable)
        return [Task.from_row(row) for row in rows]

    async def has_due_job(self, queue: str, runnable: str | None = None) -> bool:
        """Whether ``queue`` holds a job a claim would take now (a read, no write lock)."""
        sql, args = DUE_JOB_SQL[runnable is not None], due_args(queue, time.time(), runnable)
        rows = self._point_rows(sql, args)
        if rows is None:
            rows = await self._rows(sql, args)
        return bool(rows)

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
        await self._txn(tx_register_worker, worker)

    async def heartbeat(self, worker_id: str, lease_seconds: float,
                        task_ids: Iterable[str], tasks_json: str | None = None) -> None:
        """Prove a worker alive and extend the lease of the tasks it runs (``task_ids``);
        ``tasks_json``: the names of the tasks it claims now (None: unchanged)."""
        await self._txn(tx_heartbeat, worker_id, lease_seconds, sorted(task_ids), tasks_json)

    async def stop_worker(self, worker_id: str) -> None:
        """Mark a worker stopped after a clean shutdown."""
        await self._txn(tx_stop_worker, worker_id)

    async def list_workers(self, *, include_stopped: bool = False) -> list[WorkerInfo]:
        """Known workers, newest heartbeat first."""
        sql = "SELECT * FROM workers"
        if not include_stopped:
            sql += " WHERE stopped_at IS NULL"
        rows = await self._rows(sql + " ORDER BY heartbeat_at DESC")
        return [worker_from_row(row) for row in rows]

    async def get_worker(self, worker_id: str) -> WorkerInfo | None:
        """The worker row of ``worker_id``, stopped or not; None if there is none."""
        rows = await self._rows("SELECT * FROM workers WHERE id = ?", (worker_id,))
        return worker_from_row(rows[0]) if rows else None

    async def reap(self, dead_worker_ids: Sequence[str], now: float | None = None,
                   cleared: Mapping[str, Mapping[str, Any]] | None = None,
                   max_lost: int = MAX_LOST_ATTEMPTS, *, spared: Spared = Spared()
                   ) -> list[Task]:
        """Settle tasks of dead workers and tasks whose lease ran out.

        A ``job`` goes back to the queue ("worker lost": the work did not fail,
        so ``max_retries`` is not spent) until ``max_lost`` of its attempts were
        lost, then ends ``interrupted``; a ``background`` or ``sync`` task ends ``interrupted``
        (its process is gone and nothing else can resume it). A task with a
        recorded ``process`` is settled only if ``cleared`` maps its id to that
        very record (the caller saw the group ended, or may no longer wait for it).
        A record holding an ``exit`` (written by the command's shim, ``shim.py``)
        ends the task from it instead: ``succeeded`` for 0, else a failure
        (retried while ``max_retries`` allows); the work is not run again. Tasks
        ``spared`` names are left running.
        """
        return await self._txn(tx_reap, list(dead_worker_ids), now or time.time(),
                               dict(cleared or {}), max_lost, spared)

    async def reap_candidates(self, dead_worker_ids: Sequence[str],
                              now: float | None = None, *,
                              spared: Spared = Spared()) -> list[Task]:
        """The running tasks ``reap`` would settle now: of dead workers, or past their lease."""
        rows = await self._rows(*reap_candidates_query(list(dead_worker_ids),
                                                        now or time.time()))
        return [task for task in map(Task.from_row, rows) if not spared.spares(task)]

    # ----------------------------------------------------------- callbacks owed

    async def owed_callbacks(self, limit: int, after: str = "", now: float | None = None
                             ) -> list[tuple[str, str | None]]:
        """(task id, callback URL) of the ended tasks whose callback nobody is posting
        (unclaimed, or claim run out), by task id after ``after``; the URL is None for a
        task deleted since."""
        rows = await self._rows(OWED_SQL, (after, now or time.time(), limit))
        return [(row[0], row[1]) for row in rows]

    async def claim_callback(self, task_id: str, worker_id: str, seconds: float) -> int | None:
        """Take a task's owed callback for ``seconds``: its tries so far, or None
        when it is not owed (delivered, or never) or another process posts it."""
        now = time.time()
        return await self._txn(tx_claim_callback, task_id, worker_id, now, now + seconds)

    async def callback_tried(self, task_id: str) -> None:
        """Count a try of a task's callback, as it starts."""
        await self._txn(tx_callback_tried, task_id)

    async def callback_settled(self, task_id: str) -> None:
        """A task's callback is no longer owed (delivered, refused or out of tries)."""
        await self._txn(tx_callback_settled, task_id)

    async def unclaim_callback(self, task_id: str) -> None:
        """Give a claimed callback back, still owed, for another process to post."""
        await self._txn(tx_unclaim_callback, task_id)

    async def release_callbacks(self, worker_ids: Sequence[str]) -> None:
        """Give up the claims of stopped or dead processes, for another to post them."""
        if worker_ids:
            await self._txn(tx_release_callbacks, list(worker_ids))

    async def set_process(self, task_id: str, worker_id: str,
                          process: Mapping[str, Any] | None) -> bool:
        """Record (None: clear) where a running task's process group lives; False if not ours."""
        return await self._txn(tx_set_process, task_id, worker_id,
                               None if process is None else dict(process))

    # ----------------------------------------------------------------- artifacts

    async def add_artifact(
        self,
        task_id: str,
        name: str,
        data: bytes | str | os.PathLike[str],
        content_type: str | None = None,
    ) -> Artifact:
        """Keep bytes, text or a copy of a file (a path) as an artifact of a task; replaces a
        same-named one. See ``artifact_content``; ``ValueError`` for a bad name or type."""
        check_artifact(name, content_type)
        content = artifact_content(data)
        folder = self.artifacts_dir / task_id
        # the copy and its hash in a thread (both let go of the GIL): a code job's
        # gigabyte of output held the event loop, and with it the server, for seconds
        content_type = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        async with self._artifact_lock:
            # the artifacts' folder is as private as the database file is
            size, sha256 = await asyncio.to_thread(_keep_file, folder, name, content,
                                                   dbfile.folder_mode(self.path))
            artifact = Artifact(task_id, name, size, sha256, content_type, time.time())
            await self._txn(tx_add_artifact, artifact)
        return artifact

    async def list_artifacts(self, task_id: str) -> list[Artifact]:
        """A task's artifacts by name."""
        return [Artifact(*row) for row in await self._rows(*artifacts_query(task_id, None))]

    async def get_artifact(self, task_id: str, name: str) -> Artifact | None:
        """One artifact's record, or None."""
        if not valid_artifact_name(name):
            return None
        found = await self._rows(*artifacts_query(task_id, name))
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
        if task_id is None and owners is None:
            # the first few read here: a rung feed's read then costs no hop to the reader
            # thread, whose Python would compete for the GIL with the claim it woke
            rows = self._point_rows(*events_query(after_id, min(limit, EVENTS_HERE), None,
                                                  None))
            if rows is not None and len(rows) < min(limit, EVENTS_HERE):
                return [Event.from_row(row) for row in rows]
        rows = await self._rows(*events_query(after_id, limit, task_id,
                                               None if owners is None else list(owners)))
        return [Event.from_row(row) for row in rows]

    async def last_event_id(self) -> int:
        """The id of the newest event (0 when none)."""
        return await self._scalar("SELECT ifnull(max(id), 0) FROM events")

    async def first_event_id(self) -> int:
        """The id of the oldest event kept (0 when none): the ones before were pruned."""
        return await self._scalar("SELECT ifnull(min(id), 0) FROM events")

    async def data_version(self) -> int:
        """SQLite's counter that moves when another connection commits."""
        if self._writer is None:  # read-only: its one connection
            return await self._scalar("PRAGMA data_version")
        return await self._run(scalar, "PRAGMA data_version", ())

    # ----------------------------------------------------------------- schedules

    async def create_schedule(self, schedule: Schedule) -> Schedule:
        """Insert a schedule with its ``schedule.changed`` event."""
        return await self._txn(tx_create_schedule, schedule)

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        """The schedule with this id (its last task's status joined in), or None."""
        rows = await self._rows(SCHEDULE_SELECT + " WHERE s.id = ?", (schedule_id,))
        return schedule_from_row(rows[0]) if rows else None

    async def require_schedule(self, schedule_id: str) -> Schedule:
        """The schedule with this id, or ``ScheduleNotFound``."""
        schedule = await self.get_schedule(schedule_id)
        if schedule is None:
            raise ScheduleNotFound(f"no schedule with id {schedule_id}")
        return schedule

    async def list_schedules(self, owners: Iterable[str] | None = None) -> list[Schedule]:
        """Schedules newest first (of these owners; None: everyone's)."""
        sql, args = SCHEDULE_SELECT, []
        if owners is not None:
            args = list(owners)
            sql += f" WHERE s.owner IN ({','.join('?' * len(args))})"
        return [schedule_from_row(r) for r in await self._rows(sql + " ORDER BY s.id DESC", args)]

    async def update_schedule(self, schedule_id: str, changes: Mapping[str, Any]) -> Schedule:
        """Apply column ``changes`` (``updated_at`` set here) and append the event."""
        return await self._txn(tx_update_schedule, schedule_id, dict(changes), None)

    async def delete_schedule(self, schedule_id: str) -> Schedule:
        """Delete a schedule (its tasks keep their ``schedule_id``); event with no schedule."""
        return await self._txn(tx_delete_schedule, schedule_id)

    async def due_schedules(self, now: float, limit: int = 1000) -> list[Schedule]:
        """Unpaused schedules whose next firing is at or before ``now``, earliest first."""
        rows = await self._rows(SCHEDULE_SELECT + " WHERE s.next_run_at <= ? "
                                "ORDER BY s.next_run_at LIMIT ?", (now, limit))
        return [schedule_from_row(r) for r in rows]

    async def next_schedule_due(self, exclude: Collection[str] = ()) -> float | None:
        """The earliest ``next_run_at`` of unpaused schedules not in ``exclude`` (None: none)."""
        ids = list(exclude)
        return await self._scalar("SELECT min(next_run_at) FROM schedules "
                                  "WHERE next_run_at IS NOT NULL AND id NOT IN "
                                  f"({', '.join('?' * len(ids))})", ids)

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
        return await self._txn(tx_update_schedule, schedule_id, changes, expected_next)

    async def record_schedule_run(self, schedule_id: str, run_at: float,
                                  task_id: str) -> Schedule | None:
        """Record a firing outside the cron rule (run now) without moving ``next_run_at``."""
        try:
            return await self._txn(tx_update_schedule, schedule_id,
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
        (0 when none); a queue is, when it holds a matching queued or running task.
        """
        counts: dict[str, int] = {s: 0 for s in (*ACTIVE_STATUSES, *TERMINAL_STATUSES)}
        queues: dict[str, dict[str, int]] = {}
        filtered = task_filters(statuses, name, None, owners, None, None, None, None, None,
                                 None, search, schedule_id)
        if filtered is None:
            return {"queues": queues, "statuses": counts}
        where, args = filtered
        # a count reads every match: the hits, up to as many as a scan would cost
        with_sql, source, with_args = await self._search_source(
            search, " ".join(["queue, status", *where]), most=SEARCH_HITS_FAR_MAX)
        # statuses alone (their term is the first, and then the only one) are counted
        # along the status index, as no filter is
        by_status = len(where) == 1 and where[0].startswith(STATUS_TERMS)
        sql, args = stats_query(where, args, source, by_status)
        grouped = bool(where) and not by_status
        for queue_name, status, count in await self._rows(with_sql + sql, [*with_args, *args]):
            if queue_name is None or grouped:  # (else the statuses come apart)
                counts[status] = counts.get(status, 0) + count
            if queue_name is not None and status in ACTIVE_STATUSES:
                queues.setdefault(queue_name, {"queued": 0, "running": 0})[status] += count
        return {"queues": queues, "statuses": counts}

    async def prune(self, finished_before: float, events_before: float) -> int:
        """Forget finished tasks older than a time and events older than another; how many tasks.

        In small transactions (each about ``PRUNE_CHUNK_SECONDS``), so writes queued
        meanwhile go in between instead of waiting for the whole prune; after each,
        the prune rests ``PRUNE_REST_RATIO`` times as long as the chunk took. The
        search index forgets the deleted tasks once they are all gone, or starts over
        if more went than are left (tx_restart_search).
        """
        # what a prune or delete killed after its commit left (its note says)
        await self.finish_removals()
        # a chunk walks tasks_by_finished, which holds the settled tasks only: the
        # tasks ended in the last second go in first
        await self.settle()
        self._pruning_tasks += 1
        try:
            total = await self._prune_steps(tx_prune_tasks, finished_before)
            if self._pruning_tasks == 1:
                queued = await self._scalar(SEARCH_QUEUED_CHANGES)
                if queued and await self._scalar(TASKS_UP_TO, (queued,)) < queued:
                    await self._restart_search()
        finally:
            self._pruning_tasks -= 1
        await self._prune_steps(tx_prune_events, events_before)
        return total

    async def finish_removals(self) -> int:
        """Remove the artifact folders a prune or delete cut short left (``removals``):
        those its note names whose task has no row any more; how many."""
        removed = 0
        for note, task_ids in await asyncio.to_thread(removals.notes_left,
                                                      self.artifacts_dir):
            gone = []
            for start in range(0, len(task_ids), REMOVAL_BATCH):
                batch = [t for t in task_ids[start:start + REMOVAL_BATCH] if is_task_id(t)]
                if batch:
                    present = {row[0] for row in await self._rows(*tasks_present_query(batch))}
                    gone += [t for t in batch if t not in present]
            await asyncio.to_thread(removals.remove_folders, self.artifacts_dir, gone, note)
            removed += len(gone)
        return removed

    async def _restart_search(self) -> None:
        """Start the search index over (see task_sql.tx_restart_search), a transaction of
        SEARCH_BATCH_SECONDS at a time, each followed by a rest as long."""
        checkpointed = time.perf_counter()

        async def paced(step: Callable[..., Any]) -> bool:
            nonlocal checkpointed
            started = time.perf_counter()
            said = await self._txn(step)
            checkpointed = await self._prune_rest(time.perf_counter() - started, checkpointed)
            return bool(said)

        # the deleted tasks' texts, which the index would have forgotten one by one; a
        # process that stops on the way leaves their entries in the index, which only
        # name candidates that are gone (until the next start over)
        while await paced(tx_clear_search_queue):
            pass
        # another process may still be dropping an index it set aside
        while not await paced(tx_restart_search):
            while await paced(tx_drop_old_search):
                pass
        while await paced(tx_drop_old_search):
            pass

    async def _prune_steps(self, step: Callable[..., Any], cutoff: float) -> int:
        """One part of a prune (``tx_prune_tasks`` or ``tx_prune_events``), chunk by
        chunk; how many tasks it deleted."""
        total = 0
        checkpointed = time.perf_counter()
        size = PRUNE_CHUNK
        while True:
            t0 = time.perf_counter()
            done, more = await self._prune_chunk(step, cutoff, size)
            total += done if step is tx_prune_tasks else 0
            if not more:
                break
            took = time.perf_counter() - t0
            # the next chunk sized to the time budget from this one's pace (a tasks
            # chunk cut short at the budget deleted fewer than its size)
            paced = max(done, 1) if step is tx_prune_tasks else size
            size = max(50, min(5_000, int(paced * PRUNE_CHUNK_SECONDS / max(took, 1e-3))))
            checkpointed = await self._prune_rest(took, checkpointed)
        return total

    async def _prune_rest(self, took: float, checkpointed: float) -> float:
        """A prune's rest after a transaction that took ``took`` seconds, and a copy of
        the WAL if the last (at ``checkpointed``) was PRUNE_CHECKPOINT_SECONDS ago; when
        the WAL was last copied."""
        await prune_rest(took * PRUNE_REST_RATIO)
        if time.perf_counter() - checkpointed < PRUNE_CHECKPOINT_SECONDS:
            return checkpointed
        # the WAL copied back between two transactions, while neither writes: else it
        # grows to the automatic checkpoint, which one prune chunk's commit then pays
        # for (~100 ms of copying and fsync every ~30 chunks). A search index's start
        # over writes as much: emptying a queue of 900k deletions alone wrote ~14,700
        # frames; without these copies one of its steps took 213 ms, with them 21 ms.
        await self._checkpoint()
        return time.perf_counter()

    async def _prune_chunk(self, step: Callable[..., Any], cutoff: float,
                           size: int) -> tuple[int, bool]:
        """One prune transaction: (tasks or events deleted, whether more may be left)."""
        if step is tx_prune_tasks:
            deleted, with_files, more, note = await self._txn(
                tx_prune_tasks_noted, cutoff, size, PRUNE_CHUNK_SECONDS, self.artifacts_dir)
            await asyncio.to_thread(removals.remove_folders, self.artifacts_dir, with_files,
                                    note)
            return deleted, more
        deleted, done = await self._txn(tx_prune_events, cutoff, size, PRUNE_CHUNK_SECONDS)
        return deleted, not done
