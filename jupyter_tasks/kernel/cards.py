"""``TaskCard`` and ``TaskBoard``: ipywidgets views of tasks, live and throttled.

One :class:`CardHub` per kernel runs on the manager's runtime loop (a daemon
thread, so a blocking foreground cell does not stall it). It follows the
manager's event feed (``subscribe()``: every process's changes, through the
store) and marks cards dirty; every 100 ms it refreshes the dirty cards. A
refresh sends at most **one** widget state message per card (the parts of a
card that changed take turns), so a card never sends more than about ten
messages a second whatever its task does, and only state that changed is sent.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..exceptions import TaskNotFound
from ..manager import task_fields_from_api_json, task_from_api_json
from ..models import (
    BIDI_CONTROLS,
    EventType,
    Task,
    TaskKind,
    TaskStatus,
    progress_fraction,
    progress_number,
)
from .task_ids import full_task_id

if TYPE_CHECKING:
    from ..manager import TaskManager
    from .capture import OutputSink

log = logging.getLogger("jupyter_tasks.kernel")

TICK_SECONDS = 0.1
LOG_TAIL_LINES = 12
LOG_TAIL_CHARS = 8000
STATUS_COLORS = {
    "queued": "#888", "running": "#1976d2", "succeeded": "#2e7d32", "failed": "#c62828",
    "timeout": "#ef6c00", "oom": "#ad1457", "cancelled": "#757575", "interrupted": "#6d4c41",
}
SHORT_ID = 10  # the views (dashboard, CLI) show the last 10 characters of an id
RESULT_CHARS = 2000

_hub: CardHub | None = None
_hub_lock = threading.Lock()


def get_hub(manager: TaskManager | None = None) -> CardHub:
    """The kernel's card hub, started on the manager's loop on first use."""
    global _hub
    with _hub_lock:
        if _hub is None or _hub.manager is not (manager or _hub.manager) \
                or not _hub.manager.running:
            if manager is None:
                from . import ensure_manager

                manager = ensure_manager()
            _hub = CardHub(manager)
            _hub.start()
        return _hub


def hub_if_started() -> CardHub | None:
    """The hub if one runs (no side effects)."""
    return _hub


class CardHub:
    """Feeds manager events to cards and refreshes dirty cards at most every 100 ms."""

    def __init__(self, manager: TaskManager) -> None:
        self.manager = manager
        self.cards: dict[str, set[TaskCard]] = {}
        self.active: set[TaskCard] = set()
        self.boards: set[TaskBoard] = set()
        self.messages_sent = 0  # widget state messages sent by cards (for benchmarks)
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[Any]] = []

    def start(self) -> None:
        async def begin() -> None:
            self._wake = asyncio.Event()
            sub = self.manager.subscribe()
            self._tasks = [asyncio.ensure_future(self._consume(sub)),
                           asyncio.ensure_future(self._tick())]

        asyncio.run_coroutine_threadsafe(begin(), self.manager.loop).result(10)

    def call(self, fn: Any, *args: Any) -> None:
        """Run ``fn(*args)`` on the hub's loop (from any thread)."""
        loop = self.manager.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    # -------------------------------------------------------- registration (loop)

    def add(self, card: TaskCard) -> None:
        self.cards.setdefault(card.task_id, set()).add(card)
        # events between the card's first read and now were not delivered to it
        card._needs_reload = True
        self.activate(card)

    def remove(self, card: TaskCard) -> None:
        cards = self.cards.get(card.task_id)
        if cards is not None:
            cards.discard(card)
            if not cards:
                self.cards.pop(card.task_id, None)
        self.active.discard(card)

    def activate(self, card: TaskCard) -> None:
        self.active.add(card)
        if self._wake is not None:
            self._wake.set()

    def follow(self, old_id: str, new_id: str) -> None:
        """Cards showing ``old_id`` switch to ``new_id`` (a rerun of it)."""
        for card in list(self.cards.get(old_id, ())):
            if card.follows_reruns:
                self.remove(card)
                card._retarget(new_id)
                self.add(card)

    # ------------------------------------------------------------------- loops

    async def _consume(self, sub: Any) -> None:
        while True:
            event = await sub.get()
            try:
                if sub.overflowed:
                    sub.overflowed = False
                    for card in {c for cs in self.cards.values() for c in cs}:
                        card._needs_reload = True
                        self.activate(card)
                for card in list(self.cards.get(event.task_id, ())):
                    card._on_event(event)
                    self.activate(card)
                # a task run at once is created and started in one step: its first
                # event is task.started, not task.created
                if self.boards and event.type in _FIRST_EVENTS:
                    for board in list(self.boards):
                        board._on_created(event)
            except Exception:
                log.exception("updating task cards failed")

    async def _tick(self) -> None:
        assert self._wake is not None
        while True:
            if not self.active:
                self._wake.clear()
                await self._wake.wait()
            await asyncio.sleep(TICK_SECONDS)
            for card in list(self.active):
                try:
                    if await card._refresh(self.manager):
                        self.messages_sent += 1
                    if card._settled():
                        self.active.discard(card)
                    card._failures = 0
                except Exception:
                    # e.g. the database busy for a moment: try again next tick, but
                    # give up on a card that keeps failing
                    card._failures = getattr(card, "_failures", 0) + 1
                    if card._failures == 1:
                        log.debug("refreshing a task card failed", exc_info=True)
                    if card._failures > 50:
                        log.warning("task card %s stopped updating", card.task_id)
                        self.active.discard(card)


