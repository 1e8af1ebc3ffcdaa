"""``LogTail``: Textual's ``Log``, written so that no thread worker measures the lines."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual.geometry import Size
from textual.widgets import Log


class LogTail(Log):
    """A task's live log tail.

    ``Log.write_lines`` measures new lines in a thread worker that reports back
    with ``app.call_from_thread``; lines written just before the app exits make
    that worker outlive the app and fail it with ``NoActiveAppError`` (seen as a
    flaky dashboard test). ``Log.write`` measures on the app's own thread, so the
    lines go through it; a tail is at most a few hundred short lines.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._writing_batch = False

    def refresh_lines(self, y_start: int, line_count: int = 1) -> None:
        """Refresh these lines, or nothing yet while a batch is written (it refreshes once)."""
        if not self._writing_batch:
            super().refresh_lines(y_start, line_count)

    def rewrite_last_line(self, line: str) -> None:
        """Put ``line`` in place of the last line (one a later chunk carried on)."""
        lines = list(self.lines)
        if not lines:
            self.write_lines([line])
        elif line.startswith(lines[-1]):
            # carried on at its end (the usual case): Log.write continues the last line,
            # which write_lines leaves open (it writes the newline before each line)
            self.write(line[len(lines[-1]):], scroll_end=False)
        else:
            # a return redrew it (a progress bar): Log has no public way to change a line,
            # so the few hundred lines are written again, the view kept where it was
            at_end = self.is_vertical_scroll_end
            y = self.scroll_y
            self.clear()
            self.write_lines([*lines[:-1], line], scroll_end=at_end)
            if not at_end:
                self.scroll_to(y=y, animate=False, immediate=True)

    def write_lines(self, lines: Iterable[str], scroll_end: bool | None = None) -> LogTail:
        """Append these lines; follow the end only if it was in view (as ``Log`` does)."""
        new = [part for line in lines for part in line.splitlines()]
        if not new:
            return self
        if scroll_end is None:
            scroll_end = (self.auto_scroll and self.is_vertical_scroll_end
                          and not self.is_vertical_scrollbar_grabbed)
        before = len(self.lines)
        # the newline goes before each line, not after: no empty last line, so
        # `lines` and `max_lines` count only real lines
        text = "\n".join(new)
        # `write` refreshes line by line: 300 lines cost ~15 ms, one refresh ~1 ms
        self._writing_batch = True
        try:
            self.write("\n" + text if before else text, scroll_end=False)
        finally:
            self._writing_batch = False
        first = max(0, before - (before + len(new) - len(self.lines)))  # after any pruning
        self.refresh_lines(first, len(self.lines) - first)
        # `write` sizes the view before it drops lines over `max_lines`: size it again
        self.virtual_size = Size(self.virtual_size.width, self.line_count)
        if scroll_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        return self
