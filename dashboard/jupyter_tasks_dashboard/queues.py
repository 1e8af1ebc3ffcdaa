"""The queue overview: per queue, queued / running / slots, recent throughput and endings.

Every count follows the table's filter: the totals line and the queue rows come from
one ``count(filters)`` answer, the recent endings from the events that match it. Each
terminal status is shown as itself (a timeout is not a failure).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import Label, Sparkline, Static

from .formatting import cut_to_cells, shown_text
from .sources import Filters

QUEUE_NAME_CELLS = 14  # the .queue-name width in dashboard.tcss

BUCKET_SECONDS = 10.0
BUCKETS = 30  # five minutes of history
WINDOW = BUCKET_SECONDS * BUCKETS
TERMINAL = ("succeeded", "failed", "timeout", "oom", "cancelled", "interrupted")
BAD = ("failed", "timeout", "oom", "interrupted")  # shown in red, each as itself
ORDER = ("running", "queued", *TERMINAL)


class Throughput:
    """Tasks that ended in the last ``WINDOW`` seconds, per queue, filterable."""

    def __init__(self) -> None:
        self.finished: dict[str, deque[tuple[float, dict[str, Any]]]] = {}
        self.filters = Filters()

    def record(self, queue: str, task: dict[str, Any], ts: float) -> None:
        if task.get("status") not in TERMINAL:
            return
        ends = self.finished.setdefault(queue, deque(maxlen=50_000))
        ends.append((ts, task))
        horizon = time.time() - WINDOW
        while ends and ends[0][0] < horizon:
            ends.popleft()

    def _recent(self, queue: str, now: float) -> list[tuple[float, dict[str, Any]]]:
        start = now - WINDOW
        matches = self.filters.matches
        return [(ts, t) for ts, t in self.finished.get(queue, ()) if ts >= start and matches(t)]

    def series(self, queue: str, now: float | None = None) -> list[float]:
        now = now or time.time()
        start = now - WINDOW
        counts = [0.0] * BUCKETS
        for ts, _ in self._recent(queue, now):
            counts[min(BUCKETS - 1, int((ts - start) // BUCKET_SECONDS))] += 1
        return counts

    def recent_endings(self, queue: str, now: float | None = None) -> dict[str, int]:
        """How many of the recent endings were each bad status (failed, timeout, ...)."""
        counts = dict.fromkeys(BAD, 0)
        for _, task in self._recent(queue, now or time.time()):
            status = task.get("status")
            if status in counts:
                counts[status] += 1
        return counts


class QueueRow(Horizontal):
    """One queue: its counts and a throughput sparkline."""

    def __init__(self, queue: str) -> None:
        super().__init__(classes="queue-row")
        self.queue = queue

        self.counts = Static("", classes="queue-counts")
        self.spark = Sparkline([0.0] * BUCKETS, summary_function=max, classes="queue-spark")

    def compose(self) -> ComposeResult:
        # cut to leave a cell before the counts (a long name ran into them), as text: a
        # queue is named by whoever submits, so "[b]" in it is no markup
        yield Label(Content(cut_to_cells(shown_text(self.queue), QUEUE_NAME_CELLS - 1)),
                    classes="queue-name")
        yield self.counts
        yield self.spark

    def show(self, counts: dict[str, Any], series: list[float], endings: dict[str, int]) -> None:
        # how many of its jobs the live workers run at once (unknown: "?")
        slots = counts.get("max_workers")
        slots_text = "?" if slots is None else str(slots)
        per_min = sum(series[-6:])  # the last minute
        text = (f"queued [b]{counts.get('queued', 0)}[/b]  running [b]{counts.get('running', 0)}"
                f"[/b]  slots {slots_text}  ended/min {per_min:.0f}")
        bad = [f"[red]{status} {n}[/]" for status, n in endings.items() if n]
        text += "  last 5 min: " + ("  ".join(bad) if bad else "no failures")
        self.counts.update(text)
        self.spark.data = series


class QueueOverview(Vertical):
    """All queues, refreshed from ``stats`` and live terminal events."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.throughput = Throughput()
        self.stats: dict[str, Any] = {"queues": {}, "statuses": {}, "workers": [], "exact": True}
        self.filters = Filters()
        self.counted = False  # a count for the current filter has arrived
        self.stale: str | None = None  # why the last count failed: what is shown is older
        self.totals = Static("counting…", id="totals")

    def compose(self) -> ComposeResult:
        yield self.totals

    def record(self, task: dict[str, Any], ts: float | None = None) -> None:
        """Count a finished task (from an event or the start-up sample)."""
        self.throughput.record(task.get("queue") or "default", task, ts or time.time())

    def set_filters(self, filters: Filters) -> None:
        """The table's filter changed: counts are stale until the next ``update_stats``."""
        self.filters = self.throughput.filters = filters
        self.counted = False
        self.redraw()

    def update_stats(self, stats: dict[str, Any], filters: Filters | None = None) -> None:
        """A count made for ``filters`` (ignored if the filter changed since it was asked)."""
        if filters is not None and filters != self.filters:
            return
        self.stats = stats
        self.counted = True
        self.stale = None
        self.redraw()

    def count_failed(self, why: str) -> bool:
        """The last count failed: the totals say that what they show is from before, and why.

        Whether this failure is new (not the one the totals already say).
        """
        why = why.split(";", 1)[0]  # the cause; the notification says the rest
        if why == self.stale:
            return False
        self.stale = why
        self.redraw()
        return True

    def redraw(self) -> None:
        if not self.is_attached:
            return
        now = time.time()
        queues = self.stats.get("queues") or {}
        names = sorted(set(queues) | set(self.throughput.finished))
        rows = {row.queue: row for row in self.query(QueueRow)}
        mounted = False
        for name in names:
            if name not in rows:
                rows[name] = QueueRow(name)
                self.mount(rows[name])
                mounted = True
        if mounted:
            self.call_after_refresh(self.redraw)
        # a count covers every queue with work or a live worker serving it: a queue it
        # leaves out (known from recent endings only) has nothing there and no slots
        missing = {"queued": 0, "running": 0, "max_workers": 0} if self.counted else {}
        for name, row in rows.items():
            if row.is_mounted:
                row.show(queues.get(name, missing), self.throughput.series(name, now),
                         self.throughput.recent_endings(name, now))
        self.totals.update(self.totals_text())

    def totals_text(self) -> str:
        """``100,000 tasks · running 3 · queued 0 · succeeded … · timeout …`` (markup)."""
        if not self.counted:
            return "[dim]counting…[/dim]"
        statuses = self.stats.get("statuses") or {}
        noun = "matching" if self.filters.active else \
            ("task" if self.total_tasks == 1 and self.stats.get("exact", True) else "tasks")
        parts = [f"[b]{self.total_text()}[/b] {noun}"]
        if self.stale:  # said first, where a terminal of any width shows it
            parts.insert(0, "[red b]counts from before[/]")
        for status in ORDER:
            count = statuses.get(status, 0)
            if count or status in ("running", "queued"):
                text = f"{status} {count:,}"
                parts.append(f"[red]{text}[/]" if status in BAD else text)
        parts.append(f"live workers {len(self.stats.get('workers') or [])}")
        if self.stale:  # the counts could not be read since (a file deleted, a server gone)
            parts.append(f"[red]not counted since: {escape(self.stale)}[/]")
        return "  ·  ".join(parts)

    def total_text(self) -> str:
        """The count of tasks, ``≥`` when the count stopped early."""
        prefix = "" if self.stats.get("exact", True) else "≥ "
        return f"{prefix}{self.total_tasks:,}"

    @property
    def total_tasks(self) -> int:
        return sum((self.stats.get("statuses") or {}).values())
