"""The magics: ``%%background``, ``%run_blocking`` / ``%%run_blocking``, ``%run_subprocess``.

Waiting magics (``%run_blocking``, ``%run_subprocess`` without ``--background``)
must keep the kernel's event loop free while the cell waits, so comms and
widgets keep working. A line or cell magic is an ordinary synchronous call, so
an input transformer (run after IPython's own) rewrites their calls into
``await …_async(…)``; ipykernel then runs the cell as a coroutine and, in
ipykernel 7, dispatches comm messages while it awaits. Where ``await`` is not
allowed (inside a ``def``) the call is left alone and blocks as usual.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import inspect
import keyword
import math
import re
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import (
    Magics,
    cell_magic,
    line_cell_magic,
    line_magic,
    magics_class,
    no_var_expand,
)
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.utils.text import DollarFormatter

from ..engine.options import TIMEOUT
from ..exceptions import TaskFailed, TaskStateConflict
from ..models import TaskStatus
from ..tracebacks import is_runner_file
from .cells import CellRun, KernelSide
from .handle import TaskHandle

_AWAITED = ("run_blocking", "run_subprocess")
_CALL = re.compile(r"get_ipython\(\)\.run_(line|cell)_magic\('(run_blocking|run_subprocess)', ")
# ``job = %run_subprocess --background …``: the user names the handle, no ``proc_N`` then
_ASSIGNED = re.compile(r"^([ \t]*[A-Za-z_][\w.]*[ \t]*=[ \t]*)"
                       r"get_ipython\(\)\.run_line_magic\('run_subprocess', ", re.MULTILINE)
_MODULE = "__import__('jupyter_tasks.kernel.magics', fromlist=['_'])"
# a waiting line magic's call as the cell's last line: its argument (the magic's line)
_LAST_CALL = re.compile(r"_line_magic_async\('\w+', (.*)\)$")


def await_waiting_magics(lines: list[str]) -> list[str]:
    """Input transformer: turn waiting magic calls into awaited coroutine calls."""
    code = "".join(lines)
    if "run_blocking" not in code and "run_subprocess" not in code:
        return lines
    if _in_a_magics_run():
        # the body of %%time, %%timeit, %%capture, %time...: they compile or run it where
        # a top-level await is refused ("'await' outside function", or "this event loop
        # is already running"); the magic's plain call waits there as well
        return lines
    new = _ASSIGNED.sub(lambda m: f"{m[1]}await {_MODULE}.run_assigned_subprocess_async(", code)
    new = _CALL.sub(lambda m: f"await {_MODULE}.run_{m[1]}_magic_async('{m[2]}', ", new)
    if new == code:
        return lines
    new = _keep_quiet(new)
    try:
        compile(new, "<jupyter-tasks-check>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except SyntaxError:
        return lines
    return new.splitlines(keepends=True)


def _in_a_magics_run() -> bool:
    """Whether the code being transformed is run by a magic of the running cell.

    A cell's own transform runs before any magic; a magic that runs code of its own
    transforms it from inside IPython's ``run_cell_magic``/``run_line_magic``, on this
    thread (a background cell transforms its code on a thread of its own).
    """
    frame = inspect.currentframe()
    try:
        while frame is not None:
            if frame.f_code.co_name in ("run_cell_magic", "run_line_magic") \
                    and frame.f_globals.get("__name__") == "IPython.core.interactiveshell":
                return True
            frame = frame.f_back
        return False
    finally:
        del frame  # a frame held here would keep the whole stack alive


def _keep_quiet(code: str) -> str:
    """``code`` with a ';' after its last line's magic call if the magic's line ended in one.

    IPython hides the value of a cell whose code ends in ';'; here that ';' is inside
    the call's string argument, which ``_blocking_source`` strips off.
    """
    last = _LAST_CALL.search(code.rstrip())
    if last is None:
        return code
    try:
        argument = ast.literal_eval(last[1])
    except (ValueError, SyntaxError):
        return code
    if isinstance(argument, str) and argument.rstrip().endswith(";"):
        return code.rstrip() + ";\n"
    return code


def _side() -> KernelSide:
    from . import kernel_side

    side = kernel_side()
    if side is None:
        raise UsageError("run `%load_ext jupyter_tasks` first")
    if not side.manager.running:
        # stopped (jupyter_tasks.stop_manager()): the engine's own advice, start_manager(),
        # starts a manager this kernel's side does not use; loading the extension again does
        raise UsageError("this kernel's task manager was stopped: run `%reload_ext "
                         "jupyter_tasks` to start a new one")
    return side


def _parent(shell: Any) -> dict[str, Any] | None:
    kernel = getattr(shell, "kernel", None)
    try:
        return kernel.get_parent("shell") if kernel is not None else None
    except Exception:
        return None


# ------------------------------------------------------------------ run_blocking


def _blocking_source(line: str, cell: str | None) -> tuple[str, str]:
    if cell is None:
        # a trailing ';' hides the cell's value, as in any cell (IPython reads it from the
        # cell's text): not part of the expression
        expr = line.strip().removesuffix(";").rstrip()
        if not expr:
            raise UsageError("usage: %run_blocking f(args)  — a call (expression) to run in "
                             "a worker thread while the cell waits")
        try:
            ast.parse(expr, mode="eval")
        except SyntaxError as exc:
            raise UsageError(f"%run_blocking takes an expression such as f(x): {exc}") from None
        return expr, f"run_blocking: {expr}"[:80]
    from .cells import default_label

    return cell, f"run_blocking: {default_label(cell)}"[:80]


def _execution_count(shell: Any) -> int | None:
    """The In[n] of the cell running now.

    From the input history, which holds the running cell as its last entry: IPython 9
    counts ``execution_count`` up before it runs a cell (8 did once it ended), so that
    count named the next cell, and tracebacks said ``Cell In[3]`` for In[2].
    """
    inputs = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None)
    count = len(inputs) - 1 if isinstance(inputs, list) else \
        getattr(shell, "execution_count", None)
    return count if isinstance(count, int) and count > 0 else None


def _blocking_submit(side: KernelSide, source: str, label: str) -> Any:
    return side.submit_cell(source, label=label,
                            run=CellRun(capture=False, parent=_parent(side.shell),
                                        execution_count=_execution_count(side.shell)))


def _blocking_outcome(side: KernelSide, task: Any) -> Any:
    """The blocking call's value, or its exception shown from the user's code on.

    The exception came back through the engine's frames (the attempt, the thread,
    the cell's runner: ten of them above ``1/0``); they are dropped from its
    traceback, and this module's own frames are hidden from IPython's.
    """
    __tracebackhide__ = True
    try:
        # sys.exit() or a KeyboardInterrupt of the code's own too: a plain cell shows it
        # as itself and carries on, so the blocking cell does (not TaskFailed)
        return side.manager.outcome(task, reraised=BaseException)
    except BaseException as exc:
        tb = exc.__traceback__
        while tb is not None and is_runner_file(tb.tb_frame.f_code.co_filename):
            tb = tb.tb_next
        if tb is None:
            if isinstance(exc, TaskFailed):  # a cancel, a timeout: the end alone, without
                raise exc.with_traceback(None)  # noqa: B904  (the manager's outcome())
            raise  # an engine error: every frame, to find it by
        raise exc.with_traceback(tb)  # noqa: B904  (the same exception, not a new one)


async def _stop(manager: Any, task_id: str) -> None:
    """Cancel a task whose waiter was interrupted; nothing if it ended meanwhile.

    ipykernel delivers an interrupt to a top-level await only once the wait is over,
    so the task has often ended by then: its TaskStateConflict must not replace the
    interrupt the user asked for.
    """
    with contextlib.suppress(TaskStateConflict):
        await manager.cancel(task_id)


def run_blocking_source(source: str, label: str) -> Any:
    """Run ``source`` as a tracked task in a worker thread and block until it ends."""
    __tracebackhide__ = True
    side = _side()
    manager = side.manager
    task = manager.run_sync(_blocking_submit(side, source, label))
    try:
        task = manager.run_sync(manager.wait(task.id))
    except BaseException:
        manager.run_sync(_stop(manager, task.id), 30)
        raise
    return _blocking_outcome(side, task)


class _Interruptible:
    """While a waiting magic runs: Kernel → Interrupt cancels its task at once, and the
    magic then raises ``KeyboardInterrupt``, as a plain cell would.

    ipykernel (7.4) turns a SIGINT into the awaiting cell's cancel only once the await
    is over, for any top-level await: the work ran to its end (ten minutes of it),
    then the cell said ``CancelledError``. On the main thread, from before the submit
    to the end of the wait, this SIGINT handler cancels the task on the manager's loop
    instead; the wait then ends with it.
    """

    def __init__(self, manager: Any) -> None:
        self.manager = manager
        self.task_id: str | None = None
        self.interrupted = False
        self._previous: Any = None

    def __enter__(self) -> _Interruptible:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_interrupt)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _on_interrupt(self, signum: int, frame: Any) -> None:
        self.interrupted = True
        if self.task_id is not None:
            self._cancel()

    def _cancel(self) -> None:
        asyncio.run_coroutine_threadsafe(_stop(self.manager, self.task_id), self.manager.loop)

    def submitted(self, task_id: str) -> None:
        """The task is in: an interrupt that came during its submit cancels it now."""
        self.task_id = task_id
        if self.interrupted:
            self._cancel()

    async def wait(self) -> Any:
        """The task once it ends; ``KeyboardInterrupt`` if it was interrupted."""
        __tracebackhide__ = True
        manager, task_id = self.manager, self.task_id
        try:
            task = await manager.run_on_loop(manager.wait(task_id))
        except BaseException:  # interrupted otherwise (CancelledError): stop the work
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
                _stop(manager, task_id), manager.loop))
            raise
        if self.interrupted:
            raise KeyboardInterrupt
        return task


async def run_blocking_source_async(source: str, label: str) -> Any:
    """``run_blocking_source`` for the kernel's loop: awaits, keeping the loop free."""
    __tracebackhide__ = True
    side = _side()
    manager = side.manager
    with _Interruptible(manager) as interruptible:
        task = await manager.run_on_loop(_blocking_submit(side, source, label))
        interruptible.submitted(task.id)
        task = await interruptible.wait()
    return _blocking_outcome(side, task)


