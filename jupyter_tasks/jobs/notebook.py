"""Notebook jobs: run a notebook headless with nbclient in a fresh kernel, as papermill does.

The spec (``POST /api/tasks`` body, ``TaskManager.submit_spec``):

* ``notebook``: a path under ``root_dir`` (the server's root; the current
  directory when absent) that must stay inside it.
* ``parameters``: an object; each becomes a ``name = repr(value)`` line of a new
  code cell (tagged ``injected-parameters``) right after the cell tagged
  ``parameters`` (papermill's convention), or at the top when no cell has that
  tag. A missing ``parameters`` cell, or a name it does not assign, is a warning
  (papermill warns too): a ``warning:`` line in the task log and the
  ``warnings`` list of the task's result.
* ``kernel_name``: the kernel to use instead of the notebook's kernelspec.
* ``output_path``: also write the executed notebook to this path inside the
  root (papermill's output argument), relative to the root; ``{id}`` (task
  id), ``{date}`` (the run's date, ISO; ``{date:%Y%m%d}`` works) and parameter
  names (``{alpha}``) are filled in. A path leaving the root, a folder or an
  unknown field is refused at submit (``InvalidRequest``: 422 over REST).
* ``export_html``: ``true`` also exports the executed notebook as HTML
  (nbconvert): the artifact ``<name>.html``, and beside ``output_path`` when given.

The run:

* The input is upgraded to the current nbformat minor (4.5, cell ids) and the
  output validated before it is saved; it carries papermill's metadata
  (``metadata.papermill`` with the parameters, times and paths; per cell
  start/end/duration/status) so papermill and scrapbook readers work on it
  (see ``notebook_record``).
* Progress is code cells done / code cells, with the running cell's first line
  as the message; every output is written to the task log as it arrives.
* ``sys.exit()``, ``sys.exit(0)`` and ``raise SystemExit`` end the run early as
  succeeded (the remaining cells do not run; ``result.stopped_early`` says
  where); any other exit value fails it, as papermill decides.
* A failing cell fails the task with ``CellExecutionError``: ``ename: evalue``,
  the cell as the user sees it (its place in the input notebook, counted from 1,
  and its ``In [n]``) and a source excerpt; papermill's error markers are put
  in the executed notebook, replacing stale ones from the input.
* The executed notebook is kept as the artifact ``<notebook name>.ipynb`` (and
  written to ``output_path``), also when a cell fails, the job times out or is
  cancelled.
* The kernel runs in its own process group and is killed when the job ends for
  any reason, cancel and timeout included. Its connection file (its ports and
  key: ``jupyter-tasks-kernel-<task id>-<attempt>-XXXX.json`` in the temp folder)
  goes with it; one whose worker was killed mid-run is removed by the reaper that
  settles the attempt (on this host, in its temp folder).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import keyword
import os
import re
import tempfile
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._version import __version__
from ..exceptions import InvalidRequest
from ..kernel.headless import END_OF_RUN_SOURCE, FAILED_ENDS, REPORT_MIME
from ..runners import (
    ProcessUsage,
    announce_group,
    die_with_parent,
    group_record,
    start_group_guard,
    stop_group_guard,
    watch_memory,
)
from . import kernel
from . import notebook_record as record
from ._util import attempt_prefix, keep_own_end, remove_left_in_temp, run_to_end
from .notebook_record import INJECTED_TAG, PARAMETERS_TAG, has_tag, render_output_path

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# what jupyter_client accepts as a kernelspec's name (its folder's name: no path in it)
KERNEL_NAME = re.compile(r"[A-Za-z0-9._-]{1,255}")
KERNEL_NAME_RULE = "a kernel's name: letters, digits, '.', '_' and '-'"


def is_kernel_name(value: Any) -> bool:
    """Whether ``value`` can name a kernelspec (``kernel_name`` of a notebook job)."""
    return isinstance(value, str) and KERNEL_NAME.fullmatch(value) is not None
EXCERPT_LINES = 6
EXCERPT_CHARS = 400
# a notebook file up to this size is parsed at submit, so one that is no notebook is
# refused then (422), not at its run; of a larger one only the outline is checked
MAX_PARSED_NOTEBOOK_BYTES = 8 * 2**20
OUTLINE_BYTES = 4096

__all__ = ["INJECTED_TAG", "PARAMETERS_TAG", "CellExecutionError", "NotebookJobError",
           "exec_notebook", "inject_parameters", "parameters_source", "resolve_notebook_path",
           "validate_notebook_spec"]


def excerpt(source: str) -> str:
    """The first lines of a cell's source, indented, for an error message."""
    lines = source.strip("\n").splitlines()
    text = "\n".join(lines[:EXCERPT_LINES])[:EXCERPT_CHARS]
    if len(lines) > EXCERPT_LINES or len(text) == EXCERPT_CHARS:
        text += " ..."
    return "\n".join("    " + line for line in text.splitlines())


