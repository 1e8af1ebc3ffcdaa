"""A cell task records the notebook cell that submitted it (issue 13, "a card that outlives
the tab"): JupyterLab sends the cell's nbformat id as ``metadata.cellId`` of the execute
request, and the task's ``origin`` keeps it beside the kernel and notebook path, so a
reopened notebook can put the task's view back under that cell."""

from __future__ import annotations

from pathlib import Path

from tests.waiting import eventually_sync

from .conftest import read_store, task_of, with_manager
from .harness import Kernel


def _execute_in_cell(kernel: Kernel, code: str, cell_id: str) -> None:
    """An execute request as JupyterLab sends it: the cell id in the metadata."""
    msg = kernel.client.session.msg("execute_request", {
        "code": code, "silent": False, "store_history": True, "user_expressions": {},
        "allow_stdin": False, "stop_on_error": True})
    msg["metadata"]["cellId"] = cell_id
    kernel.client.shell_channel.send(msg)
    msg_id = msg["header"]["msg_id"]
    kernel.wait_for(lambda: kernel.idle(msg_id), 60, "execution in a cell")
    errors = [m for m in kernel.outputs_of(msg_id) if m["msg_type"] == "error"]
    assert not errors, errors[0]["content"]


def test_background_and_blocking_cells_record_their_cell_id(kernel: Kernel,
                                                            db_path: Path) -> None:
    _execute_in_cell(kernel, "%%background --name h --no-card\n'done'\n",
                     "5f0c8d1e-cell-one")
    task = task_of(db_path, kernel.value("h.id"))
    assert task.origin["cell_id"] == "5f0c8d1e-cell-one"
    assert task.origin["type"] == "kernel" and task.origin["kernel_id"]

    # without a cell id (a plain client, the console) origin stays the kernel's own
    kernel.execute("%%background --name g --no-card\n1\n")
    assert "cell_id" not in task_of(db_path, kernel.value("g.id")).origin


def test_run_blocking_records_its_cell_id(kernel: Kernel, db_path: Path) -> None:
    _execute_in_cell(kernel, "%run_blocking 40 + 2", "blocking-cell")
    tasks = read_store(db_path, lambda store: store.list_tasks(kind="cell"))
    assert [t.origin.get("cell_id") for t in tasks] == ["blocking-cell"]


def test_a_rerun_from_the_server_keeps_the_cell_it_belongs_to(kernel: Kernel,
                                                              db_path: Path) -> None:
    """The panel's Rerun goes through REST, whose requests carry a REST origin; a cell
    task's rerun still runs in that cell's kernel, so its view belongs under that cell
    and must be restorable there (it lost ``cell_id`` and could not be)."""
    _execute_in_cell(kernel, "%%background --name h --no-card\n'again'\n", "cell-to-rerun")
    task_id = kernel.value("h.id")
    eventually_sync(lambda: task_of(db_path, task_id).status == "succeeded", what="first run")
    rest_origin = {"type": "rest", "user_agent": "panel"}
    new = with_manager(db_path, lambda m: m.rerun(task_id, origin=rest_origin))
    assert new.origin["cell_id"] == "cell-to-rerun", new.origin
    assert new.origin["kernel_id"] == task_of(db_path, task_id).origin["kernel_id"]
    eventually_sync(lambda: task_of(db_path, new.id).status == "succeeded", what="rerun")
