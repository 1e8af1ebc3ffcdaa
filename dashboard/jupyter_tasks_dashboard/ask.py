"""The modal that asks before a destructive action (cancel, delete): y / n."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class AnswerButton(Button):
    """A button whose Enter answers at once (a plain Button answers a message later, and
    the keys typed right after it would reach the closing dialog instead of the table)."""

    def action_press(self) -> None:
        screen = self.screen
        if isinstance(screen, AskScreen):
            screen.action_answer(self.id == "ask-yes")


class AskScreen(ModalScreen[bool]):
    """Dismisses with True on ``y`` (or its button), False on ``n``/escape/Enter."""

    # the safe answer has the focus from the first key on: Enter keeps the task (the
    # default, the first button, would be "yes" until on_mount moved the focus)
    AUTO_FOCUS = "#ask-no"
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
        # Enter before any button has the focus (the dialog is still opening): no
        Binding("enter", "answer(False)", "No", show=False),
    ]

    def __init__(self, question: str, detail: str = "", yes: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.detail = detail
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(id="ask-dialog", classes="dialog"):
            yield Label(Content.styled(self.question, "bold"), classes="dialog-title",
                        id="ask-question")
            if self.detail:
                yield Label(Content(self.detail), id="ask-detail")
            with Horizontal(classes="dialog-buttons"):
                yield AnswerButton(f"{self.yes} (y)", id="ask-yes", variant="error")
                yield AnswerButton("No (n)", id="ask-no", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "ask-yes")

    def action_answer(self, yes: bool) -> None:
        if self.is_active:  # a second answer typed before the first closed it: ignored
            self.dismiss(yes)