class CellExecutionError(Exception):
    """A notebook cell raised: ``ename: evalue``, the cell as the user sees it, its source.

    ``cell_index`` is the cell's 0-based place in the input notebook (None for
    the injected parameters cell), ``execution_count`` its ``In [n]`` in the
    executed notebook; the message counts cells from 1, as a reader does.
    """

    def __init__(self, ename: str, evalue: str, cell_index: int | None, traceback_text: str,
                 source: str = "", execution_count: int | None = None,
                 notebook: str = "") -> None:
        where = (f"cell {cell_index + 1} of {notebook or 'the notebook'}"
                 if cell_index is not None else "the injected parameters cell")
        super().__init__(f"{ename}: {evalue} (in {where}, In [{execution_count}]):\n"
                         f"{excerpt(source)}")
        self.ename = ename
        self.evalue = evalue
        self.cell_index = cell_index
        self.execution_count = execution_count
        self.traceback_text = traceback_text
        self.source = source
        # the task error's traceback is formatted from this exception; the note
        # carries what actually matters, the traceback inside the kernel
        self.add_note(f"In [{execution_count}] ({where}):\n{source}\n\n{traceback_text}")


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


def refuse_urls(spec: Mapping[str, Any]) -> None:
    """``InvalidRequest`` for a ``notebook`` or ``output_path`` that is a URL: taken as a
    path, papermill's ``s3://b/out.ipynb`` was written to a local folder named ``s3:``."""
    for field_name in ("notebook", "output_path"):
        value = spec.get(field_name)
        if isinstance(value, str) and record.URL.match(value):
            message = ("(a URL) is not supported: notebook jobs read and write files "
                       "inside the root; give a file path")
            raise InvalidRequest(f"{field_name} {value!r} {message}",
                                 errors=[{"field": field_name, "message": message}])


def validate_notebook_spec(spec: Mapping[str, Any], *, must_exist: bool = True,
                           read: bool = True) -> str:
    """Check a notebook spec before queueing it (the server can call this at submit).

    Returns the resolved path; raises ``InvalidRequest`` for a path outside the
    root, a missing file, parameter names that are not Python identifiers, an
    ``output_path`` that leaves the root, names an unknown field, a folder or the
    input notebook itself, or an ``export_html`` that is not a boolean; a URL for either.
    """
    refuse_urls(spec)
    path = resolve_notebook_path(spec.get("notebook"), spec.get("root_dir"))
    if must_exist and not os.path.isfile(path):
        raise InvalidRequest(f"notebook {spec.get('notebook')!r} does not exist",
                             errors=[{"field": "notebook", "message": "no such file"}])
    if must_exist and read:  # else the caller reads it (NotebookKind.check_files)
        check_notebook_file(path, spec.get("notebook"))
    parameters = spec.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise InvalidRequest("parameters must be an object",
                             errors=[{"field": "parameters", "message": "must be an object"}])
    # a keyword ("class = 1") would fail in the injected cell, after the kernel started
    bad = [k for k in parameters
           if not (isinstance(k, str) and k.isidentifier() and not keyword.iskeyword(k))]
    if bad:
        raise InvalidRequest(
            f"parameter names must be Python identifiers, not keywords: {bad}",
            errors=[{"field": f"parameters.{k}",
                     "message": "a Python keyword" if isinstance(k, str) and keyword.iskeyword(k)
                     else "not a Python identifier"} for k in bad])
    if spec.get("kernel_name") is not None and not is_kernel_name(spec["kernel_name"]):
        raise InvalidRequest(f"kernel_name must be {KERNEL_NAME_RULE}",
                             errors=[{"field": "kernel_name", "message": KERNEL_NAME_RULE}])
    if spec.get("export_html") is not None and not isinstance(spec["export_html"], bool):
        raise InvalidRequest("export_html must be true or false",
                             errors=[{"field": "export_html", "message": "must be a boolean"}])
    if spec.get("output_path") is not None:
        # the id is not known yet: a stand-in of the same characters checks the rest
        render_output_path(spec["output_path"], root_dir=spec.get("root_dir") or os.getcwd(),
                           task_id="0" * 32, date=datetime.date.today(), parameters=parameters,
                           input_path=path)
    return path


