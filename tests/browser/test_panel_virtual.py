"""The panel's long lists are virtual (issue 13): only the rows in view are in the DOM, the
scrollbar still spans every task, scrolling brings the others in, and "show task" reaches a
row far out of view. Screenshot in ``test-artifacts/``.
"""

from __future__ import annotations

from typing import Any

import pytest

from .lab import LabServer
from .test_panel_truth import WAIT_MS, make_task, row, screenshot, section_count, seed

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HISTORY = 600


def rendered(page: Any, section: str) -> int:
    return page.locator(f'[data-section="{section}"] .jp-TasksPanel-row').count()


def in_view(page: Any, task_id: str) -> bool:
    return page.evaluate("""id => {
        const list = document.querySelector('.jp-TasksPanel-list').getBoundingClientRect();
        const r = document.querySelector(`.jp-TasksPanel-row[data-task-id="${id}"]`);
        if (!r) { return false; }
        const b = r.getBoundingClientRect();
        return b.height > 0 && b.top >= list.top && b.bottom <= list.bottom;
    }""", task_id)


def test_long_lists_render_only_the_rows_in_view(lab: LabServer, page: Any) -> None:
    page.set_viewport_size({"width": 1400, "height": 1000})
    _, me = lab.request("GET", "/api/tasks/me")
    before = section_count(page, "recent")
    # newest first in Recent: history[0] ends latest, history[-1] is the oldest
    history = [make_task(f"long {i:03d}", owner=me["owner"], ago=7200 + i * 10)
               for i in range(HISTORY)]
    seed(lab.db_path, history)
    page.wait_for_function(
        "n => Number(document.querySelector("
        "'[data-section=recent] .jp-TasksPanel-sectionCount')?.textContent) === n",
        arg=before + HISTORY, timeout=WAIT_MS)
    total = before + HISTORY
    list_ = page.locator(".jp-TasksPanel-list")
    list_.evaluate("l => { l.scrollTop = 0; }")
    page.wait_for_function("() => document.querySelector('.jp-TasksPanel-list').scrollTop === 0")

    # a window's worth of rows (plus overscan), not hundreds; the scrollbar spans them all
    shown = rendered(page, "recent")
    assert 20 <= shown <= 80, shown
    geometry = list_.evaluate("l => [l.scrollHeight, l.clientHeight]")
    assert geometry[0] >= total * 22, geometry
    assert not in_view(page, history[-1].id)

    # scrolling to the end brings the oldest rows in and lets the first ones go
    list_.evaluate("l => { l.scrollTop = l.scrollHeight; }")
    row(page, history[-1].id).wait_for(state="attached")
    page.wait_for_function("id => { const r = document.querySelector("
                           "`.jp-TasksPanel-row[data-task-id=\"${id}\"]`);"
                           " return r !== null && r.getBoundingClientRect().height > 0; }",
                           arg=history[-1].id)
    assert in_view(page, history[-1].id)
    assert row(page, history[0].id).count() == 0
    assert rendered(page, "recent") <= 80
    screenshot(page, "virtual-scrolled-to-end.png", ".jp-TasksPanel")

    # "show task" on a row far out of view scrolls to it and opens its details
    target = history[HISTORY // 2]
    list_.evaluate("l => { l.scrollTop = 0; }")
    page.evaluate("id => window.jupyterapp.commands.execute('jupyter-tasks:show-task', {id})"
                  ".then(() => true)", target.id)
    details = row(page, target.id).locator(".jp-TasksPanel-details")
    details.wait_for(state="visible")
    page.wait_for_function("""id => {
        const list = document.querySelector('.jp-TasksPanel-list').getBoundingClientRect();
        const r = document.querySelector(`.jp-TasksPanel-row[data-task-id="${id}"]`);
        const b = r && r.getBoundingClientRect();
        return b !== null && b.top >= list.top && b.top < list.bottom;
    }""", arg=target.id)
    assert row(page, target.id).locator(".jp-TasksPanel-label").inner_text() == target.label
    # the rows around it are there too, and still only a window's worth
    assert row(page, history[HISTORY // 2 + 1].id).count() == 1
    assert rendered(page, "recent") <= 80
    screenshot(page, "virtual-show-task.png", ".jp-TasksPanel")
    assert page.page_errors == [], page.page_errors


def test_the_search_box_narrows_the_list_to_its_matches(lab: LabServer, page: Any) -> None:
    _, me = lab.request("GET", "/api/tasks/me")
    history = [make_task(f"Haystack {i:03d}", owner=me["owner"], ago=3600 + i * 10)
               for i in range(120)]
    seed(lab.db_path, history)
    box = page.locator(".jp-TasksPanel-search")
    box.fill("haystack 04")  # case folded: Haystack 040-049, of every task
    expected = [t.id for t in history if t.label.startswith("Haystack 04")]
    page.wait_for_function(
        "n => document.querySelectorAll('.jp-TasksPanel-row').length === n",
        arg=len(expected), timeout=WAIT_MS)
    shown = page.locator(".jp-TasksPanel-row").evaluate_all(
        "rows => rows.map(r => r.dataset.taskId)")
    assert shown == expected, shown  # newest first
    screenshot(page, "panel-search.png", ".jp-TasksPanel")
    box.fill("haystack 9")  # none
    page.wait_for_function(
        "() => document.querySelectorAll('.jp-TasksPanel-row').length === 0",
        timeout=WAIT_MS)
    box.fill("")  # every task again (as many rows as a window shows)
    page.wait_for_function(
        "n => Number(document.querySelector("
        "'[data-section=recent] .jp-TasksPanel-sectionCount')?.textContent) >= n",
        arg=len(history), timeout=WAIT_MS)
    assert page.page_errors == [], page.page_errors



ROW_TOP_JS = """id => {
    const r = document.querySelector(`.jp-TasksPanel-row[data-task-id="${id}"]`);
    return r === null ? null : r.getBoundingClientRect().top;
}"""

# two animation frames: the model's coalesced change has rendered, and any range fix after it
FRAMES_JS = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"

COUNT_JS = """([section, n]) => Number(document.querySelector(
    `[data-section=${section}] .jp-TasksPanel-sectionCount`)?.textContent) === n"""


def test_the_row_being_read_stays_put_while_tasks_arrive_above_it(
        lab: LabServer, page: Any) -> None:
    """A sweep of jobs ending pushed the task someone was reading down and out of view:
    each end goes to the top of Recent, and a job queued or started adds a row in a
    section above. The browser's own scroll anchoring did not hold it there."""
    page.set_viewport_size({"width": 1400, "height": 1000})
    _, me = lab.request("GET", "/api/tasks/me")
    shown = section_count(page, "recent")
    history = [make_task(f"read {i:03d}", owner=me["owner"], ago=3000 + i * 10)
               for i in range(300)]
    seed(lab.db_path, history)
    shown += len(history)
    page.wait_for_function(COUNT_JS, arg=["recent", shown], timeout=WAIT_MS)
    reading = history[150]
    page.evaluate("id => window.jupyterapp.commands.execute('jupyter-tasks:show-task', {id})"
                  ".then(() => true)", reading.id)
    row(page, reading.id).locator(".jp-TasksPanel-details").wait_for(state="visible")
    page.wait_for_function(f"id => ({ROW_TOP_JS})(id) !== null", arg=reading.id)
    page.evaluate(FRAMES_JS)
    top = page.evaluate(ROW_TOP_JS, reading.id)

    for burst in range(3):  # ends arriving at the top of Recent while the user reads
        ended = [make_task(f"ended {burst}-{i}", owner=me["owner"], ago=5 - burst)
                 for i in range(10)]
        seed(lab.db_path, ended)
        shown += len(ended)
        page.wait_for_function(COUNT_JS, arg=["recent", shown], timeout=WAIT_MS)
        page.evaluate(FRAMES_JS)
        now = page.evaluate(ROW_TOP_JS, reading.id)
        assert now is not None and abs(now - top) < 1, (burst, top, now)

    # a whole section above it appears: a job waits in a queue no worker serves
    seed(lab.db_path, [make_task("waits above", owner=me["owner"], status="queued",
                                 queue="nobody-serves-this", ago=1)])
    page.wait_for_function(COUNT_JS, arg=["queued", 1], timeout=WAIT_MS)
    page.evaluate(FRAMES_JS)
    now = page.evaluate(ROW_TOP_JS, reading.id)
    assert now is not None and abs(now - top) < 1, (top, now)
    screenshot(page, "virtual-reading-stays.png", ".jp-TasksPanel")
    assert page.page_errors == [], page.page_errors