# ---------------------------------------------------------------- run_subprocess


def _parse_subprocess(line: str) -> dict[str, Any]:
    usage = ("usage: %run_subprocess [--timeout S] [--cwd D] [--label L] [--background] CMD "
             "ARGS...  (split with shlex; no shell)")
    try:
        tokens = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"{usage}: {exc}") from None
    opts: dict[str, Any] = {"timeout": None, "cwd": None, "background": False, "label": None}
    i = 0
    while i < len(tokens) and tokens[i].startswith("--"):
        token = tokens[i]
        name, _, value = token[2:].partition("=")
        if token == "--":
            i += 1
            break
        if name == "background":
            opts["background"] = True
            i += 1
            continue
        if name not in ("timeout", "cwd", "label"):
            raise UsageError(f"unknown option {token!r}; {usage}")
        if not value:
            i += 1
            if i >= len(tokens):
                raise UsageError(f"{token} needs a value; {usage}")
            value = tokens[i]
        if name == "timeout":
            try:
                opts["timeout"] = timeout_seconds(value)
            except argparse.ArgumentTypeError as exc:
                raise UsageError(f"--timeout {exc}") from None
        else:
            opts[name] = value
        i += 1
    argv = tokens[i:]
    if not argv:
        raise UsageError(usage)
    opts["argv"] = argv
    return opts


