"""The queue overview: per queue, queued / running / workers, recent throughput, failures."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Sparkline, Static

BUCKET_SECONDS = 10.0
BUCKETS = 30  # five minutes of history
FAILED = frozenset({"failed", "timeout", "oom", "interrupted"})
TERMINAL = frozenset({"succeeded", "cancelled"}) | FAILED


class Throughput:
    """Finished tasks per ``BUCKET_SECONDS`` over the last ``BUCKETS`` buckets, per queue."""

    def __init__(self) -> None:
        self.finished: dict[str, deque[float]] = {}
        self.failures: dict[str, deque[float]] = {}

    def record(self, queue: str, status: str, ts: float) -> None:
        if status not in TERMINAL:
            return
        self.finished.setdefault(queue, deque(maxlen=50_000)).append(ts)
        if status in FAILED:
            self.failures.setdefault(queue, deque(maxlen=50_000)).append(ts)

    def series(self, queue: str, now: float | None = None) -> list[float]:
        now = now or time.time()
        start = now - BUCKETS * BUCKET_SECONDS
        counts = [0.0] * BUCKETS
        for ts in self.finished.get(queue, ()):
            if ts >= start:
                counts[min(BUCKETS - 1, int((ts - start) // BUCKET_SECONDS))] += 1
        return counts

    def recent_failures(self, queue: str, now: float | None = None) -> int:
        start = (now or time.time()) - BUCKETS * BUCKET_SECONDS
        return sum(1 for ts in self.failures.get(queue, ()) if ts >= start)


class QueueRow(Horizontal):
    """One queue: its counts and a throughput sparkline."""

    def __init__(self, queue: str) -> None:
        super().__init__(classes="queue-row")
        self.queue = queue

        self.counts = Static("", classes="queue-counts")
        self.spark = Sparkline([0.0] * BUCKETS, summary_function=max, classes="queue-spark")

    def compose(self) -> ComposeResult:
        yield Label(self.queue, classes="queue-name")
        yield self.counts
        yield self.spark

    def show(self, counts: dict[str, Any], series: list[float], failures: int) -> None:
        workers = counts.get("max_workers")
        workers_text = "?" if workers is None else str(workers)
        per_min = sum(series[-6:])  # the last minute
        text = (f"queued [b]{counts.get('queued', 0)}[/b]  running [b]{counts.get('running', 0)}"
                f"[/b]  workers {workers_text}  done/min {per_min:.0f}  "
                f"failures {'[red]' if failures else ''}{failures}{'[/]' if failures else ''}")
        self.counts.update(text)
        self.spark.data = series


class QueueOverview(Vertical):
    """All queues, refreshed from ``stats`` and live terminal events."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.throughput = Throughput()
        self.stats: dict[str, Any] = {"queues": {}, "statuses": {}, "workers": []}
        self.totals = Static("", id="totals")

    def compose(self) -> ComposeResult:
        yield self.totals

    def record(self, task: dict[str, Any], ts: float | None = None) -> None:
        """Count a finished task (from an event or the start-up sample)."""
        self.throughput.record(task.get("queue") or "default", task.get("status") or "",
                               ts or time.time())

    def update_stats(self, stats: dict[str, Any]) -> None:
        self.stats = stats
        self.redraw()

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
        for name, row in rows.items():
            if row.is_mounted:
                row.show(queues.get(name, {}), self.throughput.series(name, now),
                         self.throughput.recent_failures(name, now))
        statuses = self.stats.get("statuses") or {}
        total = sum(statuses.values())
        workers = len(self.stats.get("workers") or [])
        failed = sum(statuses.get(s, 0) for s in FAILED)
        self.totals.update(
            f"[b]{total:,}[/b] tasks  ·  running {statuses.get('running', 0)}  ·  queued "
            f"{statuses.get('queued', 0)}  ·  failed {failed:,}  ·  live workers {workers}"
        )

    @property
    def total_tasks(self) -> int:
        return sum((self.stats.get("statuses") or {}).values())
