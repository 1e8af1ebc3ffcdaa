"""Notebook job latency, submit to finished: ours beside papermill and jupyter-scheduler.

The same notebooks (a 3-cell one, and a parameterized one with a markdown cell)
run, with the same parameters, through:

* **jupyter-tasks over REST**: a real ``jupyter server`` on 127.0.0.1 with the
  extension; ``POST /api/tasks {"notebook", "parameters"}`` then
  ``GET /api/tasks/{id}`` until terminal (polled every 20 ms);
* **jupyter-tasks in-process**: ``TaskManager.submit_spec`` then ``wait`` on a
  manager in this process (its loop in a thread of its own);
* **papermill in-process**: ``papermill.execute_notebook(input, output, parameters)``;
* **papermill CLI**: ``papermill input output -p name value`` as a subprocess.

Rounds are interleaved (each round runs every side once per notebook, the
order rotating) so the machine's load falls on all sides alike; one warm-up
round is not counted. Figures: p50 and min/max per side and the ratios to
papermill in-process (target: ours within 1.1x).

Then jupyter-scheduler, installed with pip into a throwaway venv (the project's
environment is not touched), ``POST /scheduler/jobs`` then ``GET
/scheduler/jobs/{id}`` until COMPLETED/FAILED, beside ours over REST (target:
<= 0.5x); skipped with ``--no-scheduler``, and if it cannot be installed or
driven the reason is printed.

Usage: python benchmarks/bench_jobs_notebook.py [RUNS] [--no-scheduler]
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
RUNS = int(ARGS[0]) if ARGS else 5
WITH_SCHEDULER = "--no-scheduler" not in sys.argv
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


def write_parameterized(path: Path) -> None:
    nb = new_notebook(cells=[
        new_markdown_cell("# A report"),
        new_code_cell("rows = 100\nlabel = 'x'", metadata={"tags": ["parameters"]}),
        new_code_cell("data = [i % 7 for i in range(rows)]\nprint(label, sum(data))"),
        new_code_cell("max(data)"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                "language": "python"}})
    nbformat.write(nb, path)


# notebook -> parameters, the same on every side
NOTEBOOKS = {"three_cells.ipynb": {"n": 12}, "report.ipynb": {"rows": 500, "label": "bench"}}


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


TERMINAL = ("succeeded", "failed", "timeout", "oom", "cancelled", "interrupted")


def run_rest(server: Server, notebook: str, parameters: dict[str, Any]) -> float:
    """One job over REST, submit to terminal; seconds."""
    started = time.perf_counter()
    task = server.request("POST", "/api/tasks", {"notebook": notebook, "parameters": parameters})
    while True:
        current = server.request("GET", f"/api/tasks/{task['id']}")
        if current["status"] in TERMINAL:
            break
        time.sleep(POLL)
    elapsed = time.perf_counter() - started
    if current["status"] != "succeeded":
        raise RuntimeError(f"our job ended {current['status']}: {current['error']}")
    return elapsed


class InProcess:
    """A TaskManager in this process, its loop on a thread of its own."""

    def __init__(self, home: Path, root: Path) -> None:
        from jupyter_tasks import TaskManager

        self.root = root
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.manager = TaskManager(home / "inprocess.db", queues={"default": 2},
                                   flush_interval=0.05)
        self.call(self.manager.start())

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def run(self, notebook: str, parameters: dict[str, Any]) -> float:
        async def one() -> float:
            started = time.perf_counter()
            task = await self.manager.submit_spec(
                {"notebook": notebook, "parameters": parameters, "root_dir": str(self.root)},
                max_retries=0)
            done = await self.manager.wait(task.id, timeout=300)
            elapsed = time.perf_counter() - started
            if done.status != "succeeded":
                raise RuntimeError(f"in-process job ended {done.status}: {done.error}")
            return elapsed
        return self.call(one())

    def close(self) -> None:
        self.call(self.manager.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def run_papermill(root: Path, out: Path, notebook: str, parameters: dict[str, Any]) -> float:
    import papermill

    started = time.perf_counter()
    papermill.execute_notebook(str(root / notebook), str(out / notebook),
                               parameters=parameters, progress_bar=False, cwd=str(root))
    return time.perf_counter() - started


def run_papermill_cli(root: Path, out: Path, notebook: str,
                      parameters: dict[str, Any]) -> float:
    argv = [sys.executable, "-m", "papermill", "--no-progress-bar", "--cwd", str(root),
            str(root / notebook), str(out / f"cli-{notebook}")]
    for name, value in parameters.items():
        argv += ["-p", name, str(value)]
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - started


def time_rounds(home: Path, root: Path) -> dict[str, list[float]]:
    """Every side once per notebook per round, the order rotating; round 0 is warm-up."""
    out = home / "papermill-out"
    out.mkdir()
    server = Server(sys.executable, root, home / "ours",
                    {"JUPYTER_TASKS_DB": str(home / "ours" / "tasks.db")},
                    ["--ServerApp.jpserver_extensions={'jupyter_tasks': True}"])
    inprocess = None
    try:
        server.wait_ready("/api/tasks/stats")
        inprocess = InProcess(home, root)
        sides = {
            "jupyter-tasks REST": lambda nb, p: run_rest(server, nb, p),
            "jupyter-tasks in-process": inprocess.run,
            "papermill in-process": lambda nb, p: run_papermill(root, out, nb, p),
            "papermill CLI": lambda nb, p: run_papermill_cli(root, out, nb, p),
        }
        times: dict[str, list[float]] = {name: [] for name in sides}
        names = list(sides)
        for round_no in range(RUNS + 1):
            order = names[round_no % len(names):] + names[:round_no % len(names)]
            for notebook, parameters in NOTEBOOKS.items():
                for name in order:
                    elapsed = sides[name](notebook, parameters)
                    if round_no:
                        times[name].append(elapsed)
        return times
    finally:
        if inprocess is not None:
            inprocess.close()
        server.stop()


def time_ours(home: Path, root: Path) -> list[float]:
    server = Server(sys.executable, root, home / "ours-alone",
                    {"JUPYTER_TASKS_DB": str(home / "ours-alone" / "tasks.db")},
                    ["--ServerApp.jpserver_extensions={'jupyter_tasks': True}"])
    try:
        server.wait_ready("/api/tasks/stats")
        times = [run_rest(server, "three_cells.ipynb", {}) for _ in range(RUNS + 1)]
        return times[1:]
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
    return (f"p50 {statistics.median(times):6.2f} s  min {min(times):6.2f} s  "
            f"max {max(times):6.2f} s  (n={len(times)})")


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="bench-jobs-notebook-"))
    root = home / "root"
    root.mkdir()
    write_notebook(root / "three_cells.ipynb")
    write_parameterized(root / "report.ipynb")
    print(f"notebook jobs, submit to finished; notebooks {', '.join(NOTEBOOKS)}; {RUNS} "
          f"interleaved rounds after 1 warm-up; cpu count {os.cpu_count()}")
    times = time_rounds(home, root)
    base = statistics.median(times["papermill in-process"])
    for name, values in times.items():
        ratio = statistics.median(values) / base
        print(f"{name:26s} {describe(values)}  x{ratio:.2f} of papermill in-process")
    for name in ("jupyter-tasks REST", "jupyter-tasks in-process"):
        ratio = statistics.median(times[name]) / base
        verdict = "meets" if ratio <= 1.1 else "misses"
        print(f"{name} / papermill in-process (p50): {ratio:.2f} -> {verdict} the 1.1x target")
    if not WITH_SCHEDULER:
        shutil.rmtree(home, ignore_errors=True)
        return
    try:
        print("installing jupyter-scheduler into a throwaway venv ...", flush=True)
        python = install_scheduler(home)
        ours = time_ours(home, root)
        theirs, version = time_scheduler(home, root, python)
    except Exception as exc:
        print(f"jupyter-scheduler could not be measured: {type(exc).__name__}: {exc}")
        print(f"(logs kept in {home})")
        return
    print(f"jupyter-tasks REST (3 cells): {describe(ours)}")
    print(f"jupyter-scheduler {version}:  {describe(theirs)}")
    ratio = statistics.median(ours) / statistics.median(theirs)
    verdict = "meets" if ratio <= 0.5 else "misses"
    print(f"ours / theirs (p50): {ratio:.2f}  -> {verdict} the target of <= 0.5")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
