"""Turning task JSON into the short strings the table and panes show."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.text import Text

STATUS_STYLES = {
    "queued": "grey62",
    "running": "bold cyan",
    "succeeded": "green",
    "failed": "bold red",
    "timeout": "red",
    "oom": "red",
    "cancelled": "yellow",
    "interrupted": "magenta",
}
BAR_WIDTH = 10


def parse_ts(value: str | None) -> float | None:
    """An API timestamp (ISO 8601 UTC) as epoch seconds."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def status_label(task: dict[str, Any]) -> str:
    """The status word; a pending question or cancel request is marked."""
    status = task.get("status") or "?"
    confirmation = task.get("confirmation") or {}
    if status == "running" and confirmation and confirmation.get("answer") is None:
        return "asking?"
    if task.get("cancel_requested") and status in ("queued", "running"):
        return f"{status}…✗"
    return status


def status_text(task: dict[str, Any]) -> Text:
    """The status label, coloured."""
    return Text(status_label(task), style=STATUS_STYLES.get(task.get("status") or "", ""),
                no_wrap=True)


def progress_text(task: dict[str, Any], width: int = BAR_WIDTH) -> str:
    """``█████░░░░ 52%`` for a known total, the count alone otherwise."""
    progress = task.get("progress") or {}
    current = progress.get("current")
    total = progress.get("total")
    if total:
        fraction = max(0.0, min(1.0, (current or 0) / total))
        filled = round(fraction * width)
        return f"{'█' * filled}{'░' * (width - filled)} {fraction * 100:3.0f}%"
    if current is not None:
        return f"{current}"
    if task.get("status") == "succeeded":
        return f"{'█' * width} 100%"
    return ""


def origin_text(task: dict[str, Any]) -> str:
    """Where a task came from: its notebook's path, else the origin type."""
    origin = task.get("origin") or {}
    for key in ("notebook", "notebook_path", "path"):
        if origin.get(key):
            return str(origin[key])
    return str(origin.get("type") or "")


def started_text(task: dict[str, Any]) -> str:
    """Local start time (creation time, dimmed in the table, while queued)."""
    ts = parse_ts(task.get("started_at")) or parse_ts(task.get("created_at"))
    if ts is None:
        return ""
    moment = datetime.fromtimestamp(ts)
    if time.time() - ts < 86400:
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M")


def duration_text(task: dict[str, Any], now: float | None = None) -> str:
    """Run time so far (or in total once finished)."""
    start = parse_ts(task.get("started_at"))
    if start is None:
        return ""
    end = parse_ts(task.get("finished_at")) or (now or time.time())
    return human_seconds(max(0.0, end - start))


def human_seconds(seconds: float) -> str:
    """``850ms``, ``12.3s``, ``4m05s``, ``2h07m``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def short_id(task_id: str) -> str:
    """The distinctive end of an id (its first half is a timestamp shared by neighbours)."""
    return "…" + task_id[-10:]


def label_text(task: dict[str, Any]) -> str:
    """The human label, falling back to the registered name or kind."""
    return task.get("label") or task.get("name") or task.get("kind") or ""


def row_cells(task: dict[str, Any]) -> tuple[str, ...]:
    """The table's cells for one task, in column order, as plain text."""
    return (
        short_id(task["id"]),
        label_text(task)[:40],
        status_label(task),
        progress_text(task),
        task.get("owner") or "",
        origin_text(task)[:30],
        started_text(task),
        duration_text(task),
    )


def fit_cell(text: str, width: int) -> str:
    """``text`` padded or cut (with an ellipsis) to exactly ``width`` terminal cells."""
    if text.isascii() and text.isprintable():
        if len(text) <= width:
            return text.ljust(width)
        return text[: width - 1] + "…"
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    if cell_len(text) <= width:
        return set_cell_size(text, width)
    return set_cell_size(text, width - 1) + "…"


def pretty_json(value: Any) -> str:
    """Indented JSON for the detail pane."""
    return json.dumps(value, indent=2, sort_keys=True, default=str)
