"""The modal that asks before a destructive action (cancel, delete): y / n."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class AskScreen(ModalScreen[bool]):
    """Dismisses with True on ``y`` (or its button), False on ``n``/escape."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, detail: str = "", yes: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.detail = detail
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(id="ask-dialog", classes="dialog"):
            yield Label(f"[b]{escape(self.question)}[/b]", classes="dialog-title",
                        id="ask-question")
            if self.detail:
                yield Label(escape(self.detail), id="ask-detail")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} (y)", id="ask-yes", variant="error")
                yield Button("No (n)", id="ask-no", variant="primary")

    def on_mount(self) -> None:
        # the safe answer has the focus: Enter keeps the task
        self.query_one("#ask-no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "ask-yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
