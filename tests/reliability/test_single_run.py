"""At most one live run of a job: a SIGKILLed server or worker leaves no process group behind.

Each job (a command, a code job, a notebook) starts a leader that starts a child
in its process group; the child sleeps, then appends ``end`` to the job's own
log file. A run that survived its worker's death would write a second ``end``
line beside the retry's. Every process the jobs start carries the test's marker
(in its argv or its environment), so leftovers are found with psutil.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.jobs.conftest import write_notebook
from tests.waiting import eventually_sync

pytestmark = pytest.mark.slow

RUNJOB = textwrap.dedent('''
    import os, subprocess, sys, time
    token, marks, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    log = os.path.join(marks, token + ".log")
    if len(sys.argv) < 5:
        with open(log, "a") as f:
            f.write(f"start {os.getpid()}\\n")
        with open(log) as f:
            first = sum(line.startswith("start ") for line in f) == 1
        # the first run outlasts any restart (a survivor is still there to be found);
        # the retry is quick
        seconds = seconds if first else 0.5
        # a child in the same process group: only ending the whole group stops it
        child = subprocess.Popen([sys.executable, __file__, token, marks, str(seconds), "child"])
        sys.exit(child.wait())
    time.sleep(seconds)  # the work itself
    with open(log, "a") as f:
        f.write(f"end {os.getpid()}\\n")
''')

FIRST_RUN_SECONDS = 60.0


class Jobs:
    """Three jobs (command, code, notebook) that report their runs into ``marks``."""

    def __init__(self, tmp_path: Path) -> None:
        self.marks = tmp_path / "marks"
        self.marks.mkdir()
        self.script = tmp_path / "runjob.py"
        self.script.write_text(RUNJOB)
        root = tmp_path / "root"
        root.mkdir(exist_ok=True)
        write_notebook(root / "single.ipynb", [
            ("token = 'unset'", ["parameters"]),
            f"import subprocess, sys\n"
            f"subprocess.check_call([sys.executable, {str(self.script)!r}, token, "
            f"{str(self.marks)!r}, {str(FIRST_RUN_SECONDS)!r}])",
        ])
        # the processes' own temp folder: what a run keeps there (a code job's working
        # folder, a kernel's connection file) must not outlive the run, killed or not
        self.temp = tmp_path / "temp"
        self.temp.mkdir()
        self.env = {"SINGLE_RUN_MARK": str(self.marks), "TMPDIR": str(self.temp)}

    def argv(self, token: str) -> list[str]:
        return [sys.executable, str(self.script), token, str(self.marks), str(FIRST_RUN_SECONDS)]

    def bodies(self, tag: str) -> dict[str, dict[str, Any]]:
        """token -> REST body of one job of each kind."""
        code = ("import json, os, subprocess, sys\n"
                "token = json.load(open(os.environ['JUPYTER_TASKS_INPUT']))\n"
                f"sys.exit(subprocess.call({self.argv('TOKEN')!r}[:2] + "
                f"[token] + {self.argv('TOKEN')!r}[3:]))\n")
        return {
            f"{tag}-command": {"command": self.argv(f"{tag}-command"), "label": "command"},
            f"{tag}-code": {"code": code, "input_data": f"{tag}-code", "label": "code"},
            f"{tag}-notebook": {"notebook": "single.ipynb", "label": "notebook",
                                "parameters": {"token": f"{tag}-notebook"}},
        }

    def lines(self, token: str, kind: str) -> list[str]:
        path = self.marks / f"{token}.log"
        text = path.read_text() if path.exists() else ""
        return [line for line in text.splitlines() if line.startswith(kind + " ")]

    def connection_files(self) -> list[Path]:
        """The connection files the jobs' live kernels were started with."""
        found = []
        for proc in psutil.process_iter(["cmdline", "status"]):
            cmdline = proc.info["cmdline"] or []
            if proc.info["status"] == psutil.STATUS_ZOMBIE or "-f" not in cmdline[:-1]:
                continue
            with contextlib.suppress(psutil.Error):
                if proc.environ().get("SINGLE_RUN_MARK") == str(self.marks):
                    found.append(Path(cmdline[cmdline.index("-f") + 1]))
        return found

    def orphans(self, keep: set[int]) -> list[str]:
        """Live processes started for these jobs, other than the processes in ``keep``."""
        found = []
        marker = str(self.marks)
        for proc in psutil.process_iter(["pid", "cmdline", "status"]):
            if proc.pid in keep or proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            try:
                cmdline = " ".join(proc.info["cmdline"] or [])
                marked = marker in cmdline or \
                    proc.environ().get("SINGLE_RUN_MARK") == marker
            except psutil.Error:
                continue
            if marked:
                found.append(f"{proc.pid} {cmdline[:200]}")
        return found


@pytest.fixture
def jobs(tmp_path: Path):
    """The test's jobs; whatever of them is still alive at the end is killed."""
    made = Jobs(tmp_path)
    yield made
    for line in made.orphans(keep=set()):
        with contextlib.suppress(psutil.Error):
            psutil.Process(int(line.split()[0])).kill()


