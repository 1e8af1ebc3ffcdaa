"""Issue 13: the detail pane says what the storage rule changed in a task's values.

A NaN in a result is stored as null with a note of where it was; a result too large
for the row is a preview, the whole value being the artifact ``result.json``. Real
tasks run by a real ``TaskManager`` on the database the dashboard reads.
"""

from __future__ import annotations

from typing import Any

from jupyter_tasks_dashboard.app import TasksDashboard
from jupyter_tasks_dashboard.sources import DatabaseSource

from .conftest import until

SIZE = (180, 50)


def nan_loss() -> dict[str, Any]:
    return {"loss": float("nan"), "acc": 0.5}


def huge_rows() -> dict[str, Any]:
    return {"rows": ["x" * 1000] * 300}  # ~300,000 characters of JSON


def plain(widget: Any) -> str:
    return str(widget.render())


async def test_value_notes_and_a_large_result_preview_are_shown(tmp_path):
    from jupyter_tasks.manager import TaskManager

    db = tmp_path / "notes.db"
    app = TasksDashboard(DatabaseSource(db))
    async with TaskManager(db, worker_kind="test", make_default=False) as writer, \
            app.run_test(size=SIZE) as pilot:
        await until(lambda: app.ready and app.page_loads, pilot, what="started")
        nan_task = await writer.submit(nan_loss, mode="background", label="nan loss")
        huge = await writer.submit(huge_rows, mode="background", label="huge rows")
        assert (await writer.wait(nan_task.id, timeout=30)).status == "succeeded"
        assert (await writer.wait(huge.id, timeout=30)).status == "succeeded"
        await until(lambda: app.table.tasks.get(huge.id, {}).get("status") == "succeeded"
                    and app.table.tasks.get(nan_task.id, {}).get("status") == "succeeded",
                    pilot, what="both rows finished")

        app.table.select(nan_task.id)
        await until(lambda: app.detail.task_id == nan_task.id and app.detail.built
                    and "stored as" in plain(app.detail.value_notes), pilot,
                    what="the NaN note")
        notes = plain(app.detail.value_notes)
        assert "result['loss']: nan stored as null" in notes
        assert app.detail.value_notes.display
        assert '"loss": null' in plain(app.detail.result)

        app.table.select(huge.id)
        await until(lambda: app.detail.task_id == huge.id
                    and "preview" in plain(app.detail.result), pilot, what="the preview")
        result = plain(app.detail.result)
        assert "the whole value is the artifact result.json" in result
        assert "characters of JSON" in result
        assert '{"rows":["xxxx' in result.replace("\n", "").replace(" ", "")
        assert "result.json" in plain(app.detail.artifacts)
        assert "a preview; the whole value is the artifact result.json" in plain(
            app.detail.value_notes)
