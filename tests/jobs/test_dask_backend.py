"""Jobs on a real Dask LocalCluster (worker processes): throughput, progress, cancel, lost
workers. The cluster is started by this module; the hub is a TaskManager with job queues."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

distributed = pytest.importorskip("distributed")

from jupyter_tasks import TaskManager  # noqa: E402
from jupyter_tasks.dask_backend import DaskBackend  # noqa: E402
from tests.jobs import dask_tasks  # noqa: E402, F401  (registers the tasks on the hub)
from tests.jobs.conftest import write_notebook  # noqa: E402
from tests.processes import ended  # noqa: E402
from tests.waiting import eventually  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                                  dashboard_address=None, silence_logs=40) as c:
        yield c


@pytest.fixture
async def hub(db_path: Path, cluster: Any):
    async with TaskManager(db_path, queues={"default": 8}, retry_base_delay=0.05,
                           flush_interval=0.05) as m:
        backend = DaskBackend(cluster.scheduler_address).install(m)
        m.test_backend = backend
        yield m
    await backend.close()


async def until(check: Any, timeout: float, what: str) -> Any:
    """Poll a synchronous check without blocking the hub's loop (it runs on this loop)."""

    async def wrapped() -> Any:
        return check()

    return await eventually(wrapped, timeout=timeout, what=what)


async def test_hundred_jobs_complete_with_fresh_keys(hub: TaskManager) -> None:
    tasks = [await hub.submit("dask_square", x=i, mode="job") for i in range(100)]
    results = {}
    for t in tasks:
        done = await hub.wait(t.id, timeout=120)
        assert done.status == "succeeded", (done.status, done.error)
        results[t.id] = done.result
        assert done.progress["message"].startswith("squared")
    assert sorted(results.values()) == [i * i for i in range(100)]
    assert hub.test_backend.submitted == 100
    # a rerun is a new Dask key: it really runs again instead of reusing the old result
    rerun = await hub.rerun(tasks[5].id)
    done = await hub.wait(rerun.id, timeout=60)
    assert (done.status, done.result, done.attempts) == ("succeeded", 25, 1)
    assert hub.test_backend.submitted == 101


async def test_a_client_that_closed_itself_is_replaced(hub: TaskManager) -> None:
    # a scheduler away longer than the client's reconnect window: the client closes
    # itself for good. Before, every later job failed at once with ClosedClientError
    # (registered functions spent their three attempts in milliseconds) until the hub
    # was restarted, though the scheduler was back
    first = await hub.wait((await hub.submit("dask_square", x=3, mode="job")).id, timeout=60)
    assert first.status == "succeeded"
    backend = hub.test_backend
    closed = await backend.client()
    await closed.close()
    after = await hub.wait((await hub.submit("dask_square", x=4, mode="job")).id, timeout=60)
    assert (after.status, after.result, after.attempts) == ("succeeded", 16, 1), after.error
    assert await backend.client() is not closed


async def test_progress_and_logs_arrive_while_running(hub: TaskManager, tmp_path: Path) -> None:
    task = await hub.submit("dask_steps", steps=40, marker_dir=str(tmp_path), delay=0.1,
                            mode="job")

    async def midway() -> bool:
        t = await hub.get(task.id)
        return t.status == "running" and t.progress and 3 <= t.progress["current"] < 40

    await eventually(midway, timeout=60, what="progress while running")
    logs = "".join(e.text for e in await hub.store.get_logs(task.id))
    assert "step 1 on" in logs
    done = await hub.wait(task.id, timeout=60)
    assert done.status == "succeeded"
    assert done.progress == {"current": 40, "total": 40, "message": "done"}
    assert done.result["pid"] != os.getpid()
    assert done.resource_usage["cpu_seconds"] >= 0


@pytest.mark.parametrize("shared", [False, True])
async def test_another_hub_on_the_cluster_stores_none_of_this_ones_output(
        hub: TaskManager, cluster: Any, tmp_path: Path, shared: bool) -> None:
    # before: every hub took every run's late log lines from the shared topic: another
    # user's database held this job's output under task ids it did not have, and a
    # second server on the same database logged every line twice
    other_db = hub.config.db_path if shared else tmp_path / "other.db"
    async with TaskManager(other_db, queues={"default": 2}) as other:
        backend = DaskBackend(cluster.scheduler_address).install(other)
        try:
            await backend.client()  # subscribed to the cluster's events, as in use
            task = await hub.submit("dask_steps", steps=12, marker_dir=str(tmp_path),
                                    delay=0.05, mode="job")
            done = await hub.wait(task.id, timeout=60)
            assert done.status == "succeeded", done.error
            # what the job printed reached this hub once (a settled flush of both hubs)
            await hub.store.settle()
            await other.store.settle()
            lines = [line for e in await hub.store.get_logs(task.id)
                     for line in e.text.splitlines() if line.startswith("step ")]
            assert len(lines) == 12 == len(set(lines)), lines
            if not shared:
                assert await other.store.get_logs(task.id) == []
        finally:
            await backend.close()


async def test_what_a_job_prints_on_the_worker_is_in_its_log(hub: TaskManager) -> None:
    task = await hub.submit("dask_print", word="remote", mode="job")
    done = await hub.wait(task.id, timeout=60)
    assert done.status == "succeeded", done.error
    entries = [(e.stream, e.text) for e in await hub.store.get_logs(task.id)]
    assert [stream for stream, _ in entries] == ["stdout", "stderr"], entries
    assert entries[0][1].startswith("remote printed on ") and entries[1][1] == "remote on stderr\n"
    assert entries[0][1] != f"remote printed on {os.getpid()}\n"  # on a worker process


async def test_cancel_stops_a_function_on_the_worker(hub: TaskManager, tmp_path: Path) -> None:
    task = await hub.submit("dask_steps", steps=100000, marker_dir=str(tmp_path), delay=0.02,
                            mode="job")
    await eventually(lambda: _progress_at_least(hub, task.id, 2), timeout=60,
                     what="running on Dask")
    await hub.cancel(task.id)
    done = await hub.wait(task.id, timeout=30)
    assert done.status == "cancelled"
    # the worker saw the Dask Event through ctx.cancelled and stopped, before the task
    # was written cancelled (it stays running, cancel requested, until then)
    assert (tmp_path / "stopped-cooperatively").exists()


