"""``--db`` mode on a server's database: rerun and fork the server's registered tasks.

The dashboard's process does not import the server's task modules (``dash_tasks``);
its rerun and fork go into the database as queued jobs that the server's workers run.
"""

from __future__ import annotations

import pytest
from jupyter_tasks_dashboard.app import TasksDashboard
from jupyter_tasks_dashboard.fork import ForkScreen
from jupyter_tasks_dashboard.sources import DatabaseSource
from textual.widgets import TextArea

from jupyter_tasks.client import TasksClient
from jupyter_tasks.registry import default_registry

from .conftest import until

pytestmark = pytest.mark.slow
SIZE = (180, 50)


async def test_rerun_and_fork_of_a_server_task_in_database_mode(server):
    assert "dash_echo" not in default_registry  # this process does not know the task
    client = TasksClient(server.url, server.token)
    task = await client.submit("dash_echo", {"value": 7}, label="echo seven")
    await client.wait(task["id"], timeout=30)
    app = TasksDashboard(DatabaseSource(server.db))
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.ready and task["id"] in app.table.tasks, pilot, what="the row")
        app.table.select(task["id"])
        await until(lambda: app.detail.task_id == task["id"], pilot, what="details")
        await pilot.press("r")
        await until(lambda: any("Rerun of echo seven" in note
                                for note in app.notices), pilot, what="rerun started")
        assert not any("failed" in note for note in app.notices)
        rerun = (await client.list(parent_id=task["id"]))["tasks"][0]
        assert rerun["relationship"] == "rerun"
        done = await client.wait(rerun["id"], timeout=30)  # a server worker ran it
        assert done["status"] == "succeeded" and done["result"] == {"value": 7, "word": "plain"}

        await pilot.press("f")
        modal = await until(lambda: isinstance(app.screen, ForkScreen) and app.screen, pilot,
                            what="the fork modal")
        modal.query_one("#fork-json", TextArea).text = '{"value": 8, "word": "forked"}'
        await pilot.press("ctrl+s")
        await until(lambda: not isinstance(app.screen, ForkScreen), pilot, what="forked")
        children = (await client.list(parent_id=task["id"]))["tasks"]
        fork = next(c for c in children if c["relationship"] == "fork")
        done = await client.wait(fork["id"], timeout=30)
        assert done["status"] == "succeeded" and done["result"] == {"value": 8, "word": "forked"}
        await until(lambda: [label for label in app.detail.lineage_labels if "fork:" in label],
                    pilot, what="the fork in the lineage tree")
