"""``TaskCard`` for a task run by another process: live progress, the question and its
answer buttons, and Cancel, all through the shared database."""

from __future__ import annotations

import asyncio
import queue
import re
import sys
import threading
from pathlib import Path
from typing import Any

from jupyter_tasks.context import TaskContext
from jupyter_tasks.manager import TaskManager
from tests.waiting import eventually_sync

from .conftest import read_store, task_of
from .harness import Kernel


class OtherProcess:
    """A TaskManager on its own thread standing in for the server or another kernel."""

    def __init__(self, db_path: Path) -> None:
        self.ids: queue.Queue[str] = queue.Queue()
        self.answers: list[str] = []
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=asyncio.run, args=(self._main(db_path),),
                                       daemon=True)
        self.thread.start()

    async def _main(self, db_path: Path) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with TaskManager(db_path, worker_kind="other", make_default=False) as manager:

            async def asks(ctx: TaskContext) -> str:
                ctx.progress(3, 4, "almost")
                answer = await ctx.confirm("Ship it?", ["ship", "wait"])
                self.answers.append(answer)
                await asyncio.sleep(60)  # then waits to be cancelled
                return answer

            ctx_holder: dict[str, Any] = {}

            async def run() -> str:
                from jupyter_tasks.context import current_context

                ctx_holder["ctx"] = current_context.get()
                return await asks(ctx_holder["ctx"])

            task = await manager.submit(run(), label="remote question")
            self.ids.put(task.id)
            await self._stop.wait()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)


def _html(kernel: Kernel) -> str:
    kernel.pump(0.05)
    models = kernel.comm_models()
    return "".join(str(kernel.widget_state(c).get("value", ""))
                   for c, name in models.items() if name == "HTMLModel")


def _button(kernel: Kernel, description: str) -> str:
    for comm_id, name in kernel.comm_models().items():
        if name == "ButtonModel" and kernel.widget_state(comm_id).get("description") \
                == description:
            return comm_id
    return ""


def _click(kernel: Kernel, comm_id: str) -> None:
    msg = kernel.client.session.msg("comm_msg", {
        "comm_id": comm_id, "data": {"method": "custom", "content": {"event": "click"}}})
    kernel.client.shell_channel.send(msg)


def test_card_of_a_task_in_another_process(kernel: Kernel, db_path: Path) -> None:
    other = OtherProcess(db_path)
    try:
        task_id = other.ids.get(timeout=30)
        kernel.execute(f"from jupyter_tasks import TaskCard\ncard = TaskCard({task_id!r})\ncard")
        # progress, rate-free fraction and the question, as the other process wrote them
        kernel.wait_for(lambda: "remote question" in _html(kernel)
                        and "3/4 (75%)" in _html(kernel) and "Ship it?" in _html(kernel),
                        what="progress and question in the card")
        ship = kernel.wait_for(lambda: _button(kernel, "ship"), what="answer button")
        _click(kernel, ship)
        eventually_sync(lambda: other.answers == ["ship"], what="answer delivered")
        assert task_of(db_path, task_id).confirmation["answer"] == "ship"
        kernel.wait_for(lambda: "Ship it?" not in _html(kernel), what="question gone")
        _click(kernel, _button(kernel, "Cancel"))
        eventually_sync(lambda: task_of(db_path, task_id).status == "cancelled",
                        what="cancelled from the card")
        kernel.wait_for(lambda: "cancelled" in _html(kernel), what="card shows cancelled")
    finally:
        other.stop()


def test_a_cards_text_reads_as_written(kernel: Kernel) -> None:
    """A label's bidi override shows as U+FFFD (it reversed how the label read), and a long
    message full of '&' is cut before it is escaped (a cut '&amp;' showed as '&am')."""
    kernel.execute(
        "import asyncio\n"
        "import jupyter_tasks as jt\n"
        "from jupyter_tasks.context import current_context\n"
        "async def slow():\n"
        "    current_context.get().progress(1, 2, '&' * 300)\n"
        "    await asyncio.sleep(60)\n"
        "t = await jt.submit(slow(), label='\\u202eevil.exe <b>')\n"
        "card = jt.TaskCard(t.id)\n"
        "card")
    html = kernel.wait_for(lambda: h if "&amp;" * 200 in (h := _html(kernel)) else None,
                           what="the progress message in the card")
    assert "\ufffdevil.exe &lt;b&gt;" in html and "\u202e" not in html
    assert "&amp;" * 200 + "</div>" in html, html[-400:]
    kernel.execute("card._act('cancel')")


