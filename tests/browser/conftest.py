"""Browser-tier fixtures."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest

from .lab import (
    MISSING_CHROMIUM,
    SKIP_ENV,
    LabServer,
    chromium_path,
    launch_chromium,
    open_lab_and_panel,
)

WAIT_MS = 30_000


@pytest.fixture(scope="session", autouse=True)
def expect_deadline() -> None:
    """Every ``expect`` waits up to WAIT_MS: its 5 s default lost a CI run under load."""
    try:
        from playwright.sync_api import expect
    except ImportError:
        return  # the chromium fixture says what is missing
    expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def chromium() -> str:
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1")
    path = chromium_path()
    if path is None:
        pytest.fail(MISSING_CHROMIUM, pytrace=False)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("the Python package 'playwright' is missing: pip install -e '.[test]'",
                    pytrace=False)
    return path


# JupyterLab 4.6 opens a kernel subshell for each comm target (its "commsOverSubshells"
# setting). A notebook closed while that request is in flight cancels it, and JupyterLab
# leaves the cancelled request's promise unhandled: a CI run saw it when a test closed a
# notebook just as its card's widgets opened. The error is JupyterLab's own and is harmless
# to the user; every other page error still fails the test.
JUPYTERLAB_CANCELLED_SUBSHELL = re.compile(
    r"^(Error: )?Canceled future for (create|delete)_subshell_request message")


def _keep_page_error(errors: list[str], exc: Any) -> None:
    """Record a page error with its stack, unless it is JupyterLab's own cancelled subshell."""
    if not JUPYTERLAB_CANCELLED_SUBSHELL.match(str(exc)):
        errors.append(f"{exc}\n{exc.stack or ''}")


@pytest.fixture(scope="module")
def lab(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    server = LabServer(tmp_path_factory.mktemp("lab"))
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def page(lab: LabServer, chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = launch_chromium(p, tmp_path_factory.mktemp("chromium"), chromium)
        errors: list[str] = []
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.on("pageerror", lambda exc: _keep_page_error(errors, exc))
            page.set_default_timeout(WAIT_MS)
            try:
                open_lab_and_panel(page, lab)
            except Exception as exc:
                raise AssertionError(f"panel did not open: {exc}\npage errors: {errors}\n"
                                     f"server log:\n{lab.log_tail()}") from exc
            page.page_errors = errors
            yield page
        finally:
            context.close()
