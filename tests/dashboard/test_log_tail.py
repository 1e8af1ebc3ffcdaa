"""The detail pane's log tail measures lines on the app's thread (no worker to outlive the app)."""

from __future__ import annotations

from jupyter_tasks_dashboard.log_tail import LogTail
from textual.app import App, ComposeResult
from textual.widgets import Log


class _OneLog(App):
    def __init__(self, widget: Log) -> None:
        super().__init__()
        self.widget = widget

    def compose(self) -> ComposeResult:
        yield self.widget


async def test_width_is_known_as_soon_as_lines_are_written() -> None:
    tail = LogTail()
    async with _OneLog(tail).run_test():
        tail.write_lines(["short", "a line of exactly thirty-five cells"])
        # Textual's own Log learns this later, from a thread worker; that worker
        # could still be running when the app exited and then failed the app
        assert tail.virtual_size.width == 35
        assert tail.line_count == 2
