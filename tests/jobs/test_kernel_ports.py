"""A notebook job whose kernel loses a port to another process starts it again.

jupyter_client chooses a kernel's ports a moment before the kernel binds them;
another process can take one in between (a CI run lost this way once: a kernel
that lost its iopub port hung, and its job failed after the 60 s start-up
timeout). The race cannot be timed from here, so these tests hold a port and
make jupyter_client's port cache choose it, as the race would: the kernel, its
failed bind and the new start are real.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from jupyter_client.connect import LocalPortCache

from jupyter_tasks import TaskManager
from jupyter_tasks.jobs import kernel
from tests.jobs.conftest import write_notebook
from tests.waiting import eventually

# the order jupyter_client's local provisioner asks its port cache for ports
PORT_ORDER = ("shell", "iopub", "stdin", "hb", "control")


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port another process would hold: bound and listening here."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def choose_port(monkeypatch: pytest.MonkeyPatch, port: int, which: str, starts: int) -> None:
    """Make the next ``starts`` kernel starts choose ``port`` as their ``which`` port."""
    cache = LocalPortCache.instance()
    real = cache.find_available_port
    asked = {"n": 0}

    def find_available_port(ip: str) -> int:
        n = asked["n"]
        asked["n"] += 1
        if n // len(PORT_ORDER) < starts and PORT_ORDER[n % len(PORT_ORDER)] == which:
            return port
        return real(ip)

    monkeypatch.setattr(cache, "find_available_port", find_available_port)


def kernels_left() -> list[psutil.Process]:
    """Kernel processes this test process started that are still there."""
    left = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "ipykernel_launcher" in " ".join(child.cmdline()) and \
                    child.status() != psutil.STATUS_ZOMBIE:
                left.append(child)
        except psutil.Error:
            pass
    return left


def kernelspec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str,
               argv: list[str]) -> None:
    """A kernel named ``name`` that runs ``argv``, found through JUPYTER_PATH."""
    spec_dir = tmp_path / "jupyter" / "kernels" / name
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps(
        {"argv": argv, "display_name": name, "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter") + os.pathsep +
                       os.environ.get("JUPYTER_PATH", ""))


async def logs_text(manager: TaskManager, task_id: str) -> str:
    return "".join(e.text for e in await manager.store.get_logs(task_id))


# shell: the kernel exits at once; iopub: it hangs alive and never answers
@pytest.mark.parametrize("which", ["shell", "iopub"])
async def test_a_kernel_that_lost_a_port_starts_again_on_new_ports(
        manager: TaskManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        held_port: int, which: str) -> None:
    write_notebook(tmp_path / "job.ipynb", ["print('ran', 6 * 7)"])
    choose_port(monkeypatch, held_port, which, starts=1)
    task = await manager.submit_spec({"notebook": "job.ipynb", "root_dir": str(tmp_path)},
                                     max_retries=0)
    done = await manager.wait(task.id, timeout=120)
    assert done.status == "succeeded", done.error
    text = await logs_text(manager, task.id)
    assert f"lost port {held_port} to another process" in text, text
    assert "ran 42" in text
    await eventually(lambda: _value(not kernels_left()), timeout=30, what="no kernel left")


async def test_a_port_taken_at_every_start_fails_the_job_and_leaves_no_kernel(
        manager: TaskManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        held_port: int) -> None:
    write_notebook(tmp_path / "job.ipynb", ["print('never')"])
    choose_port(monkeypatch, held_port, "iopub", starts=kernel.START_ATTEMPTS)
    task = await manager.submit_spec({"notebook": "job.ipynb", "root_dir": str(tmp_path)},
                                     max_retries=0)
    done = await manager.wait(task.id, timeout=240)
    assert done.status == "failed"
    assert done.error["type"] == "KernelPortsTaken", done.error
    assert f"port {held_port}" in done.error["message"]
    assert f"each of {kernel.START_ATTEMPTS} starts" in done.error["message"]
    text = await logs_text(manager, task.id)
    assert text.count("starting it again on new ports") == kernel.START_ATTEMPTS - 1, text
    await eventually(lambda: _value(not kernels_left()), timeout=30, what="no kernel left")


# a kernel that takes its own control port first, at its first start only: it dies
# of a real EADDRINUSE, and by the time anyone looks, nothing holds the port
STEALS_ITS_OWN_PORT = """
import json, os, runpy, socket, sys
connection_file, marker = sys.argv[1], sys.argv[2]
if not os.path.exists(marker):
    open(marker, "w").close()
    ports = json.load(open(connection_file))
    thief = socket.socket()
    thief.bind((ports["ip"], ports["control_port"]))
    thief.listen()