async def _submit_subprocess(side: KernelSide, opts: dict[str, Any]) -> Any:
    manager = side.manager
    # (the engine records the folder whole: a rerun once this kernel is gone runs there)
    spec = {"command": opts["argv"], "cwd": opts["cwd"]}
    # the label reads as typed, without shell quoting (argv is never a shell line)
    return await manager.submit_spec(spec, mode="background", timeout=opts["timeout"],
                                     label=opts["label"] or " ".join(opts["argv"])[:80])


# what a waiting %run_subprocess's card says as text once its command ended, from the end
# of its output: what a saved notebook shows where no widget renders (nbconvert, the
# executed copy of a notebook job), as `!cmd` leaves the command's output there
CARD_TEXT_CHARS = 8000
CARD_TEXT_CHUNKS = 200


class _ShownCard:
    """A task's card displayed with a display id, so its text form can follow the task."""

    def __init__(self, task_id: str) -> None:
        from IPython.display import display

        from .cards import TaskCard

        self.card = TaskCard(task_id)
        self.display = display(self.card, display_id=True)

    def ended(self, manager: Any, task: Any) -> None:
        """Replace the text the card was displayed with (its state then) by its end and the
        end of its output; the widget itself is unchanged."""
        if self.display is None:
            return
        try:
            entries = manager.run_sync(manager.store.last_logs(task.id, CARD_TEXT_CHUNKS), 30)
        except Exception:  # the text form is a courtesy: the card itself shows the output
            entries = []
        output = "".join(e.text for e in entries)[-CARD_TEXT_CHARS:].rstrip("\n")
        text = f"TaskCard({task.label!r}, {task.status}, id={task.id})"
        # the value too, as the card shows it: an executed notebook (papermill, a notebook
        # job) kept the output of a background cell but not what its last line gave
        from .cards import shown_result

        result = shown_result(manager, task)
        if result is not None:
            output = f"{output}\nresult: {result}" if output else f"result: {result}"
        from IPython import get_ipython

        bundle, metadata = get_ipython().display_formatter.format(self.card)
        bundle = {**bundle, "text/plain": f"{text}\n{output}" if output else text}
        self.display.update(bundle, metadata=metadata, raw=True)


