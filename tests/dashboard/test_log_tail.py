"""The detail pane's log tail measures lines on the app's thread (no worker to outlive the app)."""

from __future__ import annotations

import asyncio

from jupyter_tasks_dashboard.app import TasksDashboard
from jupyter_tasks_dashboard.formatting import terminal_lines, typed_lines
from jupyter_tasks_dashboard.log_tail import LogTail
from jupyter_tasks_dashboard.sources import DatabaseSource
from jupyter_tasks_dashboard.tasks_app import screenshot_text
from textual.app import App, ComposeResult
from textual.widgets import Log

from jupyter_tasks.context import current_context
from jupyter_tasks.manager import TaskManager

from .conftest import until


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
    assert terminal_lines("\r  0%|   |\r 50%|#  |\r100%|###|\n") == ["100%|###|"]
    assert terminal_lines("epoch 1\nwindows\r\nlast") == ["epoch 1", "windows", "last"]
    assert terminal_lines("downloading 10 of 200\rdone\n") == ["doneloading 10 of 200"]
    assert terminal_lines("") == [] and terminal_lines("\n") == [""]


def test_a_chunk_carries_on_the_line_the_last_one_left_unfinished() -> None:
    assert typed_lines("loading ") == ([("loading ", 8)], True)
    assert typed_lines("done\nnext", ("loading ", 8)) == ([("loading done", 12), ("next", 4)],
                                                          True)
    assert typed_lines("\n", ("loading ", 8)) == ([("loading ", 8)], False)
    # a return at the chunk's start rewrites the carried line from its first column
    assert typed_lines("\r 9", (" 10%|#  |", 9)) == ([(" 90%|#  |", 2)], True)



async def test_a_line_carried_on_by_a_later_chunk_stays_one_line(tmp_path) -> None:
    """A chunk that stops mid-line (``print(..., end="")``, a bar's redraw) is carried on by
    the next one, as a terminal shows it (the panel's log does the same)."""
    gates = [asyncio.Event() for _ in range(3)]

    async def download() -> None:
        ctx = current_context.get()
        # each write waits until the dashboard showed the one before: separate chunks
        ctx.write("fetching data... ")
        await gates[0].wait()
        ctx.write("42 files\nloading ")
        await gates[1].wait()
        ctx.write("done\n")
        ctx.write("\r 10%|#  |", "stderr")
        await gates[2].wait()
        ctx.write("\r100%|###|\n", "stderr")

    db = tmp_path / "chunks.db"
    app = TasksDashboard(DatabaseSource(db))
    async with TaskManager(db, make_default=False) as writer, \
            app.run_test(size=(160, 50)) as pilot:
        await until(lambda: app.ready, pilot, what="started")
        task = await writer.submit(download(), label="download")
        await until(lambda: task.id in app.table.tasks, pilot, what="the row")
        app.table.select(task.id)
        shown = [["fetching data... "],
                 ["fetching data... 42 files", "loading "],
                 ["fetching data... 42 files", "loading done", "!  10%|#  |"],
                 ["fetching data... 42 files", "loading done", "! 100%|###|"]]
        for step, lines in enumerate(shown):
            # before: "loading " and "done" were two lines, and so were the bar's states
            await until(lambda lines=lines: app.detail.log_text.splitlines() == lines, pilot,
                        timeout=30, what=f"{lines} (shown: {app.detail.log_text!r})")
            if step < len(gates):
                gates[step].set()
        assert (await writer.wait(task.id, timeout=30)).status == "succeeded"


async def test_the_last_line_rewritten_in_place_keeps_the_lines_before_and_the_view() -> None:
    tail = LogTail(max_lines=50)
    async with _OneLog(tail).run_test(size=(40, 6)) as pilot:
        tail.write_lines([f"line {n}" for n in range(30)] + ["loading "])
        tail.rewrite_last_line("loading done")  # carried on at its end
        assert list(tail.lines)[-2:] == ["line 29", "loading done"]
        tail.rewrite_last_line(" 50%|##  |")  # redrawn from its start
        tail.write_lines(["next"])
        await pilot.pause()
        assert list(tail.lines)[-3:] == ["line 29", " 50%|##  |", "next"]
        assert tail.line_count == 32 and tail.is_vertical_scroll_end
        tail.scroll_home(animate=False, immediate=True)
        tail.rewrite_last_line("redrawn")  # the reader scrolled up: the view stays there
        await pilot.pause()
        assert tail.scroll_y == 0 and list(tail.lines)[-2:] == [" 50%|##  |", "redrawn"]
        assert shown(pilot.app)[0] == "line 0"
