"""A background loop's failures: the first in full, repeats counted, the recovery said."""

from __future__ import annotations

import logging

import pytest

from jupyter_tasks.engine.loop_failures import REPEAT_SECONDS, LoopFailures

log = logging.getLogger("jupyter_tasks.test_loop_failures")


def test_a_repeated_failure_is_counted_once_a_minute_and_the_recovery_said(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    failures = LoopFailures(log, "claiming jobs of queue %s failed", clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger=log.name)

    def fail(message: str) -> None:
        try:
            raise OSError(message)
        except OSError:
            failures.failed("default")

    for _ in range(10):  # ten ticks a second apart
        fail("the file is gone")
        now[0] += 1.0
    now[0] += REPEAT_SECONDS
    fail("the file is gone")
    fail("another error")  # a different failure is said in full at once
    failures.succeeded()
    failures.succeeded()  # said once
    lines = [(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert lines == [
        ("ERROR", "claiming jobs of queue default failed", True),
        ("ERROR", "claiming jobs of queue default failed again (11 times since it began): "
                  "OSError: the file is gone", False),
        ("ERROR", "claiming jobs of queue default failed", True),
        ("WARNING", "claiming jobs of queue default failed (1 time); working again", False),
    ]


def test_each_line_about_an_unusable_database_is_said_once(
        caplog: pytest.LogCaptureFixture) -> None:
    # before: keyed on the error alone, "writing the end of task … failed" (a result
    # lost) was dropped because a loop had logged the same StoreUnavailable first
    from jupyter_tasks.exceptions import StoreUnavailable

    engine_log = logging.getLogger("jupyter_tasks")
    gone = StoreUnavailable("the task database /x/tasks.db was deleted or moved")
    caplog.set_level(logging.ERROR, logger="jupyter_tasks")
    for line in ("heartbeat of %s failed", "heartbeat of %s failed",
                 "writing the end of task %s failed", "writing the end of task %s failed"):
        try:
            raise gone
        except StoreUnavailable:
            engine_log.exception(line, "t1")
    said = [r.getMessage() for r in caplog.records if r.name == "jupyter_tasks"]
    assert said == ["heartbeat of t1 failed", "writing the end of task t1 failed"]


def test_the_stores_own_errors_are_one_line_without_a_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    # before: a StoreUnavailable (its file deleted) was logged with its traceback, which
    # a CLI's `submit --wait` printed above its one-line error
    from jupyter_tasks.exceptions import StoreUnavailable

    failures = LoopFailures(log, "reading events failed")
    caplog.set_level(logging.INFO, logger=log.name)
    try:
        raise StoreUnavailable("the task database x.db was deleted or moved")
    except StoreUnavailable:
        failures.failed()
    lines = [(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert lines == [("ERROR", "reading events failed: the task database x.db was deleted "
                               "or moved", False)]
