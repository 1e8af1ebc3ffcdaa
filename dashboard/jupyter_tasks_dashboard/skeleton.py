"""The first screen before Textual is imported: a plain ANSI skeleton on the alternate screen.

Importing Textual and the engine takes ~0.4 s; until then a terminal would stay
blank. ``Skeleton.draw`` writes the title line, the task table's header and
"loading tasks…" at once. Textual enters the same alternate screen itself and
draws its first frame over every cell (it does not clear first), so there is
no blank flash in between. Standard library only: this module is imported
before anything else.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

# the task table's columns (key, header, width): here so that the skeleton draws the
# same header as ``table.TaskTable`` without importing Textual
TABLE_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("id", "id", 11),
    ("label", "label", 24),
    ("status", "status", 10),
    ("progress", "progress", 15),
    ("owner", "owner", 8),
    ("origin", "origin", 14),
    ("started", "started", 12),
    ("duration", "duration", 10),  # room for its sort arrow ("duration ▼")
)
TITLE = "jupyter-tasks"
# the lines above the table in Textual's layout: header, queue counts (2), filter bar (3)
TABLE_TOP = 7


class Skeleton:
    """The drawn skeleton; ``restore`` puts the terminal back as it was."""

    def __init__(self, fd: int, saved: list[Any] | None) -> None:
        self.fd = fd
        self.saved = saved
        self.textual_took_over = False

    @classmethod
    def draw(cls, description: str) -> Skeleton | None:
        """Draw on the alternate screen when stdin and stdout are a terminal (else None)."""
        try:
            if not (sys.stdin.isatty() and sys.stdout.isatty()):
                return None
            fd = sys.stdin.fileno()
        except (AttributeError, ValueError, OSError):
            return None
        saved = None
        try:
            import termios

            saved = termios.tcgetattr(fd)
            quiet = termios.tcgetattr(fd)
            # keys typed meanwhile are not echoed over the skeleton: they wait in the
            # terminal's buffer and Textual reads them as keys
            quiet[3] &= ~(termios.ECHO | termios.ICANON)
            termios.tcsetattr(fd, termios.TCSANOW, quiet)
        except (ImportError, OSError):
            saved = None
        size = shutil.get_terminal_size((120, 40))
        os.write(sys.stdout.fileno(), render(description, size.columns, size.lines).encode())
        return cls(fd, saved)

    def handed_over(self) -> None:
        """Textual runs from here on: it leaves the alternate screen itself."""
        self.textual_took_over = True

    def restore(self) -> None:
        """Leave the skeleton's alternate screen (unless Textual did) and restore the tty."""
        if not self.textual_took_over:
            os.write(sys.stdout.fileno(), b"\x1b[?25h\x1b[?1049l")
        if self.saved is not None:
            import termios

            try:
                termios.tcsetattr(self.fd, termios.TCSANOW, self.saved)
            except OSError:
                pass


def render(description: str, width: int, height: int) -> str:
    """The escape sequences of the skeleton for a ``width`` by ``height`` terminal."""
    title = f"{TITLE} — {description} · loading…"[:width]
    left = max(0, (width - len(title)) // 2)
    header = "".join(f" {label:<{w}} " for _, label, w in TABLE_COLUMNS)[:width]
    out = [
        "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J",  # alternate screen, no cursor, cleared
        f"\x1b[1;1H\x1b[7m{' ' * left}{title}{' ' * (width - left - len(title))}\x1b[0m",
        "\x1b[2;2H\x1b[2mcounting…\x1b[0m",
    ]
    if height > TABLE_TOP + 2:
        out += [f"\x1b[{TABLE_TOP};1H\x1b[1m{header}\x1b[0m",
                f"\x1b[{TABLE_TOP + 1};2H\x1b[2mloading tasks…\x1b[0m"]
    return "".join(out)
