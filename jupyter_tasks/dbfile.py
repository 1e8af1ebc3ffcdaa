"""The database file itself: is it there, is it ours, is it a sound SQLite database?

Every process opens the same file by path. Deleting or replacing that file
under running processes splits them: the ones that had it open keep writing
to the old inode, the others would start a new empty file. The store records
the file's ``(st_dev, st_ino)`` when it opens and, before every write
transaction, checks that the path still names that file (``check_identity``);
once it does not, the store refuses everything with ``StoreUnavailable``.

Creating a database is right on a first start only: when neither the file nor
its WAL companions (``-wal``, ``-shm``) exist. Companions without the file mean
the file was deleted (or moved) while some process had it open, so nobody
creates a new one there (``check_before_open``).

Nothing here writes to a database. ``inspect`` (``jupyter tasks doctor``) and
``verify`` open it read-only (a ``mode=ro`` URI); like any reader of a WAL
database they may leave the ``-wal``/``-shm`` companions behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import socket
import sqlite3
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .exceptions import StoreBusy, StoreCompanionHeld, StoreError, StoreFull, StoreUnavailable
from .migrations import LATEST_VERSION
from .models import worker_task_names

_CORRUPTION_CODES = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
_CORRUPTION_TEXT = ("database disk image is malformed", "file is not a database")


# ------------------------------------------------------------------- messages


def recover_command(path: Path | str) -> str:
    """The command that copies what a damaged file holds to ``<path>.recovered``.

    Its paths quoted for a shell: pasted as printed, it must run (a path with spaces).
    """
    return f"jupyter tasks recover --db {shlex.quote(str(path))}"


def recovery_advice(path: Path | str) -> str:
    """What to do with a damaged file, in one line (the server logs and answers it)."""
    return (f"stop the server, run `jupyter tasks doctor --db {shlex.quote(str(path))}`, "
            f"then either recover what it holds (`{recover_command(path)}`, then "
            f"move {path}.recovered in its place) or move the file aside to start empty; "
            "then restart the server")


def damaged_message(path: Path | str, what: str) -> str:
    """The message of a file that is damaged or not a database: names it, says what to do."""
    return f"the task database {path} {what}; nothing is accepted until it is fixed: " \
        + recovery_advice(path)


def unreachable_message(path: Path | str, why: str) -> str:
    """The message of a database path this process may not get at: not damage."""
    return (f"the task database {path} cannot be reached by this process ({why}); it is "
            "not damaged: check the path (--db, $JUPYTER_TASKS_DB) and that this user may "
            "read it and enter its folders")


def folder_message(path: Path | str) -> str:
    """The message of a database path that names a folder: a wrong path, not damage."""
    return (f"the task database {path} is a folder, not a database file; it is not "
            f"damaged: give the file itself, e.g. --db {Path(path) / 'tasks.db'} "
            "($JUPYTER_TASKS_DB and JupyterTasksApp.db_path name the file too)")


def special_file_message(path: Path | str) -> str:
    """The message of a database path that names a device, pipe or socket: a wrong path."""
    return (f"the task database {path} is not a regular file (a device, pipe or socket), "
            "so not a database file; it is left alone: give the database file itself "
            "(--db, $JUPYTER_TASKS_DB)")


def missing_message(path: Path | str) -> str:
    """The message of a database that does not exist where one is needed."""
    return (f"no database at {path}: start the Jupyter server (or `jupyter tasks worker`) "
            "once to create it, or give the right file with --db / $JUPYTER_TASKS_DB")


def _gone_message(path: Path, leftovers: list[str]) -> str:
    return (f"the task database {path} is missing but {', '.join(leftovers)} still exist: the "
            "file was deleted or moved while a process had it open, so no new empty database "
            f"is created in its place. Restore {path} (from a backup, or from where it was "
            "moved); or, to start with an empty database, stop every process using it "
            "(the server, kernels, workers), remove the leftover files, and restart the server")


def _identity_message(path: Path, replaced: bool) -> str:
    if replaced:
        return (f"the task database {path} was replaced by another file while this process "
                "was using it; nothing more is accepted here (what this process wrote before "
                "is in the old file, no longer at that path). Restart the server (and the "
                "kernels and workers using it) to use the file now at that path")
    return (f"the task database {path} was deleted or moved while this process was using "
            "it; nothing more is accepted. If it was moved, move it back and restart the "
            "server (and the kernels and workers using it); if it was deleted, its data is "
            "gone unless you restore the file from a backup, and a restart starts a new "
            "database at that path")


# ------------------------------------------------------------------ identity


def file_identity(path: Path | str) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the file at ``path``, or None when nothing is there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def check_identity(path: Path, expected: tuple[int, int] | None) -> str | None:
    """Why the path no longer names the file opened as ``expected`` (None: it still does).

    One ``os.stat``: about 2 microseconds, paid once per write transaction.
    """
    if expected is None:
        return None  # unknown at open (an in-memory or unusual file): nothing to compare
    now = file_identity(path)
    if now == expected:
        return None
    return _identity_message(path, replaced=now is not None)


# a write-ahead log shorter than its header holds no frame
WAL_HEADER_BYTES = 32
# the last words of every message about a companion deleted in use
NEVER_DELETE = "Never delete -wal or -shm files while any process has the database open"


def wal_deleted_message(path: Path) -> str | None:
    """Why ``path`` reads as "disk I/O error" when its write-ahead log was deleted in use:
    its shared-memory index is there and still counts the log's frames, while the -wal is
    missing or empty (the failing open makes a new, empty one). None otherwise."""
    wal, shm = sidecars(path)
    try:
        wal_bytes = wal.stat().st_size
    except OSError:
        wal_bytes = 0
    if wal_bytes < WAL_HEADER_BYTES and shm.exists() and path.exists():
        return (f"the task database's write-ahead log {wal} is missing while {shm.name} is "
                f"there: it was deleted while a process used {path.name}. The process that "
                "still holds it copies its changes into the database when it closes: stop "
                "every process using the file cleanly (the server, kernels, workers; a kill "
                "-9 loses those changes), then run `jupyter tasks doctor`, and "
                f"`{recover_command(path)}` if it finds damage. {NEVER_DELETE}")
    return None


def deleted_companion_holder(path: Path) -> tuple[int, Path] | None:
    """A process that has ``path`` open through a write-ahead log or shared-memory index
    deleted from under it: (its pid, that file), found in ``/proc``; None when there is
    none, or no ``/proc`` to ask.

    The next process to open the file makes a new one beside the deleted one: two logs
    on one index damage the file, two indexes over one log lose commits (the holder
    writes its log over frames it cannot see). A deleted log that a checkpoint had just
    emptied warns nobody (a log with frames fails reads as "disk I/O error"), nor does a
    deleted index. Only processes this user may look into are seen.
    """
    real = os.path.realpath(path)
    deleted = {f"{real}{end} (deleted)": Path(f"{path}{end}") for end in ("-wal", "-shm")}
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return None
    # a connection holds SQLite's locks; a child forked without exec inherits the
    # descriptors but no lock, and holds nothing once its parent's last connection
    # closed (SQLite then deletes the -wal and -shm, as it should)
    locks = _locks()
    if locks is not None:
        pids = [pid for pid in pids if int(pid) in {holder for holder, _ in locks}]
    for pid in pids:
        folder = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(folder)
        except OSError:
            continue  # gone, or another user's
        holds_file = False
        gone: Path | None = None
        inodes: set[int] = set()
        for fd in fds:
            try:
                target = os.readlink(f"{folder}/{fd}")
                if target == real or target in deleted:
                    inodes.add(os.stat(f"{folder}/{fd}").st_ino)
            except OSError:
                continue
            holds_file = holds_file or target == real
            gone = gone or deleted.get(target)
        # the file itself still at its path: a process on a database deleted whole (its
        # companions with it) is no danger to a new one made there. And a lock on one of
        # these files: only a live connection holds one
        if holds_file and gone is not None and (
                locks is None or any((int(pid), inode) in locks for inode in inodes)):
            return int(pid), gone
    return None


def _locks() -> set[tuple[int, int]] | None:
    """(pid, inode) of each POSIX lock held (``/proc/locks``); None when unreadable."""
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as listing:
            lines = listing.read().splitlines()
    except OSError:
        return None
    held = set()
    for line in lines:
        fields = line.split()
        # "1: POSIX  ADVISORY  READ 1234 fd:00:2170893 128 128" (a waiter has "->" first)
        if "->" in fields or len(fields) < 6 or fields[1] != "POSIX":
            continue
        inode = fields[5].rsplit(":", 1)[-1]
        if fields[4].isdigit() and inode.isdigit():
            held.add((int(fields[4]), int(inode)))
    return held


def deleted_companion_message(path: Path, pid: int, companion: Path) -> str:
    """What to do when process ``pid`` holds ``path``'s deleted ``companion``."""
    what = _companion_kind(str(companion))
    return (f"the task database's {what} {companion} was deleted while process {pid} used "
            f"{path.name}, and that process still holds it: opening the file now would "
            f"start a second {what} beside it, which damages the file or loses what is "
            "written. Stop that process cleanly (its close copies its changes into the "
            "database; a kill -9 loses them) and every other one using the file, then run "
            f"`jupyter tasks doctor`, and `{recover_command(path)}` if it finds damage. "
            f"{NEVER_DELETE}")


