"""``%%background`` cells in a notebook run headless (a notebook job, as papermill runs one).

A background cell returns at once; the notebook's last cell ends long before its work
does. The run must not end the kernel under that work: the job waits for the
background tasks its kernel started, the executed notebook shows how they ended, and
one that failed fails the job, as a failing cell does in papermill.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from jupyter_tasks import TaskManager
from tests.jobs.conftest import write_notebook
from tests.jobs.test_notebook_jobs import artifact_notebook
from tests.kernels import IpcKernelManager
from tests.waiting import eventually

pytestmark = pytest.mark.slow

WORK = ("%%background --label slow-work\n"
        "import time\n"
        "time.sleep(1.5)\n"
        "print('background output')\n"
        "6 * 7\n")


@pytest.fixture(autouse=True)
def kernels_share_the_database(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the server and `jupyter tasks worker` hand their file to kernels this way
    monkeypatch.setenv("JUPYTER_TASKS_DB", str(db_path))


def _texts(nb: object) -> str:
    return "\n".join(
        str(out.get("data", {}).get("text/plain", "")) + str(out.get("text", ""))
        for cell in nb.cells if cell.cell_type == "code"  # type: ignore[attr-defined]
        for out in cell.get("outputs", []))


async def run_job(manager: TaskManager, folder: Path, notebook: str) -> tuple[Any, Any]:
    """Submit ``notebook`` as a job; (the task submitted, the task ended)."""
    task = await manager.submit_spec({"notebook": notebook, "root_dir": str(folder)},
                                     max_retries=0)
    return task, await manager.wait(task.id, timeout=180)


async def test_a_notebook_job_waits_for_its_background_cells(
        manager: TaskManager, tmp_path: Path) -> None:
    # before: the job succeeded as soon as its last cell returned and shut its kernel
    # down: the background work ended `interrupted`, and the executed notebook's card
    # said `running`
    write_notebook(tmp_path / "bg.ipynb", ["%load_ext jupyter_tasks", WORK,
                                           "print('last cell')"])
    task, done = await run_job(manager, tmp_path, "bg.ipynb")
    assert done.status == "succeeded", done.error
    cells = [t for t in await manager.store.list_tasks() if t.kind == "cell"]
    assert [(t.label, t.status, t.result) for t in cells] == [("slow-work", "succeeded", 42)]
    nb = await artifact_notebook(manager, task.id, "bg.ipynb")
    text = _texts(nb)
    # the card's text form (what a saved notebook shows without the widget) is its end
    assert f"TaskCard('slow-work', succeeded, id={cells[0].id})" in text, text
    assert "background output" in text, text
    assert "running" not in text, text
    # the waiting left no cell of its own in the notebook
    assert len(nb.cells) == 4, [c.source for c in nb.cells]


async def test_a_failed_background_cell_fails_the_notebook_job(
        manager: TaskManager, tmp_path: Path) -> None:
    write_notebook(tmp_path / "bad.ipynb", [
        "%load_ext jupyter_tasks",
        "%%background --label doomed\nimport time\ntime.sleep(0.5)\n1 / 0\n",
        "print('last cell')"])
    task, done = await run_job(manager, tmp_path, "bad.ipynb")
    assert done.status == "failed"
    message = done.error["message"]
    # named as a failing cell is: the error, the cell as the user sees it
    assert "ZeroDivisionError" in message and "cell 3 of bad.ipynb" in message, message
    assert "doomed" in message, message
    nb = await artifact_notebook(manager, task.id, "bad.ipynb")
    assert "TaskCard('doomed', failed," in _texts(nb)


async def test_a_background_cell_tagged_raises_exception_may_fail(
        manager: TaskManager, tmp_path: Path) -> None:
    # before: the job failed for it, though the cell's tag says its failure is expected
    # (nbclient lets a cell so tagged raise): the quickstart, which shows an error card
    # on purpose, always ended failed as a job
    write_notebook(tmp_path / "shows.ipynb", [
        "%load_ext jupyter_tasks",
        ("%%background --label on-purpose\nraise ValueError('shown in the card')\n",
         ["raises-exception"]),
        "%%background --label fine\n6 * 7\n",
        "print('last cell')"])
    task, done = await run_job(manager, tmp_path, "shows.ipynb")
    assert done.status == "succeeded", done.error
    ends = {t.label: t.status for t in await manager.store.list_tasks() if t.kind == "cell"}
    assert ends == {"on-purpose": "failed", "fine": "succeeded"}
    nb = await artifact_notebook(manager, task.id, "shows.ipynb")
    assert "TaskCard('on-purpose', failed," in _texts(nb)


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.ipynb")))
async def test_the_example_notebooks_run_as_jobs(manager: TaskManager, tmp_path: Path,
                                                 name: str) -> None:
    # before: `jupyter tasks run quickstart.ipynb` (the README's showcase) ended failed,
    # for the card it shows an error in on purpose
    import shutil

    shutil.copy(EXAMPLES / name, tmp_path / name)
    _, done = await run_job(manager, tmp_path, name)
    assert done.status == "succeeded", done.error


async def test_a_notebook_job_waits_for_run_background_work_too(
        manager: TaskManager, tmp_path: Path) -> None:
    # work started with the Python API beside the cells is the kernel's too
    write_notebook(tmp_path / "api.ipynb", [
        "%load_ext jupyter_tasks",
        "import asyncio, jupyter_tasks\n"
        "async def slow():\n"
        "    await asyncio.sleep(1)\n"
        "    return 5\n"
        "task_id = await jupyter_tasks.run_background(slow(), label='api-work')"])
    _, done = await run_job(manager, tmp_path, "api.ipynb")
    assert done.status == "succeeded", done.error
    work = [t for t in await manager.store.list_tasks() if t.label == "api-work"]
    assert [(t.status, t.result) for t in work] == [("succeeded", 5)], work


async def test_a_background_cell_the_notebook_cancels_does_not_fail_the_job(
        manager: TaskManager, tmp_path: Path) -> None:
    # a monitor loop a later cell stops on purpose: a choice, not a failure
    write_notebook(tmp_path / "monitor.ipynb", [
        "%load_ext jupyter_tasks",
        "%%background --name monitor --label monitor\nimport time\n"
        "while True:\n    time.sleep(0.05)\n",
        "monitor.cancel()"])
    _, done = await run_job(manager, tmp_path, "monitor.ipynb")
    assert done.status == "succeeded", done.error
    (monitor,) = [t for t in await manager.store.list_tasks() if t.label == "monitor"]
    assert monitor.status == "cancelled"


async def test_a_job_stopped_while_it_waits_for_background_cells_says_so_in_its_notebook(
        manager: TaskManager, tmp_path: Path) -> None:
    # before: cancelled (or timed out) in that wait, the executed notebook read as a
    # success: metadata.papermill.exception None, every cell "completed", no error
    # marker; and the job's progress said "try:", the hidden cell's first line
    write_notebook(tmp_path / "forever.ipynb", [
        "%load_ext jupyter_tasks",
        "%%background --name mon --label mon\nimport time\n"
        "while True:\n    time.sleep(0.05)\n",
        "print('last')"])
    task = await manager.submit_spec({"notebook": "forever.ipynb", "root_dir": str(tmp_path)},
                                     max_retries=0)

    async def waiting() -> str | None:
        progress = (await manager.store.require_task(task.id)).progress or {}
        return progress.get("message") if progress.get("current") == 3 else None

    said = await eventually(waiting, timeout=120, what="the run waiting for its cells")
    assert said == "waiting for background cells"
    await manager.cancel(task.id)
    done = await manager.wait(task.id, timeout=120)
    assert done.status == "cancelled", done.error
    assert done.progress["message"] == "waiting for background cells", done.progress
    nb = await artifact_notebook(manager, task.id, "forever.ipynb")
    assert nb.metadata.papermill.exception is True
    markers = [c for c in nb.cells if "papermill-error-cell" in c.source]
    assert len(markers) == 2, [c.source[:60] for c in nb.cells]  # message and anchor
    code = [c for c in nb.cells if c.cell_type == "code"]
    # the cell whose work it waited for is where it stopped, as papermill marks a cell
    assert [c.metadata.papermill.status for c in code] == ["completed", "failed",
                                                           "completed"]
    anchor = nb.cells.index(next(c for c in nb.cells if 'id="papermill-error-cell"'
                                 in c.source))
    assert nb.cells[anchor + 1] is code[1]


@pytest.mark.parametrize("last_cell", [
    # the documented last cell for papermill, in a notebook job too
    "import jupyter_tasks\njupyter_tasks.wait_for_background();",
    # a bounded wait that gives up on the slow one
    "import jupyter_tasks\ntry:\n    jupyter_tasks.wait_for_background(timeout=0.3)\n"
    "except TimeoutError:\n    pass\n",
])
async def test_a_failed_background_cell_fails_the_job_whatever_waited_before(
        manager: TaskManager, tmp_path: Path, last_cell: str) -> None:
    # before: a wait in the notebook took the tasks it waited for (or gave up on) out of
    # the kernel's list, and the job's own check after the last cell saw none of them
    write_notebook(tmp_path / "waited.ipynb", [
        "%load_ext jupyter_tasks",
        "%%background --label slow\nimport time\ntime.sleep(1.5)\n",
        "%%background --label doomed\n1 / 0\n",
        last_cell])
    _, done = await run_job(manager, tmp_path, "waited.ipynb")
    assert done.status == "failed", done.status
    assert "doomed" in done.error["message"], done.error["message"]


async def test_a_background_cell_that_waits_for_the_others_does_not_wait_for_itself(
        manager: TaskManager, tmp_path: Path) -> None:
    # before: it waited for itself, until the job's timeout (with none, for good)
    write_notebook(tmp_path / "waiter.ipynb", [
        "%load_ext jupyter_tasks",
        "%%background --label other\nimport time\ntime.sleep(0.5)\n1\n",
        "%%background --label waiter\nimport jupyter_tasks\n"
        "[t.label for t in jupyter_tasks.wait_for_background()]\n"])
    task = await manager.submit_spec({"notebook": "waiter.ipynb", "root_dir": str(tmp_path)},
                                     max_retries=0, timeout=120)
    done = await manager.wait(task.id, timeout=180)
    assert done.status == "succeeded", (done.status, done.error)
    (waiter,) = [t for t in await manager.store.list_tasks() if t.label == "waiter"]
    assert (waiter.status, waiter.result) == ("succeeded", ["other"])


def test_a_bounded_wait_for_work_that_ended_long_ago_does_not_time_out(
        tmp_path: Path) -> None:
    # the deadline is for work still running: a task that ended before it passed is
    # no TimeoutError (was: the hop to the manager's loop was given no time at all)
    import nbformat
    from nbclient import NotebookClient

    path = write_notebook(tmp_path / "bounded.ipynb", [
        "%load_ext jupyter_tasks",
        "%%background --name quick --label quick\n1\n",
        "quick.wait(60)\nimport jupyter_tasks",
        "ended = jupyter_tasks.wait_for_background(timeout=1e-9)\n"
        "print([t.status for t in ended])"])
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", kernel_manager_class=IpcKernelManager,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert "['succeeded']" in _texts(nb), _texts(nb)


def test_under_nbconvert_a_last_cell_waits_for_the_background_work(
        tmp_path: Path, db_path: Path) -> None:
    # papermill and nbconvert shut the kernel down after the last cell; the documented
    # last cell keeps it until the background work ended, and the card's text says how
    import nbformat
    from nbclient import NotebookClient

    path = write_notebook(tmp_path / "nbconvert.ipynb", [
        "%load_ext jupyter_tasks", WORK,
        "import jupyter_tasks\njupyter_tasks.wait_for_background();"])
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", kernel_manager_class=IpcKernelManager,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = _texts(nb)
    assert "TaskCard('slow-work', succeeded, id=" in text, text
    assert "background output" in text, text
    # and what its last line gave, as the card shows it (before: the saved notebook
    # had the cell's output but not its value)
    assert "\nresult: 42" in text, text
    conn = sqlite3.connect(db_path)
    try:
        rows = conn.execute("SELECT label, status FROM tasks WHERE kind = 'cell'").fetchall()
    finally:
        conn.close()
    assert rows == [("slow-work", "succeeded")], rows


@pytest.mark.parametrize(("background", "fails"), [
    ("%%background --label doomed\n1 / 0\n", True),
    ("%%background --label stopped --name stopped\nimport time\ntime.sleep(60)\n", False),
])
def test_under_nbconvert_the_last_cells_wait_fails_for_a_failed_background_cell(
        tmp_path: Path, background: str, fails: bool) -> None:
    # a papermill or nbconvert run is "failed" only when a cell raises: before, the
    # documented last cell returned the failed task's end and the run passed, the
    # failure seen only by someone who opened the notebook (a notebook job failed)
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    cells = ["%load_ext jupyter_tasks", background]
    if not fails:  # one the notebook cancels itself is no failure, as in a notebook job
        cells.append("stopped.cancel()")
    cells.append("import jupyter_tasks\njupyter_tasks.wait_for_background();")
    path = write_notebook(tmp_path / "checked.ipynb", cells)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            kernel_manager_class=IpcKernelManager,
                            resources={"metadata": {"path": str(tmp_path)}})
    if not fails:
        client.execute()
        assert "cancelled" in _texts(nb), _texts(nb)
        return
    with pytest.raises(CellExecutionError) as raised:
        client.execute()
    said = str(raised.value)
    assert "BackgroundTaskFailed" in said and "'doomed'" in said, said
    assert "ZeroDivisionError: division by zero" in said, said
    assert "TaskCard('doomed', failed, id=" in _texts(nb), _texts(nb)
