"""The side panel tells the truth (issue 13): one identity, "this notebook", notifications,
lineage that arrives live, and a task that needs me announced in the status bar.

Each test saves a screenshot in ``test-artifacts/`` (git-ignored) for people to look at.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
from pathlib import Path
from typing import Any

import pytest

from jupyter_tasks.models import Task, new_task_id
from jupyter_tasks.store import Store

from .lab import LabServer
from .test_panel import row, wait_status

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
WAIT_MS = 30_000


def screenshot(page: Any, name: str, selector: str | None = None) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    from playwright.sync_api import expect

    for note in page.locator(".Toastify__toast").all():  # let toasts finish sliding in
        try:
            expect(note).to_be_in_viewport(ratio=1, timeout=2000)
        except AssertionError:
            pass  # one closing by itself meanwhile

    path = ARTIFACTS / name
    target = page.locator(selector) if selector else page
    target.screenshot(path=str(path))
    return path


def seed(db: Path, tasks: list[Task]) -> None:
    """Insert tasks the way another process would (the server follows the events table)."""
    async def insert() -> None:
        store = await Store.open(db)
        try:
            await store.create_tasks(tasks)
        finally:
            await store.close()

    # Playwright's sync API owns this thread's event loop: run ours on another thread
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, insert()).result(timeout=60)


def append_logs(db: Path, task_id: str, texts: list[str]) -> None:
    """Log chunks of a task written the way its worker would (stdout, one per text)."""
    async def write() -> None:
        store = await Store.open(db)
        try:
            await store.append_logs(task_id, [(time.time(), "stdout", t) for t in texts])
        finally:
            await store.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, write()).result(timeout=60)


def make_task(label: str, *, owner: str, status: str = "succeeded", origin: dict | None = None,
              queue: str = "default", priority: int = 0, ago: float = 60.0,
              progress: dict | None = None) -> Task:
    now = time.time()
    finished = status not in ("queued", "running")
    return Task(
        id=new_task_id(), kind="function", mode="job", status=status, name="browser_tiny",
        label=label, params={"n": 1}, owner=owner, origin=origin or {"type": "rest"},
        queue=queue, priority=priority, progress=progress, created_at=now - ago,
        started_at=None if status == "queued" else now - ago + 1,
        finished_at=now - ago + 2 if finished else None, updated_at=now - ago + 2,
    )


def seeded_and_opened(lab: LabServer, page: Any, task: Task) -> tuple[Any, Any]:
    """(row, details) of ``task``, inserted as another process would and expanded."""
    seed(lab.db_path, [task])
    target = row(page, task.id)
    target.locator(".jp-TasksPanel-toggle").click()
    details = target.locator(".jp-TasksPanel-details")
    details.wait_for(state="visible")
    return target, details


def visible_ids(page: Any) -> list[str]:
    return page.locator(".jp-TasksPanel-row").evaluate_all(
        "rows => rows.map(r => r.dataset.taskId)")


def toast(page: Any, text: str) -> Any:
    return page.locator(".Toastify__toast", has_text=text)


def section_count(page: Any, name: str) -> int:
    counter = page.locator(f'[data-section="{name}"] .jp-TasksPanel-sectionCount')
    return int(counter.inner_text()) if counter.count() else 0


def reset_filters(page: Any) -> None:
    page.locator(".jp-TasksPanel-statusFilter").select_option("")
    page.locator(".jp-TasksPanel-ownerFilter").select_option("")
    button = page.locator(".jp-TasksPanel-thisNotebook")
    if button.get_attribute("aria-pressed") == "true":
        button.click()


def submit(lab: LabServer, body: dict) -> dict:
    code, task = lab.request("POST", "/api/tasks", body)
    assert code == 202, (code, task)
    return task


def test_me_filter_and_this_notebook_use_the_servers_identity(lab: LabServer, page: Any) -> None:
    code, me = lab.request("GET", "/api/tasks/me")
    assert code == 200, me
    # the browser's own Lab identity is a random anonymous name, not the stored owner
    lab_user = page.evaluate("() => window.jupyterapp.serviceManager.user.identity?.username")
    assert lab_user != me["owner"]

    root = Path(me["root_dir"])
    notebook = root / "work" / "analysis.ipynb"
    notebook.parent.mkdir(parents=True, exist_ok=True)
    notebook.write_text(json.dumps({
        "cells": [], "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"}}}))
    # kernels record the absolute path (JPY_SESSION_NAME), as a kernel of this server would
    mine_nb = make_task("mine, from the notebook", owner=me["owner"],
                        origin={"type": "kernel", "notebook": str(notebook)})
    theirs_nb = make_task("someone else's, same notebook", owner="someone-else",
                          status="failed", origin={"type": "kernel", "notebook": str(notebook)})
    mine_rest = make_task("mine, over REST", owner=me["owner"])
    other_nb = make_task("mine, another notebook", owner=me["owner"],
                         origin={"type": "kernel", "notebook": str(root / "analysis.ipynb")})
    seeded = [mine_nb, theirs_nb, mine_rest, other_nb]
    seed(lab.db_path, seeded)
    for task in seeded:
        row(page, task.id).wait_for(state="attached")

    # "me" is the server's owner name, offered by the owner filter
    owner = page.locator(".jp-TasksPanel-ownerFilter")
    owner.select_option(label=f"Me ({me['owner']})")
    page.wait_for_function(
        "id => !document.querySelector(`.jp-TasksPanel-row[data-task-id='${id}']`)",
        arg=theirs_nb.id)
    shown = set(visible_ids(page))
    assert {mine_nb.id, mine_rest.id, other_nb.id} <= shown
    assert theirs_nb.id not in shown
    owner.select_option("")

    # "this notebook": the focused notebook's path relative to the server root matches
    page.evaluate("""async () => {
        await window.jupyterapp.commands.execute('docmanager:open',
                                                 {path: 'work/analysis.ipynb'});
    }""")
    page.locator(".jp-NotebookPanel").first.wait_for(state="visible")
    page.evaluate("() => window.jupyterapp.commands.execute('jupyter-tasks:open')")
    page.locator(".jp-TasksPanel-thisNotebook").click()
    page.wait_for_function(
        "id => !document.querySelector(`.jp-TasksPanel-row[data-task-id='${id}']`)",
        arg=mine_rest.id)
    shown = set(visible_ids(page))
    assert shown >= {mine_nb.id, theirs_nb.id}, shown
    assert mine_rest.id not in shown and other_nb.id not in shown, shown
    # both filters together: my tasks of this notebook
    owner.select_option(label=f"Me ({me['owner']})")
    page.wait_for_function(
        "id => !document.querySelector(`.jp-TasksPanel-row[data-task-id='${id}']`)",
        arg=theirs_nb.id)
    assert set(visible_ids(page)) == {mine_nb.id}
    row(page, mine_nb.id).locator(".jp-TasksPanel-rowHeader").click()
    origin = row(page, mine_nb.id).locator(".jp-TasksPanel-origin")
    assert origin.inner_text() == "work/analysis.ipynb"
    screenshot(page, "truth-this-notebook.png", ".jp-TasksPanel")
    row(page, mine_nb.id).locator(".jp-TasksPanel-rowHeader").click()
    reset_filters(page)
    assert page.page_errors == [], page.page_errors


def test_notifications_for_my_tasks_and_live_lineage(lab: LabServer, page: Any) -> None:
    ok = submit(lab, {"name": "browser_tiny", "params": {"n": 7}, "label": "quiet success"})
    toast(page, 'Task "quiet success" succeeded').wait_for(state="visible")

    failed = submit(lab, {"name": "browser_fail", "params": {"message": "disk is full"},
                          "label": "doomed"})
    failure = toast(page, 'Task "doomed" failed: disk is full')
    failure.wait_for(state="visible")
    slow = submit(lab, {"name": "browser_slow", "params": {"steps": 600, "step_seconds": 0.1},
                        "label": "too slow", "timeout": 1})
    timeout = toast(page, 'Task "too slow" timed out')
    timeout.wait_for(state="visible")
    wait_status(page, slow["id"], "timeout")
    screenshot(page, "truth-notifications.png")

    # the failure's action opens its log
    failure.get_by_role("button", name="Open log").click()
    log = page.locator(f'.jp-TasksLog[data-task-id="{failed["id"]}"]')
    log.wait_for(state="visible")
    # an empty log says so instead of showing a blank page
    log.locator(".jp-TasksLog-message", has_text="wrote no output").wait_for(state="visible")
    page.evaluate("() => window.jupyterapp.commands.execute('jupyter-tasks:open')")

    # the success toast closes by itself; failures stay until dismissed
    toast(page, 'Task "quiet success" succeeded').wait_for(state="detached", timeout=WAIT_MS)
    assert timeout.is_visible()
    wait_status(page, ok["id"], "succeeded")

    # a rerun asked for by someone else (REST here) shows its lineage without a reload
    code, child = lab.request("POST", f"/api/tasks/{failed['id']}/rerun")
    assert code == 202, child
    child_row = row(page, child["id"])
    child_row.wait_for(state="attached")
    wait_status(page, child["id"], "failed")
    child_row.locator(".jp-TasksPanel-rowHeader").click()
    parent = child_row.locator(".jp-TasksPanel-parent")
    parent.wait_for(state="visible")
    # ids read as everywhere else (dashboard, cards, CLI): the last 10 digits
    assert parent.inner_text() == failed["id"][-10:]
    assert parent.get_attribute("title") == failed["id"]
    shown_id = child_row.locator(".jp-TasksPanel-id")
    assert (shown_id.inner_text(), shown_id.get_attribute("title")) == (child["id"][-10:],
                                                                        child["id"])
    screenshot(page, "truth-lineage.png", ".jp-TasksPanel")
    child_row.locator(".jp-TasksPanel-rowHeader").click()
    # dismiss them all (no id: every notification)
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:dismiss-notification')")
    page.locator(".Toastify__toast").first.wait_for(state="detached")
    assert page.page_errors == [], page.page_errors


def test_a_task_that_needs_me_is_announced_and_answered_from_the_panel(
        lab: LabServer, page: Any) -> None:
    status = page.locator('[data-testid="tasks-status"]')
    assert status.get_attribute("data-needs") == "0"
    ask = submit(lab, {"name": "browser_ask", "params": {"prompt": "Deploy to production?"},
                       "label": "deploy"})
    # the status bar says so, before what runs
    page.wait_for_function(
        "() => document.querySelector('[data-testid=tasks-status]')?.dataset.needs === '1'")
    assert status.locator(".jp-TasksStatus-needs").inner_text() == "1 needs you"
    # counted once, as the panel lists it: apart from what runs (before: "1 needs you"
    # beside "Tasks: 1 running", the one task twice)
    code, stats = lab.request("GET", "/api/tasks/stats")
    assert code == 200 and stats["statuses"]["running"] >= 1, stats
    assert status.get_attribute("data-running") == str(stats["statuses"]["running"] - 1)
    # a notification, with an action that goes to the question
    question = toast(page, 'Task "deploy" needs you: Deploy to production?')
    question.wait_for(state="visible")
    # the panel has a "Needs you" section with the question under the task's line
    section = page.locator('.jp-TasksPanel-section[data-section="needs"]')
    section.wait_for(state="visible")
    assert row(page, ask["id"]).get_attribute("data-look") == "question"
    assert "Deploy to production?" in section.locator(".jp-TasksPanel-prompt").inner_text()
    screenshot(page, "truth-needs-you.png")

    # hide the panel, then the status bar's click brings it back focused on the answer
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
    page.locator(".jp-TasksPanel").wait_for(state="hidden")
    status.click()
    page.locator(".jp-TasksPanel").wait_for(state="visible")
    page.wait_for_function(
        """id => document.activeElement?.classList.contains('jp-TasksPanel-answer') &&
                 document.activeElement.closest('.jp-TasksPanel-row')?.dataset.taskId === id""",
        arg=ask["id"])
    page.locator(".jp-TasksPanel-answer[data-answer='yes']").click()
    wait_status(page, ask["id"], "succeeded")
    code, result = lab.request("GET", f"/api/tasks/{ask['id']}/result?timeout=10")
    assert code == 200 and result["result"] == "yes", result
    # answered: the count, the section and the notification go away
    page.wait_for_function(
        "() => document.querySelector('[data-testid=tasks-status]')?.dataset.needs === '0'")
    assert status.locator(".jp-TasksStatus-needs").inner_text() == ""
    section.wait_for(state="detached")
    question.wait_for(state="detached")
    assert page.page_errors == [], page.page_errors


def test_a_panel_people_can_scan(lab: LabServer, page: Any) -> None:
    page.set_viewport_size({"width": 1400, "height": 1000})
    _, me = lab.request("GET", "/api/tasks/me")
    statuses = ["succeeded", "failed", "succeeded", "timeout", "cancelled", "succeeded"]
    history = [make_task(f"history {i:02d}", owner=me["owner"], status=statuses[i % 6],
                         ago=3600 - i * 30) for i in range(40)]
    # a queue no worker serves keeps its jobs queued, in claim order: priority, then age
    parked = [make_task(f"parked p{p}", owner=me["owner"], status="queued", queue="parked",
                        priority=p, ago=100 - i) for i, p in enumerate([0, 5, 0, 9])]
    recent_before = section_count(page, "recent")
    seed(lab.db_path, history + parked)
    # two workers on "default": two run, the third waits as #1 in its queue. They run
    # 5 minutes (cancelled at the end): 20 s runs once ended before the checks on a
    # loaded machine, and the third started, losing its "#1"
    runs = [submit(lab, {"name": "browser_slow", "label": f"slow {i}",
                         "params": {"steps": 300, "step_seconds": 1}}) for i in range(3)]
    # the list is virtual (rows out of view are not in the DOM): the counts say all arrived
    page.wait_for_function(
        "n => Number(document.querySelector("
        "'[data-section=recent] .jp-TasksPanel-sectionCount')?.textContent) === n",
        arg=recent_before + len(history))
    for task in parked:
        row(page, task.id).wait_for(state="attached")
    # tasks that arrive already finished (history, imports) are no news: no notification
    assert page.locator(".Toastify__toast", has_text="history").count() == 0
    page.wait_for_function(
        "() => document.querySelectorAll("
        "'[data-section=running] .jp-TasksPanel-row .jp-TasksPanel-progressText').length >= 1")

    # sections in this order, each with its count
    names = page.locator(".jp-TasksPanel-section").evaluate_all(
        "nodes => nodes.map(n => n.dataset.section)")
    assert names == ["running", "queued", "recent"], names
    running = page.locator('[data-section="running"] .jp-TasksPanel-row')
    assert running.count() == 2
    # inline progress with a percent, one line
    percent = page.locator('[data-section="running"] .jp-TasksPanel-progressText').first
    assert percent.inner_text().endswith("%"), percent.inner_text()
    # queued: position in its queue and the priority
    queued = page.locator('[data-section="queued"] .jp-TasksPanel-row')
    order = queued.evaluate_all("rows => rows.map(r => r.dataset.taskId)")
    expected = [parked[3].id, parked[1].id, parked[0].id, parked[2].id]
    assert [i for i in order if i in expected] == expected, order
    assert row(page, parked[3].id).locator(".jp-TasksPanel-queuePos").inner_text() == "#1"
    assert row(page, parked[3].id).locator(".jp-TasksPanel-priority").inner_text() == "p9"
    assert row(page, parked[2].id).locator(".jp-TasksPanel-queuePos").inner_text() == "#4"
    assert row(page, runs[2]["id"]).locator(".jp-TasksPanel-queuePos").inner_text() == "#1"
    # rows are one line, and at least 20 are fully visible in a 1000 px tall window
    heights = page.locator(".jp-TasksPanel-rowHeader").evaluate_all(
        "nodes => nodes.map(n => n.getBoundingClientRect().height)")
    assert max(heights) <= 26, max(heights)
    in_view = page.evaluate("""() => {
        const list = document.querySelector('.jp-TasksPanel-list').getBoundingClientRect();
        return [...document.querySelectorAll('.jp-TasksPanel-row')].filter(r => {
          const b = r.getBoundingClientRect();
          return b.height > 0 && b.top >= list.top && b.bottom <= list.bottom;
        }).length;
    }""")
    assert in_view >= 20, in_view
    screenshot(page, "scan-panel-1000px.png")

    # no Cancel button on every row: actions appear on hover
    first = row(page, runs[0]["id"])
    page.mouse.move(0, 0)  # (the pointer may rest where the test before clicked)
    assert not first.locator(".jp-TasksPanel-cancel").is_visible()
    first.locator(".jp-TasksPanel-rowHeader").hover()
    assert first.locator(".jp-TasksPanel-cancel").is_visible()

    # ... and in the context menu; "cancelling" has its own look until the task stops
    first.locator(".jp-TasksPanel-rowHeader").click(button="right")
    menu = page.locator(".lm-Menu")
    menu.get_by_text("Cancel Task").wait_for(state="visible")
    screenshot(page, "scan-context-menu.png")
    menu.get_by_text("Cancel Task").click()
    page.wait_for_function(
        """id => {
             const row = document.querySelector(`.jp-TasksPanel-row[data-task-id="${id}"]`);
             return row?.dataset.look === 'cancelling' || row?.dataset.status === 'cancelled';
           }""", arg=runs[0]["id"])
    # the row's look and its status label read in one go: the task may stop (a few ms
    # after the cancel) between two separate reads
    look, label = page.evaluate(
        """id => {
             const row = document.querySelector(`.jp-TasksPanel-row[data-task-id="${id}"]`);
             const status = row?.querySelector('.jp-TasksPanel-status');
             return [row?.dataset.look ?? null, status?.getAttribute('aria-label') ?? null];
           }""", runs[0]["id"])
    if look == "cancelling":
        assert label == "cancelling", label
        screenshot(page, "scan-cancelling.png", ".jp-TasksPanel")
    wait_status(page, runs[0]["id"], "cancelled")

    # sections collapse and open again
    header = page.locator('[data-section="recent"] .jp-TasksPanel-sectionHeader')
    header.click()
    assert header.get_attribute("aria-expanded") == "false"
    assert page.locator('[data-section="recent"] .jp-TasksPanel-row').count() == 0
    header.click()
    assert page.locator('[data-section="recent"] .jp-TasksPanel-row').count() > 0

    # the status filter is one control
    page.locator(".jp-TasksPanel-statusFilter").select_option("queued")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-TasksPanel-row')]"
        ".every(r => r.dataset.status === 'queued')")
    reset_filters(page)
    for task in runs:
        lab.request("POST", f"/api/tasks/{task['id']}/cancel")
    for task in parked:
        lab.request("POST", f"/api/tasks/{task.id}/cancel")
    assert page.page_errors == [], page.page_errors


def test_an_out_of_memory_end_is_said_in_words_and_the_palette_has_the_panel(
        lab: LabServer, page: Any) -> None:
    # before: the toast read 'Task "hungry" oom: …' (the raw status word), and none of
    # the panel's commands was in the command palette the panel guide names
    submit(lab, {"code": "blocks = [bytearray(50 * 2**20) for _ in range(40)]\n",
                 "label": "hungry", "memory_limit_mb": 100, "max_retries": 0})
    toast(page, 'Task "hungry" ran out of memory').wait_for(state="visible")
    assert toast(page, 'Task "hungry" oom').count() == 0

    page.keyboard.press("Control+Shift+C")
    search = page.locator(".lm-CommandPalette-input")
    search.wait_for(state="visible")
    # the notebook commands are there, shown once a notebook is current (none is here)
    for command, label in (("jupyter-tasks:run-as-job", "Run as Job…"),
                           ("jupyter-tasks:schedule-notebook", "Schedule…")):
        search.fill(label)
        page.locator(f'.lm-CommandPalette-item[data-command="{command}"]').first.wait_for(
            state="attached")
    search.fill("Show Tasks Panel")
    page.keyboard.press("Enter")
    page.locator(".jp-TasksPanel").wait_for(state="visible")
    page.keyboard.press("Escape")
    assert page.page_errors == [], page.page_errors


def test_rows_whose_progress_holds_no_number_are_shown_not_thrown_on(
        lab: LabServer, page: Any) -> None:
    # rows an older version or another tool wrote: before, an integer past 2**53 (which
    # parseJson keeps as an object with no prototype) threw in the row's render, and
    # the whole panel showed no row at all
    _, me = lab.request("GET", "/api/tasks/me")
    odd = [make_task("odd huge", owner=me["owner"], status="running", ago=5,
                     progress={"current": 10**30, "total": 10**31, "message": None}),
           make_task("odd text", owner=me["owner"], status="running", ago=6,
                     progress={"current": "Decimal('1')", "total": 2, "message": None}),
           make_task("odd list", owner=me["owner"], status="running", ago=7,
                     progress={"current": [1, 2], "total": {"a": 1}, "message": "m"})]
    seed(lab.db_path, odd)
    for task in odd:
        row(page, task.id).wait_for(state="visible")
    texts = [row(page, t.id).locator(".jp-TasksPanel-progressText").inner_text() for t in odd]
    assert texts == ["10000000000…", "Decimal('1')", "[1,2]"], texts
    screenshot(page, "truth-odd-progress.png", ".jp-TasksPanel")
    assert page.page_errors == [], page.page_errors


def test_a_job_between_attempts_is_not_shown_as_failed(lab: LabServer, page: Any) -> None:
    """A job whose first attempt failed waits for (or runs) its next one: the panel showed
    the earlier attempt's error in red under "queued", as if the job had failed."""
    import dataclasses

    _, me = lab.request("GET", "/api/tasks/me")
    reset_filters(page)
    waiting = dataclasses.replace(
        make_task("retry waits", owner=me["owner"], status="queued",
                  queue="nobody-serves-this", ago=1),
        attempts=1, max_retries=2, retry_reason="ValueError: flaky once",
        error={"type": "ValueError", "message": "flaky once",
               "traceback": "Traceback (most recent call last):\nValueError: flaky once"})
    target, details = seeded_and_opened(lab, page, waiting)
    earlier = details.locator(".jp-TasksPanel-earlierError")
    assert earlier.inner_text() == "Earlier attempt: ValueError: flaky once"
    assert details.locator(".jp-TasksPanel-error").count() == 0
    assert "earlier attempt: ValueError: flaky once" in target.locator(
        ".jp-TasksPanel-rowHeader").get_attribute("title")
    screenshot(page, "panel-retry-waits.png", ".jp-TasksPanel")
    assert page.page_errors == [], page.page_errors


