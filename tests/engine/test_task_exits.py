"""A task's code that exits, interrupts itself or raises what cannot be printed ends that
task, failed, and nothing else: the process serving every other task keeps running."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from jupyter_tasks import TaskManager, task
from tests.engine import sample_tasks  # noqa: F401  (registers add)


class Unprintable(Exception):
    """An exception whose message cannot be made."""

    def __str__(self) -> str:
        raise RuntimeError("__str__ itself fails")


class Outside(BaseException):
    """A BaseException of the user's own, outside Exception."""


RAISERS = {
    "exit_1": lambda: sys.exit(1),
    "exit_0": lambda: sys.exit(0),
    "keyboard": lambda: (_ for _ in ()).throw(KeyboardInterrupt()),
    "outside": lambda: (_ for _ in ()).throw(Outside("mine")),
    "unprintable": lambda: (_ for _ in ()).throw(Unprintable()),
    # before: a future refused the StopIteration a thread handed back (asyncio's
    # TypeError), and the task stayed running until someone cancelled it
    "stop_iteration": lambda: next(iter([])),
    # before: taken for this coroutine being closed; the task stayed running for good
    "generator_exit": lambda: (_ for _ in ()).throw(GeneratorExit("bye")),
}


@task("exits_sync")
def exits_sync(how: str) -> None:
    """Raise one of RAISERS in a thread."""
    RAISERS[how]()


@task("exits_async")
async def exits_async(how: str) -> None:
    """Raise one of RAISERS on the event loop."""
    RAISERS[how]()


EXPECTED = {
    "exit_1": ("SystemExit", "sys.exit(1)"),
    "exit_0": ("SystemExit", "sys.exit(0)"),
    # before: an empty message for a KeyboardInterrupt, and only "<unprintable E>" for
    # the other, where the README says the message tells that the process carries on
    "keyboard": ("KeyboardInterrupt", "KeyboardInterrupt ended the task; the process "
                                      "running it carries on"),
    "outside": ("Outside", "mine"),
    "unprintable": ("Unprintable", "<unprintable Unprintable: its str() raised "
                                   "RuntimeError>; the process running it carries on"),
    "stop_iteration": ("StopIteration", ""),
    "generator_exit": ("GeneratorExit", "bye"),
}

# Python's own rule (PEP 479): a StopIteration that leaves a coroutine is a RuntimeError
ON_THE_LOOP = {"stop_iteration": ("RuntimeError", "coroutine raised StopIteration")}


@pytest.mark.parametrize("mode", ["background", "job"])
@pytest.mark.parametrize("name", ["exits_sync", "exits_async"])
@pytest.mark.parametrize("how", sorted(RAISERS))
async def test_a_task_that_exits_or_raises_oddly_fails_and_the_process_serves_on(
        db_path: Path, mode: str, name: str, how: str) -> None:
    async with TaskManager(db_path, queues={"default": 1}, retry_base_delay=0.01) as manager:
        raised = await manager.submit(name, how=how, mode=mode)
        ended = await manager.wait(raised.id, timeout=20)
        assert ended.status == "failed", (ended.status, ended.error)
        error_type, words = (ON_THE_LOOP if name == "exits_async" else {}).get(
            how, EXPECTED[how])
        assert ended.error["type"] == error_type
        assert words in ended.error["message"]
        assert ended.error["traceback"]
        # the same manager, the same slot, still runs work
        after = await manager.submit("add", a=1, b=1, mode=mode)
        assert (await manager.wait(after.id, timeout=20)).result == 2


@task("bare_generator_exit")
def bare_generator_exit() -> None:
    """Raise a GeneratorExit with no words, in a thread."""
    raise GeneratorExit


async def test_a_bare_generator_exit_in_a_thread_says_so_and_fails_as_the_others(
        db_path: Path) -> None:
    # before: its message was "" and result() raised the engine's RaisedInThread, where
    # every other BaseException of a task's own gives TaskFailed with words
    from jupyter_tasks.exceptions import TaskFailed

    async with TaskManager(db_path, queues={"default": 1}) as manager:
        raised = await manager.submit("bare_generator_exit", mode="background")
        ended = await manager.wait(raised.id, timeout=20)
        assert (ended.status, ended.error["type"]) == ("failed", "GeneratorExit")
        assert ended.error["message"] == ("GeneratorExit ended the task; the process "
                                          "running it carries on")
        with pytest.raises(TaskFailed):
            manager.outcome(ended)