async def test_cancel_ends_the_program_a_function_waits_on_on_the_worker(
        hub: TaskManager, tmp_path: Path) -> None:
    # before: the worker's thread sat in subprocess.run's waitpid, where the interrupt
    # cannot land; the program (ten minutes) ran on, and the attempt with it
    pid_file = tmp_path / "program.pid"
    task = await hub.submit("dask_runs_a_program", pid_file=str(pid_file), mode="job")

    async def started() -> bool:
        return pid_file.exists() and pid_file.read_text().strip() != ""

    await eventually(started, timeout=60, what="the program started on the worker")
    program = int(pid_file.read_text())
    await hub.cancel(task.id)
    done = await hub.wait(task.id, timeout=60)
    assert done.status == "cancelled", done.error

    await until(lambda: ended(program), timeout=30, what="the program ended with the cancel")


async def _progress_at_least(hub: TaskManager, task_id: str, n: int) -> bool:
    t = await hub.get(task_id)
    return bool(t.progress) and t.progress["current"] >= n


@pytest.mark.parametrize("how", ["cancel", "timeout"])
async def test_cancel_and_timeout_kill_a_code_job_on_the_worker(
        hub: TaskManager, tmp_path: Path, how: str) -> None:
    pid_file = tmp_path / "pid"
    code = (f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
            "time.sleep(600)\n")
    task = await hub.submit_spec({"code": code}, max_retries=0,
                                 timeout=None if how == "cancel" else 15)  # (room to start)
    pid = int(await until(lambda: pid_file.exists() and pid_file.read_text(), timeout=60,
                         what="code process started"))
    assert not ended(pid)
    if how == "cancel":
        await hub.cancel(task.id)
    done = await hub.wait(task.id, timeout=60)
    assert done.status == ("cancelled" if how == "cancel" else "timeout")
    await until(lambda: ended(pid), timeout=15, what="process killed on the worker")


async def test_code_and_notebook_jobs_bring_artifacts_back(hub: TaskManager,
                                                           tmp_path: Path) -> None:
    code = ("import json, os\nd = json.load(open(os.environ['JUPYTER_TASKS_INPUT']))\n"
            "open(os.path.join(os.environ['JUPYTER_TASKS_OUTPUT'], 'out.txt'), 'w')"
            ".write(str(d['n'] * 2))\nprint('wrote')\n")
    code_task = await hub.submit_spec({"code": code, "input_data": {"n": 21}})
    write_notebook(tmp_path / "nb.ipynb", [("n = 1", ["parameters"]), "print(n + 1)"])
    nb_task = await hub.submit_spec({"notebook": "nb.ipynb", "parameters": {"n": 41},
                                     "root_dir": str(tmp_path), "export_html": True,
                                     "output_path": "out/run-{n}.ipynb"})
    done = await hub.wait(code_task.id, timeout=60)
    assert done.status == "succeeded", done.error
    art = await hub.store.get_artifact(code_task.id, "out.txt")
    assert hub.store.artifact_path(art).read_text() == "42"
    # the exit-time peak the worker's shim took: there even when the code job ended
    # before the sampler's first look (0.0 was seen when only sampling reported)
    assert done.resource_usage["peak_memory_mb"] > 0
    assert "wrote" in "".join(e.text for e in await hub.store.get_logs(code_task.id))
    done = await hub.wait(nb_task.id, timeout=120)
    assert done.status == "succeeded", done.error
    assert done.progress["current"] == done.progress["total"] == 3
    assert "42" in "".join(e.text for e in await hub.store.get_logs(nb_task.id))
    assert await hub.store.get_artifact(nb_task.id, "nb.ipynb") is not None
    # output_path is in the server root, on the hub: written there from the worker's notebook
    written = nbformat.read(tmp_path / "out" / "run-41.ipynb", as_version=4)
    nbformat.validate(written)
    assert "42" in json.dumps(written.cells[-1].outputs)
    # and named where it is, as a local run names it (before: null in both)
    assert done.result["output_path"] == os.path.join("out", "run-41.ipynb")
    assert written.metadata["papermill"]["output_path"] == os.path.join("out", "run-41.ipynb")
    assert (tmp_path / "out" / "run-41.html").read_text().lstrip().lower().startswith("<!doctype")


async def test_remote_errors_keep_their_type(hub: TaskManager) -> None:
    task = await hub.submit("dask_fail", message="boom", mode="job", max_retries=0)
    done = await hub.wait(task.id, timeout=60)
    assert done.status == "failed"
    assert done.error["type"] == "KeyError" and "boom" in done.error["message"]
    assert "dask_tasks.py" in done.error["traceback"]
    # the user's frames only, as a local run stores them (before: the worker side's
    # run_on_worker and _run_function frames too)
    assert "dask_backend.py" not in done.error["traceback"], done.error["traceback"]
    # one whose str() raises: said as a local run says it (before: "DaskJobLost: Dask
    # could not run …: RuntimeError: no str for you", the cluster blamed, the type lost)
    task = await hub.submit("dask_unprintable", mode="job", max_retries=0)
    done = await hub.wait(task.id, timeout=60)
    assert done.status == "failed" and done.error["type"] == "Unprintable", done.error
    assert done.error["message"].startswith("<unprintable Unprintable: its str() raised "
                                            "RuntimeError>"), done.error


async def test_killed_worker_is_retried_and_counted(hub: TaskManager, tmp_path: Path,
                                                    cluster: Any) -> None:
    task = await hub.submit("dask_steps", steps=30, marker_dir=str(tmp_path), delay=0.1,
                            mode="job")
    await eventually(lambda: _progress_at_least(hub, task.id, 3), timeout=60,
                     what="job running on a worker")
    first = next(tmp_path.glob("started-*"))
    victim = int(first.read_text())
    assert victim != os.getpid()
    os.kill(victim, signal.SIGKILL)
    done = await hub.wait(task.id, timeout=120)
    assert done.status == "succeeded", (done.status, done.error)
    assert done.result["pid"] != victim
    assert done.attempts == 2
    # a lost worker is not the work failing: it does not use up max_retries
    assert (done.lost_attempts, done.retry_reason) == (1, "worker lost")
    logs = "".join(e.text for e in await hub.store.get_logs(task.id))
    assert "was lost" in logs
    assert f"— attempt 2 of {done.max_retries + 2}: worker lost —" in logs
    # the nanny brings the killed worker back for whatever runs next
    cluster.sync(_wait_workers, cluster, 2)


