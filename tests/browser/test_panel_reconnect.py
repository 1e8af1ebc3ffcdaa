"""The panel after its event stream drops: what happened meanwhile reaches it as events.

A page loaded while nothing happens has read no event yet. Its stream dropped (a
network blip, a proxy's idle timeout, the server restarting), it reconnected "from now"
and only read the list again: a task of mine that ended meanwhile got no notification,
and a task deleted meanwhile stayed in the list for good.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.waiting import eventually_sync

from .conftest import _keep_page_error
from .lab import LabServer, launch_chromium, open_lab_and_panel
from .test_panel import row, wait_status
from .test_panel_truth import screenshot, submit, toast

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RECONNECT_MS = 60_000
EVENTS_URL = re.compile(r".*/api/tasks/events(\?.*)?$")


def status(lab: LabServer, task_id: str) -> str:
    code, task = lab.request("GET", f"/api/tasks/{task_id}")
    assert code == 200, task
    return task["status"]



class EventLink:
    """The page's event sockets, through us: while ``down``, each new one is closed at once."""

    def __init__(self) -> None:
        self.down = False
        self.sockets: list[Any] = []

    def route(self, socket: Any) -> None:
        """``page.route_web_socket``'s handler."""
        if self.down:
            socket.close()
            return
        socket.connect_to_server()
        self.sockets.append(socket)

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

    link = EventLink()

    with sync_playwright() as p:
        context = launch_chromium(p, tmp_path / "chromium", chromium)
        errors: list[str] = []
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.on("pageerror", lambda exc: _keep_page_error(errors, exc))
            page.route_web_socket(EVENTS_URL, link.route)
            # loaded after both changes were made: the page has read no event at all
            open_lab_and_panel(page, lab)
            wait_status(page, waiting, "running")
            expect(row(page, doomed)).to_have_count(1)

            link.down = True
            link.sockets[-1].close()
            expect(page.locator('.jp-TasksPanel-connection[data-state="open"]')).to_have_count(0)
            gate.touch()
            code, _ = lab.request("DELETE", f"/api/tasks/{doomed}")
            assert code == 204
            eventually_sync(lambda: status(lab, waiting) == "succeeded", timeout=60,
                            what="the waiting task to end")
            link.down = False
            # the reconnect comes after the stream's backoff (up to 30 s)
            expect(page.locator('.jp-TasksPanel-connection[data-state="open"]')).to_have_count(
                1, timeout=RECONNECT_MS)

            # told once it is back, as if it had never been away
            expect(toast(page, 'Task "ends while offline" succeeded')).to_be_visible()
            wait_status(page, waiting, "succeeded")
            expect(row(page, doomed)).to_have_count(0)
            screenshot(page, "panel-reconnect-caught-up.png")
            assert errors == []
        finally:
            context.close()


def events_of(lab: LabServer, task_id: str) -> Any:
    """The test's own event stream of one task, from now on."""
    import websocket

    url = lab.base.replace("http", "ws", 1) + f"/api/tasks/events?task_id={task_id}"
    return websocket.create_connection(url, timeout=60,
                                       header=[f"Authorization: token {lab.token}"])


def answer_seen(stream: Any) -> None:
    """Read ``stream`` up to the event of an answer: the server reacts to an event
    (hands the answer to the task) before it sends it to anyone."""
    try:
        while True:
            event = json.loads(stream.recv())
            if (event["type"] == "task.confirmation"
                    and (event["task"]["confirmation"] or {}).get("answer") is not None):
                return
    finally:
        stream.close()


def test_an_answer_to_a_question_gone_meanwhile_is_not_given_to_the_next(
        lab: LabServer, chromium: str, tmp_path: Path) -> None:
    """The panel showed a question someone answered meanwhile (its stream was down), and
    the task asked its next one: a click on the old question's "yes" answered the new
    question, which the user never saw."""
    from playwright.sync_api import expect, sync_playwright

    gate = tmp_path / "second question"
    task = submit(lab, {"name": "browser_ask_twice", "params": {"gate": str(gate)},
                        "label": "two questions"})["id"]
    link = EventLink()

    def question() -> dict:
        code, data = lab.request("GET", f"/api/tasks/{task}")
        assert code == 200, data
        return data["confirmation"] or {}

    with sync_playwright() as p:
        context = launch_chromium(p, tmp_path / "chromium", chromium)
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.route_web_socket(EVENTS_URL, link.route)
            open_lab_and_panel(page, lab)
            staging = row(page, task).locator('.jp-TasksPanel-answer[data-answer="yes"]')
            expect(row(page, task).locator(".jp-TasksPanel-prompt")).to_have_text(
                "Delete staging?")

            link.down = True
            link.sockets[-1].close()
            expect(page.locator('.jp-TasksPanel-connection[data-state="open"]')).to_have_count(0)
            stream = events_of(lab, task)
            code, answered = lab.request("POST", f"/api/tasks/{task}/confirm", {"answer": "no"})
            assert code == 200, answered
            # the second question only once the server has handed that answer to the task
            # both ways (the direct call, the event): see browser_ask_twice
            answer_seen(stream)
            gate.touch()
            eventually_sync(lambda: question().get("prompt") == "Delete production?",
                            timeout=60, what="the second question")

            with page.expect_response(
                    lambda r: urlparse(r.url).path.endswith(f"/{task}/confirm")) as sent:
                staging.click()  # still "Delete staging?" on this page
            assert sent.value.status == 409
            assert question() == {**question(), "prompt": "Delete production?", "answer": None}
            expect(toast(page, "Could not send the answer")).to_be_visible()
            # the task named as the panel names it everywhere, not by 32 hex characters
            said = toast(page, "Could not send the answer").inner_text()
            assert f"task {task[-10:]} no longer asks" in said and task not in said, said
            link.down = False
            # the reconnect comes after the stream's backoff (up to 30 s)
            expect(page.locator('.jp-TasksPanel-connection[data-state="open"]')).to_have_count(
                1, timeout=RECONNECT_MS)
            expect(row(page, task).locator(".jp-TasksPanel-prompt")).to_have_text(
                "Delete production?")
        finally:
            context.close()
