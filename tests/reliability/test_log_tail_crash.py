"""A log past its budget keeps its last lines on disk as it goes: a SIGKILLed worker's job
still shows what it printed just before the crash, which is what its user looks for."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jupyter_tasks import TaskManager
from tests.waiting import eventually_sync

pytestmark = pytest.mark.slow

BUDGET = 20_000
LINE_CHARS = 100  # "00000123 " and filler and a newline
TASKS = textwrap.dedent('''
    import time

    from jupyter_tasks import TaskContext, task

    @task("chatty_forever", mode="job")
    def chatty_forever(ctx: TaskContext) -> None:
        """Log numbered lines until stopped (the test kills its worker)."""
        i = 0
        while True:
            ctx.log(f"{i:08d} " + "y" * 90)
            i += 1
            if i % 200 == 0:
                time.sleep(0.01)
''')


def stored(db_path: Path, task_id: str) -> str:
    with sqlite3.connect(db_path, timeout=30) as conn:
        rows = conn.execute("SELECT text FROM task_logs WHERE task_id = ? ORDER BY seq",
                            (task_id,)).fetchall()
    return "".join(text for (text,) in rows)


def numbers(text: str) -> list[int]:
    return [int(line.split()[0]) for line in text.splitlines() if line.endswith("y" * 90)]


async def queue_job(db_path: Path) -> str:
    async with TaskManager(db_path, queues={}, as_worker=False, runs_background=False,
                           make_default=False) as manager:
        task = await manager.enqueue_by_name("chatty_forever", {}, label="chatty")
    return task.id


def test_a_killed_workers_log_keeps_its_last_lines(tmp_path: Path, db_path: Path) -> None:
    module = tmp_path / "chatty_tasks.py"
    module.write_text(TASKS)
    task_id = asyncio.run(queue_job(db_path))
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 (closed below)
    worker = subprocess.Popen(
        [sys.executable, "-m", "jupyter_tasks.cli", "--db", str(db_path), "worker",
         "--concurrency", "1", "--max-log-chars", str(BUDGET)],
        env={**os.environ, "JUPYTER_TASKS_MODULES": str(module)},
        stdout=log, stderr=subprocess.STDOUT)
    try:
        # far past the head's 200 lines: lines the old tail kept only in memory
        eventually_sync(lambda: max(numbers(stored(db_path, task_id)), default=0) >= 5_000,
                        timeout=120, interval=0.1, what="the log's recent lines on disk")
        worker.kill()
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=30)
        log.close()
    text = stored(db_path, task_id)
    lines = numbers(text)
    # the head from the first line, the note, then a window of the latest lines, in order
    assert lines[0] == 0 and lines == sorted(lines), lines[:5]
    assert "reached its 20,000 characters" in text
    head = numbers(text[:text.index("reached its")])
    tail = numbers(text[text.index("reached its"):])
    assert head == list(range(len(head))) and len(head) <= BUDGET // LINE_CHARS
    assert tail[-1] >= 5_000 and tail == list(range(tail[0], tail[-1] + 1)), \
        "the tail is the contiguous run of the latest lines"
    # bounded as it goes: the head, the note and about a tenth of the budget
    assert len(text) < BUDGET + BUDGET // 10 + 1_000
