"""End to end: the Tasks side panel in real JupyterLab, driven in headless Debian chromium.

JupyterLab runs under ``base_url=/jt/`` so the panel must use ServerConnection
settings for REST and the websocket. Chromium is Debian's (``scripts/install-test-deps``);
browsers cannot be downloaded here. Without it the test fails, unless
``JUPYTER_TASKS_SKIP_BROWSER=1``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .lab import LabServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
WAIT_MS = 30_000


def row(page: Any, task_id: str) -> Any:
    return page.locator(f'.jp-TasksPanel-row[data-task-id="{task_id}"]')


def wait_status(page: Any, task_id: str, status: str) -> None:
    page.wait_for_function(
        """([id, status]) => {
             const row = document.querySelector(`.jp-TasksPanel-row[data-task-id="${id}"]`);
             return row !== null && row.dataset.status === status;
           }""",
        arg=[task_id, status], timeout=WAIT_MS,
    )


def progress_now(page: Any, task_id: str) -> float:
    value = row(page, task_id).locator(".jp-TasksPanel-progress").get_attribute("aria-valuenow")
    return float(value)


def test_panel_shows_progress_cancel_and_rerun(lab: LabServer, page: Any) -> None:
    # the model is only exposed for debugging when asked (?jupyter-tasks-debug)
    assert page.evaluate("() => window.__jupyterTasks === undefined")
    # the status bar item is there (it counts running tasks)
    page.locator('[data-testid="tasks-status"]').wait_for(state="attached")

    # a task submitted over REST shows up in the panel, live
    code, task = lab.request("POST", "/api/tasks", {
        "name": "browser_slow", "params": {"steps": 600, "step_seconds": 0.1},
        "label": "browser e2e slow task",
    })
    assert code == 202, (code, task)
    task_id = task["id"]
    target = row(page, task_id)
    target.wait_for(state="visible")
    assert "browser e2e slow task" in target.locator(".jp-TasksPanel-label").inner_text()
    wait_status(page, task_id, "running")

    # its progress moves: aria-valuenow appears, then increases
    page.wait_for_function(
        """id => {
             const bar = document.querySelector(
               `.jp-TasksPanel-row[data-task-id="${id}"] .jp-TasksPanel-progress`);
             return bar !== null && Number(bar.getAttribute('aria-valuenow')) > 0;
           }""",
        arg=task_id,
    )
    first = progress_now(page, task_id)
    page.wait_for_function(
        """([id, first]) => {
             const bar = document.querySelector(
               `.jp-TasksPanel-row[data-task-id="${id}"] .jp-TasksPanel-progress`);
             return bar !== null && Number(bar.getAttribute('aria-valuenow')) > first;
           }""",
        arg=[task_id, first],
    )
    assert progress_now(page, task_id) > first
    bar = target.locator(".jp-TasksPanel-progress")
    assert bar.get_attribute("role") == "progressbar"
    assert bar.get_attribute("aria-valuemax") == "600"
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=tasks-status]')"
        "?.dataset.running ?? 0) >= 1")

    # a screenshot of the panel with a running task, for people to look at
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".jp-TasksPanel").screenshot(path=str(ARTIFACTS / "panel.png"))

    # Cancel (an action shown on hover) ends it `cancelled`, in the panel and over REST
    target.locator(".jp-TasksPanel-rowHeader").hover()
    target.locator(".jp-TasksPanel-cancel").click()
    wait_status(page, task_id, "cancelled")
    assert target.locator(".jp-TasksPanel-status").get_attribute("data-status") == "cancelled"
    code, after = lab.request("GET", f"/api/tasks/{task_id}")
    assert code == 200 and after["status"] == "cancelled", after
    assert target.locator(".jp-TasksPanel-cancel").count() == 0

    # Rerun adds a child row; REST shows the lineage
    rows_before = page.locator(".jp-TasksPanel-row").count()
    target.locator(".jp-TasksPanel-rowHeader").hover()
    target.locator(".jp-TasksPanel-rerun").click()
    page.wait_for_function(
        "n => document.querySelectorAll('.jp-TasksPanel-row').length > n", arg=rows_before)
    code, children = lab.request("GET", f"/api/tasks?parent_id={task_id}")
    assert code == 200, children
    assert len(children["tasks"]) == 1, children
    child = children["tasks"][0]
    assert child["parent_id"] == task_id and child["relationship"] == "rerun", child
    assert child["name"] == "browser_slow" and child["params"] == task["params"], child
    row(page, child["id"]).wait_for(state="visible")
    # newest first: the child sits above its parent
    ids = page.locator(".jp-TasksPanel-row").evaluate_all(
        "rows => rows.map(r => r.dataset.taskId)")
    assert ids.index(child["id"]) < ids.index(task_id)

    # Rerun reveals the child expanded; its details link back to the parent
    # (the row can come by the event stream before the rerun's reply, which expands it:
    # a click in between would collapse it again)
    from playwright.sync_api import expect

    toggle = row(page, child["id"]).locator(".jp-TasksPanel-toggle")
    expect(toggle).to_have_attribute("aria-expanded", "true", timeout=60_000)
    row(page, child["id"]).locator(".jp-TasksPanel-parent").wait_for(state="visible")

    page.locator(".jp-TasksPanel").screenshot(path=str(ARTIFACTS / "panel-after-rerun.png"))

    # stop the child so the server winds down quickly
    code, _ = lab.request("POST", f"/api/tasks/{child['id']}/cancel")
    assert code == 202
    wait_status(page, child["id"], "cancelled")
    assert page.page_errors == [], page.page_errors


def focused_row(page: Any) -> str | None:
    return page.evaluate(
        "() => document.activeElement?.closest('.jp-TasksPanel-row')?.dataset.taskId ?? null")


def test_the_keyboard_focus_stays_on_a_task_acted_on(lab: LabServer, page: Any) -> None:
    """Cancel or answer from the keyboard, and the focus went to the page's body (the
    button was disabled, then the row moved to another section): the next Tab started
    over from the top of the page. It now stays on the task's line wherever it moves."""
    from playwright.sync_api import expect

    code, task = lab.request("POST", "/api/tasks", {
        "name": "browser_slow", "params": {"steps": 600, "step_seconds": 0.1},
        "label": "cancelled from the keyboard"})
    assert code == 202, task
    wait_status(page, task["id"], "running")
    row(page, task["id"]).locator(".jp-TasksPanel-cancel").focus()
    page.keyboard.press("Enter")
    wait_status(page, task["id"], "cancelled")
    recent = page.locator('[data-section="recent"]')
    expect(recent.locator(f'[data-task-id="{task["id"]}"]')).to_have_count(1)
    page.wait_for_function(
        "id => document.activeElement?.closest('.jp-TasksPanel-row')?.dataset.taskId === id",
        arg=task["id"], timeout=WAIT_MS)
    page.keyboard.press("Tab")  # on along the same line: its actions
    assert focused_row(page) == task["id"]

    code, asked = lab.request("POST", "/api/tasks", {
        "name": "browser_ask", "params": {"prompt": "Ship it?"},
        "label": "answered from the keyboard"})
    assert code == 202, asked
    answer = row(page, asked["id"]).locator('.jp-TasksPanel-answer[data-answer="yes"]')
    answer.focus()
    page.keyboard.press("Enter")
    wait_status(page, asked["id"], "succeeded")
    page.wait_for_function(
        "id => document.activeElement?.closest('.jp-TasksPanel-row')?.dataset.taskId === id",
        arg=asked["id"], timeout=WAIT_MS)
    assert page.page_errors == [], page.page_errors