def notebook_problem(text: str | bytes) -> str | None:
    """Why ``text`` cannot be a notebook file, or None: a notebook is a JSON object with
    an integer ``nbformat`` (and, from version 4, a list of ``cells``)."""
    try:
        nb = json.loads(text)
    except ValueError as exc:  # a UnicodeDecodeError too
        return f"it is not JSON ({exc})"
    if not isinstance(nb, dict):
        return f"it holds a JSON {type(nb).__name__}, where a notebook is an object"
    version = nb.get("nbformat")
    if not isinstance(version, int) or isinstance(version, bool):
        return "it has no integer nbformat version"
    if version >= 4 and not isinstance(nb.get("cells"), list):
        return "it has no list of cells"
    return None


def check_notebook_file(path: str, name: Any) -> None:
    """``InvalidRequest`` for a file that cannot be read or is no notebook.

    A file past ``MAX_PARSED_NOTEBOOK_BYTES`` is not parsed (the parse holds the GIL,
    and so every thread of the server: 42 ms for 28 MiB): only its outline is
    checked, an object from its first byte to its last; its run parses it.
    """
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size > MAX_PARSED_NOTEBOOK_BYTES:
                head = f.read(OUTLINE_BYTES)
                f.seek(-OUTLINE_BYTES, os.SEEK_END)
                tail = f.read()
                text = None
            else:
                text = f.read()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise InvalidRequest(f"notebook {name!r} cannot be read: {reason}",
                             errors=[{"field": "notebook", "message": reason}]) from None
    if text is None:
        outlined = head.lstrip()[:1] == b"{" and tail.rstrip()[-1:] == b"}"
        problem = None if outlined else "it is not a JSON object from its start to its end"
    else:
        problem = notebook_problem(text)
    if problem is not None:
        raise InvalidRequest(f"notebook {name!r} is not a notebook: {problem}",
                             errors=[{"field": "notebook", "message": problem}])


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
    nb.cells = [c for c in nb.cells if not has_tag(c, INJECTED_TAG)]
    position = 0
    for i, cell in enumerate(nb.cells):
        if has_tag(cell, PARAMETERS_TAG):
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


@dataclass
class _Outputs:
    """Where the executed notebook goes and what the run learned on the way."""

    artifact_name: str
    started: datetime.datetime
    output_path: str | None = None  # real path, when the spec asks for one
    export_html: bool = False
    warnings: list[str] = field(default_factory=list)
    save_failed: bool = False  # a save as it ran failed (said once in the log)


