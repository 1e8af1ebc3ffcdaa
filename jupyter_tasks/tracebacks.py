"""Tracebacks as users read them: their own frames, a cell named ``Cell In[8]``.

An error raised by a task's code travels through the frames that ran it: the
manager's ``_attempt``, ``run_in_thread``, the cell runner, asyncio and
``concurrent.futures``. Those frames say nothing to the person whose code
failed. :func:`user_traceback` formats an exception like
``traceback.format_exception`` but

* drops the *leading* frames that belong to jupyter-tasks or the standard
  library (the machinery that called the user's code), and jupyter-tasks frames
  between two frames of the user's code; frames the user's code called (a
  library, the standard library, even a jupyter-tasks helper raising) stay;
* names the code of a notebook cell the way IPython does (``Cell In[8], line 3``)
  instead of its temporary file, once the kernel side has registered that name
  with :func:`name_source`.

When nothing but machinery is left (a command that exited non-zero, an engine
error) only the exception line remains; the full text is kept beside it
(``traceback_full`` in a task's error).
"""

from __future__ import annotations

import os
import sysconfig
import threading
import traceback
from collections import OrderedDict

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_STDLIB = tuple(sorted({os.path.abspath(p) + os.sep for p in (
    sysconfig.get_paths().get("stdlib"), sysconfig.get_paths().get("platstdlib")) if p}))
_NAMES_KEPT = 2000

_names: OrderedDict[str, str] = OrderedDict()
_lock = threading.Lock()


def name_source(filename: str, display: str) -> None:
    """Show frames of code compiled as ``filename`` as ``display`` (e.g. ``Cell In[8]``)."""
    with _lock:
        _names[filename] = display
        _names.move_to_end(filename)
        while len(_names) > _NAMES_KEPT:
            _names.popitem(last=False)


def source_name(filename: str) -> str | None:
    """The registered display name of ``filename``, if any."""
    return _names.get(filename)


def is_engine_file(filename: str) -> bool:
    """A file of jupyter-tasks itself."""
    return os.path.abspath(filename).startswith(_PACKAGE) if filename[:1] != "<" else False


def is_runner_file(filename: str) -> bool:
    """A file of the machinery that runs tasks: jupyter-tasks or the standard library."""
    if filename[:1] == "<":  # <frozen runpy>, <string> of the machinery
        return filename.startswith("<frozen ")
    path = os.path.abspath(filename)
    return path.startswith(_PACKAGE) or path.startswith(_STDLIB)


def user_frames(stack: list[traceback.FrameSummary]) -> list[traceback.FrameSummary]:
    """``stack`` (outermost first) without the machinery that ran the user's code."""
    first = next((i for i, f in enumerate(stack) if not is_runner_file(f.filename)), None)
    if first is None:
        return []
    last = max(i for i, f in enumerate(stack) if not is_engine_file(f.filename))
    return [f for i, f in enumerate(stack)
            if i >= first and (i > last or not is_engine_file(f.filename))]


def user_traceback(exc: BaseException) -> str:
    """``exc`` formatted with the user's frames only (chained exceptions too)."""
    te = traceback.TracebackException(type(exc), exc, exc.__traceback__, compact=True)
    seen: set[int] = set()
    todo = [te]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        item.stack = traceback.StackSummary.from_list(user_frames(list(item.stack)))
        todo += [e for e in (item.__cause__, item.__context__) if e is not None]
    return rename_sources("".join(te.format()))


def full_traceback(exc: BaseException) -> str:
    """Every frame, cells named as in :func:`user_traceback`."""
    return rename_sources("".join(traceback.format_exception(type(exc), exc,
                                                             exc.__traceback__)))


def rename_sources(text: str) -> str:
    """Replace ``File "<cell's temp file>"`` by the cell's registered name."""
    if not _names or 'File "' not in text:
        return text
    with _lock:
        names = list(_names.items())
    for filename, display in names:
        quoted = f'File "{filename}"'
        if quoted in text:
            text = text.replace(quoted, display)
    return text


def error_message(error: BaseException) -> str:
    """What ``error`` says, even when its ``__str__`` fails (the end must be written)."""
    carries_on = "the process running it carries on"
    if isinstance(error, SystemExit):
        return f"sys.exit({error.code!r}) ended the task; {carries_on}"
    try:
        text = str(error)
    except BaseException as exc:
        return f"<unprintable {type(error).__name__}: its str() raised " \
               f"{type(exc).__name__}>; {carries_on}"
    if isinstance(error, KeyboardInterrupt):  # raised by the task, not a Ctrl-C of ours
        return f"KeyboardInterrupt{f' ({text})' if text else ''} ended the task; {carries_on}"
    if not text and not isinstance(error, Exception):  # a GeneratorExit() said nothing
        return f"{type(error).__name__} ended the task; {carries_on}"
    return text


# An error is written into the row and its event, read by every list and sent to every
# client: a 25 MB message (a file name the OS refused, quoted whole) made each of them
# 25 MB. Its start says what went wrong, its end where: both are kept
MAX_ERROR_MESSAGE_CHARS = 20_000
MAX_TRACEBACK_CHARS = 100_000


def cut_error_text(text: str, limit: int) -> str:
    """``text`` with its middle cut to ``limit`` characters or so, saying how much went."""
    if len(text) <= limit:
        return text
    keep = limit // 2
    return f"{text[:keep]}\n… ({len(text) - 2 * keep:,} characters cut) …\n{text[-keep:]}"