sys.argv = ["ipykernel_launcher", "-f", connection_file]
runpy.run_module("ipykernel_launcher", run_name="__main__")
"""


async def test_a_kernel_that_died_of_a_port_freed_since_starts_again(
        manager: TaskManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # CI lost a job this way: another process held the port only for a moment
    # (a connection's ephemeral port), so no socket showed who took it
    script = tmp_path / "racy.py"
    script.write_text(STEALS_ITS_OWN_PORT)
    kernelspec(tmp_path, monkeypatch, "racy", [sys.executable, str(script), "{connection_file}",
                                               str(tmp_path / "first-start-done")])
    write_notebook(tmp_path / "job.ipynb", ["print('ran', 6 * 7)"])
    task = await manager.submit_spec({"notebook": "job.ipynb", "root_dir": str(tmp_path),
                                      "kernel_name": "racy"}, max_retries=0)
    done = await manager.wait(task.id, timeout=120)
    assert (tmp_path / "first-start-done").exists()
    assert done.status == "succeeded", done.error
    text = await logs_text(manager, task.id)
    assert "starting it again on new ports" in text, text
    assert "ran 42" in text
    await eventually(lambda: _value(not kernels_left()), timeout=30, what="no kernel left")


async def test_a_kernel_that_dies_on_its_own_is_not_started_again(
        manager: TaskManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kernelspec(tmp_path, monkeypatch, "dies",
               [sys.executable, "-c", "import sys; sys.exit(3)", "{connection_file}"])
    write_notebook(tmp_path / "job.ipynb", ["print('never')"])
    task = await manager.submit_spec({"notebook": "job.ipynb", "root_dir": str(tmp_path),
                                      "kernel_name": "dies"}, max_retries=0)
    done = await manager.wait(task.id, timeout=120)
    assert done.status == "failed"
    assert "Kernel died before replying" in done.error["message"], done.error
    assert "starting it again" not in await logs_text(manager, task.id)


@pytest.fixture
def another_kernel() -> Iterator[int]:
    """The pid of a process holding no socket: a kernel still starting."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield child.pid
    finally:
        child.kill()
        child.wait()


def unheld_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manager_on(*ports: int, transport: str = "tcp") -> object:
    """What ``ports_taken`` reads of a kernel manager: its transport, ip and ports."""
    class Manager:
        ip = "127.0.0.1"

    manager = Manager()
    manager.transport = transport  # type: ignore[attr-defined]
    for name, port in zip(kernel.PORT_NAMES, [*ports, 0, 0, 0, 0, 0], strict=False):
        setattr(manager, name, port)
    return manager


def test_ports_taken_names_only_ports_held_outside_the_kernel(
        held_port: int, another_kernel: int) -> None:
    km = manager_on(held_port, unheld_port())
    # held by this process, which is not the starting kernel: taken
    assert kernel.ports_taken(km, pid=another_kernel) == [held_port]
    # held by the kernel's own tree (here: this process as the kernel): not taken
    assert kernel.ports_taken(km, pid=os.getpid()) == []
    # nothing to tell it by: no local kernel process, another transport
    assert kernel.ports_taken(km, pid=None) == []
    assert kernel.ports_taken(manager_on(held_port, unheld_port(), transport="ipc"),
                              pid=another_kernel) == []


def test_every_port_held_outside_is_a_proxy_not_a_lost_race(
        held_port: int, another_kernel: int) -> None:
    # a container's port forwarder holds all of a kernel's ports, and they work
    assert kernel.ports_taken(manager_on(held_port), pid=another_kernel) == []


async def _value(value: bool) -> bool:
    return value


def test_connections_to_the_kernels_own_listener_are_not_a_taken_port(
        another_kernel: int) -> None:
    # a kernel answering its clients: connections its listener has not accepted yet
    # sit on its port and belong to no process (a sweep of notebook jobs saw them)
    listener = subprocess.Popen([sys.executable, "-c", LISTEN_WITHOUT_ACCEPTING],
                                stdout=subprocess.PIPE, text=True)
    try:
        port = int(listener.stdout.readline())  # type: ignore[union-attr]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]

        km = manager_on(port, unheld_port())
        assert kernel.ports_taken(km, pid=listener.pid) == []
        # the same listener seen from another kernel: taken
        assert kernel.ports_taken(km, pid=another_kernel) == [port]
        for client in clients:
            client.close()
    finally:
        listener.kill()
        listener.wait()


LISTEN_WITHOUT_ACCEPTING = """
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
print(s.getsockname()[1], flush=True)
time.sleep(120)
"""


def test_the_tests_own_kernels_cannot_lose_a_port(
        held_port: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # the papermill reference run of the corpus test hung 300 s in a CI run: its TCP
    # kernel lost its iopub port to another xdist worker's kernel. The kernels the
    # tests start through nbclient or papermill talk over IPC sockets instead, so the
    # same lost race (every TCP port choice handed a port held here) does not reach them
    import nbformat
    import papermill

    from tests.kernels import IpcKernelManager

    choose_port(monkeypatch, held_port, "iopub", starts=10)
    source = write_notebook(tmp_path / "plain.ipynb", ["print(6 * 7)"])
    papermill.execute_notebook(str(source), str(tmp_path / "out.ipynb"), progress_bar=False,
                               kernel_name="python3", start_timeout=30,
                               kernel_manager_class=IpcKernelManager)
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert out.cells[-1].outputs[0]["text"] == "42\n"