async def test_a_job_whose_workers_keep_dying_ends_interrupted_spending_no_retries(
        hub: TaskManager, tmp_path: Path, cluster: Any) -> None:
    # before: Dask's KilledWorker (it gave up after its allowed failures) was taken for
    # the work failing: each of max_retries + 1 attempts got Dask's whole allowance
    # again, 12 worker deaths in all with the defaults, and the task ended `failed`
    marks = tmp_path / "marks"
    allowed = cluster.scheduler.allowed_failures
    cluster.scheduler.allowed_failures = 1  # Dask runs it twice, then gives up
    try:
        task = await hub.submit("dask_kills_its_worker", marks=str(marks), mode="job",
                                max_retries=2)
        done = await hub.wait(task.id, timeout=180)
    finally:
        cluster.scheduler.allowed_failures = allowed
        cluster.sync(_wait_workers, cluster, 2)
    starts = marks.read_text().split()
    assert len(starts) == 2 and len(set(starts)) == 2, starts  # Dask's two runs, no more
    assert done.status == "interrupted", (done.status, done.error)
    assert done.error["type"] == "DaskWorkersLost", done.error
    assert "not retried again" in done.error["message"], done.error
    assert done.lost_attempts == 1 and done.attempts == 2, done


async def test_a_job_for_a_scheduler_that_cannot_be_reached_waits_in_its_queue(
        db_path: Path, caplog: Any) -> None:
    # before: the job showed running through each 30 s connect timeout, then ended
    # `failed` (a registered function after its three attempts; a command, code or
    # notebook job after one), though it never ran; nothing in the server's log
    import logging

    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "0.5s"}), \
            caplog.at_level(logging.ERROR, logger="jupyter_tasks"):
        async with TaskManager(db_path, queues={"default": 1}) as m:
            backend = DaskBackend("tcp://127.0.0.1:1").install(m)
            try:
                task = await m.submit_spec({"command": ["true"]}, mode="job")

                async def handed_back() -> Any:
                    row = await m.get(task.id)
                    return row if row.status == "queued" and row.error else None

                row = await eventually(handed_back, timeout=60, what="the job back queued")
                assert row.attempts == 0 and row.not_before > row.updated_at, row
                assert "cannot reach the Dask scheduler tcp://127.0.0.1:1" in \
                    row.error["message"], row.error
                said = [r.getMessage() for r in caplog.records
                        if "cannot reach the Dask scheduler" in r.getMessage()]
                assert len(said) == 1, said  # said once in the log, not per try
                await m.cancel(task.id)
            finally:
                await backend.close()


async def _wait_workers(cluster: Any, n: int) -> None:
    import asyncio

    for _ in range(600):
        if len(cluster.scheduler_info["workers"]) >= n:
            return
        await asyncio.sleep(0.1)


# ------------------------------------------------------------ the server's workers


@pytest.fixture
def tasks_config(cluster: Any) -> dict[str, Any]:
    """The server under test sends its jobs to this module's cluster."""
    return {"executor": "dask", "dask_scheduler_address": cluster.scheduler_address}


async def test_server_configured_for_dask_sends_jobs_there(api, tasks_app, jp_root_dir) -> None:
    assert tasks_app.dask_backend is not None
    task = await api.submit({"name": "dask_square", "params": {"x": 12}})
    result = await api.get(task["id"], "result", params={"timeout": 60})
    assert result.json["status"] == "succeeded" and result.json["result"] == 144
    write_notebook(jp_root_dir / "n.ipynb", ["import os\nos.getpid()"])
    nb = await api.submit({"notebook": "n.ipynb"})
    result = await api.get(nb["id"], "result", params={"timeout": 120})
    assert result.json["status"] == "succeeded", result.json
    download = await api.get(nb["id"], "artifacts", "n.ipynb")
    assert download.code == 200 and download.headers["ETag"]
    assert tasks_app.dask_backend.submitted == 2


async def test_a_nan_or_unpicklable_result_from_dask_follows_the_storage_rule(
        hub: TaskManager) -> None:
    task = await hub.submit("dask_diverged", mode="job")
    done = await hub.wait(task.id, timeout=60)
    assert done.status == "succeeded", done.error
    assert done.result["loss"] is None and done.result["steps"] == 3
    assert done.result["lock"].startswith("<unlocked _thread.lock")


async def test_a_result_nested_past_the_rule_is_stored_as_locally(hub: TaskManager) -> None:
    # before: pickled by the check on the worker, then not by Dask on its deeper stack:
    # "Could not serialize object of type list", the job run three times, then failed
    task = await hub.submit("dask_deep", depth=500, mode="job", max_retries=0)
    done = await hub.wait(task.id, timeout=60)
    assert done.status == "succeeded", done.error
    assert done.result["artifact"] == "result.json" and "500 levels" in done.result["reason"]
    whole = await hub.store.get_artifact(task.id, "result.json")
    text = hub.store.artifact_path(whole).read_text()
    assert text == "[" * 500 + "]" * 500


async def test_a_command_job_runs_on_dask(hub: TaskManager, tmp_path: Path) -> None:
    # before: every command job failed on the worker before it started, importing
    # SubprocessFailed from where it no longer was
    marker = tmp_path / "ran"
    ok = await hub.submit_spec({"command": ["sh", "-c", f"echo ran > {marker}; echo out"]})
    bad = await hub.submit_spec({"command": ["sh", "-c", "exit 3"]}, max_retries=0)
    done = await hub.wait(ok.id, timeout=60)
    assert done.status == "succeeded", done.error
    assert done.result == {"returncode": 0} and marker.read_text() == "ran\n"
    assert "out" in "".join(e.text for e in await hub.store.get_logs(ok.id))
    failed = await hub.wait(bad.id, timeout=60)
    assert failed.status == "failed"
    assert failed.error["type"] == "SubprocessFailed" and "3" in failed.error["message"]
    assert hub.test_backend.submitted >= 2  # they went to Dask, not to a local slot


