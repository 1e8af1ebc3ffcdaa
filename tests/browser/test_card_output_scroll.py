"""A card's output box scrolls: long output stays above the card's buttons, all of it reachable."""

from __future__ import annotations

from typing import Any

import pytest

from tests.jobs.conftest import write_notebook

from .lab import LabServer
from .test_card_restore import CLOSE_JS, OPEN_JS, RUN_ALL_JS, WAIT_MS, screenshot

pytestmark = [pytest.mark.browser]

CELLS = ["%load_ext jupyter_tasks",
         "%%background --label many-lines\nfor i in range(2000):\n    print(f'line {i}')\n"]

# the card's output box (the Output widget's area) and its buttons, measured in the page
MEASURE_JS = """
() => {
  const card = document.querySelector('.jupyter-tasks-card');
  const box = card.querySelector('.widget-output');
  const cancel = [...card.querySelectorAll('button')].find(b => b.textContent.includes('Cancel'));
  box.scrollTop = box.scrollHeight;
  return {overflow: getComputedStyle(box).overflowY, scrollTop: box.scrollTop,
          scrollHeight: box.scrollHeight, clientHeight: box.clientHeight,
          boxBottom: box.getBoundingClientRect().bottom,
          cancelTop: cancel.getBoundingClientRect().top};
}
"""


def test_a_cards_long_output_scrolls_inside_its_box(lab: LabServer, page: Any) -> None:
    # before: the Output widget was given overflow_y/overflow_x, which ipywidgets 8's
    # Layout does not have: dropped without a word, the box overflowed visibly, its lines
    # ran under Cancel and Rerun, and all but the first ~18 could not be reached
    from playwright.sync_api import expect

    write_notebook(lab.root / "scroll.ipynb", CELLS, markdown=None)
    try:
        page.evaluate(OPEN_JS, "scroll.ipynb")
        page.evaluate(RUN_ALL_JS)
        card = page.locator(".jupyter-tasks-card").first
        expect(card).to_contain_text("line 1999", timeout=WAIT_MS)
        measured = page.evaluate(MEASURE_JS)
        screenshot(page, "card-output-scroll.png", ".jupyter-tasks-card")
        assert measured["overflow"] in ("auto", "scroll"), measured
        assert measured["scrollHeight"] > measured["clientHeight"] > 0, measured
        assert measured["scrollTop"] > 0, measured  # the last lines are reachable
        assert measured["boxBottom"] <= measured["cancelTop"], measured  # above the buttons
    finally:
        page.evaluate(CLOSE_JS)
        dialog = page.locator(".jp-Dialog")
        if dialog.count():
            dialog.locator("button").last.click()