def _after_subprocess_submit(side: KernelSide, task: Any, opts: dict[str, Any],
                             assigned: bool = False) -> tuple[Any, _ShownCard]:
    shown = _ShownCard(task.id)
    if opts["background"]:
        side.started_in_background(task.id, shown)
        if assigned:  # ``job = %run_subprocess --background …``: job is the handle
            return TaskHandle(task.id, side.manager), shown
        name = side.fresh_name("proc")
        handle = TaskHandle(task.id, side.manager)
        side.shell.user_ns[name] = handle
        print(f"{name} = TaskHandle for task {task.id}")
        return handle, shown
    return None, shown


def _subprocess_summary(task: Any) -> None:
    if task.status != TaskStatus.SUCCEEDED.value:
        message = (task.error or {}).get("message") or task.status
        print(f"{task.status}: {message}", file=sys.stderr)


def _expand(shell: Any, line: str) -> str:
    try:
        return DollarFormatter().vformat(line, args=[], kwargs=shell.user_ns)
    except Exception:
        return line


async def run_assigned_subprocess_async(line: str) -> Any:
    """``x = %run_subprocess …``: as :func:`run_line_magic_async`, no ``proc_N`` variable."""
    return await run_line_magic_async("run_subprocess", line, assigned=True)


async def run_line_magic_async(name: str, line: str, assigned: bool = False) -> Any:
    """Awaitable form of the waiting line magics (the input transformer calls this)."""
    __tracebackhide__ = True
    side = _side()
    manager = side.manager
    if name == "run_blocking":
        source, label = _blocking_source(line, None)
        return await run_blocking_source_async(source, label)
    opts = _parse_subprocess(_expand(side.shell, line))
    if opts["background"]:
        task = await manager.run_on_loop(_submit_subprocess(side, opts))
        return _after_subprocess_submit(side, task, opts, assigned)[0]
    with _Interruptible(manager) as interruptible:
        task = await manager.run_on_loop(_submit_subprocess(side, opts))
        interruptible.submitted(task.id)
        _, shown = _after_subprocess_submit(side, task, opts, assigned)
        task = await interruptible.wait()
    shown.ended(manager, task)
    _subprocess_summary(task)
    return None


async def run_cell_magic_async(name: str, line: str, cell: str) -> Any:
    """Awaitable form of ``%%run_blocking`` (the input transformer calls this)."""
    __tracebackhide__ = True
    if name != "run_blocking":
        raise UsageError(f"%%{name} is not a cell magic")
    source, label = _blocking_source(line, cell)
    return await run_blocking_source_async(source, label)


