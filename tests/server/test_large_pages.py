"""A page of tasks with large stored values does not hold the server's event loop."""

from __future__ import annotations

import asyncio
import json
import time

from jupyter_tasks.models import new_task_id

TASKS = 40
# a value that costs JSON its most per byte: many small objects (~250 KB each)
RESULT = [{"row": i, "ok": True} for i in range(12_000)]


async def test_a_page_of_large_results_leaves_the_loop_free_for_others(jp_fetch, tasks_app):
    # before: 100 tasks of 1 MB results each held the loop for ~2.5 s, decoding the rows
    # and encoding the answer: every other request and websocket of the server waited
    now = time.time()
    await tasks_app.manager.store.insert_task_rows(
        {"id": new_task_id(), "kind": "function", "mode": "job", "status": "succeeded",
         "name": "big", "queue": "default", "created_at": now, "finished_at": now,
         "result": RESULT} for _ in range(TASKS))
    gaps: list[float] = []
    # the body read raw: the test's client decoding it would hold the (shared) loop too
    listing = asyncio.ensure_future(jp_fetch("api", "tasks", params={"limit": TASKS}))

    async def ticking() -> None:  # how long the loop goes without a turn, meanwhile
        last = time.perf_counter()
        while not listing.done():
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    started = time.perf_counter()
    await asyncio.gather(listing, ticking())
    took = time.perf_counter() - started
    response = listing.result()
    assert response.code == 200
    tasks = json.loads(response.body)["tasks"]
    assert len(tasks) == TASKS and all(t["result"] == RESULT for t in tasks)
    # a share of the request's own time, not a clock: a loaded machine slows both alike.
    # Held for the decoding and the encoding, the loop's longest wait was most of it
    assert max(gaps) < took / 4, (max(gaps), took, len(gaps))
