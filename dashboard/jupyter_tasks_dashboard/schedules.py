"""The Schedules view: each schedule's rule, next and last run; pause, run now, delete.

A screen of its own over the task view (``t`` opens it, escape returns). Enter
shows the selected schedule's firings: the task table filtered by its
``schedule_id``. It stays live from the app's event feed: ``schedule.changed``
events (the schedule's JSON, or null once deleted) and the events of the tasks
it fired (their status is its "last status").
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from .ask import AskScreen
from .formatting import (
    STATUS_STYLES,
    human_seconds,
    local_time,
    named,
    parse_ts,
    short_id,
    shown_text,
)
from .sources import ActionError, DataSource

COLUMNS = ("name", "cron", "time zone", "next run", "last run", "last status", "paused")
# (title, screen action, help) for the command palette while the view is open
ACTIONS: tuple[tuple[str, str, str], ...] = (
    ("Schedule: pause / resume", "toggle_pause", "Pause the selected schedule, or resume it"),
    ("Schedule: run now", "run_now", "Fire the selected schedule once now"),
    ("Schedule: delete", "delete", "Delete the selected schedule (asks first)"),
    ("Schedule: show firings", "show_firings", "The tasks the selected schedule fired"),
    ("Schedules: reload", "reload", "Read the schedules again"),
    ("Schedules: back to tasks", "close", "Return to the task table"),
)


def relative(ts: float | None, now: float) -> str:
    """``in 3 m 05 s`` / ``12.0 s ago`` (``""`` for none)."""
    if ts is None:
        return ""
    delta = ts - now
    return f"in {human_seconds(delta)}" if delta >= 0 else f"{human_seconds(-delta)} ago"


def when_text(value: str | None, now: float) -> str:
    """A schedule time in local time with how far it is: ``09:00:00 (in 2 h 05 m)``."""
    ts = parse_ts(value)
    if ts is None:
        return "-"
    return f"{local_time(ts, now)} ({relative(ts, now)})"


def schedule_cells(schedule: dict[str, Any], now: float) -> tuple[str | Text, ...]:
    """The row of one schedule."""
    status = schedule.get("last_status")
    return (
        # a Text: the table reads a str cell as markup
        Text(shown_text(schedule.get("name") or "")),
        schedule.get("cron") or "",
        schedule.get("timezone") or "",
        "paused" if schedule.get("paused") else when_text(schedule.get("next_run_at"), now),
        when_text(schedule.get("last_run_at"), now),
        Text(status, style=STATUS_STYLES.get(status, "")) if status else Text("-"),
        "yes" if schedule.get("paused") else "no",
    )


class ScheduleCommands(Provider):
    """The palette's schedule commands while the Schedules view is open."""

    def _run(self, action: str) -> None:
        self.app.run_worker(self.app.run_action(action, self.screen), group="palette")

    async def discover(self) -> Hits:
        for title, action, help_text in ACTIONS:
            yield DiscoveryHit(title, lambda a=action: self._run(a), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, action, help_text in ACTIONS:
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), lambda a=action: self._run(a),
                          help=help_text)


