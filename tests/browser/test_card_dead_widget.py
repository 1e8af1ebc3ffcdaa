"""A saved card whose widget cannot come back shows its task instead of an error.

A notebook is saved with a finished ``%%background`` card in it; the kernel restarts
(or the server does, or the notebook is opened a day later). The card is an ipywidget
whose model lived in the old kernel: ipywidgets shows "Error displaying widget: model
not found" in its place, for good, over the cell's result. The cell's output still
names its task, so the panel shows that task live under the cell instead (status,
result, log, Rerun) and hides the dead widget's error.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.jobs.conftest import write_notebook
from tests.waiting import eventually_sync

from .lab import LabServer
from .test_card_restore import CLOSE_JS, OPEN_JS, RUN_ALL_JS, WAIT_MS, screenshot

pytestmark = [pytest.mark.browser]

CELLS = ["%load_ext jupyter_tasks",
         "%%background --label dead-widget\nprint('hello from the job')\n6 * 7\n"]

SAVE_JS = """
async () => { await window.jupyterapp.commands.execute('docmanager:save'); return true; }
"""
RESTART_JS = """
async () => {
  await window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.restart();
  return true;
}
"""

# what the cell shows where the card was: ipywidgets' own words for a widget whose
# model is gone, as the user reads them (hidden nodes do not count)
DEAD_TEXT_JS = """
() => [...document.querySelectorAll('.jp-CodeCell .jp-OutputArea-output')]
  .filter(n => n.offsetParent !== null && n.textContent.includes('Error displaying widget'))
  .length
"""


def test_a_saved_card_whose_kernel_restarted_shows_its_task(lab: LabServer, page: Any) -> None:
    # before: the reopened notebook showed "Error displaying widget: model not found"
    # where the card had been, and no view of the task (the restore skipped the cell:
    # its saved output names the task)
    from playwright.sync_api import expect

    path = lab.root / "dead-widget.ipynb"
    write_notebook(path, CELLS, markdown=None)
    try:
        page.evaluate(OPEN_JS, "dead-widget.ipynb")
        page.evaluate(RUN_ALL_JS)
        card = page.locator(".jupyter-tasks-card").first
        expect(card).to_contain_text("succeeded", timeout=WAIT_MS)
        task = eventually_sync(
            lambda: next((t for t in _tasks(lab) if t["label"] == "dead-widget"), None),
            timeout=60, what="the background cell's task")
        page.evaluate(SAVE_JS)
        assert task["id"] in path.read_text(), "the saved output names the task"

        # while its kernel lives, a reload brings the card's own widget back: no view
        reopen(page)
        expect(page.locator(".jp-CodeCell").nth(1).locator(".jupyter-tasks-card")
               ).to_contain_text("succeeded", timeout=WAIT_MS)
        expect(page.locator(".jp-TasksRestored")).to_have_count(0)

        page.evaluate(RESTART_JS)

        reopen(page)
        view = page.locator(f'.jp-TasksRestored[data-task-id="{task["id"]}"]')
        expect(view).to_be_visible(timeout=WAIT_MS)
        expect(view.locator(".jp-TasksRestored-status")).to_have_text("succeeded")
        expect(view.locator(".jp-TasksRestored-resultValue")).to_have_text("42")
        expect(view).to_contain_text("hello from the job", timeout=WAIT_MS)
        # under its own cell, once, and the dead widget's error is not shown
        cell = page.locator(".jp-CodeCell").nth(1)
        expect(cell.locator(".jp-TasksRestored")).to_have_count(1)
        eventually_sync(lambda: page.evaluate(DEAD_TEXT_JS) == 0, timeout=30,
                        what="the dead widget's error hidden")
        screenshot(page, "card-dead-widget.png", ".jp-NotebookPanel:not(.lm-mod-hidden)")
        assert not page.page_errors, page.page_errors

        # run again: the cell's own new card takes over, the view goes
        page.evaluate(RUN_ALL_JS)
        expect(cell.locator(".jupyter-tasks-card")).to_have_count(1, timeout=WAIT_MS)
        expect(cell.locator(".jp-TasksRestored")).to_have_count(0, timeout=WAIT_MS)
    finally:
        page.evaluate(CLOSE_JS)
        dialog = page.locator(".jp-Dialog")
        if dialog.count():
            dialog.locator("button").last.click()


def reopen(page: Any) -> None:
    """Reload the page and open the notebook again."""
    page.reload(wait_until="domcontentloaded")
    page.wait_for_function("() => window.jupyterapp !== undefined")
    page.evaluate(OPEN_JS, "dead-widget.ipynb")


def _tasks(lab: LabServer) -> list[dict[str, Any]]:
    """The cell tasks of any cell, newest first."""
    status, body = lab.request("GET", "/api/tasks?kind=cell&limit=50")
    assert status == 200, body
    return body["tasks"]

