"""Turning task JSON into the short strings the table and panes show."""

from __future__ import annotations

import json
import math
import re
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
# a progress message's characters on a status line (the engine keeps up to 1,000)
MESSAGE_CHARS = 200


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


def late_cancel_text(task: dict[str, Any]) -> str:
    """Said of a task that ended on its own though a cancel was asked: it came too late."""
    # a cancel that reaches work once it has ended leaves it its own end (the engine
    # keeps a result whose side effects exist), with cancel_requested still set
    if task.get("cancel_requested") and task.get("status") in ("succeeded", "failed"):
        return "the cancel came after it had ended"
    return ""


def status_text(task: dict[str, Any]) -> Text:
    """The status label, coloured."""
    return Text(status_label(task), style=STATUS_STYLES.get(task.get("status") or "", ""),
                no_wrap=True)


def progress_fraction(progress: Any) -> float | None:
    """How far a stored progress is, 0 to 1, None without a numeric positive total and
    a numeric position.

    The rule of ``jupyter_tasks.models.progress_fraction`` (a test holds them to the same
    answers), here so the first frame does not wait for the engine package's import.
    """
    if not isinstance(progress, dict):
        return None
    total, current = _number(progress.get("total")), _number(progress.get("current"))
    if total is None or total <= 0 or current is None:
        return None
    return max(0.0, min(1.0, current / total))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def progress_text(task: dict[str, Any], width: int = BAR_WIDTH) -> str:
    """``█████░░░░ 52%`` for a known total, the count alone otherwise; nothing while
    queued (a job back in its queue keeps its last attempt's progress in the row, and its
    next attempt starts from nothing: the panel shows no bar either)."""
    if task.get("status") == "queued":
        return ""
    progress = task.get("progress")
    fraction = progress_fraction(progress)
    if fraction is not None:
        filled = round(fraction * width)
        return f"{'█' * filled}{'░' * (width - filled)} {fraction * 100:3.0f}%"
    current = progress.get("current") if isinstance(progress, dict) else None
    if current is not None:
        # a stored row may hold anything: its text, on one line, never a crash
        return shown_text(str(current))[:width + 5]
    if task.get("status") == "succeeded":
        return f"{'█' * width} 100%"
    return ""


def progress_message(task: dict[str, Any]) -> str:
    """The progress message for one status line: its first ``MESSAGE_CHARS``; none while
    queued (its last attempt's, as ``progress_text`` shows no bar then)."""
    if task.get("status") == "queued":
        return ""
    message = shown_text((task.get("progress") or {}).get("message") or "")
    return message if len(message) <= MESSAGE_CHARS else message[:MESSAGE_CHARS - 1] + "…"


def origin_text(task: dict[str, Any]) -> str:
    """Where a task came from: its notebook's path, else the origin type."""
    origin = task.get("origin") or {}
    for key in ("notebook", "notebook_path", "path"):
        if origin.get(key):
            return str(origin[key])
    return str(origin.get("type") or "")


def local_time(value: str | float | None, now: float | None = None) -> str:
    """An API timestamp (UTC) in local time, as short as is unambiguous.

    ``14:03:22`` today, ``Mar 04 14:03`` earlier this year, ``2024-03-04 14:03``
    before that; ``""`` for none.
    """
    ts = parse_ts(value) if isinstance(value, str) or value is None else float(value)
    if ts is None:
        return ""
    moment = datetime.fromtimestamp(ts)
    today = datetime.fromtimestamp(now if now is not None else time.time())
    if moment.date() == today.date():
        return moment.strftime("%H:%M:%S")
    if moment.year == today.year:
        return moment.strftime("%b %d %H:%M")
    return moment.strftime("%Y-%m-%d %H:%M")


def attempt_text(task: dict[str, Any]) -> str:
    """``attempt 2 of 3 (retried: worker lost) · 1 lost worker``: where its retries stand."""
    attempts = int(task.get("attempts") or 0)
    bound = task.get("max_attempts")
    text = f"attempt {attempts}" + (f" of {bound}" if bound else "")
    if task.get("retry_reason"):  # set once a retry was decided (the task may be queued again)
        # a failure's first line, the task's own text: escaped (raw, it cleared the screen)
        text += f" (retried: {shown_text(task['retry_reason'])})"
    lost = int(task.get("lost_attempts") or 0)
    if lost > 0:
        text += f" · {lost} lost worker{'' if lost == 1 else 's'}"
    return text


def started_text(task: dict[str, Any]) -> str:
    """Local start time (the creation time while queued)."""
    return local_time(task.get("started_at") or task.get("created_at"))


def duration_seconds(task: dict[str, Any], now: float | None = None) -> float | None:
    """Run time so far (or in total once finished) in seconds; None before it starts."""
    start = parse_ts(task.get("started_at"))
    if start is None:
        return None
    end = parse_ts(task.get("finished_at")) or (now or time.time())
    return max(0.0, end - start)


def duration_text(task: dict[str, Any], now: float | None = None) -> str:
    """Run time so far (or in total once finished)."""
    seconds = duration_seconds(task, now)
    return "" if seconds is None else human_seconds(seconds)


