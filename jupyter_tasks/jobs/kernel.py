"""A notebook job's kernel: start it until it really holds its ports, and kill it.

jupyter_client picks a kernel's five TCP ports by binding port 0 and letting go;
the kernel binds them again a second later. Another process starting a kernel
or opening a connection in between takes the port, and the kernel either exits
or, when it loses its iopub port, hangs without ever answering. Its client then
waits the whole start-up timeout for a kernel that will never come. Parallel
notebook jobs run in separate processes, where jupyter_client's own port cache
cannot see each other's choices, so this happens to real sweeps.

``start_kernel`` watches for that: a kernel that has not answered yet while a
socket outside its process tree holds one of its ports will never answer, and
is started again on new ports. So is a kernel that died saying a port was in
use: the socket that took it may be gone by then (a connection's ephemeral
port), so only the kernel's own last words tell.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psutil

from ..exceptions import KernelPortsTaken

# how long a notebook job waits for a started kernel to answer (each start)
STARTUP_TIMEOUT = 60
# starts on new ports before giving up; each lost race is one start
START_ATTEMPTS = 4
# how often a kernel that has not answered is checked for lost ports (jupyter_client
# waits a second for each kernel_info reply, so checks come about this often anyway)
PORT_CHECK_SECONDS = 1.0

PORT_NAMES = ("shell_port", "iopub_port", "stdin_port", "hb_port", "control_port")
WILDCARD_IPS = ("0.0.0.0", "::", "")

# how much of a kernel's stderr is kept to tell why it died
STDERR_TAIL_BYTES = 8192
# how long a dead kernel's last stderr is waited for
STDERR_DRAIN_SECONDS = 5.0
# what ipykernel (zmq) says when a port it binds is taken
PORT_IN_USE = re.compile(rb"Address already in use \(addr='tcp://[^']*:(\d+)'\)")

KernelStarted = Callable[[int | None], Awaitable[None]]


async def start_kernel(client: Any, *, launch: dict[str, Any], on_started: KernelStarted,
                       log: Callable[[str], None], connection_file: str | None = None) -> None:
    """Start ``client``'s kernel and its client, on new ports while others take them.

    ``on_started`` hears each started kernel's pid, before it answers, so its
    process group can be recorded for the reaper and its memory watched, and
    None once a kernel given up on is killed. A kernel that dies or never
    answers for another reason ends the start with nbclient's own error, as
    before. ``connection_file``: where each start writes the kernel's ports and
    key (else a random name in the temp folder).
    """
    ports = ""
    for attempt in range(1, START_ATTEMPTS + 1):
        client.km = client.create_kernel_manager()
        if connection_file is not None:
            client.km.connection_file = connection_file
        stderr = StderrTail()
        try:
            await client.async_start_new_kernel(**launch, stderr=stderr.write_fd)
        finally:
            stderr.launched()
        pid = kernel_pid(client.km)
        await on_started(pid)
        taken = await _wait_until_ready(client, pid, stderr)
        if not taken:
            client.kc.allow_stdin = False
            return
        ports = ", ".join(str(p) for p in taken)
        if attempt < START_ATTEMPTS:
            log(f"the kernel lost port {ports} to another process before it bound it; "
                "starting it again on new ports")
        await shutdown_kernel(client, pid)
        await on_started(None)  # that pid is gone: nothing may signal it any more
    raise KernelPortsTaken(
        f"the kernel could not bind its ports: another process held port {ports} "
        f"at each of {START_ATTEMPTS} starts")


async def _wait_until_ready(client: Any, pid: int | None, stderr: StderrTail) -> list[int]:
    """Wait for the kernel's first answer: [] once it answers, else the ports it lost.

    Raises nbclient's ``RuntimeError`` for a kernel that died or stayed silent
    for ``STARTUP_TIMEOUT`` without any of its ports taken by another process.
    """
    km = client.km
    client.kc = km.client()
    await maybe_await(client.kc.start_channels())
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            await maybe_await(client.kc.wait_for_ready(timeout=PORT_CHECK_SECONDS))
            return []
        except RuntimeError:
            taken = await asyncio.to_thread(ports_taken, km, pid)
            if taken:
                return taken
            if not await maybe_await(km.is_alive()):
                lost = await asyncio.to_thread(stderr.port_in_use)
                if lost is not None:
                    return [lost]
                raise RuntimeError("Kernel died before replying to kernel_info") from None
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"Kernel didn't respond in {STARTUP_TIMEOUT} seconds") from None


class StderrTail:
    """A kernel's stderr passed on to ours as it comes, its last bytes kept.

    The kernel writes to a pipe instead of our stderr; a thread copies each
    chunk to file descriptor 2, where it went before, and keeps the tail.
    """

    def __init__(self) -> None:
        read_fd, self.write_fd = os.pipe()
        self._tail = b""
        self._lock = threading.Lock()
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._pump, args=(read_fd,), daemon=True,
                                        name="kernel-stderr")
        self._thread.start()

    def launched(self) -> None:
        """The kernel holds its end now (or never will): close ours, so EOF comes."""
        with contextlib.suppress(OSError):
            os.close(self.write_fd)

    def _pump(self, read_fd: int) -> None:
        try:
            while chunk := os.read(read_fd, 65536):
                _write_all(2, chunk)
                with self._lock:
                    self._tail = (self._tail + chunk)[-STDERR_TAIL_BYTES:]
        except OSError:
            pass
        finally:
            os.close(read_fd)
            self._ended.set()

    def port_in_use(self) -> int | None:
        """The port a dead kernel said was in use, once its stderr ended; else None."""
        # the kernel is dead: its stderr ends as soon as its children's copies close
        self._ended.wait(STDERR_DRAIN_SECONDS)
        with self._lock:
            found = PORT_IN_USE.search(self._tail)
        return int(found.group(1)) if found else None


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``; a closed or broken one loses it, as it would have."""
    view = memoryview(data)
    with contextlib.suppress(OSError):
        while view:
            view = view[os.write(fd, view):]


