"""A worker claims only the function jobs it has a task for: two workers on one database,
one started with an older task module (a rolling upgrade). Real SQLite file."""

from __future__ import annotations

from pathlib import Path

from jupyter_tasks import TaskManager
from jupyter_tasks.registry import Registry


def quick(n: int) -> int:
    return n * 2


async def test_a_worker_without_the_task_leaves_its_jobs_to_one_that_has_it(
        tmp_path: Path) -> None:
    # before: the older worker claimed 7 of 10 such jobs and failed them with "no task
    # registered under the name 'quick'", although the other worker had it
    path = tmp_path / "tasks.db"
    older, newer = Registry(), Registry()
    newer.register("quick", quick, mode="job")
    async with TaskManager(path, registry=older, queues={"default": 4}) as without, \
            TaskManager(path, registry=newer, queues={"default": 1}) as with_it:
        jobs = [await with_it.submit_spec({"name": "quick", "params": {"n": n}},
                                          max_retries=0) for n in range(10)]
        # a command is anyone's: the older worker still takes such work
        command = await with_it.submit_spec({"command": ["true"]}, mode="job", max_retries=0)
        done = [await with_it.wait(job.id, timeout=60) for job in jobs]
        assert [(t.status, t.result) for t in done] == [("succeeded", 2 * n) for n in range(10)]
        assert {t.worker_id for t in done} == {with_it.state.worker_id}
        assert (await without.wait(command.id, timeout=60)).status == "succeeded"
        # and it does not claim them on its own either
        assert not await without.store.has_due_job("default", older.names_json())
