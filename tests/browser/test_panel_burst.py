"""The panel under bursts (bench_panel's slow checks): what made 1,000 ending jobs cost
150 ms frames.

* One toast per ending task: a sweep of jobs put hundreds of toasts in the page, each
  laid out on every frame until it closed (never, in an unfocused page).
* Each render of the list subscribed its scroll and resize listeners anew, and a new
  ResizeObserver reports at once: one more forced layout, in one more frame, per change.

The speed itself is measured by ``benchmarks/bench_panel.py``; these tests pin the causes.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any

import pytest

from .lab import LabServer
from .test_panel import ARTIFACTS, WAIT_MS, row, wait_status

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# every toast element saying `word` put up from now on (whether or not still up), with
# each distinct text it showed, in order; toasts already there (a dismissed one sliding
# out) are not news of this test
WATCH_TOASTS_JS = """
(word) => {
  const toasts = () => document.querySelectorAll('.jp-toastContainer .Toastify__toast');
  const before = new Set(toasts());
  // an earlier test's watcher must stop: it would write its own word's toasts in here
  if (window.__toastWatcher) { window.__toastWatcher.disconnect(); }
  const found = new Map();
  window.__toasts = found;
  const seen = () => {
    for (const node of toasts()) {
      const text = node.textContent;
      if (before.has(node) || !text.includes(word)) { continue; }
      const texts = found.get(node) || [];
      if (texts[texts.length - 1] !== text) { texts.push(text); }
      found.set(node, texts);
    }
  };
  window.__toastWatcher = new MutationObserver(seen);
  window.__toastWatcher.observe(document.body,
                                { childList: true, subtree: true, characterData: true });
  return true;
}
"""

# how many endings the watched toasts told, by the last text each showed: 1, or what a
# group says, N for "N tasks succeeded" or "N more tasks ended badly"
TOLD_JS = """
() => [...window.__toasts.values()].reduce((sum, texts) => {
  const text = texts[texts.length - 1];
  const group = /^(\\d+) (tasks succeeded|more tasks ended badly)/.exec(text);
  return sum + (group ? Number(group[1]) : 1);
}, 0)
"""
TOASTS_JS = "() => [...window.__toasts.values()]"

# resize observers started on the panel's list (other parts of the page have their own)
COUNT_OBSERVERS_JS = """
() => {
  const Original = window.ResizeObserver;
  window.__resizeObservers = 0;
  window.ResizeObserver = class extends Original {
    observe(target, options) {
      if (target.closest && target.closest('.jp-TasksPanel')) { window.__resizeObservers += 1; }
      return super.observe(target, options);
    }
  };
  return true;
}
"""


def _screenshot(page: Any, name: str) -> None:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    for note in page.locator(".jp-toastContainer .Toastify__toast").all():
        try:  # let the toasts finish sliding in, for the picture only
            expect(note).to_be_in_viewport(ratio=1, timeout=2000)
        except AssertionError:
            pass  # one closing by itself meanwhile
    page.screenshot(path=str(ARTIFACTS / name))


def _told(page: Any, count: int, picture: str) -> list[list[str]]:
    """Wait until the watched toasts told `count` endings; check each was told once."""
    # the last ones are told when their window ends, a toast's life after the first
    try:
        page.wait_for_function(f"() => ({TOLD_JS})() >= {count}", timeout=WAIT_MS)
    except Exception as exc:  # playwright's TimeoutError: say what was told instead
        raise AssertionError(f"{count} endings, toasts told {page.evaluate(TOASTS_JS)}") from exc
    _screenshot(page, picture)
    toasts: list[list[str]] = page.evaluate(TOASTS_JS)
    # every ending told exactly once, however the endings were spread in time
    assert page.evaluate(TOLD_JS) == count, toasts
    # each toast tells its count once and for all: JupyterLab drops an update that
    # reaches a toast before it is drawn, so a count kept by updating one was lost
    assert all(len(texts) == 1 for texts in toasts), toasts
    return toasts


def _submit(lab: LabServer, body: dict[str, Any]) -> dict[str, Any]:
    code, task = lab.request("POST", "/api/tasks", body)
    assert code == 202, (code, task)
    return task


# a label long enough that JupyterLab cuts a toast's message (at about 140 characters):
# a group's count, said after it, was cut away (a toast for 5 tasks read as one)
LONG_LABEL = " warehouse-partition-rebuild" * 5


@pytest.mark.parametrize("padding", ["", LONG_LABEL], ids=["short", "long"])
def test_many_of_my_tasks_ending_at_once_are_told_once_in_few_toasts(
        lab: LabServer, page: Any, padding: str) -> None:
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:dismiss-notification')")
    page.evaluate(WATCH_TOASTS_JS, "succeeded")
    count = 30
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        tasks = list(pool.map(
            lambda i: _submit(lab, {"name": "browser_tiny", "params": {"n": i},
                                    "label": f"sweep {i}{padding}"}), range(count)))
    for task in tasks:
        wait_status(page, task["id"], "succeeded")
    toasts = _told(page, count, f"panel-burst-toasts{'-long' if padding else ''}.png")
    # grouped: far fewer toasts than endings (a new one at most once per toast life)
    assert len(toasts) <= count // 3, toasts
    assert any("tasks succeeded; latest: Task" in texts[0] for texts in toasts), toasts
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:dismiss-notification')")
    assert page.page_errors == [], page.page_errors


def test_many_of_my_tasks_failing_at_once_are_told_once_in_few_toasts(
        lab: LabServer, page: Any) -> None:
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:dismiss-notification')")
    page.evaluate(WATCH_TOASTS_JS, "failed")
    count = 15
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        tasks = list(pool.map(
            lambda i: _submit(lab, {"name": "browser_fail", "params": {"message": "boom"},
                                    "label": f"doomed {i}"}), range(count)))
    for task in tasks:
        wait_status(page, task["id"], "failed")
    toasts = _told(page, count, "panel-burst-failures.png")
    # the first few each alone (with their own "Open log"), the rest grouped: failures
    # stay until dismissed, so each window past the first adds one toast at most
    assert len(toasts) <= count // 2, toasts
    assert any("more tasks ended badly; latest: Task" in texts[0] for texts in toasts), toasts
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:dismiss-notification')")
    assert page.page_errors == [], page.page_errors


def test_progress_renders_do_not_resubscribe_the_list(lab: LabServer, page: Any) -> None:
    task = _submit(lab, {"name": "browser_slow", "params": {"steps": 200, "step_seconds": 0.05},
                         "label": "renders"})
    try:
        wait_status(page, task["id"], "running")
        page.evaluate(COUNT_OBSERVERS_JS)
        # a dozen progress renders of the same rows
        progress = row(page, task["id"]).locator(".jp-TasksPanel-progress")
        seen: set[str] = set()
        while len(seen) < 12:
            progress.wait_for(state="attached", timeout=WAIT_MS)
            page.wait_for_function(
                """([id, seen]) => {
                     const bar = document.querySelector(
                       `.jp-TasksPanel-row[data-task-id="${id}"] .jp-TasksPanel-progress`);
                     return bar !== null && !seen.includes(bar.getAttribute('aria-valuenow'));
                   }""",
                arg=[task["id"], sorted(seen)], timeout=WAIT_MS)
            seen.add(progress.get_attribute("aria-valuenow") or "")
        assert page.evaluate("() => window.__resizeObservers") == 0
    finally:
        lab.request("POST", f"/api/tasks/{task['id']}/cancel")
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:dismiss-notification')")
