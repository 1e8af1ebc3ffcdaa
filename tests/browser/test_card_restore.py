"""A card that outlives the tab (issue 13).

A ``%%background`` cell prints a line every 0.2 s; the notebook tab is closed without
saving while it runs, so the file on disk has no output for that cell. Reopened, the cell
shows the task again: every line printed so far (those printed while the tab was closed
too) and new ones as they come, then the end. The restored card is a real card: it
answers the task's question, cancels it and reruns it, through the REST API, as the
kernel's card does. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import eventually_sync

from .lab import LabServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WAIT_MS = 60_000
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CELL_ID = "restore-bg-cell"

OPEN_JS = """
async (path) => {
  const app = window.jupyterapp;
  await app.started;
  await app.restored;
  const widget = await app.commands.execute('docmanager:open', {path, factory: 'Notebook'});
  await widget.context.ready;
  await widget.sessionContext.ready;
  return true;
}
"""

RUN_ALL_JS = """
async () => {
  await window.jupyterapp.commands.execute('notebook:run-all-cells');
  return true;
}
"""

# close the tab as a user does: the notebook is dirty, JupyterLab asks, the user discards
CLOSE_JS = """
() => { window.jupyterapp.shell.currentWidget.close(); return true; }
"""

# the view is no output: the cell's outputs in the document stay as the file had them
OUTPUTS_JS = "() => window.jupyterapp.shell.currentWidget.content.widgets[1].model.outputs.length"


def screenshot(page: Any, name: str, selector: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.locator(selector).screenshot(path=str(path))
    return path


def _notebook(flag: Path) -> dict[str, Any]:
    background = (
        "%%background --name job --label restore-demo\n"
        "import os, time\n"
        "i = 0\n"
        f"while not os.path.exists({str(flag)!r}):\n"
        "    print(f'line {i}', flush=True)\n"
        "    i += 1\n"
        "    time.sleep(0.2)\n"
        "print('final line')\n"
        "i\n"
    )
    return {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"}},
        "cells": [
            {"cell_type": "code", "id": "restore-load-cell", "metadata": {}, "outputs": [],
             "execution_count": None, "source": "%load_ext jupyter_tasks"},
            {"cell_type": "code", "id": CELL_ID, "metadata": {}, "outputs": [],
             "execution_count": None, "source": background},
        ],
    }


def _cell_tasks(lab: LabServer, cell_id: str = CELL_ID) -> list[dict[str, Any]]:
    """The tasks of one cell, newest first."""
    status, body = lab.request("GET", "/api/tasks?kind=cell&limit=50")
    assert status == 200, body
    return [t for t in body["tasks"] if (t.get("origin") or {}).get("cell_id") == cell_id]


def _task(lab: LabServer, task_id: str) -> dict[str, Any]:
    status, body = lab.request("GET", f"/api/tasks/{task_id}")
    assert status == 200, body
    return body


def _lines(lab: LabServer, task_id: str) -> list[int]:
    status, body = lab.request("GET", f"/api/tasks/{task_id}/logs?limit=10000")
    assert status == 200, body
    text = "".join(e["text"] for e in body["entries"])
    return [int(n) for n in re.findall(r"^line (\d+)$", text, re.MULTILINE)]


def _shown(view: Any) -> list[int]:
    text = view.locator(".jp-TasksRestored-output").inner_text()
    return [int(n) for n in re.findall(r"^line (\d+)$", text, re.MULTILINE)]


def test_a_background_card_comes_back_in_a_tab_closed_without_saving(
        lab: LabServer, page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    flag = tmp_path / "stop"
    path = lab.root / "restore.ipynb"
    path.write_text(json.dumps(_notebook(flag)))
    try:
        page.evaluate(OPEN_JS, "restore.ipynb")
        page.evaluate(RUN_ALL_JS)
        # the kernel recorded the cell that JupyterLab ran (metadata.cellId)
        task = eventually_sync(lambda: next(iter(_cell_tasks(lab)), None), timeout=60,
                               what="the background cell's task")
        task_id = task["id"]
        assert task["status"] == "running"
        # the live card (an ipywidget in the cell's output) shows lines
        card = page.locator(".jupyter-tasks-card").first
        expect(card).to_contain_text("line 2", timeout=WAIT_MS)

        page.evaluate(CLOSE_JS)
        dialog = page.locator(".jp-Dialog")
        dialog.locator("button", has_text=re.compile(r"discard|don.t save", re.I)).click()
        expect(page.locator(".jp-NotebookPanel")).to_have_count(0, timeout=WAIT_MS)
        closed_at = max(_lines(lab, task_id))
        # the task goes on printing while no tab shows it
        eventually_sync(lambda: max(_lines(lab, task_id)) >= closed_at + 5, timeout=60,
                        what="lines printed while the tab was closed")
        saved = json.loads(path.read_text())
        assert saved["cells"][1]["outputs"] == [], "the test needs an unsaved output"

        page.evaluate(OPEN_JS, "restore.ipynb")
        view = page.locator(f'.jp-TasksRestored[data-task-id="{task_id}"]')
        expect(view).to_be_visible(timeout=WAIT_MS)
        # under the right cell, with every line: those from before the close, those
        # printed while the tab was closed
        cell = page.locator(".jp-CodeCell").nth(1)
        expect(cell.locator(".jp-TasksRestored")).to_have_count(1)
        expect(view).to_contain_text(f"line {closed_at + 5}", timeout=WAIT_MS)
        shown = _shown(view)
        assert shown[:closed_at + 6] == list(range(closed_at + 6)), shown[:40]
        expect(view.locator(".jp-TasksRestored-status")).to_have_text("running")
        # ... and it is live: lines printed from now on appear
        at_open = max(_shown(view))
        expect(view).to_contain_text(f"line {at_open + 5}", timeout=WAIT_MS)
        # putting the view back wrote nothing into the document
        assert page.evaluate(OUTPUTS_JS) == 0
        screenshot(page, "card-restore-live.png", ".jp-NotebookPanel")

        flag.touch()
        expect(view.locator(".jp-TasksRestored-status")).to_have_text("succeeded",
                                                                        timeout=WAIT_MS)
        expect(view).to_contain_text("final line", timeout=WAIT_MS)
        assert _shown(view) == _lines(lab, task_id)
        # the value of the cell's last expression, as the card would show it
        count = max(_lines(lab, task_id)) + 1
        expect(view.locator(".jp-TasksRestored-resultValue")).to_have_text(str(count))
        expect(view.locator(".jp-TasksRestored-cancel")).to_be_hidden()
        expect(view.locator(".jp-TasksRestored-rerun")).to_be_visible()
        screenshot(page, "card-restore-done.png", ".jp-NotebookPanel")

        # the log tab opens from the view
        view.locator(".jp-TasksRestored-openLog").click()
        expect(page.locator(f'.jp-TasksLog[data-task-id="{task_id}"]')).to_be_visible(
            timeout=WAIT_MS)
        assert not page.page_errors, page.page_errors

        # a page reload brings it back too (it ended after the file was last saved)
        page.reload(wait_until="domcontentloaded")
        page.wait_for_function("() => window.jupyterapp !== undefined")
        page.evaluate(OPEN_JS, "restore.ipynb")
        view = page.locator(f'.jp-TasksRestored[data-task-id="{task_id}"]')
        expect(view.locator(".jp-TasksRestored-status")).to_have_text("succeeded",
                                                                        timeout=WAIT_MS)
        expect(view).to_contain_text("final line", timeout=WAIT_MS)
    finally:
        flag.touch()


ASK_CELL = "restore-ask-cell"
# the notebook tab in front (the test before leaves its notebook open behind it)
SHOWN_NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"


def _asking_notebook() -> dict[str, Any]:
    source = (
        "%%background --label restore-ask\n"
        "import time\n"
        "from jupyter_tasks.context import current_context\n"
        "ctx = current_context.get()\n"
        "print('asking', flush=True)\n"
        "answer = ctx.confirm_sync('Ship it?', ['yes', 'no'])\n"
        "print(f'answer {answer}', flush=True)\n"
        "while True:\n"
        "    ctx.check_cancelled()\n"
        "    time.sleep(0.1)\n"
    )
    return {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"}},
        "cells": [
            {"cell_type": "code", "id": "restore-ask-load", "metadata": {}, "outputs": [],
             "execution_count": None, "source": "%load_ext jupyter_tasks"},
            {"cell_type": "code", "id": ASK_CELL, "metadata": {}, "outputs": [],
             "execution_count": None, "source": source},
        ],
    }


def _asking(lab: LabServer) -> dict[str, Any] | None:
    """The newest task of the asking cell once it waits for its answer."""
    tasks = _cell_tasks(lab, ASK_CELL)
    task = tasks[0] if tasks else None
    confirmation = (task or {}).get("confirmation") or {}
    return task if confirmation.get("prompt") and confirmation.get("answer") is None else None


def _child(lab: LabServer, task_id: str) -> dict[str, Any] | None:
    status, body = lab.request("GET", "/api/tasks?kind=cell&limit=50")
    assert status == 200, body
    return next((t for t in body["tasks"] if t.get("parent_id") == task_id), None)


def test_the_restored_card_answers_cancels_and_reruns(lab: LabServer, page: Any) -> None:
    from playwright.sync_api import expect

    (lab.root / "ask.ipynb").write_text(json.dumps(_asking_notebook()))
    panels = page.locator(".jp-NotebookPanel")
    others = panels.count()  # notebooks the test before left open
    page.evaluate(OPEN_JS, "ask.ipynb")
    page.evaluate(RUN_ALL_JS)
    task_id = eventually_sync(lambda: _asking(lab), timeout=60,
                              what="the cell's task waiting for its answer")["id"]
    # closed without saving while the task waits for its answer
    page.evaluate(CLOSE_JS)
    page.locator(".jp-Dialog").locator(
        "button", has_text=re.compile(r"discard|don.t save", re.I)).click()
    expect(panels).to_have_count(others, timeout=WAIT_MS)

    page.evaluate(OPEN_JS, "ask.ipynb")
    view = page.locator(f'.jp-TasksRestored[data-task-id="{task_id}"]')
    expect(view).to_be_visible(timeout=WAIT_MS)
    # the question, with one button per answer, as the kernel's card has it
    question = view.locator(".jp-TasksRestored-question")
    expect(question).to_contain_text("Ship it?")
    expect(question.locator(".jp-TasksRestored-answer")).to_have_text(["yes", "no"])
    screenshot(page, "card-restore-question.png", SHOWN_NOTEBOOK)

    # answered from the restored card: the server has the answer, the task goes on
    question.locator('[data-answer="yes"]').click()
    eventually_sync(lambda: (_task(lab, task_id).get("confirmation") or {}).get("answer")
                    == "yes", timeout=30, what="the answer in the server's state")
    expect(view.locator(".jp-TasksRestored-output")).to_contain_text("answer yes",
                                                                     timeout=WAIT_MS)
    expect(question).to_be_hidden()

    # cancelled from the restored card. The cancel's reply is held until the task's end
    # has come by the event stream: a CI-like run beside a CPU hog saw the reply arrive
    # last and take the card back to "cancelling" for good
    held: list[Any] = []
    cancel_url = f"/api/tasks/{task_id}/cancel"  # (a glob missed it: JupyterLab adds a query)
    page.route(lambda url: cancel_url in url, lambda route: held.append((route, route.fetch())))
    view.locator(".jp-TasksRestored-cancel").click()
    status = view.locator(".jp-TasksRestored-status")
    expect(status).to_have_text("cancelled", timeout=WAIT_MS)  # from the event
    assert _task(lab, task_id)["status"] == "cancelled"
    expect(view).to_have_attribute("aria-busy", "true")  # the reply is still held
    assert len(held) == 1
    route, reply = held[0]
    route.fulfill(response=reply)
    expect(view).not_to_have_attribute("aria-busy", "true", timeout=WAIT_MS)
    expect(status).to_have_text("cancelled")  # the older reply did not win
    page.unroute_all()
    expect(view.locator(".jp-TasksRestored-cancel")).to_be_hidden()
    # a cancellation is no error
    expect(view.locator(".jp-TasksRestored-error")).to_be_hidden()

    # rerun from the restored card: a new task in the same kernel, and the view follows it
    view.locator(".jp-TasksRestored-rerun").click()
    rerun = eventually_sync(lambda: _child(lab, task_id), timeout=60,
                            what="the rerun in the server's state")
    assert rerun["relationship"] == "rerun", rerun
    followed = page.locator(f'.jp-TasksRestored[data-task-id="{rerun["id"]}"]')
    expect(followed).to_be_visible(timeout=WAIT_MS)
    # the rerun runs the cell again: it asks again, and its log starts afresh
    expect(followed.locator(".jp-TasksRestored-question")).to_contain_text("Ship it?",
                                                                           timeout=WAIT_MS)
    expect(followed.locator(".jp-TasksRestored-output")).not_to_contain_text("answer yes")
    screenshot(page, "card-restore-rerun.png", SHOWN_NOTEBOOK)
    followed.locator(".jp-TasksRestored-cancel").click()
    eventually_sync(lambda: _task(lab, rerun["id"])["status"] == "cancelled", timeout=60,
                    what="the rerun cancelled in the server's state")
    expect(followed.locator(".jp-TasksRestored-status")).to_have_text("cancelled",
                                                                        timeout=WAIT_MS)
    assert not page.page_errors, page.page_errors
