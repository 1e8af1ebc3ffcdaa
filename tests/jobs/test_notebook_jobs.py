"""Notebook jobs with real kernels: parameters, progress, logs, artifacts, failure, stop."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest

from jupyter_tasks import TaskManager
from jupyter_tasks.exceptions import InvalidRequest
from jupyter_tasks.jobs import validate_notebook_spec
from jupyter_tasks.jobs.notebook import INJECTED_TAG, inject_parameters, remove_lost_kernel_files
from tests.jobs.conftest import write_notebook
from tests.processes import ended
from tests.waiting import eventually

PARAMS_CELLS = [
    ("alpha = 1\nname = 'default'", ["parameters"]),
    "doubled = alpha * 2\nprint(f'{name}: doubled={doubled}')",
    "import sys\nprint('to stderr', file=sys.stderr)\ndoubled + 1",
]


async def logs_text(manager: TaskManager, task_id: str) -> str:
    return "".join(e.text for e in await manager.store.get_logs(task_id))


async def artifact_notebook(manager: TaskManager, task_id: str, name: str) -> Any:
    art = await manager.store.get_artifact(task_id, name)
    assert art is not None, f"no artifact {name}"
    return nbformat.reads(manager.store.artifact_path(art).read_text(), as_version=4)


# --------------------------------------------------------------------- REST


async def test_parameters_progress_logs_and_artifact_over_rest(api, jp_root_dir, tasks_app):
    write_notebook(jp_root_dir / "reports" / "params.ipynb", PARAMS_CELLS)
    response = await api.post(body={"notebook": "reports/params.ipynb",
                                    "parameters": {"alpha": 21, "name": "job"}})
    assert response.code == 202, response.json
    task = response.json
    assert task["kind"] == "notebook" and task["params"] == {"alpha": 21, "name": "job"}
    result = await api.get(task["id"], "result", params={"timeout": 120})
    assert result.code == 200 and result.json["status"] == "succeeded", result.json
    assert result.json["result"]["notebook"] == "params.ipynb"
    done = (await api.get(task["id"])).json
    # three code cells in the file plus the injected one: progress reaches 4/4
    assert done["progress"]["current"] == done["progress"]["total"] == 4

    # progress carried the running cell's first line along the way
    manager = tasks_app.manager
    events = await manager.store.events_after(0, task_id=task["id"], limit=1000)
    messages = {(e.task or {}).get("progress", {}).get("message") for e in events
                if e.type == "task.progress" and e.task}
    assert messages & {"doubled = alpha * 2", "import sys", "alpha = 1", "# Parameters",
                       "starting kernel"}, messages

    logs = (await api.get(task["id"], "logs")).json["entries"]
    text = "".join(e["text"] for e in logs)
    assert "job: doubled=42" in text and "43" in text
    assert any(e["stream"] == "stderr" and "to stderr" in e["text"] for e in logs)

    listing = (await api.get(task["id"], "artifacts")).json
    assert [a["name"] for a in listing] == ["params.ipynb"]
    download = await api.get(task["id"], "artifacts", "params.ipynb")
    assert download.code == 200
    etag = download.headers["ETag"]
    assert etag == f'"{hashlib.sha256(download.body).hexdigest()}"'
    again = await api.get(task["id"], "artifacts", "params.ipynb",
                          headers={"If-None-Match": etag})
    assert again.code == 304

    nb = nbformat.reads(download.body.decode(), as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    injected = next(i for i, t in enumerate(tags) if INJECTED_TAG in t)
    assert "parameters" in tags[injected - 1], "injected right after the parameters cell"
    assert "alpha = 21" in nb.cells[injected].source
    assert "name = 'job'" in nb.cells[injected].source
    last = nb.cells[-1].outputs
    assert any(o.get("data", {}).get("text/plain") == "43" for o in last)


async def test_rest_refuses_a_notebook_outside_the_root(api, jp_root_dir):
    response = await api.post(body={"notebook": "../outside.ipynb"})
    assert response.code == 422


# ------------------------------------------------------------------ manager


async def test_rest_takes_kernel_name_for_a_notebook_whose_kernel_is_missing(
        api, jp_root_dir):
    # the documented fix for a missing kernel ("pass kernel_name") was refused over
    # REST as an unknown field; here the notebook names a kernel this machine lacks
    path = write_notebook(jp_root_dir / "elsewhere.ipynb", ["print('ran here')"])
    nb = nbformat.read(path, as_version=4)
    nb.metadata["kernelspec"] = {"name": "ghost-kernel", "display_name": "Ghost",
                                 "language": "python"}
    nbformat.write(nb, path)
    response = await api.post(body={"notebook": "elsewhere.ipynb", "kernel_name": "python3"})
    assert response.code == 202, response.json
    result = await api.get(response.json["id"], "result", params={"timeout": 120})
    assert result.json["status"] == "succeeded", result.json
    for bad, body in [("a path", {"notebook": "elsewhere.ipynb", "kernel_name": "../x"}),
                      ("empty", {"notebook": "elsewhere.ipynb", "kernel_name": ""}),
                      ("not a notebook job", {"command": ["true"], "kernel_name": "python3"})]:
        refused = await api.post(body=body)
        assert refused.code == 422, (bad, refused.json)
        assert "kernel_name" in {e["field"] for e in refused.json["errors"]}, (bad, refused.json)


async def test_failing_cell_fails_the_task_and_still_keeps_the_notebook(
        manager: TaskManager, tmp_path: Path) -> None:
    write_notebook(tmp_path / "bad.ipynb", [
        "x = 1\nprint('before')",
        "y = x / 0",
        "print('never printed')",
    ])
    task = await manager.submit_spec({"notebook": "bad.ipynb", "root_dir": str(tmp_path)},
                                     max_retries=0)
    done = await manager.wait(task.id, timeout=120)
    assert done.status == "failed", done.error
    assert done.error["type"] == "CellExecutionError"
    assert "ZeroDivisionError" in done.error["message"]
    assert "division by zero" in done.error["message"]
    assert "y = x / 0" in done.error["traceback"]
    assert "ZeroDivisionError" in done.error["traceback"]
    assert done.progress["current"] == 1 and done.progress["total"] == 3
    nb = await artifact_notebook(manager, task.id, "bad.ipynb")
    # papermill's error markers come first (the message) and before the failing cell
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[1].outputs[0]["ename"] == "ZeroDivisionError"
    assert code[2].get("outputs") == [], "cells after the failure did not run"
    assert "before" in await logs_text(manager, task.id)
    assert "never printed" not in await logs_text(manager, task.id)


@pytest.mark.parametrize("how", ["cancel", "timeout"])
async def test_cancel_and_timeout_stop_the_kernel(manager: TaskManager, tmp_path: Path,
                                                  how: str) -> None:
    pid_file = tmp_path / "kernel.pid"
    # the pid is written by the second cell: the first has then ended and its count is
    # in the notebook (a stop right after a pid written by the first cell found it
    # still running in a fresh-clone CI)
    write_notebook(tmp_path / "slow.ipynb", [
        "import os",
        f"import time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "for i in range(6000):\n    time.sleep(0.1)",
    ])
    task = await manager.submit_spec(
        {"notebook": "slow.ipynb", "root_dir": str(tmp_path)}, max_retries=0,
        timeout=None if how == "cancel" else 20)  # (kernel start included: room under load)

    async def kernel_pid() -> int | None:
        return int(pid_file.read_text()) if pid_file.exists() and pid_file.read_text() else None

    pid = await eventually(kernel_pid, timeout=60, what="kernel started")
    assert psutil.pid_exists(pid) and pid != os.getpid()
    if how == "cancel":
        await manager.cancel(task.id)
    done = await manager.wait(task.id, timeout=60)
    assert done.status == ("cancelled" if how == "cancel" else "timeout")
    await eventually(lambda: _async(ended(pid)), timeout=30, what="kernel gone")
    # the partly executed notebook is kept
    nb = await artifact_notebook(manager, task.id, "slow.ipynb")
    assert nb.cells[1].get("execution_count") == 1
    # and no poller of nbclient's is left behind to fail once the kernel client is gone
    # (before: "Task exception was never retrieved … assert self.kc is not None" in the
    # worker's log for each cancelled notebook)
    assert [t for t in asyncio.all_tasks()
            if "_async_poll_kernel_alive" in repr(t.get_coro())] == []


async def _async(value: Any) -> Any:
    return value


@pytest.mark.parametrize("last", ["print('last cell ran')", "raise ValueError('its own end')"])
@pytest.mark.parametrize("when", ["as the last cell ended", "while the run closed"])
async def test_a_notebook_that_ended_before_its_cancel_reached_it_keeps_its_end(
        manager: TaskManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        last: str, when: str) -> None:
    # the cells had all run (or one failed) when a cancel reached the run: its last
    # cell's reply was in but the run had not gone on yet, or it was shutting its kernel
    # down and keeping the executed copy. Before: written cancelled, the result (or
    # the cell's own failure) thrown away. A hook stops the run at that point: the race,
    # made certain
    from jupyter_tasks.jobs import notebook as notebook_job

    def stop() -> None:
        (task_id,) = manager.state.running  # what a cancel request does here
        manager.execution.stop_by_id(task_id, "cancel")

    if when == "while the run closed":
        finish = notebook_job._finish

        async def stopped_finish(*args: Any, **kwargs: Any) -> None:
            stop()
            await finish(*args, **kwargs)

        monkeypatch.setattr(notebook_job, "_finish", stopped_finish)
    else:
        client_class = notebook_job._job_client_class()

        class StoppedAtTheEnd(client_class):  # type: ignore[misc,valid-type]
            async def async_execute_cell(self, cell: Any, cell_index: int,
                                         **kwargs: Any) -> Any:
                try:
                    return await super().async_execute_cell(cell, cell_index, **kwargs)
                finally:
                    if cell_index == len(self.nb.cells) - 1:
                        stop()  # its reply is in: the cell ends as the stop arrives

        monkeypatch.setattr(notebook_job, "_job_client_class", lambda: StoppedAtTheEnd)
    write_notebook(tmp_path / "ends.ipynb", ["x = 1", last])
    task = await manager.submit_spec({"notebook": "ends.ipynb", "root_dir": str(tmp_path)},
                                     max_retries=0)
    done = await manager.wait(task.id, timeout=120)
    nb = await artifact_notebook(manager, task.id, "ends.ipynb")
    if last.startswith("print"):
        assert (done.status, done.error) == ("succeeded", None)
        assert (done.result["executed"], done.result["cells"]) == (2, 2)
        assert "last cell ran" in await logs_text(manager, task.id)
        assert nb.cells[-1].metadata["papermill"]["status"] == "completed"
    else:
        assert (done.status, done.error["type"]) == ("failed", "CellExecutionError"), done.error
        assert done.error["message"].startswith("ValueError: its own end"), done.error
        assert nb.cells[-1].metadata["papermill"]["status"] == "failed"


async def test_rerun_and_fork_with_other_parameters(manager: TaskManager, tmp_path: Path) -> None:
    write_notebook(tmp_path / "p.ipynb", [("n = 2", ["parameters"]), "n * 10"], markdown=None)
    first = await manager.submit_spec({"notebook": "p.ipynb", "parameters": {"n": 3},
                                       "root_dir": str(tmp_path)})
    assert (await manager.wait(first.id, timeout=120)).status == "succeeded"
    forked = await manager.fork(first.id, {"parameters": {"n": 7}})
    rerun = await manager.rerun(first.id)
    for task, expected in ((forked, "70"), (rerun, "30")):
        done = await manager.wait(task.id, timeout=120)
        assert done.status == "succeeded", done.error
        assert done.parent_id == first.id
        nb = await artifact_notebook(manager, task.id, "p.ipynb")
        assert nb.cells[-1].outputs[0]["data"]["text/plain"] == expected
    assert (await manager.get(forked.id)).relationship == "fork"
    assert (await manager.get(forked.id)).params == {"n": 7}


async def test_paths_must_stay_inside_the_root(manager: TaskManager, tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_notebook(tmp_path / "outside.ipynb", ["1"])
    root.mkdir()
    for bad in ("../outside.ipynb", str(tmp_path / "outside.ipynb")):
        with pytest.raises(InvalidRequest):
            validate_notebook_spec({"notebook": bad, "root_dir": str(root)})
        before = await manager.store.count_tasks()
        with pytest.raises(InvalidRequest):  # refused at submit: no row, no run
            await manager.submit_spec({"notebook": bad, "root_dir": str(root)})
        assert await manager.store.count_tasks() == before
    with pytest.raises(InvalidRequest, match="identifiers"):
        validate_notebook_spec({"notebook": "outside.ipynb", "root_dir": str(tmp_path),
                                "parameters": {"not valid": 1}})
    # before: accepted, then the injected "class = 1" failed the run with a SyntaxError
    with pytest.raises(InvalidRequest, match="keywords") as refused:
        validate_notebook_spec({"notebook": "outside.ipynb", "root_dir": str(tmp_path),
                                "parameters": {"class": 1, "ok": 2}})
    assert refused.value.errors == [{"field": "parameters.class",
                                     "message": "a Python keyword"}]


@pytest.mark.parametrize("name", ["résumé (2).ipynb", "_draft.ipynb"])
async def test_a_notebook_of_any_file_name_keeps_its_executed_copy(
        manager: TaskManager, tmp_path: Path, name: str) -> None:
    # before: every cell ran, then the job failed ("artifact name 'résumé.ipynb' must be a
    # plain file name") and output_path was never written
    write_notebook(tmp_path / name, [("x = 1", ["parameters"]), "print('x is', x)"])
    task = await manager.submit_spec({"notebook": name, "root_dir": str(tmp_path),
                                      "parameters": {"x": 7}, "output_path": "out/{id}.ipynb",
                                      "export_html": True}, max_retries=0)
    done = await manager.wait(task.id, timeout=120)
    assert done.status == "succeeded", done.error
    artifacts = sorted(a.name for a in await manager.store.list_artifacts(task.id))
    plain = {"résumé (2).ipynb": "resume _2_", "_draft.ipynb": "draft"}[name]
    assert artifacts == [f"{plain}.html", f"{plain}.ipynb"]
    assert done.result["notebook"] == f"{plain}.ipynb"
    copy = nbformat.read(tmp_path / "out" / f"{task.id}.ipynb", as_version=4)
    assert "x is 7" in "".join(o.get("text", "") for c in copy.cells for o in c.get("outputs", []))
    assert (await artifact_notebook(manager, task.id, f"{plain}.ipynb")).cells == copy.cells


async def test_an_html_export_that_fails_leaves_a_run_whose_cells_all_ran_succeeded(
        manager: TaskManager, tmp_path: Path) -> None:
    # before: "failed: NotebookValidationError: 'display_name' is a required property"
    # for a kernelspec without display_name, which runs (papermill runs it too) and
    # whose executed copy was kept; the message did not say the HTML export failed
    path = write_notebook(tmp_path / "raw.ipynb", ["print('ran')"])
    nb = nbformat.read(path, as_version=4)
    del nb.metadata.kernelspec["display_name"]
    path.write_text(json.dumps(nb))
    task = await manager.submit_spec({"notebook": "raw.ipynb", "root_dir": str(tmp_path),
                                      "output_path": "out/raw.ipynb", "export_html": True},
                                     max_retries=0)
    done = await manager.wait(task.id, timeout=120)
    assert done.status == "succeeded", done.error
    assert done.result["html"] is None
    said = [w for w in done.result["warnings"] if w.startswith("no HTML was made")]
    assert said and "display_name" in said[0], done.result["warnings"]
    assert said[0] in await logs_text(manager, task.id)
    assert sorted(a.name for a in await manager.store.list_artifacts(task.id)) == ["raw.ipynb"]
    assert (tmp_path / "out" / "raw.ipynb").exists()
    assert not (tmp_path / "out" / "raw.html").exists()


async def test_the_output_notebook_is_saved_as_each_cell_ends(
        manager: TaskManager, tmp_path: Path) -> None:
    # papermill saves the output after each cell: a run whose worker is killed leaves a
    # notebook showing how far it got (before: nothing at output_path until the end)
    release = tmp_path / "release"
    write_notebook(tmp_path / "slow.ipynb", [
        "print('first cell done')",
        "import os, time\n"
        f"while not os.path.exists({str(release)!r}):\n    time.sleep(0.05)\n"
        "print('second cell done')"])
    task = await manager.submit_spec({"notebook": "slow.ipynb", "root_dir": str(tmp_path),
                                      "output_path": "out/{id}.ipynb"}, max_retries=0)
    output = tmp_path / "out" / f"{task.id}.ipynb"

    def first_cell_saved() -> bool:
        if not output.exists():
            return False
        copy = nbformat.read(output, as_version=4)
        texts = ["".join(o.get("text", "") for o in c.get("outputs", [])) for c in copy.cells]
        # the cell under way says so, with its start, as papermill's save shows it (before:
        # "pending", as if it had not begun: a killed run did not say where it stopped)
        waiting = copy.cells[-1].metadata.get("papermill", {})
        return "first cell done\n" in texts and "second cell done" not in "".join(texts) \
            and waiting.get("status") == "running" and waiting.get("start_time") is not None

    try:
        await eventually(lambda: _async(first_cell_saved()), timeout=120,
                         what="the first cell's output saved")
    finally:
        release.touch()
    done = await manager.wait(task.id, timeout=120)
    assert done.status == "succeeded", done.error
    copy = nbformat.read(output, as_version=4)
    assert "second cell done" in "".join(o.get("text", "") for c in copy.cells
                                         for o in c.get("outputs", []))


def test_injection_without_a_parameters_cell_goes_on_top() -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("a = 1")])
    assert inject_parameters(nb, {"a": [1, "two"]}) == 0
    assert nb.cells[0].source.splitlines()[1] == "a = [1, 'two']"
    # injecting again (an output notebook run anew) replaces the old injected cell
    inject_parameters(nb, {"a": 5})
    assert [c.source for c in nb.cells][1:] == ["a = 1"] and "a = 5" in nb.cells[0].source


# ------------------------------------------------------- papermill's ground


async def test_output_path_and_html_export_over_rest(api, jp_root_dir, tasks_app):
    write_notebook(jp_root_dir / "reports" / "params.ipynb", PARAMS_CELLS)
    response = await api.post(body={
        "notebook": "reports/params.ipynb", "parameters": {"alpha": 3, "name": "x"},
        "output_path": "runs/{date:%Y}/params-{alpha}-{id}.ipynb", "export_html": True})
    assert response.code == 202, response.json
    task = response.json
    result = await api.get(task["id"], "result", params={"timeout": 180})
    assert result.json["status"] == "succeeded", result.json
    written = list((jp_root_dir / "runs").glob(f"*/params-3-{task['id']}.ipynb"))
    assert len(written) == 1, list((jp_root_dir / "runs").rglob("*"))
    nb = nbformat.read(written[0], as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.papermill["output_path"] == str(written[0].relative_to(jp_root_dir))
    assert nb.metadata.papermill["parameters"] == {"alpha": 3, "name": "x"}
    assert result.json["result"]["output_path"] == str(written[0].relative_to(jp_root_dir))
    html = written[0].with_suffix(".html")
    assert html.exists() and "doubled=6" in html.read_text()
    listing = (await api.get(task["id"], "artifacts")).json
    assert sorted(a["name"] for a in listing) == ["params.html", "params.ipynb"]


@pytest.mark.parametrize("output_path, complaint", [
    ("../outside.ipynb", "outside the root"),
    ("/etc/passwd", "outside the root"),
    ("out/{nope}.ipynb", "{nope}"),
    ("out/{alpha.real}.ipynb", "is not a field"),
    # a parameter's value naming folders
    ("{where}/x.ipynb", "which would change the folder written to"),
    ("reports", "is a folder"),
    # the executed copy would replace the notebook it ran (also through a parameter)
    ("reports/params.ipynb", "is the input notebook"),
    ("reports/../reports/{stem}.ipynb", "is the input notebook"),
    ("reports/hardlink.ipynb", "is the input notebook"),  # another name of the same file
    # a width filled in before any length is known: a 56-byte request made a 100 MB name
    ("out/{id:>99999999}.ipynb", "more than 255 characters"),
    ("out/{alpha:.100000f}.ipynb", "more than 255 characters"),
    # a field in the format, filled in before any check: before, {x} of 2e9 cost the
    # server 3.5 GB and its loop 6 s (1e12: a 500)
    ("out/{id:>{alpha}}.ipynb", "holds a field of its own"),
    ("out/{stem}" + "x" * 300 + ".ipynb", "too long once filled in"),
    # papermill's remote storage: before, written to a local folder named `s3:`, and
    # the job said it succeeded
    ("s3://bucket/out.ipynb", "(a URL) is not supported"),
    ("https://example.org/out.ipynb", "(a URL) is not supported"),
])
async def test_output_path_leaving_the_root_is_refused_at_submit(
        api, jp_root_dir, tasks_app, output_path, complaint):
    write_notebook(jp_root_dir / "reports" / "params.ipynb", PARAMS_CELLS)
    os.link(jp_root_dir / "reports" / "params.ipynb", jp_root_dir / "reports" / "hardlink.ipynb")
    before = await tasks_app.manager.store.count_tasks()
    response = await api.post(body={"notebook": "reports/params.ipynb",
                                    "parameters": {"alpha": 1, "where": "../..",
                                                   "stem": "params"},
                                    "output_path": output_path})
    assert response.code == 422, response.json
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert complaint in response.json["detail"], response.json
    assert await tasks_app.manager.store.count_tasks() == before, "nothing written"
    bad_flag = await api.post(body={"notebook": "reports/params.ipynb", "export_html": "yes"})
    assert bad_flag.code == 422


@pytest.mark.parametrize("content, complaint", [
    (b'{"cells": [', "is not a notebook: it is not JSON"),
    (b"print('a script')\n", "is not a notebook: it is not JSON"),
    (b"[1, 2]", "holds a JSON list, where a notebook is an object"),
    (b'{"cells": []}', "has no integer nbformat version"),
    (b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}}', "has no list of cells"),
    (b'{"nbformat": 4, "cells": []}\xff', "is not a notebook"),  # not UTF-8
])
async def test_a_file_that_is_no_notebook_is_refused_at_submit(
        api, jp_root_dir, tasks_app, content, complaint):
    # before: queued, then failed at its run (NotJSONError; for a list, AttributeError
    # 'list' object has no attribute 'get'), and a schedule failed so at every run
    (jp_root_dir / "broken.ipynb").write_bytes(content)
    before = await tasks_app.manager.store.count_tasks()
    response = await api.post(body={"notebook": "broken.ipynb"})
    assert response.code == 422, response.json
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert complaint in response.json["detail"], response.json
    assert response.json["errors"][0]["field"] == "notebook", response.json
    assert await tasks_app.manager.store.count_tasks() == before, "nothing written"


async def test_a_large_notebook_is_outlined_off_the_loop_at_submit(
        api, jp_root_dir, tasks_app, monkeypatch):
    # a file past MAX_PARSED_NOTEBOOK_BYTES is not parsed at submit, only outlined; and
    # the file is read on a thread: a 28 MiB notebook parsed on the loop held it 134 ms
    from jupyter_tasks.jobs import notebook as notebook_module

    filler = "x" * 3 * notebook_module.MAX_PARSED_NOTEBOOK_BYTES
    whole = json.dumps({"cells": [{"cell_type": "markdown", "id": "a", "metadata": {},
                                   "source": filler}],
                        "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    (jp_root_dir / "large.ipynb").write_text(whole)
    (jp_root_dir / "cut.ipynb").write_text(whole[: len(whole) // 2])  # a write cut short
    readers = []
    check = notebook_module.check_notebook_file

    def recorded(path: str, name: object) -> None:
        readers.append(threading.current_thread() is threading.main_thread())
        check(path, name)

    monkeypatch.setattr("jupyter_tasks.jobs.check_notebook_file", recorded)
    cut = await api.post(body={"notebook": "cut.ipynb", "queue": "parked"})
    assert cut.code == 422, cut.json
    assert "not a JSON object from its start to its end" in cut.json["detail"], cut.json
    large = await api.post(body={"notebook": "large.ipynb", "queue": "parked"})
    assert large.code == 202, large.json
    assert readers == [False, False], "the notebook was read on the event loop's thread"


async def test_parameter_warnings_in_the_log_and_the_full_view(api, jp_root_dir, tasks_app):
    write_notebook(jp_root_dir / "plain.ipynb", ["print('plain')"])
    response = await api.post(body={"notebook": "plain.ipynb", "parameters": {"alpha": 1}})
    task = response.json
    result = await api.get(task["id"], "result", params={"timeout": 180})
    assert result.json["status"] == "succeeded", result.json
    full = (await api.get(task["id"], params={"view": "full"})).json
    assert any("no cell tagged 'parameters'" in w for w in full["result"]["warnings"])
    logs = (await api.get(task["id"], "logs")).json["entries"]
    assert any(e["text"].startswith("warning: the notebook has no cell tagged")
               for e in logs)


async def test_failing_cell_is_named_as_the_user_sees_it(manager: TaskManager,
                                                         tmp_path: Path) -> None:
    write_notebook(tmp_path / "bad.ipynb", [
        ("n = 1", ["parameters"]),
        "x = 1",
        "y = x / 0\n# a comment that is part of the excerpt",
    ])
    task = await manager.submit_spec({"notebook": "bad.ipynb", "parameters": {"n": 2},
                                      "root_dir": str(tmp_path)}, max_retries=0)
    done = await manager.wait(task.id, timeout=120)
    assert done.status == "failed"
    message = done.error["message"]
    # the heading is cell 1, so the failing cell is the input's 4th; the injected
    # cell ran as In [2], so the failing one is In [4], as its traceback says
    assert "cell 4 of bad.ipynb" in message and "In [4]" in message, message
    assert "y = x / 0" in message and "# a comment" in message, message
    nb = await artifact_notebook(manager, task.id, "bad.ipynb")
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert "papermill-error-cell-tag" in tags[0]
    assert "In [4]" in nb.cells[0].source
    failing = next(i for i, c in enumerate(nb.cells) if c.source.startswith("y = x / 0"))
    assert "papermill-error-cell-tag" in tags[failing - 1]
    assert 'id="papermill-error-cell"' in nb.cells[failing - 1].source


@pytest.mark.parametrize("statement, status", [
    ("sys.exit()", "succeeded"), ("sys.exit(0)", "succeeded"),
    ("raise SystemExit", "succeeded"), ("sys.exit(3)", "failed"),
])
async def test_system_exit_ends_the_run(manager: TaskManager, tmp_path: Path,
                                        statement: str, status: str) -> None:
    write_notebook(tmp_path / "exit.ipynb", [
        "import sys\nprint('first')", statement, "print('not reached')"])
    task = await manager.submit_spec({"notebook": "exit.ipynb", "root_dir": str(tmp_path)},
                                     max_retries=0)
    done = await manager.wait(task.id, timeout=120)
    assert done.status == status, done.error
    assert done.attempts == 1
    logs = await logs_text(manager, task.id)
    assert "first" in logs and "not reached" not in logs
    nb = await artifact_notebook(manager, task.id, "exit.ipynb")
    nbformat.validate(nb)
    if status == "succeeded":
        assert done.result["stopped_early"] == {"cell": 2, "execution_count": 2, "exit": None
                                                if statement != "sys.exit(0)" else "0"}
        assert not any("papermill-error-cell-tag" in c.metadata.get("tags", [])
                       for c in nb.cells)
    else:
        assert "SystemExit: 3" in done.error["message"]


def test_a_lost_attempts_kernel_file_is_found_from_its_task_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # what the reaper removes is named by the task's id and attempt only: not another
    # attempt's file, nor what a link points to, nor anything for an id that is a path
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    task_id = "0123456789abcdef" * 2
    lost = tmp_path / f"jupyter-tasks-kernel-{task_id}-1-x1.json"
    later = tmp_path / f"jupyter-tasks-kernel-{task_id}-11-x2.json"
    outside = tmp_path / "outside.json"
    for path in (lost, later, outside):
        path.write_text("{}")
    (tmp_path / f"jupyter-tasks-kernel-{task_id}-1-link.json").symlink_to(outside)
    assert remove_lost_kernel_files("../" + task_id, 1) == []
    assert remove_lost_kernel_files(task_id, 1) == [str(lost)]
    assert (later.exists(), outside.exists(), lost.exists()) == (True, True, False)
