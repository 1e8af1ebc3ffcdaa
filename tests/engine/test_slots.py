"""A queue's concurrency counts the work actually running, not the tasks said running."""

from __future__ import annotations

import time
from pathlib import Path

from jupyter_tasks import TaskManager, task


@task("stuck_in_native_call", mode="job")
def stuck_in_native_call(seconds: float, marks: str, tag: str) -> str:
    """Write when the body starts and ends around one call a stop cannot interrupt."""
    with open(marks, "a") as f:
        f.write(f"{time.time()!r} start {tag}\n")
    try:
        time.sleep(seconds)  # one native call: a stop reaches the thread when it returns
    finally:
        with open(marks, "a") as f:
            f.write(f"{time.time()!r} end {tag}\n")
    return tag


def most_at_once(marks: Path) -> int:
    """The most bodies running at once, from their start and end marks."""
    running = most = 0
    for line in sorted(marks.read_text().splitlines(), key=lambda x: float(x.split()[0])):
        running += 1 if line.split()[1] == "start" else -1
        most = max(most, running)
    return most


async def test_a_timed_out_body_still_running_keeps_its_slot(db_path: Path,
                                                             tmp_path: Path) -> None:
    # before: the task was written timeout, and after the stop's grace the slot took the
    # next job while the first body still ran: four bodies at once on a concurrency-1
    # queue (a GPU, a licence, a rate limit shared by its jobs)
    marks = tmp_path / "marks"
    async with TaskManager(db_path, queues={"solo": 1}, make_default=False) as manager:
        stuck = await manager.submit_spec(
            {"name": "stuck_in_native_call",
             "params": {"seconds": 4.0, "marks": str(marks), "tag": "stuck"}},
            mode="job", queue="solo", timeout=0.3)
        after = await manager.submit_spec(
            {"name": "stuck_in_native_call",
             "params": {"seconds": 0.0, "marks": str(marks), "tag": "after"}},
            mode="job", queue="solo")
        ended = await manager.wait(stuck.id, timeout=60)
        assert ended.status == "timeout", ended.error
        assert (await manager.wait(after.id, timeout=60)).status == "succeeded"
    assert most_at_once(marks) == 1, marks.read_text()
    # the task said its end at its timeout, before its body's call returned
    body_end = next(float(line.split()[0]) for line in marks.read_text().splitlines()
                    if line.endswith("end stuck"))
    assert ended.finished_at is not None and ended.finished_at < body_end
