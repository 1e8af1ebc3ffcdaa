"""The immutable task model: statuses, kinds, modes, and the records the store returns."""

from __future__ import annotations

import functools
import json
import math
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import datetime, timezone
from enum import Enum
from typing import Any, NamedTuple

from .values import loads_or_placeholder, storable_text


class TaskStatus(str, Enum):
    """Where a task is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMEOUT = "timeout"
    OOM = "oom"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def is_terminal(self) -> bool:
        """True once the task can no longer change status."""
        return self not in (TaskStatus.QUEUED, TaskStatus.RUNNING)


ACTIVE_STATUSES = (TaskStatus.QUEUED.value, TaskStatus.RUNNING.value)
TERMINAL_STATUSES = tuple(s.value for s in TaskStatus if s.is_terminal)


class TaskKind(str, Enum):
    """What sort of work a task runs."""

    FUNCTION = "function"
    CELL = "cell"
    SUBPROCESS = "subprocess"
    NOTEBOOK = "notebook"
    CODE = "code"


class TaskMode(str, Enum):
    """How a task is executed: now, beside the caller, or from the durable queue."""

    SYNC = "sync"
    BACKGROUND = "background"
    JOB = "job"


class EventType(str, Enum):
    """Types of rows in the ``events`` change feed (the websocket ``type``)."""

    CREATED = "task.created"
    STARTED = "task.started"
    PROGRESS = "task.progress"
    LOG = "task.log"
    CONFIRMATION = "task.confirmation"
    RETRYING = "task.retrying"
    CANCEL_REQUESTED = "task.cancel_requested"
    SUCCEEDED = "task.succeeded"
    FAILED = "task.failed"
    TIMEOUT = "task.timeout"
    OOM = "task.oom"
    CANCELLED = "task.cancelled"
    INTERRUPTED = "task.interrupted"
    DELETED = "task.deleted"

    @classmethod
    def for_status(cls, status: TaskStatus) -> EventType:
        """The event announcing that a task reached ``status``."""
        return _STATUS_EVENTS[status]


# the websocket's own message (never stored) to a client resuming with an id past the
# newest event (another history: the database was replaced): start over from its id
STREAM_RESET = "stream.reset"
# the websocket's own first message (never stored) to a client that asked for it
# (``announce=1``): the id its stream starts after, for a browser, which cannot read
# the handshake's header, to resume from
STREAM_START = "stream.start"
# the websocket handshake's header naming the event id its stream starts after
SINCE_HEADER = "X-Jupyter-Tasks-Since"

_STATUS_EVENTS = {
    TaskStatus.QUEUED: EventType.CREATED,
    TaskStatus.RUNNING: EventType.STARTED,
    TaskStatus.SUCCEEDED: EventType.SUCCEEDED,
    TaskStatus.FAILED: EventType.FAILED,
    TaskStatus.TIMEOUT: EventType.TIMEOUT,
    TaskStatus.OOM: EventType.OOM,
    TaskStatus.CANCELLED: EventType.CANCELLED,
    TaskStatus.INTERRUPTED: EventType.INTERRUPTED,
}

_id_lock = threading.Lock()
_last_id_ns = 0


# why an attempt began when its worker was lost (the work itself did not fail)
WORKER_LOST = "worker lost"
# why a job runs again from its start after its worker stopped cleanly mid-run (no
# attempt spent): its log says where the new run begins
WORKER_STOPPED = "worker stopped"
# how many times a job's worker may be lost before the job ends interrupted
MAX_LOST_ATTEMPTS = 3


# the bidirectional embeddings, overrides and isolates (a regex character class): in a
# task's text they reorder how it reads ("\u202eevil.exe" shows as "exe.live"), and
# right-to-left scripts need none of them
BIDI_CONTROLS = "\u202a-\u202e\u2066-\u2069"


def failure_reason(error: dict[str, Any] | None) -> str:
    """One line saying why an attempt failed, from its error JSON (``Type: message``)."""
    error = error or {}
    reason = str(error.get("message") or error.get("type") or "failed").strip()
    lines = reason.splitlines() or ["failed"]
    # a first line ending in ':' introduces what follows (a notebook's cell excerpt):
    # alone, the ':' dangles
    reason = lines[0].rstrip(":").rstrip() if len(lines) > 1 else lines[0]
    if error.get("type") and error.get("message"):
        reason = f"{error['type']}: {reason}"
    reason = reason if len(reason) <= 160 else reason[:159] + "…"
    # a plain text column: a file name os.listdir decoded from Latin-1 bytes holds lone
    # surrogates that no UTF-8 can (sqlite refused it, and the retry was never written)
    return storable_text(reason)


def new_task_id() -> str:
    """A 32-hex id whose first 16 digits are nanoseconds, so newer ids sort later.

    Within a process ids strictly increase; the last 16 digits are random so two
    processes never collide.
    """
    global _last_id_ns
    with _id_lock:
        now = max(time.time_ns(), _last_id_ns + 1)
        _last_id_ns = now
    # the module PRNG, not os.urandom (a system call per id): it is seeded from the
    # OS at start and reseeded in a forked child, so processes still never collide
    return f"{now:016x}{random.getrandbits(64):016x}"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def progress_number(value: Any) -> float | None:
    """A stored progress position as a finite float; None for anything else (a row of an
    older version or another tool may hold text, a bool, or an int past a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def progress_fraction(progress: Any) -> float | None:
    """How far a stored progress is, from 0 to 1; None without a numeric positive total
    and a numeric position (a position stored as none, from a NaN, is no 0%: the card and
    the panel show none, and so do the CLI and the dashboard)."""
    if not isinstance(progress, dict):
        return None
    total = progress_number(progress.get("total"))
    current = progress_number(progress.get("current"))
    if total is None or total <= 0 or current is None:
        return None
    return max(0.0, min(1.0, current / total))


def iso(ts: float | None) -> str | None:
    """An epoch timestamp as ISO 8601 UTC with milliseconds and a ``Z``, or None.

    Milliseconds are truncated with the same arithmetic as ``store.ISO_SQL``,
    which renders event snapshots inside SQLite, so both agree to the digit.
    """
    if ts is None:
        return None
    seconds = int(ts)
    millis = int((ts - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)
# JSONEncoder.encode builds a new C encoder on every call, a third of the cost of
# encoding a small payload; this one is built once. It is made without the
# circular-reference memo (shared between threads, a memo could be corrupted), so
# a cycle ends in the recursion limit, reported below as the ValueError json gives.
_make_c_encoder = getattr(json.encoder, "c_make_encoder", None)  # None without the C module
_C_ENCODE = None if _make_c_encoder is None else _make_c_encoder(
    None, _ENCODER.default, json.encoder.encode_basestring_ascii, None,
    _ENCODER.key_separator, _ENCODER.item_separator, True, False, True,
)


def dumps(value: Any) -> str:
    """Canonical compact JSON: stable key order so equal payloads hash equally."""
    if _C_ENCODE is None:
        return _ENCODER.encode(value)
    try:
        return "".join(_C_ENCODE(value, 0))
    except RecursionError:
        raise ValueError("Circular reference detected (or nesting too deep for JSON)") from None


_SCAN_ONCE = json.JSONDecoder().scan_once


def loads_stored(text: str) -> Any:
    """Decode JSON text that :func:`dumps` wrote (a column or a snapshot); raises like json.loads.

    ``json.loads`` spends three Python calls and a whitespace check around the
    C scanner, four times the scan itself for the small values rows hold.
    """
    try:
        value, end = _SCAN_ONCE(text, 0)
    except StopIteration:
        return json.loads(text)  # not JSON: let json say why
    if end != len(text):
        return json.loads(text)  # surrounding whitespace, or trailing data to complain about
    return value


# Columns stored as JSON text in the tasks table.
JSON_COLUMNS = frozenset(
    {"params", "spec", "result", "error", "progress", "origin", "confirmation",
     "resource_usage", "content_hashes", "process", "value_notes"}
)


TASK_ID_PATTERN = "^[0-9a-f]{32}$"


class JsonField(NamedTuple):
    """One key of the API's task JSON: the ``Task`` attribute it shows, how, and its schema.

    ``source`` says how the stored column becomes the JSON value: ``column`` as
    stored, ``json`` a JSON column decoded, ``time`` epoch seconds as ISO 8601 text
    (``iso``), ``flag`` 0/1 as a boolean, ``derived`` computed from other columns.
    ``schema`` is the value's OpenAPI schema; ``full`` keys are only in ``?view=full``.
    """

    key: str
    source: str
    schema: dict[str, Any]
    full: bool = False


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


_STR = {"type": "string"}
_ISO = {"type": "string", "format": "date-time"}
_OBJ = {"type": "object", "additionalProperties": True}
_ID = {"type": "string", "pattern": TASK_ID_PATTERN}
_COUNT = {"type": "integer", "minimum": 0}

# The task JSON, defined here once: Task.to_json renders it, the store's event
# snapshot SQL (store.SNAPSHOT_SQL) and the OpenAPI Task and TaskFull schemas are
# generated from it, and tests/engine/test_contracts.py holds types.ts to it.
TASK_JSON: tuple[JsonField, ...] = (
    JsonField("id", "column", _ID),
    JsonField("kind", "column", {"type": "string", "enum": [k.value for k in TaskKind]}),
    JsonField("mode", "column", {"type": "string", "enum": [m.value for m in TaskMode]}),
    JsonField("name", "column", _nullable(_STR)),
    JsonField("label", "column", _nullable(_STR)),
    JsonField("status", "column", {"type": "string", "enum": [s.value for s in TaskStatus]}),
    JsonField("params", "json", {"nullable": True}),
    JsonField("result", "json", {"nullable": True}),
    JsonField("error", "json", _nullable(_OBJ)),
    JsonField("progress", "json", _nullable(_OBJ)),
    JsonField("task_key", "column", _nullable(_STR)),
    JsonField("idempotency_key", "column", _nullable(_STR)),
    JsonField("queue", "column", _STR),
    JsonField("priority", "column", {"type": "integer"}),
    JsonField("owner", "column", _nullable(_STR)),
    JsonField("origin", "json", _nullable(_OBJ)),
    JsonField("attempts", "column", _COUNT),
    JsonField("max_retries", "column", {
        **_COUNT, "description": "retries of the work's own failures (a lost worker is "
                                 "retried apart, up to the server's bound)"}),
    JsonField("lost_attempts", "column", {
        **_COUNT, "description": "attempts retried because their worker was lost"}),
    JsonField("max_attempts", "derived", {
        "type": "integer", "minimum": 1,
        "description": "max_retries + 1 + lost_attempts: the M of 'attempt N of M'"}),
    JsonField("retry_reason", "column", _nullable({
        "type": "string", "description": "why the latest attempt after the first began: "
                                         "'worker lost' or the retried failure"})),
    JsonField("timeout", "column", _nullable({"type": "number"})),
    JsonField("parent_id", "column", _nullable(_ID)),
    JsonField("relationship", "column",
              _nullable({"type": "string", "enum": ["rerun", "fork", "scheduled"]})),
    JsonField("schedule_id", "column", _nullable({
        **_ID, "description": "the schedule that fired this job (kept after the schedule "
                              "is deleted)"})),
    JsonField("cancel_requested", "flag", {"type": "boolean"}),
    JsonField("confirmation", "json", _nullable(_OBJ)),
    JsonField("created_at", "time", _ISO),
    JsonField("started_at", "time", _nullable(_ISO)),
    JsonField("finished_at", "time", _nullable(_ISO)),
    JsonField("spec", "json", _nullable(_OBJ), full=True),
    JsonField("resource_usage", "json", _nullable(_OBJ), full=True),
    JsonField("content_hashes", "json", _nullable(_OBJ), full=True),
    JsonField("memory_limit_mb", "column", _nullable({"type": "integer"}), full=True),
    JsonField("worker_id", "column", _nullable(_STR), full=True),
    JsonField("updated_at", "time", _nullable(_ISO), full=True),
    JsonField("process", "json", _nullable({
        **_OBJ, "description": "where a running job's process group lives: pgid, pid, "
                               "host, started_at (and exit once it ended)"}), full=True),
    JsonField("value_notes", "json", _nullable({
        "type": "array", "items": _OBJ,
        "description": "what the storage rule changed in this task's values"}), full=True),
)


@dataclass(frozen=True)
class Task:
    """One run of some work, as stored. Immutable: changes go through the store."""

    id: str
    kind: str
    mode: str
    status: str
    name: str | None = None
    label: str | None = None
    params: dict[str, Any] | None = None
    spec: dict[str, Any] | None = None
    result: Any = None
    error: dict[str, Any] | None = None
    progress: dict[str, Any] | None = None
    task_key: str | None = None
    idempotency_key: str | None = None
    payload_hash: str | None = None
    queue: str = "default"
    priority: int = 0
    owner: str | None = None
    origin: dict[str, Any] | None = None
    attempts: int = 0
    max_retries: int = 0
    # attempts retried because their worker was lost: bounded apart from max_retries
    lost_attempts: int = 0
    # why the latest attempt after the first began: "worker lost" or the retried failure
    retry_reason: str | None = None
    timeout: float | None = None
    memory_limit_mb: int | None = None
    not_before: float | None = None
    parent_id: str | None = None
    relationship: str | None = None
    # the schedule that fired this job (kept as history when the schedule is deleted)
    schedule_id: str | None = None
    worker_id: str | None = None
    lease_expires_at: float | None = None
    cancel_requested: bool = False
    confirmation: dict[str, Any] | None = None
    callback_url: str | None = None
    resource_usage: dict[str, Any] | None = None
    content_hashes: dict[str, Any] | None = None
    # where a running job's work lives outside its worker: {"pgid", "pid", "host", "started_at"}
    process: dict[str, Any] | None = None
    # what the storage rule changed in this task's values (see jupyter_tasks.values)
    value_notes: list[dict[str, Any]] | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    updated_at: float = 0.0

    @property
    def status_enum(self) -> TaskStatus:
        """The status as a ``TaskStatus``."""
        return TaskStatus(self.status)

    @property
    def max_attempts(self) -> int:
        """Attempts the task may take as things stand: one, its retries, and each lost one."""
        return self.max_retries + 1 + self.lost_attempts

    @property
    def work_attempts(self) -> int:
        """Attempts not ended by a lost worker (the running one too); max_retries bounds them."""
        return self.attempts - self.lost_attempts

    @property
    def is_terminal(self) -> bool:
        """True once the task has ended."""
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_row(cls, row: Any) -> Task:
        """Build a task from a ``sqlite3.Row`` of the tasks table."""
        return _task_builder(tuple(row.keys()))(tuple(row))

    @classmethod
    def build(cls, **values: Any) -> Task:
        """A task from keyword fields, like ``Task(...)`` but five times faster (every submit).

        The frozen dataclass ``__init__`` sets each of the 40 fields through
        ``object.__setattr__``; this fills the instance dict once, with the same
        checks for unknown and missing fields.
        """
        if not values.keys() <= _TASK_FIELDS:
            raise TypeError(f"Task has no fields {sorted(values.keys() - _TASK_FIELDS)}")
        if not values.keys() >= _TASK_REQUIRED:
            raise TypeError(f"Task needs {sorted(_TASK_REQUIRED - values.keys())}")
        task = object.__new__(cls)
        attrs = task.__dict__
        attrs.update(_TASK_DEFAULTS)
        attrs.update(values)
        return task

    def evolve(self, **changes: Any) -> Task:
        """A copy with ``changes`` applied."""
        return replace(self, **changes)

    def to_json(self, *, full: bool = False) -> dict[str, Any]:
        """The API's task JSON (``TASK_JSON``); ``full`` adds the ``?view=full`` fields."""
        return _full_json(self) if full else _brief_json(self)


def _json_maker(json_fields: tuple[JsonField, ...]) -> Any:
    """A task → JSON dict function for these fields, written out as one dict display.

    Generated like dataclasses' own methods: a display of attribute reads costs
    a fifth less than any loop over the table, and lists are rendered per task.
    """
    items = ", ".join(f"{f.key!r}: iso(task.{f.key})" if f.source == "time"
                      else f"{f.key!r}: task.{f.key}" for f in json_fields)
    namespace: dict[str, Any] = {}
    exec(f"def to_json(task):\n    return {{{items}}}\n", {"iso": iso}, namespace)
    return namespace["to_json"]


_brief_json = _json_maker(tuple(f for f in TASK_JSON if not f.full))
_full_json = _json_maker(TASK_JSON)


_TASK_FIELDS = frozenset(f.name for f in fields(Task))
_TASK_DEFAULTS = {f.name: f.default for f in fields(Task) if f.default is not MISSING}
_TASK_REQUIRED = frozenset(f.name for f in fields(Task) if f.default is MISSING)


@functools.lru_cache(maxsize=32)
def _task_builder(columns: tuple[str, ...]) -> Any:
    """A fast row-tuple → Task function for one column order (decided once per query shape).

    Rows are decoded for every claim and state change (a claim's after its commit, so
    the write lock is not held for it), so this is a hot path: positional, no
    per-column branching on names.
    """
    keep = [(i, c) for i, c in enumerate(columns) if c in _TASK_FIELDS]
    json_at = [i for i, c in keep if c in JSON_COLUMNS]
    flag_at = [i for i, c in keep if c == "cancel_requested"]
    names = [c for _, c in keep]
    indexes = [i for i, _ in keep]
    missing = {f.name: f.default for f in fields(Task) if f.name not in names}
    required = [name for name, default in missing.items() if default is MISSING]
    if required:
        raise ValueError(f"rows without {required} cannot make a Task")
    loads = loads_stored
    new = object.__new__

    def build(values: tuple[Any, ...]) -> Task:
        if json_at or flag_at:
            values = list(values)
            for i in json_at:
                if values[i] is not None:
                    try:
                        values[i] = loads(values[i])
                    except (ValueError, RecursionError):
                        # a row written by something else: shown as text, never a crash
                        values[i] = loads_or_placeholder(values[i])
            for i in flag_at:
                values[i] = bool(values[i])
        # filled in directly: a frozen dataclass's __init__ sets its 40 fields one
        # object.__setattr__ at a time, four times slower (every claim decodes a row)
        task = new(Task)
        attrs = task.__dict__
        if missing:
            attrs.update(missing)
        attrs.update(zip(names, [values[i] for i in indexes], strict=True))
        return task

    return build


# the event a schedule's creation, edit, firing or deletion appends (task_id: the schedule id)
SCHEDULE_CHANGED = "schedule.changed"


@dataclass(frozen=True)
class Event:
    """A row of the change feed: what happened to which task, with its snapshot then.

    The snapshot stays JSON text until someone reads ``task``: most events are
    only forwarded (``to_json_text``) or looked at by type.
    """

    id: int
    type: str
    task_id: str
    ts: float
    owner: str | None = None
    task_json: str | None = None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Event:
        """An event from an ``(id, type, task_id, ts, owner, task)`` row of the events table."""
        # filled in directly, like Task rows: the change feed reads every event
        event = object.__new__(cls)
        attrs = event.__dict__
        attrs["id"], attrs["type"], attrs["task_id"], attrs["ts"], attrs["owner"], \
            attrs["task_json"] = row
        return event

    @functools.cached_property
    def task(self) -> dict[str, Any] | None:
        """The task as it was right after this event (the API's task JSON)."""
        if self.type == SCHEDULE_CHANGED:
            return None  # the snapshot column holds the schedule: see ``schedule``
        return loads_or_placeholder(self.task_json, loads_stored) if self.task_json else None

    @property
    def schedule(self) -> dict[str, Any] | None:
        """A ``schedule.changed`` event's schedule JSON (None once deleted, or for task events)."""
        if self.type != SCHEDULE_CHANGED or not self.task_json:
            return None
        return loads_or_placeholder(self.task_json, loads_stored)

    def to_json(self) -> dict[str, Any]:
        """The websocket message for this event."""
        if self.type == SCHEDULE_CHANGED:
            # task_id holds the schedule id; task stays null so task views skip it
            return {"id": self.id, "type": self.type, "schedule_id": self.task_id,
                    "schedule": self.schedule, "ts": iso(self.ts), "task_id": None,
                    "task": None}
        return {
            "id": self.id,
            "type": self.type,
            "task_id": self.task_id,
            "ts": iso(self.ts),
            "task": self.task,
        }

    def to_json_text(self) -> str:
        """``to_json`` serialized, splicing the stored snapshot instead of re-encoding it."""
        head = json.dumps({"id": self.id, "type": self.type, "task_id": self.task_id,
                           "ts": iso(self.ts)})
        return f'{head[:-1]}, "task": {self.task_json or "null"}}}'


@dataclass(frozen=True)
class LogEntry:
    """One chunk of a task's output."""

    seq: int
    ts: float
    stream: str
    text: str

    def to_json(self) -> dict[str, Any]:
        """The API's log entry JSON."""
        return {"seq": self.seq, "ts": iso(self.ts), "stream": self.stream, "text": self.text}


@dataclass(frozen=True)
class LogTailWrite:
    """A flush of a log's rolling tail (past its budget): new rows in, the oldest out.

    ``drop`` holds the seqs of the task's oldest tail rows to delete.
    """

    task_id: str
    entries: list[tuple[float, str, str]]
    drop: tuple[int, ...] = ()


@dataclass(frozen=True)
class Artifact:
    """A file a task produced, kept beside the database."""

    task_id: str
    name: str
    size: int
    sha256: str
    content_type: str
    created_at: float

    def to_json(self) -> dict[str, Any]:
        """The API's artifact JSON."""
        return {
            "name": self.name,
            "size": self.size,
            "sha256": self.sha256,
            "content_type": self.content_type,
            "created_at": iso(self.created_at),
        }


def worker_task_names(stored: Any) -> list[str] | None:
    """The task names a worker row holds (its JSON list); None when unknown (a row from
    before migration 18, an unreadable value): such a worker may have any."""
    try:
        names = json.loads(stored) if isinstance(stored, str) else None
    except ValueError:
        return None
    if isinstance(names, list) and all(isinstance(n, str) for n in names):
        return names
    return None


@dataclass(frozen=True)
class WorkerInfo:
    """A process that runs tasks and proves it is alive by heartbeat."""

    id: str
    kind: str
    pid: int
    host: str
    started_at: float
    heartbeat_at: float
    pid_started_at: float | None = None
    queues: list[str] = field(default_factory=list)
    stopped_at: float | None = None
    # jobs of each queue it runs at once; empty for a worker row written before migration 16
    slots: dict[str, int] = field(default_factory=dict)
    # the registered tasks it claims by name; None for a row written before migration 18
    tasks: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        """The API's worker JSON."""
        return {
            "id": self.id,
            "kind": self.kind,
            "pid": self.pid,
            "host": self.host,
            "queues": self.queues,
            "heartbeat_at": iso(self.heartbeat_at),
        }


def slots_by_queue(workers: Iterable[WorkerInfo]) -> dict[str, int]:
    """Each queue's capacity: the slots every one of these workers gives it, summed."""
    total: dict[str, int] = {}
    for worker in workers:
        for queue, slots in worker.slots.items():
            total[queue] = total.get(queue, 0) + slots
    return total
