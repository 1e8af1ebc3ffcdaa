"""Schedules in JupyterLab (issue 14): "Schedule…" from the file browser's context menu
with a prefilled parameter edited, the Schedules section of the side panel (next run,
pause, run now, show firings) and an invalid cron refused inline, creating nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import eventually_sync

from .lab import LabServer
from .test_panel import row, wait_status

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
NOTEBOOK = "sched_report.ipynb"


def parameterized_notebook() -> dict[str, Any]:
    """A notebook with a tagged ``parameters`` cell (papermill's convention)."""
    return {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"}},
        "cells": [
            {"cell_type": "code", "id": "params", "metadata": {"tags": ["parameters"]},
             "outputs": [], "execution_count": None,
             "source": 'day = "monday"\ncount = 3\n'},
            {"cell_type": "code", "id": "body", "metadata": {}, "outputs": [],
             "execution_count": None, "source": "print(day * count)\n"},
        ],
    }


def schedules(lab: LabServer) -> list[dict[str, Any]]:
    status, body = lab.request("GET", "/api/tasks/schedules")
    assert status == 200, body
    return body["schedules"]


def schedule_row(page: Any, schedule_id: str) -> Any:
    return page.locator(f'.jp-TasksPanel-scheduleRow[data-schedule-id="{schedule_id}"]')


def open_schedule_dialog_from_file_browser(page: Any, name: str) -> Any:
    """Right-click the notebook in the file browser and pick "Schedule…"."""
    page.evaluate("""async () => {
        const app = window.jupyterapp;
        await app.commands.execute('filebrowser:activate');
        await app.commands.execute('filebrowser:refresh');
    }""")
    item = page.locator(".jp-DirListing-item", has_text=name)
    item.wait_for(state="visible")
    item.click()
    item.click(button="right")
    page.locator(".lm-Menu-item", has_text="Schedule…").click()
    dialog = page.locator(".jp-TasksDialog-dialog")
    dialog.wait_for(state="visible")
    return dialog


def test_schedule_from_file_browser_then_pause_run_now_and_firings(
        lab: LabServer, page: Any) -> None:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    (lab.root / NOTEBOOK).write_text(json.dumps(parameterized_notebook()))
    dialog = open_schedule_dialog_from_file_browser(page, NOTEBOOK)

    # the parameters cell prefills the dialog, each value as JSON with its type
    count = dialog.locator('[data-parameter="count"] input')
    expect(count).to_have_value("3")
    expect(dialog.locator('[data-parameter="count"] .jp-TasksDialog-type')).to_have_text("int")
    expect(dialog.locator('[data-parameter="day"] input')).to_have_value('"monday"')
    # the time zone defaults to the browser's
    browser_zone = page.evaluate("() => Intl.DateTimeFormat().resolvedOptions().timeZone")
    expect(dialog.locator(".jp-TasksDialog-timezone")).to_have_value(browser_zone)

    count.fill("5")
    dialog.locator(".jp-TasksDialog-name").fill("browser nightly")

    # an invalid cron: the preview says why, as the user types; submitting keeps the
    # dialog open with the server's 422 inline and creates nothing
    dialog.locator(".jp-TasksDialog-cron").fill("61 * * * *")
    cron_error = dialog.locator('[data-testid="cron-error"]')
    expect(cron_error).to_be_visible()
    expect(dialog.locator(".jp-TasksDialog-preview li")).to_have_count(0)
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    problem = dialog.locator('[data-testid="dialog-problem"]')
    expect(problem).to_be_visible()
    expect(dialog).to_be_visible()
    assert "cron" in (cron_error.inner_text() + problem.inner_text()).lower()
    page.screenshot(path=str(ARTIFACTS / "schedule-dialog-invalid-cron.png"))
    assert schedules(lab) == []

    # a valid rule: five next runs previewed live, the rule said in words
    dialog.locator(".jp-TasksDialog-cron").fill("0 9 * * 1-5")
    expect(dialog.locator(".jp-TasksDialog-preview li")).to_have_count(5)
    expect(cron_error).to_have_count(0)
    expect(dialog.locator(".jp-TasksDialog-previewTitle")).to_contain_text("weekdays at 09:00")
    page.screenshot(path=str(ARTIFACTS / "schedule-dialog.png"))
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    expect(dialog).to_have_count(0)

    # the server holds it, with the edited parameter only
    [created] = eventually_sync(lambda: schedules(lab), what="a schedule")
    assert created["name"] == "browser nightly", created
    assert created["cron"] == "0 9 * * 1-5" and created["timezone"] == browser_zone, created
    assert created["job"]["notebook"] == NOTEBOOK, created
    assert created["job"]["parameters"] == {"count": 5}, created
    assert created["next_run_at"] is not None

    # ... and the panel shows it in its Schedules section, with the next run
    line = schedule_row(page, created["id"])
    expect(line).to_be_visible()
    expect(line.locator(".jp-TasksPanel-label")).to_have_text("browser nightly")
    expect(line.locator(".jp-TasksPanel-cron")).to_have_text("weekdays at 09:00")
    expect(line.locator(".jp-TasksPanel-nextRun")).to_contain_text("in ")
    page.locator(".jp-TasksPanel").screenshot(path=str(ARTIFACTS / "schedules-panel.png"))

    # pause from the panel: the server says paused, the line says so
    line.locator(".jp-TasksPanel-rowHeader").hover()
    line.locator(".jp-TasksPanel-pause").click()
    expect(line).to_have_attribute("data-paused", "true")
    expect(line.locator(".jp-TasksPanel-nextRun")).to_have_text("paused")
    status, body = lab.request("GET", f"/api/tasks/schedules/{created['id']}")
    assert status == 200 and body["paused"] is True and body["next_run_at"] is None, body

    # run now: a task linked to the schedule appears (revealed in the panel)
    line.locator(".jp-TasksPanel-rowHeader").hover()
    line.locator(".jp-TasksPanel-runNow").click()

    def firing() -> dict[str, Any] | None:
        status, page_ = lab.request("GET", f"/api/tasks?schedule_id={created['id']}")
        assert status == 200, page_
        return page_["tasks"][0] if page_["tasks"] else None

    fired = eventually_sync(firing, timeout=30, what="a firing")
    assert fired["schedule_id"] == created["id"], fired
    expect(row(page, fired["id"])).to_be_visible()
    # the line's last run follows its task to its end (before: it said "queued", the
    # status at the firing, until a reload: no schedule.changed comes when a task ends)
    wait_status(page, fired["id"], "succeeded")
    expect(line.locator(".jp-TasksPanel-status")).to_have_attribute("data-look", "succeeded")

    # a task of no schedule, to see the filter hide it
    status, other = lab.request("POST", "/api/tasks", {"name": "browser_tiny", "params": {"n": 1}})
    assert status == 202, other
    expect(row(page, other["id"])).to_be_visible()

    # show firings (the line's context menu): only its tasks listed, under a removable filter
    line.click(button="right")
    page.locator(".lm-Menu-item", has_text="Show Its Firings").click()
    chip = page.locator(".jp-TasksPanel-firingsFilter")
    expect(chip).to_contain_text("browser nightly")
    expect(row(page, fired["id"])).to_be_visible()
    expect(row(page, other["id"])).to_have_count(0)
    listed = page.locator(".jp-TasksPanel-row[data-task-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.taskId)")
    assert listed == [fired["id"]], listed
    page.locator(".jp-TasksPanel").screenshot(path=str(ARTIFACTS / "schedules-firings.png"))
    page.locator(".jp-TasksPanel-clearFirings").click()
    expect(row(page, other["id"])).to_be_visible()

    # resume, then delete with the confirmation: gone from the server and the panel
    line.locator(".jp-TasksPanel-rowHeader").hover()
    line.locator(".jp-TasksPanel-resume").click()
    expect(line).to_have_attribute("data-paused", "false")
    line.locator(".jp-TasksPanel-rowHeader").hover()
    line.locator(".jp-TasksPanel-delete").click()
    page.locator(".jp-Dialog .jp-mod-warn", has_text="Delete").click()
    expect(line).to_have_count(0)
    assert schedules(lab) == []

    # live: another client's create, pause and delete reach the panel as schedule.changed
    # events, without a reload
    status, other_client = lab.request("POST", "/api/tasks/schedules", {
        "name": "made over REST", "cron": "*/15 * * * *",
        "job": {"name": "browser_tiny", "params": {"n": 2}}})
    assert status == 201, other_client
    live = schedule_row(page, other_client["id"])
    expect(live.locator(".jp-TasksPanel-cron")).to_have_text("every 15 minutes")
    status, _ = lab.request("POST", f"/api/tasks/schedules/{other_client['id']}/pause")
    assert status == 200
    expect(live).to_have_attribute("data-paused", "true")
    status, _ = lab.request("DELETE", f"/api/tasks/schedules/{other_client['id']}")
    assert status == 204
    expect(live).to_have_count(0)
    assert page.page_errors == [], page.page_errors


def open_edit_from_context_menu(page: Any, schedule_id: str) -> Any:
    """Right-click the schedule's line in the panel and pick "Edit Schedule…"."""
    schedule_row(page, schedule_id).click(button="right")
    page.locator(".lm-Menu-item", has_text="Edit Schedule…").click()
    dialog = page.locator(".jp-TasksDialog-dialog")
    dialog.wait_for(state="visible")
    return dialog


def test_edit_schedule_from_context_menu(lab: LabServer, page: Any) -> None:
    """Edit (PATCH) from a line's context menu: the new cron and parameter reach the
    server and the line; an invalid cron is refused inline and changes nothing."""
    from datetime import datetime, timezone

    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    (lab.root / NOTEBOOK).write_text(json.dumps(parameterized_notebook()))
    # a daily rule twelve hours from now (UTC): its next run is hours away, so the
    # edited rule's next run (within five minutes) reads differently on the line
    hour = (datetime.now(timezone.utc).hour + 12) % 24
    status, created = lab.request("POST", "/api/tasks/schedules", {
        "name": "to edit", "cron": f"0 {hour} * * *", "timezone": "UTC",
        "job": {"notebook": NOTEBOOK, "parameters": {"count": 5}}})
    assert status == 201, created

    line = schedule_row(page, created["id"])
    expect(line.locator(".jp-TasksPanel-cron")).to_have_text(f"daily at {hour:02d}:00")
    next_run = line.locator(".jp-TasksPanel-nextRun")
    expect(next_run).to_contain_text("h")
    next_before = next_run.inner_text()

    # edit: the dialog opens on the schedule as saved, the set parameter shown
    dialog = open_edit_from_context_menu(page, created["id"])
    expect(dialog.locator(".jp-TasksDialog-cron")).to_have_value(f"0 {hour} * * *")
    count = dialog.locator('[data-parameter="count"] input')
    expect(count).to_have_value("5")
    expect(dialog.locator('[data-parameter="day"] input')).to_have_value('"monday"')

    # an invalid cron: the inline error as one types; Save keeps the dialog open with
    # the server's refusal, and the server still holds the schedule as it was
    dialog.locator(".jp-TasksDialog-cron").fill("61 * * * *")
    cron_error = dialog.locator('[data-testid="cron-error"]')
    expect(cron_error).to_be_visible()
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    problem = dialog.locator('[data-testid="dialog-problem"]')
    expect(problem).to_be_visible()
    expect(dialog).to_be_visible()
    assert "cron" in (cron_error.inner_text() + problem.inner_text()).lower()
    page.screenshot(path=str(ARTIFACTS / "schedule-edit-invalid-cron.png"))
    status, unchanged = lab.request("GET", f"/api/tasks/schedules/{created['id']}")
    assert status == 200, unchanged
    assert unchanged["cron"] == created["cron"], unchanged
    assert unchanged["job"] == created["job"], unchanged
    assert unchanged["updated_at"] == created["updated_at"], unchanged

    # a valid rule and a new parameter value: saved, the dialog closes
    dialog.locator(".jp-TasksDialog-cron").fill("*/5 * * * *")
    expect(dialog.locator(".jp-TasksDialog-preview li")).to_have_count(5)
    expect(dialog.locator(".jp-TasksDialog-previewTitle")).to_contain_text("every 5 minutes")
    count.fill("7")
    page.screenshot(path=str(ARTIFACTS / "schedule-edit.png"))
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    expect(dialog).to_have_count(0)

    status, saved = lab.request("GET", f"/api/tasks/schedules/{created['id']}")
    assert status == 200, saved
    assert saved["cron"] == "*/5 * * * *", saved
    assert saved["timezone"] == "UTC" and saved["name"] == "to edit", saved
    assert saved["job"]["notebook"] == NOTEBOOK, saved
    assert saved["job"]["parameters"] == {"count": 7}, saved
    assert saved["next_run_at"] != created["next_run_at"], saved

    # ... and the line says the new rule and the new next run
    expect(line.locator(".jp-TasksPanel-cron")).to_have_text("every 5 minutes")
    expect(next_run).not_to_have_text(next_before)
    expect(next_run).to_have_text(re.compile(r"^(now|in [1-5]m)$"))
    page.locator(".jp-TasksPanel").screenshot(path=str(ARTIFACTS / "schedule-edited-panel.png"))

    status, _ = lab.request("DELETE", f"/api/tasks/schedules/{created['id']}")
    assert status == 204
    expect(line).to_have_count(0)
    assert page.page_errors == [], page.page_errors


def clipped(locator: Any) -> bool:
    """Whether the element's text is cut short (ellipsis) at its current width."""
    return locator.evaluate("e => e.scrollWidth > e.clientWidth")


def test_schedule_name_in_full_the_rule_gives_way_first(lab: LabServer, page: Any) -> None:
    """At the panel's default width the name shows in full and the rule in words is
    what shortens; only a name longer than the line is itself cut."""
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    page.mouse.move(0, 0)  # no hover: the next run shows, not the actions
    status, short = lab.request("POST", "/api/tasks/schedules", {
        "name": "browser nightly", "cron": "0 9 * * 1-5",
        "job": {"name": "browser_tiny", "params": {"n": 1}}})
    assert status == 201, short
    status, long = lab.request("POST", "/api/tasks/schedules", {
        "name": "a schedule whose name is longer than the whole panel line",
        "cron": "*/15 * * * *", "job": {"name": "browser_tiny", "params": {"n": 1}}})
    assert status == 201, long
    try:
        line = schedule_row(page, short["id"])
        expect(line.locator(".jp-TasksPanel-cron")).to_have_text("weekdays at 09:00")
        long_line = schedule_row(page, long["id"])
        expect(long_line).to_be_visible()
        page.locator(".jp-TasksPanel").screenshot(path=str(ARTIFACTS / "schedules-names.png"))
        width = page.locator(".jp-TasksPanel").evaluate("e => e.getBoundingClientRect().width")

        # the name in full, the next run in full; the rule is what gave way
        assert not clipped(line.locator(".jp-TasksPanel-label")), width
        assert not clipped(line.locator(".jp-TasksPanel-nextRun")), width
        # a name longer than the line: cut, the rule gone to nothing, the next run whole
        assert clipped(long_line.locator(".jp-TasksPanel-label")), width
        assert long_line.locator(".jp-TasksPanel-cron").evaluate(
            "e => e.getBoundingClientRect().width") < 1, width
        assert not clipped(long_line.locator(".jp-TasksPanel-nextRun")), width
    finally:
        for created in (short, long):
            lab.request("DELETE", f"/api/tasks/schedules/{created['id']}")
    assert page.page_errors == [], page.page_errors


# The browser's idle callbacks wait in a list until released. JupyterLab's dialog
# moves the focus into its body in one (once its React body has rendered), so what the
# user does before the browser is next idle happens while that move is still due.
HOLD_IDLE = """() => {
    window.__heldIdle = [];
    window.__realIdle = window.requestIdleCallback;
    window.requestIdleCallback = callback => { window.__heldIdle.push(callback); return 0; };
}"""
RELEASE_IDLE = """() => {
    window.requestIdleCallback = window.__realIdle;
    for (const callback of window.__heldIdle.splice(0)) {
        callback({didTimeout: false, timeRemaining: () => 50});
    }
}"""


def test_typing_before_the_dialog_settles_stays_in_its_field(lab: LabServer, page: Any) -> None:
    """A field the user is typing in keeps the focus when the dialog settles. It moved
    to the first parameter (seen in CI: the name typed went on the end of "monday")."""
    from playwright.sync_api import expect

    (lab.root / "focus_params.ipynb").write_text(json.dumps(parameterized_notebook()))
    page.evaluate(HOLD_IDLE)
    try:
        dialog = open_schedule_dialog_from_file_browser(page, "focus_params.ipynb")
        day = dialog.locator('[data-parameter="day"] input')
        expect(day).to_have_value('"monday"')  # the parameters are in
        name = dialog.locator(".jp-TasksDialog-name")
        name.click()
        page.keyboard.press("Control+A")
        page.keyboard.type("typed ")
    finally:
        page.evaluate(RELEASE_IDLE)
    page.keyboard.type("quickly")
    expect(name).to_have_value("typed quickly")
    expect(day).to_have_value('"monday"')
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    expect(dialog).to_have_count(0)
    made = [s for s in schedules(lab) if s["name"] == "typed quickly"]
    assert len(made) == 1 and made[0]["job"] == {"notebook": "focus_params.ipynb",
                                                 "parameters": {}}, made
    lab.request("DELETE", f"/api/tasks/schedules/{made[0]['id']}")
    assert page.page_errors == [], page.page_errors
