"""Running cell source in a worker thread, in the user namespace, as a ``cell`` task.

The kernel's manager gets an executor for kind ``cell``: it runs
``task.spec["source"]`` in a thread (so cancel and timeout stop it with an
asynchronous exception), with output captured into the task's
:class:`~jupyter_tasks.kernel.capture.OutputSink`, and returns the value of the
last expression. Reruns asked from any view (REST, another kernel's card, the
CLI) reach this executor through the store while this kernel lives.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from inspect import CO_COROUTINE
from typing import TYPE_CHECKING, Any

from ..context import TaskContext
from ..engine.kinds import call_in_thread
from ..exceptions import TaskCancelled
from ..models import Task, TaskKind
from ..tracebacks import is_runner_file, name_source, user_traceback
from ..values import EncodedWithValue, encoded_here
from . import capture
from .figures import open_figures, show_new_figures

if TYPE_CHECKING:
    from ..manager import TaskManager

_TOP_LEVEL_AWAIT = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


@dataclass
class CellRun:
    """How one cell task runs here: captured into a card, or into the submitting cell."""

    capture: bool = True  # False: %run_blocking, whose output belongs to its own cell
    parent: dict[str, Any] | None = None  # the submitting cell's execute_request
    sink: capture.OutputSink | None = None
    execution_count: int | None = None  # the submitting cell's In[n]
    magic_line: str | None = None  # "%%background …": the cell's line 1, above the source
    extra: dict[str, Any] = field(default_factory=dict)


class CellKind:
    """The ``cell`` job kind: code of a notebook cell, run in this kernel's namespace."""

    kind = TaskKind.CELL.value
    work_field = None  # created by KernelSide.submit_cell, not by submit_spec

    def __init__(self, side: KernelSide) -> None:
        self.side = side

    def validate(self, spec: Mapping[str, Any], registry: Any) -> Any:
        """Cells are not submitted as specs; ``KernelSide.submit_cell`` creates them."""
        from ..exceptions import InvalidRequest

        raise InvalidRequest("cell tasks are created by the kernel that runs them")

    async def execute(self, task: Task, ctx: TaskContext, run: Any) -> Any:
        """Run the cell in the kernel's shell."""
        return await self.side.execute(task, ctx, run)


# background tasks a kernel remembers for wait_for_background (a long session's oldest
# go: they still run here, and are waited for as such, without their card's text)
BACKGROUND_KEPT = 1000


