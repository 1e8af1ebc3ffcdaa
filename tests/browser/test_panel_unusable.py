"""The panel says why the tasks are unavailable when the server says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .lab import OPEN_PANEL_JS, LabServer, launch_chromium
from .test_panel_truth import screenshot


@pytest.fixture(scope="module")
def broken_lab(chromium: str, tmp_path_factory: pytest.TempPathFactory):
    server = LabServer(tmp_path_factory.mktemp("broken-lab"),
                       extra_args=["--JupyterTasksApp.task_modules=/nonexistent/mytasks.py"])
    server.ready_paths = ["api/status"]  # the tasks routes answer 503 here
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_a_server_that_cannot_serve_tasks_is_said_with_its_reason(
        broken_lab: LabServer, chromium: str, tmp_path: Path) -> None:
    # before: "offline, retrying…" and "No tasks yet." for good: a refused websocket
    # handshake tells a page nothing, and the list was read only once the socket opened
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        context = launch_chromium(p, tmp_path, chromium)
        try:
            page: Any = context.pages[0] if context.pages else context.new_page()
            page.goto(broken_lab.lab_url, wait_until="domcontentloaded", timeout=120_000)
            page.wait_for_function("() => window.jupyterapp !== undefined", timeout=120_000)
            page.evaluate(OPEN_PANEL_JS)
            alert = page.locator(".jp-TasksPanel-loadError")
            expect(alert).to_contain_text("a task module failed to import")
            expect(alert).to_contain_text("/nonexistent/mytasks.py")
            expect(alert).to_contain_text("restart the server")
            # not "No tasks yet.": nothing could be read
            expect(page.locator(".jp-TasksPanel-empty")).to_have_count(0)
            screenshot(page, "panel-unusable.png", ".jp-TasksPanel")
        finally:
            context.close()
