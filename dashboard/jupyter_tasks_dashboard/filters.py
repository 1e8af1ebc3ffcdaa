"""The filter bar: status, name, owner, free text, and the sort order."""

from __future__ import annotations

from typing import Any

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

    class Changed(Message):
        def __init__(self, filters: Filters) -> None:
            super().__init__()
            self.filters = filters

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.oldest_first = False

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
                       oldest_first=self.oldest_first)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Changed(self.filters))

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(self.filters))

    def toggle_order(self) -> Filters:
        self.oldest_first = not self.oldest_first
        return self.filters
