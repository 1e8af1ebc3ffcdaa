"""Running work where it can be stopped: threads that take an async exception,
and subprocesses in their own process group."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import contextvars
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import psutil

from .context import TaskContext
from .exceptions import InvalidCommand, RaisedInThread, StoreError, TaskCancelled

log = logging.getLogger(__name__)

KILL_GRACE_SECONDS = 2.0
MEMORY_POLL_SECONDS = 0.05
# create_time of one process read twice agrees to the clock tick; another process
# that got the same pid later differs by far more
SAME_START_SECONDS = 0.5
_PR_SET_PDEATHSIG = 1
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") \
        else None
except (OSError, AttributeError):
    _prctl = None

# called with (pgid, record) once a task's process group exists, and (pgid, None) once
# it is gone: the manager writes the record into the task's row for the reaper
GroupHook = Callable[[int, "dict[str, Any] | None"], Awaitable[None]]


class ShimLost(Exception):
    """The shim leading a command's process group died before the command ended (killed
    from outside): not the command's failure; the worker ended the group after it."""

    def __init__(self, argv0: str, returncode: int) -> None:
        how = f"ended with code {returncode}"
        if returncode < 0:
            try:
                how = f"killed by {signal.Signals(-returncode).name}"
            except ValueError:  # a real-time signal has no name
                how = f"killed by signal {-returncode}"
        super().__init__(
            f"the shim leading the process group of {argv0!r} was {how} before the command "
            "ended; the command did not fail on its own, and its group was ended with it")


class MemoryLimitExceeded(Exception):
    """A subprocess tree used more memory than its task allowed."""

    def __init__(self, peak_mb: float, limit_mb: float) -> None:
        super().__init__(f"memory limit exceeded: {peak_mb:.0f} MB used, limit {limit_mb:.0f} MB")
        self.peak_mb = peak_mb
        self.limit_mb = limit_mb


def interrupt_thread(thread_id: int, exc_type: type[BaseException] = TaskCancelled) -> bool:
    """Raise ``exc_type`` in another thread at its next bytecode; False if no such thread."""
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type)
    )
    if done > 1:  # never leave an exception pending in more than one thread
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)
        return False
    return done == 1


@dataclass
class ThreadRun:
    """Bookkeeping for a call running in its own thread."""

    thread_id: int | None = None
    cpu_seconds: float = 0.0
    finished: bool = False  # a flag, not an Event: one is made per task, most never read
    # set once the call returned (not raised): a stop that reaches the awaiting side after
    # that came too late to stop it, and the caller may keep ``value`` (see FunctionKind)
    returned: bool = False
    value: Any = None
    # whether it had returned when the stop reached the awaiting side: only then did the
    # stop come too late. One that returns later may have caught the stop and returned
    # what it had (a bare ``except:``), which is no end of its own
    returned_before_stop: bool = False
    # resolved on the loop once the call returned or raised, whoever still waits for it
    ended: asyncio.Future[Any] | None = None


