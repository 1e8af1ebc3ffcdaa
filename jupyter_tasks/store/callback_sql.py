"""The SQL of the callback outbox: the callbacks owed by ended tasks (migration 20).

A trigger writes a row in the transaction that ends a task with a ``callback_url``;
the process that posts it claims the row first (so two processes never post it at
once), counts its tries in it as each starts, and deletes it once the POST is
delivered or out of tries (or the task is gone); a refusal gives it back, for a
process whose list admits where it goes.
"""

from __future__ import annotations

import sqlite3

# unclaimed, or claimed by a process that let its claim run out
_OWED = "claimed_by IS NULL OR claimed_until < ?"
# with each task's URL: a process skips the ones its allow-list does not admit
# (read in pages after a task id, so rows nobody here may post never hide the rest)
OWED_SQL = (f"SELECT o.task_id, t.callback_url FROM callback_outbox o "
            f"LEFT JOIN tasks t ON t.id = o.task_id WHERE o.task_id > ? AND ({_OWED}) "
            f"ORDER BY o.task_id LIMIT ?")


def tx_claim_callback(conn: sqlite3.Connection, task_id: str, worker_id: str, now: float,
                      until: float) -> int | None:
    """Take the owed callback of ``task_id`` for ``worker_id``: its tries so far,
    or None when it is not owed any more or another process has it."""
    row = conn.execute(
        f"UPDATE callback_outbox SET claimed_by = ?, claimed_until = ? "
        f"WHERE task_id = ? AND ({_OWED}) RETURNING tries",
        (worker_id, until, task_id, now)).fetchone()
    return None if row is None else row[0]


def tx_callback_tried(conn: sqlite3.Connection, task_id: str) -> None:
    """Count a try, as it starts (one cut off by a kill counts too)."""
    conn.execute("UPDATE callback_outbox SET tries = tries + 1 WHERE task_id = ?", (task_id,))


def tx_callback_settled(conn: sqlite3.Connection, task_id: str) -> None:
    """Delivered, out of tries or its task gone: no longer owed."""
    conn.execute("DELETE FROM callback_outbox WHERE task_id = ?", (task_id,))


_UNCLAIM = "UPDATE callback_outbox SET claimed_by = NULL, claimed_until = NULL WHERE "


def tx_unclaim_callback(conn: sqlite3.Connection, task_id: str) -> None:
    """Give one callback back, still owed (this process may not post where it goes)."""
    conn.execute(_UNCLAIM + "task_id = ?", (task_id,))


def tx_release_callbacks(conn: sqlite3.Connection, worker_ids: list[str]) -> None:
    """Give up the claims of stopped or dead processes: another process posts them."""
    conn.execute(_UNCLAIM + f"claimed_by IN ({','.join('?' * len(worker_ids))})",
                 worker_ids)
