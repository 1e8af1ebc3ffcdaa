"""A task's log is bounded: its first ``max_log_chars`` and its last tenth of that are kept,
with lines saying what was left out, so a task printing in a loop cannot fill the disk."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from jupyter_tasks import TaskContext, TaskManager, task
from jupyter_tasks.context import MAX_PROGRESS_MESSAGE, LogTail
from tests.waiting import eventually

BUDGET = 100_000
LINE = "z" * 990


@task("budget_lines")
def budget_lines(ctx: TaskContext, lines: int) -> int:
    """Log ``lines`` numbered lines of about 1,000 characters."""
    for i in range(lines):
        ctx.log(f"{i:08d} {LINE}")
    return lines


@task("budget_one_write")
def budget_one_write(ctx: TaskContext, chars: int) -> int:
    """One write of ``chars`` characters, ending with a mark."""
    ctx.write("a" * (chars - 4) + "END\n")
    return chars


def tail_numbers(lines: list[str]) -> list[int]:
    """The numbers of a tail's lines; its oldest may be the end of a line (rows of the tail
    are at most a sixteenth of it, and whole rows are dropped), which has none."""
    if lines and not re.match(r"\d+ ", lines[0]):
        lines = lines[1:]
    return [int(line.split()[0]) for line in lines]


async def stored_log(manager: TaskManager, task_id: str) -> str:
    entries = await manager.store.get_logs(task_id, 0, 1_000_000)
    return "".join(entry.text for entry in entries)


@pytest.fixture
async def manager(db_path: Path):
    async with TaskManager(db_path, queues={"default": 1}, max_log_chars=BUDGET,
                           flush_interval=0.02) as m:
        yield m


async def test_a_log_past_its_budget_keeps_its_head_and_tail_and_says_so(
        manager: TaskManager) -> None:
    lines = 5_000  # 5 MB of text: fifty times the budget
    submitted = await manager.submit("budget_lines", lines=lines, mode="background")
    ended = await manager.wait(submitted.id, timeout=60)
    assert ended.status == "succeeded"
    text = await stored_log(manager, submitted.id)
    assert len(text) < BUDGET + BUDGET // 10 + 1_000
    first_lines = text.splitlines()
    assert first_lines[0].startswith("00000000 ")
    head = [line for line in first_lines if line.endswith(LINE)]
    numbers = [int(line.split()[0]) for line in head]
    # the head runs from the first line on, the tail ends with the last, in order
    assert numbers == sorted(numbers) and numbers[0] == 0 and numbers[-1] == lines - 1
    assert "reached its 100,000 characters" in text
    before_gap = text.index("reached its")
    assert all(int(line.split()[0]) < 200 for line in text[:before_gap].splitlines()
               if line.endswith(LINE))
    # the tail: nearly a tenth of the budget (whole rows of at most a sixteenth of it
    # are dropped), then the count of what was left out
    tail = text[before_gap:].splitlines()[1:-1]
    assert sum(len(line) + 1 for line in tail) > BUDGET // 10 - BUDGET // 160 - 1_000
    numbers = tail_numbers(tail)
    assert numbers == list(range(lines - len(numbers), lines))
    last = text.splitlines()[-1]
    assert last.startswith("[jupyter-tasks] ") and "characters of output were left out" in last


RELEASE = threading.Event()


@task("budget_then_wait")
def budget_then_wait(ctx: TaskContext, lines: int) -> int:
    """Log ``lines`` numbered lines, then wait for the test (a task still running)."""
    for i in range(lines):
        ctx.log(f"{i:08d} {LINE}")
    if not RELEASE.wait(60):
        raise TimeoutError("not released")
    ctx.log(f"{lines:08d} {LINE}")
    return lines


async def test_the_tail_is_on_disk_while_the_task_runs(manager: TaskManager) -> None:
    # a process killed now loses nothing of the tail: it is not held until the end
    RELEASE.clear()
    lines = 5_000
    submitted = await manager.submit("budget_then_wait", lines=lines, mode="background")
    try:
        async def last_line_stored() -> str | None:
            text = await stored_log(manager, submitted.id)
            return text if f"{lines - 1:08d} " in text else None

        text = await eventually(last_line_stored, timeout=60, what="the last line on disk")
        assert (await manager.get(submitted.id)).status == "running"
        assert len(text) < BUDGET + BUDGET // 10 + 1_000
        assert "reached its 100,000 characters" in text and "left out" not in text
        tail = text[text.index("reached its"):].splitlines()[1:]
        numbers = tail_numbers(tail)
        assert numbers == list(range(numbers[0], lines)), "one unbroken run of the latest"
    finally:
        RELEASE.set()
    ended = await manager.wait(submitted.id, timeout=60)
    assert ended.status == "succeeded"
    text = await stored_log(manager, submitted.id)
    assert len(text) < BUDGET + BUDGET // 10 + 1_000
    # the tail runs to the last line, then the count of what was left out
    after = text[text.index("reached its"):].splitlines()[1:]
    assert "were left out between" in after[-1]
    numbers = tail_numbers(after[:-1])
    assert numbers[-1] == lines and numbers == list(range(numbers[0], lines + 1))
    # nearly a tenth of the budget (lines of 1,000 characters), not a last row
    assert sum(len(line) + 1 for line in after[:-1]) > BUDGET // 10 - 2_000


async def test_a_log_within_its_budget_is_kept_whole_without_notes(
        manager: TaskManager) -> None:
    submitted = await manager.submit("budget_lines", lines=50, mode="background")
    assert (await manager.wait(submitted.id, timeout=60)).status == "succeeded"
    text = await stored_log(manager, submitted.id)
    assert [int(line.split()[0]) for line in text.splitlines()] == list(range(50))
    assert "[jupyter-tasks]" not in text


async def test_one_write_larger_than_the_budget_keeps_its_end(manager: TaskManager) -> None:
    submitted = await manager.submit("budget_one_write", chars=3_000_000, mode="background")
    assert (await manager.wait(submitted.id, timeout=60)).status == "succeeded"
    text = await stored_log(manager, submitted.id)
    assert len(text) < BUDGET + BUDGET // 10 + 1_000
    assert text.startswith("a" * BUDGET + "\n[jupyter-tasks]")
    *_, end, note = text.splitlines()
    assert end.endswith("aEND") and "left out" in note
    assert len(end) > BUDGET // 10 - BUDGET // 160 - 10  # the write's end, nearly whole


def test_the_budget_must_be_a_positive_count() -> None:
    for bad in (0, -1, 1.5, True, "10"):
        with pytest.raises(ValueError, match="max_log_chars"):
            TaskManager(max_log_chars=bad)


@task("budget_progress")
def budget_progress(ctx: TaskContext, chars: int) -> int:
    """Report progress with a message of ``chars`` characters."""
    ctx.progress(1, 2, "m" * chars)
    return chars


async def test_a_progress_message_is_a_status_line_not_a_document(
        manager: TaskManager) -> None:
    # each flush writes the progress into the row and an event every client receives
    submitted = await manager.submit("budget_progress", chars=5_000_000, mode="background")
    assert (await manager.wait(submitted.id, timeout=60)).status == "succeeded"
    stored = (await manager.get(submitted.id)).progress
    assert (stored["current"], stored["total"]) == (1, 2)
    assert len(stored["message"]) == MAX_PROGRESS_MESSAGE
    assert stored["message"].endswith("m…")
    events = await manager.store.events_after(0)
    assert max(len(str(event.task)) for event in events) < 10_000


@task("budget_pieces")
def budget_pieces(ctx: TaskContext, pieces: int) -> int:
    """Write lines in two pieces each, as print() does, on stdout then one on stderr."""
    for i in range(pieces):
        ctx.write(f"piece {i}", "stdout")
        ctx.write("\n", "stdout")
    ctx.write("the end\n", "stderr")
    ctx.write("after\n", "stdout")
    return pieces


async def test_small_writes_are_stored_as_few_rows_in_order(manager: TaskManager) -> None:
    # print() writes its text and its newline apart: a row each was 4x the text on disk
    submitted = await manager.submit("budget_pieces", pieces=5_000, mode="background")
    assert (await manager.wait(submitted.id, timeout=60)).status == "succeeded"
    entries = await manager.store.get_logs(submitted.id, 0, 1_000_000)
    assert len(entries) < 100
    stdout = "".join(e.text for e in entries[:-2])
    assert stdout == "".join(f"piece {i}\n" for i in range(5_000))
    assert [(e.stream, e.text) for e in entries[-2:]] == [("stderr", "the end\n"),
                                                         ("stdout", "after\n")]
    assert all(e.stream == "stdout" for e in entries[:-2])
    assert [e.seq for e in entries] == sorted(e.seq for e in entries)


def tail_after(writes: list[str], limit: int = 10_000,
               fail: set[int] = frozenset()) -> tuple[LogTail, dict[int, str]]:
    """A LogTail fed one write per flush; flushes numbered in ``fail`` are not saved.

    Returns it and the rows on disk (seq -> text), kept as the store would keep them.
    """
    tail = LogTail(limit)
    disk: dict[int, str] = {}
    seq = 0
    for number, text in enumerate(writes):
        tail.add((float(number), "stdout", text))
        write = tail.flush("t", final=False)
        assert write is not None
        if number in fail:
            tail.failed(write)
            continue
        for dropped in write.drop:
            del disk[dropped]
        seqs = []
        for _, _, row in write.entries:
            seq += 1
            disk[seq] = row
            seqs.append(seq)
        tail.written(write, seqs)
    return tail, disk


def test_a_small_write_does_not_push_out_a_big_one() -> None:
    # rows were joined up to 64 KiB: one 10,000-character row, then an 11-character
    # line, left 11 characters on disk
    tail, disk = tail_after(["x" * 10_000, "last line\n"])
    kept = "".join(disk[seq] for seq in sorted(disk))
    assert kept.endswith("x" * 9_000 + "last line\n")
    assert len(kept) <= 10_000 and tail.stored_chars == len(kept)


def test_a_failed_flush_leaves_the_tail_bounded_and_unbroken() -> None:
    writes = [f"{i:04d} {'y' * 95}\n" for i in range(200)]  # 100 characters each
    tail, disk = tail_after(writes, limit=1_000, fail=set(range(1, 200, 2)))
    kept = "".join(disk[seq] for seq in sorted(disk))
    assert len(kept) <= 1_000 and tail.stored_chars == len(kept)
    numbers = tail_numbers(kept.splitlines())
    assert numbers == list(range(numbers[0], numbers[-1] + 1)), "no gap inside the tail"
    assert numbers[-1] == 198  # the last saved flush
    # everything written is on disk or counted as left out
    written = sum(len(w) for w in writes)
    assert tail.left_out + tail.stored_chars + tail.dropped_chars == written