async def exec_notebook(task: Any, ctx: Any, running: Any, *,
                        notebook_json: str | None = None,
                        work_dir: str | None = None,
                        written_by_hub: str | None = None) -> dict[str, Any]:
    """Executor for ``kind="notebook"``: run the notebook, keep the executed copy.

    ``notebook_json`` (the notebook's text) and ``work_dir`` let the Dask
    backend run a notebook on a machine where the file is not present; there the
    hub writes ``output_path``, at ``written_by_hub`` (relative to the root), which
    the notebook's metadata and the result name as a local run's do.
    """
    import nbformat

    spec = task.spec or {}
    parameters = spec.get("parameters") or {}
    started = record.now()
    root_dir = spec.get("root_dir") or os.getcwd()
    if notebook_json is None:
        path = validate_notebook_spec(spec)
        with open(path, encoding="utf-8") as f:
            nb = nbformat.read(f, as_version=4)
        cwd = work_dir or os.path.dirname(path)
    else:
        validate_notebook_spec({**spec, "root_dir": None, "notebook": "x.ipynb",
                                "output_path": None}, must_exist=False)
        nb = nbformat.reads(notebook_json, as_version=4)
        path = spec["notebook"]
        cwd = work_dir or os.getcwd()
    out = _Outputs(artifact_name=notebook_artifact_name(path), started=started,
                   export_html=bool(spec.get("export_html")))
    if spec.get("output_path") and notebook_json is None:
        out.output_path = render_output_path(
            spec["output_path"], root_dir=root_dir, task_id=task.id,
            date=started.astimezone().date(), parameters=parameters, input_path=path)
    # run elsewhere (Dask): the hub writes output_path from the artifacts
    # (write_output_copies), where the server root is

    nb = record.upgrade(nb)
    # the input's cells as the user sees them, to name a failing cell by its place there
    input_cells = list(nb.cells)
    record.remove_error_markers(nb)
    out.warnings += record.parameter_warnings(nb, parameters)
    for warning in out.warnings:
        ctx.log(f"warning: {warning}")
    inject_parameters(nb, parameters)
    shown_output_path = os.path.relpath(out.output_path, os.path.realpath(root_dir)) \
        if out.output_path else written_by_hub
    record.start_notebook(
        nb, parameters=parameters or None, input_path=spec.get("notebook") or path,
        output_path=shown_output_path, version=__version__, started=started)
    kernel_name = spec.get("kernel_name") or \
        nb.metadata.get("kernelspec", {}).get("name") or "python3"
    code_cells = [i for i, c in enumerate(nb.cells)
                  if c.cell_type == "code" and c.source.strip()]
    total = len(code_cells)
    done = 0
    stopped: dict[str, Any] | None = None
    ctx.progress(0, total, "starting kernel")

    hidden_index: int | None = None  # the cell run after the last one, not kept

    def on_output(msg: Mapping[str, Any], cell_index: int) -> None:
        if cell_index == hidden_index:
            return
        found = _output_text(msg)
        if found:
            ctx.write(found[1], found[0])

    def on_cell_start(cell: Any, cell_index: int) -> None:
        # (not the hidden cell: its first line, "try:", said nothing to anyone)
        if cell.cell_type == "code" and cell.source.strip() and cell_index != hidden_index:
            ctx.progress(done, total, _first_line(cell.source))

    client_class = _job_client_class()
    client = client_class(
        nb, kernel_name=kernel_name, timeout=None, startup_timeout=kernel.STARTUP_TIMEOUT,
        shutdown_kernel="immediate", resources={"metadata": {"path": cwd}},
        on_output=on_output, on_cell_start=on_cell_start,
    )
    usage: ProcessUsage = running.process
    # named after the attempt: a reaper of a worker killed mid-run removes it (the
    # kernel's ports and key), as this run's end would have (``remove_lost_kernel_files``)
    connection_file = _new_connection_file(task)
    kernel_pid: int | None = None
    recorded: int | None = None  # the kernel's process group, once in the task's row
    guard: asyncio.subprocess.Process | None = None  # ends that group if we die
    monitor: asyncio.Future[Any] | None = None
    failure: BaseException | None = None
    execute: asyncio.Future[Any] | None = None
    try:
        # kernel set-up by hand: nbclient's async_execute() would install and then
        # remove SIGINT/SIGTERM handlers on our loop (the worker's or the server's)
        client.reset_execution_trackers()

        async def kernel_started(pid: int | None) -> None:
            # jupyter_client starts the kernel in a session of its own: its group is
            # recorded for the reaper, and its memory watched from the start (None:
            # a start given up on, its kernel killed)
            nonlocal kernel_pid, recorded, monitor, guard
            if monitor is not None:
                monitor.cancel()
                monitor = None
            await stop_group_guard(guard)
            guard = None
            if recorded is not None and usage.on_group is not None:
                await announce_group(usage.on_group, recorded, None)
                recorded = None
            kernel_pid = pid
            if pid is None:
                return
            if usage.on_group is not None:
                group = group_record(pid)
                if group["pgid"] == pid:  # never a group the kernel shares with us
                    recorded = pid
                    await announce_group(usage.on_group, pid, group)
                    # the kernel dies with us (below); what its cells started, with this
                    guard = await start_group_guard(pid)
            monitor = asyncio.ensure_future(
                watch_memory(pid, usage, getattr(task, "memory_limit_mb", None)))

        # the kernel dies with the thread that started it (Linux)
        preexec = die_with_parent()
        await kernel.start_kernel(
            client, launch={"cwd": cwd, **({"preexec_fn": preexec} if preexec else {})},
            on_started=kernel_started, log=ctx.log, connection_file=connection_file)
        info_id = await kernel.maybe_await(client.kc.kernel_info())
        info = await client.async_wait_for_reply(info_id)
        if info is not None and "language_info" in info["content"]:
            nb.metadata["language_info"] = info["content"]["language_info"]

        def ends_run() -> bool:
            # a cell that had ended when a stop came: its end is the run's when it ends
            # the run (a failure, a clean exit, the last cell with no background work
            # to wait for); else the stop stops the cells left
            assert execute is not None
            last = index == len(nb.cells) - 1 and not _started_background(nb)
            return (execute.exception() is not None or last) and keep_own_end(running)

        for index, cell in enumerate(nb.cells):
            record.cell_started(cell)
            if index in code_cells and out.output_path:
                # as papermill saves it: the cells done, and this one running since now
                # (a run killed meanwhile shows where it stopped)
                await _save_so_far(out, nb, ctx)
            execute = asyncio.ensure_future(client.async_execute_cell(
                cell, index, execution_count=client.code_cells_executed + 1))
            try:
                await _watched(execute, monitor, ends_run)
            except BaseException as exc:
                # this cell raised or was interrupted (cancel, timeout, memory limit)
                record.cell_failed(nb, cell)
                record.cell_ended(cell)
                if not _is_cell_error(exc):
                    raise
                ename, evalue, tb = _cell_error(exc, cell)
                if record.is_clean_exit(ename, evalue):
                    stopped = {"cell": _input_index(input_cells, cell),
                               "execution_count": cell.get("execution_count"),
                               "exit": evalue or None}
                    ctx.log(f"SystemExit({evalue}) in In [{cell.get('execution_count')}]: "
                            "the run stops here, the remaining cells do not run")
                    break
                error = CellExecutionError(
                    ename, evalue, _input_index(input_cells, cell), tb, cell.source,
                    cell.get("execution_count"), os.path.basename(path))
                record.add_error_markers(nb, index, cell.get("execution_count"))
                raise error from None
            record.cell_ended(cell)
            if index in code_cells:
                done += 1
                ctx.progress(done, total, _first_line(cell.source))
        if _started_background(nb):
            # the kernel goes when the run ends: the work of its background cells
            # ends first (their cards then show their ends), in a cell not kept
            ctx.progress(done, total, "waiting for background cells")
            hidden = nbformat.v4.new_code_cell(END_OF_RUN_SOURCE)
            nb.cells.append(hidden)
            hidden_index = len(nb.cells) - 1
            try:
                execute = asyncio.ensure_future(client.async_execute_cell(
                    hidden, hidden_index, store_history=False))
                await _watched(execute, monitor, lambda: keep_own_end(running))
            except BaseException:
                # stopped in that wait (a cancel, a timeout): the notebook says where, as
                # papermill marks the cell a stop reached, not as a run that succeeded
                _mark_stopped_waiting(nb, hidden)
                raise
            finally:
                if nb.cells and nb.cells[-1] is hidden:
                    nb.cells.pop()
            _raise_for_background(_background_report(hidden), nb, input_cells,
                                  os.path.basename(path))
        client.set_widgets_metadata()
        ctx.progress(done, total, "stopped by SystemExit" if stopped else "done")
    except BaseException as exc:
        failure = exc
        if isinstance(exc, Exception):
            for warning in out.warnings:
                exc.add_note(f"warning: {warning}")
        raise
    finally:
        if monitor is not None:
            monitor.cancel()

        async def close() -> None:
            # the kernel is gone and the executed notebook kept whatever happened
            try:
                await _finish(client, kernel_pid, execute, ctx, nb, out,
                              raise_errors=failure is None)
            finally:
                # (written, the kernel's shutdown removed it; this is for one never written)
                with contextlib.suppress(OSError):
                    os.unlink(connection_file)
                await stop_group_guard(guard)
                if recorded is not None and usage.on_group is not None:
                    await announce_group(usage.on_group, recorded, None)

        try:
            await run_to_end(close())
        except asyncio.CancelledError:
            # a stop that came while the run closed came after its cells had ended on
            # their own (unless it is what ended them): their end is the run's
            if isinstance(failure, asyncio.CancelledError) or not keep_own_end(running):
                raise
    return {"notebook": out.artifact_name, "cells": total, "executed": done,
            "parameters": dict(parameters), "kernel_name": kernel_name,
            "stopped_early": stopped, "warnings": out.warnings,
            "output_path": shown_output_path,
            "html": _html_name(out.artifact_name) if out.export_html else None}


