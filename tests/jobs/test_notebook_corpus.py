"""The notebook corpus, run through jupyter-tasks and through papermill (the oracle).

Each notebook of ``tests/jobs/corpus/`` runs as a notebook job (a real manager,
store and kernel) and through ``papermill.execute_notebook`` side by side; the
two must agree on the outcome, the injected parameters, the cells' statuses,
the error markers and the warnings, and our output must be a valid notebook
that papermill's own readers take. The table (case | papermill | jupyter-tasks)
is printed at the end and written to ``test-artifacts/notebook-corpus.md``.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest
from nbclient.exceptions import CellTimeoutError
from papermill.exceptions import PapermillExecutionError
from papermill.iorw import load_notebook_node

from jupyter_tasks import TaskManager
from jupyter_tasks.jobs.notebook_record import ERROR_MARKER_TAG, INJECTED_TAG
from tests.kernels import IpcKernelManager

CORPUS = Path(__file__).parent / "corpus"
TABLE = Path(__file__).parents[2] / "test-artifacts" / "notebook-corpus.md"
ROWS: dict[str, tuple[str, str]] = {}

ALL_TYPES = {"i": 3, "f": 2.5, "s": "it's \"quoted\"\n\\", "b": False, "n": None,
             "l": [1, "two", None, 3.5], "d": {"k": [1, 2], "nested": {"x": True}}}


@dataclass
class Case:
    name: str
    notebook: str
    parameters: dict[str, Any] = field(default_factory=dict)
    status: str = "succeeded"
    timeout: float | None = None
    # the failing cell as the user sees it: index in the input file, In [n], a source line
    failing: tuple[int, int, str] | None = None
    warns: tuple[str, ...] = ()
    # when the run is cut short outside a cell (kernel missing, timeout) papermill's
    # clean-up marks every cell 'completed'; ours say which ran: these statuses instead
    statuses: list[str] | None = None


CASES = [
    *[Case(f"nbformat 4.{m}", f"nbformat_4_{m}.ipynb", {"alpha": 5, "label": f"v4.{m}"})
      for m in (0, 1, 2, 4, 5)],
    Case("parameters of every JSON type", "json_types.ipynb", ALL_TYPES),
    Case("no parameters cell", "no_parameters_cell.ipynb", {"alpha": 2},
         warns=("no cell tagged 'parameters'",)),
    Case("unknown parameter", "unknown_parameter.ipynb", {"alpha": 2, "beta": 3},
         warns=("'beta' is not defined",)),
    Case("broken cell (stale error markers)", "broken_cell.ipynb", {"divisor": 0}, "failed",
         failing=(5, 4, "y = x / divisor")),
    Case("sys.exit()", "sys_exit.ipynb"),
    Case("sys.exit(0)", "sys_exit_0.ipynb"),
    Case("sys.exit(1)", "sys_exit_1.ipynb", status="failed", failing=(1, 2, "sys.exit(1)")),
    Case("raise SystemExit", "raise_systemexit.ipynb"),
    Case("missing kernel", "missing_kernel.ipynb", status="failed", statuses=["pending"]),
    # (our timeout bounds the whole run, kernel start included, papermill's each cell: 15 s
    # leaves a kernel start on a loaded machine room to reach the long cell first)
    Case("long run, timed out", "long_run.ipynb", {"seconds": 60}, "timeout", timeout=15,
         statuses=["completed", "completed", "completed", "failed", "pending"]),
]


@pytest.fixture(scope="module", autouse=True)
def corpus_table(request: pytest.FixtureRequest):
    yield
    if not ROWS:
        return
    lines = ["| case | papermill 2.7 | jupyter-tasks |", "|---|---|---|"]
    lines += [f"| {case} | {pm} | {ours} |" for case, (pm, ours) in ROWS.items()]
    TABLE.parent.mkdir(exist_ok=True)
    TABLE.write_text("\n".join(lines) + "\n")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # past output capture, onto the terminal
            reporter.write_line("")
            for line in lines:
                reporter.write_line(line)


@dataclass
class PapermillRun:
    status: str
    nb: Any
    error: BaseException | None
    warnings: list[str]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


PEER_START_TIMEOUT = 300


def run_papermill(source: Path, output: Path, case: Case) -> PapermillRun:
    collect = _Collect()
    logger = logging.getLogger("papermill")
    logger.addHandler(collect)
    error: BaseException | None = None
    try:
        # the peer's kernel start gets a deadline of its own: its default of 60 s ran
        # out in a CI run on a loaded machine ("Kernel didn't respond in 60 seconds")
        papermill.execute_notebook(str(source), str(output), parameters=case.parameters,
                                   progress_bar=False, execution_timeout=case.timeout,
                                   cwd=str(source.parent), start_timeout=PEER_START_TIMEOUT,
                                   kernel_manager_class=IpcKernelManager)
        status = "succeeded"
    except CellTimeoutError as exc:
        status, error = "timeout", exc
    except Exception as exc:  # PapermillExecutionError, NoSuchKernel
        status, error = "failed", exc
    finally:
        logger.removeHandler(collect)
    return PapermillRun(status, nbformat.read(output, as_version=4), error, collect.messages)


def injected_values(nb: Any) -> dict[str, Any] | None:
    cells = [c for c in nb.cells if INJECTED_TAG in c.metadata.get("tags", [])]
    if not cells:
        return None
    namespace: dict[str, Any] = {}
    exec(cells[0].source, {}, namespace)  # the runners' own parameter cells
    return namespace


def cell_statuses(nb: Any) -> list[tuple[str, str | None]]:
    return [(c.cell_type, c.metadata.get("papermill", {}).get("status")) for c in nb.cells
            if ERROR_MARKER_TAG not in c.metadata.get("tags", [])]


def markers(nb: Any) -> list[tuple[int, str]]:
    return [(i, c.source) for i, c in enumerate(nb.cells)
            if ERROR_MARKER_TAG in c.metadata.get("tags", [])]


@pytest.mark.parametrize("case", CASES, ids=[c.notebook for c in CASES])
async def test_corpus_notebook_like_papermill(manager: TaskManager, tmp_path: Path,
                                              case: Case) -> None:
    root = tmp_path / "root"
    root.mkdir()
    source = root / case.notebook
    shutil.copy(CORPUS / case.notebook, source)
    pm_out = tmp_path / f"papermill-{case.notebook}"

    task = await manager.submit_spec(
        {"notebook": case.notebook, "parameters": case.parameters, "root_dir": str(root)},
        max_retries=0, timeout=case.timeout)
    # papermill in a thread meanwhile: it drives its kernel with a loop of its own
    pm, done = await asyncio.gather(asyncio.to_thread(run_papermill, source, pm_out, case),
                                    manager.wait(task.id, timeout=240))
    ROWS[case.name] = (pm.status + (f" ({type(pm.error).__name__})" if pm.error else ""),
                       done.status + (f" ({done.error['type']})" if done.error else ""))

    assert pm.status == case.status, pm.error
    assert done.status == case.status, done.error

    art = await manager.store.get_artifact(task.id, case.notebook)
    assert art is not None, "the executed notebook is kept whatever the outcome"
    ours_path = manager.store.artifact_path(art)
    ours = nbformat.read(ours_path, as_version=4)
    nbformat.validate(ours)  # raises on an invalid notebook
    assert (ours.nbformat, ours.nbformat_minor) == (4, 5)
    assert all("id" in c for c in ours.cells)

    # the same parameters were injected, with their types
    assert injected_values(ours) == injected_values(pm.nb)
    if case.parameters:
        assert injected_values(ours) == case.parameters
    # papermill's readers take our output and find what papermill writes
    read = load_notebook_node(str(ours_path))
    assert read.metadata.papermill["parameters"] == case.parameters
    assert set(pm.nb.metadata.papermill) <= set(ours.metadata.papermill)
    assert ours.metadata.papermill["start_time"] and ours.metadata.papermill["end_time"]
    assert isinstance(ours.metadata.papermill["duration"], float)
    assert papermill.inspect_notebook(str(ours_path)) == \
        papermill.inspect_notebook(str(pm_out))
    if case.statuses is None:
        assert cell_statuses(ours) == cell_statuses(pm.nb)
    else:
        assert [s for _, s in cell_statuses(ours)] == case.statuses
    for cell in ours.cells:
        if cell.metadata.get("papermill", {}).get("status") in ("completed", "failed"):
            assert {"start_time", "end_time", "duration", "exception"} <= \
                set(cell.metadata.papermill)
    # error markers where papermill puts them, stale ones gone
    assert markers(ours) == markers(pm.nb)

    logs = "".join(e.text for e in await manager.store.get_logs(task.id))
    if case.failing is not None:
        index, count, line = case.failing
        assert isinstance(pm.error, PapermillExecutionError)
        assert pm.error.exec_count == count
        message = done.error["message"]
        assert f"cell {index + 1} of {case.notebook}" in message, message
        assert f"In [{count}]" in message and line in message, message
    if case.warns:
        assert pm.warnings, "papermill warns here too"
        warnings = (done.result or {}).get("warnings") or []
        for expected in case.warns:
            assert any(expected in w for w in warnings), warnings
            assert expected in logs
    else:
        assert not (done.result or {}).get("warnings")
    if case.status == "succeeded" and case.notebook.startswith(("sys_exit", "raise")):
        assert "after the exit" not in logs and "stopping" in logs
        assert done.result["stopped_early"]["execution_count"] == 2
