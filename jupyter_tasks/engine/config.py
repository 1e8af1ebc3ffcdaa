"""``ManagerConfig``: the settings of one ``TaskManager``, checked once."""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .. import callbacks
from ..models import MAX_LOST_ATTEMPTS
from ..paths import default_db_path
from .options import check_queue_slots

# characters one attempt's log keeps as it goes, unless configured (see max_log_chars)
DEFAULT_MAX_LOG_CHARS = 10_000_000


def login_name() -> str:
    """The user's login name, or ``uid-N`` where there is none."""
    try:
        return getpass.getuser()
    except Exception:
        return f"uid-{os.getuid()}"


@dataclass
class ManagerConfig:
    """What a ``TaskManager`` is told; each keyword of ``TaskManager(...)`` is one field."""

    owner: str | None = None
    origin: Mapping[str, Any] | None = None
    worker_kind: str = "process"
    queues: Mapping[str, int] | None = None
    queue_limits: Mapping[str, int] | None = None
    flush_interval: float = 0.2
    # the fallback: how often the event feed re-reads the database (and, at least every
    # 0.5 s, the job loops claim) in case a wake-up was missed or is unavailable
    poll_interval: float = 0.02
    # wake other processes on this database at once after each commit (a datagram to
    # each one's socket in <db>.wake/), instead of leaving them to their next poll
    wake_bell: bool = True
    heartbeat_interval: float = 2.0
    lease_seconds: float = 30.0
    reaper_interval: float = 1.0
    retry_base_delay: float = 1.0
    retry_max_delay: float = 300.0
    # times a job's worker may be lost (requeued whatever max_retries says) before
    # the job ends interrupted: work that kills its worker must not loop forever
    max_lost_attempts: int = MAX_LOST_ATTEMPTS
    callback_allowlist: list[str] | None = None
    runs_background: bool = True
    claim_batch: int = 8
    make_default: bool = True
    # tasks per progress/log transaction (None: all in one); smaller batches let other
    # database work (state changes, the event tail) run between them
    flush_batch: int | None = None
    # how long a write waits for another process's lock before StoreBusy (503)
    busy_timeout: float = 30.0
    # False for tools that look and steer (the dashboard, the CLI): no worker row, no
    # heartbeat, no reaper, no job queues; requests they write are carried out by workers
    as_worker: bool = True
    create_db: bool = True  # False: a missing database file is an error, not created
    # characters one attempt's log keeps as it goes; past them only its last tenth is
    # kept (a task printing in a loop must not fill the disk, nor the memory meanwhile)
    max_log_chars: int = DEFAULT_MAX_LOG_CHARS
    db_path: str = field(default_factory=lambda: str(default_db_path()))

    def __post_init__(self) -> None:
        self.db_path = os.fspath(self.db_path)
        self.owner = self.owner or os.environ.get("JUPYTER_TASKS_OWNER") or login_name()
        self.origin = dict(self.origin or {"type": "python"})
        self.queues = dict(self.queues or {})
        self.queue_limits = dict(self.queue_limits or {})
        check_queue_slots(self.queues)  # a negative count would start a worker that runs nothing
        if not (type(self.max_log_chars) is int and self.max_log_chars > 0):
            raise ValueError(f"max_log_chars must be a positive integer, not "
                             f"{self.max_log_chars!r}")
        check_queue_slots(self.queue_limits, "queue_limits")
        self.callback_allowlist = list(callbacks.LOOPBACK_HOSTS if self.callback_allowlist
                                       is None else self.callback_allowlist)
        callbacks.CallbackPolicy.from_entries(self.callback_allowlist)  # a bad entry fails here
        if self.as_worker and self.lease_seconds <= self.heartbeat_interval:
            # a lease that runs out between two heartbeats lets a reaper (this one
            # included) put back jobs this worker is still running: they would run twice
            raise ValueError(f"lease_seconds ({self.lease_seconds}) must be longer than "
                             f"heartbeat_interval ({self.heartbeat_interval})")
        if not self.as_worker and (self.queues or self.runs_background):
            raise ValueError("a manager that is no worker runs nothing: give no queues and "
                             "runs_background=False")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The names of the settings (the keywords ``TaskManager`` accepts)."""
        return tuple(f.name for f in fields(cls))
