"""A configuration the extension cannot use is said on every route, not served on defaults.

jupyter_server only logs a warning when an extension fails to link or load: before,
a task module that failed to import left every /api/tasks route a 404 HTML page, and
an invalid value (workers {'default': -1}) left the extension running on its defaults
(a configured db_path given beside it was dropped too: another database).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.launcher import JupyterProcess


@pytest.mark.parametrize(("args", "said"), [
    (["--JupyterTasksApp.task_modules=/nonexistent/x.py"],
     "/nonexistent/x.py does not exist"),
    (["--JupyterTasksApp.workers={'default': -1}"], "workers['default'] must be >= 0"),
    # NaN compares False with everything: pruning was off, unsaid
    (["--JupyterTasksApp.history_days=nan"], "history_days must be a number >= 0, not nan"),
    # before: the extension failed to load with a second traceback (AttributeError:
    # no 'manager'), and every route was a 404 HTML page
    (["--JupyterTasksApp.callback_allowlist=*.example.com"],
     "callback_allowlist entry '*.example.com'"),
])
def test_an_unusable_configuration_is_a_503_naming_it(tmp_path: Path, args, said) -> None:
    db = tmp_path / "configured.db"
    fallback = tmp_path / "env.db"  # $JUPYTER_TASKS_DB: what the defaults would open
    server = JupyterProcess(tmp_path, db_path=fallback, ready_paths=("api",),
                            args=[f"--JupyterTasksApp.db_path={db}", *args])
    server.start()
    try:
        status, body = server.request("GET", "api/tasks")
        assert status == 503, (status, body, server.log_tail())
        assert said in body["detail"] and "restart" in body["detail"], body
        assert server.request("GET", "api/tasks/stats")[0] == 503
        assert "ERROR" in server.log_tail(20_000) or "[E" in server.log_tail(20_000)
        assert not db.exists() and not fallback.exists()  # nothing opened on a guess
    finally:
        server.stop()
    assert server.popen is not None and server.popen.returncode is not None


def test_a_relative_database_in_the_environment_is_where_the_cli_finds_it(
        tmp_path: Path) -> None:
    # before: the server read JUPYTER_TASKS_DB=rel.db from its root_dir, the CLI in the
    # same shell from its working folder ("error: no database at rel.db"); the server's
    # copy also sat in the folder the file browser shows, where it could be deleted
    import subprocess
    import sys

    server = JupyterProcess(tmp_path, env={"JUPYTER_TASKS_DB": "rel.db"})
    server.start()
    try:
        status, task = server.request("POST", "api/tasks", {"command": ["true"],
                                                           "queue": "parked"})
        assert status == 202, task
        assert (tmp_path / "rel.db").exists() and not (server.root / "rel.db").exists()
        listed = subprocess.run([sys.executable, "-m", "jupyter_tasks.cli", "list"],
                                cwd=tmp_path, env=server.environ(), capture_output=True,
                                text=True, timeout=120)
        assert listed.returncode == 0 and task["id"][-10:] in listed.stdout, listed
    finally:
        server.stop()
