"""A command's grandchildren cannot keep its task running: not one left holding its
stdout, not one that escaped its process group (setsid) while a timeout or a cancel
ends it. Real processes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from jupyter_tasks import TaskManager
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
