"""The panel as a user met it: tasks older than the loaded page, an empty log's line as
its task starts, long answers, the log's buttons in the dark theme."""

from __future__ import annotations

from typing import Any

from .lab import LabServer, open_lab_and_panel
from .test_log_view import open_log
from .test_panel import row, wait_status
from .test_panel_truth import append_logs, make_task, screenshot, seed, submit


def until_running_with_a_question(lab: LabServer, task_id: str) -> None:
    """Until the task waits for an answer (its confirmation is stored)."""
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        code, task = lab.request("GET", f"/api/tasks/{task_id}")
        if code == 200 and (task.get("confirmation") or {}).get("prompt"):
            return
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} never asked its question")


def answer(lab: LabServer, task_id: str, choice: str) -> None:
    code, task = lab.request("POST", f"/api/tasks/{task_id}/confirm", {"answer": choice})
    assert code == 200, (code, task)


def test_a_question_and_a_task_older_than_the_first_page_are_shown(
        lab: LabServer, page: Any) -> None:
    # before: the panel read only the newest 100 tasks at start-up; a task waiting for
    # my answer behind them was in no section and not in the status bar, and a log tab
    # or a "show task" of an older task stayed on "loading…" or did nothing
    code, me = lab.request("GET", "/api/tasks/me")
    assert code == 200, me
    ask = submit(lab, {"name": "browser_ask", "params": {"prompt": "Still there?"},
                       "label": "old question"})
    until_running_with_a_question(lab, ask["id"])
    done = submit(lab, {"name": "browser_tiny", "params": {"n": 1}, "label": "old and done"})
    wait_status(page, done["id"], "succeeded")
    seed(lab.db_path, [make_task(f"newer {i}", owner=me["owner"]) for i in range(120)])
    page.reload()
    open_lab_and_panel(page, lab)
    row(page, ask["id"]).wait_for(state="attached")
    assert page.locator('[data-section="needs"]').locator(
        f'[data-task-id="{ask["id"]}"]').count() == 1
    page.wait_for_function(
        "() => document.querySelector('[data-testid=tasks-status]')?.dataset.needs === '1'")
    assert row(page, done["id"]).count() == 0  # not loaded: older than the first page
    log = open_log(page, done["id"])
    log.locator('.jp-TasksLog-status[data-status="succeeded"]').wait_for(state="attached")
    assert log.locator(".jp-TasksLog-message").inner_text() == \
        "This task wrote no output (it ended succeeded)."
    page.evaluate("id => window.jupyterapp.commands.execute('jupyter-tasks:show-task', {id})",
                  done["id"])
    row(page, done["id"]).wait_for(state="visible")
    answer(lab, ask["id"], "yes")
    wait_status(page, ask["id"], "succeeded")


def test_a_status_filter_shows_its_tasks_from_older_pages(lab: LabServer, page: Any) -> None:
    # before: "Failed (1)" in the filter, then "No task matches the filters." when the
    # failed task was older than the loaded pages
    _, me = lab.request("GET", "/api/tasks/me")
    failed = submit(lab, {"name": "browser_fail", "params": {"message": "on an old page"},
                          "max_retries": 0, "label": "old failure"})
    wait_status(page, failed["id"], "failed")
    seed(lab.db_path, [make_task(f"newer ok {i}", owner=me["owner"]) for i in range(120)])
    page.reload()
    open_lab_and_panel(page, lab)
    assert row(page, failed["id"]).count() == 0  # older than the first page
    try:
        page.locator(".jp-TasksPanel-statusFilter").select_option("failed")
        row(page, failed["id"]).wait_for(state="visible")
        assert page.locator(".jp-TasksPanel-empty").count() == 0
    finally:
        page.locator(".jp-TasksPanel-statusFilter").select_option("")


def test_an_empty_logs_line_follows_its_task_from_queued_to_running(
        lab: LabServer, page: Any) -> None:
    # before: "the task is queued and has not started" stayed after it started
    busy = [submit(lab, {"name": "browser_slow", "params": {"steps": 3000, "step_seconds": 0.1}})
            for _ in range(2)]  # both of the lab's slots
    for task in busy:
        wait_status(page, task["id"], "running")
    quiet = submit(lab, {"name": "browser_ask", "params": {"prompt": "Quiet?"}})
    log = open_log(page, quiet["id"])
    message = log.locator(".jp-TasksLog-message")
    message.filter(has_text="the task is queued and has not started").wait_for()
    for task in busy:
        assert lab.request("POST", f"/api/tasks/{task['id']}/cancel")[0] == 202
    message.filter(has_text="No output yet: the task is running.").wait_for()
    until_running_with_a_question(lab, quiet["id"])
    answer(lab, quiet["id"], "no")
    message.filter(has_text="This task wrote no output (it ended succeeded).").wait_for()