def _companion_kind(companion: str) -> str:
    return "write-ahead log" if companion.endswith("-wal") else "shared-memory index"


Companions = tuple[tuple[str, tuple[int, int] | None], ...]


def companion_identities(path: Path) -> Companions:
    """(path, ``file_identity``) of ``path``'s write-ahead log and shared-memory index,
    beside the file a link names (where SQLite keeps them): taken once, at open."""
    return tuple((str(companion), file_identity(companion))
                 for companion in sidecars(Path(os.path.realpath(path))))


def check_companions(path: Path, expected: Companions) -> str | None:
    """Why this process may not write any more (None: it may): the write-ahead log or
    shared-memory index beside ``path`` is not the one it opened (``expected``, taken
    at open by ``companion_identities``).

    A store's connections keep both open, so SQLite never deletes them under it: gone
    or another file, one was deleted in use. Writing on beside a process that starts
    a new one puts two logs on one index (the file ends "not a database"), or two
    indexes over one log (commits are lost). One ``os.stat`` each: this runs before
    every write transaction and its commit (resolving the link each time cost a
    sequential submit loop 15 % of its rate).
    """
    for companion, opened in expected:
        if opened is None or file_identity(companion) == opened:
            continue
        return (f"the task database's {_companion_kind(companion)} {companion} was deleted "
                "while this process used it; nothing more is written here, so no other "
                f"process's new one meets this one's in {path.name}. Stop this process "
                "cleanly (its close copies its changes into the database) and every other "
                f"one using the file, then run `jupyter tasks doctor`. {NEVER_DELETE}")
    return None