def test_a_label_with_nothing_to_see_falls_back_to_the_name(lab: LabServer, page: Any) -> None:
    """A label of zero-width characters (or spaces) left its row with no name at all: a
    status icon and a time, nothing to tell the task by."""
    _, me = lab.request("GET", "/api/tasks/me")
    reset_filters(page)
    blank = make_task("\u200b\u200d\u2060\ufeff \u200b", owner=me["owner"], ago=1)
    seed(lab.db_path, [blank])
    label = row(page, blank.id).locator(".jp-TasksPanel-label")
    label.wait_for(state="visible")
    assert label.inner_text() == "browser_tiny"
    assert page.page_errors == [], page.page_errors


# the WCAG contrast of an element's text on the first opaque background at or above it
CONTRAST_JS = """el => {
  const rgb = s => s.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => {
    const c = [r, g, b].map(v => { v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  let node = el, bg = null;
  while (node && !bg) {
    const c = rgb(getComputedStyle(node).backgroundColor);
    if (c.length === 3 || c[3] > 0.99) bg = c.slice(0, 3);
    node = node.parentElement;
  }
  const fg = lum(rgb(getComputedStyle(el).color)), back = lum(bg || [255, 255, 255]);
  return (Math.max(fg, back) + 0.05) / (Math.min(fg, back) + 0.05);
}"""