def test_long_answers_stay_inside_their_buttons(lab: LabServer, page: Any) -> None:
    # before: a long answer wrapped inside its 22 px button and spilled over the others
    # and the prompt's second line
    choices = ["Continue with the current settings", "Retry with a smaller batch size",
               "Abort"]
    ask = submit(lab, {"name": "browser_choose", "label": "long answers",
                       "params": {"prompt": "Which settings should the next run use?",
                                  "choices": choices}})
    buttons = row(page, ask["id"]).locator(".jp-TasksPanel-answer")
    buttons.first.wait_for(state="visible")
    assert buttons.count() == 3
    boxes = [buttons.nth(i).bounding_box() for i in range(3)]
    prompt = row(page, ask["id"]).locator(".jp-TasksPanel-prompt")
    prompt_box = prompt.bounding_box()

    def overlap(a: dict, b: dict) -> bool:
        return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
                and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])

    for i, box in enumerate(boxes):
        assert not overlap(box, prompt_box), (i, box, prompt_box)
        for other in boxes[i + 1:]:
            assert not overlap(box, other), (box, other)
    # one line of text each (before: two or three, drawn over what lay below the
    # button); a cut answer is whole in its title
    for i in range(3):
        lines = buttons.nth(i).evaluate("""b => {
            const range = document.createRange();
            range.selectNodeContents(b);
            return new Set(Array.from(range.getClientRects(), r => Math.round(r.top))).size;
          }""")
        assert lines == 1, (choices[i], lines)
        assert buttons.nth(i).get_attribute("title") == choices[i]
    screenshot(page, "panel-long-answers.png", ".jp-TasksPanel")
    answer(lab, ask["id"], "Abort")
    wait_status(page, ask["id"], "succeeded")


def contrast(page: Any, locator: Any) -> float:
    """The WCAG contrast ratio of an element's text color on its background."""
    return locator.evaluate("""el => {
        const style = getComputedStyle(el);
        const rgb = s => s.match(/[\\d.]+/g).slice(0, 3).map(Number);
        const lum = ([r, g, b]) => {
          const f = c => { c /= 255; return c <= 0.03928 ? c / 12.92
                                               : Math.pow((c + 0.055) / 1.055, 2.4); };
          return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
        };
        const [a, b] = [lum(rgb(style.color)), lum(rgb(style.backgroundColor))];
        return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      }""")


def test_the_log_buttons_read_in_the_dark_theme(lab: LabServer, page: Any) -> None:
    # before: the pressed Following and Wrap buttons had near-white text on a light
    # background in the dark theme (a contrast of about 1.1:1)
    task = submit(lab, {"name": "browser_tiny", "params": {"n": 2}})
    wait_status(page, task["id"], "succeeded")
    try:
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', "
                      "{theme: 'JupyterLab Dark'})")
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'")
        log = open_log(page, task["id"])
        for name in ("follow", "wrap"):
            button = log.locator(f".jp-TasksLog-{name}")
            assert button.get_attribute("aria-pressed") == "true"
            assert contrast(page, button) >= 4.5, name
        screenshot(page, "log-dark-theme.png", f'.jp-TasksLog[data-task-id="{task["id"]}"]')
    finally:
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', "
                      "{theme: 'JupyterLab Light'})")
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'true'")


def test_an_integer_past_two_to_the_53_is_shown_whole(lab: LabServer, page: Any) -> None:
    # before: a result of 2**80 read "1.2089258196146292e+24" (JSON.parse rounds it)
    import dataclasses

    _, me = lab.request("GET", "/api/tasks/me")
    big = dataclasses.replace(make_task("a huge integer", owner=me["owner"]),
                              result={"exact": 2**80, "small": 3, "float": 0.1},
                              params={"n": -(2**64) - 1})
    seed(lab.db_path, [big])
    target = row(page, big.id)
    target.wait_for(state="visible")
    target.locator(".jp-TasksPanel-rowHeader").click()
    result = target.locator(".jp-TasksPanel-result pre")
    result.wait_for(state="visible")
    assert '"exact": 1208925819614629174706176' in result.inner_text()
    assert '"small": 3' in result.inner_text() and '"float": 0.1' in result.inner_text()
    assert '"n": -18446744073709551617' in target.locator(".jp-TasksPanel-params pre").inner_text()
    screenshot(page, "panel-huge-integer.png", ".jp-TasksPanel")
    assert page.page_errors == [], page.page_errors


