"""The modal that answers a task's pending confirmation with one of its choices."""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Label

from .formatting import label_text, shown_text
from .sources import TERMINAL

# a button's width beyond its label's cells (its border and padding), the least it is
# (Button's min-width), the margin to the next; the dialog's width and what its border
# and padding take (dashboard.tcss: .dialog)
BUTTON_FRAME = 4
BUTTON_MIN_WIDTH = 16
BUTTON_MARGIN = 2
DIALOG_WIDTH = 72
DIALOG_FRAME = 6


def buttons_fit_in_a_row(labels: list[str], screen_width: int) -> bool:
    """Whether buttons with these labels fit side by side in the dialog on this screen."""
    row = sum(max(cell_len(label) + BUTTON_FRAME, BUTTON_MIN_WIDTH) + BUTTON_MARGIN
              for label in labels)
    return row <= min(DIALOG_WIDTH, screen_width) - DIALOG_FRAME


class ChoiceButton(Button):
    """A button whose Enter answers at once (a plain Button answers a message later, and
    the keys typed right after it would reach the closing dialog instead of the table)."""

    def action_press(self) -> None:
        screen = self.screen
        if isinstance(screen, ConfirmScreen):
            screen.choose_button(self.id or "")


class ConfirmScreen(ModalScreen[str | None]):
    """Shows the question; dismisses with the chosen answer (None on escape or "Later").

    Enter (the first choice until a button has the focus) and ``1``..``9`` answer at once.
    """

    # the first choice has the focus from the first key on (on_mount would be too late
    # for an Enter typed right behind "a")
    AUTO_FOCUS = "#confirm-dialog Button"
    BINDINGS = [
        Binding("escape", "dismiss_none", "Close"),
        Binding("enter", "choose(0)", "First choice", show=False),
        *(Binding(str(n), f"choose({n - 1})", str(n), show=False) for n in range(1, 10)),
    ]

    def __init__(self, task: dict[str, Any]) -> None:
        super().__init__()
        self.task_json = task
        confirmation = task.get("confirmation") or {}
        self.prompt = shown_text(confirmation.get("prompt") or "", keep="\n")
        self.choices = [shown_text(c) for c in confirmation.get("choices") or []]

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog", classes="dialog"):
            yield Label(Content.assemble((label_text(self.task_json), "bold"), " asks:"),
                        classes="dialog-title")
            yield Label(Content(self.prompt), id="confirm-prompt")
            labels = [f"{choice} ({i + 1})" if i < 9 else choice
                      for i, choice in enumerate(self.choices)]
            # one row while the buttons fit the dialog, else one button a row: a row
            # does not wrap, and the choices past its edge could be neither seen nor clicked
            fits = buttons_fit_in_a_row([*labels, "Later"], self.app.size.width)
            stack = Horizontal if fits else Vertical
            with stack(classes="dialog-buttons"):
                for i, label in enumerate(labels):
                    # a Content: a button reads a str label as markup
                    yield ChoiceButton(Content(label), id=f"choice-{i}",
                                       variant="primary" if i == 0 else "default")
                yield ChoiceButton("Later", id="choice-later")

    def on_mount(self) -> None:
        # the focused first choice scrolled a long question's start out of sight
        dialog = self.query_one("#confirm-dialog")
        self.call_after_refresh(dialog.scroll_home, animate=False)

    def settled_elsewhere(self, task: dict[str, Any]) -> str | None:
        """Why the question shown is no longer waiting here (None while it is)."""
        confirmation = task.get("confirmation") or {}
        if confirmation.get("answer") is not None:
            return f"answered {shown_text(str(confirmation['answer']))!r} elsewhere"
        if task.get("status") in TERMINAL:
            return f"ended {task['status']} before an answer"
        shown = self.task_json.get("confirmation") or {}
        if not confirmation or confirmation.get("asked_at") != shown.get("asked_at"):
            # the choices on screen were for another question: they must not answer this one
            return "no longer asks that question"
        return None

    def on_button_pressed(self, event: Button.Pressed) -> None:
        # a mouse click (keys answer in ChoiceButton.action_press)
        event.stop()
        self.choose_button(event.button.id or "")

    def choose_button(self, button_id: str) -> None:
        """Answer with the choice of this button ("Later": no answer)."""
        if button_id == "choice-later":
            self.action_dismiss_none()
        else:
            self.action_choose(int(button_id.rsplit("-", 1)[1]))

    def action_choose(self, index: int) -> None:
        # a second answer typed before the first closed the dialog is ignored
        if self.is_active and 0 <= index < len(self.choices):
            self.dismiss(self.choices[index])

    def action_dismiss_none(self) -> None:
        if self.is_active:
            self.dismiss(None)
