"""Per-thread output capture: what a background cell prints or displays goes to its own sink.

ipykernel 7 keeps the parent request of ``sys.stdout``/``sys.stderr`` and of the
display publisher in context variables (``set_thread_parent``); a thread that
sets none falls back to the *global* parent, which is whatever cell runs at that
moment. That is why plain threads print into the wrong cell. We do two things:

* the worker thread of a background cell sets a context variable naming its
  :class:`OutputSink`; ``sys.stdout``/``sys.stderr`` are wrapped by
  :class:`RoutedStream` and ``display_pub.publish``/``clear_output`` are
  wrapped, so that writes and displays from such a thread (and from threads it
  starts) land in the sink instead of on IOPub. The card then shows the sink
  through its ``Output`` widget, throttled.
* the worker thread also sets ipykernel's thread parent to the submitting
  cell's request, so a Python write that escapes the wrappers goes to the cell
  that started the work, not to the one that happens to run next.

Bytes written to the file descriptors 1 and 2 themselves (a program run without
capturing its output, ``os.write(1, ...)``) are not Python writes: ipykernel's
descriptor watcher sends them to the cell running at that moment.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# the sink of the background task whose code runs in this context (thread)
current_sink: contextvars.ContextVar[OutputSink | None] = contextvars.ContextVar(
    "jupyter_tasks_sink", default=None
)

STREAM_CAP = 200_000  # characters kept per stream output (the head is dropped)
OUTPUTS_CAP = 200  # outputs kept per sink (the oldest are dropped)
LATE_FLUSH_SECONDS = 0.1  # what threads print after their task ended is written this often
_THREAD_ATTR = "_jupyter_tasks_sink"


# the value of ``current_sink`` for work that belongs to no task, in a thread that may
# have been started by one (a pool's worker, reused by a foreground cell)
NO_SINK: Any = object()


def sink_for_thread() -> OutputSink | None:
    """The sink the calling thread writes to, if any."""
    sink = current_sink.get()
    if sink is NO_SINK:
        return None
    if sink is None:
        sink = getattr(threading.current_thread(), _THREAD_ATTR, None)
    return sink


class OutputSink:
    """Outputs of one task in nbformat shape, safe to append to from any thread.

    Stream text is kept as chunks and joined only when a card takes a snapshot,
    so a loop printing a million lines costs an append per print.
    """

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.ctx: Any = None  # the TaskContext while the task runs: text also goes to its log
        # after the task ended: where text its threads still print goes (``LateOutput``)
        self.late: Callable[[str, str], None] | None = None
        self.version = 0
        self._lock = threading.Lock()
        self._outputs: list[dict[str, Any]] = []
        self._chunks: list[str] | None = None  # chunks of the last output if it is a stream
        self._chunk_len = 0
        self._clear_pending = False
        self._display_ids: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ writing

    def stream(self, name: str, text: str) -> None:
        """Append text to stream ``name`` (stdout/stderr)."""
        if not text:
            return
        with self._lock:
            self._maybe_clear()
            last = self._outputs[-1] if self._outputs else None
            if self._chunks is None or last is None or last.get("name") != name:
                # the other stream's pending chunks into its text first (they were dropped:
                # stdout, stderr, stdout showed only the last line)
                self._seal()
                last = {"output_type": "stream", "name": name, "text": ""}
                self._push(last)
                self._chunks = []
                self._chunk_len = 0
            self._chunks.append(text)
            self._chunk_len += len(text)
            if self._chunk_len > 2 * STREAM_CAP:
                joined = "".join(self._chunks)[-STREAM_CAP:]
                # from a line's start: a cut line read as a line of its own ("line 275894")
                newline = joined.find("\n", 0, len(joined) // 2)
                if newline >= 0:
                    joined = joined[newline + 1:]
                self._chunks = ["…(earlier output dropped)…\n", joined]
                self._chunk_len = len(joined)
            self.version += 1
        ctx = self.ctx
        if ctx is not None:
            ctx.write(text, name)
        elif self.late is not None:
            self.late(text, name)

    def display(self, data: dict[str, Any], metadata: dict[str, Any] | None = None,
                transient: dict[str, Any] | None = None, update: bool = False) -> None:
        """Add (or, with ``update``, replace by display id) a rich output."""
        display_id = (transient or {}).get("display_id")
        output = {"output_type": "display_data", "data": data, "metadata": metadata or {}}
        with self._lock:
            if update:
                old = self._display_ids.get(display_id) if display_id else None
                if old is not None:
                    old["data"], old["metadata"] = output["data"], output["metadata"]
                    self.version += 1
                return
            self._maybe_clear()
            self._seal()
            self._push(output)
            if display_id:
                self._display_ids[display_id] = output
            self.version += 1
        ctx = self.ctx
        text = data.get("text/plain")
        if ctx is not None and isinstance(text, str) and not _is_widget(data):
            ctx.write(text + "\n", "stdout")

    def error(self, ename: str, evalue: str, traceback: list[str], text: str) -> None:
        """Add an error output (a traceback); ``text`` (plain) goes to the log."""
        with self._lock:
            self._maybe_clear()
            self._seal()
            self._push({"output_type": "error", "ename": ename, "evalue": evalue,
                        "traceback": traceback})
            self.version += 1
        ctx = self.ctx
        if ctx is not None:
            ctx.write(text, "stderr")

    def clear(self, wait: bool = False) -> None:
        """``clear_output`` for this sink."""
        with self._lock:
            if wait:
                self._clear_pending = True
                return
            self._clear_now()

    # ------------------------------------------------------------------ reading

    def snapshot(self) -> tuple[dict[str, Any], ...]:
        """The outputs now, as a tuple of fresh dicts (for ``Output.outputs``)."""
        with self._lock:
            self._seal(keep_open=True)
            return tuple(dict(o) for o in self._outputs)

    # ---------------------------------------------------------------- internals

    def _seal(self, keep_open: bool = False) -> None:
        """Write the pending chunks of the last stream output into its ``text``."""
        if self._chunks is not None and self._outputs:
            text = "".join(self._chunks)
            self._outputs[-1]["text"] = text
            self._chunks = [text] if keep_open else None
            self._chunk_len = len(text)

    def _push(self, output: dict[str, Any]) -> None:
        self._outputs.append(output)
        if len(self._outputs) > OUTPUTS_CAP:
            dropped = self._outputs.pop(0)
            if dropped.get("output_type") == "display_data":
                self._display_ids = {k: v for k, v in self._display_ids.items()
                                     if v is not dropped}

    def _maybe_clear(self) -> None:
        if self._clear_pending:
            self._clear_pending = False
            self._clear_now()

    def _clear_now(self) -> None:
        self._outputs = []
        self._chunks = None
        self._chunk_len = 0
        self._display_ids = {}
        self.version += 1


class LateOutput:
    """What a task's threads print after the task ended: into its log, and its cards
    woken to show it (they stop refreshing at the end). Any thread may call it; the
    text is written a tick later, in one write however many prints came meanwhile."""

    def __init__(self, task_id: str, manager: Any, wake: Callable[[], None]) -> None:
        self.task_id = task_id
        self.manager = manager
        self.wake = wake
        self._lock = threading.Lock()
        self._pending: list[tuple[float, str, str]] = []

    def __call__(self, text: str, stream: str) -> None:
        with self._lock:
            first = not self._pending
            self._pending.append((time.time(), stream, text))
        loop = self.manager.loop
        if first and loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(loop.call_later, LATE_FLUSH_SECONDS, self._flush)

    def _flush(self) -> None:
        with self._lock:
            entries, self._pending = self._pending, []
        self.wake()
        if entries and self.manager.running:
            self.manager.state.spawn(self.manager.store.append_logs(self.task_id, entries))


def _is_widget(data: dict[str, Any]) -> bool:
    return "application/vnd.jupyter.widget-view+json" in data


class RoutedStream(io.TextIOBase):
    """Wraps ``sys.stdout``/``sys.stderr``: writes from a task's thread go to its sink.

    Everything else (attributes, ``set_parent``, writes from other threads) is
    the wrapped stream's business.
    """

    # IPython 9 tees output by assigning ``sys.stdout.write = wrapper(old write)``:
    # that patch must land on this object, not be forwarded to the wrapped
    # stream, or the wrapped stream's write would call ours and ours it, forever
    _own = frozenset({"_inner", "_name", "_pid", "write", "writelines", "flush"})

    def __init__(self, inner: Any, name: str) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_pid", os.getpid())

    def write(self, text: str) -> int:  # type: ignore[override]
        # a forked child (a multiprocessing pool's worker) has a copy of the sink, which
        # nobody reads: the kernel's own stream takes its lines to the notebook, as it
        # does a plain cell's children's
        sink = sink_for_thread() if os.getpid() == self._pid else None
        if sink is None:
            return self._inner.write(text)
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        sink.stream(self._name, text)
        return len(text)

    def writelines(self, lines: Any) -> None:  # type: ignore[override]
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if sink_for_thread() is None or os.getpid() != self._pid:
            self._inner.flush()

    def isatty(self) -> bool:
        return bool(getattr(self._inner, "isatty", lambda: False)())

    def fileno(self) -> int:
        return self._inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._inner, "encoding", "utf-8")

    @property
    def closed(self) -> bool:  # type: ignore[override]
        return bool(getattr(self._inner, "closed", False))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._own:
            object.__setattr__(self, name, value)
        else:
            setattr(self._inner, name, value)

    def __delattr__(self, name: str) -> None:
        if name in self._own:
            object.__delattr__(self, name)
        else:
            delattr(self._inner, name)


_installed: dict[str, Any] = {}


def _logging_handlers() -> list[Any]:
    """Every handler of every logger made so far (the root's too)."""
    import logging

    loggers = [logging.getLogger(), *(logger for logger in
                                      logging.Logger.manager.loggerDict.values()
                                      if isinstance(logger, logging.Logger))]
    return [handler for logger in loggers for handler in logger.handlers]


def _reroute_logging(wrappers: dict[int, RoutedStream]) -> None:
    """Logging handlers made before the extension write through its stream wrappers.

    ``logging.basicConfig(stream=sys.stdout)`` keeps the kernel's own stream: a
    background cell's log lines went past the wrapper, into the cell that had
    submitted it, and neither into its card nor into the task's log.
    """
    import logging

    for handler in _logging_handlers():
        if isinstance(handler, logging.StreamHandler):
            wrapper = wrappers.get(id(handler.stream))
            if wrapper is not None:
                _installed.setdefault("log_handlers", []).append((handler, handler.stream))
                handler.setStream(wrapper)


def install(shell: Any) -> None:
    """Wrap the streams, the display publisher and ``Thread.start`` (idempotent)."""
    import sys

    if _installed:
        return
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not isinstance(stream, RoutedStream):
            _installed[name] = stream
            setattr(sys, name, RoutedStream(stream, name))
    _reroute_logging({id(_installed[n]): getattr(sys, n) for n in ("stdout", "stderr")
                      if n in _installed})
    pub = getattr(shell, "display_pub", None)
    if pub is not None:
        publish, clear = pub.publish, pub.clear_output
        _installed["display_pub"] = (pub, publish, clear)

        def routed_publish(data: Any, metadata: Any = None, *args: Any, **kwargs: Any) -> Any:
            sink = sink_for_thread()
            if sink is None:
                return publish(data, metadata, *args, **kwargs)
            sink.display(data, metadata, kwargs.get("transient"), bool(kwargs.get("update")))
            return None

        def routed_clear(wait: bool = False) -> Any:
            sink = sink_for_thread()
            if sink is None:
                return clear(wait)
            sink.clear(wait)
            return None

        pub.publish = routed_publish
        pub.clear_output = routed_clear
    _refuse_prompts_in_tasks(getattr(shell, "kernel", None))
    start: Callable[..., Any] = threading.Thread.start
    _installed["thread_start"] = start

    def routed_start(self: threading.Thread) -> None:
        # threads started by a task's code print into the same card
        sink = sink_for_thread()
        if sink is not None and getattr(self, _THREAD_ATTR, None) is None:
            setattr(self, _THREAD_ATTR, sink)
        start(self)

    threading.Thread.start = routed_start  # type: ignore[method-assign]
    submit = ThreadPoolExecutor.submit
    _installed["pool_submit"] = submit

    def routed_submit(self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any,
                      **kwargs: Any) -> Any:
        # a pool's worker threads outlive the work that started them: a pool first used
        # by a background cell printed a later foreground cell's work into that ended
        # task's card and log. The work goes where its submitter's output goes
        return submit(self, _in_sink, sink_for_thread() or NO_SINK, fn, *args, **kwargs)

    ThreadPoolExecutor.submit = routed_submit  # type: ignore[method-assign]


def _in_sink(sink: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` writing to ``sink`` (``NO_SINK``: to no task's)."""
    token = current_sink.set(sink)
    try:
        return fn(*args, **kwargs)
    finally:
        current_sink.reset(token)


# ipykernel's prompts: its methods (what ``input`` and ``getpass`` are while a cell runs)
# and what it puts back between cells (saved when the running cell began)
_PROMPTS = (("raw_input", "input()"), ("getpass", "getpass()"),
            ("_sys_raw_input", "input()"), ("_save_getpass", "getpass()"))


def _refuse_prompts_in_tasks(kernel: Any) -> None:
    """``input()`` and ``getpass()`` from a background cell's thread: a clear error at once.

    The cell has returned: a prompt went out under that ended cell, which no frontend
    shows, and the task waited for a reply for ever; between cells input() read the
    kernel's own stdin ("EOF when reading a line"). ``%run_blocking`` (no sink) still
    asks: its cell waits, and shows the prompt.
    """
    if kernel is None:
        return
    for attr, what in _PROMPTS:
        prompt = getattr(kernel, attr, None)
        if callable(prompt):
            _installed.setdefault("prompts", []).append((kernel, attr, kernel.__dict__.get(attr)))
            setattr(kernel, attr, _refused_in_tasks(prompt, what))


def _refused_in_tasks(prompt: Callable[..., Any], what: str) -> Callable[..., Any]:
    def ask(*args: Any, **kwargs: Any) -> Any:
        if sink_for_thread() is not None:
            from IPython.core.error import StdinNotImplementedError

            raise StdinNotImplementedError(
                f"{what} cannot ask in a %%background cell: its cell has returned, and no "
                "frontend shows a prompt for it. Ask with jupyter_tasks.request_confirmation"
                "(), whose question shows on the task's card, or read the answer in a cell "
                "before")
        return prompt(*args, **kwargs)

    return ask


def uninstall() -> None:
    """Undo :func:`install`."""
    import sys

    for name in ("stdout", "stderr"):
        if name in _installed and isinstance(getattr(sys, name), RoutedStream):
            setattr(sys, name, _installed[name])
    if "display_pub" in _installed:
        pub, publish, clear = _installed["display_pub"]
        pub.publish, pub.clear_output = publish, clear
    for handler, stream in _installed.get("log_handlers", ()):
        if isinstance(handler.stream, RoutedStream):  # not set to another since
            handler.setStream(stream)
    for kernel, attr, own in _installed.get("prompts", ()):
        if own is None:  # the class's method again
            kernel.__dict__.pop(attr, None)
        else:
            setattr(kernel, attr, own)
    if "thread_start" in _installed:
        threading.Thread.start = _installed["thread_start"]  # type: ignore[method-assign]
    if "pool_submit" in _installed:
        ThreadPoolExecutor.submit = _installed["pool_submit"]  # type: ignore[method-assign]
    _installed.clear()
