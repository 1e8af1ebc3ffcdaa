"""JupyterLab in a subprocess and headless Debian chromium, for the browser tests and benchmark.

Nothing here touches the user's home: config, data, runtime, workspaces and the
task database all live in the given folder, and chromium gets a fresh profile.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from tests.launcher import APPS, JupyterProcess

TASKS_MODULE = Path(__file__).with_name("browser_tasks.py")
REPO = Path(__file__).resolve().parents[2]
# the current build of labextension/ (``jlpm build:prod`` writes it here)
REPO_BUILD = REPO / "jupyter_tasks" / "labextension"
BASE_URL = "/jt/"
SKIP_ENV = "JUPYTER_TASKS_SKIP_BROWSER"
CHROMIUM_ENV = "JUPYTER_TASKS_CHROMIUM"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_path() -> str | None:
    """Debian's chromium (or ``$JUPYTER_TASKS_CHROMIUM``), None when it is not installed."""
    candidate = os.environ.get(CHROMIUM_ENV) or "/usr/bin/chromium"
    if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        return candidate
    return shutil.which("chromium")


MISSING_CHROMIUM = (
    "Debian's chromium is not installed (looked at $JUPYTER_TASKS_CHROMIUM, /usr/bin/chromium "
    "and PATH). Run scripts/install-test-deps (apt-get install chromium), or set "
    f"{SKIP_ENV}=1 to skip the browser tests."
)


# the frontends the tests start: the launcher's app name and the class whose config
# exposes ``window.jupyterapp`` (so tests can run commands the way a user would)
FRONTENDS = {
    "lab": "LabApp",
    "notebook": "JupyterNotebookApp",  # Notebook 7
}


class LabServer(JupyterProcess):
    """``python -m jupyterlab`` (or Notebook 7 with ``app="notebook"``) under
    ``base_url=/jt/`` with the jupyter_tasks extension."""

    def __init__(self, folder: Path, *, task_modules: Path = TASKS_MODULE,
                 workers: dict[str, int] | None = None, extra_args: list[str] | None = None,
                 db_path: Path | None = None, app: str = "lab") -> None:
        app_class = FRONTENDS[app]
        for sub in ("root", "config", "data", "runtime", "workspaces", "settings"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        # no autosave: tests that close a tab without saving need its outputs unsaved, and
        # a slow run could pass the 120 s autosave interval first
        docmanager = folder / "settings" / "@jupyterlab" / "docmanager-extension"
        docmanager.mkdir(parents=True, exist_ok=True)
        (docmanager / "plugin.jupyterlab-settings").write_text('{"autosave": false}')
        if (REPO_BUILD / "package.json").exists():
            # The user data dir comes first on the labextensions path and the first copy of a
            # name wins: serve the repository's current build, not a possibly stale copy made
            # by an earlier ``pip install``.
            (folder / "data" / "labextensions").mkdir(exist_ok=True)
            link = folder / "data" / "labextensions" / "jupyter-tasks"
            if not link.exists():
                link.symlink_to(REPO_BUILD, target_is_directory=True)
        super().__init__(
            folder, app=app, db_path=db_path, token=os.urandom(16).hex(), base_url=BASE_URL,
            log_path=folder / f"{APPS[app][0]}.log",
            env={"JUPYTER_DATA_DIR": str(folder / "data"),
                 "JUPYTERLAB_WORKSPACES_DIR": str(folder / "workspaces"),
                 "JUPYTERLAB_SETTINGS_DIR": str(folder / "settings")},
            ready_paths=("api/status", "api/tasks/stats"),
            args=["--no-browser", f"--{app_class}.expose_app_in_browser=True",
                  f"--JupyterTasksApp.task_modules={task_modules}",
                  f"--JupyterTasksApp.workers={json.dumps(workers or {'default': 2})}",
                  *(extra_args or [])])
        self.start(ready=False)

    @property
    def base(self) -> str:
        """The server's URL under its base URL, without the trailing slash."""
        return self.url

    @property
    def lab_url(self) -> str:
        return f"{self.base}/lab?token={self.token}"

    def notebook_url(self, path: str) -> str:
        """Notebook 7's page for the notebook at ``path`` (relative to the root)."""
        return f"{self.base}/notebooks/{path}?token={self.token}"


def launch_chromium(playwright: Any, folder: Path, executable: str) -> Any:
    """A chromium context on a fresh profile in ``folder`` (Playwright passes it as
    ``--user-data-dir``; it refuses that flag in ``args``)."""
    profile = folder / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    return playwright.chromium.launch_persistent_context(
        str(profile), executable_path=executable, headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": 900},
    )


OPEN_PANEL_JS = """
async () => {
  const app = window.jupyterapp;
  await app.started;
  await app.restored;
  await app.commands.execute('jupyter-tasks:open');
  return true;
}
"""


def open_lab_and_panel(page: Any, server: LabServer, timeout_ms: float = 120_000) -> None:
    """Load JupyterLab, open the Tasks panel through its command, wait for the live stream."""
    page.goto(server.lab_url, wait_until="domcontentloaded", timeout=timeout_ms)
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=timeout_ms)
    page.evaluate(OPEN_PANEL_JS)
    page.locator(".jp-TasksPanel").wait_for(state="visible", timeout=timeout_ms)
    page.locator('.jp-TasksPanel-connection[data-state="open"]').wait_for(
        state="attached", timeout=timeout_ms)
