"""The panel counts every task, not only the pages it loaded: the status bar, the status
filter and the section headers of a long history show the server's totals, and follow new
tasks; a queue it holds only part of shows no positions. Screenshot in ``test-artifacts/``.
"""

from __future__ import annotations

from typing import Any

import pytest

from .lab import LabServer, open_lab_and_panel
from .test_panel_truth import WAIT_MS, make_task, screenshot, seed

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# more queued tasks than the panel's first page (100) holds, all newer than the history
QUEUED = 150
SUCCEEDED = 250
# a queue no worker of the lab serves: its tasks stay queued
NOWHERE = "counts-nowhere"


def status_text(page: Any) -> str:
    return page.locator('[data-testid="tasks-status"] .jp-TasksStatus-text').inner_text()


def option_texts(page: Any) -> list[str]:
    return page.locator(".jp-TasksPanel-statusFilter option").all_inner_texts()


def wait_for_status_text(page: Any, text: str) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            "t => document.querySelector('[data-testid=tasks-status] .jp-TasksStatus-text')"
            "?.textContent === t", arg=text, timeout=WAIT_MS)
    except PlaywrightTimeout:
        # (the loaded page alone said "100 queued", "All statuses (100)")
        raise AssertionError(f"the status bar says {status_text(page)!r}, not {text!r}; "
                             f"the status filter: {option_texts(page)}") from None


def test_the_status_bar_and_filter_count_every_task(lab: LabServer, page: Any) -> None:
    _, me = lab.request("GET", "/api/tasks/me")
    history = [make_task(f"done {i:03d}", owner=me["owner"], ago=7200 + i)
               for i in range(SUCCEEDED)]
    waiting = [make_task(f"waiting {i:03d}", owner=me["owner"], status="queued",
                         queue=NOWHERE, ago=600 - i) for i in range(QUEUED)]
    seed(lab.db_path, history + waiting)
    code, stats = lab.request("GET", "/api/tasks/stats")
    assert code == 200, stats
    statuses = stats["statuses"]
    assert statuses["queued"] == QUEUED, statuses

    # a fresh load: the first page holds the newest 100 tasks, all of them queued
    open_lab_and_panel(page, lab)
    running = statuses.get("running", 0)
    wait_for_status_text(page, f"Tasks: {running} running, {QUEUED} queued")
    options = option_texts(page)
    assert f"All statuses ({sum(statuses.values())})" in options, options
    assert f"Queued ({QUEUED})" in options, options
    assert f"Succeeded ({statuses['succeeded']})" in options, options
    # the list itself still shows what it loaded, the rest a page away; and no queue
    # positions, which would count from the first loaded task ("#1" for the 51st)
    queued_rows = page.locator('[data-section="queued"] .jp-TasksPanel-row')
    assert 0 < queued_rows.count() <= 100
    assert page.locator('[data-section="queued"] .jp-TasksPanel-queuePos').count() == 0
    # the section's header: its rows, of how many
    header = page.locator('[data-section="queued"] .jp-TasksPanel-sectionHeader')
    assert header.locator(".jp-TasksPanel-sectionTotal").inner_text() == f"of {QUEUED}"

    # a task queued by another process: the totals follow within a second of its event
    seed(lab.db_path, [make_task("one more", owner=me["owner"], status="queued",
                                 queue=NOWHERE, ago=1)])
    wait_for_status_text(page, f"Tasks: {running} running, {QUEUED + 1} queued")
    page.wait_for_function(
        "n => Array.from(document.querySelectorAll('.jp-TasksPanel-statusFilter option'))"
        ".some(o => o.textContent === `Queued (${n})`)", arg=QUEUED + 1, timeout=WAIT_MS)
    page.wait_for_function(
        "t => document.querySelector('[data-section=queued] .jp-TasksPanel-sectionTotal')"
        "?.textContent === t", arg=f"of {QUEUED + 1}", timeout=WAIT_MS)
    screenshot(page, "panel-counts-every-task.png", ".jp-TasksPanel")
    assert not page.page_errors, page.page_errors
