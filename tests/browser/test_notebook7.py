"""The extension in Notebook 7 (issue 13): the Tasks panel in its left area, cards in its
notebooks, notifications, the log view, and a card restored under its cell.

A real ``jupyter notebook`` (Notebook 7, the same launcher as the JupyterLab tests) with
the extension, driven in headless chromium. Notebook 7 has no status bar (the status
item is optional) and no dock: a task's log opens in its down area, as its log console
does. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import eventually_sync

from .lab import LabServer, launch_chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WAIT_MS = 60_000
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CELL_ID = "nb7-bg-cell"
# the extension's own code, to tell its errors from the frontend's
OWN_BUNDLE = "/extensions/jupyter-tasks/"

READY_JS = """
async () => {
  const app = window.jupyterapp;
  await app.started;
  await app.restored;
  const widget = app.shell.currentWidget;
  await widget.context.ready;
  await widget.sessionContext.ready;
  return { name: app.name, active: app.isPluginActivated('jupyter-tasks:plugin') };
}
"""


@pytest.fixture(scope="module")
def notebook7(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    server = LabServer(tmp_path_factory.mktemp("notebook7"), app="notebook")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def nb7_page(notebook7: LabServer, chromium: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = launch_chromium(p, tmp_path_factory.mktemp("chromium-nb7"), chromium)
        try:
            page = context.pages[0] if context.pages else context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(f"{exc}\n{exc.stack or ''}"))
            page.set_default_timeout(WAIT_MS)
            page.page_errors = errors
            yield page
        finally:
            context.close()


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path


def own_errors(page: Any) -> list[str]:
    return [e for e in page.page_errors if OWN_BUNDLE in e]


def _notebook(flag: Path) -> dict[str, Any]:
    background = (
        "%%background --label nb7-demo\n"
        "import os, time\n"
        "i = 0\n"
        f"while not os.path.exists({str(flag)!r}):\n"
        "    print(f'line {i}', flush=True)\n"
        "    i += 1\n"
        "    time.sleep(0.2)\n"
        "{'lines': i, 'done': True}\n"
    )
    return {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"}},
        "cells": [
            {"cell_type": "code", "id": "nb7-load-cell", "metadata": {}, "outputs": [],
             "execution_count": None, "source": "%load_ext jupyter_tasks"},
            {"cell_type": "code", "id": CELL_ID, "metadata": {}, "outputs": [],
             "execution_count": None, "source": background},
        ],
    }


def _cell_task(server: LabServer) -> dict[str, Any] | None:
    status, body = server.request("GET", "/api/tasks?kind=cell&limit=50")
    assert status == 200, body
    return next((t for t in body["tasks"]
                 if (t.get("origin") or {}).get("cell_id") == CELL_ID), None)


def expect_closed(dialog: Any) -> None:
    """The dialog closes (the server accepted); if not, the failure shows what it says."""
    from playwright.sync_api import expect

    try:
        expect(dialog).to_have_count(0, timeout=WAIT_MS)
    except AssertionError as exc:
        raise AssertionError(f"the dialog stayed open, saying: {dialog.inner_text()!r}") from exc


def _open(page: Any, server: LabServer, path: str) -> None:
    page.goto(server.notebook_url(path), wait_until="domcontentloaded")
    page.wait_for_function("() => window.jupyterapp !== undefined")
    ready = page.evaluate(READY_JS)
    # Notebook 7 itself (not JupyterLab), with the extension's plugin running
    assert ready == {"name": "Jupyter Notebook", "active": True}, ready


def test_panel_cards_notifications_and_restore_in_notebook7(
        notebook7: LabServer, nb7_page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = nb7_page
    flag = tmp_path / "stop"
    path = notebook7.root / "nb7.ipynb"
    path.write_text(json.dumps(_notebook(flag)))
    try:
        _open(page, notebook7, "nb7.ipynb")
        page.evaluate("async () => { await window.jupyterapp.commands.execute("
                      "'notebook:run-all-cells'); }")
        task = eventually_sync(lambda: _cell_task(notebook7), timeout=60,
                               what="the background cell's task")
        task_id = task["id"]

        # the %%background card (an ipywidget) renders in Notebook 7's notebook
        card = page.locator(".jupyter-tasks-card").first
        expect(card).to_contain_text("nb7-demo", timeout=WAIT_MS)
        expect(card).to_contain_text("line 2", timeout=WAIT_MS)

        # the Tasks panel opens in Notebook 7's left area, with the task's row
        page.evaluate("async () => { await window.jupyterapp.commands.execute("
                      "'jupyter-tasks:open'); }")
        panel = page.locator("#jp-left-stack .jp-TasksPanel")
        expect(panel).to_be_visible(timeout=WAIT_MS)
        expect(panel.locator('.jp-TasksPanel-connection[data-state="open"]')).to_be_attached()
        row = panel.locator(f'.jp-TasksPanel-row[data-task-id="{task_id}"]')
        expect(row).to_be_visible(timeout=WAIT_MS)
        expect(row).to_have_attribute("data-status", "running")
        expect(row.locator(".jp-TasksPanel-label")).to_have_text("nb7-demo")
        screenshot(page, "notebook7-panel-and-card.png")

        # View > Left Sidebar > Show Tasks hides and shows it again (Notebook 7's command)
        toggle = ("() => window.jupyterapp.commands.execute('application:toggle-panel', "
                  "{side: 'left', id: 'jupyter-tasks-panel', title: 'Tasks'})")
        page.evaluate(toggle)
        expect(panel).to_be_hidden()
        page.evaluate(toggle)
        expect(panel).to_be_visible()

        # a failure of mine is announced; its "Open log" shows the log in the down area
        code, failed = notebook7.request("POST", "/api/tasks", {
            "name": "browser_fail", "params": {"message": "nb7 disk full"},
            "label": "nb7 doomed"})
        assert code == 202, failed
        toast = page.locator(".Toastify__toast", has_text='Task "nb7 doomed" failed')
        expect(toast).to_be_visible(timeout=WAIT_MS)
        expect(panel.locator(f'.jp-TasksPanel-row[data-task-id="{failed["id"]}"]')
               ).to_have_attribute("data-status", "failed")
        toast.get_by_role("button", name="Open log").click()
        log = page.locator(f'.jp-TasksLog[data-task-id="{failed["id"]}"]')
        expect(log).to_be_visible(timeout=WAIT_MS)
        # the notebook stays where it was
        expect(page.locator(".jp-NotebookPanel")).to_be_visible()
        screenshot(page, "notebook7-notification-and-log.png")
        page.evaluate("() => window.jupyterapp.commands.execute("
                      "'apputils:dismiss-notification')")

        # reloaded without saving, the cell's card comes back from the server
        assert json.loads(path.read_text())["cells"][1]["outputs"] == [], \
            "the test needs an unsaved output"
        page.reload(wait_until="domcontentloaded")
        page.wait_for_function("() => window.jupyterapp !== undefined")
        page.evaluate(READY_JS)
        view = page.locator(f'.jp-TasksRestored[data-task-id="{task_id}"]')
        expect(view).to_be_visible(timeout=WAIT_MS)
        expect(page.locator(".jp-CodeCell").nth(1).locator(".jp-TasksRestored")).to_have_count(1)
        expect(view.locator(".jp-TasksRestored-status")).to_have_text("running")
        expect(view).to_contain_text("line 5", timeout=WAIT_MS)
        flag.touch()
        expect(view.locator(".jp-TasksRestored-status")).to_have_text("succeeded",
                                                                        timeout=WAIT_MS)
        expect(view.locator(".jp-TasksRestored-resultValue")).to_contain_text("'done': True")
        screenshot(page, "notebook7-restored-card.png")
        assert not own_errors(page), own_errors(page)
    finally:
        flag.touch()


def test_run_as_job_and_schedule_in_notebook7(notebook7: LabServer, nb7_page: Any) -> None:
    """Notebook 7: "Schedule…" from its file browser at /tree, "Run as job…" from the
    notebook page's toolbar; both reach the server with the edited parameter."""
    from playwright.sync_api import expect

    from .test_schedules_panel import parameterized_notebook

    page = nb7_page
    (notebook7.root / "nb7_params.ipynb").write_text(json.dumps(parameterized_notebook()))

    page.goto(f"{notebook7.base}/tree?token={notebook7.token}", wait_until="domcontentloaded")
    item = page.locator(".jp-DirListing-item", has_text="nb7_params.ipynb")
    item.click()
    item.click(button="right")
    page.locator(".lm-Menu-item", has_text="Schedule…").click()
    dialog = page.locator(".jp-TasksDialog-dialog")
    dialog.locator('[data-parameter="count"] input').fill("4")
    dialog.locator(".jp-TasksDialog-name").fill("nb7 schedule")
    expect(dialog.locator(".jp-TasksDialog-preview li")).to_have_count(5)
    screenshot(page, "notebook7-schedule-dialog.png")
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    expect_closed(dialog)
    status, body = notebook7.request("GET", "/api/tasks/schedules")
    assert status == 200 and len(body["schedules"]) == 1, body
    created = body["schedules"][0]
    assert created["name"] == "nb7 schedule", created
    assert created["job"] == {"notebook": "nb7_params.ipynb", "parameters": {"count": 4}}, created

    _open(page, notebook7, "nb7_params.ipynb")
    page.locator(".jp-TasksRunAsJob").click()
    dialog.locator('[data-parameter="day"] input').fill('"friday"')
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    expect_closed(dialog)

    def job() -> dict[str, Any] | None:
        status, page_ = notebook7.request("GET", "/api/tasks?kind=notebook&limit=10")
        assert status == 200, page_
        return next((t for t in page_["tasks"] if not t.get("schedule_id")), None)

    task = eventually_sync(job, timeout=30, what="the notebook job")
    # a notebook job's params are the parameters it was given
    assert task["params"] == {"day": "friday"}, task
    screenshot(page, "notebook7-run-as-job.png")
    notebook7.request("POST", f"/api/tasks/{task['id']}/cancel")
    assert own_errors(page) == [], own_errors(page)