def _new_connection_file(task: Any) -> str:
    """A new empty file (ours alone, mode 0600) for the kernel's connection file, named
    after the task's attempt in the temp folder."""
    prefix = attempt_prefix("kernel", task.id, getattr(task, "attempts", 0) or 0)
    fd, path = tempfile.mkstemp(suffix=".json", prefix=prefix)
    os.close(fd)
    return path


def remove_lost_kernel_files(task_id: str, attempt: int) -> list[str]:
    """Remove the kernel connection files an attempt's lost worker left in this temp
    folder (its kernel, killed with it, never removed its own); the paths removed."""
    return remove_left_in_temp(attempt_prefix("kernel", task_id, attempt))


def notebook_artifact_name(path: str) -> str:
    """The artifact name of the executed copy of the notebook at ``path``.

    Its file name where that is a plain artifact name; else made one: accents
    dropped, other characters an artifact name cannot hold as ``_`` ("résumé (2).ipynb"
    is "resume _2_.ipynb"). A name refused at the end of the run lost the copy.
    """
    name = os.path.basename(path)
    stem = name[: -len(".ipynb")] if name.endswith(".ipynb") else name
    plain = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    plain = re.sub(r"[^A-Za-z0-9._ -]", "_", plain).lstrip("._ -")[:200] or "notebook"
    return f"{plain}.ipynb"