class KernelSide:
    """This kernel's part: the manager, the shell, the sinks of its cell tasks."""

    def __init__(self, manager: TaskManager, shell: Any, kernel_id: str | None) -> None:
        self.manager = manager
        self.shell = shell
        self.kernel_id = kernel_id
        self.runs: dict[str, CellRun] = {}
        self.sinks: dict[str, capture.OutputSink] = {}
        # the card's text of each cell's value, made in the cell's thread (the last 1000)
        self.result_texts: dict[str, str] = {}
        # the tasks this kernel started in the background (%%background, a
        # --background subprocess), in order, each with its card's display (or None):
        # a headless run waits for them before its kernel goes (headless.py)
        self.background: dict[str, Any] = {}
        self.cards_ended: set[str] = set()  # whose card took its end as its text form
        self._counter = 0
        self._lock = threading.Lock()
        manager.install_kind(CellKind(self))

    def started_in_background(self, task_id: str, shown: Any) -> None:
        """Remember a task this kernel started in the background, with its shown card
        (or None), for a headless run to wait for; the oldest go past a bound."""
        with self._lock:
            self.background[task_id] = shown
            while len(self.background) > BACKGROUND_KEPT:
                oldest = next(iter(self.background))
                del self.background[oldest]
                self.cards_ended.discard(oldest)

    def background_so_far(self) -> dict[str, Any]:
        """The background tasks remembered so far, with their shown cards (a copy)."""
        with self._lock:
            return dict(self.background)

    # ----------------------------------------------------------------- submit

    async def submit_cell(self, source: str, *, label: str | None = None,
                          task_key: str | None = None, timeout: float | None = None,
                          run: CellRun | None = None) -> Task:
        """Create a ``cell`` task for ``source`` and start it (on the manager's loop)."""
        manager = self.manager
        spec: dict[str, Any] = {"source": source, "kernel_worker": manager.worker_id}
        if run is not None and run.execution_count:
            # its frames read "Cell In[n], line L" in tracebacks, L counted as in the
            # notebook's editor (from the magic line), in this run and in reruns
            spec["execution_count"] = run.execution_count
            if run.magic_line:
                spec["magic_line"] = run.magic_line
        options: dict[str, Any] = {"task_key": task_key, "timeout": timeout}
        cell_id = cell_id_of(run.parent if run is not None else None)
        if cell_id is not None:
            # the cell that submitted it: a reopened notebook puts the task's view back
            # under that cell even when its output was never saved
            options["origin"] = {**manager.origin, "cell_id": cell_id}
        task = await manager.submit_cell(spec, label=label or default_label(source), **options)
        # submit_cell only scheduled the run: registering now, before this
        # coroutine yields, guarantees the executor finds it
        from ..manager import was_deduplicated

        if run is not None and not was_deduplicated(task):
            self.runs[task.id] = run
            if run.capture:
                run.sink = self.sink(task.id)
        return task

    def sink(self, task_id: str) -> capture.OutputSink:
        """The output sink of a task run here (created on first use)."""
        with self._lock:
            sink = self.sinks.get(task_id)
            if sink is None:
                sink = self.sinks[task_id] = capture.OutputSink(task_id)
                while len(self.sinks) > 500:
                    self.sinks.pop(next(iter(self.sinks)))
            return sink

    def fresh_name(self, prefix: str = "bg") -> str:
        """A variable name not yet used in the user namespace."""
        ns = self.shell.user_ns
        while True:
            self._counter += 1
            name = f"{prefix}_{self._counter}"
            if name not in ns:
                return name

    # ---------------------------------------------------------------- execute

    async def execute(self, task: Task, ctx: TaskContext, running: Any) -> Any:
        """The executor of kind ``cell``."""
        run = self.runs.pop(task.id, None)
        if run is None:  # a rerun asked from some view: show it where its parent's card is
            run = CellRun(capture=True, sink=self.sink(task.id))
            from .cards import hub_if_started

            hub = hub_if_started()
            if hub is not None and task.parent_id:
                hub.follow(task.parent_id, task.id)
        source = (task.spec or {}).get("source") or ""
        if run.execution_count is None:
            run.execution_count = (task.spec or {}).get("execution_count")
            run.magic_line = (task.spec or {}).get("magic_line")
        # a cell that returned just as a cancel or timeout came keeps its value, as a
        # function job does
        return await call_in_thread(self._run_in_thread, (task, source, ctx, run), {},
                                    running)

    def _run_in_thread(self, task: Task, source: str, ctx: TaskContext, run: CellRun) -> Any:
        sink = run.sink
        tokens = _set_thread_parent(self.shell, run.parent)
        token = capture.current_sink.set(sink) if sink is not None else None
        if sink is not None:
            sink.ctx = ctx
        figures = open_figures()
        try:
            try:
                value = run_source(self.shell, source, f"<task {task.id[-10:]}>",
                                   execution_count=run.execution_count,
                                   magic_line=run.magic_line)
            finally:
                # what the next foreground cell's end would show (and close): here
                show_new_figures(figures)
            return self._encoded(task.id, value)
        except TaskCancelled:
            # not an error: the card says how it ended; the log keeps a note of why, as
            # the engine's (not on stdout, as if the cell had printed it)
            ctx.log(_stop_note(ctx, task.id))
            raise
        except BaseException as exc:
            if sink is not None:
                _record_error(self.shell, sink, exc)
            elif not run.capture:
                ctx.write(user_traceback(exc), "stderr")
            raise
        finally:
            if sink is not None:
                sink.ctx = None
                # threads the cell started may print on: into the log and the card still
                if ctx.manager is not None:
                    sink.late = capture.LateOutput(task.id, ctx.manager,
                                                   functools.partial(_wake_cards, task.id))
            if token is not None:
                capture.current_sink.reset(token)
            _reset_thread_parent(tokens)


    def _encoded(self, task_id: str, value: Any) -> EncodedWithValue:
        """The value as stored and as its card shows it, made here in the cell's thread.

        Its repr is the user's code, which may be slow or never return: on the manager's
        loop it held every card and task of this kernel for good; here the cell is still
        running, and its Cancel or --timeout stops it.
        """
        from .cards import result_text

        encoded = encoded_here(value, arrays_summarized=True)  # the kernel keeps the value
        text = "" if value is None else result_text(value)
        with self._lock:
            self.result_texts[task_id] = text
            while len(self.result_texts) > BACKGROUND_KEPT:
                self.result_texts.pop(next(iter(self.result_texts)))
        return encoded


