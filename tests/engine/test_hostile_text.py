"""Text no UTF-8 can hold (a lone surrogate, left by a bad decode) in a task's output and
options: output keeps every line, with U+FFFD in place of each bad character; an option
is refused with a readable error and nothing written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jupyter_tasks import TaskContext, TaskManager, task
from jupyter_tasks.exceptions import InvalidRequest

# what os.listdir() or a subprocess's output decoded with surrogateescape gives for the
# bytes of a Latin-1 file name: not a str that UTF-8 (or SQLite) can take
BAD_NAME = os.fsdecode(b"r\xe9sum\xe9.txt")


@task("hostile_output")
def hostile_output(ctx: TaskContext) -> str:
    """Log lines around one that holds lone surrogates."""
    ctx.log("first line")
    ctx.log(f"found {BAD_NAME}")
    ctx.write("half a pair \ud83d\n", "stderr")
    ctx.log("last line")
    return "done"


@pytest.fixture
async def manager(db_path: Path):
    async with TaskManager(db_path, queues={"default": 1}, flush_interval=0.02) as m:
        yield m


async def test_output_with_lone_surrogates_keeps_every_line(manager: TaskManager) -> None:
    # one bad character failed the whole write: every line flushed with it was lost
    submitted = await manager.submit("hostile_output", mode="background")
    assert (await manager.wait(submitted.id, timeout=30)).status == "succeeded"
    entries = await manager.store.get_logs(submitted.id)
    text = "".join(e.text for e in entries)
    assert text == ("first line\nfound r\ufffdsum\ufffd.txt\nhalf a pair \ufffd\n"
                    "last line\n")
    assert [e.stream for e in entries] == ["log", "stderr", "log"]


@pytest.mark.parametrize("option", ["label", "task_key", "idempotency_key"])
async def test_an_option_with_a_lone_surrogate_is_refused(manager: TaskManager,
                                                          option: str) -> None:
    with pytest.raises(InvalidRequest,
                       match=f"{option}: must be a (non-empty )?string of valid Unicode"):
        await manager.submit("hostile_output", mode="background", **{option: BAD_NAME})
    assert await manager.store.count_tasks() == 0
