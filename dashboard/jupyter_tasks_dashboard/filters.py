"""The filter bar: status, name, owner, free text (the order is the table's header)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Select

from .sources import ACTIVE, STATUSES, TERMINAL, Filters

STATUS_CHOICES: list[tuple[str, tuple[str, ...]]] = [
    ("active", ACTIVE),
    ("finished", TERMINAL),
    *[(s, (s,)) for s in STATUSES],
]


class FilterBar(Horizontal):
    """Inputs that post ``FilterBar.Changed`` with the new ``Filters`` on submit or select."""

    # (id, name) of the schedule whose firings are shown (chosen in the Schedules view)
    schedule: tuple[str, str] | None = None

    class Changed(Message):
        """``submitted``: Enter in a text box (the app then gives the table the focus)."""

        def __init__(self, filters: Filters, submitted: bool = False) -> None:
            super().__init__()
            self.filters = filters
            self.submitted = submitted

    def compose(self) -> ComposeResult:
        yield Select([(label, label) for label, _ in STATUS_CHOICES], prompt="any status",
                     id="filter-status", allow_blank=True)
        yield Input(placeholder="search label / name / id", id="filter-search")
        yield Input(placeholder="name", id="filter-name")
        yield Input(placeholder="owner", id="filter-owner")

    @property
    def filters(self) -> Filters:
        choice = self.query_one("#filter-status", Select).value
        statuses: tuple[str, ...] = ()
        for label, value in STATUS_CHOICES:
            if label == choice:
                statuses = tuple(value)
        def text(widget_id: str) -> str | None:
            return self.query_one(widget_id, Input).value.strip() or None
        return Filters(statuses=statuses, name=text("#filter-name"),
                       owner=text("#filter-owner"), search=text("#filter-search"),
                       schedule_id=self.schedule[0] if self.schedule else None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Changed(self.filters, submitted=True))

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(self.filters))

    def set_status(self, label: str | None) -> None:
        """Choose a status entry (None: any); the Select posts the change."""
        select = self.query_one("#filter-status", Select)
        if label is None:
            select.clear()
        else:
            select.value = label

    def show_schedule(self, schedule_id: str, name: str) -> Filters:
        """Only this schedule's firings, every other filter emptied; the new filters."""
        self.schedule = (schedule_id, name)
        for widget_id in ("#filter-search", "#filter-name", "#filter-owner"):
            self.query_one(widget_id, Input).value = ""
        select = self.query_one("#filter-status", Select)
        with select.prevent(Select.Changed):  # the caller applies the filters itself
            select.clear()
        return self.filters

    def clear(self) -> None:
        """Empty every box and the status (and the schedule); posts one change."""
        self.schedule = None
        for widget_id in ("#filter-search", "#filter-name", "#filter-owner"):
            self.query_one(widget_id, Input).value = ""
        select = self.query_one("#filter-status", Select)
        if select.is_blank():
            self.post_message(self.Changed(self.filters))
        else:
            select.clear()