def _submit_all(server: Any, jobs: Jobs, tag: str) -> dict[str, str]:
    ids = {}
    for token, body in jobs.bodies(tag).items():
        status, task = server.request("POST", "/api/tasks", {**body, "max_retries": 3})
        assert status == 202, task
        ids[token] = task["id"]
    return ids


def _wait_started(server: Any, jobs: Jobs, ids: dict[str, str]) -> None:
    """Every job's leader runs and its process group is in the task's row.

    The kill comes after the record on purpose: this tests the recorded-group
    mechanism. (Between spawn and record only PDEATHSIG covers the leader.)
    """
    eventually_sync(lambda: all(jobs.lines(t, "start") for t in ids), timeout=90,
                    what="every job's process running")

    def recorded() -> dict[str, Any]:
        rows = {t: server.request("GET", f"/api/tasks/{i}?view=full")[1]["process"]
                for t, i in ids.items()}
        return rows if all(rows.values()) else {}

    rows = eventually_sync(recorded, timeout=30, what="every job's process group recorded")
    for process in rows.values():
        assert set(process) >= {"pgid", "pid", "host", "started_at"}, process
        assert psutil.Process(process["pid"]).create_time() == process["started_at"]


def _wait_succeeded(server: Any, ids: dict[str, str]) -> dict[str, dict[str, Any]]:
    def ended() -> dict[str, dict[str, Any]]:
        tasks = {t: server.request("GET", f"/api/tasks/{i}")[1] for t, i in ids.items()}
        return tasks if all(task["status"] in ("succeeded", "failed", "interrupted",
                                               "cancelled") for task in tasks.values()) else {}

    tasks = eventually_sync(ended, timeout=120, interval=0.2, what="every job ended")
    assert {t: task["status"] for t, task in tasks.items()} == \
        {t: "succeeded" for t in ids}, {t: task.get("error") for t, task in tasks.items()}
    return tasks


def _assert_left_nothing(jobs: Jobs, kernel_files: list[Path]) -> None:
    # the killed attempts' kernel connection file (its ports and key) and working
    # folders are cleared by the reaper that ended them; the later runs cleared theirs
    assert [f for f in kernel_files if f.exists()] == [], kernel_files
    assert sorted(p.name for p in jobs.temp.iterdir()) == [], list(jobs.temp.iterdir())


def _assert_exactly_once(jobs: Jobs, ids: dict[str, str], keep: set[int]) -> None:
    # a first run that survived the kill is still sleeping (it lasts a minute): it
    # shows as a live process now, or as a second end line had it been let finish
    ends = {token: len(jobs.lines(token, "end")) for token in ids}
    leftovers = jobs.orphans(keep)
    assert leftovers == [], leftovers
    assert ends == {token: 1 for token in ids}, ends
    starts = {token: len(jobs.lines(token, "start")) for token in ids}
    assert all(n >= 2 for n in starts.values()), starts  # the kill did hit running work


def _start_worker(tmp_path: Path, db_path: Path, env: dict[str, str],
                  name: str) -> subprocess.Popen[bytes]:
    log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        [sys.executable, "-m", "jupyter_tasks.cli", "--db", str(db_path), "worker",
         "--concurrency", "3"],
        env={**os.environ, "JUPYTER_TASKS_DB": str(db_path), **env},
        cwd=str(tmp_path / "root"), stdout=log, stderr=subprocess.STDOUT)


def _kill(popen: subprocess.Popen[bytes]) -> None:
    if popen.poll() is None:
        popen.kill()
    popen.wait(timeout=30)


def test_sigkilled_server_leaves_no_second_run(server_factory, jobs: Jobs):
    first = server_factory("--JupyterTasksApp.workers=default=3", env=jobs.env)
    ids = _submit_all(first, jobs, "srv")
    _wait_started(first, jobs, ids)
    kernel_files = eventually_sync(jobs.connection_files, timeout=30, what="the kernel")
    assert all(f.parent == jobs.temp and f.exists() for f in kernel_files), kernel_files
    first.kill()

    second = server_factory("--JupyterTasksApp.workers=default=3", env=jobs.env)
    _wait_succeeded(second, ids)
    _assert_exactly_once(jobs, ids, keep={second.popen.pid})
    _assert_left_nothing(jobs, kernel_files)
    rows = {t: second.request("GET", f"/api/tasks/{i}?view=full")[1] for t, i in ids.items()}
    assert all(row["process"] is None for row in rows.values()), rows  # cleared at the end


def test_sigkilled_worker_leaves_no_second_run(server_factory, jobs: Jobs, tmp_path: Path,
                                               db_path: Path):
    # the server only serves the API and reaps; a worker process runs the jobs
    server = server_factory("--JupyterTasksApp.workers=default=0", env=jobs.env)
    worker = _start_worker(tmp_path, db_path, jobs.env, "worker-1")
    replacement = None
    try:
        ids = _submit_all(server, jobs, "wrk")
        _wait_started(server, jobs, ids)
        kernel_files = eventually_sync(jobs.connection_files, timeout=30, what="the kernel")
        _kill(worker)
        replacement = _start_worker(tmp_path, db_path, jobs.env, "worker-2")
        _wait_succeeded(server, ids)
        _assert_exactly_once(jobs, ids, keep={server.popen.pid, replacement.pid})
        _assert_left_nothing(jobs, kernel_files)
    finally:
        _kill(worker)
        if replacement is not None:
            _kill(replacement)