def test_a_card_of_a_row_with_odd_progress_follows_the_task_to_its_end(
        kernel: Kernel, db_path: Path) -> None:
    # before: a stored {"current": "Decimal('1')", ...} (what progress() of a Decimal
    # wrote) made every refresh of the card raise; it stayed "running" for good
    import time

    from jupyter_tasks.models import new_task_id
    from jupyter_tasks.store import Store


    task_id = new_task_id()

    async def insert(store: Store) -> None:
        now = time.time()
        await store.insert_task_rows([{
            "id": task_id, "kind": "function", "mode": "job", "status": "running",
            "name": "odd", "label": "odd progress", "params": {}, "spec": {"name": "odd"},
            "queue": "parked", "progress": {"current": "Decimal('1')", "total": 2},
            "worker_id": "elsewhere", "attempts": 1, "created_at": now, "updated_at": now,
            "started_at": now}])

    read_store(db_path, insert)
    kernel.execute(f"from jupyter_tasks import TaskCard\ncard = TaskCard({task_id!r})\ncard")
    kernel.wait_for(lambda: "odd progress" in _html(kernel), what="the card")

    async def finish(store: Store) -> None:
        await store.transition(task_id, {"status": "succeeded", "finished_at": time.time(),
                                         "result": 7}, "task.succeeded",
                               when_status=("running",))

    read_store(db_path, finish)
    kernel.wait_for(lambda: "succeeded" in _html(kernel), what="the card showing the end")


def test_an_ended_tasks_card_shows_its_overall_rate(kernel: Kernel, db_path: Path) -> None:
    # before: the rate of the last few seconds' samples: a redraw after the end read
    # "9.61/s", then "4.94/s" for the same finished task (and none on a card opened after)
    import time

    from jupyter_tasks.models import new_task_id
    from jupyter_tasks.store import Store

    task_id = new_task_id()

    async def insert(store: Store) -> None:
        now = time.time()
        await store.insert_task_rows([{
            "id": task_id, "kind": "function", "mode": "job", "status": "succeeded",
            "name": "steps", "label": "sixty steps", "params": {}, "spec": {"name": "steps"},
            "queue": "parked", "progress": {"current": 60, "total": 60},
            "attempts": 1, "created_at": now - 7, "updated_at": now, "started_at": now - 6,
            "finished_at": now, "result": 1}])

    read_store(db_path, insert)
    kernel.execute(f"from jupyter_tasks import TaskCard\ncard = TaskCard({task_id!r})\ncard")
    html = kernel.wait_for(lambda: "sixty steps" in _html(kernel) and _html(kernel),
                           what="the card")
    assert "60/60 (100%) · 10/s · took 0:06" in html, html


def test_a_card_shows_a_redrawn_line_once_as_a_terminal_would(kernel: Kernel,
                                                               tmp_path: Path) -> None:
    # before: each carriage-return redraw of a progress bar was a line of its own in the
    # card's log tail: eleven bar lines, and the real last lines pushed out of the tail
    script = tmp_path / "bar.py"
    script.write_text("import sys, time\nprint('start', flush=True)\n"
                      "for i in range(1, 31):\n"
                      "    sys.stdout.write(f'\\r{i:3d}% bar'); sys.stdout.flush()\n"
                      "    time.sleep(0.01)\n"
                      "print('\\ndone', flush=True)\n")
    kernel.execute(f"proc = %run_subprocess --background {sys.executable} {script}\n")
    kernel.execute("proc.wait(60)\nfrom jupyter_tasks import TaskCard\n"
                   "card = TaskCard(proc.id)\ncard")
    html = kernel.wait_for(lambda: "done" in _html(kernel) and _html(kernel),
                           what="the card's log")
    assert "start\n 30% bar\ndone" in html, html
    assert " 29% bar" not in html and "  1% bar" not in html, html


def test_a_card_shows_no_time_left_toward_a_total_below_zero(kernel: Kernel) -> None:
    # before: "ETA 0:00" beside the rate, for a total of -4 (no total to reach)
    kernel.execute("%%background --name h\nfrom jupyter_tasks import progress\nimport time\n"
                   "for i in range(1, 6000):\n    progress(i, -4, 'climbing')\n"
                   "    time.sleep(0.01)\n")
    def with_a_rate() -> str:
        html = _html(kernel)
        return html if re.search(r"\d/s\b", html) else ""

    html = kernel.wait_for(with_a_rate, what="the card's rate")
    assert "climbing" in html and "ETA" not in html, html
    kernel.execute("h.cancel()")
