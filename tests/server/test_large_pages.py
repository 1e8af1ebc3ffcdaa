"""A page of tasks with large stored values does not hold the server's event loop."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from jupyter_tasks.models import Task, new_task_id

TASKS = 40
# a value that costs JSON its most per byte: many small objects (~250 KB each)
RESULT = [{"row": i, "ok": True} for i in range(12_000)]


async def test_a_page_of_large_results_is_decoded_and_encoded_off_the_loop(
        jp_fetch, tasks_app, monkeypatch) -> None:
    # before: 100 tasks of 1 MB results each held the loop for ~2.5 s, decoding the rows
    # and encoding the answer on it: every other request and websocket of the server
    # waited. Where each task's decoding and encoding ran is recorded (the thread, not
    # a clock: a loaded machine slows everything alike)
    now = time.time()
    await tasks_app.manager.store.insert_task_rows(
        {"id": new_task_id(), "kind": "function", "mode": "job", "status": "succeeded",
         "name": "big", "queue": "default", "created_at": now, "finished_at": now,
         "result": RESULT} for _ in range(TASKS))
    loop_thread = threading.get_ident()
    on_loop: list[str] = []
    from_row, to_json = Task.from_row.__func__, Task.to_json  # type: ignore[attr-defined]

    def from_row_where(cls: Any, row: Any) -> Task:
        if threading.get_ident() == loop_thread:
            on_loop.append("decode")
        return from_row(cls, row)

    def to_json_where(self: Task, full: bool = False) -> dict[str, Any]:
        if threading.get_ident() == loop_thread:
            on_loop.append("encode")
        return to_json(self, full=full)

    monkeypatch.setattr(Task, "from_row", classmethod(from_row_where))
    monkeypatch.setattr(Task, "to_json", to_json_where)
    response = await jp_fetch("api", "tasks", params={"limit": TASKS})
    tasks = json.loads(response.body)["tasks"]
    assert len(tasks) == TASKS and all(t["result"] == RESULT for t in tasks)
    assert on_loop == [], on_loop[:5]
