"""The panel after its event stream drops: what happened meanwhile reaches it as events.

A page loaded while nothing happens has read no event yet. Its stream dropped (a
network blip, a proxy's idle timeout, the server restarting), it reconnected "from now"
and only read the list again: a task of mine that ended meanwhile got no notification,
and a task deleted meanwhile stayed in the list for good.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import eventually_sync

from .conftest import _keep_page_error
from .lab import LabServer, launch_chromium, open_lab_and_panel
from .test_panel import row, wait_status
from .test_panel_truth import screenshot, submit, toast

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EVENTS_URL = re.compile(r".*/api/tasks/events(\?.*)?$")


def status(lab: LabServer, task_id: str) -> str:
    code, task = lab.request("GET", f"/api/tasks/{task_id}")
    assert code == 200, task
    return task["status"]


def test_a_stream_dropped_before_its_first_event_catches_up_on_reconnect(
        lab: LabServer, chromium: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    gate = tmp_path / "gate"
    waiting = submit(lab, {"name": "browser_wait_file", "params": {"path": str(gate)},
                           "label": "ends while offline"})["id"]
    doomed = submit(lab, {"name": "browser_tiny", "label": "deleted while offline"})["id"]
    eventually_sync(
        lambda: status(lab, waiting) == "running" and status(lab, doomed) == "succeeded",
        timeout=60, what="one task running, the other done")

    # the page's event sockets go through here: while `down`, each attempt is closed at once
    link: dict[str, Any] = {"down": False, "sockets": []}

    def route(socket: Any) -> None:
        if link["down"]:
            socket.close()
            return
        socket.connect_to_server()
        link["sockets"].append(socket)

    with sync_playwright() as p:
        context = launch_chromium(p, tmp_path / "chromium", chromium)
        errors: list[str] = []
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.on("pageerror", lambda exc: _keep_page_error(errors, exc))
            page.route_web_socket(EVENTS_URL, route)
            # loaded after both changes were made: the page has read no event at all
            open_lab_and_panel(page, lab)
            wait_status(page, waiting, "running")
            expect(row(page, doomed)).to_have_count(1)

            link["down"] = True
            link["sockets"][-1].close()
            expect(page.locator('.jp-TasksPanel-connection[data-state="open"]')).to_have_count(0)
            gate.touch()
            code, _ = lab.request("DELETE", f"/api/tasks/{doomed}")
            assert code == 204
            eventually_sync(lambda: status(lab, waiting) == "succeeded", timeout=60,
                            what="the waiting task to end")
            link["down"] = False

            # told once it is back, as if it had never been away
            expect(toast(page, 'Task "ends while offline" succeeded')).to_be_visible()
            wait_status(page, waiting, "succeeded")
            expect(row(page, doomed)).to_have_count(0)
            screenshot(page, "panel-reconnect-caught-up.png")
            assert errors == []
        finally:
            context.close()
