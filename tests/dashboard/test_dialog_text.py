"""A task's question is readable whole in the answer dialog, and each choice can be seen.

A real task asks through a real manager on a database file; the dashboard reads
that file (``DatabaseSource``) and the dialog opens with ``a``.
"""

from __future__ import annotations

from pathlib import Path

from jupyter_tasks_dashboard.app import TasksDashboard
from jupyter_tasks_dashboard.confirm import ConfirmScreen
from jupyter_tasks_dashboard.sources import DatabaseSource
from textual.geometry import Region
from textual.widgets import Button, Label

from jupyter_tasks.context import current_context

from .conftest import until

SIZE = (120, 30)  # the dialog scrolls: its buttons and text are more than 27 rows
LONG_PROMPT = ("Delete the 4,812 intermediate parquet files under /data/scratch/run-7/parts "
               "and keep only the merged output? ") * 3 + "\nLast line: are you sure?"
LONG_CHOICES = ["yes, delete all of them now", "no, keep every file",
                "keep only the newest hundred files", "ask me again tomorrow morning",
                "move them to cold storage instead"]


async def ask_long() -> str:
    """Ask a question longer than a line, with more choices than fit in one row."""
    return await current_context.get().confirm(LONG_PROMPT, LONG_CHOICES)


def inside(inner: Region, outer: Region) -> bool:
    return outer.x <= inner.x and inner.right <= outer.right


async def test_a_long_question_wraps_and_every_choice_is_on_screen(tmp_path: Path) -> None:
    # before: the question was one line cut at the dialog's edge (its end never shown)
    # and the buttons one row, the third cut to "kee" and the last two off the dialog
    from jupyter_tasks.manager import TaskManager

    db = tmp_path / "ask.db"
    app = TasksDashboard(DatabaseSource(db))
    async with TaskManager(db, worker_kind="test", make_default=False,
                           queues={"default": 1}) as runner:
        asking = await runner.submit(ask_long, mode="background", label="cleanup")
        async with app.run_test(size=SIZE) as pilot:
            def waiting() -> bool:
                task = app.detail.current_task or {}
                return app.detail.task_id == asking.id and bool(task.get("confirmation"))

            await until(lambda: app.ready and asking.id in app.table.tasks, pilot,
                        what="its row")
            app.table.select(asking.id)
            await until(waiting, pilot, what="the question in the details")
            await pilot.press("a")
            await until(lambda: isinstance(app.screen, ConfirmScreen), pilot, what="dialog")
            box = app.screen.query_one("#confirm-dialog")
            # its start in sight: the focused first choice had scrolled the title away
            await until(lambda: box.scroll_y == 0, pilot, what="the dialog at its top")
            await pilot.pause()
            assert box.max_scroll_y > 0
            dialog = box.content_region
            prompt = app.screen.query_one("#confirm-prompt", Label)
            assert inside(prompt.region, dialog), (prompt.region, dialog)
            # three sentences of ~110 characters and the last line, in a 66-column box
            assert prompt.region.height >= 6, prompt.region
            buttons = list(app.screen.query(Button))
            assert len(buttons) == len(LONG_CHOICES) + 1  # and "Later"
            for button in buttons:
                assert button.region.area and inside(button.region, dialog), \
                    (str(button.label), button.region, dialog)
            await pilot.press("5")
            done = await runner.wait(asking.id, timeout=30)
            assert done.result == LONG_CHOICES[4]