# the note a stopped cell's log ends with, by what stopped it (RunningTask.stop_reason)
STOP_NOTES = {"cancel": "cancelled", "timeout": "timed out: the cell ran past its --timeout",
              "shutdown": "interrupted: this kernel's task manager stopped (a restart, a "
                          "shutdown)"}


def _stop_note(ctx: Any, task_id: str) -> str:
    """Why the cell was stopped, as its log's last line says it."""
    running = getattr(getattr(ctx.manager, "state", None), "running", {}).get(task_id)
    reason = getattr(running, "stop_reason", None)
    if reason is None:  # the manager's own stop, or a cancel it has not marked yet
        reason = "cancel" if ctx.cancel_requested else "shutdown"
    return STOP_NOTES.get(reason, STOP_NOTES["shutdown"])


def _wake_cards(task_id: str) -> None:
    """On the manager's loop: the cards of ``task_id`` refresh again (new output)."""
    from .cards import hub_if_started

    hub = hub_if_started()
    if hub is not None:
        for card in list(hub.cards.get(task_id, ())):
            hub.activate(card)


def cell_id_of(parent: Mapping[str, Any] | None) -> str | None:
    """The notebook cell id (nbformat 4.5 ``id``) of an execute request, else None.

    JupyterLab (3 and later) and Notebook 7 send it as ``metadata.cellId``.
    """
    metadata = (parent or {}).get("metadata") or {}
    cell_id = metadata.get("cellId") if isinstance(metadata, Mapping) else None
    return cell_id if isinstance(cell_id, str) and 0 < len(cell_id) <= 256 else None


def default_label(source: str) -> str:
    """The first meaningful line of the source, shortened."""
    for line in source.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return line if len(line) <= 60 else line[:57] + "..."
    return "cell"


def run_source(shell: Any, source: str, filename: str,
               namespace: Mapping[str, Any] | None = None,
               execution_count: int | None = None, magic_line: str | None = None) -> Any:
    """Execute cell source (IPython syntax allowed) in the user namespace.

    Returns the value of a final expression, like a cell's ``Out``. Top-level
    ``await`` works: such a cell runs on a fresh event loop in this thread.
    Tracebacks name the code ``Cell In[execution_count]``, as IPython names the
    cell that submitted it; with ``magic_line`` (the cell's first line, which is not
    part of ``source``) line numbers count from it, as the editor shows them.
    """
    ns = shell.user_ns if namespace is None else namespace
    code = shell.transform_cell(source) if shell is not None else source
    above = "\n" if magic_line else ""
    try:
        filename = shell.compile.cache(
            (magic_line.splitlines()[0] + "\n" if magic_line else "") + code,
            execution_count or 0, raw_code=above + source)
    except Exception:
        pass
    else:
        name_source(filename, f"Cell In[{execution_count or 0}]")
    try:
        tree = ast.parse(above + code, filename)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = compile(ast.Expression(tree.body.pop().value), filename, "eval",
                           flags=_TOP_LEVEL_AWAIT)
        # compiled before any of it runs: some syntax errors are found only here
        # ("'return' outside function"), and none of the cell may run then
        body = compile(tree, filename, "exec", flags=_TOP_LEVEL_AWAIT) if tree.body else None
    except SyntaxError as exc:
        # its message names its file ("invalid syntax (3894580861.py, line 2)"): the
        # cell's name instead, as its traceback shows it
        exc.filename = f"Cell In[{execution_count or 0}]"
        raise
    loop: asyncio.AbstractEventLoop | None = None

    def run(code_obj: Any) -> Any:
        nonlocal loop
        value = eval(code_obj, ns)
        if code_obj.co_flags & CO_COROUTINE:
            if loop is None:
                loop = asyncio.new_event_loop()
            value = loop.run_until_complete(value)
        return value

    try:
        if body is not None:
            run(body)
        value = run(last) if last is not None else None
    except BaseException:
        if loop is not None:
            _close_cell_loop(loop, say=False)
        raise
    if loop is not None:
        _close_cell_loop(loop, say=True)
    return value