async def test_run_subprocess_inside_a_task_records_and_clears_its_group(db_path: Path):
    from jupyter_tasks import TaskManager, run_subprocess
    from jupyter_tasks.runners import group_members
    from tests.waiting import eventually

    async with TaskManager(db_path) as manager:
        async def work() -> Any:
            return await run_subprocess([sys.executable, "-c", "import time; time.sleep(60)"])

        task = await manager.submit(work(), mode="background")

        async def recorded() -> Any:
            return (await manager.get(task.id)).process

        process = await eventually(recorded, what="the subprocess's group in the row")
        assert process["pgid"] == process["pid"]
        # the shim leads the group (it ends it all if the worker dies), the command in it
        async def shim_and_command() -> Any:
            members = group_members(process["pgid"])
            return len(members) == 2 and members

        members = await eventually(shim_and_command, what="the shim and its command")
        assert process["pid"] in [p.pid for p in members]
        await manager.cancel(task.id)
        ended = await manager.wait(task.id, timeout=30)
        assert ended.status == "cancelled"
        assert ended.process is None
        assert group_members(process["pgid"]) == []


SUBPROCESS_TASKS = '''
import sys
from jupyter_tasks import run_subprocess, task


@task("runs_a_group", mode="job")
async def runs_a_group(script: str, token: str, marks: str) -> int:
    done = await run_subprocess([sys.executable, script, token, marks, "60"])
    return done.returncode
'''


def test_run_subprocess_in_a_job_dies_with_its_killed_server_grandchild_too(
        server_factory, jobs: Jobs, tmp_path: Path):
    # before: only the group's leader had PR_SET_PDEATHSIG; its child lived on, its
    # parent pid 1, doing the job's work for nobody until a process opened the database
    # again and its reaper ended the group. No second server is started here
    module = tmp_path / "subprocess_tasks.py"
    module.write_text(SUBPROCESS_TASKS)
    server = server_factory("--JupyterTasksApp.workers=default=1", env=jobs.env,
                            modules=str(module))
    status, task = server.request("POST", "/api/tasks", {
        "name": "runs_a_group",
        "params": {"script": str(jobs.script), "token": "rs", "marks": str(jobs.marks)}})
    assert status == 202, task

    def both_running() -> bool:  # the leader and its child, the work
        return len(jobs.orphans(keep={server.popen.pid})) >= 2 and bool(jobs.lines("rs", "start"))

    eventually_sync(both_running, timeout=60, what="the job's leader and its child")
    server.kill()
    eventually_sync(lambda: not jobs.orphans(keep=set()), timeout=30,
                    what="no process of the job left once its server was killed")
    assert not jobs.lines("rs", "end")


async def test_a_killed_shim_is_said_as_such_not_blamed_on_the_command(db_path: Path):
    # before: "command 'sleep' exited with code -9" (SubprocessFailed): the command had
    # not exited, its shim was killed and the worker then ended the group
    import signal

    from jupyter_tasks import TaskManager
    from tests.waiting import eventually

    async with TaskManager(db_path, queues={"default": 1}, make_default=False) as manager:
        task = await manager.submit_spec({"command": ["sleep", "60"]}, mode="job")

        async def shim_running() -> Any:
            row = await manager.get(task.id)
            return row.process and row.process.get("pid")

        shim_pid = await eventually(shim_running, timeout=30, what="the job's shim recorded")
        os.kill(shim_pid, signal.SIGKILL)
        ended = await manager.wait(task.id, timeout=30)
        assert ended.status == "failed", ended
        assert ended.error["type"] == "ShimLost", ended.error
        message = ended.error["message"]
        assert "shim" in message and "SIGKILL" in message and "exited with code" not in message


def test_a_notebook_jobs_processes_die_with_its_killed_server(server_factory, jobs: Jobs):
    # before: PR_SET_PDEATHSIG ended the kernel alone; what its cell started (here a
    # script and its child) lived on with parent pid 1 until a process opened the
    # database again. No second server is started here
    server = server_factory("--JupyterTasksApp.workers=default=1", env=jobs.env)
    status, task = server.request("POST", "/api/tasks", jobs.bodies("nbk")["nbk-notebook"])
    assert status == 202, task

    def all_running() -> bool:  # the kernel, the script its cell started, and its child
        return len(jobs.orphans(keep={server.popen.pid})) >= 3 and \
            bool(jobs.lines("nbk-notebook", "start"))

    eventually_sync(all_running, timeout=90, what="the kernel, the script and its child")
    server.kill()
    eventually_sync(lambda: not jobs.orphans(keep=set()), timeout=30,
                    what="no process of the job left once its server was killed")
    assert not jobs.lines("nbk-notebook", "end")
