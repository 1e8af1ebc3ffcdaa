"""A task's line in the panel at its default width: the label keeps room beside the
progress bar, right-to-left labels keep their start, and a bar shows only what runs."""

from __future__ import annotations

from typing import Any

from .lab import LabServer
from .test_panel import row
from .test_panel_truth import make_task, screenshot, seed

LABEL_WIDTH = "el => el.querySelector('.jp-TasksPanel-label').clientWidth"


def test_a_running_rows_label_keeps_room_beside_its_progress(
        lab: LabServer, page: Any) -> None:
    # before: at the panel's default width the bar, its percent and the time left the
    # label 60-80 px: four rows "nightly survivor run 0..3" all read "nightly…"
    _, me = lab.request("GET", "/api/tasks/me")
    running = [make_task(f"nightly survivor run {i}", owner=me["owner"], status="running",
                         progress={"current": 5 + i, "total": 10}) for i in range(4)]
    seed(lab.db_path, running)
    for task in running:
        row(page, task.id).wait_for(state="visible")
    screenshot(page, "panel-rows-running.png", ".jp-TasksPanel")
    for task in running:
        line = row(page, task.id)
        assert line.locator(".jp-TasksPanel-progress").count() == 1
        width = line.evaluate(LABEL_WIDTH)
        assert width >= 120, f"{task.label!r}: its label has {width} px"


def test_a_right_to_left_label_is_cut_at_its_end_not_its_start(
        lab: LabServer, page: Any) -> None:
    # before: a Hebrew or Arabic label sat in a left-to-right line, so the ellipsis cut
    # its logical start ("…ברית עם מספרים 123")
    _, me = lab.request("GET", "/api/tasks/me")
    hebrew = make_task("שלום עולם — משימה ארוכה מאוד עם טקסט בעברית ומספרים 123 " * 2,
                       owner=me["owner"], ago=1)
    english = make_task("an English label", owner=me["owner"], ago=1)
    seed(lab.db_path, [hebrew, english])
    label = row(page, hebrew.id).locator(".jp-TasksPanel-label")
    label.wait_for(state="visible")
    assert label.evaluate("el => getComputedStyle(el).direction") == "rtl"
    assert row(page, english.id).locator(".jp-TasksPanel-label").evaluate(
        "el => getComputedStyle(el).direction") == "ltr"


def test_a_queued_task_shows_no_bar_and_a_bar_stays_in_its_range(
        lab: LabServer, page: Any) -> None:
    # before: a job sent back to the queue (its worker stopped) kept its last attempt's
    # 54% bar, and a progress past its total announced aria-valuenow 250 of 100
    _, me = lab.request("GET", "/api/tasks/me")
    requeued = make_task("sent back", owner=me["owner"], status="queued", queue="parked",
                         progress={"current": 54, "total": 100})
    over = make_task("past its total", owner=me["owner"], status="running",
                     progress={"current": 250, "total": 100})
    under = make_task("below zero", owner=me["owner"], status="running",
                      progress={"current": -5, "total": 10})
    seed(lab.db_path, [requeued, over, under])
    for task in (requeued, over, under):
        row(page, task.id).wait_for(state="visible")
    assert row(page, requeued.id).locator(".jp-TasksPanel-progress").count() == 0
    for task, now in ((over, "100"), (under, "0")):
        bar = row(page, task.id).locator(".jp-TasksPanel-progress")
        assert bar.get_attribute("aria-valuenow") == now, task.label


def test_an_action_the_server_cannot_be_reached_for_says_so_in_words(
        lab: LabServer, page: Any) -> None:
    # before: with the server down, Cancel failed with the browser's own words, "Could
    # not cancel the task: Failed to fetch". The request is cut here as a server gone
    # away cuts it (the connection refused), the rest of the page left as it is
    from .test_panel_truth import toast

    _, me = lab.request("GET", "/api/tasks/me")
    parked = make_task("waits in a parked queue", owner=me["owner"], status="queued",
                       queue="parked")
    seed(lab.db_path, [parked])
    line = row(page, parked.id)
    line.wait_for(state="visible")
    page.route("**/api/tasks/*/cancel*", lambda route: route.abort("connectionrefused"))
    try:
        line.hover()
        line.locator(".jp-TasksPanel-cancel").click()
        note = toast(page, "Could not cancel")
        note.wait_for(state="visible")
        text = note.inner_text()
        assert "cannot reach the server" in text and "Failed to fetch" not in text, text
    finally:
        page.unroute("**/api/tasks/*/cancel*")
    code, task = lab.request("GET", f"/api/tasks/{parked.id}")
    assert code == 200 and task["status"] == "queued"


def test_a_long_question_wraps_inside_the_panel(lab: LabServer, page: Any) -> None:
    # before: a question naming a long path ran past the panel's edge ("…/2024/exper"),
    # and the whole list scrolled sideways
    prompt = "remove /data/scratch/projects/2024/experiment-runs/checkpoints-and-caches?"
    code, task = lab.request("POST", "/api/tasks", {"name": "browser_ask",
                                                    "params": {"prompt": prompt}})
    assert code == 202, task
    question = row(page, task["id"]).locator(".jp-TasksPanel-prompt")
    question.wait_for(state="visible", timeout=60_000)
    screenshot(page, "panel-long-question.png", ".jp-TasksPanel")
    assert question.inner_text() == prompt
    listing = page.locator(".jp-TasksPanel-list")
    assert not listing.evaluate("e => e.scrollWidth > e.clientWidth"), "the list scrolls sideways"
    assert not question.evaluate("e => e.scrollWidth > e.clientWidth"), "the question is cut"
    code, _ = lab.request("POST", f"/api/tasks/{task['id']}/cancel")
    assert code == 202
