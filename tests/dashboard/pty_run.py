"""Run the dashboard's real entry point in a pseudo-terminal and watch what it draws."""

from __future__ import annotations

import fcntl
import os
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass, field

ANSI = re.compile(rb"\x1b\[[0-9;?<>=$]*[A-Za-z~]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]")


def visible(raw: bytes) -> str:
    """The text in terminal output, escape sequences dropped."""
    return ANSI.sub(b"", raw).decode("utf-8", "replace")


@dataclass
class PtyRun:
    """Marks (seconds from spawn) and the bytes of one run."""

    marks: dict[str, float] = field(default_factory=dict)
    output: bytes = b""
    lflag_before: int = 0
    lflag_after: int = 0
    returncode: int | None = None


def entry_point() -> list[str]:
    """The installed ``jupyter-tasks-dashboard`` script (else the module), as a person runs it."""
    script = shutil.which("jupyter-tasks-dashboard")
    return [script] if script else [sys.executable, "-m", "jupyter_tasks_dashboard.app"]


def run_in_pty(args: list[str], row_text: str, size: tuple[int, int] = (120, 40),
               timeout: float = 120.0, env: dict[str, str] | None = None) -> PtyRun:
    """Spawn ``entry_point() + args`` on a pty; mark the first bytes, the first visible
    title, the first row holding ``row_text``; then press q and wait for the exit."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
    run = PtyRun(lflag_before=termios.tcgetattr(slave)[3])
    t0 = time.perf_counter()
    proc = subprocess.Popen(entry_point() + args, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True, close_fds=True,
                            env={**(env or os.environ), "TERM": "xterm-256color"})
    try:
        deadline = t0 + timeout
        quit_sent = False
        while time.perf_counter() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                chunk = os.read(master, 1 << 16)
                now = time.perf_counter() - t0
                run.marks.setdefault("bytes", now)
                run.output += chunk
                text = visible(run.output)
                if "title" not in run.marks and "jupyter-tasks" in text:
                    run.marks["title"] = now
                if "row" not in run.marks and row_text in text:
                    run.marks["row"] = now
            if "row" in run.marks and not quit_sent:
                os.write(master, b"q")
                quit_sent = True
            if proc.poll() is not None:
                break
        run.returncode = proc.wait(timeout=30)
        # drain what the exit wrote
        while select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:
                break
            if not chunk:
                break
            run.output += chunk
        run.lflag_after = termios.tcgetattr(slave)[3]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)
    return run
