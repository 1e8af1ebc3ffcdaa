"""Notebook job latency, submit to finished, for a 3-cell notebook: ours vs jupyter-scheduler.

Both run as real ``jupyter server`` processes on 127.0.0.1 with a token, each
with its own temporary root, config, data and runtime folders, and are driven
over REST from this script:

* ours: ``POST /api/tasks {"notebook": ...}`` then ``GET /api/tasks/{id}`` until
  the task is terminal (polled every 20 ms);
* jupyter-scheduler: installed with pip into a throwaway venv under a temporary
  folder (the project's environment is not touched), ``POST /scheduler/jobs``
  then ``GET /scheduler/jobs/{id}`` until COMPLETED/FAILED (polled every 20 ms).

Each side runs one warm-up job (not counted), then RUNS measured jobs one after
another. If jupyter-scheduler cannot be installed or driven, the reason is
printed and ours is reported alone.

Usage: python benchmarks/bench_jobs_notebook.py [RUNS]
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
POLL = 0.02
SCHEDULER_SPEC = "jupyter-scheduler"


def write_notebook(path: Path) -> None:
    nb = new_notebook(cells=[
        new_code_cell("n = 10", metadata={"tags": ["parameters"]}),
        new_code_cell("squares = [i * i for i in range(n)]\nprint(len(squares))"),
        new_code_cell("sum(squares)"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                "language": "python"}})
    nbformat.write(nb, path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, python: str, root: Path, home: Path, extra_env: dict[str, str],
                 args: list[str]) -> None:
        self.port = free_port()
        self.token = os.urandom(8).hex()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"),
               "JUPYTER_DATA_DIR": str(home / "data"),
               "JUPYTER_RUNTIME_DIR": str(home / "runtime"), **extra_env}
        env.pop("JUPYTER_TASKS_MODULES", None)
        for sub in ("config", "data", "runtime"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        self.log = open(home / f"server-{self.port}.log", "wb")  # noqa: SIM115  closed in stop()
        self.proc = subprocess.Popen(
            [python, "-m", "jupyter_server", f"--port={self.port}", "--port-retries=0",
             "--ip=127.0.0.1", f"--IdentityProvider.token={self.token}",
             "--ServerApp.open_browser=False", f"--ServerApp.root_dir={root}",
             "--ServerApp.allow_root=True", *args],
            env=env, cwd=str(home), stdout=self.log, stderr=subprocess.STDOUT)

    def request(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return json.loads(raw) if raw else None

    def wait_ready(self, probe: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}; see {self.log.name}")
            failed = [line for line in Path(self.log.name).read_text(errors="replace")
                      .splitlines() if "extension failed loading" in line]
            if failed:
                raise RuntimeError(failed[0].split("] ", 1)[-1])
            try:
                self.request("GET", probe, timeout=2)
                return
            except (OSError, urllib.error.HTTPError):
                time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout}s; see {self.log.name}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def time_ours(home: Path, root: Path) -> list[float]:
    server = Server(sys.executable, root, home / "ours",
                    {"JUPYTER_TASKS_DB": str(home / "ours" / "tasks.db")},
                    ["--ServerApp.jpserver_extensions={'jupyter_tasks': True}"])
    try:
        server.wait_ready("/api/tasks/stats")
        times = []
        for i in range(RUNS + 1):
            started = time.perf_counter()
            task = server.request("POST", "/api/tasks", {"notebook": "three_cells.ipynb"})
            while True:
                current = server.request("GET", f"/api/tasks/{task['id']}")
                if current["status"] in ("succeeded", "failed", "timeout", "oom", "cancelled",
                                          "interrupted"):
                    break
                time.sleep(POLL)
            elapsed = time.perf_counter() - started
            if current["status"] != "succeeded":
                raise RuntimeError(f"our job ended {current['status']}: {current['error']}")
            if i:
                times.append(elapsed)
        return times
    finally:
        server.stop()


def install_scheduler(home: Path) -> str:
    venv = home / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                   capture_output=True)
    python = str(venv / "bin" / "python")
    done = subprocess.run([python, "-m", "pip", "install", "-q", SCHEDULER_SPEC, "ipykernel"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pip install {SCHEDULER_SPEC} failed: {done.stderr.strip()[-800:]}")
    return python


def time_scheduler(home: Path, root: Path, python: str) -> tuple[list[float], str]:
    side = home / "scheduler"
    version = subprocess.run([python, "-c", "import jupyter_scheduler as j; print(j.__version__)"],
                             capture_output=True, text=True).stdout.strip()
    server = Server(python, root, side, {},
                    ["--ServerApp.jpserver_extensions={'jupyter_scheduler': True}"])
    try:
        server.wait_ready("/scheduler/jobs")
        times = []
        for i in range(RUNS + 1):
            started = time.perf_counter()
            created = server.request("POST", "/scheduler/jobs", {
                "input_uri": "three_cells.ipynb", "runtime_environment_name": "python3",
                "name": f"bench-{i}", "output_formats": ["ipynb"]})
            job_id = created["job_id"]
            deadline = time.monotonic() + 300
            seen_running = False
            while True:
                job = server.request("GET", f"/scheduler/jobs/{job_id}")
                # a new job row says STOPPED until its spawned process marks it IN_PROGRESS
                seen_running = seen_running or job["status"] == "IN_PROGRESS"
                if job["status"] in ("COMPLETED", "FAILED") or \
                        (job["status"] == "STOPPED" and seen_running):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"jupyter-scheduler job still {job['status']} after 300s")
                time.sleep(POLL)
            elapsed = time.perf_counter() - started
            if job["status"] != "COMPLETED":
                raise RuntimeError(f"jupyter-scheduler job ended {job['status']}: "
                                   f"{job.get('status_message')}")
            if i:
                times.append(elapsed)
        return times, version
    finally:
        server.stop()


def describe(times: list[float]) -> str:
    return (f"median {statistics.median(times):6.2f} s  min {min(times):6.2f} s  "
            f"max {max(times):6.2f} s  (n={len(times)})")


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="bench-jobs-notebook-"))
    root = home / "root"
    root.mkdir()
    write_notebook(root / "three_cells.ipynb")
    print(f"3-cell notebook job, submit to finished over REST; {RUNS} runs after 1 warm-up; "
          f"cpu count {os.cpu_count()}")
    ours = time_ours(home, root)
    print(f"jupyter-tasks:      {describe(ours)}")
    try:
        print("installing jupyter-scheduler into a throwaway venv ...", flush=True)
        python = install_scheduler(home)
        theirs, version = time_scheduler(home, root, python)
    except Exception as exc:
        print(f"jupyter-scheduler could not be measured: {type(exc).__name__}: {exc}")
        print(f"(logs kept in {home})")
        return
    print(f"jupyter-scheduler {version}: {describe(theirs)}")
    ratio = statistics.median(ours) / statistics.median(theirs)
    verdict = "meets" if ratio <= 0.5 else "misses"
    print(f"ours / theirs (median): {ratio:.2f}  -> {verdict} the target of <= 0.5")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