_BIDI = re.compile(f"[{BIDI_CONTROLS}]")


def _shown(text: str) -> str:
    """A task's own text for a card's HTML: escaped, its bidi controls made visible (U+FFFD)."""
    return html.escape(_BIDI.sub("\ufffd", text))


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "-"
    seconds = int(seconds + 0.5)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _fmt_num(value: Any) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.4g}"
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return html.escape(str(value))


class TaskCard(widgets.VBox):
    """A live card for any task id (run here, in the server, or in another kernel).

    Shows label, status, a progress bar with rate and ETA, elapsed time, the
    last log lines (or, for a cell run in this kernel, its captured output),
    the error and traceback, Cancel / Rerun buttons, and the pending question
    with one button per answer. Updates are throttled to at most ~10 widget
    messages per second.
    """

    def __init__(self, task_id: Any, *, compact: bool = False, _task: Task | None = None,
                 **kwargs: Any) -> None:
        task_id = getattr(task_id, "id", task_id)  # a TaskHandle or a Task works too
        hub = get_hub()
        manager = hub.manager
        self._hub = hub
        self._manager = manager
        self.task_id = str(task_id) if _task is not None else full_task_id(manager, str(task_id))
        self.compact = compact
        self.follows_reruns = not compact
        if _task is None:
            try:
                _task = manager.run_sync(manager.get(self.task_id), 30)
            except TaskNotFound as exc:
                # said here, in one frame: the engine's eleven (the loop hop, the store)
                # tell a notebook user nothing
                raise TaskNotFound(exc.message) from None
        self._task: Task = _task
        self._reset_state()
        desired = self._desired()
        self._sent = dict(desired)
        # widths: "auto" lets the column stretch each part to the card's width; a width of
        # 100% plus the widgets' margins overflowed the card, whose box then scrolled
        self._header = widgets.HTML(desired["header"], layout=_fill())
        self._body = widgets.HTML(desired.get("body", ""), layout=_fill())
        # ipywidgets 8's Layout has `overflow` only: overflow_y/overflow_x were dropped
        # without a word, and long output ran under the buttons, out of reach
        self._output = widgets.Output(layout=widgets.Layout(max_height="24em",
                                                            overflow="auto"))
        if self._sink is not None:
            self._output.outputs = self._sink.snapshot()
        cancel_disabled, rerun_disabled = desired["controls"]
        self._cancel = widgets.Button(description="Cancel", icon="stop",
                                      disabled=cancel_disabled, layout=_fixed())
        self._rerun = widgets.Button(description="Rerun", icon="redo", disabled=rerun_disabled,
                                     layout=_fixed())
        self._confirm = widgets.HBox(self._confirm_children(desired["confirm"]),
                                     layout=widgets.Layout(overflow="hidden", flex_flow="row wrap"))
        self._cancel.on_click(lambda _b: self._act("cancel"))
        self._rerun.on_click(lambda _b: self._act("rerun"))
        buttons = widgets.HBox([self._cancel, self._rerun],
                               layout=widgets.Layout(flex="0 0 auto", overflow="hidden"))
        if compact:
            # the label gives way, never the buttons (they were cut to "Ca…")
            self._header.layout = widgets.Layout(width="auto", flex="1 1 0%", min_width="0")
            row = widgets.HBox([self._header, buttons],
                               layout=widgets.Layout(width="auto", overflow="hidden",
                                                     align_items="center"))
            children = [row, self._confirm]
        else:
            children = [self._header, self._confirm, self._body, self._output, buttons]
        kwargs.setdefault("layout", widgets.Layout(overflow="hidden"))
        super().__init__(children=children, **kwargs)
        self.add_class("jupyter-tasks-card")
        hub.call(hub.add, self)

    # ----------------------------------------------------------- state (loop)

    def _reset_state(self) -> None:
        self._sink: OutputSink | None = _local_sink(self.task_id)
        self._sink_version = -1
        self._log_seq = 0
        self._log_tail = ""
        self._logs_dirty = True
        self._needs_reload = False
        self._samples: deque[tuple[float, float]] = deque(maxlen=64)
        self._sent: dict[str, Any] = {}
        self._turn = 0
        self._note = ""
        self._result_text: str | None = None

    def _retarget(self, task_id: str) -> None:
        self.task_id = task_id
        self._reset_state()
        self._needs_reload = True

    def _on_event(self, event: Any) -> None:
        if event.type == EventType.LOG.value:
            self._logs_dirty = True
        if event.type == EventType.DELETED.value:
            return
        snapshot = event.task
        if snapshot is not None:
            fields = task_fields_from_api_json(snapshot)
            self._task = self._task.evolve(**{k: v for k, v in fields.items() if k != "id"})
        if self._task.is_terminal:
            self._logs_dirty = True  # the last chunks land with the final status

    def _settled(self) -> bool:
        """Nothing left to send: the task ended and every part shows its final state."""
        if not self._task.is_terminal or self._logs_dirty or self._needs_reload:
            return False
        return not self._wanted_parts(self._desired())

    async def _refresh(self, manager: TaskManager) -> bool:
        """Bring one changed part up to date; True if a message was sent."""
        if self._needs_reload:
            self._needs_reload = False
            task = await manager.store.get_task(self.task_id)
            if task is not None:
                self._task = task
            self._logs_dirty = True
        if self._sink is None and not self.compact:  # a rerun here may have started since
            self._sink = _local_sink(self.task_id)
        if self._logs_dirty and self._sink is None and not self.compact:
            self._logs_dirty = False
            entries = await manager.store.get_logs(self.task_id, self._log_seq, 1000)
            if entries:
                self._log_seq = entries[-1].seq
                self._log_tail = (self._log_tail + "".join(e.text for e in entries))[
                    -LOG_TAIL_CHARS:]
                if len(entries) == 1000:
                    self._logs_dirty = True
        else:
            self._logs_dirty = False
        self._live_progress = manager.live_progress(self.task_id)
        desired = self._desired()
        parts = self._wanted_parts(desired)
        if not parts:
            return False
        # one part per tick, in turns, so a card sends at most one message per tick
        order = ["header", "output", "body", "controls", "confirm"]
        start = self._turn % len(order)
        for i in range(len(order)):
            part = order[(start + i) % len(order)]
            if part in parts:
                self._turn = order.index(part) + 1
                self._apply(part, desired[part])
                return True
        return False

    # ------------------------------------------------------------------ render

    def _progress(self) -> dict[str, Any] | None:
        live = getattr(self, "_live_progress", None)
        if live is not None and self._task.status == TaskStatus.RUNNING.value:
            return live
        return self._task.progress

    def _desired(self) -> dict[str, Any]:
        task = self._task
        desired: dict[str, Any] = {"header": self._header_html()}
        if not self.compact:
            desired["body"] = self._body_html()
            if self._sink is not None:
                desired["output"] = self._sink.version
        active = not task.is_terminal
        confirmation = task.confirmation or {}
        pending = active and confirmation.get("prompt") and confirmation.get("answer") is None
        desired["controls"] = (not active or bool(task.cancel_requested), active)
        choices = tuple(confirmation.get("choices") or ())
        desired["confirm"] = (confirmation.get("prompt"), choices) if pending else None
        return desired

    def _wanted_parts(self, desired: dict[str, Any]) -> set[str]:
        return {k for k, v in desired.items() if self._sent.get(k, _MISSING) != v}

    def _apply(self, part: str, value: Any) -> None:
        self._sent[part] = value
        if part == "header":
            self._header.value = value
        elif part == "body":
            self._body.value = value
        elif part == "output":
            if self._sink is not None:
                self._output.outputs = self._sink.snapshot()
        elif part == "controls":
            cancel_disabled, rerun_disabled = value
            with self._cancel.hold_sync():
                self._cancel.disabled = cancel_disabled
            with self._rerun.hold_sync():
                self._rerun.disabled = rerun_disabled
        elif part == "confirm":
            old = self._confirm.children
            self._confirm.children = self._confirm_children(value)
            for widget in old:
                widget.close()

    def _confirm_children(self, value: Any) -> tuple[Any, ...]:
        if value is None:
            return ()
        prompt, choices = value
        buttons = []
        for choice in choices:
            button = widgets.Button(description=str(choice), button_style="info",
                                    layout=widgets.Layout(width="auto"))
            button.on_click(lambda _b, c=choice: self._act("confirm", c))
            buttons.append(button)
        return (widgets.HTML(f"<b>❓ {html.escape(str(prompt))}</b>"), *buttons)

    def _header_html(self) -> str:
        task = self._task
        now = time.time()
        status = task.status
        if task.cancel_requested and not task.is_terminal:
            status = "cancelling"
        color = STATUS_COLORS.get("cancelled" if status == "cancelling" else task.status, "#888")
        prog = self._progress()
        prog = prog if isinstance(prog, dict) else {}
        # a stored row may hold anything (an older version's repr of a Decimal): only
        # numbers make a bar, a rate and an ETA; a refresh that raised froze the card
        current, total = progress_number(prog.get("current")), progress_number(prog.get("total"))
        fraction = progress_fraction(prog)
        message = prog.get("message")
        bits = []
        pct = None
        if current is not None:
            if fraction is not None and total is not None:
                pct = 100.0 * fraction
                bits.append(f"{_fmt_num(current)}/{_fmt_num(total)} ({pct:.0f}%)")
            else:
                bits.append(_fmt_num(current))
            # once ended, the whole run's rate: the last seconds' samples gave each
            # redraw of a finished card another figure (9.61/s, then 4.94/s)
            rate = _overall_rate(task, current) if task.is_terminal \
                else self._rate(now, current)
            if rate:
                bits.append(f"{rate:.3g}/s")
                # a time left only toward a total (a positive one) the count climbs to:
                # a total of -4 showed "ETA 0:00", as did a count going down
                if fraction is not None and total is not None and rate > 0 \
                        and task.status == TaskStatus.RUNNING.value:
                    bits.append("ETA " + _fmt_duration(max(0.0, total - current) / rate))
        elif prog.get("current") is not None:
            bits.append(_shown(str(prog["current"])[:40]))
        if task.started_at:
            end = task.finished_at or now
            bits.append(("took " if task.is_terminal else "elapsed ")
                        + _fmt_duration(end - task.started_at))
        if message:
            # cut before escaping: a cut escape ("&am") showed as text
            bits.append(_shown(str(message)[:200]))
        if task.kind == TaskKind.SUBPROCESS.value and task.is_terminal:
            code = _exit_code(task)
            if code is not None:
                bits.append(f"exit code {code}")
        if pct is None and task.status == TaskStatus.SUCCEEDED.value:
            pct = 100.0
        if task.status == TaskStatus.CANCELLED.value:
            pct = None  # a calm end: no bar, no error
        bar = ""
        if pct is not None or task.status == TaskStatus.RUNNING.value:
            width = f"{pct:.1f}%" if pct is not None else "100%"
            opacity = "1" if pct is not None else "0.25"
            bar = (f'<div style="background:#e0e0e0;height:6px;border-radius:3px;'
                   f'margin:3px 0"><div style="width:{width};height:6px;border-radius:3px;'
                   f'background:{color};opacity:{opacity}"></div></div>')
        label = _shown(task.label or task.name or task.id)
        note = f' <span style="color:#c62828">{html.escape(self._note)}</span>' \
            if self._note else ""
        details = (f'<div style="color:#555;font-size:12px">{" · ".join(bits)}</div>'
                   if bits else "")
        return (f'<div style="font-family:var(--jp-ui-font-family,sans-serif);'
                f'font-size:13px;line-height:1.4;overflow-wrap:anywhere">'
                f'<b>{label}</b> <span style="color:{color};font-weight:600">{status}</span> '
                f'<span style="color:#999;font-size:11px">{task.kind} · '
                f'{task.id[-SHORT_ID:]}</span>{note}{bar}{details}</div>')

    def _body_html(self) -> str:
        task = self._task
        parts = []
        if task.error and task.status not in (TaskStatus.SUCCEEDED.value,
                                              TaskStatus.CANCELLED.value):
            err = task.error
            text = f"{err.get('type')}: {err.get('message')}"
            parts.append(f'<div style="color:#c62828"><b>{html.escape(text)}</b></div>')
            tb = err.get("traceback")
            if tb and task.status == TaskStatus.FAILED.value and self._sink is None:
                parts.append(_pre(tb[-6000:], "#fdecea"))
                full = err.get("traceback_full")
                if full and full != tb:
                    parts.append('<details><summary style="cursor:pointer;color:#777;'
                                 'font-size:11.5px">full traceback (with jupyter-tasks '
                                 f'frames)</summary>{_pre(full[-12000:], "#f5f5f5")}</details>')
        if self._sink is None and self._log_tail:
            lines = screen_lines(self._log_tail)[-LOG_TAIL_LINES:]
            parts.append(_pre("\n".join(lines), "#f5f5f5"))
        result = self._result()
        if result is not None:
            parts.append('<div style="color:#555;font-size:12px;margin-top:3px">result</div>'
                         + _pre(result, "#f1f8e9"))
        return "".join(parts)

    def _result(self) -> str | None:
        """The repr of the value, once the task succeeded (the object itself if it ran here)."""
        task = self._task
        if task.status != TaskStatus.SUCCEEDED.value or task.kind == TaskKind.SUBPROCESS.value:
            return None
        if self._result_text is None:
            self._result_text = shown_result(self._manager, task) or ""
        return self._result_text or None

    def _rate(self, now: float, current: float) -> float | None:
        """Steps a second over the last few seconds' samples of a running task."""
        samples = self._samples
        if not samples or samples[-1][1] != current:
            samples.append((now, current))
        while len(samples) > 2 and now - samples[0][0] > 5.0:
            samples.popleft()
        if len(samples) < 2:
            return None
        (t0, c0), (t1, c1) = samples[0], samples[-1]
        if t1 <= t0 or c1 <= c0:
            return None
        return (c1 - c0) / (t1 - t0)

    # ---------------------------------------------------------------- actions

    def _act(self, action: str, answer: str | None = None) -> None:
        """A button click (on the kernel's thread): talk to the manager, report problems."""
        manager = self._manager
        task_id = self.task_id
        try:
            if action == "cancel":
                manager.run_sync(manager.cancel(task_id), 30)
            elif action == "rerun":
                new = manager.run_sync(manager.rerun(task_id), 30)
                self._hub.call(_switch, self._hub, self, new.id)
            elif action == "confirm" and answer is not None:
                manager.run_sync(manager.confirm(task_id, answer), 30)
            self._note = ""
        except Exception as exc:
            self._note = f"{action} failed: {exc}"
        self._hub.call(self._hub.activate, self)

    def close(self) -> None:
        """Stop updating and close the widgets."""
        self._hub.call(self._hub.remove, self)
        super().close()

    def __repr__(self) -> str:
        task = self._task
        return f"TaskCard({task.label!r}, {task.status}, id={task.id})"


