"""The example notebooks run headless with nbclient and pass."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.kernels import IpcKernelManager

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.ipynb")))
def test_example_notebook_runs(name: str, db_path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(EXAMPLES / name, as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            kernel_manager_class=IpcKernelManager,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.get("output_type") == "error"]
    assert not errors
    assert db_path.exists()  # the kernel used this test's database ($JUPYTER_TASKS_DB)


def test_a_saved_notebook_keeps_a_waiting_commands_output_and_end(
        db_path: Path, tmp_path: Path) -> None:
    # before: the executed notebook (nbconvert, a notebook job's copy) held only
    # "TaskCard('echo …', running, …)", the text of the card when it was displayed: the
    # command's output lived in the widget state alone, unlike `!cmd`
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("%load_ext jupyter_tasks"),
        nbformat.v4.new_code_cell("%run_subprocess sh -c 'echo hello-from-sub; echo line2'"),
        nbformat.v4.new_code_cell("def f():\n    %run_subprocess echo from-a-function\nf()"),
    ])
    NotebookClient(nb, timeout=120, kernel_name="python3", kernel_manager_class=IpcKernelManager,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    for cell, said in ((nb.cells[1], "hello-from-sub\nline2"), (nb.cells[2], "from-a-function")):
        texts = [o["data"]["text/plain"] for o in cell.outputs
                 if o.get("output_type") == "display_data"]
        assert len(texts) == 1, cell.outputs
        assert ", succeeded, id=" in texts[0] and texts[0].endswith(said), texts[0]