def _close_cell_loop(loop: asyncio.AbstractEventLoop, say: bool) -> None:
    """Close a cell's own event loop as ``asyncio.run`` does; ``say``: what it cut short.

    A task the cell started (``asyncio.create_task``) and did not await would go on in a
    plain cell, on the kernel's loop; here the loop ends with the cell. It was closed
    under them in silence: their work was dropped, their ``finally`` ran only if and
    when they were garbage collected. They are cancelled now, their cleanup runs, and
    the cell's output (its card and log) says so when the cell ended well.
    """
    try:
        pending = asyncio.all_tasks(loop)
        for pending_task in pending:
            pending_task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        n = len(pending)
        if n and say:  # not after a failure or a cancel: the cell's own await is among them
            print(f"note: {n} asyncio task{'s' if n > 1 else ''} the cell started "
                  f"{'were' if n > 1 else 'was'} still pending when it ended, and "
                  f"{'were' if n > 1 else 'was'} cancelled (await what the cell starts, "
                  "e.g. with asyncio.gather, to let it finish)", file=sys.stderr)
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


def _record_error(shell: Any, sink: capture.OutputSink, exc: BaseException) -> None:
    tb = exc.__traceback__
    # skip the frames that ran the cell (ours, the standard library's): start at its code
    while tb is not None and is_runner_file(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    tb = tb or exc.__traceback__
    plain = user_traceback(exc)
    try:
        structured = shell.InteractiveTB.structured_traceback(type(exc), exc, tb,
                                                             tb_offset=0)
    except Exception:
        structured = plain.splitlines()
    try:
        evalue = str(exc)
    except Exception:  # the user's exception stays the one recorded, not this one
        evalue = "<exception str() failed>"
    sink.error(type(exc).__name__, evalue, structured, plain)


def _set_thread_parent(shell: Any, parent: dict[str, Any] | None) -> list[tuple[Any, Any]]:
    """Point ipykernel's streams and display publisher at ``parent`` for this thread only."""
    tokens: list[tuple[Any, Any]] = []
    if not parent:
        return tokens
    targets = [getattr(sys.stdout, "_inner", sys.stdout), getattr(sys.stderr, "_inner", sys.stderr),
               getattr(shell, "display_pub", None), getattr(shell, "displayhook", None)]
    for obj in targets:
        setter = getattr(obj, "set_thread_parent", None)
        if setter is not None:
            try:
                tokens.append((obj, setter(parent)))
            except Exception:
                pass
    return tokens


def _reset_thread_parent(tokens: list[tuple[Any, Any]]) -> None:
    for obj, token in tokens:
        try:
            obj.reset_thread_parent(token)
        except Exception:
            pass


def kernel_id_from_connection_file() -> str | None:
    """This kernel's id, from its connection file name (``kernel-<id>.json``)."""
    try:
        from ipykernel import get_connection_file

        name = os.path.basename(get_connection_file())
    except Exception:
        return None
    if name.startswith("kernel-") and name.endswith(".json"):
        return name[len("kernel-"):-len(".json")]
    return name.rsplit(".", 1)[0] or None
