"""The dashboard's Textual app: queues, the task table, details, actions, live events.

It talks to a Jupyter server (``--url``/``--token``, or the local server it
finds in the Jupyter runtime dir) over REST and follows it live over the
websocket, or, with ``--db PATH`` or when no server runs, reads the SQLite
hub directly. Events are only queued as they arrive; every ``FLUSH_SECONDS``
the app applies the whole batch (the newest snapshot per task) to the rows
on screen, so a flood of progress events costs one repaint per tick.
"""

from __future__ import annotations

import gc
import re
import time
import xml.etree.ElementTree as ElementTree
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from rich.cells import cell_len
from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal
from textual.reactive import Reactive
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Footer, Header, Input

from .ask import AskScreen
from .commands import DashboardCommands
from .confirm import ConfirmScreen
from .detail import LOG_LINES, DetailPane
from .filters import FilterBar
from .fork import ForkScreen
from .formatting import named, parse_ts, short_id, shown_text
from .ordering import Sort, fetch_page
from .queues import QueueOverview
from .schedules import SchedulesScreen
from .sources import (
    OFFLINE,
    ONLINE,
    RESYNC,
    TERMINAL,
    ActionError,
    DataSource,
    Filters,
    Page,
)
from .table import TaskTable

FLUSH_SECONDS = 0.1
STATS_SECONDS = 2.0
# keys held while the focus moves are let go after this at the latest (a move that never
# came must not swallow the keyboard)
HOLD_SECONDS = 2.0
DETAIL_DELAY = 0.12
TERMINAL_EVENTS = frozenset(f"task.{s}" for s in TERMINAL)
SCHEDULE_CHANGED = "schedule.changed"
# actions on the task table's selection: off while the Schedules view is up (its own
# keys r and d must not also reach a task hidden behind it)
TASK_ACTIONS = frozenset({"cancel", "rerun", "fork", "answer", "delete", "copy_id", "sort",
                          "reverse_sort", "focus_filter", "show_schedules"})


