"""Fixtures shared by every test tier: a fresh SQLite file per test.

pytest-jupyter is not loaded here: the tiers that use its server import its fixtures
in their own conftest (tests/server/conftest.py says why).
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest


@pytest.fixture
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A database path in this test's own folder, also exported as ``JUPYTER_TASKS_DB``."""
    path = tmp_path / "tasks.db"
    monkeypatch.setenv("JUPYTER_TASKS_DB", str(path))
    return path


@pytest.fixture(autouse=True)
def _collect_garbage_between_tests():
    """A test's leftovers are finalized at its end, not inside whatever runs next.

    Left to a later collection, their finalizers (an un-awaited task's "exception was
    never retrieved", closed loops and connections) ran in the middle of a later
    ``ast.parse`` (pytest rewriting a plugin module, Hypothesis naming a lambda), and
    CPython 3.11's AST constructor raised "recursion depth mismatch" there: the
    session's end crashed, hiding the failures' report, or a later test failed.
    """
    yield
    gc.collect()


@pytest.fixture(autouse=True)
def _no_default_manager_leak():
    """Each test starts without a default manager left over from another."""
    from jupyter_tasks import runtime

    yield
    manager = runtime.get_default_manager()
    if manager is not None and not manager.running:
        runtime.set_default_manager(None)


def pytest_configure(config: pytest.Config) -> None:
    # subprocesses started by tests must find the package even from a temp cwd
    os.environ.setdefault("PYTHONUNBUFFERED", "1")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group tests for pytest-xdist's ``loadgroup``: one group per file, the browser tier as one.

    A file's tests share module-scoped servers, so they stay on one worker; the browser
    files share one group so two JupyterLabs and two chromiums never compete for the
    machine at once (a 30 s toast wait ran out when they did).

    ``tryfirst``: xdist reads the marks in its own hook of this name, which otherwise
    runs before this one, so the marks came too late and every file was split.
    """
    browser = Path(__file__).parent / "browser"
    for item in items:
        group = "browser" if browser in item.path.parents else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))