def _switch(hub: CardHub, card: TaskCard, task_id: str) -> None:
    hub.remove(card)
    card._retarget(task_id)
    hub.add(card)


_MISSING = object()
_FIRST_EVENTS = (EventType.CREATED.value, EventType.STARTED.value)


def _fill() -> widgets.Layout:
    return widgets.Layout(width="auto", min_width="0")


def _fixed() -> widgets.Layout:
    return widgets.Layout(width="auto", flex="0 0 auto")


def result_text(value: Any) -> str:
    """``value`` as IPython would print it as a cell's Out, shortened."""
    try:
        from IPython.lib.pretty import pretty

        text = pretty(value, max_width=100, max_seq_length=100)
    except Exception:
        try:
            text = repr(value)
        except Exception as exc:
            text = f"<repr failed: {type(exc).__name__}>"
    return text if len(text) <= RESULT_CHARS else text[:RESULT_CHARS] + "…"


def screen_lines(text: str) -> list[str]:
    """``text``'s lines as a terminal leaves them: of a line redrawn after ``\r`` (a
    progress bar), its last drawing, not each one as a line of its own."""
    lines = []
    for line in text.replace("\r\n", "\n").split("\n"):
        drawn = line.split("\r")
        lines.append(next((part for part in reversed(drawn) if part), ""))
    if lines and lines[-1] == "":
        lines.pop()  # the end of the last line, not a line
    return lines


