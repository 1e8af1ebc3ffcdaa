"""The detail pane's log tail measures lines on the app's thread (no worker to outlive the app)."""

from __future__ import annotations

from jupyter_tasks_dashboard.log_tail import LogTail
from jupyter_tasks_dashboard.tasks_app import screenshot_text
from textual.app import App, ComposeResult
from textual.widgets import Log


class _OneLog(App):
    def __init__(self, widget: Log) -> None:
        super().__init__()
        self.widget = widget

    def compose(self) -> ComposeResult:
        yield self.widget


def shown(app: App) -> list[str]:
    """The log's rows on screen, as read from a screenshot (less its two scrollbars)."""
    width, height = app.size
    rows = screenshot_text(app.export_screenshot(), width, height).splitlines()
    return [row[:width - 2].strip() for row in rows][:-1]


async def test_width_is_known_as_soon_as_lines_are_written() -> None:
    tail = LogTail()
    async with _OneLog(tail).run_test():
        tail.write_lines(["short", "a line of exactly thirty-five cells"])
        # Textual's own Log learns this later, from a thread worker; that worker
        # could still be running when the app exited and then failed the app
        assert tail.virtual_size.width == 35
        assert tail.line_count == 2


async def test_a_full_tail_keeps_its_last_lines_and_follows_the_end() -> None:
    tail = LogTail(max_lines=5)
    async with _OneLog(tail).run_test(size=(40, 4)) as pilot:
        tail.write_lines([f"line {n}" for n in range(4)])
        tail.write_lines(["two\nparts", "line 6"])
        await pilot.pause()
        assert list(tail.lines) == ["line 2", "line 3", "two", "parts", "line 6"]
        assert tail.line_count == 5 and tail.virtual_size.height == 5
        assert tail.is_vertical_scroll_end
        assert shown(pilot.app) == ["two", "parts", "line 6"]  # drawn once per batch, all of it
        tail.scroll_home(animate=False, immediate=True)
        tail.write_lines(["line 7"])  # the reader scrolled up: the view stays where it is
        await pilot.pause()
        assert tail.scroll_y == 0 and tail.lines[-1] == "line 7"
        assert shown(pilot.app) == ["line 3", "two", "parts"]  # line 2 was pruned


def test_a_bar_redrawn_in_place_is_one_line_in_its_latest_state() -> None:
    # before: str.splitlines() made each state of a tqdm bar a line of its own
    from jupyter_tasks_dashboard.formatting import terminal_lines

    assert terminal_lines("\r  0%|   |\r 50%|#  |\r100%|###|\n") == ["100%|###|"]
    assert terminal_lines("epoch 1\nwindows\r\nlast") == ["epoch 1", "windows", "last"]
    assert terminal_lines("downloading 10 of 200\rdone\n") == ["doneloading 10 of 200"]
    assert terminal_lines("") == [] and terminal_lines("\n") == [""]