def sidecars(path: Path) -> list[Path]:
    """The WAL companions SQLite keeps beside an open database."""
    return [path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def check_before_open(path: Path, *, create: bool) -> None:
    """Before connecting: refuse a file that is not SQLite, and a new file where one was.

    ``create=False`` also refuses a missing file (read-only tools). Raises
    ``StoreUnavailable`` with a message that names the file and what to do.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        leftovers = [p.name for p in sidecars(path) if p.exists()]
        if leftovers:
            raise StoreUnavailable(_gone_message(path, leftovers)) from None
        if not create:
            raise StoreUnavailable(missing_message(path)) from None
        return
    except OSError as exc:
        # a folder on the way that is a file, or shut to this user: the path or the access
        # is wrong, not the file (damage advice sent people to move a sound one aside)
        raise StoreUnavailable(unreachable_message(path, exc.strerror or str(exc))) from None
    if stat.S_ISDIR(st.st_mode):
        # the folder the file lives in, given for the file: damage advice would have the
        # user move their folder aside
        raise StoreUnavailable(folder_message(path))
    if not stat.S_ISREG(st.st_mode):
        # /dev/null given as --db: recover it, or move it aside, was the advice
        raise StoreUnavailable(special_file_message(path))
    if st.st_size == 0:
        return  # SQLite's own empty database: the schema is created in it
    short = cut_short(path, st.st_size)
    if short is not None:  # before SQLite reads it as a database of schema version 0
        raise StoreUnavailable(damaged_message(path, short))
    if not os.access(path, os.R_OK):
        raise StoreUnavailable(unreachable_message(path, "permission denied"))
    # before any connection, even a read-only one: none may start a second companion
    holder = deleted_companion_holder(path)
    if holder is not None:
        raise StoreCompanionHeld(deleted_companion_message(path, *holder))
    refuses, foreign = _probe(path)
    if refuses:
        raise StoreUnavailable(damaged_message(path, "is not a SQLite database"))
    if foreign:
        raise StoreUnavailable(foreign_message(path, foreign))


SQLITE_HEADER_BYTES = 100


SQLITE_MAGIC = b"SQLite format 3\x00"


def cut_short(path: Path, size: int) -> str | None:
    """What ``path`` (``size`` bytes) is when it is a SQLite file's start that ends inside
    its header, else None (a short file of other bytes is no database at all)."""
    if not 0 < size < SQLITE_HEADER_BYTES:
        return None
    try:
        with open(path, "rb") as f:
            start = f.read(len(SQLITE_MAGIC))
    except OSError:
        return None
    if not start or not SQLITE_MAGIC.startswith(start):
        return None
    return (f"is cut short ({size} bytes, less than a SQLite file's header): a copy or a "
            "download that did not finish")


def create_private(path: Path) -> None:
    """Create a missing database file readable and writable by its owner only.

    It holds every task's params, results and logs: made by SQLite it would follow
    the umask (0644 under the usual 022, open to every local account). Its WAL and
    shared-memory files take the database file's mode; a file that exists keeps its
    own (a team sharing one sets it).
    """
    try:
        # the file a link names: an exclusive create of the link itself would fail, and
        # SQLite then made its target by the umask
        fd = os.open(os.path.realpath(path), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return  # there already, or another process made it first
    os.close(fd)  # an empty file is SQLite's empty database


def cannot_create(path: Path, exc: OSError) -> StoreUnavailable:
    """The error for a missing database file (or folder) this process may not create."""
    return StoreUnavailable(
        f"no database at {path}, and this process cannot create {path} "
        f"({exc.strerror or exc}): nothing was created; give this user write access to "
        f"{path.parent}, or pass another --db")


def folder_mode(path: Path) -> int:
    """The mode of a folder kept beside the database file (its artifacts): its owner's,
    and as open to its group and others as the file is (a team sharing one set it)."""
    try:
        file_mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o700
    mode = 0o700
    for shift in (3, 0):  # group, others: what may read or write the file may enter
        bits = (file_mode >> shift) & 0o6
        mode |= (bits | (1 if bits else 0)) << shift
    return mode


def foreign_tables(path: Path) -> list[str]:
    """The tables of a SQLite file with no jupyter-tasks schema (another program's);
    [] for a task database, an empty one, or one SQLite cannot read (said elsewhere)."""
    return _probe(path)[1]


def foreign_message(path: Path, tables: list[str]) -> str:
    """Why a writer leaves another program's SQLite file alone."""
    shown = ", ".join(tables[:5]) + (", …" if len(tables) > 5 else "")
    return (f"{path} is another application's database (its tables: {shown}), not a task "
            "database: nothing was changed in it (jupyter-tasks would have added its tables "
            "and switched it to WAL). Give jupyter-tasks a file of its own with --db / "
            "$JUPYTER_TASKS_DB")


def _probe(path: Path) -> tuple[bool, list[str]]:
    """(SQLite finds no database in the file, the tables of another program's database);
    (False, []) when it could not tell: the store's own connection reports that.

    Asked of SQLite rather than read with ``open()``: closing any descriptor of the
    file drops every POSIX lock the process holds on it, those of the process's open
    connections too (SQLite keeps its own descriptors open while one of its
    connections holds a lock). A second store opened in a process that had one open
    (the dashboard's counter beside its manager) once did that; the next process to
    close its connection then took itself for the last one and deleted the WAL the
    first store kept reading and writing.
    """
    try:
        conn = sqlite3.connect(read_only_uri(path), uri=True, timeout=0)
    except sqlite3.Error:
        return False, []
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] != 0:
            return False, []  # migration 1 sets it with the first tables
        return False, [name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    except sqlite3.DatabaseError as exc:
        # as is_corruption reads an error: its code where the error carries one, else its text
        code = getattr(exc, "sqlite_errorcode", None)
        return (code == sqlite3.SQLITE_NOTADB if code is not None
                else "file is not a database" in str(exc)), []
    finally:
        conn.close()


# ---------------------------------------------------------------- corruption


def is_corruption(exc: BaseException) -> bool:
    """Whether an SQLite error means the file is damaged or not a database."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _CORRUPTION_CODES:
        return True
    text = str(exc)
    return any(marker in text for marker in _CORRUPTION_TEXT)


def unavailable_for(path: Path | str, exc: BaseException) -> StoreUnavailable | None:
    """``StoreUnavailable`` for an SQLite error that means damage, else None."""
    if is_corruption(exc):
        return StoreUnavailable(damaged_message(path, f"is damaged ({exc})"))
    if isinstance(exc, sqlite3.OperationalError):
        wal_gone = wal_deleted_problem(Path(path), str(exc))
        if wal_gone:
            return StoreUnavailable(wal_gone)
    return None


def wal_deleted_problem(path: Path, said: str) -> str | None:
    """``wal_deleted_message`` when SQLite ``said`` "disk I/O error" and the disk is not
    full (a full disk leaves an empty -wal too, and is said as such)."""
    if "disk I/O error" not in said or disk_full(path):
        return None
    return wal_deleted_message(path)


# below this much free space a write-side I/O error is taken for a full disk
FULL_BELOW_BYTES = 1 << 20


def disk_full(path: Path | str) -> bool:
    """Whether the file system holding ``path`` has (almost) no room left for this user."""
    try:
        st = os.statvfs(Path(path).parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < FULL_BELOW_BYTES


def access_problem(path: Path | str, exc: BaseException) -> StoreError | None:
    """The error for an SQLite failure that is not damage: the file held by another
    process (``StoreBusy``), on a full disk (``StoreFull``), or not readable by this one
    (``StoreUnavailable``); None
    for anything else. Said as such: calling a sound file damaged sent people to replace
    it with an empty one."""
    if not isinstance(exc, sqlite3.OperationalError):
        return None
    text, path = str(exc), Path(path)
    if "database is locked" in text or "database is busy" in text:
        return StoreBusy(f"{path} is locked by another process (an exclusive lock, or a long "
                         f"write); it is not damaged: try again, or find the process with "
                         f"`fuser {shlex.quote(str(path))}`")
    if ("disk is full" in text or "disk I/O error" in text) and disk_full(path):
        # SQLite cannot grow the -shm or -wal file: "disk I/O error" on a sound file
        return StoreFull(f"{path} cannot be used now: the disk holding it is full; it is "
                         "not damaged: free some space and try again")
    # a WAL file whose -shm cannot be made: "unable to open", or SQLite's
    # SQLITE_READONLY_DIRECTORY, "attempt to write a readonly database"
    if ("unable to open" in text or "readonly database" in text) and path.exists():
        if not os.access(path.parent, os.W_OK):
            return StoreUnavailable(
                f"{path} cannot be read here: reading a WAL database needs its -shm file "
                f"beside it, and this process may not write in {path.parent} (a read-only "
                "folder or disk). It is not damaged: give write access to the folder, or "
                "copy the database (with any -wal file) to a writable folder and pass --db")
        return StoreUnavailable(f"{path} cannot be opened here ({text}); it is not damaged")
    return None


def open_problem(path: Path, exc: BaseException) -> StoreError | None:
    """What an SQLite failure while opening ``path`` means for its user (damage, access,
    or the file gone meanwhile); None when it is none of these."""
    problem = unavailable_for(path, exc) or access_problem(path, exc)
    if problem is None and isinstance(exc, sqlite3.OperationalError):
        # "disk I/O error": the file went between the check and the open (deleted, or
        # moved away with its WAL companions left behind); the check says so in its words
        try:
            check_before_open(path, create=False)
        except StoreUnavailable as gone:
            problem = gone
    return problem


def read_only_uri(path: Path | str) -> str:
    """A ``mode=ro`` URI: the connection can neither create the file nor write to it."""
    return Path(path).resolve().as_uri() + "?mode=ro"


def existing_file_uri(path: Path | str) -> str:
    """A ``mode=rw`` URI: the connection writes to the file but never creates it."""
    return Path(path).resolve().as_uri() + "?mode=rw"


def verify(path: Path | str) -> None:
    """Raise ``StoreUnavailable`` unless ``path`` is missing (a first start) or sound.

    Reads the header and runs ``PRAGMA quick_check`` on a read-only connection;
    nothing is created, migrated or written. The server runs it before it starts.
    """
    path = Path(path)
    if not path.exists() and not any(p.exists() for p in sidecars(path)):
        return
    check_before_open(path, create=False)
    try:
        conn = sqlite3.connect(read_only_uri(path), uri=True)
        try:
            problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        problem = access_problem(path, exc)
        if problem is not None:
            raise problem from None
        raise StoreUnavailable(damaged_message(path, f"cannot be read ({exc})")) from None
    if problems != ["ok"]:
        raise StoreUnavailable(damaged_message(
            path, f"is damaged (quick_check: {'; '.join(problems)})"))


class _OncePerMessage(logging.Filter):
    """Let each line about one ``StoreUnavailable`` through once.

    A store that refuses everything makes every loop of the manager fail (the
    heartbeat every 2 s, the reaper every second): the first traceback says
    what happened, the next thousand would only bury it. Keyed on the line too:
    keyed on the error alone, "writing the end of task … failed" (a result lost)
    was dropped because a loop had said the same error before.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, StoreUnavailable):
            key = (record.getMessage(), exc.message)
            if key in self.seen:
                return False
            self.seen.add(key)
        return True


logging.getLogger("jupyter_tasks").addFilter(_OncePerMessage())


# -------------------------------------------------------------------- doctor


def _queue_names(stored: Any) -> list[str]:
    """The queues a worker row lists (a JSON list), or none for anything else."""
    try:
        names = json.loads(stored) if isinstance(stored, str) else []
    except ValueError:
        return []
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def _note_unserved_queues(conn: sqlite3.Connection, report: Report) -> None:
    """Note the queued jobs no live worker takes: their queue has none, or none has their
    task (they wait for one)."""
    live = [w for w in report.workers if w["state"] in ("alive", "unknown (other host)")]
    served = {q for w in live for q in w["queues"]}
    for queue, count in conn.execute(
            "SELECT queue, count(*) FROM tasks WHERE status = 'queued' AND mode = 'job' "
            "GROUP BY queue ORDER BY queue"):
        if queue not in served:
            report.notes.append(
                f"{count} job{'' if count == 1 else 's'} wait{'s' if count == 1 else ''} in "
                f"queue {queue!r}, which no live worker serves: start one with `jupyter tasks "
                f"worker --queue {queue}` (or give the server that queue)")
            continue
        # a named task no live worker of the queue has (a typo, a module not given to
        # them): its jobs are never claimed. A worker row from before the names were
        # recorded (None) may have any
        known: set[str] = set()
        for w in live:
            if queue in w["queues"]:
                if w["tasks"] is None:
                    break
                known.update(w["tasks"])
        else:
            for name, waiting in conn.execute(
                    "SELECT name, count(*) FROM tasks WHERE status = 'queued' AND mode = 'job' "
                    "AND queue = ? AND kind = 'function' AND name IS NOT NULL "
                    "GROUP BY name ORDER BY name", (queue,)):
                if name not in known:
                    report.notes.append(
                        f"{waiting} job{'' if waiting == 1 else 's'} of queue {queue!r} "
                        f"wait{'s' if waiting == 1 else ''} for task {name!r}, which no live "
                        "worker of that queue has registered: give them its module (or "
                        "cancel the jobs, if the name is a typo)")


@dataclass
class Report:
    """What ``jupyter tasks doctor`` found; ``problems`` empty means healthy."""

    path: Path
    exists: bool = False
    size: int = 0
    wal_size: int | None = None
    quick_check: list[str] = field(default_factory=list)
    schema_version: int | None = None
    journal_mode: str | None = None
    workers: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)
    # not problems of the file: what may surprise its user (a queue nobody serves)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# a worker's heartbeat comes every few seconds (its lease is 30 s by default)