def _pre(text: str, background: str) -> str:
    return (f'<pre style="background:{background};padding:4px 6px;margin:3px 0;'
            f'font-size:11.5px;max-height:16em;overflow:auto;white-space:pre-wrap">'
            f'{html.escape(text)}</pre>')


def _exit_code(task: Task) -> int | None:
    if isinstance(task.result, dict) and "returncode" in task.result:
        return task.result["returncode"]
    message = (task.error or {}).get("message") or ""
    if "exited with code" in message:
        try:
            return int(message.rsplit(" ", 1)[-1])
        except ValueError:
            return None
    return None


def _local_sink(task_id: str) -> OutputSink | None:
    from . import kernel_side

    side = kernel_side()
    return side.sinks.get(task_id) if side is not None else None


def shown_result(manager: Any, task: Task) -> str | None:
    """The text of ``task``'s value as a card shows it (None before a success or without one)."""
    if task.status != TaskStatus.SUCCEEDED.value or task.kind == TaskKind.SUBPROCESS.value:
        return None
    # a cell run here: its text, made in the cell's thread (its repr is the user's code,
    # which may never return: never on this loop)
    text = _local_result_text(task.id)
    if text is None:
        local = manager.local_result(task.id)
        value = local[1] if local is not None and local[0] else task.result
        text = "" if value is None else result_text(value)
    return text or None


