"""The server freezes what it holds once started, so full collections do not stop its loop.

Over the ~200,000 objects of a JupyterLab server, each full collection held the
event loop for 70-190 ms here (every websocket event and REST answer waited);
``benchmarks/bench_server_events.py`` shows the effect. These tests check the
switch itself: on by default, off on request, and undone when the server stops.
"""

from __future__ import annotations

import gc
from typing import Any

import pytest

from jupyter_tasks.server.app import JupyterTasksApp


@pytest.fixture
def tasks_config(request: Any) -> dict[str, Any]:
    return {"freeze_gc_at_start": request.param}


@pytest.fixture(autouse=True)
def thawed() -> Any:
    """Each test starts and ends with nothing frozen in this (pytest's) process."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_freezing_is_the_default() -> None:
    assert JupyterTasksApp().freeze_gc_at_start is True


@pytest.mark.parametrize("tasks_config", [True], indirect=True)
async def test_a_started_server_has_frozen_its_objects_and_stop_thaws_them(tasks_app: Any):
    assert tasks_app.manager.running
    assert gc.get_freeze_count() > 10_000  # modules, the server, every extension
    await tasks_app.stop_extension()
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize("tasks_config", [False], indirect=True)
async def test_freeze_gc_at_start_false_leaves_the_collector_alone(tasks_app: Any):
    assert tasks_app.manager.running
    assert gc.get_freeze_count() == 0