def _html_name(artifact_name: str) -> str:
    return os.path.basename(record.html_path(artifact_name))


async def _watched(execute: asyncio.Future[Any], monitor: asyncio.Future[Any] | None,
                   ends_run: Callable[[], bool]) -> None:
    """Until a cell's execution ends, or the memory watcher raises (then its error).

    A stop that comes once the cell had ended on its own (its reply in, the run not on
    yet) gives the cell's own end instead, if ``ends_run()`` says that end is the run's.
    """
    waiters: list[asyncio.Future[Any]] = [execute] + ([monitor] if monitor else [])
    try:
        finished, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        if not (execute.done() and not execute.cancelled() and ends_run()):
            raise
        finished = {execute}
    if execute not in finished:  # the memory watcher raised
        monitor.result()  # type: ignore[union-attr]
    execute.result()


def _output_texts(cell: Any) -> list[str]:
    texts = []
    for out in cell.get("outputs", []):
        text = out.get("text") or out.get("data", {}).get("text/plain") or ""
        texts.append("".join(text) if isinstance(text, list) else str(text))
    return texts


def _started_background(nb: Any) -> bool:
    """Whether the notebook may have left work running in its kernel: it uses
    jupyter_tasks (a code cell names it, or shows a handle or a card)."""
    return any("jupyter_tasks" in cell.source
               or any("TaskHandle" in text or "TaskCard(" in text
                      for text in _output_texts(cell))
               for cell in nb.cells if cell.cell_type == "code")


def _mark_stopped_waiting(nb: Any, hidden: Any) -> None:
    """Mark the last cell that started background work (else the last code cell) as
    the one the run stopped at, with papermill's error markers."""
    cells = [c for c in nb.cells if c.cell_type == "code" and c is not hidden]
    if not cells:
        return
    cell = next((c for c in reversed(cells) if "%%background" in c.source
                 or any("TaskHandle" in text or "TaskCard(" in text
                        for text in _output_texts(c))), cells[-1])
    record.cell_failed(nb, cell)
    index = next(i for i, c in enumerate(nb.cells) if c is cell)
    record.add_error_markers(nb, index, cell.get("execution_count"))


