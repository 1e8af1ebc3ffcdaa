"""Issue 13: the first screen appears at once, before Textual is imported.

The real entry point runs in a pseudo-terminal: its first bytes already draw the
title line, the table's header and "loading tasks…" on the alternate screen;
Textual then draws over it, and on exit the terminal is back as it was (main
screen, echo and line mode on).
"""

from __future__ import annotations

import sys

import pytest

from .pty_run import run_in_pty

pytestmark = pytest.mark.slow


async def test_the_skeleton_comes_first_and_the_terminal_is_restored(tmp_path):
    from jupyter_tasks.manager import TaskManager

    db = tmp_path / "skeleton.db"
    async with TaskManager(db, queues={}, make_default=False) as writer:
        await writer.submit_spec({"command": [sys.executable, "-c", "0"]}, label="parked one",
                                 queue="parked")
    run = run_in_pty(["--db", str(db)], "parked one")
    out = run.output
    assert run.returncode == 0, out[-2000:]
    assert "row" in run.marks, out[-2000:]
    # the skeleton is drawn before Textual's first sequence (it enables the mouse)
    textual_starts = out.index(b"\x1b[?1000h")
    first = out[:textual_starts]
    assert first.startswith(b"\x1b[?1049h"), first[:80]
    # the title line is cut to the terminal's width, and tmp paths are long (more so under xdist)
    for text in ("jupyter-tasks", f"database {str(db)[:40]}", "loading tasks", " label ",
                 " status "):
        assert text.encode() in first, (text, first)
    # Textual draws over it without clearing the screen in between (no blank flash)
    assert b"\x1b[2J" not in out[textual_starts:out.index(b"parked one")]
    # and it leaves the alternate screen once, at the end; the tty is as it was
    assert out.count(b"\x1b[?1049l") == 1
    assert out.rindex(b"\x1b[?1049l") > out.index(b"parked one")
    assert run.lflag_after == run.lflag_before


def test_the_entry_point_imports_neither_textual_nor_the_engine_before_the_skeleton():
    import subprocess

    # what the installed script does first; the skeleton can only come before Textual
    # (~0.2 s of imports) if this import leaves it out
    probe = ("import sys\nfrom jupyter_tasks_dashboard.app import main\n"
             "print(sorted(m for m in ('textual', 'jupyter_tasks', 'tornado') "
             "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
