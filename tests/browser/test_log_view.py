"""The log tab is worth opening (issue 13): a header with status, attempt and a live elapsed
time; a time on every line; a marker between attempts; follow that pauses when the reader
scrolls up; wrap, search and download; an empty state that says why.

Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from .lab import LabServer
from .test_panel_truth import WAIT_MS, screenshot, submit

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def open_log(page: Any, task_id: str) -> Any:
    page.evaluate("id => window.jupyterapp.commands.execute('jupyter-tasks:open-log', {id})"
                  ".then(() => true)", task_id)
    log = page.locator(f'.jp-TasksLog[data-task-id="{task_id}"]')
    log.wait_for(state="visible")
    return log


def wait_task(lab: LabServer, page: Any, task_id: str, status: str) -> dict:
    """Until the log tab's header shows ``status`` (the panel's model saw the event)."""
    page.locator(f'.jp-TasksLog[data-task-id="{task_id}"] '
                 f'.jp-TasksLog-status[data-status="{status}"]').wait_for(state="attached")
    code, task = lab.request("GET", f"/api/tasks/{task_id}")
    assert code == 200 and task["status"] == status, task
    return task


def all_log_text(lab: LabServer, task_id: str) -> str:
    code, page = lab.request("GET", f"/api/tasks/{task_id}/logs?limit=10000")
    assert code == 200, page
    return "".join(entry["text"] for entry in page["entries"])


def test_retried_task_log_header_times_marker_search_wrap_download(
        lab: LabServer, page: Any, tmp_path: Path) -> None:
    task = submit(lab, {"name": "browser_retry", "label": "flaky import",
                        "params": {"counter": str(tmp_path / "calls"), "fail_times": 1,
                                   "lines": 4},
                        "max_retries": 2})
    log = open_log(page, task["id"])
    wait_task(lab, page, task["id"], "succeeded")
    # both attempts' lines are there (the fetch after the end event read them all)
    log.locator(".jp-TasksLog-line", has_text="attempt 2 line 4").wait_for(state="visible")

    header = log.locator(".jp-TasksLog-header")
    assert header.locator(".jp-TasksLog-status").inner_text() == "succeeded"
    # the retry policy's bound, and why this attempt was needed
    assert (header.locator(".jp-TasksLog-attempt").inner_text()
            == "attempt 2 of 3 · RuntimeError: flaky failure 1")
    assert re.fullmatch(r"took \S+", header.locator(".jp-TasksLog-elapsed").inner_text())
    # the id in the views' short form (the last 10 digits), whole in the tooltip
    assert header.locator(".jp-TasksLog-id").inner_text() == task["id"][-10:]
    assert header.locator(".jp-TasksLog-id").get_attribute("title") == f"task {task['id']}"

    # every line has its time; one marker between the attempts, naming why the first ended
    times = log.locator(".jp-TasksLog-line .jp-TasksLog-ts").all_inner_texts()
    assert len(times) == 8 and all(re.fullmatch(r"\d\d:\d\d:\d\d", t) for t in times), times
    marker = log.locator(".jp-TasksLog-marker")
    assert marker.count() == 1
    assert marker.get_attribute("data-attempt") == "2"
    assert "attempt 2 of 3: RuntimeError: flaky failure 1" in marker.inner_text()
    order = log.locator(".jp-TasksLog-output > div").evaluate_all(
        "rows => rows.map(r => r.className.includes('marker') ? 'M' : "
        "r.textContent.includes('attempt 1') ? '1' : '2')")
    assert "".join(order) == "1111M2222"
    screenshot(page, "log-retried.png", f'.jp-TasksLog[data-task-id="{task["id"]}"]')

    # search keeps the matching lines (and the marker), highlights the match
    log.locator(".jp-TasksLog-search").fill("LINE 3")
    visible = log.locator(".jp-TasksLog-line:visible")
    assert visible.all_inner_texts() == [t for t in visible.all_inner_texts() if "line 3" in t]
    assert visible.count() == 2
    assert log.locator("mark").all_inner_texts() == ["line 3", "line 3"]
    assert log.locator(".jp-TasksLog-marker").is_visible()
    assert log.locator(".jp-TasksLog-matches").inner_text() == "2 lines"
    screenshot(page, "log-search.png", f'.jp-TasksLog[data-task-id="{task["id"]}"]')
    log.locator(".jp-TasksLog-search").fill("")
    assert log.locator(".jp-TasksLog-line:visible").count() == 8

    # wrap is a toggle
    wrap = log.locator(".jp-TasksLog-wrap")
    assert wrap.get_attribute("aria-pressed") == "true"
    wrap.click()
    assert wrap.get_attribute("aria-pressed") == "false"
    assert "jp-mod-nowrap" in (log.get_attribute("class") or "")
    wrap.click()

    # download saves the whole log as the task printed it
    with page.expect_download() as info:
        log.locator(".jp-TasksLog-download").click()
    download = info.value
    assert download.suggested_filename == f"flaky_import-{task['id'][-10:]}.log.txt"
    saved = Path(download.path()).read_text()
    assert saved == all_log_text(lab, task["id"])
    assert "— attempt 2 of 3: RuntimeError: flaky failure 1 —\n" in saved


# stops the log body's scroll events before they reach the view while __holdScroll is set
HOLD_SCROLL_EVENTS = """b => {
  window.__holdScroll = true;
  document.addEventListener('scroll', e => {
    if (e.target === b && window.__holdScroll) { e.stopImmediatePropagation(); }
  }, true);
}"""


def test_follow_pauses_when_scrolled_up_and_elapsed_is_live(lab: LabServer, page: Any) -> None:
    task = submit(lab, {"name": "browser_chatty", "label": "chatty",
                        "params": {"every": 0.02}, "max_retries": 0})
    try:
        log = open_log(page, task["id"])
        body = log.locator(".jp-TasksLog-body")
        follow = log.locator(".jp-TasksLog-follow")
        # enough lines to scroll, and the view stays at the end as they arrive
        page.wait_for_function(
            """id => {
                 const b = document.querySelector(
                   `.jp-TasksLog[data-task-id="${id}"] .jp-TasksLog-body`);
                 return b && b.scrollHeight > 3 * b.clientHeight;
               }""", arg=task["id"], timeout=WAIT_MS)
        assert follow.get_attribute("aria-pressed") == "true"
        at_end = "b => b.scrollHeight - b.scrollTop - b.clientHeight < 24"
        lines_now = "b => b.querySelectorAll('.jp-TasksLog-line').length"
        seen = body.evaluate(lines_now)
        page.wait_for_function(
            """([id, seen]) => document.querySelectorAll(
                 `.jp-TasksLog[data-task-id="${id}"] .jp-TasksLog-line`).length > seen + 20""",
            arg=[task["id"], seen], timeout=WAIT_MS)
        assert body.evaluate(at_end)

        # live elapsed: the header's running time changes while nothing else is done
        elapsed = log.locator(".jp-TasksLog-elapsed")
        first = elapsed.inner_text()
        assert first.startswith("running ")
        page.wait_for_function(
            """([id, first]) => document.querySelector(
                 `.jp-TasksLog[data-task-id="${id}"] .jp-TasksLog-elapsed`
               ).textContent !== first""",
            arg=[task["id"], first], timeout=WAIT_MS)
        assert log.locator(".jp-TasksLog-status").inner_text() == "running"
        assert log.locator(".jp-TasksLog-attempt").inner_text() == "attempt 1 of 1"

        # the reader scrolls up: following pauses and new lines do not pull the view down,
        # even when lines arrive before the scroll event does (it comes with the next
        # frame; a run beside a CPU hog could lose the scroll that way). The scroll event
        # is held back here until more lines have come.
        body.evaluate(HOLD_SCROLL_EVENTS)
        seen = body.evaluate(lines_now)
        body.evaluate("b => { b.scrollTop = 0; }")
        page.wait_for_function(
            """([id, seen]) => document.querySelectorAll(
                 `.jp-TasksLog[data-task-id="${id}"] .jp-TasksLog-line`).length > seen + 5""",
            arg=[task["id"], seen], timeout=WAIT_MS)
        body.evaluate("b => { window.__holdScroll = false; }")
        page.wait_for_function(
            "id => document.querySelector(`.jp-TasksLog[data-task-id=\"${id}\"] "
            ".jp-TasksLog-follow`).getAttribute('aria-pressed') === 'false'",
            arg=task["id"], timeout=WAIT_MS)
        seen = body.evaluate(lines_now)
        page.wait_for_function(
            """([id, seen]) => document.querySelectorAll(
                 `.jp-TasksLog[data-task-id="${id}"] .jp-TasksLog-line`).length > seen + 20""",
            arg=[task["id"], seen], timeout=WAIT_MS)
        assert body.evaluate("b => b.scrollTop") == 0
        assert follow.inner_text() == "Follow"
        screenshot(page, "log-paused.png", f'.jp-TasksLog[data-task-id="{task["id"]}"]')

        # Follow jumps to the end and follows again
        follow.click()
        assert follow.get_attribute("aria-pressed") == "true"
        assert body.evaluate(at_end)
        screenshot(page, "log-following.png", f'.jp-TasksLog[data-task-id="{task["id"]}"]')
    finally:
        lab.request("POST", f"/api/tasks/{task['id']}/cancel")
    wait_task(lab, page, task["id"], "cancelled")


def test_a_long_attempt_line_is_cut_and_leaves_the_search_box_its_room(
        lab: LabServer, page: Any) -> None:
    # before: the header's attempt text ("attempt 2 of 2 · ValueError: <a long message>")
    # took the row and squeezed "Search the log" to about 90 px ("Search t")
    message = "the upstream catalogue answered with a page we cannot read " * 4
    task = submit(lab, {"name": "browser_fail", "params": {"message": message},
                        "label": "long reason", "max_retries": 1})
    log = open_log(page, task["id"])
    wait_task(lab, page, task["id"], "failed")
    header = log.locator(".jp-TasksLog-header")
    attempt = header.locator(".jp-TasksLog-attempt")
    attempt.filter(has_text="attempt 2 of 2").wait_for(state="visible")
    search = header.locator(".jp-TasksLog-search")
    box = search.bounding_box()
    assert box is not None and box["width"] >= 150, box
    # the attempt line is cut with an ellipsis, and whole in its tooltip
    assert attempt.evaluate("e => e.scrollWidth > e.clientWidth"), "not cut"
    title = attempt.get_attribute("title") or ""
    assert title.split("\n")[0] == attempt.text_content() and "upstream catalogue" in title
    # the marker between the attempts too: its words cut with an ellipsis inside the log,
    # whole in its tooltip, and both rules kept (before: no ellipsis, the words ran to the
    # edge and the right-hand rule was squeezed out)
    marker = log.locator(".jp-TasksLog-marker")
    words = marker.locator(".jp-TasksLog-text")
    words.wait_for(state="visible")
    assert words.evaluate("e => e.scrollWidth > e.clientWidth"), "the marker's words not cut"
    assert words.evaluate("e => getComputedStyle(e).textOverflow") == "ellipsis"
    body = log.locator(".jp-TasksLog-body").bounding_box()
    shown = words.bounding_box()
    assert body is not None and shown is not None
    assert shown["x"] + shown["width"] <= body["x"] + body["width"], (shown, body)
    rules = marker.evaluate("m => [getComputedStyle(m, '::before').width, "
                            "getComputedStyle(m, '::after').width]")
    assert all(float(w.removesuffix("px")) >= 24 for w in rules), rules
    assert "upstream catalogue" in (marker.get_attribute("title") or "")
    screenshot(page, "log-long-attempt.png", f'.jp-TasksLog[data-task-id="{task["id"]}"]')


def test_empty_log_says_why(lab: LabServer, page: Any) -> None:
    task = submit(lab, {"name": "browser_tiny", "params": {"n": 3}})
    log = open_log(page, task["id"])
    wait_task(lab, page, task["id"], "succeeded")
    message = log.locator(".jp-TasksLog-message")
    message.filter(has_text="This task wrote no output (it ended succeeded).").wait_for(
        state="visible")
    assert "jp-mod-empty" in (log.get_attribute("class") or "")
    # a tab of a task with a name shows the name; the id's short form is in the header
    title = page.evaluate("""id => Array.from(window.jupyterapp.shell.widgets('main'))
        .find(w => w.id === `jupyter-tasks-log-${id}`).title.label""", task["id"])
    assert title == "Log: browser_tiny"
    assert log.locator(".jp-TasksLog-id").inner_text() == task["id"][-10:]
    screenshot(page, "log-empty.png", f'.jp-TasksLog[data-task-id="{task["id"]}"]')


def test_a_long_log_keeps_its_last_lines_on_the_page_and_downloads_whole(
        lab: LabServer, page: Any) -> None:
    shown = 20_000  # labextension/src/logview.ts MAX_SHOWN_LINES
    task = submit(lab, {"name": "browser_many_lines", "label": "many lines",
                        "params": {"lines": shown + 5_000}, "max_retries": 0})
    log = open_log(page, task["id"])
    wait_task(lab, page, task["id"], "succeeded")
    log.locator(".jp-TasksLog-line", has_text="line 25000").wait_for(state="attached")
    lines = log.locator(".jp-TasksLog-output > .jp-TasksLog-line")
    assert lines.count() == shown
    assert lines.first.inner_text().endswith("line 5001")
    note = log.locator(".jp-TasksLog-hidden")
    assert note.inner_text() == ("5,000 earlier lines are not shown here (the view keeps the "
                                 "last 20,000); Download saves the whole log.")
    # search covers the lines off the page too, listed above it (before: the count said
    # "10 lines on the page", and line 2400 could not be found but in the download)
    search = log.locator(".jp-TasksLog-search")
    search.fill("line 2400")  # 24000-24009 on the page; 2400 is off it
    assert log.locator(".jp-TasksLog-matches").inner_text() == \
        "10 lines on the page, 1 earlier"
    earlier = log.locator(".jp-TasksLog-earlier")
    assert earlier.locator(".jp-TasksLog-earlierTitle").inner_text() == \
        "1 earlier line (not on the page) matches:"
    assert earlier.locator(".jp-TasksLog-line .jp-TasksLog-text").all_inner_texts() == \
        ["line 2400"]
    assert earlier.locator("mark").all_inner_texts() == ["line 2400"]
    screenshot(page, "log-search-earlier.png", f'.jp-TasksLog[data-task-id="{task["id"]}"]')
    search.fill("line 1")  # 1, 10-19, 100-199, 1000-1999 earlier: 1,111; the first 500 listed
    assert log.locator(".jp-TasksLog-matches").inner_text().endswith(", 1111 earlier")
    assert earlier.locator(".jp-TasksLog-earlierTitle").inner_text() == \
        "1,111 earlier lines (not on the page) match; the first 500 are listed:"
    assert earlier.locator(".jp-TasksLog-line").count() == 500
    search.fill("")
    assert earlier.is_hidden()
    with page.expect_download() as info:
        log.locator(".jp-TasksLog-download").click()
    saved = Path(info.value.path()).read_text()
    assert saved == all_log_text(lab, task["id"])
    assert saved.startswith("line 1\n") and saved.endswith("line 25000\n")


def test_a_bar_redrawn_in_place_reads_as_its_latest_state(lab: LabServer, page: Any) -> None:
    # before: the eleven states of the bar were one line, each after the last
    task = submit(lab, {"name": "browser_bar", "params": {"steps": 10}})
    log = open_log(page, task["id"])
    wait_task(lab, page, task["id"], "succeeded")
    log.locator(".jp-TasksLog-line", has_text="done").wait_for(state="visible")
    texts = log.locator(".jp-TasksLog-line .jp-TasksLog-text").all_inner_texts()
    assert texts == ["100%|##########|", "windows line", "done"], texts
    assert "\r" in all_log_text(lab, task["id"])  # the log itself is kept as written
    screenshot(page, "log-progress-bar.png", f'.jp-TasksLog[data-task-id="{task["id"]}"]')



def test_a_log_tab_of_a_deleted_task_says_deleted_and_keeps_its_name(
        lab: LabServer, page: Any) -> None:
    # before: the badge turned to "loading…" (in the last status's colour) for good, the
    # tab's title fell back to the short id, and a tab opened after the delete (one
    # restored by a page reload) said "loading…" beside "Could not read the log"
    task = submit(lab, {"name": "browser_tiny", "params": {"n": 4}, "label": "to be deleted"})
    log = open_log(page, task["id"])
    wait_task(lab, page, task["id"], "succeeded")
    code, _ = lab.request("DELETE", f"/api/tasks/{task['id']}")
    assert code == 204
    status = log.locator('.jp-TasksLog-status[data-status="deleted"]')
    status.wait_for(state="attached")
    assert status.inner_text() == "deleted"
    log.locator(".jp-TasksLog-message", has_text="The task was deleted.").wait_for(
        state="visible")
    title = page.evaluate("""id => Array.from(window.jupyterapp.shell.widgets('main'))
        .find(w => w.id === `jupyter-tasks-log-${id}`).title.label""", task["id"])
    assert title == "Log: to be deleted"
    screenshot(page, "log-deleted.png", f'.jp-TasksLog[data-task-id="{task["id"]}"]')

    # a tab opened for a task that is gone already (as a restored one is)
    gone = submit(lab, {"name": "browser_tiny", "params": {"n": 5}})
    wait_gone = lab.request("GET", f"/api/tasks/{gone['id']}/result?timeout=60")
    assert wait_gone[0] == 200
    assert lab.request("DELETE", f"/api/tasks/{gone['id']}")[0] == 204
    later = open_log(page, gone["id"])
    later.locator('.jp-TasksLog-status[data-status="deleted"]').wait_for(state="attached")
    later.locator(".jp-TasksLog-message", has_text="No such task any more").wait_for(
        state="visible")
    assert page.page_errors == [], page.page_errors
