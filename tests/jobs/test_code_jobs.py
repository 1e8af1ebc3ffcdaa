"""Code jobs in fresh processes: input, output artifacts, oom, timeout, failures, hashes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from jupyter_tasks import TaskManager
from jupyter_tasks.jobs.code import artifact_name_for, collect_outputs
from tests.engine.test_manager import cancel_once_exited
from tests.waiting import eventually

WRITER = """
import json, os
data = json.load(open(os.environ["JUPYTER_TASKS_INPUT"]))
out = os.environ["JUPYTER_TASKS_OUTPUT"]
assert os.path.samefile(os.getcwd(), os.path.dirname(out))
with open(os.path.join(out, "total.json"), "w") as f:
    json.dump({"total": sum(data["items"])}, f)
os.makedirs(os.path.join(out, "plots"))
open(os.path.join(out, "plots", "a b.txt"), "w").write("nested")
open(os.path.join(out, ".hidden"), "w").write("skipped")
print("summed", len(data["items"]), "items")
# enough CPU (~0.2 s) for the 50 ms usage sampler to see it whatever the load
spent = 0
while spent < 3_000_000:
    spent += 1
"""


async def test_artifacts_usage_and_stable_hashes_over_rest(api, tasks_app) -> None:
    body = {"code": WRITER, "input_data": {"items": [1, 2, 3]}}
    task = await api.submit(body)
    assert task["kind"] == "code"
    result = await api.get(task["id"], "result", params={"timeout": 60})
    assert result.json["status"] == "succeeded", result.json
    assert sorted(result.json["result"]["artifacts"]) == ["plots__a b.txt", "total.json"]
    full = (await api.get(task["id"], params={"view": "full"})).json
    names = {a["name"]: a for a in full["artifacts"]}
    assert set(names) == {"total.json", "plots__a b.txt"}
    total = await api.get(task["id"], "artifacts", "total.json")
    assert json.loads(total.body) == {"total": 6}
    assert total.headers["ETag"] == f'"{hashlib.sha256(total.body).hexdigest()}"'
    usage = full["resource_usage"]
    assert usage["cpu_seconds"] > 0 and usage["peak_memory_mb"] > 1
    hashes = full["content_hashes"]
    assert hashes["code"] == hashlib.sha256(WRITER.encode()).hexdigest()
    assert "input_data" in hashes
    logs = (await api.get(task["id"], "logs")).json["entries"]
    assert "summed 3 items" in "".join(e["text"] for e in logs)

    rerun = (await api.post(task["id"], "rerun")).json
    assert (await api.get(rerun["id"], "result", params={"timeout": 60})).json["status"] \
        == "succeeded"
    rerun_full = (await api.get(rerun["id"], params={"view": "full"})).json
    assert rerun_full["content_hashes"] == hashes
    assert {a["sha256"] for a in rerun_full["artifacts"]} == {a["sha256"] for a in
                                                              full["artifacts"]}
    forked = (await api.post(task["id"], "fork",
                             body={"input_data": {"items": [10]}})).json
    assert (await api.get(forked["id"], "result", params={"timeout": 60})).json["status"] \
        == "succeeded"
    forked_full = (await api.get(forked["id"], params={"view": "full"})).json
    assert forked_full["content_hashes"]["code"] == hashes["code"]
    assert forked_full["content_hashes"]["input_data"] != hashes["input_data"]


async def test_a_cell_of_any_length_runs_as_a_code_job_over_rest(api, tasks_app) -> None:
    # a real cell is often longer than a label: 40,000 characters, submitted and forked
    filler = "".join(f"# line {i} of a long cell, kept so the code is as long as real ones\n"
                     for i in range(600))
    code = filler + "print('ran')\n"
    assert len(code) > 40_000
    task = await api.submit({"code": code})
    result = await api.get(task["id"], "result", params={"timeout": 60})
    assert result.json["status"] == "succeeded", result.json
    full = (await api.get(task["id"], params={"view": "full"})).json
    assert full["content_hashes"]["code"] == hashlib.sha256(code.encode()).hexdigest()
    longer = code + "print('forked')\n"
    forked = await api.post(task["id"], "fork", body={"code": longer})
    assert forked.code == 202, forked.json
    forked_full = (await api.get(forked.json["id"], params={"view": "full"})).json
    assert forked_full["content_hashes"]["code"] == hashlib.sha256(longer.encode()).hexdigest()


async def test_a_text_field_too_long_says_how_long_it_may_be(api, tasks_app) -> None:
    response = await api.post(body={"code": "print(1)", "label": "x" * 1001})
    assert response.code == 422
    assert response.json["errors"] == [
        {"field": "label", "message": "must be a non-empty string of at most 1000 characters"}]


async def test_memory_limit_ends_in_oom(manager: TaskManager) -> None:
    code = "import time\nblocks = []\nfor _ in range(400):\n" \
           "    blocks.append(bytearray(10 * 1024 * 1024))\n    time.sleep(0.01)\n"
    task = await manager.submit_spec({"code": code}, memory_limit_mb=150, max_retries=0)
    done = await manager.wait(task.id, timeout=60)
    assert done.status == "oom", (done.status, done.error)
    assert "memory limit" in done.error["message"]
    assert done.resource_usage["peak_memory_mb"] > 150


async def test_timeout_ends_the_process(manager: TaskManager, tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    code = f"import os, time\nopen({str(marker)!r}, 'w').write(str(os.getpid()))\n" \
           "os.makedirs(os.environ['JUPYTER_TASKS_OUTPUT'], exist_ok=True)\n" \
           "open(os.path.join(os.environ['JUPYTER_TASKS_OUTPUT'], 'partial.txt'), 'w')" \
           ".write('x')\ntime.sleep(600)\n"
    # (10 s: the process must start and write both files first, on a loaded machine too)
    task = await manager.submit_spec({"code": code}, timeout=10, max_retries=0)
    done = await manager.wait(task.id, timeout=60)
    assert done.status == "timeout"
    import psutil

    pid = int(marker.read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert [a.name for a in await manager.store.list_artifacts(task.id)] == ["partial.txt"]


async def test_non_zero_exit_fails_with_the_stderr_tail(manager: TaskManager) -> None:
    code = "import sys\nprint('x' * 5000, file=sys.stderr)\nraise SystemExit('bad input: 42')\n"
    task = await manager.submit_spec({"code": code, "input_data": None}, max_retries=0)
    done = await manager.wait(task.id, timeout=60)
    assert done.status == "failed"
    assert done.error["type"] == "CodeFailed"
    assert done.error["message"].startswith("exit code 1:")
    assert done.error["message"].rstrip().endswith("bad input: 42")
    assert len(done.error["message"]) < 2100


async def test_a_long_exception_message_keeps_its_type_first(manager: TaskManager) -> None:
    # before: a last line longer than the 2,000 characters of stderr kept lost its start,
    # so the error read "exit code 1: xxxx…", ValueError said nowhere
    code = "raise ValueError('bad input: ' + 'x' * 2500)\n"
    task = await manager.submit_spec({"code": code}, max_retries=0)
    done = await manager.wait(task.id, timeout=60)
    assert done.status == "failed"
    assert done.error["message"].startswith("exit code 1: ValueError: bad input: xxx"), \
        done.error["message"][:200]
    # written a piece at a time, a line's start is still the one told
    pieces = ("import sys\nsys.stderr.write('Boom'); sys.stderr.flush()\n"
              "sys.stderr.write('Error: ' + 'y' * 3000 + '\\n\\n'); sys.exit(3)\n")
    task = await manager.submit_spec({"code": pieces}, max_retries=0)
    done = await manager.wait(task.id, timeout=60)
    assert done.error["message"].startswith("exit code 3: BoomError: yyy"), \
        done.error["message"][:200]


def test_files_whose_names_clash_once_cleaned_are_all_kept(tmp_path: Path) -> None:
    # before: résumé.txt was skipped as a duplicate of résumè.txt (both r_sum_.txt) and
    # one of 数据.csv and 结果.csv (both file___.csv): the job succeeded, files lost
    for name in ("résumé.txt", "résumè.txt", "数据.csv", "结果.csv", "r_sum_-2.txt", "a.txt"):
        (tmp_path / name).write_text(name)
    found, skipped = collect_outputs(tmp_path)
    assert skipped == []
    names = [name for name, _ in found]
    assert len(set(names)) == len(names) == 6, names
    assert {path.read_text() for _, path in found} == {
        "résumé.txt", "résumè.txt", "数据.csv", "结果.csv", "r_sum_-2.txt", "a.txt"}
    assert "a.txt" in names and "file___.csv" in names and "file___-2.csv" in names
    # a file whose name is already clean keeps it, whatever sorts before it
    own = tmp_path / "own"
    own.mkdir()
    for name in ("b!.txt", "b_-2.txt", "b_.txt"):
        (own / name).write_text(name)
    kept = {path.name: name for name, path in collect_outputs(own)[0]}
    assert kept["b_.txt"] == "b_.txt" and kept["b_-2.txt"] == "b_-2.txt", kept
    assert kept["b!.txt"] == "b_-3.txt", kept


@pytest.mark.parametrize(("relative", "name"), [
    ("a.csv", "a.csv"), ("sub/b.png", "sub__b.png"), ("x/y/z.txt", "x__y__z.txt"),
    ("we!rd$.txt", "we_rd_.txt"), (".git/config", None), ("sub/.env", None),
])
def test_artifact_names(relative: str, name: str | None) -> None:
    assert artifact_name_for(relative) == name


async def test_a_failed_code_jobs_message_begins_with_what_went_wrong(
        manager: TaskManager) -> None:
    # before: the message began with the whole traceback ("exit code 1: Traceback (most
    # recent call last): File …"), and a notification, which shows the start, never
    # reached the ValueError
    code = "def inner():\n    raise ValueError('the widths differ')\n\ninner()\n"
    task = await manager.submit_spec({"code": code}, max_retries=0)
    done = await manager.wait(task.id, timeout=60)
    assert done.status == "failed"
    first, _, rest = done.error["message"].partition("\n")
    assert first == "exit code 1: ValueError: the widths differ", done.error["message"]
    assert "Traceback (most recent call last)" in rest and "inner()" in rest  # still told


# waits for its gate file, writes an output file, says so, exits with the code it is given
GATED_CODE = """
import json, os, sys, time
given = json.load(open(os.environ["JUPYTER_TASKS_INPUT"]))
open(given["gate"] + ".started", "w").close()
while not os.path.exists(given["gate"]):
    time.sleep(0.01)