async def run_in_thread(fn: Callable[..., Any], args: Sequence[Any] = (),
                        kwargs: Mapping[str, Any] | None = None,
                        run: ThreadRun | None = None) -> Any:
    """Call ``fn`` in a new daemon thread with the caller's context variables; await its result.

    If the awaiting coroutine is cancelled, ``TaskCancelled`` is raised inside
    the thread and we wait (bounded) for it to unwind, so the work really stops.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    # once the awaiting side has given up (cancel), nobody else reads the outcome
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    run = run or ThreadRun()
    run.ended = future
    context = contextvars.copy_context()
    kwargs = dict(kwargs or {})

    def target() -> None:
        run.thread_id = threading.get_ident()
        start = time.thread_time()
        try:
            value = context.run(fn, *args, **kwargs)
        except BaseException as exc:  # the awaiting side decides what it means
            outcome: tuple[bool, Any] = (False, exc)
        else:
            outcome = (True, value)
            run.value, run.returned = value, True
        finally:
            run.cpu_seconds = time.thread_time() - start
            run.finished = True
        _hand_back(loop, future, *outcome)

    thread = threading.Thread(target=target, name=f"jupyter-tasks:{getattr(fn, '__name__', 'fn')}",
                              daemon=True)
    thread.start()
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        run.returned_before_stop = run.returned
        await _stop_thread(run)
        raise


# how often a wait for a stopped call's thread looks whether its process stops
THREAD_LOOK_SECONDS = 0.5


async def until_thread_ended(run: ThreadRun, stopping: Callable[[], bool], what: str) -> None:
    """Until the call of ``run`` returned or raised, or ``stopping()`` is true; a wait is
    said in the log, ``what`` naming who waits."""
    if run.ended is None or run.ended.done():
        return
    log.warning("%s waits for its thread, still in a call that cannot be interrupted",
                what)
    while not run.ended.done() and not stopping():
        await asyncio.wait([run.ended], timeout=THREAD_LOOK_SECONDS)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # the awaiting side gave up (a cancel)
        return
    if ok:
        future.set_result(value)
    elif isinstance(value, (StopIteration, GeneratorExit)):  # see RaisedInThread
        carried = RaisedInThread(f"the work in a thread raised {type(value).__name__}")
        carried.__cause__ = value
        future.set_exception(carried)
    else:
        future.set_exception(value)


def _hand_back(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], ok: bool,
               value: Any) -> None:
    """From a thread: settle ``future`` on its loop with a value or an exception."""
    with contextlib.suppress(RuntimeError):  # the loop closed while the thread ran
        loop.call_soon_threadsafe(_settle, future, ok, value)


async def on_daemon_thread(fn: Callable[..., Any], *args: Any, name: str) -> Any:
    """``fn(*args)`` on a daemon thread of its own, awaited; a cancel leaves it running.

    Unlike ``asyncio.to_thread`` (the loop's pool, whose threads the interpreter waits
    for at exit), a process that stops does not wait for a call that hangs.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def target() -> None:
        try:
            outcome: tuple[bool, Any] = (True, fn(*args))
        except BaseException as exc:
            outcome = (False, exc)
        _hand_back(loop, future, *outcome)

    threading.Thread(target=target, name=name, daemon=True).start()
    return await future


def uncancel() -> None:
    """Take back a cancel the current asyncio task received and chose to absorb, so that
    nothing later in it takes that cancel as still pending (a no-op before Python 3.11)."""
    task = asyncio.current_task()
    take_back = getattr(task, "uncancel", None)
    if take_back is not None:
        take_back()


async def _stop_thread(run: ThreadRun) -> None:
    # a thread blocked in C (e.g. a long sleep) sees the exception only when it
    # returns to Python bytecode, so keep re-raising until it ends or we give up
    deadline = time.monotonic() + KILL_GRACE_SECONDS
    programs: list[psutil.Process] | None = None
    # a call that has returned is not interrupted: its value is kept
    while not run.finished and not run.returned and time.monotonic() < deadline:
        if run.thread_id is not None:
            interrupt_thread(run.thread_id)
            if programs is None:
                # a wait for a program (subprocess.run) returns only when the program
                # ends: the program is the work, and it is stopped with the call
                programs = programs_waited_on(run.thread_id)
                signal_each(programs, signal.SIGTERM)
        await asyncio.sleep(0.02)
    if programs:
        signal_each(programs, signal.SIGKILL)  # what outlived the grace


def programs_waited_on(thread_id: int) -> list[psutil.Process]:
    """The programs a thread waits on now (in ``subprocess.run``, ``Popen.wait``,
    ``communicate``, or an asyncio subprocess on its own event loop), with their
    descendants, found before any of them is signalled (a grandchild whose parent is
    gone can no longer be found)."""
    frame = sys._current_frames().get(thread_id)
    waited: dict[int, Any] = {}
    while frame is not None:
        program = _waited_in(frame)
        if program is not None:
            waited[program.pid] = program
        loop = frame.f_locals.get("self")
        if isinstance(loop, asyncio.AbstractEventLoop) and not loop.is_closed():
            # an event loop of the thread's own (a cell's top-level await, asyncio.run):
            # the programs its tasks await, and a wake-up, for the stop to land at once
            waited.update(_awaited_by_tasks_of(loop))
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_nothing)
        frame = frame.f_back
    found: list[psutil.Process] = []
    for pid in waited:
        try:
            program = psutil.Process(pid)
            found += [program, *program.children(recursive=True)]
        except psutil.Error:
            continue  # it ended meanwhile
    return found