def human_seconds(seconds: float) -> str:
    """The one duration format of the dashboard, two units at most, a space before each unit.

    ``9 ms``, ``850 ms``, ``8.8 s``, ``42.0 s``, ``1 m 22 s``, ``2 h 07 m``, ``3 d 04 h``.
    """
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} m {whole % 60:02d} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} m"
    return f"{whole // 86400} d {whole % 86400 // 3600:02d} h"


def short_id(task_id: str) -> str:
    """The distinctive end of an id (its first half is a timestamp shared by neighbours)."""
    return "…" + task_id[-10:]


# A terminal's escape sequences: CSI (colors, cursor moves, "clear screen"), OSC
# (window title, hyperlinks; ended by BEL or ESC \), and the short ones (charset,
# keypad). A task's text may hold any of them, and Rich passes ESC through: a log line
# set the terminal's title and wiped the screen at every repaint
ESCAPE_SEQUENCE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[()*+-./][ -~]|[ -~])")
# the other control characters and the bidi overrides that reorder a line
# (jupyter_tasks.models.BIDI_CONTROLS), shown as their escapes, as the CLI's printable()
# shows them; a copy, not an import: this module loads before the engine package, which
# the dashboard imports on a thread while its first frame is already on screen
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def shown_text(text: Any, keep: str = "") -> str:
    """A task's own text (label, message, traceback, question) as the dashboard shows it:
    every control character but those in ``keep`` as its escape (``\\x1b``), so none
    reaches the terminal."""
    return _CONTROL.sub(lambda m: m.group() if m.group() in keep else _escaped(m), str(text))


def log_text(text: str) -> str:
    """A log chunk for the log pane: escape sequences dropped (a colored line reads as
    its text), other controls as their escapes; newlines, ``\\r`` and tabs kept."""
    return shown_text(ESCAPE_SEQUENCE.sub("", text), keep="\n\r\t")


def label_text(task: dict[str, Any]) -> str:
    """The human label, falling back to the registered name or kind."""
    return shown_text(task.get("label") or task.get("name") or task.get("kind") or "")


# a notification names a task in a line: a 3,000-character label made an 18-line toast
NAME_CELLS = 60


def named(text: Any, ident: str) -> str:
    """How a notification names a task or schedule: its text escaped and cut to a line,
    then the end of its id."""
    return f"{cut_to_cells(shown_text(text), NAME_CELLS)} ({short_id(ident)})"


def cut_to_cells(shown: str, cells: int) -> str:
    """``shown`` (already escaped) cut to ``cells`` terminal cells, with an ellipsis."""
    if cell_len(shown) > cells:
        return set_cell_size(shown, cells - 1) + "…"
    return shown


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


def work_text(task: dict[str, Any]) -> tuple[str, str]:
    """(section title, plain text) of what a task runs, from its spec (the full view).

    A subprocess shows its argv (as a JSON array: exact, no shell quoting to undo),
    a notebook its path and parameters, code its source; a registered function its
    params.
    """
    spec = task.get("spec") or {}
    kind = task.get("kind")
    if kind == "subprocess" and spec.get("command") is not None:
        lines = ["argv " + json.dumps(spec["command"])]
        if spec.get("cwd"):
            lines.append(f"cwd  {spec['cwd']}")
        if spec.get("env"):
            lines.append("env  " + " ".join(f"{k}=…" for k in sorted(spec["env"])))
        return "command", "\n".join(lines)
    if kind == "notebook" and spec.get("notebook"):
        return "notebook", f"{shown_text(spec['notebook'])}\nparameters " + pretty_json(
            spec.get("parameters") or task.get("params") or {})
    if kind in ("code", "cell") and (spec.get("code") or spec.get("source")):
        return kind, shown_text(spec.get("code") or spec.get("source"), keep="\n\t")
    return "params", pretty_json(task.get("params"))


def pretty_json(value: Any, *, sort_keys: bool = True) -> str:
    """Indented JSON for the detail pane and the fork dialog: text as it reads (世界, not
    \\u4e16\\u754c), but each control character as its JSON escape (still JSON, and
    none reaches the terminal)."""
    text = json.dumps(value, indent=2, sort_keys=sort_keys, default=str, ensure_ascii=False)
    return _CONTROL.sub(lambda m: m.group() if m.group() == "\n" else
                        f"\\u{ord(m.group()):04x}", text)


def typed_lines(text: str, carried: tuple[str, int] | None = None
                ) -> tuple[list[tuple[str, int]], bool]:
    """The lines of a log chunk as a terminal types them, each (text, cursor column); and
    whether the last one is unfinished (no newline after it).

    A carriage return goes back to the line's start and what follows overwrites it (a
    progress bar redrawn in place). ``carried`` is the last chunk's unfinished line:
    the chunk's first line carries it on.
    """
    pieces = text.replace("\r\n", "\n").split("\n")
    ended = pieces[-1] == ""
    if ended:
        pieces.pop()
    typed = []
    for at, piece in enumerate(pieces):
        line, col = carried if at == 0 and carried is not None else ("", 0)
        for index, part in enumerate(piece.split("\r")):
            if index:
                col = 0
            line = line[:col] + part + line[col + len(part):]
            col += len(part)
        typed.append((line, col))
    return typed, bool(pieces) and not ended


def terminal_lines(text: str) -> list[str]:
    """The lines of a log chunk as a terminal shows them (see ``typed_lines``)."""
    return [line for line, _ in typed_lines(text)[0]]