def _background_report(hidden: Any) -> list[dict[str, Any]]:
    """The ends ``end_of_run`` displayed in the hidden cell (none from a kernel that could
    not import jupyter_tasks)."""
    for out in hidden.get("outputs", []):
        report = out.get("data", {}).get(REPORT_MIME)
        if isinstance(report, list):
            return report
    return []


def _raise_for_background(report: list[dict[str, Any]], nb: Any, input_cells: list[Any],
                          notebook: str) -> None:
    """Fail the run as the first background cell that failed: a failing cell (not one
    tagged ``raises-exception``: it may fail, as nbclient lets a cell so tagged raise)."""
    def cell_of(task_id: str) -> Any:
        return next((c for c in nb.cells if c.cell_type == "code"
                     and any(task_id in text for text in _output_texts(c))), None)

    failed = [r for r in report if r["status"] in FAILED_ENDS
              and not record.has_tag(cell_of(r["id"]) or {}, "raises-exception")]
    if not failed:
        return
    first = failed[0]
    error = first.get("error") or {}
    ename = error.get("type") or f"background task {first['status']}"
    evalue = (error.get("message")
              or f"the background task {first['label']!r} ended {first['status']}")
    cell = cell_of(first["id"])
    if cell is None:
        raise NotebookJobError(f"{ename}: {evalue} (background task {first['id']})")
    record.cell_failed(nb, cell)
    index = next(i for i, c in enumerate(nb.cells) if c is cell)
    record.add_error_markers(nb, index, cell.get("execution_count"))
    exc = CellExecutionError(ename, evalue, _input_index(input_cells, cell),
                             error.get("traceback") or "", cell.source,
                             cell.get("execution_count"), notebook)
    for other in failed[1:]:
        exc.add_note(f"background task {other['label']!r} ({other['id']}) also ended "
                     f"{other['status']}")
    raise exc


def _input_index(input_cells: list[Any], cell: Any) -> int | None:
    """The cell's place in the input notebook (None for a cell the run added)."""
    return next((i for i, c in enumerate(input_cells) if c is cell), None)


async def _finish(client: Any, kernel_pid: int | None, execute: asyncio.Future[Any] | None,
                  ctx: Any, nb: Any, out: _Outputs, *, raise_errors: bool) -> None:
    import nbformat

    _stop_kernel_pollers(client)
    await kernel.shutdown_kernel(client, kernel_pid)
    if execute is not None and not execute.done():
        # the cell's pollers notice the dead kernel; collect what they raise
        execute.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(execute, 5)
    if execute is not None and execute.done() and not execute.cancelled():
        execute.exception()  # retrieved: no "exception was never retrieved" noise
    record.end_notebook(nb, out.started)
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        # kept anyway (the outputs matter more), but said
        ctx.log(f"warning: the executed notebook does not validate: {exc.message}")
    try:
        text = nbformat.writes(nb)
        await ctx.artifact(out.artifact_name, text.encode(), "application/x-ipynb+json")
        if out.output_path:
            await asyncio.to_thread(_write_file, out.output_path, text)
        html = await _html_or_warning(nb, ctx, out) if out.export_html else None
        if html is not None:
            await ctx.artifact(_html_name(out.artifact_name), html.encode(), "text/html")
            if out.output_path:
                await asyncio.to_thread(_write_file, record.html_path(out.output_path), html)
    except Exception:
        if raise_errors:
            raise
        ctx.log("warning: the executed notebook could not be saved everywhere asked")


async def _html_or_warning(nb: Any, ctx: Any, out: _Outputs) -> str | None:
    """The executed notebook as HTML; None, said as a warning, when nbconvert refuses it.

    An extra the run asked for: the cells ran and their copy is kept, so its failure
    (a kernelspec with no display_name fails nbconvert's validation) is no run's failure.
    """
    try:
        return await asyncio.to_thread(_html, nb)
    except Exception as exc:
        said = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        warning = f"no HTML was made: {type(exc).__name__}: {said}"[:500]
        out.export_html = False
        out.warnings.append(warning)
        ctx.log(f"warning: {warning}")
        return None