def test_the_search_box_finds_a_task_older_than_the_loaded_pages(
        lab: LabServer, page: Any) -> None:
    # before: "No task matches the filters." for a task the server's own search finds,
    # some 50 clicks of "Load older tasks" away
    _, me = lab.request("GET", "/api/tasks/me")
    old = make_task("Über-needle old", owner=me["owner"], ago=7200)
    seed(lab.db_path, [old])
    seed(lab.db_path, [make_task(f"newer hay {i}", owner=me["owner"]) for i in range(150)])
    page.reload()
    open_lab_and_panel(page, lab)
    assert row(page, old.id).count() == 0  # older than the first page
    box = page.locator(".jp-TasksPanel-search")
    try:
        box.fill("über-needle")
        row(page, old.id).wait_for(state="visible")
    finally:
        box.fill("")


def test_terminal_codes_and_cut_characters_read_as_text(lab: LabServer, page: Any) -> None:
    # before: an error message showed ▯[31m, a log its hyperlink's ]8;; and a charset's
    # ▯(B, a line erased before its \r read "replacedne:", and a long value cut between
    # the two halves of an emoji showed a broken glyph
    import dataclasses

    _, me = lab.request("GET", "/api/tasks/me")
    failed = dataclasses.replace(
        make_task("colored failure", owner=me["owner"], status="failed"),
        error={"type": "ValueError", "message": "\x1b[31mred message\x1b[0m", "traceback": None},
        params={"long": "a" * 3987 + "\U0001F600" * 10})
    seed(lab.db_path, [failed])
    append_logs(lab.db_path, failed.id, [
        "bold\x1b[1m text\x1b(B\x1b[m after\n",
        "link: \x1b]8;;https://example.com\x1b\\click here\x1b]8;;\x1b\\ end\n",
        "\x1b]0;window title\x07title set\n",
        "clear line:\x1b[2K\rreplaced\n"])
    target = row(page, failed.id)
    target.wait_for(state="visible")
    target.locator(".jp-TasksPanel-rowHeader").click()
    error = target.locator(".jp-TasksPanel-error")
    error.wait_for(state="visible")
    assert "\x1b" not in error.inner_text() and "red message" in error.inner_text()
    params = target.locator(".jp-TasksPanel-params pre").inner_text()
    assert not any(0xD800 <= ord(c) <= 0xDFFF for c in params), params[-20:]
    log = open_log(page, failed.id)
    log.locator(".jp-TasksLog-line", has_text="replaced").wait_for(state="visible")
    texts = [t.rstrip() for t in log.locator(".jp-TasksLog-text").all_inner_texts()]
    assert texts == ["bold text after", "link: click here end", "title set", "replaced"], texts
    assert page.page_errors == [], page.page_errors


def test_a_rows_actions_are_buttons_of_their_own_for_keyboard_and_screen_reader(
        lab: LabServer, page: Any) -> None:
    # before: the line was an element with role=button holding the Rerun and Log
    # buttons, which a screen reader folds into the one label of that element
    _, me = lab.request("GET", "/api/tasks/me")
    task = make_task("keyboard only", owner=me["owner"])
    seed(lab.db_path, [task])
    target = row(page, task.id)
    target.wait_for(state="visible")
    nested = page.evaluate(
        "() => [...document.querySelectorAll('.jp-TasksPanel [role=button]')]"
        ".filter(e => e.querySelector('button')).length")
    assert nested == 0
    toggle = target.locator(".jp-TasksPanel-toggle")
    assert toggle.evaluate("e => e.tagName") == "BUTTON"
    toggle.focus()
    page.keyboard.press("Enter")
    page.wait_for_function(
        "id => document.querySelector(`.jp-TasksPanel-row[data-task-id='${id}'] "
        ".jp-TasksPanel-toggle`).getAttribute('aria-expanded') === 'true'", arg=task.id)
    page.keyboard.press("Tab")  # the next stop is the line's own Rerun button
    assert page.evaluate("() => document.activeElement.getAttribute('aria-label')") == "Rerun"
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Space")  # collapses again, once (a click bubbles to the line)
    page.wait_for_function(
        "id => document.querySelector(`.jp-TasksPanel-row[data-task-id='${id}'] "
        ".jp-TasksPanel-toggle`).getAttribute('aria-expanded') === 'false'", arg=task.id)
    target.locator(".jp-TasksPanel-label").click()  # a mouse click on the line, once too
    page.wait_for_function(
        "id => document.querySelector(`.jp-TasksPanel-row[data-task-id='${id}'] "
        ".jp-TasksPanel-toggle`).getAttribute('aria-expanded') === 'true'", arg=task.id)
    screenshot(page, "panel-row-keyboard.png", ".jp-TasksPanel")
    assert page.page_errors == [], page.page_errors
