"""Where the shared database lives."""

from __future__ import annotations

import os
from pathlib import Path

DB_ENV = "JUPYTER_TASKS_DB"


def default_db_path() -> Path:
    """``$JUPYTER_TASKS_DB`` if set, else ``tasks.db`` in the Jupyter data dir."""
    configured = os.environ.get(DB_ENV)
    if configured:
        return Path(configured).expanduser()
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "jupyter_tasks" / "tasks.db"
