"""The modal that answers a task's pending confirmation with one of its choices."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class ConfirmScreen(ModalScreen[str | None]):
    """Shows the question; dismisses with the chosen answer (None on escape)."""

    BINDINGS = [Binding("escape", "dismiss_none", "Close")]

    def __init__(self, task: dict[str, Any]) -> None:
        super().__init__()
        self.task_json = task
        confirmation = task.get("confirmation") or {}
        self.prompt = str(confirmation.get("prompt") or "")
        self.choices = [str(c) for c in confirmation.get("choices") or []]

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog", classes="dialog"):
            label = self.task_json.get("label") or self.task_json.get("name") or ""
            yield Label(f"[b]{escape(label)}[/b] asks:", classes="dialog-title")
            yield Label(escape(self.prompt), id="confirm-prompt")
            with Horizontal(classes="dialog-buttons"):
                for i, choice in enumerate(self.choices):
                    yield Button(choice, id=f"choice-{i}",
                                 variant="primary" if i == 0 else "default")
                yield Button("Later", id="choice-later")

    def on_mount(self) -> None:
        if self.choices:
            self.query_one("#choice-0", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "choice-later":
            self.dismiss(None)
            return
        index = int((event.button.id or "choice-0").rsplit("-", 1)[1])
        self.dismiss(self.choices[index])

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