def _stop_kernel_pollers(client: Any) -> None:
    """Cancel the kernel-alive pollers nbclient started for ``client``'s cells.

    A cell stopped from outside (a cancel, a timeout) leaves its poller running: once
    the kernel client is gone it failed its ``assert self.kc is not None``, and each
    stopped notebook left "Task exception was never retrieved" with a traceback in
    the worker's log.
    """
    for task in asyncio.all_tasks():
        coro = task.get_coro()
        frame = getattr(coro, "cr_frame", None)
        if getattr(coro, "__name__", "") == "_async_poll_kernel_alive" and frame is not None \
                and frame.f_locals.get("self") is client:
            task.cancel()


def output_path_now(task: Any) -> str | None:
    """The real path a notebook job's ``output_path`` names for a run starting now (None
    without one); ``InvalidRequest`` if it now leaves the root or names a folder."""
    spec = task.spec or {}
    if task.kind != "notebook" or not spec.get("output_path"):
        return None
    return render_output_path(
        spec["output_path"], root_dir=spec.get("root_dir") or os.getcwd(), task_id=task.id,
        date=record.now().astimezone().date(), parameters=spec.get("parameters") or {},
        input_path=spec.get("notebook"))


async def write_output_copies(task: Any, artifacts: list[tuple[str, bytes, str | None]],
                              ctx: Any, path: str | None) -> None:
    """Write a notebook job's ``output_path`` (and HTML beside it) at ``path`` from the
    artifacts of a run on another machine (Dask), here where the server root is."""
    if path is None:
        return
    artifact_name = notebook_artifact_name((task.spec or {}).get("notebook") or "")
    by_name = {a[0]: a[1] for a in artifacts}
    if artifact_name not in by_name:
        return
    try:
        await asyncio.to_thread(_write_file, path, _text(by_name[artifact_name]))
        html = by_name.get(_html_name(artifact_name))
        if html is not None:
            await asyncio.to_thread(_write_file, record.html_path(path), _text(html))
    except Exception as exc:  # the artifact is kept whatever happens here
        ctx.log(f"warning: output_path not written: {exc}")


def _text(data: bytes | str) -> str:
    return data.decode("utf-8") if isinstance(data, bytes) else data


async def _save_so_far(out: _Outputs, nb: Any, ctx: Any) -> None:
    """The executed notebook as far as it got, at ``output_path``, as a code cell starts
    (papermill saves as each cell starts and ends: a run whose worker is killed leaves a
    notebook showing the cell it stopped in). Between two cells nothing changes the
    notebook; a failed save fails nothing (the run's end writes it again, and says so if
    it cannot)."""
    import nbformat

    path = out.output_path
    assert path is not None
    try:
        await asyncio.to_thread(lambda: _write_file(path, nbformat.writes(nb)))
    except Exception as exc:  # a save on the way never fails the run
        if not out.save_failed:
            out.save_failed = True
            ctx.log(f"warning: saving the output notebook as it runs failed: {exc}")


def _write_file(path: str, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a reader never sees half a notebook)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # one name per write, not per process: two jobs of one worker may write one path
    partial = f"{path}.{os.getpid()}.{uuid.uuid4().hex[:12]}.partial"
    try:
        with open(partial, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(partial, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)


def _html(nb: Any) -> str:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    return body


def _is_cell_error(exc: BaseException) -> bool:
    from nbclient.exceptions import CellExecutionError as NbCellError

    return isinstance(exc, NbCellError)


def _cell_error(exc: BaseException, cell: Any) -> tuple[str, str, str]:
    """(ename, evalue, traceback) of a failed cell: its error output, else nbclient's exception."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            tb = ANSI.sub("", "\n".join(output.get("traceback") or []))
            return output.get("ename") or "Error", output.get("evalue") or "", tb
    tb = ANSI.sub("", getattr(exc, "traceback", None) or str(exc))
    return getattr(exc, "ename", None) or "Error", getattr(exc, "evalue", None) or "", tb
