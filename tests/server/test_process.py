"""Real ``jupyter server`` processes: SIGKILL mid-job and restart loses nothing; listing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.waiting import eventually, eventually_sync

RESTART_TASKS = textwrap.dedent('''
    import os
    import time
    from pathlib import Path

    from jupyter_tasks import TaskContext, task


    @task("restart_slow", mode="job")
    def restart_slow(ctx: TaskContext, seconds: float = 3.0) -> dict:
        with open(Path(os.environ["RESTART_MARKS"]) / ctx.task_id, "a") as marks:
            marks.write(f"{os.getpid()}\\n")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ctx.check_cancelled()
            time.sleep(0.05)
        return {"pid": os.getpid()}


    @task("restart_quick", mode="job")
    def restart_quick(n: int) -> int:
        return n * 2
''')


@pytest.mark.slow
def test_sigkilled_server_restarts_and_finishes_every_job(server_factory, tmp_path: Path):
    module = tmp_path / "restart_tasks.py"
    module.write_text(RESTART_TASKS)
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {"RESTART_MARKS": str(marks)}
    first = server_factory("--JupyterTasksApp.workers=default=1", env=env, modules=str(module))

    status, slow = first.request("POST", "/api/tasks", {"name": "restart_slow",
                                                        "params": {"seconds": 3.0}})
    assert status == 202, slow
    accepted = [slow["id"]]
    for n in range(20):
        status, quick = first.request("POST", "/api/tasks", {"name": "restart_quick",
                                                             "params": {"n": n}})
        assert status == 202
        accepted.append(quick["id"])

    def slow_running() -> bool:
        return first.request("GET", f"/api/tasks/{slow['id']}")[1]["status"] == "running"

    eventually_sync(slow_running, timeout=30, what="slow job running")
    first.kill()  # SIGKILL: no cleanup, the job is left "running" in the store

    second = server_factory(env=env, modules=str(module))
    status, result = second.request("GET", f"/api/tasks/{slow['id']}/result?timeout=60",
                                    timeout=90)
    assert status == 200 and result["status"] == "succeeded", result
    task = second.request("GET", f"/api/tasks/{slow['id']}")[1]
    assert task["attempts"] == 2
    pids = (marks / slow["id"]).read_text().split()
    assert pids == [str(first.popen.pid), str(second.popen.pid)]

    def all_finished() -> list[dict]:
        tasks = second.request("GET", "/api/tasks?limit=500")[1]["tasks"]
        return tasks if all(t["status"] == "succeeded" for t in tasks) else []

    tasks = eventually_sync(all_finished, timeout=60, what="every job finished")
    ids = [t["id"] for t in tasks]
    assert sorted(ids) == sorted(accepted)  # each accepted task once, none extra
    results = {t["params"]["n"]: t["result"] for t in tasks if t["name"] == "restart_quick"}
    assert results == {n: n * 2 for n in range(20)}


def test_extension_is_listed_enabled_and_ok(tmp_path: Path):
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    listing = subprocess.run(
        [sys.executable, "-m", "jupyter", "server", "extension", "list"],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )
    output = _plain(listing.stdout + listing.stderr)
    assert "jupyter_tasks enabled" in output
    assert any(line.strip().startswith("jupyter_tasks") and line.strip().endswith("OK")
               for line in output.splitlines()), output


def _plain(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_what_a_task_prints_is_in_its_log_not_the_servers_terminal(server_factory):
    server = server_factory("--JupyterTasksApp.workers=default=1")
    ids = {}
    for name, word in (("srv_print", "alpha"), ("srv_print_async", "beta")):
        code, task = server.request("POST", "/api/tasks", {"name": name, "params": {"word": word}})
        assert code == 202, task
        ids[word] = task["id"]

    def ended(task_id: str) -> bool:
        return server.request("GET", f"/api/tasks/{task_id}")[1]["status"] == "succeeded"

    for task_id in ids.values():
        eventually_sync(lambda task_id=task_id: ended(task_id), timeout=60, what="the end")
    entries = server.request("GET", f"/api/tasks/{ids['alpha']}/logs")[1]["entries"]
    assert [(e["stream"], e["text"]) for e in entries] == [
        ("stdout", "alpha from print\n"), ("stderr", "alpha on stderr\n")]
    entries = server.request("GET", f"/api/tasks/{ids['beta']}/logs")[1]["entries"]
    assert "".join(e["text"] for e in entries) == \
        "beta from a coroutine\nbeta from a child task\n"
    server.stop()
    terminal = server.log_path.read_text(errors="replace")
    assert "Jupyter Server" in terminal  # the server's own output still reaches it
    assert "from print" not in terminal and "on stderr" not in terminal
    assert "from a coroutine" not in terminal


def test_a_job_stopping_its_forked_children_leaves_the_server_serving(server_factory):
    # before: the children a job forked kept the server's SIGTERM handler and its
    # wake-up socket: stopping them (a pool's terminate()) made them print "received
    # signal 15, stopping", and the job stayed running while the server stopped answering
    server = server_factory("--JupyterTasksApp.workers=default=1")
    for name, params, result in (("srv_fork_and_stop", {}, "ended by SIGTERM"),
                                 ("srv_pool_squares", {"n": 5}, [0, 1, 4, 9, 16])):
        code, task = server.request("POST", "/api/tasks", {"name": name, "params": params})
        assert code == 202, task

        def ended(task_id: str = task["id"]) -> bool:
            return server.request("GET", f"/api/tasks/{task_id}")[1]["status"] not in (
                "queued", "running")

        eventually_sync(ended, timeout=90, what=f"{name} ended")
        done = server.request("GET", f"/api/tasks/{task['id']}")[1]
        assert (done["status"], done["result"]) == ("succeeded", result), done
    assert server.request("GET", "/api/tasks/stats")[0] == 200
    assert "received signal" not in server.log_path.read_text(errors="replace")
    server.stop()  # and it still stops when asked
    assert server.popen is not None and server.popen.returncode is not None


async def test_a_clients_wait_rides_out_a_server_restart(server_factory):
    # before: wait() gave up at the first dropped connection ("cannot reach …: Stream
    # closed"), while the job was taken back after the restart and succeeded
    from jupyter_tasks.client import TasksClient

    server = server_factory("--JupyterTasksApp.workers=default=1")
    client = TasksClient(server.url, server.token)
    task = await client.submit(name="srv_slow", params={"seconds": 3.0, "steps": 30})
    waiting = asyncio.ensure_future(client.wait(task["id"], timeout=180))
    await eventually(lambda: _status(client, task["id"], "running"), timeout=60,
                     what="the job running")
    server.kill()
    server.start()
    done = await asyncio.wait_for(waiting, 180)
    assert (done["id"], done["status"]) == (task["id"], "succeeded"), done
    assert done["lost_attempts"] == 1


async def test_a_clients_wait_keeps_its_timeout_when_the_server_stops_answering(
        server_factory):
    # before: a frozen server (SIGSTOP, a machine swapping) held wait(timeout=2) for 32 s,
    # each request's own limit being step + 30, and it ended TasksClientError, not the
    # TimeoutError its docstring promises
    from jupyter_tasks.client import TasksClient

    server = server_factory("--JupyterTasksApp.workers=default=1")
    client = TasksClient(server.url, server.token)
    task = await client.submit(name="srv_slow", params={"seconds": 60.0, "steps": 60})
    await eventually(lambda: _status(client, task["id"], "running"), timeout=60,
                     what="the job running")
    os.kill(server.pid, signal.SIGSTOP)
    try:
        with pytest.raises(TimeoutError, match=task["id"]):
            await asyncio.wait_for(client.wait(task["id"], timeout=2), 60)
    finally:
        os.kill(server.pid, signal.SIGCONT)
    await client.cancel(task["id"])


async def _status(client, task_id: str, status: str) -> bool:
    return (await client.get(task_id))["status"] == status


def test_a_server_can_leave_its_terminal_alone(server_factory):
    server = server_factory("--JupyterTasksApp.workers=default=1",
                            "--JupyterTasksApp.capture_print=False")
    code, task = server.request("POST", "/api/tasks", {"name": "srv_print",
                                                       "params": {"word": "gamma"}})
    assert code == 202, task
    eventually_sync(lambda: server.request("GET", f"/api/tasks/{task['id']}")[1]["status"]
                    == "succeeded", timeout=60, what="the end")
    assert server.request("GET", f"/api/tasks/{task['id']}/logs")[1]["entries"] == []
    server.stop()
    terminal = server.log_path.read_text(errors="replace")
    assert "gamma from print" in terminal and "gamma on stderr" in terminal


@pytest.mark.slow
def test_a_second_sigterm_while_stopping_still_ends_the_server_and_hands_the_job_back(
        server_factory, tmp_path: Path):
    # before: the second SIGTERM ran jupyter_server's cleanup again; the extension's
    # second stop returned at once, that cleanup stopped the loop under the first one,
    # and the process hung for good with the job left running (its pid alive, no reaper)
    import signal

    module = tmp_path / "sleeper_tasks.py"
    module.write_text(textwrap.dedent('''
        import time

        from jupyter_tasks import task


        @task("sleeper", mode="job")
        def sleeper(seconds: float = 600.0) -> None:
            time.sleep(seconds)  # deaf to a cancel, as much real work is
    '''))
    server = server_factory("--JupyterTasksApp.workers=default=1", modules=str(module))
    status, job = server.request("POST", "/api/tasks", {"name": "sleeper"})
    assert status == 202, job
    eventually_sync(lambda: server.request("GET", f"/api/tasks/{job['id']}")[1]["status"]
                    == "running", timeout=60, what="the job running")
    assert server.popen is not None
    server.popen.send_signal(signal.SIGTERM)
    eventually_sync(lambda: "Shutting down" in server.log_path.read_text(), timeout=60,
                    what="the server stopping")
    server.popen.send_signal(signal.SIGTERM)  # a second, as `timeout` or an impatient user
    # a deadline, not a speed: a job that honours its cancel stops within its grace
    server.popen.wait(timeout=90)
    import sqlite3

    conn = sqlite3.connect(server.db_path)
    try:
        row = conn.execute("SELECT status, worker_id FROM tasks WHERE id = ?",
                           (job["id"],)).fetchone()
    finally:
        conn.close()
    assert row == ("queued", None), row
