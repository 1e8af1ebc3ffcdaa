"""The detail pane: one task's params, result, error, live log tail, lineage and artifacts."""

from __future__ import annotations

import asyncio
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Label, Static, Tree

from .formatting import (
    attempt_text,
    duration_text,
    label_text,
    late_cancel_text,
    local_time,
    log_text,
    origin_text,
    pretty_json,
    progress_message,
    progress_text,
    short_id,
    shown_text,
    status_text,
    typed_lines,
    work_text,
)
from .log_tail import LogTail
from .sources import Details

LOG_LINES = 300
NONE = Content.styled("none", "dim")


# what a message or a question keeps of its controls: its line breaks and tabs
LINE_ENDS = "\n\t"

class DetailPane(VerticalScroll):
    """Everything about the selected task; ``show`` for a new task, ``patch`` for live changes.

    Its sections are mounted by ``build()``, which the app calls once the first
    page of the table is on screen: nothing in here is needed for that first
    paint, and mounting a log, a tree and a dozen statics is a good part of
    Textual's start-up cost. ``show``/``patch``/``append_logs`` before then are
    kept (the latest only) and applied when the sections exist.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.task_id: str | None = None
        self.current_task: dict[str, Any] | None = None
        # the full read's notes: event snapshots carry none, the task's stay until re-read
        self.notes: list[dict[str, Any]] = []
        self.log_next = 0
        # the last log line shown, if its chunk stopped mid-line: (text, column, prefix)
        self.log_open: tuple[str, int, str] | None = None
        self.built = False
        self._build_lock = asyncio.Lock()
        self._waiting: Details | None = None
        self.summary = Static("Select a task", id="summary")

    def compose(self) -> ComposeResult:
        yield self.summary

    async def build(self) -> None:
        """Mount every section (once); then apply what arrived meanwhile."""
        async with self._build_lock:
            if not self.built:
                await self._mount_sections()
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            self.show(waiting)

    async def _mount_sections(self) -> None:
        # kept as attributes: a query would fail while the app tears the pane down
        self.question = Static("", id="confirmation")
        self.params_title = Label("params", classes="section", id="params-title")
        self.params = Static("", id="params")
        self.result = Static("", id="result")
        self.value_notes = Static("", id="value-notes")
        self.error = Static("", id="error")
        self.log_view = LogTail(id="log", max_lines=LOG_LINES, auto_scroll=True)
        self.lineage = Tree("lineage", id="lineage")
        self.artifacts = Static("", id="artifacts")
        await self.mount_all([
            self.question,
            self.params_title, self.params,
            Label("result", classes="section"), self.result, self.value_notes,
            Label("error", classes="section", id="error-title"), self.error,
            Label("log", classes="section"), self.log_view,
            Label("lineage", classes="section"), self.lineage,
            Label("artifacts", classes="section"), self.artifacts,
        ])
        self.built = True

    # ---------------------------------------------------------------- updates

    def show(self, details: Details) -> None:
        """A newly selected task (or a fresh read of it): every section."""
        new = details.task["id"] != self.task_id
        self.task_id = details.task["id"]
        self.notes = list(details.task.get("value_notes") or [])
        if not self.built:
            self._waiting = details
            self.current_task = details.task
            return
        if new:
            self.log_next = 0
            self.log_open = None
            self.log_view.clear()
        self.patch(details.task)
        title, text = work_text(details.task)
        self.params_title.update(title)
        self.params.update(Content(text))
        self._show_lineage(details)
        artifacts = details.artifacts
        text = "\n".join(f"{a['name']}  {a.get('size', 0):,} B  {a.get('content_type', '')}  "
                         f"sha256 {str(a.get('sha256', ''))[:12]}" for a in artifacts)
        self.artifacts.update(Content(text) if text else NONE)

    def gone(self, task_id: str, why: str) -> None:
        """The shown task is no more (``why``: deleted): said, and nothing of it left that
        reads as current."""
        if task_id != self.task_id:
            return
        self.task_id = None
        self.current_task = None
        self._waiting = None
        self.summary.update(Content(f"Task {task_id} {why}"))
        if self.built:
            for section in (self.question, self.params, self.result, self.value_notes,
                            self.error, self.artifacts):
                section.update("")
            self.log_view.clear()
            self.lineage.clear()
            self.log_next, self.log_open = 0, None

    def patch(self, task: dict[str, Any]) -> None:
        """The selected task changed (status, progress, result, question)."""
        if task["id"] != self.task_id:
            return
        self.current_task = task
        if not self.built:
            if self._waiting is not None:
                self._waiting.task = task
            return
        late = late_cancel_text(task)
        # built as Content, never as markup: what a task holds is shown as written
        lines = [
            Content.assemble((label_text(task), "bold"), f"  {task['id']}"),
            Content.assemble("status ", Content.from_rich_text(status_text(task)),
                             f"   {progress_text(task, 20)}   {progress_message(task)}",
                             (f"  ({late})" if late else "", "italic")),
            Content(f"kind {task.get('kind')} · mode {task.get('mode')} · queue "
                    f"{task.get('queue')} · owner {shown_text(task.get('owner') or '')} · origin "
                    f"{origin_text(task)} · {attempt_text(task)}"),
            Content(f"created {local_time(task.get('created_at'))} · started "
                    f"{local_time(task.get('started_at')) or '-'} · finished "
                    f"{local_time(task.get('finished_at')) or '-'} · ran "
                    f"{duration_text(task) or '-'}"),
        ]
        if task.get("parent_id"):
            lines.append(Content(f"{task.get('relationship')} of {task['parent_id']}"))
        self.summary.update(Content("\n").join(lines))
        confirmation = task.get("confirmation") or {}
        pending = bool(confirmation) and confirmation.get("answer") is None \
            and task.get("status") == "running"
        question = self.question
        if pending:
            choices = " / ".join(confirmation.get("choices") or [])
            question.update(Content.assemble(
                (" asks ", "bold reverse"),
                f" {shown_text(confirmation.get('prompt'), keep=LINE_ENDS)}  "
                f"({shown_text(choices)})  — press ",
                ("a", "bold"), " to answer"))
        elif confirmation.get("answer") is not None:
            question.update(Content.assemble(
                f"asked {shown_text(confirmation.get('prompt'), keep=LINE_ENDS)} → answered ",
                (shown_text(confirmation["answer"]), "bold")))
        else:
            question.update("")
        question.display = bool(confirmation)
        result = task.get("result")
        self.result.update(result_text(result))
        notes = task.get("value_notes", self.notes)
        self.value_notes.update(Content("\n").join(
            Content.assemble(("⚠", "yellow"), f" {note_text(n)}")
            for n in notes or [] if isinstance(n, dict)))
        self.value_notes.display = bool(notes)
        error = task.get("error")
        error_widget = self.error
        if error:
            # a message's lines stay lines, as the traceback's do (before: "\x0a")
            message = f": {shown_text(error.get('message'), keep=LINE_ENDS)}"
            if error.get("traceback"):  # its lines stay lines
                message += "\n" + shown_text(str(error["traceback"]).rstrip(), keep="\n\t")
            error_widget.update(Content.assemble((shown_text(error.get("type")), "bold red"),
                                                 message))
        else:
            error_widget.update(NONE)

    def append_logs(self, task_id: str, entries: list[dict[str, Any]], next_seq: int) -> None:
        """New log chunks of the selected task."""
        if task_id != self.task_id or not self.built or not self.is_attached:
            return
        self.log_next = max(self.log_next, next_seq)
        entries, cut = last_lines(entries, LOG_LINES)
        lines: list[str] = []
        rewritten: str | None = None  # the view's last line, carried on by these chunks
        # (a cut starts at a line's start: the line left open before is not carried on)
        carried = None if cut else self.log_open
        for entry in entries:
            text = log_text(str(entry.get("text") or ""))
            if not text:
                continue
            prefix = "! " if entry.get("stream") == "stderr" else ""
            typed, unfinished = typed_lines(text, carried[:2] if carried else None)
            if carried is not None and typed:
                # the last chunk stopped mid-line: this one's first line carries it on
                # (under the prefix it started with, as the panel's log does)
                (line, col), typed = typed[0], typed[1:]
                carried = (line, col, carried[2])
                if lines:
                    lines[-1] = carried[2] + line
                else:
                    rewritten = carried[2] + line
            lines += [prefix + line for line, _ in typed]
            if not unfinished:
                carried = None
            elif typed:
                carried = (*typed[-1], prefix)
        self.log_open = carried
        if rewritten is not None:
            self.log_view.rewrite_last_line(rewritten)
        if lines:
            self.log_view.write_lines(lines)

    @property
    def log_text(self) -> str:
        if not self.built:
            return ""
        return "\n".join(str(line) for line in self.log_view.lines)

    def _show_lineage(self, details: Details) -> None:
        tree = self.lineage
        tree.clear()
        root = details.lineage_root or details.task
        if not details.lineage.get(root["id"]) and root["id"] == details.task["id"]:
            tree.root.set_label("no reruns or forks")
            return
        tree.root.set_label(_node_label(root, details.task["id"]))
        tree.root.data = root["id"]

        def grow(node: Any, task_id: str) -> None:
            for child in details.lineage.get(task_id, []):
                sub = node.add(_node_label(child, details.task["id"]), data=child["id"])
                grow(sub, child["id"])
                sub.expand()

        grow(tree.root, root["id"])
        tree.root.expand()

    @property
    def lineage_labels(self) -> list[str]:
        """Every node label of the lineage tree (root first), as plain text."""
        if not self.built:
            return []
        tree = self.lineage
        out: list[str] = []

        def walk(node: Any) -> None:
            out.append(str(node.label.plain if hasattr(node.label, "plain") else node.label))
            for child in node.children:
                walk(child)

        walk(tree.root)
        return out


def _node_label(task: dict[str, Any], current: str) -> Text:
    marker = "▶ " if task["id"] == current else ""
    relation = f"{task.get('relationship')}: " if task.get("relationship") else ""
    # a Text, not a str: the tree reads a str label as markup
    return Text.assemble(f"{marker}{relation}{short_id(task['id'])} {label_text(task)} ",
                         status_text(task))


def is_preview(result: Any) -> bool:
    """Whether a stored result is the preview of a value kept whole as an artifact."""
    return isinstance(result, dict) and set(result) == {"preview", "artifact", "chars", "reason"}


def result_text(result: Any) -> Content:
    """The result section: the value, or a large value's preview and where the whole
    of it is."""
    if result is None:
        return NONE
    if not is_preview(result):
        return Content(pretty_json(result))
    why = result.get("reason") or f"{result.get('chars')} characters of JSON"
    return Content.assemble(
        ("preview", "bold"), (f" — {why}; the whole value is the artifact ", "dim"),
        (str(result.get("artifact")), "bold dim"), f"\n{result.get('preview')}…")


def note_text(note: dict[str, Any]) -> str:
    """One value note: where, what it was, what was stored (``result['x']: nan stored as
    null``)."""
    return f"{note.get('path')}: {note.get('original')} stored as {note.get('stored_as')}"


def last_lines(entries: list[dict[str, Any]], count: int) -> tuple[list[dict[str, Any]], bool]:
    """The log chunks that hold the last ``count`` lines, the first cut to start at one of
    them; and whether anything was cut. The pane keeps no more: escaping, measuring and
    writing a 240,000-line log froze the dashboard for seconds.

    Lines are counted over the chunks as written one after another (a chunk that ends
    mid-line goes on in the next): the last ``count`` start after the ``count``-th line
    end from the end, one further back when the text ends with one.
    """
    texts = [str(entry.get("text") or "") for entry in entries]
    last = next((text for text in reversed(texts) if text), "")
    ends_to_skip = count + (1 if last.endswith("\n") else 0)
    for index in range(len(texts) - 1, -1, -1):
        text = texts[index]
        found = text.count("\n")
        if found < ends_to_skip:
            ends_to_skip -= found
            continue
        start = len(text)
        for _ in range(ends_to_skip):
            start = text.rfind("\n", 0, start)
        return [{**entries[index], "text": text[start + 1:]}, *entries[index + 1:]], True
    return entries, False