def timeout_seconds(text: str) -> float:
    """A ``--timeout`` value: a positive number of seconds, else ArgumentTypeError saying so."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not TIMEOUT[0](seconds):
        raise argparse.ArgumentTypeError(f"takes a positive number of seconds, not {text!r}")
    return seconds


# ------------------------------------------------------------------------ magics


@magics_class
class TaskMagics(Magics):
    """jupyter-tasks magics (see the module docstring)."""

    @magic_arguments()
    @argument("--label", "-l", default=None, help="label shown in every view")
    @argument("--key", "-k", default=None,
              help="task key: while a task with this key runs, return it instead of a new one")
    @argument("--name", "-n", default=None, help="variable that receives the TaskHandle")
    @argument("--timeout", "-t", type=timeout_seconds, default=None,
              help="seconds before it is stopped")
    @argument("--no-card", action="store_true", help="do not display a progress card")
    @cell_magic
    def background(self, line: str, cell: str) -> None:
        """Run the cell in a worker thread, in the user namespace, and return at once.

        Output, errors and displays of the cell go to its card; the last
        expression's value is the task's result. ``--name VAR`` (default: a
        fresh name, printed) receives a ``TaskHandle``.
        """
        try:  # shlex, so that --label "two words" loses its quotes
            args = self.background.parser.parse_args(shlex.split(line))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        side = _side()
        name = args.name or side.fresh_name("bg")
        if not name.isidentifier() or keyword.iskeyword(name):
            raise UsageError(f"--name must be a variable name Python takes, not {name!r}")
        run = CellRun(capture=True, parent=_parent(self.shell),
                      execution_count=_execution_count(self.shell),
                      magic_line=f"%%background {line}".rstrip())
        # the label the user gave: --label, else the variable named with --name, else the
        # cell's first code line
        label = args.label or args.name
        task = side.manager.run_sync(side.submit_cell(
            cell, label=label, task_key=args.key, timeout=args.timeout, run=run), 60)
        from ..manager import was_deduplicated

        handle = TaskHandle(task.id, side.manager)
        self.shell.user_ns[name] = handle
        if was_deduplicated(task):
            print(f"{name} = TaskHandle of the task already running with key {args.key!r} "
                  f"({task.id})")
        else:
            print(f"{name} = TaskHandle for background task {task.id}")
        # with a display id, so its text form can follow the task (headless.py)
        side.started_in_background(task.id, None if args.no_card else _ShownCard(task.id))

    @no_var_expand
    @line_cell_magic
    def run_blocking(self, line: str, cell: str | None = None) -> Any:
        """Run a call (``%run_blocking f(x)``) or the cell (``%%run_blocking``) in a thread.

        The cell waits for it; in a notebook the kernel's event loop stays free
        meanwhile (widgets and comms keep working). The value is returned.
        """
        source, label = _blocking_source(line, cell)
        return run_blocking_source(source, label)

    @line_magic
    def run_subprocess(self, line: str) -> Any:
        """``%run_subprocess [--timeout S] [--cwd D] [--label L] [--background] CMD ARGS...``

        Runs CMD (split with shlex; never a shell) as a tracked ``subprocess``
        task; its output streams into its card, the exit code is shown, and
        cancel or timeout ends the whole process group.
        """
        side = _side()
        opts = _parse_subprocess(line)
        manager = side.manager
        task = manager.run_sync(_submit_subprocess(side, opts), 60)
        handle, shown = _after_subprocess_submit(side, task, opts)
        if opts["background"]:
            return handle
        try:
            task = manager.run_sync(manager.wait(task.id))
        except BaseException:
            manager.run_sync(_stop(manager, task.id), 30)
            raise
        shown.ended(manager, task)
        _subprocess_summary(task)
        return None


def register(shell: Any) -> None:
    """Register the magics and the transformer on ``shell`` (idempotent)."""
    shell.register_magics(TaskMagics)
    post: Sequence[Any] = shell.input_transformers_post
    if await_waiting_magics not in post:
        shell.input_transformers_post.append(await_waiting_magics)


def unregister(shell: Any) -> None:
    """Remove the transformer (IPython keeps registered magics)."""
    if await_waiting_magics in shell.input_transformers_post:
        shell.input_transformers_post.remove(await_waiting_magics)