open(os.path.join(os.environ["JUPYTER_TASKS_OUTPUT"], "made.txt"), "w").write("made")
print("ran to its end", flush=True)
sys.exit(given["code"])
"""


@pytest.mark.parametrize("code", [0, 3])
async def test_a_code_job_that_exited_before_its_cancel_reached_it_keeps_its_end(
        manager: TaskManager, tmp_path: Path, code: int) -> None:
    # its process exited on its own just as a cancel arrived, before the attempt's
    # coroutine saw the exit. Before: written cancelled, its result thrown away (a
    # failure hidden), though the program had run to its end
    gate = tmp_path / "gate"
    task = await manager.submit_spec(
        {"code": GATED_CODE, "input_data": {"gate": str(gate), "code": code}}, max_retries=0)

    async def started() -> bool:
        return Path(f"{gate}.started").exists()

    await eventually(started, timeout=30, what="the program running")
    await cancel_once_exited(manager, task.id, gate)
    done = await manager.wait(task.id, timeout=30)
    assert [a.name for a in await manager.store.list_artifacts(task.id)] == ["made.txt"]
    assert "ran to its end" in "".join(e.text for e in await manager.store.get_logs(task.id))
    assert done.cancel_requested
    if code == 0:
        assert (done.status, done.error) == ("succeeded", None)
        assert done.result == {"returncode": 0, "artifacts": ["made.txt"]}
    else:
        assert (done.status, done.error["type"]) == ("failed", "CodeFailed"), done.error
        assert done.error["message"].startswith("exit code 3"), done.error


async def test_an_output_file_with_a_name_of_the_longest_kind_is_kept_with_the_others(
        db_path: Path) -> None:
    # a legal 255-byte name: before, the copy's temporary name ('.' + name + '.pid.tmp')
    # was past the file system's limit, so the job that had succeeded ended failed
    # ("File name too long") and its other artifacts were lost with it
    long_name = "L" * 251 + ".txt"
    code = ("import os\nout = os.environ['JUPYTER_TASKS_OUTPUT']\n"
            "open(os.path.join(out, 'keep.txt'), 'w').write('important')\n"
            f"open(os.path.join(out, {long_name!r}), 'w').write('long')\n")
    async with TaskManager(db_path, queues={"default": 1}, make_default=False) as manager:
        task = await manager.submit_spec({"code": code}, mode="job")
        done = await manager.wait(task.id, timeout=60)
        assert done.status == "succeeded", done.error
        kept = {a.name: a for a in await manager.store.list_artifacts(task.id)}
        assert set(kept) == {"keep.txt", long_name}
        assert manager.store.artifact_path(kept[long_name]).read_bytes() == b"long"


async def test_a_worker_killed_before_recording_its_group_leaves_no_working_folder(
        db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # exec_code makes the attempt's folder (the user's source, its input data) before
    # the worker records the process group; a kill -9 in between (4 of 4 such kills)
    # left the folder for good: the reaper removed a lost attempt's files only for a
    # task whose group was recorded
    import socket
    import subprocess
    import tempfile
    import time

    from jupyter_tasks.models import WorkerInfo

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid no process has now: the killed worker's
    async with TaskManager(db_path, queues={}, reaper_interval=3600) as manager:
        job = await manager.submit_spec({"code": "print(1)"}, mode="job")
        now = time.time()
        await manager.store.register_worker(WorkerInfo(
            id="killed", kind="worker", pid=gone.pid, host=socket.gethostname(),
            started_at=now, heartbeat_at=now, queues=["default"]))
        (claimed,) = await manager.store.claim_jobs("default", "killed", lease_seconds=30)
        assert claimed.process is None and claimed.attempts == 1
        folder = Path(tempfile.mkdtemp(prefix=f"jupyter-tasks-code-{job.id}-1-"))
        (folder / "main.py").write_text("the user's source")
        (reaped,) = await manager.reap_dead_workers()
    assert (reaped.id, reaped.status) == (job.id, "queued")
    assert not folder.exists()


PROGRESS_CODE = """
import os, time
from jupyter_tasks import progress, track
go = {go!r}
for _ in track(range(3), message="warming up"):
    pass