# ------------------------------------------------- stopping a notebook job on Dask


def _looping_notebook(folder: Path) -> tuple[Path, Path]:
    """A notebook whose second cell appends a line to a file every 10 ms until stopped."""
    pid_file, ticks = folder / "kernel.pid", folder / "ticks.txt"
    write_notebook(folder / "loop.ipynb", [
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "print('first cell ran')",
        f"for i in range(10**7):\n    with open({str(ticks)!r}, 'a') as f:\n"
        "        f.write(f'{i}\\n')\n    time.sleep(0.01)",
    ])
    return pid_file, ticks


@pytest.mark.parametrize("how", ["cancel", "timeout"])
async def test_a_stopped_notebook_job_ends_after_its_kernel_and_keeps_the_notebook(
        hub: TaskManager, tmp_path: Path, how: str) -> None:
    pid_file, ticks = _looping_notebook(tmp_path)
    with hub.subscribe() as feed:
        task = await hub.submit_spec({"notebook": "loop.ipynb", "root_dir": str(tmp_path)},
                                     max_retries=0, timeout=None if how == "cancel" else 15)
        await until(lambda: ticks.exists() and ticks.stat().st_size > 20, timeout=120,
                    what="the loop cell running in a kernel on a Dask worker")
        kernel = int(pid_file.read_text())
        if how == "cancel":
            cancelling = await hub.cancel(task.id)
            # until the worker confirms, the task is "cancelling": running, cancel requested
            assert (cancelling.status, cancelling.cancel_requested) == ("running", True)
        # the moment the final status is written, the remote work must already be over
        while True:
            event = await asyncio.wait_for(feed.get(), 120)
            if event.task_id == task.id and event.task and \
                    event.task["status"] not in ("queued", "running"):
                break
        size_at_end = ticks.stat().st_size
        await until(lambda: ended(kernel), timeout=30, what="kernel gone")
        assert ticks.stat().st_size == size_at_end, \
            f"the kernel kept writing after the task was written {event.task['status']}"
    done = await hub.get(task.id)
    assert done.status == ("cancelled" if how == "cancel" else "timeout")
    # the executed notebook is kept, as for a local run: the cells that ran, with output
    art = await hub.store.get_artifact(task.id, "loop.ipynb")
    assert art is not None, "no executed notebook kept"
    nb = nbformat.reads(hub.store.artifact_path(art).read_text(), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "first cell ran" in "".join(o.get("text", "") for o in code[0].outputs)
    assert "first cell ran" in "".join(e.text for e in await hub.store.get_logs(task.id))


async def test_cancel_of_a_job_waiting_for_a_dask_worker_does_not_wait_for_one(
        hub: TaskManager, tmp_path: Path) -> None:
    # both workers (one thread each) busy: the third job waits on the scheduler
    blockers = [await hub.submit("dask_steps", steps=10**6, marker_dir=str(tmp_path / str(i)),
                                 delay=0.02, mode="job") for i in range(2)]
    for b in blockers:
        await eventually(lambda b=b: _progress_at_least(hub, b.id, 1), timeout=60,
                         what="both Dask workers busy")
    submitted = hub.test_backend.submitted
    waiting = await hub.submit("dask_square", x=3, mode="job")
    await until(lambda: hub.test_backend.submitted > submitted, timeout=30,
                what="third job handed to Dask")
    await hub.cancel(waiting.id)
    done = await hub.wait(waiting.id, timeout=30)
    # nothing ran, so there is nothing to wait for: cancelled while the workers are busy
    assert done.status == "cancelled"
    assert [(await hub.get(b.id)).status for b in blockers] == ["running", "running"]
    for b in blockers:
        await hub.cancel(b.id)
    for b in blockers:
        assert (await hub.wait(b.id, timeout=60)).status == "cancelled"


async def test_a_job_handed_back_by_a_stopping_hub_runs_again_on_dask(
        db_path: Path, cluster: Any, tmp_path: Path) -> None:
    async with TaskManager(db_path, queues={"default": 2}, flush_interval=0.05) as first:
        backend = DaskBackend(cluster.scheduler_address).install(first)
        task = await first.submit("dask_steps", steps=20, marker_dir=str(tmp_path), delay=0.05,
                                  mode="job")
        await eventually(lambda: _progress_at_least(first, task.id, 2), timeout=60,
                         what="running on Dask")
    await backend.close()
    assert (await _status(db_path, task.id)) == "queued"  # handed back, not ended
    # the next hub runs it again: the stop of the first hub's run must not cancel this one
    async with TaskManager(db_path, queues={"default": 2}, flush_interval=0.05) as second:
        backend = DaskBackend(cluster.scheduler_address).install(second)
        done = await second.wait(task.id, timeout=120)
        assert done.status == "succeeded", (done.status, done.error)
        # all 20 steps: not a run that saw ctx.cancelled at once and returned early
        assert "stopped_at" not in done.result and done.result["steps"] == 20, done.result
    await backend.close()


async def test_a_run_that_ends_during_a_hub_stop_is_kept_not_run_again(
        db_path: Path, cluster: Any, tmp_path: Path) -> None:
    # before: a hub's stop dropped the run without asking how it ended; one that ran to its
    # end meanwhile (the worker lets a dropped run go on for a moment) was handed back, and
    # the next hub ran it a second time
    gate, started = tmp_path / "gate", tmp_path / "started"
    async with TaskManager(db_path, queues={"default": 2}, flush_interval=0.05) as first:
        backend = DaskBackend(cluster.scheduler_address).install(first)
        task = await first.submit("dask_until_file", gate=str(gate), started=str(started),
                                  mode="job")
        await until(started.exists, timeout=60, what="the run started on a worker")
        await until(lambda: backend._started_remotely(task.id), timeout=60,
                    what="the run announced to the hub")
        stopping = asyncio.ensure_future(first.stop(grace=30))
        await until(lambda: first.stopping, timeout=30, what="the hub stopping")
        # the function never looks at ctx.cancelled: it ends on its own, a few ms on
        gate.write_text("go")
        await stopping
    await backend.close()
    async with TaskManager(db_path) as reader:
        kept = await reader.get(task.id)
    assert (kept.status, kept.result, kept.attempts) == ("succeeded", "ran to its end", 1), (
        kept.status, kept.error)


async def test_a_run_deaf_to_a_hub_stop_is_handed_back_within_the_stops_grace(
        db_path: Path, cluster: Any, tmp_path: Path) -> None:
    # guards the shutdown's wait for a run's last report (da7df51): a run no stop reaches
    # is dropped and handed back within the manager's default grace (5 s, the server's),
    # never left "running" once the store closes. (It passed with the 60 s stop_timeout
    # wait too: the grace's end cancels that wait; the wait is now 3 s all the same)
    started = tmp_path / "started"
    async with TaskManager(db_path, queues={"default": 2}, flush_interval=0.05) as first:
        backend = DaskBackend(cluster.scheduler_address).install(first)
        task = await first.submit("dask_native_sleep", seconds=8, started=str(started),
                                  mode="job")
        await until(started.exists, timeout=60, what="the run started on a worker")
        await until(lambda: backend._started_remotely(task.id), timeout=60,
                    what="the run announced to the hub")
    # (the manager's own stop, default grace)
    await backend.close()
    assert (await _status(db_path, task.id)) == "queued"


async def _status(db_path: Path, task_id: str) -> str:
    async with TaskManager(db_path) as reader:
        return (await reader.get(task_id)).status


async def test_a_short_run_says_nothing_until_its_outcome(hub: TaskManager,
                                                          tmp_path: Path) -> None:
    # each event goes through the scheduler: a job done in a few ms does without its
    # 'start' (a run that reports, or runs longer, announces itself first)
    from jupyter_tasks.dask_backend import TOPIC

    short = [await hub.submit("dask_square", x=i, mode="job") for i in range(10)]
    long = await hub.submit("dask_steps", steps=5, marker_dir=str(tmp_path), mode="job")
    for task in [*short, long]:
        done = await hub.wait(task.id, timeout=120)
        assert done.status == "succeeded", (done.status, done.error)
    client = await hub.test_backend.client()
    events = [msg for _, msg in await client.get_events(TOPIC)]
    starts = [msg["task"] for msg in events if msg.get("type") == "start"]
    assert not {t.id for t in short} & set(starts), starts
    assert starts.count(long.id) == 1
    # the long run announced itself before its first report
    of_long = [msg["type"] for msg in events if msg.get("task") == long.id]
    assert of_long[0] == "start", of_long


def _results_fetched(dask_worker: Any) -> int:
    """How many times this worker has handed over results (a gather goes through here)."""
    return dask_worker.transfer_outgoing_count_total


async def test_a_small_plain_outcome_comes_with_the_events_not_fetched_from_the_worker(
        hub: TaskManager) -> None:
    # each fetch of a result is a round trip from the hub to the scheduler and from it
    # to the worker; a short job's outcome fits in one more event on the streams open
    client = await hub.test_backend.client()

    async def fetched() -> int:
        return sum((await client.run(_results_fetched)).values())

    before = await fetched()
    tasks = [await hub.submit("dask_square", x=i, mode="job") for i in range(10)]
    for i, task in enumerate(tasks):
        done = await hub.wait(task.id, timeout=120)
        assert (done.status, done.result, done.progress["message"]) == (
            "succeeded", i * i, f"squared {i}"), done.error
    failed = await hub.submit("dask_fail", message="nope", mode="job")
    done = await hub.wait(failed.id, timeout=120)
    assert done.status == "failed" and "KeyError" in done.error["type"], done.error
    assert await fetched() == before
    # a tuple (msgpack would turn it into a list) and a large result come as the
    # task's result, as before: one fetch each
    pair = await hub.submit("dask_pair", x=3, mode="job")
    big = await hub.submit("dask_big", n=10_000, mode="job")
    assert (await hub.wait(pair.id, timeout=120)).result == [3, 9]
    assert len((await hub.wait(big.id, timeout=120)).result) == 10_000
    assert await fetched() == before + 2


async def test_runs_ask_for_the_workers_client_once_per_worker(hub: TaskManager) -> None:
    # every get_client() on a worker sends the scheduler a 'worker-get-client' event:
    # one per job cost the scheduler a message for each of them
    client = await hub.test_backend.client()
    before = len(await client.get_events("worker-get-client"))
    tasks = [await hub.submit("dask_square", x=i, mode="job") for i in range(20)]
    for task in tasks:
        done = await hub.wait(task.id, timeout=120)
        assert done.status == "succeeded", (done.status, done.error)
    asked = len(await client.get_events("worker-get-client")) - before
    workers = len(await client.nthreads())
    assert asked <= workers, f"{asked} client lookups for 20 jobs on {workers} workers"


def test_a_scheduler_slow_to_answer_for_one_run_holds_up_no_other_run() -> None:
    # one watcher thread tends every run of a worker process: a cancel check that the
    # scheduler holds (busy, reconnecting) must not hold the other runs' reports and
    # cancels behind it
    import threading

    from jupyter_tasks.dask_backend import _RunWatcher, _WorkerRun

    class Reporter:
        def __init__(self) -> None:
            self.flushed = threading.Event()

        def announce(self) -> None:
            pass

        def flush(self) -> None:
            self.flushed.set()

    class HeldEvent:
        def __init__(self) -> None:
            self.release = threading.Event()

        def is_set(self) -> bool:
            self.release.wait(60)
            return False

    class SetEvent:
        def is_set(self) -> bool:
            return True

    class Context:
        def __init__(self) -> None:
            self.cancel_requested = threading.Event()

        def request_cancel(self) -> None:
            self.cancel_requested.set()

    watcher = _RunWatcher()
    held, quick = _WorkerRun(Context()), _WorkerRun(Context())
    quick_reports = Reporter()
    held_event = HeldEvent()
    try:
        first = watcher.watch(held, Reporter(), "held", None, None, None)
        first.event = held_event  # asked first, and not answered until released
        second = watcher.watch(quick, quick_reports, "quick", None, None, None)
        second.event = SetEvent()
        assert quick.ctx.cancel_requested.wait(30), "the cancelled run was never told"
        assert quick_reports.flushed.wait(30), "the other run's reports stopped"
        assert not held_event.release.is_set()  # all while the first question was held
    finally:
        held_event.release.set()
        held.finished.set()
        quick.finished.set()


def test_a_future_lost_with_its_scheduler_is_not_called_a_cancel() -> None:
    # a scheduler killed mid-job: the retry reason said "cancelled outside
    # jupyter-tasks", though nobody cancelled anything
    from distributed.client import FutureCancelledError

    from jupyter_tasks.dask_backend import lost_future_message

    gone_with = FutureCancelledError("jt-1", "scheduler-connection-lost")
    lost = lost_future_message("jt-1", gone_with, "tcp://s:8786", "tcp://w:1")
    assert lost.startswith("the connection to the Dask scheduler tcp://s:8786 was lost while "
                           "future jt-1 ran on worker tcp://w:1; the run may still be going on")
    # when it stops, as far as anyone can tell from here
    assert "its worker stops it once it has lost the scheduler too" in lost
    # a run that had not announced itself: where it was is not known
    assert "future jt-1 was there (running, or waiting to);" in lost_future_message(
        "jt-1", gone_with)
    cancelled = lost_future_message("jt-2", FutureCancelledError("jt-2", "cancelled-by-user"))
    assert cancelled == ("the Dask future jt-2 was cancelled outside jupyter-tasks "
                         "(cancelled-by-user)")


async def test_jobs_after_a_scheduler_restart_report_their_outcome(db_path: Path) -> None:
    # before: the hub's client reconnected to the restarted scheduler, but its topic
    # subscription was not made again: every outcome sent as an event was lost, and each
    # later job ran max_retries + 1 times and failed, until the server restarted
    from distributed import Scheduler, Worker

    from tests.launcher import free_port

    address = f"tcp://127.0.0.1:{free_port()}"
    async with TaskManager(db_path, queues={"default": 2}, retry_base_delay=0.05,
                           flush_interval=0.05) as manager:
        backend = DaskBackend(address).install(manager)
        try:
            for restart in range(2):
                async with Scheduler(host="127.0.0.1", port=int(address.rsplit(":", 1)[1]),
                                     dashboard_address=":0") as scheduler, \
                        Worker(scheduler.address, nthreads=1):
                    task = await manager.submit("dask_square", x=restart + 2, mode="job",
                                                max_retries=0)
                    done = await manager.wait(task.id, timeout=60)
                    assert (done.status, done.result, done.attempts) == \
                        ("succeeded", (restart + 2) ** 2, 1), (restart, done.error)
        finally:
            await backend.close()


async def test_a_cancel_in_a_runs_first_moments_waits_for_it_to_stop(
        hub: TaskManager, tmp_path: Path) -> None:
    # before: a run says nothing to the hub in its first 0.2 s; a cancel then was written
    # at once while the run went on (about a second more, overlapping a rerun)
    task = await hub.submit("dask_steps", steps=200, marker_dir=str(tmp_path), delay=0.02,
                            mode="job")
    await until(lambda: any(tmp_path.glob("started-*")), timeout=60,
                what="the run started on a worker")
    await hub.cancel(task.id)
    done = await hub.wait(task.id, timeout=60)
    assert done.status == "cancelled", done.error
    # its end was written once the run had seen the cancel and stopped
    assert (tmp_path / "stopped-cooperatively").exists()


async def test_a_run_that_ends_just_after_a_cancel_is_written_succeeded(
        hub: TaskManager, tmp_path: Path) -> None:
    # before: a function that returned its value a few ms after a cancel arrived (before
    # the worker was even told of it) was written cancelled, its value thrown away,
    # though its work had run to its end and its side effects exist
    gate, started = tmp_path / "gate", tmp_path / "started"
    task = await hub.submit("dask_until_file", gate=str(gate), started=str(started),
                            mode="job", max_retries=0)
    await until(started.exists, timeout=60, what="the run started on a worker")
    # announced: the cancel takes the path that asks the worker to stop and waits for it
    await until(lambda: hub.test_backend._started_remotely(task.id), timeout=60,
                what="the run announced to the hub")
    cancelling = await hub.cancel(task.id)
    assert (cancelling.status, cancelling.cancel_requested) == ("running", True)
    # the function returns within a few ms; the worker learns of the cancel from its
    # watcher's poll (every 0.25 s) and interrupts only after a grace of 1 s, and the
    # function never looks at ctx.cancelled: the cancel cannot stop it
    gate.write_text("go")
    done = await hub.wait(task.id, timeout=60)
    assert (done.status, done.result, done.error) == ("succeeded", "ran to its end", None)
    assert done.cancel_requested  # the record still says a cancel was asked for


async def test_a_run_that_caught_the_interrupt_and_returned_is_written_cancelled(
        hub: TaskManager, tmp_path: Path) -> None:
    # the worker interrupted it (TaskCancelled in its thread) and it returned what it had:
    # stopped by the cancel, not ended on its own (nor succeeded with a partial value)
    started = tmp_path / "started"
    task = await hub.submit("dask_swallows_the_stop", started=str(started), mode="job",
                            max_retries=0)
    await until(started.exists, timeout=60, what="the run started on a worker")
    await until(lambda: hub.test_backend._started_remotely(task.id), timeout=60,
                what="the run announced to the hub")
    await hub.cancel(task.id)
    done = await hub.wait(task.id, timeout=60)
    assert (done.status, done.result) == ("cancelled", None), (done.status, done.result)


async def test_a_run_that_ends_while_a_cancel_asks_about_it_is_written_succeeded(
        hub: TaskManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # in its first 0.2 s a run has told the hub nothing: a cancel then asks the scheduler
    # and the worker whether it executes. Before: a run that ended meanwhile (returned a
    # few ms after the cancel) was taken for one not started yet and dropped, its outcome
    # thrown away and the task written cancelled
    from jupyter_tasks.dask_backend import _executing

    backend = hub.test_backend
    gate, started = tmp_path / "gate", tmp_path / "started"
    # the run's first moments, whatever the time this machine takes to get there
    monkeypatch.setattr(backend, "_started_remotely", lambda task_id: False)
    ask = backend._processing

    async def the_run_ends_meanwhile(client: Any, key: str) -> bool:
        gate.write_text("go")

        async def over() -> bool:
            return not any((await client.run(_executing, key)).values())

        await eventually(over, timeout=60, what="the run over on its worker")
        return await ask(client, key)

    monkeypatch.setattr(backend, "_processing", the_run_ends_meanwhile)
    task = await hub.submit("dask_until_file", gate=str(gate), started=str(started),
                            mode="job", max_retries=0)
    await until(started.exists, timeout=60, what="the run started on a worker")
    await hub.cancel(task.id)
    done = await hub.wait(task.id, timeout=60)
    assert (done.status, done.result, done.error) == ("succeeded", "ran to its end", None)
    assert done.cancel_requested


# ------------------------------------------------------ a scheduler in a process of its own


def _free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports free a moment ago (the suite's own ``free_port``)."""
    from tests.launcher import free_port

    ports: dict[int, None] = {}
    while len(ports) < n:
        ports[free_port()] = None
    return list(ports)


def _dask_process(kind: str, *args: str) -> Any:
    """``dask scheduler`` / ``dask worker`` in a process group of its own (killed whole)."""
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [root, os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-m", f"distributed.cli.dask_{kind}", *args],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _kill_group(process: Any) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@contextlib.contextmanager
def _killed_at_the_end(processes: list[Any]) -> Iterator[None]:
    """Kill the group of every Dask process a test started by hand (``processes``, which
    may grow meanwhile) on the way out."""
    try:
        yield
    finally:
        for process in processes:
            _kill_group(process)


async def test_a_lost_scheduler_does_not_start_the_job_again_beside_its_run(
        db_path: Path, tmp_path: Path) -> None:
    # before: the future lost with its scheduler failed the attempt, and the manager's
    # retry ran the function again on a fresh worker while the first run went on (for
    # about 30 s, until the worker it ran on had closed itself): one job run twice at once
    scheduler_port, first_port, second_port = _free_ports(3)
    address = f"tcp://127.0.0.1:{scheduler_port}"
    marks, gate = tmp_path / "marks", tmp_path / "gate"

    def scheduler() -> Any:
        return _dask_process("scheduler", "--host", "127.0.0.1", "--port", str(scheduler_port),
                             "--no-dashboard")

    def worker(port: int) -> Any:
        return _dask_process("worker", address, "--nthreads", "1", "--no-nanny",
                             "--no-dashboard", "--host", "127.0.0.1",
                             "--worker-port", str(port))

    processes = [scheduler(), worker(first_port)]
    with _killed_at_the_end(processes):
        async with TaskManager(db_path, queues={"default": 2}, retry_base_delay=0.05,
                               flush_interval=0.05) as manager:
            backend = DaskBackend(address).install(manager)
            try:
                task = await manager.submit("dask_marked", marks=str(marks), gate=str(gate),
                                            mode="job")
                first = int(await until(lambda: marks.exists() and marks.read_text(),
                                        timeout=120, what="the run started on a worker"))
                await until(lambda: backend._started_remotely(task.id), timeout=60,
                            what="the run announced to the hub")
                _kill_group(processes[0])
                # back at once (a supervisor's restart), with a fresh worker to run a retry
                processes += [scheduler(), worker(second_port)]

                async def settled_or_run_again() -> bool:
                    return (await manager.get(task.id)).is_terminal \
                        or len(marks.read_text().split()) > 1

                await eventually(settled_or_run_again, timeout=120,
                                 what="the task settled or run again")
                still_running = not ended(first)
                done = await manager.get(task.id)
                assert marks.read_text().split() == [str(first)], \
                    f"run again (first run still on: {still_running}): {done.status}, {done.error}"
                assert (done.status, done.attempts) == ("interrupted", 1), done.error
                assert done.error["type"] == "DaskSchedulerLost"
                assert address in done.error["message"]
                assert f"worker tcp://127.0.0.1:{first_port}" in done.error["message"]
                # once its run is over, a person reruns it: it runs on the new scheduler
                gate.write_text("go")
                await until(lambda: ended(first), timeout=120, what="the first run's worker gone")
                rerun = await manager.rerun(task.id)
                again = await manager.wait(rerun.id, timeout=120)
                assert again.status == "succeeded", (again.status, again.error)
                assert len(marks.read_text().split()) == 2
            finally:
                gate.write_text("go")
                await backend.close()


_STOPPABLE_COMMAND = """
import os, signal, sys, time
marks, gate = sys.argv[1], sys.argv[2]

def mark(line):
    with open(marks, "a") as f:
        f.write(line + "\\n")

def stopped(signum, frame):
    mark("stopped SIGTERM")
    sys.exit(143)

signal.signal(signal.SIGTERM, stopped)
mark(f"started {os.getpid()}")
while not os.path.exists(gate):
    time.sleep(0.01)
mark("ended")
"""


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_a_worker_that_lost_its_scheduler_stops_its_runs(
        db_path: Path, tmp_path: Path) -> None:
    # before: a worker that lost its scheduler closes itself, and distributed gives the
    # runs it holds its close timeout (30 s): the function ran on, unseen, until the
    # worker's process exited (it never saw a stop), and a command's process group
    # until its shim saw that exit and SIGKILLed it; nothing either returned could
    # reach anyone, and a person told to "rerun once it is over" could not tell when
    import sys

    scheduler_port, worker_port = _free_ports(2)
    address = f"tcp://127.0.0.1:{scheduler_port}"
    function_marks, command_marks = tmp_path / "function", tmp_path / "command"
    gate = tmp_path / "gate"
    processes = [
        _dask_process("scheduler", "--host", "127.0.0.1", "--port", str(scheduler_port),
                      "--no-dashboard"),
        _dask_process("worker", address, "--nthreads", "2", "--no-nanny", "--no-dashboard",
                      "--host", "127.0.0.1", "--worker-port", str(worker_port))]

    def marks(path: Path) -> list[str]:
        return path.read_text().splitlines() if path.exists() else []

    with _killed_at_the_end(processes):
        async with TaskManager(db_path, queues={"default": 2}, retry_base_delay=0.05,
                               flush_interval=0.05) as manager:
            backend = DaskBackend(address).install(manager)
            try:
                function = await manager.submit("dask_until_stopped",
                                                marks=str(function_marks), gate=str(gate),
                                                mode="job", max_retries=0)
                command = await manager.submit_spec(
                    {"command": [sys.executable, "-c", _STOPPABLE_COMMAND,
                                 str(command_marks), str(gate)]}, max_retries=0)
                await until(lambda: marks(function_marks) and marks(command_marks),
                            timeout=120, what="both runs started on the worker")
                worker_pid = int(marks(function_marks)[0].split()[1])
                group = os.getpgid(int(marks(command_marks)[0].split()[1]))
                await until(lambda: backend._started_remotely(function.id)
                            and backend._started_remotely(command.id), timeout=60,
                            what="both runs announced to the hub")
                _kill_group(processes[0])
                # the runs' own stop marks: the function was interrupted (it never reads
                # ctx.cancelled) and the command was SIGTERMed, as a cancel does; a
                # worker's exit would have ended neither this way
                await until(lambda: "stopped TaskCancelled" in marks(function_marks),
                            timeout=90, what=f"the function stopped: {marks(function_marks)}")
                await until(lambda: "stopped SIGTERM" in marks(command_marks),
                            timeout=90, what=f"the command stopped: {marks(command_marks)}")
                await until(lambda: _group_gone(group) and ended(worker_pid), timeout=90,
                            what="the command's group and the worker gone")
                assert "ended" not in marks(function_marks) + marks(command_marks)
                for task in (function, command):
                    done = await manager.wait(task.id, timeout=60)
                    assert (done.status, done.error["type"]) == \
                        ("interrupted", "DaskSchedulerLost"), (done.status, done.error)
                    assert "its worker stops it" in done.error["message"]
            finally:
                gate.write_text("go")
                await backend.close()


async def test_a_worker_closed_under_a_live_scheduler_does_not_cancel_its_job(
        db_path: Path, tmp_path: Path) -> None:
    # a worker told to close (SIGTERM: a pod evicted, a cluster scaled down) while its
    # scheduler lives on: Dask runs its task again on another worker. The stopped run's
    # end is nobody's answer: the job must not end cancelled by it
    import sys

    scheduler_port, first_port, second_port = _free_ports(3)
    address = f"tcp://127.0.0.1:{scheduler_port}"
    command_marks, gate = tmp_path / "command", tmp_path / "gate"

    def worker(port: int) -> Any:
        return _dask_process("worker", address, "--nthreads", "1", "--no-nanny",
                             "--no-dashboard", "--host", "127.0.0.1",
                             "--worker-port", str(port))

    def marks() -> list[str]:
        return command_marks.read_text().splitlines() if command_marks.exists() else []

    processes = [_dask_process("scheduler", "--host", "127.0.0.1", "--port",
                               str(scheduler_port), "--no-dashboard"), worker(first_port)]
    with _killed_at_the_end(processes):
        async with TaskManager(db_path, queues={"default": 2}, retry_base_delay=0.05,
                               flush_interval=0.05) as manager:
            backend = DaskBackend(address).install(manager)
            try:
                command = await manager.submit_spec(
                    {"command": [sys.executable, "-c", _STOPPABLE_COMMAND,
                                 str(command_marks), str(gate)]}, max_retries=0)
                await until(lambda: marks(), timeout=120, what="the run started")
                await until(lambda: backend._started_remotely(command.id), timeout=60,
                            what="the run announced to the hub")
                processes.append(worker(second_port))
                os.kill(processes[1].pid, signal.SIGTERM)  # a graceful close
                await until(lambda: len([m for m in marks() if m.startswith("started")]) == 2,
                            timeout=120, what=f"the run started again: {marks()}")
                now = await manager.get(command.id)
                assert now.status == "running", (now.status, now.error)
                gate.write_text("go")
                done = await manager.wait(command.id, timeout=120)
                assert done.status == "succeeded", (done.status, done.error, marks())
            finally:
                gate.write_text("go")
                await backend.close()


async def test_a_job_submitted_while_the_scheduler_is_away_waits_in_its_queue(
        db_path: Path) -> None:
    # before: the hub's client, reconnecting, took the job; when it gave up the job
    # ended failed (DaskJobLost, "cancelled outside jupyter-tasks (unknown)"), or spent
    # a retry, though nothing of it ran; the docs promise it waits in its queue
    (scheduler_port,) = _free_ports(1)
    address = f"tcp://127.0.0.1:{scheduler_port}"
    scheduler = ["--host", "127.0.0.1", "--port", str(scheduler_port), "--no-dashboard"]
    processes = [_dask_process("scheduler", *scheduler)]
    with _killed_at_the_end(processes):
        async with TaskManager(db_path, queues={"default": 2}, retry_base_delay=0.05,
                               flush_interval=0.05) as manager:
            backend = DaskBackend(address).install(manager)
            try:
                await backend.client()  # connected, as a serving hub is
                _kill_group(processes[0])
                client = backend._client
                await until(lambda: client.status != "running", timeout=60,
                            what="the hub's client noticing its scheduler gone")
                task = await manager.submit("dask_square", x=4, mode="job", max_retries=0)

                async def back_in_its_queue() -> Any:
                    seen = await manager.get(task.id)
                    return seen if seen.status == "queued" and seen.error else None

                waiting = await eventually(back_in_its_queue, timeout=60,
                                           what="the job back in its queue")
                assert "Dask scheduler" in waiting.error["message"], waiting.error
                assert waiting.attempts == 0, waiting.attempts
                # the scheduler back (and a worker for it): the job runs
                processes.append(_dask_process("scheduler", *scheduler))
                processes.append(_dask_process("worker", address, "--nthreads", "1",
                                               "--no-nanny", "--no-dashboard"))
                done = await manager.wait(task.id, timeout=180)
                assert (done.status, done.result) == ("succeeded", 16), done.error
            finally:
                await backend.close()


async def test_sys_exit_on_dask_is_said_as_a_local_run_says_it(hub: TaskManager) -> None:
    # before: the error was just "3": a local run says sys.exit(3) ended the task
    task = await hub.submit("dask_exit", code=3, mode="job", max_retries=0)
    done = await hub.wait(task.id, timeout=120)
    assert done.status == "failed"
    assert (done.error["type"], done.error["message"]) == (
        "SystemExit", "sys.exit(3) ended the task; the process running it carries on")
