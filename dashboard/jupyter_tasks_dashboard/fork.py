"""The modal that forks a task: edit its params as JSON, validated before submitting."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, TextArea

from jupyter_tasks.exceptions import KeyGivenTwice
from jupyter_tasks.values import loads_keys_once

from .formatting import NAME_CELLS, cut_to_cells, label_text, pretty_json, shown_text
from .sources import ActionError

# which override the JSON object stands for, per task kind (None: the whole overrides object)
EDITED_FIELD = {"function": "params", "notebook": "parameters"}
# the overrides a kind's dialog starts with: its task's own work, from its spec
OWN_WORK = {"subprocess": ("command",), "code": ("code", "input_data"), "cell": ("code",)}


def own_work(task: dict[str, Any]) -> dict[str, Any]:
    """The task's own work as overrides (sent unchanged, the fork runs what it ran); empty
    when its spec is not read yet, which forks the same work too."""
    spec = task.get("spec") or {}
    fields = OWN_WORK.get(task.get("kind") or "", ())
    work = {field: spec[field] for field in fields if field in spec}
    if task.get("kind") == "cell" and "code" not in work and spec.get("source"):
        work["code"] = spec["source"]
    return work

Submit = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def parse_object(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """(object, None) for a JSON object, (None, why not) otherwise."""
    try:
        value = loads_keys_once(text, parse_constant=_not_json)
    except KeyGivenTwice as exc:
        return None, str(exc)
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    except ValueError as exc:  # NaN, Infinity: Python's json takes them, JSON does not
        return None, f"invalid JSON: {exc}"
    if not isinstance(value, dict):
        return None, f"must be a JSON object {{...}}, not {type(value).__name__}"
    return value, None


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (write null, or a number)")


class FastButton(Button):
    """A button whose Enter acts at once (a plain Button acts a message later: keys typed
    right behind it would land in the dialog's text boxes)."""

    def action_press(self) -> None:
        screen = self.screen
        if isinstance(screen, ForkScreen):
            screen.press(self.id or "")


class ForkScreen(ModalScreen[dict[str, Any] | None]):
    """Dismisses with the new task once the source accepted the fork (None when closed)."""

    AUTO_FOCUS = "#fork-json"  # the JSON has the keys from the first one on

    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("ctrl+s", "submit", "Fork"),
    ]

    def __init__(self, task: dict[str, Any], submit: Submit,
                 on_settled: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.task_json = task
        self.submit_fork = submit
        # called when a submit leaves the dialog open (bad JSON, refused by the source):
        # the keys held behind it go on into the dialog
        self.on_settled = on_settled
        self.field = EDITED_FIELD.get(task.get("kind") or "")

    def holds_after(self, key: str) -> bool:
        """Whether the keys typed behind this one (arriving now) must wait.

        Textual hands keys to the widget focused when they arrive: behind ctrl+s (or
        Enter on a button) they would be typed into the JSON already sent. The app
        holds them until ``on_settled`` or the dialog closed.
        """
        return key == "ctrl+s" or (key == "enter" and isinstance(self.focused, FastButton))

    def compose(self) -> ComposeResult:
        task = self.task_json
        if self.field:
            initial = pretty_json(task.get("params") or {})
            what = f"{self.field} (a JSON object, merged over the original)"
        else:
            initial = pretty_json(own_work(task), sort_keys=False)
            what = "overrides (a JSON object)"
        with Vertical(id="fork-dialog", classes="dialog"):
            # the title on one line (the dialog's 66 cells), the hint whole beneath it:
            # one line cut at the edge lost the hint behind a long label
            yield Label(Content.assemble(
                "Fork ", (cut_to_cells(label_text(task), NAME_CELLS), "bold")),
                classes="dialog-title")
            yield Label(f"Edit {what}:", classes="dialog-hint")
            yield TextArea(initial, id="fork-json", language=None, soft_wrap=True)
            # the label as shown everywhere (controls escaped): an Input draws its value
            # raw, and a label's escape sequence reached the terminal
            yield Input(value=shown_text(task.get("label") or ""),
                        placeholder="label of the new task",
                        id="fork-label")
            yield Static("", id="fork-error")
            with Horizontal(classes="dialog-buttons"):
                yield FastButton("Fork (ctrl+s)", id="fork-submit", variant="primary")
                yield FastButton("Close", id="fork-close")

    def overrides(self) -> dict[str, Any] | None:
        """The validated overrides, or None with the problem shown."""
        value, problem = parse_object(self.query_one("#fork-json", TextArea).text)
        if problem is not None:
            self.show_error(problem)
            return None
        overrides = {self.field: value} if self.field else dict(value or {})
        label = self.query_one("#fork-label", Input).value.strip()
        if label and label != shown_text(self.task_json.get("label") or "").strip():
            overrides["label"] = label
        return overrides

    def show_error(self, message: str) -> None:
        error = self.query_one("#fork-error", Static)
        error.update(Content.styled(message, "bold red"))
        error.display = bool(message)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        # a mouse click (keys act in FastButton.action_press)
        event.stop()
        self.press(event.button.id or "")

    def press(self, button_id: str) -> None:
        """What the button with this id does."""
        if button_id == "fork-submit":
            self.action_submit()
        else:
            self.action_close()

    def action_close(self) -> None:
        if self.is_active:
            self.dismiss(None)

    def action_submit(self) -> None:
        overrides = self.overrides()
        if overrides is None:
            self._kept()
        else:
            self.show_error("")
            self._send(overrides)

    def _kept(self) -> None:
        if self.on_settled is not None:
            self.on_settled()

    @work(exclusive=True, group="fork")
    async def _send(self, overrides: dict[str, Any]) -> None:
        try:
            task = await self.submit_fork(overrides)
        except ActionError as exc:
            self.show_error(str(exc))
            self.notify(f"Fork refused: {exc}", severity="error", timeout=8)
            self._kept()
            return
        self.dismiss(task)
