"""Chaos: jobs keep running exactly once while the server and a worker are SIGKILLed.

N jobs (``--jobs``, default 500) of three kinds — a registered function, a
command (a leader and a child in one process group) and a notebook — are
submitted over REST to a ``jupyter server`` (2 job slots) beside a ``jupyter
tasks worker`` process (2 slots). Meanwhile the server or the worker, at random,
is SIGKILLed and restarted at once, K times (``--kills``, default 10) at random
moments. Each run of a job appends ``start`` and ``end`` lines (with a time) to
the job's own file. Printed at the end:

* accepted: submissions answered 202/200 (each has an idempotency key, so a
  submission retried across a server restart is one job);
* finished exactly once: succeeded, exactly one ``end`` line; of those, how many
  a reaper finished from the exit their process recorded (the worker died
  after the command exited, before it wrote the end);
* run twice: a second run started while an earlier one was still going (the
  bug this guards against), and separately re-runs after a run that finished
  its work but whose worker died before the end was stored (at-least-once:
  no overlap, the retry starts after the first run ended);
* lost: accepted but not succeeded, or succeeded with no ``end`` line;
* orphan processes left: live processes started for the jobs once all is over;
* recovery after each kill: from the SIGKILL until no job is held by the dead
  process any more (back in the queue or running elsewhere), p50/p99, beside
  the lease time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import nbformat
import psutil
from bench_server_common import free_port, percentile
from nbformat.v4 import new_code_cell, new_notebook

LEASE_SECONDS = 30.0  # TaskManager's default: recovery must come well before it

TASKS = textwrap.dedent('''
    import os
    import time

    from jupyter_tasks import task


    def mark(marks: str, token: str, what: str) -> None:
        with open(os.path.join(marks, token + ".log"), "a") as f:
            f.write(f"{what} {os.getpid()} {time.time():.6f}\\n")


    @task("chaos_fn", mode="job")
    def chaos_fn(token: str, marks: str, seconds: float) -> str:
        mark(marks, token, "start")
        time.sleep(seconds)  # the work itself
        mark(marks, token, "end")
        return token
''')

RUNJOB = textwrap.dedent('''
    import os, subprocess, sys, time
    token, marks, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])

    def mark(what):
        with open(os.path.join(marks, token + ".log"), "a") as f:
            f.write(f"{what} {os.getpid()} {time.time():.6f}\\n")

    if len(sys.argv) < 5:
        mark("start")
        # the work runs in a child of the same process group: only a group kill ends it
        sys.exit(subprocess.call([sys.executable, __file__, token, marks, str(seconds), "c"]))
    time.sleep(seconds)
    mark("end")
''')

NOTEBOOK_CELL = textwrap.dedent('''
    import os, time
    def mark(what):
        with open(os.path.join(marks, token + ".log"), "a") as f:
            f.write(f"{what} {os.getpid()} {time.time():.6f}\\n")
    mark("start")
    time.sleep(seconds)
    mark("end")
''')


class Cluster:
    """One server and one worker process on a shared database; either can be killed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.db = folder / "tasks.db"
        self.token = os.urandom(12).hex()
        self.port = free_port()
        self.env = {**os.environ, "JUPYTER_TASKS_DB": str(self.db),
                    "JUPYTER_TASKS_MODULES": str(folder / "chaos_tasks.py"),
                    "JUPYTER_CONFIG_DIR": str(folder / "config"),
                    "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
                    "CHAOS_MARK": str(folder)}
        self.server: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def _log(self, name: str) -> Any:
        self.restarts += 1
        return open(self.folder / f"{name}-{self.restarts}.log", "wb")  # the child keeps it

    def start_server(self) -> None:
        self.server = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", f"--port={self.port}", "--port-retries=0",
             "--ip=127.0.0.1", f"--IdentityProvider.token={self.token}",
             "--ServerApp.open_browser=False", f"--ServerApp.root_dir={self.folder}",
             "--ServerApp.allow_root=True", "--log-level=WARN",
             "--JupyterTasksApp.workers=default=2"],
            env=self.env, stdout=self._log("server"), stderr=subprocess.STDOUT, cwd=self.folder)

    def start_worker(self) -> None:
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "jupyter_tasks.cli", "--db", str(self.db), "worker",
             "--concurrency", "2"],
            env=self.env, stdout=self._log("worker"), stderr=subprocess.STDOUT, cwd=self.folder)

    def request(self, method: str, path: str, body: Any = None,
                timeout: float = 30) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
            headers={"Authorization": f"token {self.token}",
                     "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            return err.code, None

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/api/tasks/stats", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit("the server did not start")

    def pids(self) -> set[int]:
        return {p.pid for p in (self.server, self.worker) if p is not None and p.poll() is None}

    def stop(self) -> None:
        for popen in (self.server, self.worker):
            if popen is not None and popen.poll() is None:
                popen.send_signal(signal.SIGTERM)
        for popen in (self.server, self.worker):
            if popen is not None:
                try:
                    popen.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    popen.kill()
                    popen.wait()


def read_db(db: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def job_bodies(n: int, folder: Path, marks: Path, rng: random.Random) -> list[dict[str, Any]]:
    """The mix: mostly functions and commands; notebooks (a kernel each) are 6%."""
    bodies = []
    for i in range(n):
        token = f"job{i:05d}"
        roll = rng.random()
        seconds = round(rng.uniform(0.3, 2.0), 2)
        if roll < 0.06:
            body = {"notebook": "chaos.ipynb", "label": "notebook",
                    "parameters": {"token": token, "marks": str(marks), "seconds": seconds}}
        elif roll < 0.50:
            body = {"command": [sys.executable, str(folder / "runjob.py"), token, str(marks),
                                str(seconds)], "label": "command"}
        else:
            body = {"name": "chaos_fn", "label": "function",
                    "params": {"token": token, "marks": str(marks), "seconds": seconds}}
        bodies.append({**body, "max_retries": 20, "idempotency_key": token})
    return bodies


def submit_all(cluster: Cluster, bodies: list[dict[str, Any]], accepted: dict[str, str],
               done: threading.Event) -> None:
    """Submit every job, a few per second, retrying through server restarts."""
    for body in bodies:
        while True:
            try:
                status, task = cluster.request("POST", "/api/tasks", body, timeout=10)
            except OSError:
                status, task = 0, None
            if status in (200, 202) and task:
                accepted[body["idempotency_key"]] = task["id"]
                break
            time.sleep(0.2)  # the server is restarting: try again
        time.sleep(0.01)
    done.set()


def recovery_time(cluster: Cluster, worker_id: str | None, killed_at: float) -> float | None:
    """Seconds from the kill until no task is running under the dead process's worker id."""
    if worker_id is None:
        return None
    deadline = time.monotonic() + 3 * LEASE_SECONDS
    while time.monotonic() < deadline:
        held = read_db(cluster.db, "SELECT count(*) FROM tasks WHERE status = 'running' "
                       "AND worker_id = ?", (worker_id,))[0][0]
        if held == 0:
            return time.monotonic() - killed_at
        time.sleep(0.05)
    return float("inf")


def worker_id_of(cluster: Cluster, pid: int) -> str | None:
    rows = read_db(cluster.db, "SELECT id FROM workers WHERE pid = ? ORDER BY started_at DESC "
                   "LIMIT 1", (pid,))
    return rows[0][0] if rows else None


def runs_of(marks: Path, token: str) -> list[tuple[str, float]]:
    path = marks / f"{token}.log"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        what, _pid, ts = line.split()
        out.append((what, float(ts)))
    return out


def orphans(folder: Path, keep: set[int]) -> list[str]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        if proc.pid in keep or proc.pid == os.getpid() \
                or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            if str(folder) in cmdline or proc.environ().get("CHAOS_MARK") == str(folder):
                found.append(f"{proc.pid} {cmdline[:120]}")
        except psutil.Error:
            continue
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    folder = Path(tempfile.mkdtemp(prefix="jt-chaos-"))
    marks = folder / "marks"
    marks.mkdir()
    (folder / "chaos_tasks.py").write_text(TASKS)
    (folder / "runjob.py").write_text(RUNJOB)
    nb = new_notebook(cells=[
        new_code_cell("token, marks, seconds = 'unset', '.', 0.1",
                      metadata={"tags": ["parameters"]}),
        new_code_cell(NOTEBOOK_CELL)],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}})
    nbformat.write(nb, folder / "chaos.ipynb")

    cluster = Cluster(folder)
    cluster.start_server()
    cluster.wait_ready()
    cluster.start_worker()
    bodies = job_bodies(args.jobs, folder, marks, rng)
    kinds = {b["idempotency_key"]: b["label"] for b in bodies}
    accepted: dict[str, str] = {}
    submitted = threading.Event()
    started = time.monotonic()
    submitter = threading.Thread(target=submit_all, args=(cluster, bodies, accepted, submitted),
                                 daemon=True)
    submitter.start()

    recoveries: list[float] = []
    victims: list[str] = []
    for _ in range(args.kills):
        time.sleep(rng.uniform(2.0, 8.0))  # a random moment, while jobs run
        victim = rng.choice(["server", "worker"])
        popen = cluster.server if victim == "server" else cluster.worker
        assert popen is not None
        wid = worker_id_of(cluster, popen.pid)
        killed_at = time.monotonic()
        popen.send_signal(signal.SIGKILL)
        popen.wait()
        if victim == "server":
            cluster.start_server()
        else:
            cluster.start_worker()
        took = recovery_time(cluster, wid, killed_at)
        victims.append(victim)
        if took is not None:
            recoveries.append(took)
        if victim == "server":
            cluster.wait_ready()
    submitted.wait()

    def all_ended() -> bool:
        ids = list(accepted.values())
        marks_sql = ",".join("?" * len(ids))
        left = read_db(cluster.db, f"SELECT count(*) FROM tasks WHERE id IN ({marks_sql}) "
                       "AND status IN ('queued', 'running')", tuple(ids))[0][0]
        return left == 0

    deadline = time.monotonic() + 600
    while not all_ended() and time.monotonic() < deadline:
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    statuses = dict(read_db(cluster.db, "SELECT id, status FROM tasks"))
    from_exit = {task_id for (task_id,) in read_db(
        cluster.db, "SELECT DISTINCT task_id FROM task_logs WHERE stream = 'log' "
        "AND text LIKE '%this end was written from that exit%'")}
    keep = cluster.pids()
    left_over = orphans(folder, keep)

    once = overlapping = rerun = lost = once_from_exit = 0
    by_kind: dict[str, list[int]] = {}
    for token, task_id in accepted.items():
        runs = runs_of(marks, token)
        ends = [ts for what, ts in runs if what == "end"]
        starts = [ts for what, ts in runs if what == "start"]
        ok = statuses.get(task_id) == "succeeded"
        counts = by_kind.setdefault(kinds[token], [0, 0])
        counts[0] += 1
        if not ok or not ends:
            lost += 1
            continue
        if len(ends) == 1:
            once += 1
            once_from_exit += task_id in from_exit
            counts[1] += 1
            continue
        # a run that started before an earlier run's end overlapped it
        first_end = min(ends)
        if any(s < first_end for s in sorted(starts)[1:]):
            overlapping += 1
        else:
            rerun += 1
    cluster.stop()

    print(f"jobs: {args.jobs} ({', '.join(f'{k} {v[0]}' for k, v in sorted(by_kind.items()))}), "
          f"kills: {len(victims)} ({victims.count('server')} server, "
          f"{victims.count('worker')} worker), {elapsed:.0f} s in all")
    print(f"accepted: {len(accepted)}")
    print(f"finished exactly once: {once} "
          f"({', '.join(f'{k} {v[1]}/{v[0]}' for k, v in sorted(by_kind.items()))}; "
          f"{once_from_exit} of them finished by a reaper from their recorded exit)")
    print(f"run twice (overlapping runs): {overlapping}")
    print(f"run again after a finished but unstored run (at-least-once, no overlap): {rerun}")
    print(f"lost: {lost}")
    print(f"orphan processes left: {len(left_over)}" + (f" {left_over[:5]}" if left_over else ""))
    finite = [r for r in recoveries if r != float("inf")]
    if finite:
        print(f"recovery after a kill: n={len(recoveries)} p50={percentile(finite, 50):.2f} s "
              f"p99={percentile(finite, 99):.2f} s max={max(recoveries):.2f} s "
              f"(lease {LEASE_SECONDS:.0f} s)")
    print(f"data: {folder}")


if __name__ == "__main__":
    main()
