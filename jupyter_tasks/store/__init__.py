"""The SQLite store: every SQL statement of jupyter-tasks lives in this package.

Two connections per process. Writes go to one ``sqlite3`` connection used only
by a thread the store owns (``DatabaseThread``): each write is a function run
there inside ``BEGIN IMMEDIATE ... COMMIT``, so the task row and its event are
written together or not at all, and a whole group-committed transaction costs
one hop between the event loop and that thread. ``BEGIN IMMEDIATE`` takes the
write lock up front, so concurrent processes queue on ``busy_timeout`` (tries
a fraction of a millisecond apart; a lone write's first on the event loop)
instead of failing on a read-to-write upgrade. Reads go through an aiosqlite
connection of their own, by its public API only (``execute_fetchall``): WAL
lets them run beside the writer.

Modules: ``store`` (the async ``Store`` everyone uses), ``connection`` (the
writer thread, the reader, migrations, group commit), and the SQL by subject:
``task_sql``, ``event_sql``, ``worker_sql``, ``schedule_sql``, ``callback_sql``.
"""

from .connection import DatabaseThread, split_sql
from .store import Store
from .task_sql import (
    ARTIFACT_NAME,
    LARGE_PAGE_CHARS,
    LIST_SORTS,
    TaskPage,
    valid_artifact_content_type,
    valid_artifact_name,
)
from .worker_sql import Finished, Spared

__all__ = [
    "ARTIFACT_NAME",
    "LARGE_PAGE_CHARS",
    "LIST_SORTS",
    "DatabaseThread",
    "Finished",
    "Spared",
    "Store",
    "TaskPage",
    "split_sql",
    "valid_artifact_content_type",
    "valid_artifact_name",
]
