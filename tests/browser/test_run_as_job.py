""""Run as job…" from a notebook's toolbar in JupyterLab (issue 14): the dialog prefills
the notebook's parameters, an edited one reaches the executed notebook, a bad field
is refused inline; and the attempt a retried task is on, as the retry policy counts it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import eventually_sync

from .lab import LabServer
from .test_panel import row, wait_status
from .test_schedules_panel import parameterized_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
NOTEBOOK = "job_report.ipynb"


def tasks_of(lab: LabServer, kind: str) -> list[dict[str, Any]]:
    status, body = lab.request("GET", f"/api/tasks?kind={kind}&limit=50")
    assert status == 200, body
    return body["tasks"]


def finished(lab: LabServer, task_id: str) -> dict[str, Any] | None:
    status, task = lab.request("GET", f"/api/tasks/{task_id}")
    assert status == 200, task
    return task if task["status"] not in ("queued", "running") else None


def test_run_as_job_from_the_notebook_toolbar(lab: LabServer, page: Any) -> None:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    (lab.root / NOTEBOOK).write_text(json.dumps(parameterized_notebook()))
    # returns nothing: the opened widget is no value playwright can serialize
    page.evaluate("async path => { await window.jupyterapp.commands.execute("
                  "'docmanager:open', {path}); }", NOTEBOOK)
    button = page.locator(".jp-NotebookPanel-toolbar .jp-TasksRunAsJob")
    button.click()
    dialog = page.locator(".jp-TasksDialog-dialog")
    dialog.wait_for(state="visible")
    count = dialog.locator('[data-parameter="count"] input')
    expect(count).to_have_value("3")
    count.fill("7")

    # a queue name the server refuses: its problem+json shows at the field, nothing runs
    dialog.locator(".jp-TasksDialog-queue").fill("no spaces allowed")
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    expect(dialog.locator('[data-testid="queue-error"]')).to_be_visible()
    expect(dialog.locator('[data-testid="dialog-problem"]')).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "run-as-job-invalid-queue.png"))
    assert tasks_of(lab, "notebook") == []

    dialog.locator(".jp-TasksDialog-queue").fill("")
    page.screenshot(path=str(ARTIFACTS / "run-as-job-dialog.png"))
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    expect(dialog).to_have_count(0)

    [task] = eventually_sync(lambda: tasks_of(lab, "notebook"), what="the notebook job")
    # the panel reveals it
    expect(row(page, task["id"])).to_be_visible()
    done = eventually_sync(lambda: finished(lab, task["id"]), timeout=180, what="the job's end")
    assert done["status"] == "succeeded", done
    wait_status(page, task["id"], "succeeded")
    page.locator(".jp-TasksPanel").screenshot(path=str(ARTIFACTS / "run-as-job-panel.png"))

    # the executed notebook holds the injected value, and its output used it
    status, artifacts = lab.request("GET", f"/api/tasks/{task['id']}/artifacts")
    assert status == 200, artifacts
    listed = artifacts["artifacts"] if isinstance(artifacts, dict) else artifacts
    name = next(a["name"] for a in listed if a["name"].endswith(".ipynb"))
    status, executed = lab.request("GET", f"/api/tasks/{task['id']}/artifacts/{name}")
    assert status == 200, executed
    injected = [c for c in executed["cells"]
                if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    assert injected and "count = 7" in "".join(injected[0]["source"]), injected
    printed = "".join("".join(o.get("text", "")) for c in executed["cells"]
                      for o in c.get("outputs", []))
    assert "monday" * 7 in printed, printed
    assert page.page_errors == [], page.page_errors


def test_a_retried_task_says_attempt_2_of_2_and_why(lab: LabServer, page: Any) -> None:
    from playwright.sync_api import expect

    status, task = lab.request("POST", "/api/tasks", {
        "command": ["sh", "-c", "echo trying; exit 3"], "max_retries": 1,
        "label": "flaky command"})
    assert status == 202, task
    done = eventually_sync(lambda: finished(lab, task["id"]), timeout=60, what="the end")
    assert done["status"] == "failed" and done["attempts"] == 2, done
    assert done["max_attempts"] == 2 and done["retry_reason"], done

    # the details: "attempt 2 of 2 · <why it was retried>"
    target = row(page, task["id"])
    wait_status(page, task["id"], "failed")
    if target.locator(".jp-TasksPanel-toggle").get_attribute("aria-expanded") != "true":
        target.locator(".jp-TasksPanel-rowHeader").click()
    detail = target.locator(".jp-TasksPanel-attempt")
    expect(detail).to_have_text(f"2 of 2 · {done['retry_reason']}")
    dt = detail.locator("xpath=preceding-sibling::dt[1]")
    expect(dt).to_have_text("attempt")
    page.locator(".jp-TasksPanel").screenshot(path=str(ARTIFACTS / "attempts-details.png"))

    # the log tab's header says the same
    page.evaluate("async id => { await window.jupyterapp.commands.execute("
                  "'jupyter-tasks:open-log', {id}); }", task["id"])
    log_attempt = page.locator(f"#jupyter-tasks-log-{task['id']} .jp-TasksLog-attempt")
    expect(log_attempt).to_have_text(f"attempt 2 of 2 · {done['retry_reason']}")
    page.screenshot(path=str(ARTIFACTS / "attempts-log.png"))
    assert page.page_errors == [], page.page_errors


def test_accept_before_the_parameters_are_read_runs_once_they_are(
        lab: LabServer, page: Any) -> None:
    # a click on the accept button while the dialog still reads the notebook's
    # parameters did nothing at all: the user waited for a job that never came
    from playwright.sync_api import expect

    path = "slow_parameters.ipynb"
    (lab.root / path).write_text(json.dumps(parameterized_notebook()))
    held: list[Any] = []  # the parameters request, answered when the test says
    page.route("**/api/tasks/notebook-parameters**", lambda route: held.append(route))
    try:
        page.evaluate("async path => { await window.jupyterapp.commands.execute("
                      "'docmanager:open', {path}); }", path)
        with page.expect_request("**/api/tasks/notebook-parameters**"):
            page.locator(".jp-NotebookPanel-toolbar .jp-TasksRunAsJob:visible").click()
        dialog = page.locator(".jp-TasksDialog-dialog")
        dialog.wait_for(state="visible")
        assert dialog.locator('[data-parameter="count"]').count() == 0  # not read yet
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        assert len(held) == 1
        held[0].continue_()
        expect(dialog).to_have_count(0)

        def job() -> dict[str, Any] | None:
            return next((t for t in tasks_of(lab, "notebook") if path in json.dumps(t)), None)

        task = eventually_sync(job, what="the notebook job")
        assert not task["params"], task  # none edited: the notebook's own values
        lab.request("POST", f"/api/tasks/{task['id']}/cancel")
    finally:
        page.unroute("**/api/tasks/notebook-parameters**")
    assert page.page_errors == [], page.page_errors
