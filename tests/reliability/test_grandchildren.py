"""A command's grandchildren cannot keep its task running: not one left holding its
stdout, not one that escaped its process group (setsid) while a timeout or a cancel
ends it. Real processes."""

from __future__ import annotations

import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from jupyter_tasks import TaskManager, task
from tests.waiting import eventually


def named(marker: str) -> list[psutil.Process]:
    """The live processes whose command line holds ``marker``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if marker in " ".join(proc.info["cmdline"] or ()) and \
                    proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.fixture
def marker() -> Iterator[str]:
    """A name for this test's grandchildren; any left at the end are killed."""
    name = f"jt-gc-{uuid.uuid4().hex[:12]}"
    yield name
    for proc in named(name):
        proc.kill()


async def test_a_grandchild_holding_stdout_does_not_keep_a_finished_command_running(
        tmp_path: Path, marker: str) -> None:
    # before (Python 3.11): Process.wait() returned only once every pipe closed, so the
    # task stayed running until the grandchild's sleep ended
    async with TaskManager(tmp_path / "tasks.db", queues={"default": 1}) as manager:
        job = await manager.submit_spec(
            {"command": ["bash", "-c", f"exec -a {marker} sleep 600 & echo parent-done"]},
            mode="job")
        done = await manager.wait(job.id, timeout=60)
        assert done.status == "succeeded", done.error
        logs = "".join(e.text for e in await manager.store.get_logs(job.id))
        assert "parent-done" in logs

        async def gone() -> bool:
            return not named(marker)

        # it was in the command's group: ended with it
        await eventually(gone, what="the grandchild ended with its group")


@pytest.mark.parametrize("how", ["timeout", "cancel"])
async def test_a_timeout_or_cancel_ends_a_command_whose_grandchild_escaped_its_group(
        tmp_path: Path, marker: str, how: str) -> None:
    # before: the task stayed running (its group dead) until the escaped grandchild
    # exited, holding a slot, whatever the timeout or the cancel
    script = f"trap '' TERM; setsid bash -c 'exec -a {marker} sleep 600' & sleep 600"
    async with TaskManager(tmp_path / "tasks.db", queues={"default": 1}) as manager:
        job = await manager.submit_spec({"command": ["bash", "-c", script]}, mode="job",
                                        max_retries=0, timeout=1 if how == "timeout" else None)

        async def escaped() -> bool:
            return bool(named(marker))

        await eventually(escaped, what="the grandchild escaped its group")
        if how == "cancel":
            await manager.cancel(job.id)
        done = await manager.wait(job.id, timeout=60)
        assert done.status == ("timeout" if how == "timeout" else "cancelled"), done.error
        # (whether the escaped grandchild outlives it depends on when the group's end
        # finds it still a descendant: the fixture ends any left)


@task("runs_a_program")
def runs_a_program(argv: list[str], shell: bool = False) -> int:
    """Wait in ``subprocess.run`` for a program (a function in a thread, not a command)."""
    return subprocess.run(argv[0] if shell else argv, shell=shell, check=False).returncode


@pytest.mark.parametrize("how", ["argv", "shell"])
async def test_a_cancel_ends_the_program_a_function_waits_on(
        tmp_path: Path, marker: str, how: str) -> None:
    # before: the thread waited in waitpid, where the cancel's exception cannot land; the
    # task was written cancelled 2 s later and the program ran on to its end (600 s)
    argv = ["bash", "-c", f"exec -a {marker} sleep 600"]
    if how == "shell":  # a shell between: its child is ended too
        argv = [f"bash -c 'exec -a {marker} sleep 600'; echo never"]
    async with TaskManager(tmp_path / "tasks.db", queues={"default": 1}) as manager:
        job = await manager.submit_spec(
            {"name": "runs_a_program", "params": {"argv": argv, "shell": how == "shell"}},
            mode="job", max_retries=0)

        async def started() -> bool:
            return bool(named(marker))

        await eventually(started, what="the program started")
        await manager.cancel(job.id)
        done = await manager.wait(job.id, timeout=60)
        assert done.status == "cancelled", done.error

        async def gone() -> bool:
            return not named(marker)

        await eventually(gone, what="the program ended with the cancel")
        # the thread got the cancel once the wait returned: its work really stopped
        assert not [t for t in threading.enumerate() if t.name == "jupyter-tasks:runs_a_program"]