progress(3, 10, "three of ten")
deadline = time.monotonic() + 120
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.02)
progress(float("nan"), 10, "a NaN position is no position")
progress(10, 10, "done")
"""


async def test_progress_reported_by_a_code_job_reaches_its_task(manager: TaskManager,
                                                                tmp_path: Path) -> None:
    # before: progress() and track() in a code job's process did nothing (no task context
    # there), so its card and every view showed no progress however far it was
    go = tmp_path / "go"
    task = await manager.submit_spec({"code": PROGRESS_CODE.format(go=str(go))},
                                     max_retries=0)

    async def midway() -> bool:
        got = await manager.store.require_task(task.id)
        return got.progress == {"current": 3, "total": 10, "message": "three of ten"}

    await eventually(midway, timeout=60, what="the progress the job reported while running")
    assert (await manager.store.require_task(task.id)).status == "running"
    go.write_text("")
    done = await manager.wait(task.id, timeout=60)
    assert done.status == "succeeded", done.error
    # the last report, written as the process ended, is the one kept
    assert done.progress == {"current": 10, "total": 10, "message": "done"}


POOL_PROGRESS_CODE = """
import multiprocessing
from jupyter_tasks import progress

def step(i):
    progress(i + 1, 8, "in a child")
    return i

if __name__ == "__main__":
    progress(0, 8, "starting the pool")
    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert sorted(pool.map(step, range(8))) == list(range(8))
    progress(8, 8, "all eight")
