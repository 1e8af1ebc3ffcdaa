"""print() inside a task goes to its log once a server or a worker wraps the streams."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from jupyter_tasks import TaskManager, print_capture, task
from jupyter_tasks.print_capture import TaskOutput
from jupyter_tasks.registry import default_registry
from tests.waiting import eventually


@task("capture_prints")
def capture_prints(word: str) -> str:
    """Print on both streams from the thread a plain function runs in."""
    print(word)
    print(f"{word}!", file=sys.stderr, flush=True)
    sys.stdout.writelines([f"{word} a\n", f"{word} b\n"])
    return word


@task("capture_prints_async")
async def capture_prints_async(word: str) -> str:
    """Print from a coroutine, while another task prints too."""
    await asyncio.sleep(0)
    print(word)
    return word


@contextlib.contextmanager
def streams() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """The process's streams as two StringIOs, wrapped as a server or worker wraps them.

    Entered in the test's body: pytest puts its own streams back between a fixture's
    setup and the test.
    """
    saved = sys.stdout, sys.stderr
    # installs made by other tests of this process (a Dask worker run in-process wraps
    # for good) are set aside: this one's install and uninstall are the only ones
    counts = print_capture._installs, print_capture._for_process
    print_capture._installs, print_capture._for_process = 0, False
    out, err = io.StringIO(), io.StringIO()
    sys.stdout, sys.stderr = out, err
    try:
        print_capture.install()
        try:
            yield out, err
        finally:
            print_capture.uninstall()
        assert sys.stdout is out and sys.stderr is err, "uninstall puts the streams back"
    finally:
        sys.stdout, sys.stderr = saved
        print_capture._installs, print_capture._for_process = counts


async def log_of(manager: TaskManager, task_id: str) -> list[tuple[str, str]]:
    return [(e.stream, e.text) for e in await manager.store.get_logs(task_id)]


async def test_each_task_gets_its_own_prints_and_the_rest_goes_on(db_path: Path) -> None:
    with streams() as (out, err):
        manager = TaskManager(db_path, queues={"default": 2}, flush_interval=0.02)
        await check_prints(manager)
    assert out.getvalue() == "not a task's\n" and err.getvalue() == ""


async def check_prints(manager: TaskManager) -> None:
    async with manager:
        tasks = [await manager.submit("capture_prints", word=w, mode="background")
                 for w in ("one", "two")]
        tasks.append(await manager.submit("capture_prints_async", word="three",
                                          mode="background"))
        print("not a task's")
        for submitted in tasks:
            assert (await manager.wait(submitted.id, timeout=30)).status == "succeeded"
        assert await log_of(manager, tasks[0].id) == [
            ("stdout", "one\n"), ("stderr", "one!\n"), ("stdout", "one a\none b\n")]
        assert await log_of(manager, tasks[1].id) == [
            ("stdout", "two\n"), ("stderr", "two!\n"), ("stdout", "two a\ntwo b\n")]
        assert await log_of(manager, tasks[2].id) == [("stdout", "three\n")]


def test_a_wrapped_stream_behaves_as_a_stream() -> None:
    with streams() as (out, _):
        check_wrapper(out)


def check_wrapper(out: io.StringIO) -> None:
    assert isinstance(sys.stdout, TaskOutput) and sys.stdout.inner is out
    assert sys.stdout.write("plain\n") == 6 and out.getvalue() == "plain\n"
    assert sys.stdout.getvalue() == "plain\n"  # the wrapped stream's own attributes
    print_capture.install()  # a second server in the process: one wrapper, counted
    assert sys.stdout.inner is out
    print_capture.uninstall()
    assert isinstance(sys.stdout, TaskOutput)


def test_a_thread_the_task_starts_itself_prints_to_the_stream(db_path: Path) -> None:
    # a plain thread does not carry the task's context: its output is not the task's

    @task("capture_thread")
    def capture_thread() -> None:
        thread = threading.Thread(target=print, args=("from a thread",))
        thread.start()
        thread.join()

    async def run() -> list[tuple[str, str]]:
        async with TaskManager(db_path, queues={"default": 1}) as manager:
            submitted = await manager.submit("capture_thread", mode="background")
            assert (await manager.wait(submitted.id, timeout=30)).status == "succeeded"
            return await log_of(manager, submitted.id)

    try:
        with streams() as (out, _):
            assert asyncio.run(run()) == []
    finally:
        default_registry.unregister("capture_thread")
    assert out.getvalue() == "from a thread\n"


@task("capture_late")
async def capture_late(word: str) -> str:
    """Leave a callback behind that prints after the task ended."""
    asyncio.get_running_loop().call_later(0.05, print, f"{word} after the end")
    return word


@task("capture_engine_warning")
def capture_engine_warning() -> None:
    """Log a warning through a logger with no handler (Python's last resort writes it)."""
    quiet = logging.getLogger("jupyter_tasks.test_no_handler")
    quiet.propagate = False
    quiet.warning("an engine warning")


async def test_output_after_the_end_and_the_last_resort_log_go_to_the_stream(
        db_path: Path) -> None:
    with streams() as (out, err):
        async with TaskManager(db_path, queues={"default": 1}) as manager:
            late = await manager.submit("capture_late", word="late", mode="background")
            warned = await manager.submit("capture_engine_warning", mode="background")
            for submitted in (late, warned):
                assert (await manager.wait(submitted.id, timeout=30)).status == "succeeded"

            async def printed() -> bool:
                return "late after the end" in out.getvalue()

            await eventually(printed, what="the late print on the stream")
            assert await log_of(manager, late.id) == []
            assert await log_of(manager, warned.id) == []
    assert "an engine warning" in err.getvalue()