def _nothing() -> None:
    """A callback that only wakes an event loop."""


def _awaited_by_tasks_of(loop: asyncio.AbstractEventLoop) -> dict[int, Any]:
    """pid -> the asyncio subprocess (or Popen) a task of ``loop`` is waiting on, read from
    the frames of each task's chain of awaits (the loop's thread is blocked in its
    select, so the tasks stand still)."""
    waited: dict[int, Any] = {}
    try:
        tasks = list(asyncio.all_tasks(loop))
    except RuntimeError:  # the set of tasks changed while read: none found this time
        tasks = []
    for task in tasks:
        awaiting: Any = task.get_coro()
        while awaiting is not None:
            frame = getattr(awaiting, "cr_frame", None) or getattr(awaiting, "gi_frame", None)
            program = None if frame is None else _waited_in(frame)
            if program is not None:
                waited[program.pid] = program
            awaiting = getattr(awaiting, "cr_await", None) or getattr(awaiting, "gi_yieldfrom",
                                                                     None)
    return waited


def _waited_in(frame: Any) -> Any:
    """The program a frame of a ``Popen`` or asyncio ``Process`` method waits on (its
    ``self``), not reaped yet (its pid cannot name another process); else None."""
    program = frame.f_locals.get("self")
    if isinstance(program, (subprocess.Popen, asyncio.subprocess.Process)) \
            and program.returncode is None:
        return program
    return None


def validate_argv(command: Any) -> list[str]:
    """The command as a list of strings, or ``InvalidCommand`` with a clear reason."""
    if isinstance(command, (str, bytes)):
        raise InvalidCommand(
            f"the command must be a list of arguments such as ['ls', '-l'], not the string "
            f"{command!r}: no shell is used, so split a command line with shlex.split() first"
        )
    if not isinstance(command, (list, tuple)) or not command:
        raise InvalidCommand("the command must be a non-empty list of strings")
    argv = []
    for i, arg in enumerate(command):
        if isinstance(arg, os.PathLike):
            arg = os.fspath(arg)
        if not isinstance(arg, str):
            raise InvalidCommand(f"argument {i} of the command is {type(arg).__name__}, not str")
        if "\0" in arg:  # exec would refuse it at run time, after the task was accepted
            raise InvalidCommand(f"argument {i} of the command contains a NUL byte",
                                 errors=[{"field": f"command[{i}]",
                                          "message": "must not contain a NUL byte"}])
        argv.append(arg)
    if not argv[0]:  # exec would find no program, after the task was accepted
        raise InvalidCommand("the command's program (argument 0) is empty",
                             errors=[{"field": "command[0]", "message": "must not be empty"}])
    return argv


@dataclass
class ProcessUsage:
    """What a process tree used: sampled while it ran, and its direct child's peak at exit.

    ``peak_rss_mb`` is the larger of two figures. The sampled one sums the tree's
    resident sets every ``MEMORY_POLL_SECONDS`` (what the memory limit acts on), so it
    misses what a short process used between two samples. The exit one is the kernel's
    ``ru_maxrss`` of the command, reaped by the shim (``shim.py``): the largest
    resident set of that one process, or of a descendant it waited for, at any moment
    (not a sum over processes running at once). Only runs through the shim have it:
    those that ``record_exit`` or ask for ``exit_peak``.
    """

    peak_rss_mb: float = 0.0
    cpu_seconds: float = 0.0
    pid: int | None = None
    on_group: GroupHook | None = None
    # (database, task id, attempt): run the command through the shim, which writes
    # its exit into that task's ``process`` record (commands and code jobs of the manager)
    record_exit: tuple[str, str, int] | None = None
    # run through the shim, recording nothing: for the exit-time peak (jobs on Dask),
    # and so that the whole group ends with its worker (a task's run_subprocess). Not
    # for a plain run_process outside a task: the shim costs a Python start-up
    exit_peak: bool = False
    # the exit code of a command that had ended on its own when a stop (a cancel, a
    # timeout) reached ``run_process``, which then still raises CancelledError: the stop
    # came too late to stop it, and the caller may keep its end (see ``CommandKind``)
    exit_before_stop: int | None = None


SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim.py")


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` making Linux SIGKILL the child when the thread that started it ends.

    None where ``prctl`` is missing. A second line of defence only: the child's own
    children do not inherit it, so the recorded group and the reaper stay the mechanism.
    """
    if _prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: no signal would come
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def _shim_preexec() -> Callable[[], None] | None:
    """``die_with_parent`` for the shim: SIGUSR1, which it catches, instead of SIGKILL.

    The shim outlives its worker long enough to record an exit that came first;
    work still running when the worker dies is ended by the shim (the whole group).
    """
    if _prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGUSR1), 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


async def _shim_says(sock: socket.socket) -> tuple[bytes, bytes]:
    """The shim's answer once it tried to start the command (b"" if it died first),
    and whatever it sent after that line."""
    loop = asyncio.get_running_loop()
    got = b""
    while b"\n" not in got:
        try:
            part = await loop.sock_recv(sock, 64)
        except ConnectionResetError:  # killed with our "go" unread: as if it died first
            break
        if not part:
            break
        got += part
    answer, _, rest = got.partition(b"\n")
    return answer, rest


def _shim_told(sock: socket.socket, said: bytes) -> bytes:
    """``said`` and what the shim has sent since, as far as it is in the socket now
    (never waits)."""
    got = said
    try:
        while part := sock.recv(256):
            got += part
    except OSError:  # BlockingIOError included: nothing more was written
        pass
    return got


def _shim_exit_peak_mb(said: bytes) -> float | None:
    """The exit-time peak in what the shim sent (0.0: unknown); None if it sent none: its
    command has not ended, or the shim died before it did (``ShimLost``)."""
    for line in said.splitlines():
        word, _, kib = line.partition(b" ")
        if word == b"peak" and kib.isdigit():
            return int(kib) / 1024
    return None


def has_exited(pid: int) -> bool:
    """Whether our child ``pid`` has exited (never waits, reaps nothing)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True  # reaped already: the loop's child watcher got its exit


def group_record(pid: int) -> dict[str, Any]:
    """Where the process group led by ``pid`` lives: pgid, pid, host, the leader's start time."""
    try:
        started_at: float | None = psutil.Process(pid).create_time()
    except psutil.Error:
        started_at = None  # already gone: a process later found at this pid is not ours
    try:
        pgid = os.getpgid(pid)
    except OSError:
        pgid = pid
    return {"pgid": pgid, "pid": pid, "host": socket.gethostname(), "started_at": started_at}


def group_members(pgid: int) -> list[psutil.Process]:
    """Live (not zombie) processes of a process group."""
    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (OSError, psutil.Error):
            continue
    return members


def escaped_descendants(pgid: int) -> list[psutil.Process]:
    """Live descendants of group ``pgid``'s members that left the group (``setsid``, as
    daemon-starting tools do): a signal to the group does not reach them."""
    children: dict[int, list[psutil.Process]] = {}
    inside: list[psutil.Process] = []
    for proc in psutil.process_iter(["ppid"]):
        children.setdefault(proc.info["ppid"], []).append(proc)
        try:
            if os.getpgid(proc.pid) == pgid:
                inside.append(proc)
        except OSError:
            continue
    escaped, stack, seen = [], list(inside), {p.pid for p in inside}
    while stack:
        for child in children.get(stack.pop().pid, ()):
            if child.pid in seen:
                continue
            seen.add(child.pid)
            stack.append(child)  # its own children may be anywhere again
            try:
                if os.getpgid(child.pid) != pgid:
                    escaped.append(child)
            except OSError:
                continue
    return escaped


def signal_each(processes: list[psutil.Process], sig: int) -> None:
    """Signal processes found earlier; psutil skips one whose pid now names another."""
    for proc in processes:
        try:
            proc.send_signal(sig)
        except psutil.Error:
            pass  # gone (or its pid reused: psutil checks the start time)


def _is_our_group(record: Mapping[str, Any]) -> bool:
    pgid = int(record["pgid"])
    if pgid <= 1 or pgid == os.getpgrp():
        return False  # never init's group nor our own, whatever a row says
    leader = int(record.get("pid") or pgid)
    if leader != pgid:
        return True
    try:
        started = psutil.Process(leader).create_time()
    except psutil.Error:
        # no leader: Linux does not hand out a pid still in use as a process group
        # id, so members left under this pgid can only be the recorded group's
        return True
    recorded = record.get("started_at")
    return recorded is not None and abs(started - float(recorded)) <= SAME_START_SECONDS


def end_process_group(record: Mapping[str, Any], grace: float = KILL_GRACE_SECONDS) -> bool:
    """End what is left of a recorded group on this host: SIGTERM, then SIGKILL after ``grace``.

    Blocking. True once psutil sees no live member (or the pgid now belongs to
    someone else: then ours is long gone); False if members survived SIGKILL.
    """
    if not _is_our_group(record):
        return True
    pgid = int(record["pgid"])
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, max(grace, 5.0))):
        if not group_members(pgid):
            return True
        kill_process_group(pgid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not group_members(pgid):
                return True
            time.sleep(0.02)
    return not group_members(pgid)


def end_recorded_groups(process: Mapping[str, Any], grace: float = KILL_GRACE_SECONDS) -> bool:
    """``end_process_group`` for a task's ``process`` record and any ``others`` it lists."""
    records = [process, *(process.get("others") or [])]
    return all([end_process_group(r, grace) for r in records if r.get("pgid")])


def kill_process_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a whole process group, ignoring one that is already gone."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def terminate_group(exited: asyncio.Future[None], pgid: int) -> None:
    """SIGTERM the group, then SIGKILL what is left after a grace period; until its
    leader has ``exited`` (``start_process``). Descendants that left the group are
    found first (once their parent is gone they cannot be) and get the same signals."""
    try:
        escaped = await asyncio.to_thread(escaped_descendants, pgid)
    except asyncio.CancelledError:
        kill_process_group(pgid, signal.SIGKILL)  # a second stop: the group at least ends
        raise
    except RuntimeError:
        # the interpreter is exiting (a kernel's shutdown stops its manager at exit):
        # no thread pool takes work any more, so the walk runs here
        escaped = escaped_descendants(pgid)
    kill_process_group(pgid, signal.SIGTERM)
    signal_each(escaped, signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(exited), KILL_GRACE_SECONDS)
    except asyncio.TimeoutError:
        pass
    finally:
        # runs even if we are cancelled while waiting: nothing may outlive its task
        kill_process_group(pgid, signal.SIGKILL)
        signal_each(escaped, signal.SIGKILL)
    await exited


class _ExitWatchingProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """The streams' protocol of ``asyncio.create_subprocess_exec``, also telling when the
    process exited, its pipes closed or not."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited: asyncio.Future[None] = loop.create_future()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


# asyncio's own read limit of a subprocess's streams
STREAM_LIMIT = 2**16


class Started(NamedTuple):
    """A process ``start_process`` started."""

    process: asyncio.subprocess.Process
    exited: asyncio.Future[None]  # done once it has exited, its pipes closed or not
    transport: asyncio.SubprocessTransport  # closed to let go of pipes a grandchild holds


async def start_process(*argv: str, **kwargs: Any) -> Started:
    """``asyncio.create_subprocess_exec``, with a future done once the process has exited.

    Before Python 3.12 ``Process.wait()`` returns only once every pipe is closed: a
    grandchild left holding stdout (``sleep 20 &``, or one that escaped the group
    with ``setsid``) kept a finished command's task running, and a timeout or a
    cancel could not end it.
    """
    loop = asyncio.get_running_loop()
    protocol = _ExitWatchingProtocol(STREAM_LIMIT, loop)
    transport, _ = await loop.subprocess_exec(lambda: protocol, *argv, **kwargs)
    return Started(asyncio.subprocess.Process(transport, protocol, loop), protocol.exited,
                   transport)


async def run_process(
    argv: Sequence[str],
    *,
    ctx: TaskContext | None = None,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = False,
    text: bool = True,
    capture_output: bool = True,
    memory_limit_mb: float | None = None,
    usage: ProcessUsage | None = None,
    inherit_env: bool = True,
) -> subprocess.CompletedProcess[Any]:
    """Run ``argv`` in a new process group, streaming its output into ``ctx``'s log.

    Cancelling the awaiting coroutine (cancel or timeout) ends the whole group:
    SIGTERM, then SIGKILL; unless the command had already exited on its own: its
    end is then read as usual (``ProcessUsage.exit_before_stop``) before the
    CancelledError goes on. When the main process exits, whatever it left
    running in its group is killed too, so nothing outlives the task.
    """
    argv = validate_argv(argv)
    usage = usage or ProcessUsage()
    full_env = None
    if env is not None:
        full_env = {**os.environ, **env} if inherit_env else dict(env)
    shim: socket.socket | None = None
    spawn: list[str] = argv
    extra: dict[str, Any] = {"preexec_fn": die_with_parent()}
    if usage.record_exit is not None or usage.exit_peak:
        # the shim leads the group and starts argv once the group is in the row
        # (database "-": no row, the shim only measures)
        db, task_id, attempt = usage.record_exit or ("-", "-", 0)
        shim, theirs = socket.socketpair()
        shim.setblocking(False)  # read and written by the event loop
        spawn = [sys.executable, "-I", "-S", SHIM, db if db == "-" else os.path.abspath(db),
                 task_id, str(attempt), str(theirs.fileno()), "--", *argv]
        extra = {"preexec_fn": _shim_preexec(), "pass_fds": (theirs.fileno(),)}
    # outside a task and not captured, the output goes where this process's goes (a
    # terminal, a kernel's cell), unread and unchanged, as subprocess.run lets it through
    output = None if ctx is None and not capture_output else asyncio.subprocess.PIPE
    try:
        proc, exited, transport = await start_process(
            *spawn,
            cwd=cwd,
            env=full_env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
            **extra,
        )
    except BaseException:
        if shim is not None:
            shim.close()
        raise
    finally:
        if shim is not None:
            theirs.close()
    pgid = proc.pid
    usage.pid = proc.pid
    said = b""  # what the shim sent after its answer
    stop_came_late = False  # a stop reached us once the command had ended on its own
    shim_lost = False  # it ended without telling how its command did
    chunks: dict[str, list[bytes]] = {"stdout": [], "stderr": []}

    async def pump(stream: asyncio.StreamReader | None, name: str) -> None:
        if stream is None:  # not piped: nothing to read
            return
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while True:
            data = await stream.read(65536)
            if not data:
                tail = decoder.decode(b"", final=True)
                if tail and ctx is not None:
                    ctx.write(tail, name)
                return
            if capture_output:
                chunks[name].append(data)
            if ctx is not None:
                ctx.write(decoder.decode(data), name)

    monitor: asyncio.Future[None] | None = None
    pumps = [asyncio.ensure_future(pump(proc.stdout, "stdout")),  # type: ignore[arg-type]
             asyncio.ensure_future(pump(proc.stderr, "stderr"))]  # type: ignore[arg-type]
    waiter = exited
    try:
        if usage.on_group is not None:
            # recorded in the task's row, so a reaper can end the group if we die
            await announce_group(usage.on_group, pgid, group_record(proc.pid))
        watched = proc.pid
        if shim is not None:
            try:
                await asyncio.get_running_loop().sock_sendall(shim, b"go")
            except (BrokenPipeError, ConnectionResetError):
                pass  # killed once its group was recorded: it says nothing (ShimLost below)
            line, said = await _shim_says(shim)
            answer = line.split()
            if answer[:1] == [b"err"]:  # argv could not be started: as if we had started it
                await exited
                errno = int(answer[1])
                raise OSError(errno, os.strerror(errno), argv[0])
            if answer[:1] == [b"ok"]:
                watched = usage.pid = int(answer[1])  # the work, not the shim, is measured
        monitor = asyncio.ensure_future(watch_memory(watched, usage, memory_limit_mb))
        try:
            done, _ = await asyncio.wait([waiter, monitor], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # a command that had ended on its own when the stop came (its exit not seen
            # here yet) is not stopped: its end is read as usual, then the stop passed on
            if shim is not None:
                said = _shim_told(shim, said)  # its shim tells the exit before its own end
            if not (has_exited(proc.pid) or _shim_exit_peak_mb(said) is not None):
                raise
            stop_came_late, done = True, set()
        if monitor in done and monitor.exception() is not None:
            await terminate_group(exited, pgid)
            raise monitor.exception()  # type: ignore[misc]
        # the monitor also ends, quietly, when the process is already gone from
        # psutil's view (a very short command): the exit status is still to come
        await waiter
        # output still held by grandchildren must not keep us waiting forever
        try:
            await asyncio.wait_for(asyncio.gather(*pumps), 1.0)
        except asyncio.TimeoutError:
            pass
        kill_process_group(pgid)
    except asyncio.CancelledError:
        await terminate_group(exited, pgid)
        raise
    finally:
        if shim is not None:
            if proc.returncode is not None:  # the shim has ended: it sent the peak, if any
                peak = _shim_exit_peak_mb(_shim_told(shim, said))
                shim_lost = peak is None
                usage.peak_rss_mb = max(usage.peak_rss_mb, peak or 0.0)
            shim.close()
        if monitor is not None:
            monitor.cancel()
        for p in pumps:
            p.cancel()
        await asyncio.gather(*([monitor] if monitor else []), *pumps, return_exceptions=True)
        if proc.returncode is not None:
            transport.close()  # the pipes an escaped grandchild may still hold (it lives on)
        if usage.on_group is not None:
            kill_process_group(pgid)  # the record goes only once nothing of the group is left
            await announce_group(usage.on_group, pgid, None)
    returncode = proc.returncode
    if shim_lost and returncode is not None:
        raise ShimLost(argv[0], returncode)
    if stop_came_late:
        usage.exit_before_stop = returncode
        raise asyncio.CancelledError
    out: Any = b"".join(chunks["stdout"]) if capture_output else None
    err: Any = b"".join(chunks["stderr"]) if capture_output else None
    if text and capture_output:
        out = out.decode("utf-8", errors="replace")
        err = err.decode("utf-8", errors="replace")
    if check and returncode:
        raise subprocess.CalledProcessError(returncode, argv, out, err)
    return subprocess.CompletedProcess(argv, returncode, out, err)


async def start_group_guard(pgid: int) -> asyncio.subprocess.Process | None:
    """A shim in guard mode that ends the group ``pgid`` if this process dies (Linux);
    None where parent-death signals are missing. ``stop_group_guard`` ends it."""
    preexec = _shim_preexec()
    if preexec is None:
        return None
    return await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-S", SHIM, "--guard", str(pgid), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=preexec,
        start_new_session=True)  # not in the group it guards


async def stop_group_guard(guard: asyncio.subprocess.Process | None) -> None:
    """End a guard from ``start_group_guard`` (its group ended here, as it should)."""
    if guard is None or guard.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        guard.kill()
    await guard.wait()


async def announce_group(hook: GroupHook, pgid: int, record: dict[str, Any] | None) -> None:
    """Tell ``hook`` a process group started (``record``) or ended (None); never raises."""
    try:
        await hook(pgid, record)
    except StoreError as exc:  # the database's own trouble, said where it arose: one line
        log.warning("recording process group %s failed: %s", pgid, exc)
    except Exception:  # a failed write must not fail the work; the reaper then sees less
        log.exception("recording process group %s failed", pgid)


async def watch_memory(pid: int, usage: ProcessUsage, limit_mb: float | None) -> None:
    """Sample the tree's RSS and CPU; raise ``MemoryLimitExceeded`` past the limit."""
    try:
        root = psutil.Process(pid)
    except psutil.Error:
        return
    known: dict[int, psutil.Process] = {pid: root}
    cpu_done: dict[int, float] = {}
    while True:
        rss = 0
        try:
            for child in root.children(recursive=True):
                known.setdefault(child.pid, child)
        except psutil.Error:
            pass
        for p_id, proc in list(known.items()):
            try:
                with proc.oneshot():
                    rss += proc.memory_info().rss
                    times = proc.cpu_times()
                    cpu_done[p_id] = times.user + times.system
            except psutil.Error:
                known.pop(p_id, None)
        usage.cpu_seconds = max(usage.cpu_seconds, sum(cpu_done.values()))
        rss_mb = rss / (1024 * 1024)
        usage.peak_rss_mb = max(usage.peak_rss_mb, rss_mb)
        if limit_mb is not None and rss_mb > limit_mb:
            raise MemoryLimitExceeded(rss_mb, limit_mb)
        await asyncio.sleep(MEMORY_POLL_SECONDS)
