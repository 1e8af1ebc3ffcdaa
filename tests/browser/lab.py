"""JupyterLab in a subprocess and headless Debian chromium, for the browser tests and benchmark.

Nothing here touches the user's home: config, data, runtime, workspaces and the
task database all live in the given folder, and chromium gets a fresh profile.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# the frontends the tests start: the module run and the class whose config exposes
# ``window.jupyterapp`` (so tests can run commands the way a user would)
FRONTENDS = {
    "lab": ("jupyterlab", "LabApp"),
    "notebook": ("notebook", "JupyterNotebookApp"),  # Notebook 7
}


class LabServer:
    """``python -m jupyterlab`` (or Notebook 7 with ``app="notebook"``) under
    ``base_url=/jt/`` with the jupyter_tasks extension."""

    def __init__(self, folder: Path, *, task_modules: Path = TASKS_MODULE,
                 workers: dict[str, int] | None = None, extra_args: list[str] | None = None,
                 db_path: Path | None = None, app: str = "lab") -> None:
        module, app_class = FRONTENDS[app]
        self.app = app
        self.folder = folder
        self.port = free_port()
        self.token = os.urandom(16).hex()
        self.root = folder / "root"
        self.db_path = db_path or folder / "tasks.db"
        self.log_path = folder / f"{module}.log"
        self.base = f"http://127.0.0.1:{self.port}{BASE_URL.rstrip('/')}"
        for sub in ("root", "config", "data", "runtime", "workspaces", "settings"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        if (REPO_BUILD / "package.json").exists():
            # The user data dir comes first on the labextensions path and the first copy of a
            # name wins: serve the repository's current build, not a possibly stale copy made
            # by an earlier ``pip install``.
            (folder / "data" / "labextensions").mkdir(exist_ok=True)
            link = folder / "data" / "labextensions" / "jupyter-tasks"
            if not link.exists():
                link.symlink_to(REPO_BUILD, target_is_directory=True)
        env = {
            **os.environ,
            "JUPYTER_TASKS_DB": str(self.db_path),
            "JUPYTER_CONFIG_DIR": str(folder / "config"),
            "JUPYTER_DATA_DIR": str(folder / "data"),
            "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
            "JUPYTERLAB_WORKSPACES_DIR": str(folder / "workspaces"),
            "JUPYTERLAB_SETTINGS_DIR": str(folder / "settings"),
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("JUPYTER_TASKS_MODULES", None)
        args = [
            sys.executable, "-m", module, "--no-browser", "--ip=127.0.0.1",
            f"--port={self.port}", "--port-retries=0",
            f"--ServerApp.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            f"--ServerApp.base_url={BASE_URL}",
            "--ServerApp.allow_root=True",
            f"--{app_class}.expose_app_in_browser=True",
            f"--JupyterTasksApp.task_modules={task_modules}",
            f"--JupyterTasksApp.workers={json.dumps(workers or {'default': 2})}",
            *(extra_args or []),
        ]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(args, env=env, cwd=str(folder), stdout=self._log,
                                      stderr=subprocess.STDOUT, start_new_session=True)

    # ------------------------------------------------------------------ REST

    def request(self, method: str, path: str, body: Any = None,
                timeout: float = 30) -> tuple[int, Any]:
        """``path`` is relative to the base URL (``/api/tasks``)."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"token {self.token}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                return err.code, json.loads(raw) if raw else None
            except ValueError:
                return err.code, raw.decode(errors="replace")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 90) -> None:
        """Until ``/jt/api/status`` answers with the token and the tasks API is up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError(f"{self.app} exited ({self.popen.returncode}):\n"
                                     f"{self.log_tail()}")
            try:
                status, _ = self.request("GET", "/api/status", timeout=2)
                if status == 200:
                    status, _ = self.request("GET", "/api/tasks/stats", timeout=5)
                    if status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.app} not ready within {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Kill the whole process group (the server and any worker it started)."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(timeout=10)
        else:
            # the server is gone; make sure nothing it started is left in the group
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._log.close()

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
