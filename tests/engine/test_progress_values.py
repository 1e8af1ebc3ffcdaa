"""Progress holds numbers: a number-like value (Decimal, Fraction, numpy) is stored as one,
anything else as no number; and every reader shows a stored row whatever it holds.

Before: ``progress(Decimal('2.5'), 10)`` stored ``"Decimal('2.5')"``, after which
``jupyter tasks list`` crashed for everyone on the database, the dashboard's progress
column raised, and the task's card stayed "running" after the task ended.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from jupyter_tasks import TaskContext, TaskManager, task
from jupyter_tasks.models import progress_fraction

# what older versions (or another tool) could have stored, and a reader must show
STORED = [
    {"current": "Decimal('2.5')", "total": 10},
    {"current": 3, "total": "10"},
    {"current": 10**400, "total": 10**401},
    {"current": True, "total": 2},
    {"current": [1], "total": {"a": 1}},
    {"current": 1, "total": 0},
    "not an object",
]


@task("progress_as_given")
def progress_as_given(ctx: TaskContext, which: str) -> str:
    """Report one odd progress value."""
    values: dict[str, tuple[Any, ...]] = {
        "decimal": (Decimal("2.5"), 10),
        "fraction": (Fraction(1, 4), Fraction(1, 1)),
        "text": ("step 1",),
        "text total": (3, "10"),
        "infinite": (math.inf, 10),
        "huge": (10**400, 10**401),
        "bool": (True, 2),
    }
    ctx.progress(*values[which])
    return which


@pytest.fixture
async def manager(db_path: Path):
    async with TaskManager(db_path, queues={"default": 1}, flush_interval=0.02) as m:
        yield m


@pytest.mark.parametrize(("which", "expected"), [
    ("decimal", {"current": 2.5, "total": 10, "message": None}),
    ("fraction", {"current": 0.25, "total": 1.0, "message": None}),
    # a text given as the position is what the task says it is doing
    ("text", {"current": None, "total": None, "message": "step 1"}),
    ("text total", {"current": 3, "total": None, "message": None}),
    ("infinite", {"current": None, "total": 10, "message": None}),
    ("huge", {"current": None, "total": None, "message": None}),
    ("bool", {"current": None, "total": 2, "message": None}),
])
async def test_progress_stores_numbers_or_no_number(manager: TaskManager, which: str,
                                                    expected: dict[str, Any]) -> None:
    submitted = await manager.submit("progress_as_given", which=which, mode="background")
    done = await manager.wait(submitted.id, timeout=30)
    assert done.status == "succeeded"
    assert done.progress == expected


@pytest.mark.parametrize("stored", STORED)
def test_a_stored_progress_is_a_fraction_or_none_whatever_it_holds(stored: Any) -> None:
    fraction = progress_fraction(stored)
    assert fraction is None or 0.0 <= fraction <= 1.0
    assert progress_fraction({"current": 3, "total": 4}) == 0.75
    assert progress_fraction({"current": 10**400, "total": 10**401}) is None  # no float
    # a position stored as none (a NaN given) is no 0%: before, the CLI said "0%" where
    # the card and the panel showed no progress
    assert progress_fraction({"current": None, "total": 10}) is None
