"""``TaskContext``: what a running task uses to report progress, log, ask and stop."""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import time
from collections import deque
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol, TypeVar

from .exceptions import InvalidRequest, TaskCancelled
from .models import LogTailWrite, progress_number

T = TypeVar("T")


class TaskHost(Protocol):
    """What a context needs of the manager running its task (``TaskManager`` is one)."""

    @property
    def store(self) -> Any:
        """The manager's ``Store``."""

    async def run_on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the manager's loop from whichever loop the caller is on."""

    def run_sync(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the manager's loop from another thread and wait for it."""

    async def ask(self, ctx: TaskContext, prompt: str, choices: list[str],
                  timeout: float | None) -> str:
        """Ask a person for one of ``choices`` on behalf of the task of ``ctx``."""

current_context: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar(
    "jupyter_tasks_context", default=None
)


# adjacent writes of one stream are stored as one log row up to this many characters
# (print() writes its text and its newline apart: a row each took 4x the text on disk)
JOINED_CHARS = 64 * 1024


def joined_entries(entries: list[tuple[float, str, str]], max_chars: int = JOINED_CHARS
                   ) -> list[tuple[float, str, str]]:
    """``entries`` with each run of one stream joined (up to ``max_chars``), in order;
    a joined entry keeps the time of its first piece."""
    joined: list[tuple[float, str, str]] = []
    pieces: list[str] = []
    first, stream, size = 0.0, "", 0
    for ts, name, text in entries:
        if pieces and name == stream and size + len(text) <= max_chars:
            pieces.append(text)
            size += len(text)
            continue
        if pieces:
            joined.append((first, stream, "".join(pieces)))
        pieces, first, stream, size = [text], ts, name, len(text)
    if pieces:
        joined.append((first, stream, "".join(pieces)))
    return joined


# a progress message is cut here when flushed (progress() itself stays a few stores)
MAX_PROGRESS_MESSAGE = 1_000


def _position(value: Any) -> int | float | None:
    """A progress position as every reader can use it: an int or a finite float (a
    Decimal, Fraction or numpy number becomes one), None for anything else (text, a
    bool, NaN, an int past a float), never its repr."""
    if isinstance(value, (bool, str, bytes)) or value is None:
        return None
    if isinstance(value, int):
        return value if abs(value) <= 2**53 else None
    try:
        return progress_number(float(value))  # the readers' rule, once it is a float
    except (TypeError, ValueError, OverflowError):
        return None
# taken once per task at most: when its log first goes past the budget
_TAIL_START = threading.Lock()


class LogTail:
    """A log's rolling tail past its budget: about its last ``limit`` characters on disk,
    kept as it goes (a crash keeps the last lines written before it).

    Writers (maybe threads) ``add``; the flusher alone calls ``flush`` and then
    ``written`` or ``failed``, one write at a time. Rows are at most a sixteenth of
    the limit, so dropping the oldest whole rows keeps nearly all of it.
    """

    __slots__ = ("_lock", "_pending", "chars", "dropped_chars", "entries", "left_out", "limit",
                 "row_chars", "stored", "stored_chars")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.row_chars = max(1, limit // 16)
        # written since the last flush, at most ``limit`` characters of it
        self.entries: deque[tuple[float, str, str]] = deque()
        self.chars = 0
        self.dropped_chars = 0
        self._lock = threading.Lock()
        # (seq, characters) of the tail's rows on disk, oldest first
        self.stored: deque[tuple[int, int]] = deque()
        self.stored_chars = 0
        self.left_out = 0
        # the write being saved: (it, characters it drops from memory, from disk)
        self._pending: tuple[LogTailWrite, int, int] | None = None

    def add(self, entry: tuple[float, str, str]) -> None:
        """Keep ``entry``, forgetting the oldest unflushed ones beyond the limit."""
        ts, stream, text = entry
        with self._lock:
            if len(text) > self.limit:  # one huge write: its end
                self.dropped_chars += len(text) - self.limit
                text = text[-self.limit:]
            self.entries.append((ts, stream, text))
            self.chars += len(text)
            while self.chars > self.limit:
                _, _, old = self.entries.popleft()
                self.chars -= len(old)
                self.dropped_chars += len(old)

    @property
    def has_entries(self) -> bool:
        """True when entries wait for the next flush."""
        return bool(self.entries)

    def flush(self, task_id: str, final: bool) -> LogTailWrite | None:
        """The next write: the new entries in, as many of the oldest rows out as keep the
        tail within its limit; ``final`` adds a line saying how much was left out.

        None while a write is being saved (its entries wait for the next flush).
        """
        if self._pending is not None:
            return None
        with self._lock:
            new = list(self.entries)
            self.entries.clear()
            self.chars = 0
            dropped, self.dropped_chars = self.dropped_chars, 0
        rows = [(ts, stream, text[at:at + self.row_chars])
                for ts, stream, text in joined_entries(new, self.row_chars)
                for at in range(0, len(text), self.row_chars)]
        new_chars = sum(len(text) for _, _, text in rows)
        drop: list[int] = []
        freed = 0
        # after a gap (entries dropped before this flush) the older rows go too: the tail
        # on disk is always one unbroken run of the latest output
        for seq, chars in self.stored:
            if not dropped and self.stored_chars - freed + new_chars <= self.limit:
                break
            drop.append(seq)
            freed += chars
        left_out = self.left_out + dropped + freed
        if final and left_out:
            kept = self.stored_chars - freed + new_chars
            rows.append((time.time(), "log", (
                f"[jupyter-tasks] {left_out:,} characters of output were left out between "
                f"the line saying this log reached its budget and the last {kept:,} above\n")))
        if not rows and not drop:
            return None
        write = LogTailWrite(task_id, rows, tuple(drop))
        self._pending = (write, dropped, freed)
        return write

    def written(self, write: LogTailWrite, seqs: Sequence[int]) -> None:
        """The pending write was saved: its rows (their seqs, in order) are the newest."""
        assert self._pending is not None and self._pending[0] is write
        _, dropped, freed = self._pending
        self._pending = None
        for seq in write.drop:
            oldest, _ = self.stored.popleft()
            assert oldest == seq
        self.stored_chars -= freed
        self.left_out += dropped + freed
        for (_, _, text), seq in zip(write.entries, seqs, strict=True):
            self.stored.append((seq, len(text)))
            self.stored_chars += len(text)

    def failed(self, write: LogTailWrite) -> None:
        """The pending write was not saved: its entries are lost, a gap the next one heals."""
        assert self._pending is not None and self._pending[0] is write
        _, dropped, _ = self._pending
        self._pending = None
        with self._lock:
            self.dropped_chars += dropped + sum(len(text) for _, _, text in write.entries)


class TaskContext:
    """Handed to a running task (inject it by annotating a parameter ``ctx: TaskContext``).

    ``progress`` and ``log`` only record in memory; the manager's flusher
    writes what changed a few times per second, and always the last value, so
    both are cheap enough for a tight loop.
    """

    __slots__ = (
        "_answer",
        "_cancel",
        "_cancel_seen",
        "_current",
        "_log_budget",
        "_log_room",
        "_logs",
        "_manager",
        "_message",
        "_tail",
        "_total",
        "dirty",
        "ended",
        "loop",
        "started",
        "tail_saving",
        "task_id",
    )

    def __init__(self, task_id: str, manager: TaskHost | None = None,
                 loop: asyncio.AbstractEventLoop | None = None, *,
                 log_budget: int | None = None) -> None:
        self.task_id = task_id
        self._manager = manager
        self.loop = loop
        # three plain slots, not a tuple: progress() is called in tight loops
        self._current: float | None = None
        self._total: float | None = None
        self._message: str | None = None
        # set when progress changed since the last flush; the manager's flusher
        # visits every running context, clears this, then reads the value
        self.dirty = False
        # a deque: append and popleft are atomic, so writer threads need no lock
        self._logs: deque[tuple[float, str, str]] = deque()
        # characters the log may still take as it goes (None: no bound); past them only
        # a rolling tail is kept
        self._log_budget = log_budget
        self._log_room = log_budget
        self._tail: LogTail | None = None
        # set while a flush with a write of the tail runs (the last write waits for it)
        self.tail_saving: asyncio.Future[None] | None = None
        # its log was handed over for the last time: later output is no longer its
        self.ended = False
        # a plain flag: set from the loop thread, read by the task's thread (atomic under the GIL)
        self._cancel = False
        self._cancel_seen = False
        self._answer: asyncio.Future[str] | None = None
        self.started = time.monotonic()

    # ------------------------------------------------------------------ progress

    def progress(self, current: float, total: float | None = None,
                 message: str | None = None) -> None:
        """Record how far the task is; cheap: no I/O happens here."""
        self._current = current
        self._total = total
        self._message = message
        self.dirty = True

    @property
    def current_progress(self) -> dict[str, Any] | None:
        """The last recorded progress as ``{current, total, message}`` (a message past
        ``MAX_PROGRESS_MESSAGE`` characters cut: it is a status line, sent to every client)."""
        if self._current is None:
            return None
        current, total, message = self._current, self._total, self._message
        if isinstance(current, str) and message is None:
            message = current  # progress("step 1"): what the task is doing, not a position
        if isinstance(message, str) and len(message) > MAX_PROGRESS_MESSAGE:
            message = message[:MAX_PROGRESS_MESSAGE - 1] + "…"
        return {"current": _position(current), "total": _position(total), "message": message}

    # ---------------------------------------------------------------------- logs

    def log(self, text: str, stream: str = "log") -> None:
        """Append text to the task's log (written with the next flush; past the manager's
        ``max_log_chars`` only the log's last tenth is kept, a rolling tail)."""
        if not isinstance(text, str):
            raise _not_text("log", text)
        if not text:
            return
        self._keep((time.time(), stream, text if text.endswith("\n") else text + "\n"))

    def write(self, text: str, stream: str = "stdout") -> None:
        """Append raw output (no newline added), e.g. a subprocess's decoded chunks."""
        if not isinstance(text, str):
            # at the call, as sys.stdout.write says it: taken, bytes failed the end's
            # joining of the log, and the task stayed running
            raise _not_text("write", text)
        if text:
            self._keep((time.time(), stream, text))

    def _keep(self, entry: tuple[float, str, str]) -> None:
        room = self._log_room
        if room is None:
            self._logs.append(entry)
        elif self._tail is not None:  # past the budget: no global lock per write
            self._tail.add(entry)
        elif len(entry[2]) <= room:
            # writers may be threads: an update lost here can only overspend the budget
            # by a write, since once the tail exists nothing goes to the head again
            self._log_room = room - len(entry[2])
            self._logs.append(entry)
        else:
            self._past_budget(entry, room)

    def _past_budget(self, entry: tuple[float, str, str], room: int) -> None:
        with _TAIL_START:
            if self._tail is None:
                assert self._log_budget is not None
                head = entry[2][:room]
                if head:  # the head takes the budget's last characters from this entry
                    self._logs.append((entry[0], entry[1], head))
                    entry = (entry[0], entry[1], entry[2][room:])
                limit = max(1, self._log_budget // 10)
                # the head's last entry: a flush that finds the tail takes this line first
                self._logs.append((entry[0], "log", (
                    ("" if head.endswith("\n") or not head else "\n") +
                    f"[jupyter-tasks] this task's log reached its {self._log_budget:,} "
                    f"characters: from here only its last {limit:,} are kept\n")))
                self._tail = LogTail(limit)
        if entry[2]:
            self._tail.add(entry)

    def take_logs(self) -> list[tuple[float, str, str]]:
        """Hand over the buffered log entries within the budget (adjacent ones of a stream
        joined); past the budget see ``take_log_writes``."""
        logs = []
        while self._logs:
            logs.append(self._logs.popleft())
        return joined_entries(logs)

    def give_back_logs(self, entries: list[tuple[float, str, str]]) -> None:
        """Entries taken by a flush that could not write them (a full disk, a held lock):
        first in line for the next one, not lost (their budget was spent when kept)."""
        self._logs.extendleft(reversed(entries))

    def take_log_writes(self, final: bool = False
                        ) -> tuple[list[tuple[float, str, str]], LogTailWrite | None]:
        """The flusher's: the entries within the budget, then the rolling tail's next write
        (``final``: the task ended, so the note on what was left out is placed)."""
        if final:
            self.ended = True
        tail = self._tail  # first: a tail seen here has its opening line in the head already
        head = self.take_logs()
        return head, tail.flush(self.task_id, final) if tail is not None else None

    def tail_written(self, write: LogTailWrite, seqs: Sequence[int]) -> None:
        """Record where a tail write's rows went (the next write drops the oldest)."""
        assert self._tail is not None
        self._tail.written(write, seqs)

    def tail_failed(self, write: LogTailWrite) -> None:
        """A tail write was not saved: its lines are lost, and counted as left out."""
        assert self._tail is not None
        self._tail.failed(write)

    @property
    def has_logs(self) -> bool:
        """True when log entries wait for the next flush."""
        return bool(self._logs) or (self._tail is not None and self._tail.has_entries)

    # ----------------------------------------------------------------- artifacts

    async def artifact(self, name: str, data: bytes | str | os.PathLike[str],
                       content_type: str | None = None) -> dict[str, Any]:
        """Keep bytes, text (a ``str``, as UTF-8) or a copy of a file (a ``pathlib.Path``) as
        a named artifact of this task; returns its record. A ``str`` is always text."""
        manager = self._require_manager()
        stored = manager.store.add_artifact(self.task_id, name, data, content_type)
        art = await manager.run_on_loop(stored)
        return art.to_json()

    def artifact_sync(self, name: str, data: bytes | str | os.PathLike[str],
                      content_type: str | None = None) -> dict[str, Any]:
        """``artifact`` for code running in a thread."""
        manager = self._require_manager()
        return manager.run_sync(self.artifact(name, data, content_type))

    # -------------------------------------------------------------- confirmation

    async def confirm(self, prompt: str, choices: Sequence[str] = ("yes", "no"),
                      timeout: float | None = None) -> str:
        """Ask a person; the task waits until someone answers from any view."""
        manager = self._require_manager()
        return await manager.run_on_loop(manager.ask(self, prompt, _choices(choices), timeout))

    def confirm_sync(self, prompt: str, choices: Sequence[str] = ("yes", "no"),
                     timeout: float | None = None) -> str:
        """``confirm`` for code running in a thread."""
        manager = self._require_manager()
        return manager.run_sync(manager.ask(self, prompt, _choices(choices), timeout))

    # -------------------------------------------------------------- cancellation

    @property
    def cancelled(self) -> bool:
        """True once someone asked this task to stop."""
        if self._cancel:
            self._cancel_seen = True
        return self._cancel

    def check_cancelled(self) -> None:
        """Raise ``TaskCancelled`` if the task was asked to stop (for cooperative loops)."""
        if self._cancel:
            self._cancel_seen = True
            raise TaskCancelled(f"task {self.task_id} was cancelled")

    @property
    def cancel_seen(self) -> bool:
        """True once the task's code was told of a cancel (``cancelled`` read true, or
        ``check_cancelled`` raised).

        A function that returns after that may have stopped early because of it (a
        cooperative stop): its end is a cancel. One that returns without it ran to its
        end though a cancel was requested meanwhile: its end is its value.
        """
        return self._cancel_seen

    @property
    def cancel_requested(self) -> bool:
        """True once a cancel was asked (unlike ``cancelled``, reading it tells no one)."""
        return self._cancel

    def request_cancel(self) -> None:
        """Mark the task asked to stop (the runner sees it; cooperative code checks it)."""
        self._cancel = True

    @property
    def manager(self) -> TaskHost | None:
        """The manager running this task, if any."""
        return self._manager

    def _require_manager(self) -> TaskHost:
        if self._manager is None:
            from .exceptions import ManagerNotRunning

            raise ManagerNotRunning("this task context is not attached to a task manager")
        return self._manager


def _not_text(method: str, value: Any) -> TypeError:
    return TypeError(f"{method}() argument must be str, not {type(value).__name__}")


def _choices(choices: Sequence[str]) -> list[str]:
    """The choices as a list; one string refused (``"yes"`` offered "y", "e" and "s")."""
    if isinstance(choices, str):
        raise InvalidRequest(f"choices must be a list of strings, not one string "
                             f"({choices!r}); e.g. [{choices!r}, 'no']")
    return list(choices)