def test_a_long_error_is_held_in_a_box_and_a_traceback_reads_in_both_themes(
        lab: LabServer, page: Any) -> None:
    # before: a 20,000-character message filled an 11,856 px block above the rest of the
    # details; the traceback's red on grey was 2.73:1 in the dark theme (4.29:1 light),
    # the error line's 4.3:1 in the dark theme (WCAG AA asks 4.5:1)
    import dataclasses

    _, me = lab.request("GET", "/api/tasks/me")
    reset_filters(page)
    long_message = "header field out of range " * 800
    failed = dataclasses.replace(
        make_task("long failure", owner=me["owner"], status="failed", ago=1),
        error={"type": "ValueError", "message": long_message,
               "traceback": "Traceback (most recent call last):\n  File \"x.py\", line 1\n"
                            "ValueError: header field out of range"})
    _, details = seeded_and_opened(lab, page, failed)
    error = details.locator(".jp-TasksPanel-error")
    box = error.bounding_box()
    assert box is not None and box["height"] <= 250, box
    # the whole message is there, to scroll through and to copy
    assert error.evaluate("e => e.scrollHeight > e.clientHeight && e.textContent.length") \
        >= len(long_message.strip())
    traceback = details.locator(".jp-TasksPanel-traceback")
    traceback.wait_for(state="visible")
    ratios = {"light": traceback.evaluate(CONTRAST_JS),
              "light error": error.evaluate(CONTRAST_JS)}
    light_back = traceback.evaluate("e => getComputedStyle(e.closest('pre') || e)"
                                    ".backgroundColor")
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', "
                  "{theme: 'JupyterLab Dark'})")
    # the dark theme's stylesheet has applied once the traceback's background changed
    page.wait_for_function(
        "([id, light]) => { const e = document.querySelector("
        "`[data-task-id='${id}'] .jp-TasksPanel-traceback`);"
        " return getComputedStyle(e.closest('pre') || e).backgroundColor !== light; }",
        arg=[failed.id, light_back])
    ratios["dark"] = traceback.evaluate(CONTRAST_JS)
    ratios["dark error"] = error.evaluate(CONTRAST_JS)
    screenshot(page, "panel-long-error-dark.png", ".jp-TasksPanel")
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', "
                  "{theme: 'JupyterLab Light'})")
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'true'")
    assert min(ratios.values()) >= 4.5, ratios
    assert page.page_errors == [], page.page_errors


