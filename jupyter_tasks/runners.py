"""Running work where it can be stopped: threads that take an async exception,
and subprocesses in their own process group."""

from __future__ import annotations

import asyncio
import codecs
import contextvars
import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psutil

from .context import TaskContext
from .exceptions import InvalidCommand, TaskCancelled

KILL_GRACE_SECONDS = 2.0
MEMORY_POLL_SECONDS = 0.05


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
    context = contextvars.copy_context()
    kwargs = dict(kwargs or {})

    def settle(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def target() -> None:
        run.thread_id = threading.get_ident()
        start = time.thread_time()
        try:
            value = context.run(fn, *args, **kwargs)
        except BaseException as exc:  # the awaiting side decides what it means
            outcome: tuple[bool, Any] = (False, exc)
        else:
            outcome = (True, value)
        finally:
            run.cpu_seconds = time.thread_time() - start
            run.finished = True
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:
            pass  # the loop closed while this thread was still running

    thread = threading.Thread(target=target, name=f"jupyter-tasks:{getattr(fn, '__name__', 'fn')}",
                              daemon=True)
    thread.start()
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await _stop_thread(run)
        raise


async def _stop_thread(run: ThreadRun) -> None:
    # a thread blocked in C (e.g. a long sleep) sees the exception only when it
    # returns to Python bytecode, so keep re-raising until it ends or we give up
    deadline = time.monotonic() + KILL_GRACE_SECONDS
    while not run.finished and time.monotonic() < deadline:
        if run.thread_id is not None:
            interrupt_thread(run.thread_id)
        await asyncio.sleep(0.02)


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
        argv.append(arg)
    return argv


@dataclass
class ProcessUsage:
    """What a process tree used, sampled while it ran."""

    peak_rss_mb: float = 0.0
    cpu_seconds: float = 0.0
    pid: int | None = None


def kill_process_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a whole process group, ignoring one that is already gone."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def terminate_group(proc: asyncio.subprocess.Process, pgid: int) -> None:
    """SIGTERM the group, then SIGKILL what is left after a grace period."""
    kill_process_group(pgid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), KILL_GRACE_SECONDS)
    except asyncio.TimeoutError:
        pass
    finally:
        # runs even if we are cancelled while waiting: nothing may outlive its task
        kill_process_group(pgid, signal.SIGKILL)
    await proc.wait()


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
    SIGTERM, then SIGKILL. When the main process exits, whatever it left
    running in its group is killed too, so nothing outlives the task.
    """
    argv = validate_argv(argv)
    usage = usage or ProcessUsage()
    full_env = None
    if env is not None:
        full_env = {**os.environ, **env} if inherit_env else dict(env)
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=full_env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    pgid = proc.pid
    usage.pid = proc.pid
    chunks: dict[str, list[bytes]] = {"stdout": [], "stderr": []}

    async def pump(stream: asyncio.StreamReader, name: str) -> None:
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

    monitor = asyncio.ensure_future(_watch_memory(proc.pid, usage, memory_limit_mb))
    pumps = [asyncio.ensure_future(pump(proc.stdout, "stdout")),  # type: ignore[arg-type]
             asyncio.ensure_future(pump(proc.stderr, "stderr"))]  # type: ignore[arg-type]
    waiter = asyncio.ensure_future(proc.wait())
    try:
        done, _ = await asyncio.wait([waiter, monitor], return_when=asyncio.FIRST_COMPLETED)
        if monitor in done and monitor.exception() is not None:
            await terminate_group(proc, pgid)
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
        await terminate_group(proc, pgid)
        raise
    finally:
        monitor.cancel()
        for p in pumps:
            p.cancel()
        await asyncio.gather(monitor, *pumps, return_exceptions=True)
    returncode = proc.returncode
    out: Any = b"".join(chunks["stdout"]) if capture_output else None
    err: Any = b"".join(chunks["stderr"]) if capture_output else None
    if text and capture_output:
        out = out.decode("utf-8", errors="replace")
        err = err.decode("utf-8", errors="replace")
    if check and returncode:
        raise subprocess.CalledProcessError(returncode, argv, out, err)
    return subprocess.CompletedProcess(argv, returncode, out, err)


async def _watch_memory(pid: int, usage: ProcessUsage, limit_mb: float | None) -> None:
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