def ports_taken(km: Any, pid: int | None) -> list[int]:
    """The kernel's TCP ports held by a socket outside the kernel's process tree.

    Empty where that cannot be told: another transport, no local process (a
    provisioner that runs the kernel elsewhere), a system that does not show
    other processes' sockets, or every port held outside the tree, which is a
    proxy in front of the kernel (a container's), not a lost race: a race
    loses a port, not all five.
    """
    if getattr(km, "transport", "tcp") != "tcp" or pid is None:
        return []
    ports = {getattr(km, name, 0) for name in PORT_NAMES} - {0, None}
    ip = getattr(km, "ip", "")
    try:
        # a socket made while psutil reads is shown without its pid: only a port
        # held outside the tree in two reads in a row counts
        first = _held_outside(ports, ip, pid)
        taken = first & _held_outside(first, ip, pid) if first else set()
    except (psutil.Error, OSError):
        return []
    return [] if taken == ports else sorted(taken)


def _held_outside(ports: set[int], ip: str, pid: int | None) -> set[int]:
    """Those of ``ports`` on which a socket outside the kernel's process tree sits.

    Connections to the kernel's own listener share its port, and those not yet
    accepted belong to no process: they count as the kernel's.
    """
    sockets = [s for s in psutil.net_connections(kind="tcp")
               if s.laddr and s.laddr.port in ports
               and s.status != psutil.CONN_TIME_WAIT  # no hold on a port zmq binds
               and (s.laddr.ip == ip or s.laddr.ip in WILDCARD_IPS or ip in WILDCARD_IPS)]
    tree = _process_tree(pid)  # read after the sockets: the kernel's are in it by now
    listening = {s.laddr.port for s in sockets
                 if s.status == psutil.CONN_LISTEN and s.pid in tree}
    return {s.laddr.port for s in sockets if s.pid not in tree
            and (s.status == psutil.CONN_LISTEN or s.laddr.port not in listening)}


def _process_tree(pid: int | None) -> set[int]:
    """The kernel's pid and its descendants' (a kernel may be a wrapper's child)."""
    if pid is None:
        return set()
    try:
        root = psutil.Process(pid)
        return {pid, *(p.pid for p in root.children(recursive=True))}
    except psutil.Error:
        return set()


def kernel_pid(km: Any) -> int | None:
    """The pid of the process a kernel manager launched, if any."""
    provisioner = getattr(km, "provisioner", None)
    process = getattr(provisioner, "process", None)
    return getattr(process, "pid", None)


async def shutdown_kernel(client: Any, pid: int | None) -> None:
    """Kill the kernel now (no graceful wait) and release its channels and files."""
    km = client.km
    try:
        if km is not None and await maybe_await(km.is_alive()):
            await asyncio.wait_for(maybe_await(km.shutdown_kernel(now=True)), 10)
    except Exception:
        pass
    finally:
        with contextlib.suppress(Exception):
            if km is not None:
                await maybe_await(km.cleanup_resources())
        with contextlib.suppress(Exception):
            if client.kc is not None:
                await maybe_await(client.kc.stop_channels())
        client.kc = None
        client.km = None
        # whatever nbclient/jupyter_client left behind does not outlive the job
        await asyncio.to_thread(kill_tree, pid)


def kill_tree(pid: int | None) -> None:
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


async def maybe_await(value: Any) -> Any:
    """Await ``value`` if it is awaitable: jupyter_client methods are either, by class."""
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        return await value
    return value
