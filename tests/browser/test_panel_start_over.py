"""The panel across a database started over: the documented recovery moves the file aside
and restarts the server on an empty one, while the page stays open."""

from __future__ import annotations

from typing import Any

from .lab import LabServer
from .test_panel import row, wait_status
from .test_panel_truth import screenshot, submit


def test_the_open_panel_follows_a_database_started_over(lab: LabServer, page: Any) -> None:
    # before: the panel resumed with its old event id, which the new database had not
    # reached; the server dropped every event below it and so did the panel's model:
    # the old tasks stayed on screen and new ones never appeared
    old = [submit(lab, {"name": "browser_tiny", "params": {"n": i}, "label": f"old {i}"})
           for i in range(3)]
    for task in old:
        wait_status(page, task["id"], "succeeded")
    lab.kill()
    aside = lab.folder / "aside"
    aside.mkdir()
    for path in lab.folder.glob(f"{lab.db_path.name}*"):
        path.rename(aside / path.name)
    lab.start()
    new = submit(lab, {"name": "browser_tiny", "params": {"n": 9}, "label": "after the start over"})
    wait_status(page, new["id"], "succeeded")
    for task in old:
        row(page, task["id"]).wait_for(state="detached")
    screenshot(page, "panel-start-over.png", ".jp-TasksPanel")