SILENT_WORKER_SECONDS = 120.0


def inspect(path: Path | str) -> Report:
    """Look at the database at ``path`` read-only and say what is wrong with it, if anything."""
    from .liveness import pid_alive  # the reaper's own notion of a live process

    path = Path(path)
    report = Report(path)
    report.exists = path.exists()
    if not report.exists:
        report.problems.append(f"no database at {path}")
        leftovers = [p.name for p in sidecars(path) if p.exists()]
        if leftovers:
            report.problems.append(f"{', '.join(leftovers)} exist without it: the file was "
                                   "deleted or moved while in use")
            report.advice.append(f"restore {path}, or stop every process using it and remove "
                                 f"{', '.join(leftovers)} to start empty")
        else:
            report.advice.append("start the server once to create it, or pass the right --db")
        return report
    if path.is_dir():  # a wrong path, not a damaged file: nothing to recover or move aside
        report.problems.append(folder_message(path))
        return report
    if not path.is_file():  # a device, pipe or socket: a wrong path too
        report.problems.append(special_file_message(path))
        return report
    report.size = path.stat().st_size
    wal = sidecars(path)[0]
    report.wal_size = wal.stat().st_size if wal.exists() else None
    move_aside = (f"move it aside (`mv {shlex.quote(str(path))} "
                  f"{shlex.quote(f'{path}.broken')}`, with its -wal and -shm files "
                  "if any) and restart the server to start with an empty database")
    holder = deleted_companion_holder(path)
    if holder is not None:  # not opened at all: even a reader would start a second one
        report.problems.append(deleted_companion_message(path, *holder))
        return report
    try:
        check_before_open(path, create=False)
    except StoreUnavailable:
        foreign = foreign_tables(path)
        if foreign:  # sound, and someone else's: nothing to move aside
            report.problems.append(foreign_message(path, foreign))
            return report
        short = cut_short(path, report.size)
        report.problems.append(f"{path} {short}" if short else
                               f"{path} is not a SQLite database")
        report.advice.append(move_aside)
        return report
    try:
        conn = sqlite3.connect(read_only_uri(path), uri=True)
    except sqlite3.Error as exc:
        report.problems.append(f"cannot open {path} read-only: {exc}")
        return report
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        try:
            report.quick_check = [row[0] for row in conn.execute("PRAGMA quick_check(20)")]
        except sqlite3.DatabaseError as exc:
            problem = access_problem(path, exc)
            if problem is not None:  # not damage: nothing more can be read, and nothing to fix
                report.problems.append(problem.message)
                return report
            report.quick_check = [str(exc)]
        # each read on its own: a damaged file (one cut in half) may refuse any of them,
        # and the report of what could be read is the doctor's whole point
        with contextlib.suppress(sqlite3.DatabaseError):
            report.schema_version = conn.execute("PRAGMA user_version").fetchone()[0]
        with contextlib.suppress(sqlite3.DatabaseError):
            report.journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        tables: set[str] = set()
        with contextlib.suppress(sqlite3.DatabaseError):
            tables = {row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        with contextlib.suppress(sqlite3.DatabaseError):
            if "tasks" in tables:
                report.counts = dict(conn.execute(
                    "SELECT status, count(*) FROM tasks GROUP BY status ORDER BY status"))
        with contextlib.suppress(sqlite3.DatabaseError):
            if "workers" in tables:
                now = time.time()
                host = socket.gethostname()
                # the task names, in a file of migration 18 on
                names = "tasks" if "tasks" in {r[1] for r in conn.execute(
                    "PRAGMA table_info(workers)")} else "NULL"
                # running tasks by the worker holding them, read once for every worker row
                running_by_worker: dict[str, int] = dict(conn.execute(
                    "SELECT worker_id, count(*) FROM tasks WHERE status = 'running' "
                    "GROUP BY worker_id")) if "tasks" in tables else {}
                for row in conn.execute(
                        "SELECT id, kind, pid, host, pid_started_at, heartbeat_at, stopped_at, "
                        f"queues, {names} FROM workers ORDER BY heartbeat_at DESC"):
                    wid, kind, pid, whost, pid_started, beat, stopped, queues, tasks = row
                    if stopped is not None:
                        state = "stopped"
                    elif whost == host:
                        state = "alive" if pid_alive(pid, pid_started) else "dead"
                    else:
                        state = "unknown (other host)"
                    report.workers.append({"id": wid, "kind": kind, "pid": pid, "host": whost,
                                           "state": state,
                                           "heartbeat_age": round(now - (beat or 0), 1),
                                           "queues": _queue_names(queues),
                                           "tasks": worker_task_names(tasks)})
                    silent = now - (beat or 0)
                    held = running_by_worker.get(wid, 0) if state == "dead" else 0
                    if held:
                        # a kernel's tasks after its restart: listed running, growing
                        # older, and nothing said why (the CLI is no reaper)
                        report.notes.append(
                            f"{kind} {wid} (pid {pid}) is dead and {held} of its tasks "
                            f"still say running: the next reaper ends them (a server, a "
                            f"`jupyter tasks worker`, or a kernel that loads jupyter_tasks "
                            f"on this database)")
                    if state == "alive" and silent > SILENT_WORKER_SECONDS:
                        # on its host a live process is the reaper's authority: its
                        # running jobs stay running while it lives
                        report.notes.append(
                            f"worker {wid} (pid {pid}) runs but has written no heartbeat for "
                            f"{silent:.0f} s: it may be stuck, stopped (SIGSTOP) or using a "
                            f"file no longer at this path; its running jobs are not taken "
                            f"back while it lives: stop it (kill {pid}) if it is stuck")
        with contextlib.suppress(sqlite3.DatabaseError):
            if "tasks" in tables:
                _note_unserved_queues(conn, report)
    finally:
        conn.close()
    if report.quick_check != ["ok"]:
        report.problems.append("quick_check found damage: " + "; ".join(report.quick_check))
        wal_gone = wal_deleted_problem(path, "; ".join(report.quick_check))
        if wal_gone:
            report.problems.append(wal_gone)
        report.advice.append(
            f"stop the server, then recover what the file holds: `{recover_command(path)}`, "
            f"check it with `jupyter tasks doctor --db {shlex.quote(f'{path}.recovered')}`, "
            f"and move it in place of {path}")
        report.advice.append("or " + move_aside)
    version = report.schema_version
    if version is not None and version > LATEST_VERSION:
        report.problems.append(f"schema version {version} is newer than this jupyter-tasks "
                               f"understands ({LATEST_VERSION})")
        report.advice.append("upgrade jupyter-tasks")
    elif version == 0 and report.quick_check == ["ok"]:
        # no schema at all: a recovery that copied nothing looks like this, and a
        # "no problem" here once let it replace the real database
        report.problems.append(f"{path} is an empty database: no jupyter-tasks schema, no "
                               "task history (a server would start it empty)")
        report.advice.append("if it was to hold a recovered history, it holds none: do not "
                             "move it in place of a database; recover with `jupyter tasks "
                             "recover --db DAMAGED.db`")
    elif version is not None and version < LATEST_VERSION:
        # not damage, but list, show and logs refuse it until a writer migrates it
        report.notes.append(
            f"schema version {version} is older than this jupyter-tasks ({LATEST_VERSION})"
            + (" (an empty database)" if version == 0 else "") + ": the read-only commands "
            "refuse it until the server (or any writer, such as `jupyter tasks worker`) "
            "has opened it once")
    if report.journal_mode is not None and report.journal_mode.lower() != "wal" \
            and version not in (None, 0):
        report.problems.append(f"journal mode is {report.journal_mode}, not wal")
        report.advice.append("restart the server: it puts the file back in WAL mode")
    return report
