"""Notebook jobs: run a notebook headless with nbclient in a fresh kernel.

* The path in ``spec["notebook"]`` resolves under ``spec["root_dir"]`` (the
  server's root; the current directory when absent) and must stay inside it.
* ``spec["parameters"]`` become a new code cell (tagged ``injected-parameters``)
  right after the cell tagged ``parameters`` (papermill's convention), or at the
  top when no cell has that tag: one ``name = repr(value)`` line per parameter.
* Progress is code cells done / code cells, with the running cell's first line
  as the message; every output is written to the task log as it arrives.
* The executed notebook is kept as the artifact ``<notebook name>.ipynb``, also
  when a cell fails (the task error is then ``CellExecutionError`` with the
  cell's ``ename: evalue`` and its traceback), times out or is cancelled.
* The kernel runs in its own process group and is killed when the job ends for
  any reason, cancel and timeout included.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Mapping
from typing import Any

import psutil

from ..exceptions import InvalidRequest
from ..runners import ProcessUsage, _announce, _watch_memory, die_with_parent, group_record
from ._util import run_to_end

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
INJECTED_TAG = "injected-parameters"
PARAMETERS_TAG = "parameters"
STARTUP_TIMEOUT = 60


class CellExecutionError(Exception):
    """A notebook cell raised: ``ename: evalue`` of the cell, its traceback as a note."""

    def __init__(self, ename: str, evalue: str, cell_index: int, traceback_text: str,
                 source: str = "") -> None:
        super().__init__(f"{ename}: {evalue} (cell {cell_index})")
        self.ename = ename
        self.evalue = evalue
        self.cell_index = cell_index
        self.traceback_text = traceback_text
        self.source = source
        # the task error's traceback is formatted from this exception; the note
        # carries what actually matters, the traceback inside the kernel
        self.add_note(f"In cell {cell_index}:\n{source}\n\n{traceback_text}")


class NotebookJobError(Exception):
    """A notebook job could not run (missing file, bad path, bad parameters, dead kernel)."""


# ------------------------------------------------------------------- validation


def resolve_notebook_path(notebook: str, root_dir: str | os.PathLike[str] | None = None) -> str:
    """The notebook's real path under ``root_dir``; ``InvalidRequest`` if it leaves the root.

    Relative paths resolve under the root; absolute paths must already be
    inside it. Symlinks are resolved before the check.
    """
    if not isinstance(notebook, str) or not notebook or "\0" in notebook:
        raise InvalidRequest("notebook must be a non-empty path",
                             errors=[{"field": "notebook", "message": "must be a path"}])
    root = os.path.realpath(os.fspath(root_dir) if root_dir else os.getcwd())
    path = os.path.realpath(os.path.join(root, notebook))
    if path != root and not path.startswith(root + os.sep):
        raise InvalidRequest(
            f"notebook {notebook!r} is outside the root folder {root}",
            errors=[{"field": "notebook", "message": "must stay inside the root folder"}])
    return path


def validate_notebook_spec(spec: Mapping[str, Any], *, must_exist: bool = True) -> str:
    """Check a notebook spec before queueing it (the server can call this at submit).

    Returns the resolved path; raises ``InvalidRequest`` for a path outside the
    root, a missing file, or parameter names that are not Python identifiers.
    """
    path = resolve_notebook_path(spec.get("notebook"), spec.get("root_dir"))
    if must_exist and not os.path.isfile(path):
        raise InvalidRequest(f"notebook {spec.get('notebook')!r} does not exist",
                             errors=[{"field": "notebook", "message": "no such file"}])
    parameters = spec.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise InvalidRequest("parameters must be an object",
                             errors=[{"field": "parameters", "message": "must be an object"}])
    bad = [k for k in parameters if not (isinstance(k, str) and k.isidentifier())]
    if bad:
        raise InvalidRequest(
            f"parameter names must be Python identifiers: {bad}",
            errors=[{"field": f"parameters.{k}", "message": "not a Python identifier"}
                    for k in bad])
    return path


# ------------------------------------------------------------ parameter cells


def parameters_source(parameters: Mapping[str, Any]) -> str:
    """``name = repr(value)`` lines for the injected cell."""
    lines = ["# Parameters"]
    lines += [f"{name} = {value!r}" for name, value in parameters.items()]
    return "\n".join(lines)


def inject_parameters(nb: Any, parameters: Mapping[str, Any]) -> int | None:
    """Insert the parameters cell after the ``parameters``-tagged cell (else at the top).

    A previously injected cell (the notebook is the output of an earlier run)
    is replaced. Returns the new cell's index, or None without parameters.
    """
    import nbformat

    if not parameters:
        return None
    nb.cells = [c for c in nb.cells
                if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    position = 0
    for i, cell in enumerate(nb.cells):
        if PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            position = i + 1
            break
    cell = nbformat.v4.new_code_cell(parameters_source(parameters),
                                     metadata={"tags": [INJECTED_TAG]})
    nb.cells.insert(position, cell)
    return position


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""


def _output_text(msg: Mapping[str, Any]) -> tuple[str, str] | None:
    """(stream, text) to log for one iopub message, or None."""
    kind = msg.get("msg_type") or msg.get("header", {}).get("msg_type")
    content = msg.get("content", {})
    if kind == "stream":
        return content.get("name", "stdout"), content.get("text", "")
    if kind == "error":
        tb = ANSI.sub("", "\n".join(content.get("traceback") or []))
        return "stderr", (tb or f"{content.get('ename')}: {content.get('evalue')}") + "\n"
    if kind in ("execute_result", "display_data"):
        text = content.get("data", {}).get("text/plain")
        if text:
            return "stdout", text if text.endswith("\n") else text + "\n"
    return None


# -------------------------------------------------------------------- executor


def _job_client_class() -> type:
    from nbclient import NotebookClient

    class JobNotebookClient(NotebookClient):
        """nbclient's client with every output also handed to ``on_output``."""

        def __init__(self, *args: Any, on_output: Any = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._on_output = on_output

        def output(self, outs: Any, msg: Any, display_id: Any, cell_index: int) -> Any:
            if self._on_output is not None:
                with contextlib.suppress(Exception):
                    self._on_output(msg, cell_index)
            return super().output(outs, msg, display_id, cell_index)

    return JobNotebookClient


def _kill_tree(pid: int | None) -> None:
    """SIGKILL a kernel's process group and any descendants left over."""
    if pid is None:
        return
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return
    with contextlib.suppress(OSError):
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(procs, timeout=5)


async def exec_notebook(task: Any, ctx: Any, running: Any, *,
                        notebook_json: str | None = None,
                        work_dir: str | None = None) -> dict[str, Any]:
    """Executor for ``kind="notebook"``: run the notebook, keep the executed copy.

    ``notebook_json`` (the notebook's text) and ``work_dir`` let the Dask
    backend run a notebook on a machine where the file is not present.
    """
    import nbformat

    spec = task.spec or {}
    parameters = spec.get("parameters") or {}
    if notebook_json is None:
        path = validate_notebook_spec(spec)
        with open(path, encoding="utf-8") as f:
            nb = nbformat.read(f, as_version=4)
        cwd = work_dir or os.path.dirname(path)
    else:
        validate_notebook_spec({**spec, "root_dir": None, "notebook": "x.ipynb"},
                               must_exist=False)
        nb = nbformat.reads(notebook_json, as_version=4)
        path = spec["notebook"]
        cwd = work_dir or os.getcwd()
    name = os.path.basename(path)
    artifact_name = name if name.endswith(".ipynb") else f"{name}.ipynb"
    inject_parameters(nb, parameters)
    kernel_name = spec.get("kernel_name") or \
        nb.metadata.get("kernelspec", {}).get("name") or "python3"
    code_cells = [i for i, c in enumerate(nb.cells)
                  if c.cell_type == "code" and c.source.strip()]
    total = len(code_cells)
    done = 0
    ctx.progress(0, total, "starting kernel")

    def on_output(msg: Mapping[str, Any], cell_index: int) -> None:
        found = _output_text(msg)
        if found:
            ctx.write(found[1], found[0])

    def on_cell_start(cell: Any, cell_index: int) -> None:
        if cell.cell_type == "code" and cell.source.strip():
            ctx.progress(done, total, _first_line(cell.source))

    client_class = _job_client_class()
    client = client_class(
        nb, kernel_name=kernel_name, timeout=None, startup_timeout=STARTUP_TIMEOUT,
        shutdown_kernel="immediate", resources={"metadata": {"path": cwd}},
        on_output=on_output, on_cell_start=on_cell_start,
    )
    usage: ProcessUsage = running.process
    kernel_pid: int | None = None
    recorded: int | None = None  # the kernel's process group, once in the task's row
    monitor: asyncio.Future[Any] | None = None
    failure: BaseException | None = None
    current = -1
    execute: asyncio.Future[Any] | None = None
    try:
        # kernel set-up by hand: nbclient's async_execute() would install and then
        # remove SIGINT/SIGTERM handlers on our loop (the worker's or the server's)
        client.reset_execution_trackers()
        client.km = client.create_kernel_manager()
        # the kernel dies with the thread that started it (Linux), and jupyter_client
        # starts it in a session of its own: its group is recorded for the reaper
        preexec = die_with_parent()
        await client.async_start_new_kernel(
            cwd=cwd, **({"preexec_fn": preexec} if preexec is not None else {}))
        kernel_pid = _kernel_pid(client.km)
        if kernel_pid is not None and usage.on_group is not None:
            record = group_record(kernel_pid)
            if record["pgid"] == kernel_pid:  # never a group the kernel shares with us
                recorded = kernel_pid
                await _announce(usage.on_group, kernel_pid, record)
        if kernel_pid is not None:
            monitor = asyncio.ensure_future(
                _watch_memory(kernel_pid, usage, getattr(task, "memory_limit_mb", None)))
        await client.async_start_new_kernel_client()
        info_id = await _maybe_await(client.kc.kernel_info())
        info = await client.async_wait_for_reply(info_id)
        if info is not None and "language_info" in info["content"]:
            nb.metadata["language_info"] = info["content"]["language_info"]
        for index, cell in enumerate(nb.cells):
            current = index
            execute = asyncio.ensure_future(client.async_execute_cell(
                cell, index, execution_count=client.code_cells_executed + 1))
            waiters: list[asyncio.Future[Any]] = [execute] + ([monitor] if monitor else [])
            finished, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if execute not in finished:  # the memory watcher raised
                monitor.result()  # type: ignore[union-attr]
            execute.result()
            if index in code_cells:
                done += 1
                ctx.progress(done, total, _first_line(cell.source))
        client.set_widgets_metadata()
        ctx.progress(total, total, "done")
    except BaseException as exc:
        failure = exc
        if _is_cell_error(exc):
            raise _translate(exc, nb, current) from None
        raise
    finally:
        if monitor is not None:
            monitor.cancel()
        # the kernel is gone and the executed notebook kept whatever happened
        try:
            await run_to_end(_finish(client, kernel_pid, execute, ctx, artifact_name, nb,
                                     raise_errors=failure is None))
        finally:
            if recorded is not None and usage.on_group is not None:
                await run_to_end(_announce(usage.on_group, recorded, None))
    return {"notebook": artifact_name, "cells": total, "executed": done,
            "parameters": dict(parameters), "kernel_name": kernel_name}


async def _finish(client: Any, kernel_pid: int | None, execute: asyncio.Future[Any] | None,
                  ctx: Any, artifact_name: str, nb: Any, *, raise_errors: bool) -> None:
    import nbformat

    await _shutdown(client, kernel_pid)
    if execute is not None and not execute.done():
        # the cell's pollers notice the dead kernel; collect what they raise
        execute.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(execute, 5)
    if execute is not None and execute.done() and not execute.cancelled():
        execute.exception()  # retrieved: no "exception was never retrieved" noise
    data = nbformat.writes(nb).encode()
    try:
        await ctx.artifact(artifact_name, data, "application/x-ipynb+json")
    except Exception:
        if raise_errors:
            raise


def _is_cell_error(exc: BaseException) -> bool:
    from nbclient.exceptions import CellExecutionError as NbCellError

    return isinstance(exc, NbCellError)


def _translate(exc: BaseException, nb: Any, index: int) -> CellExecutionError:
    """nbclient's CellExecutionError as ours (ename/evalue/traceback of the failing cell)."""
    ename = getattr(exc, "ename", None) or "Error"
    evalue = getattr(exc, "evalue", None) or ""
    tb = ANSI.sub("", getattr(exc, "traceback", None) or str(exc))
    source = ""
    if 0 <= index < len(nb.cells):
        cell = nb.cells[index]
        source = cell.source
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                tb = ANSI.sub("", "\n".join(out.get("traceback") or [])) or tb
    return CellExecutionError(ename, evalue, index, tb, source)


def _kernel_pid(km: Any) -> int | None:
    provisioner = getattr(km, "provisioner", None)
    process = getattr(provisioner, "process", None)
    return getattr(process, "pid", None)


async def _maybe_await(value: Any) -> Any:
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        return await value
    return value


async def _shutdown(client: Any, kernel_pid: int | None) -> None:
    """Kill the kernel now (no graceful wait) and release its channels and files."""
    km = client.km
    try:
        if km is not None and await _maybe_await(km.is_alive()):
            await asyncio.wait_for(_maybe_await(km.shutdown_kernel(now=True)), 10)
    except Exception:
        pass
    finally:
        with contextlib.suppress(Exception):
            if km is not None:
                await _maybe_await(km.cleanup_resources())
        with contextlib.suppress(Exception):
            if client.kc is not None:
                await _maybe_await(client.kc.stop_channels())
        client.kc = None
        client.km = None
        # whatever nbclient/jupyter_client left behind does not outlive the job
        await asyncio.to_thread(_kill_tree, kernel_pid)