def test_a_rerun_answered_by_its_keys_run_says_so(lab: LabServer, page: Any) -> None:
    # before: the panel revealed the key's run as if it were the rerun, and said nothing;
    # the CLI and the dashboard say "not rerun"
    from playwright.sync_api import expect

    slow = {"name": "browser_slow", "params": {"steps": 600, "step_seconds": 0.1},
            "task_key": "panel-keyed-rerun"}
    code, first = lab.request("POST", "/api/tasks", {**slow, "label": "keyed first"})
    assert code == 202, first
    code, _ = lab.request("POST", f"/api/tasks/{first['id']}/cancel")
    assert code == 202
    wait_status(page, first["id"], "cancelled")
    code, running = lab.request("POST", "/api/tasks", {**slow, "label": "keyed second"})
    assert code == 202 and running["id"] != first["id"], running
    wait_status(page, running["id"], "running")

    target = row(page, first["id"])
    target.locator(".jp-TasksPanel-rowHeader").hover()
    target.locator(".jp-TasksPanel-rerun").click()
    toast = page.locator(".Toastify__toast", has_text="Not rerun")
    expect(toast).to_be_visible(timeout=WAIT_MS)
    assert "keyed second" in toast.inner_text() and "panel-keyed-rerun" in toast.inner_text()
    # the key's run is the one revealed, and no rerun was made
    toggle = row(page, running["id"]).locator(".jp-TasksPanel-toggle")
    expect(toggle).to_have_attribute("aria-expanded", "true", timeout=WAIT_MS)
    code, children = lab.request("GET", f"/api/tasks?parent_id={first['id']}")
    assert code == 200 and children["tasks"] == [], children
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "panel-rerun-deduplicated.png"))
    code, _ = lab.request("POST", f"/api/tasks/{running['id']}/cancel")
    assert code == 202
    wait_status(page, running["id"], "cancelled")
    assert page.page_errors == [], page.page_errors