def _local_result_text(task_id: str) -> str | None:
    from . import kernel_side

    side = kernel_side()
    return side.result_texts.get(task_id) if side is not None else None


class TaskBoard(widgets.VBox):
    """This notebook's tasks (those submitted from this kernel) as a compact list of cards.

    New tasks appear as they are created; the newest are on top; at most
    ``limit`` cards are shown.
    """

    def __init__(self, *, kernel_id: str | None = None, limit: int = 20, **kwargs: Any) -> None:
        hub = get_hub()
        self._hub = hub
        from . import kernel_side

        side = kernel_side()
        self.kernel_id = kernel_id or (side.kernel_id if side is not None else None) \
            or hub.manager.origin.get("kernel_id")
        self.limit = limit
        manager = hub.manager
        tasks = manager.run_sync(manager.store.list_tasks(limit=500), 30)
        mine = [t for t in tasks if self._is_mine(t.origin)][:limit]
        self._title = widgets.HTML()
        self._cards = [TaskCard(t.id, compact=True, _task=t) for t in mine]
        self._seen = {t.id for t in mine}
        super().__init__(children=[self._title, *self._cards], **kwargs)
        self._update_title()
        hub.call(hub.boards.add, self)

    def _is_mine(self, origin: dict[str, Any] | None) -> bool:
        return bool(origin) and origin.get("kernel_id") == self.kernel_id \
            and self.kernel_id is not None

    def _update_title(self) -> None:
        self._title.value = (f"<b>Tasks of this notebook</b> "
                             f"<span style='color:#999'>({len(self._cards)} shown)</span>")

    def _on_created(self, event: Any) -> None:
        snapshot = event.task or {}
        if event.task_id in self._seen or not self._is_mine(snapshot.get("origin")):
            return
        self._seen.add(event.task_id)
        task = task_from_api_json(snapshot)
        card = TaskCard(task.id, compact=True, _task=task)
        self._cards.insert(0, card)
        for old in self._cards[self.limit:]:
            old.close()
        del self._cards[self.limit:]
        self.children = (self._title, *self._cards)
        self._update_title()

    def close(self) -> None:
        """Stop following and close every card."""
        self._hub.call(self._hub.boards.discard, self)
        for card in self._cards:
            card.close()
        super().close()


def _overall_rate(task: Task, current: float) -> float | None:
    """Steps a second over an ended task's whole run (None without a run or a step)."""
    if task.started_at is None or task.finished_at is None or current <= 0:
        return None
    took = task.finished_at - task.started_at
    return current / took if took > 0 else None
