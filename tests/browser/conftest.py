"""Browser-tier fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> None:
    """Replace pytest-jupyter's autouse loop fixture: these tests run no in-process server.

    Its teardown closes "the current loop", which under Playwright's sync API is
    Playwright's own running loop ("Cannot close a running event loop").
    """
    return None


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> None:
    """No in-process ``ServerApp`` to clean up here (pytest-jupyter's autouse fixture)."""
    return None