def test_a_question_waiting_before_the_page_loaded_is_announced(
        lab: LabServer, page: Any) -> None:
    # before: the status bar said "1 needs you" after a reload, but no notification came
    # (the notifier heard only the live events, not the tasks the first read found)
    import dataclasses

    from .lab import open_lab_and_panel

    _, me = lab.request("GET", "/api/tasks/me")
    waiting = dataclasses.replace(
        make_task("asks before load", owner=me["owner"], status="running", ago=2),
        worker_id="elsewhere", confirmation={"prompt": "Ship the release?",
                                             "choices": ["yes", "no"], "answer": None,
                                             "asked_at": time.time() - 1})
    seed(lab.db_path, [waiting])
    open_lab_and_panel(page, lab)  # a new page load, the question already waiting
    question = toast(page, 'Task "asks before load" needs you: Ship the release?')
    question.wait_for(state="visible")
    assert question.count() == 1
    page.wait_for_function(
        "() => document.querySelector('[data-testid=tasks-status]')?.dataset.needs === '1'")
    # answered elsewhere: the notification goes
    code, _ = lab.request("POST", f"/api/tasks/{waiting.id}/confirm", {"answer": "no"})
    assert code in (200, 202), code
    question.wait_for(state="detached")
    assert page.page_errors == [], page.page_errors


def test_failure_toasts_do_not_pile_up_past_a_few(lab: LabServer, page: Any) -> None:
    # before: every failure toast stayed; a burst and its group made four at once, and
    # the stack pushed the newest (the group that says how many more failed) off the top
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:dismiss-notification')")
    for n in range(10):
        submit(lab, {"name": "browser_fail", "params": {"message": f"bad batch {n}"},
                     "label": f"pile {n}", "max_retries": 0})
    group = toast(page, "7 more tasks ended badly")
    group.wait_for(state="visible")
    from playwright.sync_api import expect

    expect(group).to_be_in_viewport(ratio=1)
    # the oldest single closes by itself; three failure toasts stay on screen
    page.wait_for_function(
        "() => document.querySelectorAll('.Toastify__toast--error').length <= 3")
    assert page.locator(".Toastify__toast--error").count() == 3
    screenshot(page, "panel-failure-toasts.png")
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:dismiss-notification')")
    assert page.page_errors == [], page.page_errors
