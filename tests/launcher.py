"""One launcher for ``jupyter server`` / ``jupyter lab`` / ``jupyter notebook`` subprocesses.

Every tier and the benchmarks start their real servers through :class:`JupyterProcess`:
the extension on a given database, a token, a root dir, extra config; a deadline-bound
wait until it answers; and a stop that leaves no process behind (its own process group
is signalled, so task workers the server started go with it).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

# the module each app runs as (``python -m <module>``) and the class holding its settings
APPS = {
    "server": ("jupyter_server", "ServerApp"),
    "lab": ("jupyterlab", "LabApp"),
    "notebook": ("notebook", "JupyterNotebookApp"),  # Notebook 7
}


# how many ports below the system's ephemeral range the servers' ports come from
SERVER_PORTS = 12_000


def free_port() -> int:
    """A loopback TCP port that was free a moment ago, outside the ephemeral range.

    A port from ``bind(0)`` is ephemeral: until the server binds it, and again
    between a stop and a restart on the same port, any outgoing connection (the
    suite opens thousands: kernels' clients, HTTP) may be given it, and the
    server exits on "address in use". Below the ephemeral range nothing is
    handed a port it did not ask for.
    """
    low = _ephemeral_low()
    if low is None or low - SERVER_PORTS < 1024:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    while True:
        port = random.randrange(low - SERVER_PORTS, low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def _ephemeral_low() -> int | None:
    """The first port of Linux's ephemeral range, None where it cannot be read."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None



def interrupt(process: subprocess.Popen[Any], grace: float = 30) -> None:
    """Stop a CLI process (``jupyter tasks worker``) as Ctrl-C does; killed past ``grace`` s."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)

class JupyterProcess:
    """A real Jupyter server subprocess on 127.0.0.1 with the jupyter_tasks extension."""

    def __init__(self, folder: Path, *, app: str = "server", db_path: Path | None = None,
                 token: str | None = None, root_dir: Path | None = None,
                 port: int | None = None, base_url: str = "/",
                 task_modules: str | Path | None = None, args: Sequence[str] = (),
                 env: Mapping[str, str] | None = None, log_path: Path | None = None,
                 ready_paths: Sequence[str] = ("api/tasks/stats",),
                 new_session: bool = True) -> None:
        module, _ = APPS[app]
        self.app = app
        self.folder = folder
        self.db_path = db_path or folder / "tasks.db"
        self.token = token or os.urandom(12).hex()
        self.root = root_dir or folder / "root"
        self.port = port or free_port()
        self.base_url = "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"
        # no trailing slash: ``url + "/api/tasks"`` reads as the route does
        self.url = f"http://127.0.0.1:{self.port}{self.base_url.rstrip('/')}"
        self.task_modules = task_modules
        self.args = list(args)
        self.extra_env = dict(env or {})
        self.log_path = log_path or folder / f"{module}-{self.port}.log"
        self.ready_paths = list(ready_paths)
        # own process group: stop() then reaches every worker the server started
        self.new_session = new_session
        self.popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # ------------------------------------------------------------------ process

    def command(self) -> list[str]:
        """The command line: the app on loopback with the token, root dir and extra args."""
        module, _ = APPS[self.app]
        return [sys.executable, "-m", module, f"--port={self.port}", "--port-retries=0",
                "--ip=127.0.0.1", f"--IdentityProvider.token={self.token}",
                "--ServerApp.open_browser=False", f"--ServerApp.root_dir={self.root}",
                f"--ServerApp.base_url={self.base_url}", "--ServerApp.allow_root=True",
                *self.args]

    def environ(self) -> dict[str, str]:
        """The child's environment: the database, task modules and private Jupyter dirs."""
        env = {**os.environ, "JUPYTER_TASKS_DB": str(self.db_path),
               "JUPYTER_CONFIG_DIR": str(self.folder / "config"),
               "JUPYTER_RUNTIME_DIR": str(self.folder / "runtime"),
               "PYTHONUNBUFFERED": "1"}
        if self.task_modules is None:
            env.pop("JUPYTER_TASKS_MODULES", None)
        else:
            env["JUPYTER_TASKS_MODULES"] = str(self.task_modules)
        env.update(self.extra_env)
        return env

    def start(self, *, ready: bool = True, timeout: float = 90) -> JupyterProcess:
        """Start (or restart, on the same port and token); wait until it answers if ``ready``."""
        if self.popen is not None and self.popen.poll() is None:
            raise RuntimeError(f"{self.app} on port {self.port} is already running")
        self.root.mkdir(parents=True, exist_ok=True)
        self._close_log()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(self.command(), env=self.environ(), cwd=str(self.folder),
                                      stdout=self._log, stderr=subprocess.STDOUT,
                                      start_new_session=self.new_session)
        if ready:
            self.wait_ready(timeout)
        return self

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.popen is not None, "not started"
        return self.popen.pid

    def wait_ready(self, timeout: float = 90) -> None:
        """Until every ready path answers 200; fail with the log's tail after ``timeout``."""
        assert self.popen is not None, "not started"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError(f"{self.app} exited ({self.popen.returncode}):\n"
                                     f"{self.log_tail()}")
            try:
                if all(self.request("GET", p, timeout=5)[0] == 200 for p in self.ready_paths):
                    return
            except OSError:
                pass
            time.sleep(0.1)  # polling a subprocess's readiness, not synchronising the app
        raise AssertionError(f"{self.app} not ready within {timeout}s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the server process alone, as a crash would (its workers may outlive it)."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=30)

    def stop(self, grace: float = 10) -> None:
        """SIGTERM the process group, SIGKILL what is left after ``grace`` seconds."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        # the server may be gone already; whatever it started must go too
        self._signal(signal.SIGKILL)
        self.popen.wait(timeout=30)
        self._close_log()

    def _signal(self, signum: int) -> None:
        assert self.popen is not None
        try:
            if self.new_session:
                os.killpg(self.popen.pid, signum)
            elif self.popen.poll() is None:
                self.popen.send_signal(signum)
        except (ProcessLookupError, PermissionError):
            pass

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    # ------------------------------------------------------------------ HTTP

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, Any]:
        """One authenticated call; ``path`` is relative to the base URL. Never raises on 4xx/5xx.

        Answers (status, decoded JSON), or the text when the body is not JSON.
        """
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"Authorization": f"token {self.token}"}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        address = self.url.rstrip("/") + "/" + path.lstrip("/")
        req = urllib.request.Request(address, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, _decode(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, _decode(err.read())

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's log, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
