"""Counting SQLite's VM instructions: a measure of a query's work that a loaded machine
does not change, for tests that a read stays narrow."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator


class StepCount:
    """How many times the progress handler ran: VM instructions / ``every``."""

    def __init__(self) -> None:
        self.steps = 0

    def tick(self) -> int:
        self.steps += 1
        return 0  # go on


@contextlib.contextmanager
def counting_steps(conn: sqlite3.Connection, every: int = 100) -> Iterator[StepCount]:
    """Count ``conn``'s VM instructions (in units of ``every``) while the block runs."""
    count = StepCount()
    conn.set_progress_handler(count.tick, every)
    try:
        yield count
    finally:
        conn.set_progress_handler(None, every)