class TasksDashboard(App[int]):
    """Queues, a paged task table, the selected task's details, and actions on it."""

    CSS_PATH = "dashboard.tcss"
    TITLE = "jupyter-tasks"
    COMMANDS = App.COMMANDS | {DashboardCommands}
    # the header shows the page number: changing it must repaint the header, not (as
    # App.sub_title does) the whole screen on every page turn
    sub_title: Reactive[str] = Reactive("", compute=False, repaint=False)

    BINDINGS = [
        Binding("c", "cancel", "Cancel"),
        Binding("r", "rerun", "Rerun"),
        Binding("f", "fork", "Fork"),
        Binding("a", "answer", "Answer"),
        Binding("d", "delete", "Delete"),
        Binding("y", "copy_id", "Copy id"),
        Binding("t", "show_schedules", "Schedules"),
        Binding("s", "sort", "Sort"),
        Binding("S", "reverse_sort", "Reverse", show=False),
        Binding("slash", "focus_filter", "Filter"),
        Binding("escape", "focus_table", "Table", show=False),
        Binding("ctrl+r", "reload", "Reload", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, source: DataSource, *, page_size: int = 50,
                 fallback: Callable[[], DataSource] | None = None) -> None:
        super().__init__()
        # the imports left ~100,000 long-lived objects: frozen, a full collection during
        # start-up (one landed in the first frame: ~80 ms) does not walk them again
        gc.freeze()
        self.source = source
        self.fallback = fallback
        self.page_size = page_size
        self.filters = Filters()
        self.sort = Sort()
        self._pending: list[dict[str, Any]] = []
        self._detail_timer: Timer | None = None
        self._detail_pending = False  # the timer above has not fired yet
        self.offline = False  # the live connection to the server dropped, not back yet
        self._stats_timer: Timer | None = None
        self._event_flush: dict[str, int] = {}  # task id -> flush that last applied an event
        self.started_at = time.perf_counter()
        # observability for tests and the benchmark
        self.events_seen = 0
        self.flushes = 0
        self.page_loads = 0
        self.paints: list[float] = []  # perf_counter() after each page reached the screen
        self.last_page_query = 0.0
        self.last_page_build = 0.0
        self.first_frame_at: float | None = None
        self.notices: deque[str] = deque(maxlen=200)  # the latest notifications' messages
        self.ready = False
        self._held_keys: list[events.Key] | None = None
        self._hold_timer: Timer | None = None
        self._release_on_page = False

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        # kept as attributes: queries would miss them while a modal screen is on top
        self.overview = QueueOverview(id="queues")
        self.filter_bar = FilterBar(id="filters")
        self.table = TaskTable(id="tasks")
        self.detail = DetailPane(id="detail")
        yield Header(show_clock=False)
        yield self.overview
        yield self.filter_bar
        with Horizontal(id="main"):
            yield self.table
            yield self.detail
        # the key bar is mounted after the first paint (Textual builds and styles one widget
        # per binding: ~100 ms); its slot keeps the layout from moving when it arrives
        self.footer_slot = Container(id="footer-slot")
        yield self.footer_slot

    def on_mount(self) -> None:
        # the first frame is this skeleton (header, empty counts, placeholder rows); the
        # source's imports and the first page come after it, in the boot worker
        self.sub_title = f"{self.source.description} · loading…"
        self.table.set_sort(self.sort)
        self.table.focus()
        self.call_after_refresh(self._first_frame)

    def _first_frame(self) -> None:
        self.first_frame_at = time.perf_counter()
        # only now: the source's imports (a thread) would compete with the first frame
        self._boot()

    async def on_unmount(self) -> None:
        # the app's workers first: one still reading would meet a closed source (it is
        # refused with an ActionError then, which each worker handles)
        self.workers.cancel_all()
        try:
            await self.source.close()
        except Exception:
            pass

    # ------------------------------------------------------------ fast typing

    async def on_event(self, event: events.Event) -> None:
        """Hold the keys typed after one that moves the focus until it has moved.

        Textual hands a key to the widget focused when it arrives. After ``/`` (to
        the search box) or Enter/escape in a box (back to the table), the move happens
        only once that key went through its widget, so keys typed right behind it went
        to the old place: letters to the table (lost), ``c`` into the search box.
        """
        if isinstance(event, events.Key) and not event.is_forwarded:
            if self._held_keys is not None:
                self._held_keys.append(event)
                return
            moves = self._moves_focus(event.key)
            await super().on_event(event)
            if moves:
                self._held_keys = []
                self._hold_timer = self.set_timer(HOLD_SECONDS, self._release_keys)
            return
        await super().on_event(event)

    def _moves_focus(self, key: str) -> bool:
        if isinstance(self.screen, ForkScreen):
            return self.screen.holds_after(key)
        if isinstance(self.screen, ModalScreen) or self.schedules_screen is not None:
            return False
        in_box = isinstance(self.focused, Input) and self.focused in self.filter_bar.children
        if key == "slash":
            return not in_box
        return key in ("enter", "escape") and in_box

    def _release_keys(self) -> None:
        """Deliver the held keys again, in order, to where the focus is now."""
        held, self._held_keys = self._held_keys, None
        self._release_on_page = False
        if self._hold_timer is not None:
            self._hold_timer.stop()
            self._hold_timer = None
        for key in held or ():
            self.post_message(events.Key(key.key, key.character))

    # ------------------------------------------------------------- start-up

    @work(group="boot")
    async def _boot(self) -> None:
        try:
            await self.source.start()
            # the first page is also the check that the source answers
            first = await fetch_page(self.source, self.filters, self.sort, None,
                                     self.page_size)
        except Exception as exc:
            if self.fallback is None:
                self.notify(f"Cannot connect: {exc}", severity="error", timeout=30)
                self.sub_title = f"{self.source.description} · not connected"
                self.table.skeleton = False
                self.table.refresh()
                return
            failed = self.source.description
            self.source = self.fallback()
            self.notify(f"{failed} did not answer ({exc}); reading {self.source.description}",
                        severity="warning")
            try:
                await self.source.start()
                first = await fetch_page(self.source, self.filters, self.sort, None,
                                         self.page_size)
            except Exception as again:  # e.g. no database there: it is never created
                self.notify(f"Cannot read {self.source.description}: {again}",
                            severity="error", timeout=30)
                self.sub_title = f"{self.source.description} · not connected"
                self.table.skeleton = False
                self.table.refresh()
                return
        self.ready = True
        self._show_page(0, None, first)
        self._follow()
        self.set_interval(FLUSH_SECONDS, self.flush_events)
        # the rest (queue stats, throughput sample, detail pane) waits for the first paint

    def _after_first_paint(self) -> None:
        """Start-up work the first page of the table does not need, once it is on screen."""
        # Textual and the engine leave ~90,000 long-lived objects behind at start-up; a full
        # garbage collection walks them all (40-80 ms, a visible stall while paging) every
        # couple of seconds. Frozen, they are skipped: only objects made since are scanned.
        gc.freeze()
        self.run_worker(self._mount_footer(), group="footer")
        self.run_worker(self.detail.build(), group="detail-build")
        self._load_stats()
        self._seed_throughput()
        self.set_interval(1.0, self._tick)

    async def _mount_footer(self) -> None:
        await self.footer_slot.mount(Footer())
        # a footer shows nothing until it hears the bindings
        self.footer_slot.screen.refresh_bindings()

    @work(group="seed")
    async def _seed_throughput(self) -> None:
        try:
            page = await self.source.list_tasks(Filters(statuses=TERMINAL), None, 500)
        except ActionError:
            return
        for task in page.tasks:
            self.overview.record(task, parse_ts(task.get("finished_at")))
        self.overview.redraw()

    # ------------------------------------------------------------------ pages

    @work(exclusive=True, group="page")
    async def _load_page(self, index: int, cursor: str | None, reread: bool = False) -> None:
        try:
            page = await fetch_page(self.source, self.filters, self.sort, cursor,
                                    self.page_size)
        except ActionError as exc:
            self.notify(f"Loading tasks failed: {exc}", severity="error")
            if not reread:
                self.table.turn_failed()
            self._release_keys()
            return
        table = self.table
        if not page.tasks and not reread and index == table.page_index + 1:
            # the last page was full: its cursor promised more that is not there (the
            # next group in the default order empty, or the last tasks deleted since)
            table.turn_found_nothing()
            self.page_loads += 1
            return
        self._show_page(index, cursor, page, reread=reread)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Task actions act only while the task table is what the user looks at."""
        return action not in TASK_ACTIONS or self.schedules_screen is None

    @property
    def schedules_screen(self) -> SchedulesScreen | None:
        """The Schedules view when it is open (modals may sit above it)."""
        for screen in self.screen_stack:
            if isinstance(screen, SchedulesScreen):
                return screen
        return None

    def _show_page(self, index: int, cursor: str | None, page: Page, *,
                   reread: bool = False) -> None:
        self.last_page_query = page.elapsed
        t0 = time.perf_counter()
        self.table.show_page(index, cursor, page.tasks, page.next_cursor, reread=reread)
        self.last_page_build = time.perf_counter() - t0
        self.page_loads += 1
        self._describe()
        self.call_after_refresh(self._painted)
        if page.tasks:  # the row under the cursor may be another task now
            self._schedule_details(restart=False)
        elif self.detail.task_id is not None and index == 0:
            # nothing matches (a schedule never fired): no task's details read as current
            self.detail.gone(self.detail.task_id, "is not among the tasks shown")
        if self._release_on_page:
            self._release_keys()

    def _painted(self) -> None:
        self.paints.append(time.perf_counter())
        if len(self.paints) == 1:
            self._after_first_paint()

    def _describe(self) -> None:
        """The header's sub-title: page, the same count as the totals line, order."""
        table = self.table
        shown = f"page {table.page_index + 1}"
        if self.overview.counted:
            noun = "matching" if self.filters.active else \
                ("task" if self.overview.total_text() == "1" else "tasks")
            shown += f" · {self.overview.total_text()} {noun}"
        schedule = self.filter_bar.schedule
        if schedule and self.filters.schedule_id == schedule[0]:
            # its own text, escaped as in the table: written raw, an escape sequence in a
            # name set the terminal's title and cleared the header's colours
            shown += f" · firings of {shown_text(schedule[1])} (esc: schedules)"
        state = " · offline, reconnecting (what is shown may be stale)" if self.offline else ""
        self.sub_title = f"{self.source.description}{state} · {shown} · {self.sort.describe()}"

    @on(TaskTable.RequestPage)
    def _page_requested(self, message: TaskTable.RequestPage) -> None:
        self._load_page(message.index, message.cursor)

    @on(FilterBar.Changed)
    def _filters_changed(self, message: FilterBar.Changed) -> None:
        self.apply_filters(message.filters)
        if message.submitted:  # Enter: back to the table, where c, r, f... act again
            self.set_focus(self.table)
            # the keys typed behind Enter act on the filtered rows: held until they are in
            if self._held_keys is not None:
                self._release_on_page = True

    @on(TaskTable.SortRequested)
    def _sort_requested(self, message: TaskTable.SortRequested) -> None:
        self.apply_sort(self.sort.choose(message.column))

    def apply_filters(self, filters: Filters) -> None:
        """Show the first page of tasks matching ``filters``, and count them."""
        changed = filters != self.filters
        self.filters = filters
        self.table.reset_paging()
        self._load_page(0, None)
        if changed:
            self.overview.set_filters(filters)
            self._describe()
            if self.ready:
                self._load_stats()

    def apply_sort(self, sort: Sort) -> None:
        """Show the first page in another order."""
        self.sort = sort
        self.table.set_sort(sort)
        self.table.reset_paging()
        self._load_page(0, None)
        self._describe()

    def notify(self, message: str, **options: Any) -> None:
        """Show a notification (Textual's ``App.notify``) and keep its message in ``notices``.

        Always plain text: the messages name tasks, and a label read as markup could end
        the app (an unmatched ``[/b]`` raised MarkupError when the toast rendered).
        """
        self.notices.append(message)
        super().notify(message, **{**options, "markup": False})

    @property
    def pending_events(self) -> int:
        """Live events received and not yet applied to the screen."""
        return len(self._pending)

    def queue_events(self, batch: list[dict[str, Any]]) -> None:
        """Apply these events with the next batch, as if the source had sent them."""
        self._pending.extend(batch)

    def reload_page(self) -> None:
        table = self.table
        if table.turn_under_way:
            return  # the page it turns to is read fresh: a re-read would cancel the turn
        self._load_page(table.page_index, table.page_cursors[table.page_index], reread=True)

    # ----------------------------------------------------------------- events

    @work(group="events")
    async def _follow(self) -> None:
        try:
            async for event in self.source.events():
                if event.get("type") in (OFFLINE, ONLINE):
                    # said at once: the counts, rows and workers on screen are the last
                    # the server sent, and may be stale until it is back
                    self.offline = event["type"] == OFFLINE
                    self._describe()
                    if not self.offline:
                        self._load_stats()
                    continue
                self.queue_event(event)
        except ActionError as exc:
            self.notify(f"Live updates stopped: {exc}", severity="error", timeout=30)

    def queue_event(self, event: dict[str, Any]) -> None:
        """Take a live event; it is applied with the others at the next ``flush_events``."""
        self._pending.append(event)  # only queued: a flood is applied in batches

    def flush_events(self) -> None:
        """Apply the live events queued since the last flush (a timer's work, 10 a second)."""
        # a flush that fires while the app shuts down finds no screen to show them on
        # (it ended a test run with ScreenStackError, on a loaded CI machine)
        if not self._pending or not self.screen_stack:
            return
        events, self._pending = self._pending, []
        self.flushes += 1
        if len(self._event_flush) > 10_000:
            self._event_flush.clear()
        self.events_seen += len(events)
        table, detail, filters = self.table, self.detail, self.filters
        latest: dict[str, dict[str, Any]] = {}
        structural = need_logs = lineage_changed = False
        sort = self.sort
        # where a new task lands: on the first page running first or newest first, at the
        # end oldest first, anywhere in a column's order (then the page on screen is re-read)
        if sort.grouped or sort.column == "id":
            lands_here = table.page_index == 0 and (sort.grouped or sort.descending)
        else:
            lands_here = True
        lineage_ids = set(getattr(self, "_lineage_ids", ()))
        schedules = self.schedules_screen
        for event in events:
            etype, task_id, task = event.get("type"), event.get("task_id"), event.get("task")
            if etype == SCHEDULE_CHANGED:  # no task: the Schedules view's alone
                if schedules is not None:
                    schedules.apply_event(event)
                continue
            if schedules is not None and task and task.get("schedule_id"):
                schedules.apply_event(event)  # a firing's status is its schedule's last status
            if etype == RESYNC:
                structural = True
                self._load_stats()
                continue
            if etype in TERMINAL_EVENTS and task:
                self.overview.record(task, parse_ts(event.get("ts")))
            if etype == "task.deleted":
                latest.pop(task_id, None)
                structural = structural or task_id in table.tasks
                detail.gone(task_id, "was deleted")
                continue
            if task:
                latest[task_id] = task
            if task and task.get("parent_id") in lineage_ids and task_id not in lineage_ids:
                lineage_changed = True  # a new rerun or fork of the shown family
            if etype in ("task.created", "task.started") and task:
                # a background task that starts at once has no task.created event
                if lands_here and filters.matches(task) and (
                        etype == "task.created" or task_id not in table.tasks):
                    structural = True
            elif etype == "task.log" and task_id == detail.task_id:
                need_logs = True
        for task_id, task in latest.items():
            self._event_flush[task_id] = self.flushes
            dialog = self.screen
            if isinstance(dialog, ConfirmScreen) and dialog.task_json.get("id") == task_id:
                self._close_answer_dialog(task_id, dialog.settled_elsewhere(task))
            if task_id in table.tasks:
                if sort.grouped and sort.group_of(task) != sort.group_of(table.tasks[task_id]):
                    structural = True  # e.g. running -> finished: it moves to its group
                table.patch(task)
                if not filters.matches(task):
                    structural = True
            if task_id == detail.task_id:
                before = (detail.current_task or {}).get("status")
                detail.patch(task)
                if task.get("status") in TERMINAL and before not in TERMINAL:
                    # the end brings what only the full read has: value notes, artifacts
                    lineage_changed = True
            if task_id in lineage_ids and task.get("status") in TERMINAL:
                lineage_changed = True
        if structural:
            self.reload_page()
        if need_logs:
            self._fetch_logs(detail.task_id)
        if lineage_changed and detail.task_id:
            self._load_details(detail.task_id)
        if any(e.get("type") in TERMINAL_EVENTS or e.get("type") == "task.created"
               for e in events):
            self.overview.redraw()

    def _tick(self) -> None:
        self.table.refresh_durations()
        task = self.detail.current_task
        if task is not None and task.get("status") == "running":
            self.detail.patch(task)  # its "ran" counts on, as the table's duration does

    @work(exclusive=True, group="stats")
    async def _load_stats(self) -> None:
        # counting 100,000 rows takes a while: poll at most 1/10 of the time, at least every 2 s
        if self._stats_timer is not None:
            self._stats_timer.stop()
        t0 = time.perf_counter()
        filters = self.filters
        try:
            stats = await self.source.count(filters)
        except ActionError as exc:
            stats = None
            # said (once: the counts poll every 2 s): a file deleted under the dashboard
            # showed the last counts as live for good. Not while offline, which the app
            # already says
            if self.overview.count_failed(str(exc)) and not self.offline:
                self.notify(f"Counting tasks failed: {exc}", severity="error")
        elapsed = time.perf_counter() - t0
        self._stats_timer = self.set_timer(max(STATS_SECONDS, 10 * elapsed), self._load_stats)
        if stats is not None:
            self.overview.update_stats(stats, filters)
            self._describe()

    # ---------------------------------------------------------------- details

    @on(TaskTable.RowHighlighted)
    def _row_highlighted(self, message: TaskTable.RowHighlighted) -> None:
        self._schedule_details()

    def _schedule_details(self, *, restart: bool = True) -> None:
        # paging through rows must not fire a request per row: wait until the cursor
        # rests. A page re-read does not push the wait back (``restart=False``): under a
        # steady stream of changes pages are re-read faster than the wait, and the
        # details stayed on a task that was no longer highlighted
        if self._detail_timer is not None:
            if not restart and self._detail_pending:
                return
            self._detail_timer.stop()
        self._detail_pending = True
        self._detail_timer = self.set_timer(DETAIL_DELAY, self._details_now)

    def _details_now(self) -> None:
        self._detail_pending = False
        task_id = self.table.selected_id
        if task_id and (task_id != self.detail.task_id or self.detail.current_task is None):
            self._load_details(task_id)

    @work(exclusive=True, group="details")
    async def _load_details(self, task_id: str) -> None:
        asked_at = self.flushes
        try:
            details = await self.source.details(task_id)
        except ActionError as exc:
            self.notify(f"Cannot read task {short_id(task_id)}: {exc}", severity="error")
            return
        await self.detail.build()
        if self._event_flush.get(task_id, -1) >= asked_at and task_id in self.table.tasks:
            # an event applied meanwhile is newer than this read: keep its snapshot (events
            # carry no spec: the read's full-view fields stay)
            details.task = {**details.task, **self.table.tasks[task_id]}
        new = task_id != self.detail.task_id
        self._lineage_ids = {details.lineage_root["id"]} if details.lineage_root else set()
        for kids in details.lineage.values():
            self._lineage_ids.update(k["id"] for k in kids)
        self.detail.show(details)
        self.table.patch(details.task)
        if new:
            self._fetch_logs(task_id, tail=True)

    @work(exclusive=True, group="logs")
    async def _fetch_logs(self, task_id: str | None, tail: bool = False) -> None:
        if task_id is None:
            return
        after = 0 if tail else self.detail.log_next
        collected: list[dict[str, Any]] = []
        for _ in range(50):  # at most 50 pages of catch-up per fetch
            try:
                entries, next_seq = await self.source.logs(task_id, after, 1000)
            except ActionError:
                return
            collected = (collected + entries)[-LOG_LINES:]
            after = next_seq
            if len(entries) < 1000:
                break
        if task_id == self.detail.task_id:
            self.detail.append_logs(task_id, collected, after)

    # ---------------------------------------------------------------- actions

    def _selected(self) -> dict[str, Any] | None:
        task = self.table.selected
        if task is None:
            self.notify("No task selected", severity="warning")
        return task

    @work(group="actions")
    async def _act(self, what: str, call: Callable[[], Awaitable[Any]],
                   success: Callable[[Any], str]) -> None:
        try:
            result = await call()
        except ActionError as exc:
            self.notify(f"{what} failed: {exc}", severity="error", timeout=8)
            return
        self.notify(success(result))

    def _ask_then(self, question: str, detail: str, yes: str,
                  then: Callable[[], None]) -> None:
        """Ask a yes/no question in a modal; run ``then`` on yes."""
        def answered(ok: bool | None) -> None:
            if ok:
                then()

        self.push_screen(AskScreen(question, detail, yes), answered)

    def action_cancel(self) -> None:
        task = self._selected()
        if task is None:
            return
        if task.get("status") in TERMINAL:
            self.notify(f"{_name(task)} has already ended ({task.get('status')})",
                        severity="warning")
            return

        def cancel() -> None:
            self._act("Cancel", lambda: self.source.cancel(task["id"]),
                      lambda t: f"Cancel requested for {_name(t)}" if t["status"] != "cancelled"
                      else f"Cancelled {_name(t)}")

        self._ask_then(f"Cancel {_name(task)}?", f"It is {task.get('status')}.",
                       "Cancel task", cancel)

    def action_rerun(self) -> None:
        task = self._selected()
        if task is not None:
            def rerun_started(new: dict[str, Any]) -> str:
                self._load_details(task["id"])  # the lineage tree gains the child
                if new.get("deduplicated"):  # its task_key's run, already active
                    which = "" if new["id"] == task["id"] else f" as {short_id(new['id'])}"
                    return (f"Not rerun: {_name(task)} is already {new.get('status')}{which} "
                            "(one run at a time under its task key)")
                return f"Rerun of {_name(task)} started as {short_id(new['id'])}"

            self._act("Rerun", lambda: self.source.rerun(task["id"]), rerun_started)

    def action_fork(self) -> None:
        task = self._selected()
        if task is None:
            return
        if self.detail.task_id == task["id"] and self.detail.current_task is not None:
            task = self.detail.current_task  # the full view: its spec, the work it ran

        def forked(new: dict[str, Any] | None) -> None:
            if new is not None:
                self.notify(f"Fork of {_name(task)} started as {short_id(new['id'])}")
                self._load_details(task["id"])
            if self._held_keys is not None:
                self.call_after_refresh(self._release_keys)  # once the table has the focus

        # the keys held behind its ctrl+s go to the table once it closed (see _moves_focus),
        # or back to the dialog when it stays open
        self.push_screen(ForkScreen(task, lambda o: self.source.fork(task["id"], o),
                                    on_settled=self._release_keys), forked)

    def action_answer(self) -> None:
        task = self._selected()
        if task is None:
            return
        if self.detail.task_id == task["id"] and self.detail.current_task is not None:
            task = self.detail.current_task  # the freshest snapshot
        confirmation = task.get("confirmation") or {}
        if not confirmation or confirmation.get("answer") is not None:
            self.notify(f"{_name(task)} is not waiting for an answer", severity="warning")
            return

        asked_at = confirmation.get("asked_at")

        def answered(answer: str | None) -> None:
            if answer is not None:
                # the question shown only: one replaced meanwhile is refused, not answered
                self._act("Answer", lambda: self.source.confirm(task["id"], answer, asked_at),
                          lambda t: f"Answered {answer!r} to {_name(t)}")

        self.push_screen(ConfirmScreen(task), answered)

    def _close_answer_dialog(self, task_id: str, reason: str | None) -> None:
        """Close the answer dialog of ``task_id`` whose question was settled elsewhere."""
        dialog = self.screen
        if reason and isinstance(dialog, ConfirmScreen) and dialog.is_active \
                and dialog.task_json.get("id") == task_id:
            dialog.dismiss(None)
            self.notify(f"{_name(dialog.task_json)}: {reason}", severity="warning")

    def action_delete(self) -> None:
        task = self._selected()
        if task is None:
            return
        if task.get("status") not in TERMINAL:
            # said before asking (before: "Delete …? forgotten for good", then refused)
            self.notify(f"{_name(task)} is {task.get('status')}: cancel it before deleting it",
                        severity="warning")
            return

        def delete() -> None:
            self._act("Delete", lambda: self.source.delete(task["id"]),
                      lambda _: f"Deleted {_name(task)}")

        self._ask_then(f"Delete {_name(task)}?",
                       "Its row, log and artifacts are forgotten for good.",
                       "Delete", delete)

    def action_copy_id(self) -> None:
        task = self._selected()
        if task is not None:
            self.copy_to_clipboard(task["id"])
            self.notify(f"Copied {task['id']}")

    def action_sort(self) -> None:
        self.apply_sort(self.sort.next_column())

    def action_reverse_sort(self) -> None:
        self.apply_sort(self.sort.flipped())

    def action_sort_by(self, column: str) -> None:
        self.apply_sort(Sort() if column == "status" else Sort().choose(column))

    def action_focus_filter(self) -> None:
        # at once (Widget.focus() waits a message): the keys held since "/" go to the box
        self.set_focus(self.filter_bar.query_one("#filter-search", Input))
        self._release_keys()

    def action_filter_status(self, label: str) -> None:
        self.filter_bar.set_status(label)

    def action_clear_filters(self) -> None:
        self.filter_bar.clear()

    def action_next_page(self) -> None:
        self.table.action_next_page()

    def action_prev_page(self) -> None:
        self.table.action_prev_page()

    def action_focus_table(self) -> None:
        if self.focused is self.table and self.filters.schedule_id:
            # escape on a schedule's firings: back where they were chosen
            self.filter_bar.schedule = None
            self.apply_filters(self.filter_bar.filters)
            self.action_show_schedules()
            return
        self.set_focus(self.table)
        self._release_keys()

    def action_show_schedules(self) -> None:
        if not self.ready:
            self.notify("Still connecting: the schedules come once the tasks are read",
                        severity="warning")
            return
        if self.schedules_screen is None:
            self.push_screen(SchedulesScreen(lambda: self.source, self.show_firings))

    def show_firings(self, schedule: dict[str, Any]) -> None:
        """Leave the Schedules view for the task table filtered to this schedule's firings."""
        screen = self.schedules_screen
        if screen is not None:
            screen.dismiss(None)
        self.apply_filters(self.filter_bar.show_schedule(schedule["id"],
                                                         schedule.get("name") or "schedule"))
        self.set_focus(self.table)

    def screen_text(self) -> str:
        """The current screen (modals included) as plain text, for tests and logs."""
        width, height = self.size
        return screenshot_text(self.export_screenshot(simplify=True), width, height)

    def action_reload(self) -> None:
        if not self.ready:
            # the start failed (no database there yet, a server not up): try it again,
            # or ctrl+r said "closed" and the counts read "counting…" for good
            self._boot()
            return
        self.reload_page()
        self._load_stats()


_LINE = re.compile(r"-line-(\d+)\)")


def screenshot_text(svg: str, width: int, height: int) -> str:
    """The characters of a Textual SVG screenshot (``App.export_screenshot``), line by line."""
    rows: list[list[tuple[int, str]]] = [[] for _ in range(height)]
    for node in ElementTree.fromstring(svg).iter("{http://www.w3.org/2000/svg}text"):
        # the screen's text runs are clipped to their line; the window title is not
        line = _LINE.search(node.get("clip-path") or "")
        text = (node.text or "").replace("\xa0", " ").rstrip("\n")  # a line's own end
        if line is None or not text or int(line.group(1)) >= height:
            continue
        # Rich places a run at column * char width and stretches it to len(text) chars
        column = round(float(node.get("x", 0)) * len(text) / float(node.get("textLength", 1)))
        rows[int(line.group(1))].append((column, text))
    lines = []
    for runs in rows:
        line = ""
        for column, text in sorted(runs):
            line += " " * max(0, column - cell_len(line)) + text
        lines.append(line + " " * max(0, width - cell_len(line)))
    return "\n".join(lines)


def _name(task: dict[str, Any]) -> str:
    return named(task.get("label") or task.get("name") or "task", task["id"])
