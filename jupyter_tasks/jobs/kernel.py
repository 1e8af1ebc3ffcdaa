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
is started again on new ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
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

KernelStarted = Callable[[int | None], Awaitable[None]]


async def start_kernel(client: Any, *, launch: dict[str, Any], on_started: KernelStarted,
                       log: Callable[[str], None]) -> None:
    """Start ``client``'s kernel and its client, on new ports while others take them.

    ``on_started`` hears each started kernel's pid, before it answers, so its
    process group can be recorded for the reaper and its memory watched, and
    None once a kernel given up on is killed. A kernel that dies or never
    answers for another reason ends the start with nbclient's own error, as
    before.
    """
    ports = ""
    for attempt in range(1, START_ATTEMPTS + 1):
        client.km = client.create_kernel_manager()
        await client.async_start_new_kernel(**launch)
        pid = kernel_pid(client.km)
        await on_started(pid)
        taken = await _wait_until_ready(client, pid)
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


async def _wait_until_ready(client: Any, pid: int | None) -> list[int]:
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
                raise RuntimeError("Kernel died before replying to kernel_info") from None
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"Kernel didn't respond in {STARTUP_TIMEOUT} seconds") from None


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