"""


async def test_a_code_jobs_forked_children_report_progress_and_the_last_word_is_kept(
        manager: TaskManager) -> None:
    # a multiprocessing pool's children write the same file as the program; the end's
    # report, written after theirs, is the one the task keeps
    task = await manager.submit_spec({"code": POOL_PROGRESS_CODE}, max_retries=0)
    done = await manager.wait(task.id, timeout=120)
    assert done.status == "succeeded", done.error
    assert done.progress == {"current": 8, "total": 8, "message": "all eight"}


@pytest.mark.parametrize("code", ["print(1)\x00", "\x00"])
async def test_code_with_a_nul_byte_is_refused_when_submitted_not_when_run(
        manager: TaskManager, code: str) -> None:
    # before: accepted, queued, then failed on the worker with "SyntaxError: source code
    # cannot contain null bytes" (a command with a NUL was refused at once)
    from jupyter_tasks.exceptions import InvalidRequest

    before = await manager.store.count_tasks()
    with pytest.raises(InvalidRequest) as info:
        await manager.submit_spec({"code": code})
    assert "NUL" in str(info.value) and info.value.errors[0]["field"] == "code"
    assert await manager.store.count_tasks() == before


async def test_empty_code_says_it_must_not_be_empty(manager: TaskManager) -> None:
    # before: "code must be a non-empty string", its field error "must be a string"
    from jupyter_tasks.exceptions import InvalidRequest

    with pytest.raises(InvalidRequest) as info:
        await manager.submit_spec({"code": ""})
    assert info.value.errors == [{"field": "code", "message": "must be a non-empty string"}]


@pytest.mark.parametrize("made", [
    'os.mkfifo(path)',  # an open for reading waits for a writer: the worker's loop, for good
    'os.symlink("/dev/zero", path)',  # reads without end: the worker's memory
    'os.mkdir(path)'])
async def test_a_progress_file_that_is_no_regular_file_is_ignored_and_holds_nothing(
        manager: TaskManager, made: str) -> None:
    # before (found from the outside): a FIFO froze the worker's event loop, and with it
    # every other job it ran, its cancels and its stop; /dev/zero grew the worker to
    # 800 MB and the job, which exited 0, ended failed with the worker's MemoryError
    code = ("import os, time\npath = os.environ['JUPYTER_TASKS_PROGRESS']\n" + made
            + "\ntime.sleep(1)\nprint('done')\n")
    task = await manager.submit_spec({"code": code}, max_retries=0)
    beside = await manager.submit_spec({"code": "import time\ntime.sleep(0.5)\n"},
                                       max_retries=0)
    done = await manager.wait(task.id, timeout=60)
    assert done.status == "succeeded", done.error
    assert done.progress is None
    assert (await manager.wait(beside.id, timeout=60)).status == "succeeded"


async def test_a_progress_file_past_the_parsers_depth_leaves_the_jobs_end_alone(
        manager: TaskManager) -> None:
    # found in review: 30,000 "[" (under the size bound) raised RecursionError in the
    # worker's last read, which replaced the job's own end (exit 0) with a failure and
    # skipped its output files; a progress.json of the program's own is not ours either
    code = ("import os\nopen(os.environ['JUPYTER_TASKS_PROGRESS'], 'w').write('[' * 30000)\n"
            "open('progress.json', 'w').write('{\"current\": 5, \"total\": 10}')\n"
            "out = os.environ['JUPYTER_TASKS_OUTPUT']\n"
            "open(os.path.join(out, 'r.txt'), 'w').write('kept')\n")
    task = await manager.submit_spec({"code": code}, max_retries=0)
    done = await manager.wait(task.id, timeout=60)
    assert done.status == "succeeded", done.error
    assert done.progress is None
    assert [a.name for a in await manager.store.list_artifacts(task.id)] == ["r.txt"]