class SchedulesScreen(Screen[None]):
    """The schedules of the source, newest first, kept live by ``apply_event``."""

    TITLE = "jupyter-tasks · schedules"
    COMMANDS = {ScheduleCommands}
    BINDINGS = [
        Binding("p", "toggle_pause", "Pause/resume"),
        Binding("r", "run_now", "Run now"),
        Binding("d", "delete", "Delete"),
        # priority: ahead of the DataTable's own Enter (select), and shown in the key bar
        Binding("enter", "show_firings", "Firings", priority=True),
        Binding("escape,t", "close", "Tasks"),
        Binding("ctrl+r", "reload", "Reload", show=False),
    ]

    def __init__(self, source: Callable[[], DataSource],
                 show_firings: Callable[[dict[str, Any]], None]) -> None:
        super().__init__(id="schedules-screen")
        self.source = source  # a getter: the app may fall back to another source
        self.on_show_firings = show_firings
        self.schedules: dict[str, dict[str, Any]] = {}  # id -> JSON, newest first
        self.loaded = False
        self.loads = 0

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        self.table: DataTable[Any] = DataTable(id="schedules", cursor_type="row",
                                               zebra_stripes=True)
        yield self.table
        self.empty = Static("", id="schedules-empty")
        yield self.empty
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "loading…"
        for column in COLUMNS:
            self.table.add_column(column, key=column)
        self.table.focus()
        self.load()
        self.set_interval(1.0, self.redraw)  # "in 4 m 10 s" keeps counting

    # ------------------------------------------------------------------ data

    @work(exclusive=True, group="schedules")
    async def load(self) -> None:
        """Read every schedule again."""
        try:
            schedules = await self.source().list_schedules()
        except ActionError as exc:
            self.notify(f"Loading schedules failed: {exc}", severity="error")
            self.sub_title = "not loaded"
            return
        self.schedules = {s["id"]: s for s in schedules}
        self.loaded = True
        self.loads += 1
        self.redraw()

    def apply_event(self, event: dict[str, Any]) -> None:
        """A ``schedule.changed`` event, or a task event of a task a schedule fired."""
        if event.get("type") == "schedule.changed":
            schedule_id, schedule = event.get("schedule_id"), event.get("schedule")
            if not schedule_id:
                return
            if schedule is None:
                self.schedules.pop(schedule_id, None)
            elif schedule_id in self.schedules:
                self.schedules[schedule_id] = schedule
            else:  # a new one: newest first
                self.schedules = {schedule_id: schedule, **self.schedules}
            self.redraw()
            return
        task = event.get("task") or {}
        schedule = self.schedules.get(task.get("schedule_id") or "")
        if schedule is not None and schedule.get("last_task_id") == task.get("id") \
                and schedule.get("last_status") != task.get("status"):
            self.schedules[schedule["id"]] = {**schedule, "last_status": task.get("status")}
            self.redraw()

    def redraw(self) -> None:
        """Rewrite the rows (a handful: no paging), keeping the cursor on its schedule."""
        if not self.loaded:
            return
        table = self.table
        selected = self.selected_id
        now = time.time()
        table.clear()
        for schedule_id, schedule in self.schedules.items():
            table.add_row(*schedule_cells(schedule, now), key=schedule_id)
        if selected in self.schedules:
            table.move_cursor(row=table.get_row_index(selected))
        count = len(self.schedules)
        paused = sum(1 for s in self.schedules.values() if s.get("paused"))
        self.sub_title = f"{count} schedule{'' if count == 1 else 's'}" + \
            (f" · {paused} paused" if paused else "")
        self.empty.update("" if count else
                          "No schedules yet: create one with `jupyter tasks schedule add`, "
                          "or POST /api/tasks/schedules.")
        self.empty.display = not count

    @property
    def selected_id(self) -> str | None:
        """The id of the schedule under the cursor."""
        table = self.table
        if not table.row_count:
            return None
        try:
            return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        except Exception:  # the cursor sits outside the rows (table being rewritten)
            return None

    def select(self, schedule_id: str) -> None:
        """Put the cursor on this schedule."""
        self.table.move_cursor(row=self.table.get_row_index(schedule_id))

    def _selected(self) -> dict[str, Any] | None:
        schedule = self.schedules.get(self.selected_id or "")
        if schedule is None:
            self.notify("No schedule selected", severity="warning")
        return schedule

    # --------------------------------------------------------------- actions

    @work(group="schedule-actions")
    async def _act(self, what: str, call: Callable[[], Awaitable[Any]],
                   success: Callable[[Any], str]) -> None:
        try:
            result = await call()
        except ActionError as exc:
            self.notify(f"{what} failed: {exc}", severity="error", timeout=8)
            return
        if isinstance(result, dict) and result.get("id") in self.schedules:
            # the answer is the schedule as it is now: no need to wait for its event
            self.schedules[result["id"]] = result
            self.redraw()
        self.notify(success(result))

    def action_toggle_pause(self) -> None:
        schedule = self._selected()
        if schedule is None:
            return
        source, name = self.source(), _name(schedule)
        if schedule.get("paused"):
            self._act("Resume", lambda: source.resume_schedule(schedule["id"]),
                      lambda s: f"Resumed {name}: next run "
                                f"{when_text(s['next_run_at'], time.time())}")
        else:
            self._act("Pause", lambda: source.pause_schedule(schedule["id"]),
                      lambda _: f"Paused {name}")

    def action_run_now(self) -> None:
        schedule = self._selected()
        if schedule is None:
            return
        source, name = self.source(), _name(schedule)
        def fired(task: dict[str, Any]) -> str:
            if task.get("deduplicated"):  # its job's task_key has a run active: none fired
                return (f"Not run now: {name} has a run of its task key {task.get('status')} "
                        f"already, {short_id(task['id'])}")
            return f"{name} fired now as {short_id(task['id'])}"

        self._act("Run now", lambda: source.run_schedule(schedule["id"]), fired)

    def action_delete(self) -> None:
        schedule = self._selected()
        if schedule is None:
            return
        source, name = self.source(), _name(schedule)

        def answered(yes: bool | None) -> None:
            if yes:
                self._act("Delete", lambda: source.delete_schedule(schedule["id"]),
                          lambda _: f"Deleted {name}")

        self.app.push_screen(AskScreen(f"Delete {name}?",
                                       "It fires no more; the tasks it fired stay.", "Delete"),
                             answered)

    def action_show_firings(self) -> None:
        schedule = self._selected()
        if schedule is not None:
            self.on_show_firings(schedule)

    def action_reload(self) -> None:
        self.load()

    def action_close(self) -> None:
        self.dismiss(None)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        # a click on a row's selected cursor (Enter is the binding above)
        event.stop()
        self.action_show_firings()


def _name(schedule: dict[str, Any]) -> str:
    return named(schedule.get("name") or "schedule", schedule["id"])
