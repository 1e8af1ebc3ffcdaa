"""``LogTail``: Textual's ``Log`` without its width-measuring thread worker."""

from __future__ import annotations

from rich.cells import cell_len
from textual.widgets import Log


class LogTail(Log):
    """A task's live log tail.

    Textual's ``Log`` measures new lines in a thread worker that reports back
    with ``app.call_from_thread``; lines written just before the app exits make
    that worker outlive the app and fail it with ``NoActiveAppError`` (seen as a
    flaky dashboard test). A tail is at most a few hundred short lines, so they
    are measured here, on the app's own thread.
    """

    def _update_size(self, updates: int, lines: list[str]) -> None:
        if lines:
            widest = max(cell_len(self._process_line(line)) for line in lines)
            self._update_maximum_width(updates, widest)
