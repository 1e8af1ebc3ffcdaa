"""Issue 13 in a real kernel: cards that tell the truth, tracebacks as users expect them.

The label the user gave, the result's repr, a calm "cancelled", cards that fit their width,
no stray ``proc_N`` echo, and tracebacks that start at the user's code with the cell's real
``In[n]`` (every frame still kept in ``traceback_full``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from tests.waiting import eventually_sync

from .conftest import read_store, task_of, with_manager
from .harness import Kernel

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _rendered(html: str) -> str:
    """Text as a browser lays it out: a ``<div>`` starts a line, inline tags glue text."""
    html = re.sub(r"<div[^>]*>", "\n", html)
    return re.sub(r"<[^>]+>", "", html).replace("&#x27;", "'")


def _widgets(kernel: Kernel, model: str) -> list[str]:
    kernel.pump(0.05)
    return [c for c, name in kernel.comm_models().items() if name == model]


def _html_of(kernel: Kernel) -> list[str]:
    return [str(kernel.widget_state(c).get("value", "")) for c in _widgets(kernel, "HTMLModel")]


def _card_html(kernel: Kernel, task_id: str) -> str:
    """The header and body of the (one) card showing ``task_id``: the HTML widgets whose
    header names the id, and the widget after it."""
    states = _html_of(kernel)
    for i, value in enumerate(states):
        if task_id[-10:] in value:
            return "\n".join(states[i:i + 2])
    return ""


def _layout(kernel: Kernel, comm_id: str) -> dict[str, Any]:
    ref = kernel.widget_state(comm_id).get("layout", "")
    return kernel.widget_state(ref.removeprefix("IPY_MODEL_")) if ref else {}


def _latest(db_path: Path, kind: str) -> Any:
    return read_store(db_path, lambda s: s.list_tasks(kind=kind, limit=1))[0]


def test_card_shows_the_given_label_the_result_and_a_spaced_short_id(
        kernel: Kernel, db_path: Path) -> None:
    kernel.execute("%%background --name job\nimport math\n{'loss': 0.25, 'pi': round(math.pi, 2)}")
    task_id = kernel.value("job.id")
    assert task_of(db_path, task_id).label == "job"  # was "import math"
    assert kernel.value("job.result(30)") == {"loss": 0.25, "pi": 3.14}

    def card() -> str:
        return _card_html(kernel, task_id)

    eventually_sync(lambda: "succeeded" in card() and "result" in card(), what="result shown")
    text = _rendered(card())
    assert "job" in text and "{'loss': 0.25, 'pi': 3.14}" in text
    # the short id is the views' (last 10 characters), followed by a line break, not glued
    # to the next word ("92e6612eelapsed")
    assert task_id[-10:] in text
    assert not re.search(re.escape(task_id[-10:]) + r"[a-z]", text)

    kernel.execute("%%background --label 'two words' --name other\n1 + 1")
    assert task_of(db_path, kernel.value("other.id")).label == "two words"


def test_a_cancelled_card_is_calm_not_an_error(kernel: Kernel, db_path: Path) -> None:
    kernel.execute("%%background --name slow\nimport time\nwhile True:\n    time.sleep(0.02)")
    task_id = kernel.value("slow.id")
    kernel.execute("slow.cancel()")
    eventually_sync(lambda: task_of(db_path, task_id).status == "cancelled", what="cancelled")
    eventually_sync(lambda: "cancelled" in _card_html(kernel, task_id), what="card cancelled")
    html = _card_html(kernel, task_id)
    assert "TaskCancelled" not in html and "#c62828" not in html  # no red error text
    # no stderr block (JupyterLab paints stderr pink) in the card's output
    kernel.pump(0.3)
    for comm_id in _widgets(kernel, "OutputModel"):
        outputs = kernel.widget_state(comm_id).get("outputs", ())
        assert not [o for o in outputs if o.get("name") == "stderr"], outputs


def test_cards_fit_their_width(kernel: Kernel) -> None:
    """No part of a card is 100% wide (plus margins: the box scrolled sideways), the card
    clips rather than scrolls, and a board's buttons never shrink ("Ca…")."""
    kernel.execute("%%background --name a\n1")
    kernel.execute("from jupyter_tasks import TaskBoard\nboard = TaskBoard()\nboard")
    kernel.execute("%%background --name b\n2")  # a card added to the board live
    # cards a and b, and the board's compact cards of both: two buttons each
    eventually_sync(lambda: len(_widgets(kernel, "ButtonModel")) >= 8, what="cards drawn")
    models = kernel.comm_models()
    for comm_id, name in models.items():
        if name in ("HTMLModel", "OutputModel", "ButtonModel", "HBoxModel", "VBoxModel"):
            assert _layout(kernel, comm_id).get("width") != "100%", name
    cards = [c for c, name in models.items() if name == "VBoxModel"
             and "jupyter-tasks-card" in kernel.widget_state(c).get("_dom_classes", ())]
    assert len(cards) >= 3
    for card in cards:
        assert _layout(kernel, card).get("overflow") == "hidden"
    for button in _widgets(kernel, "ButtonModel"):
        assert _layout(kernel, button).get("flex") == "0 0 auto"


def test_assigned_run_subprocess_names_no_proc_variable(kernel: Kernel, db_path: Path) -> None:
    outputs = kernel.execute("job = %run_subprocess --background echo 'hello world'")
    text = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
    assert "proc_" not in text
    task = _latest(db_path, "subprocess")
    assert kernel.value("job.id") == task.id
    assert kernel.value("'proc_1' in globals()") is False
    assert task.label == "echo hello world"  # as typed, no shell quoting
    # without an assignment the handle still gets a fresh name
    outputs = kernel.execute(f"%run_subprocess --background {sys.executable} -c pass")
    assert "proc_1 = TaskHandle" in "".join(m["content"].get("text", "") for m in outputs
                                          if m["msg_type"] == "stream")


CELL = "%%background --label boom\ndef inner():\n    raise ValueError('bad value')\ninner()\n"


def test_a_failing_cell_traceback_starts_at_the_cell_with_its_real_number(
        kernel: Kernel, db_path: Path) -> None:
    kernel.execute("x = 1")
    kernel.execute("y = 2")
    msg_id = kernel.submit(CELL)
    kernel.wait_for(lambda: kernel.idle(msg_id), 60, "the cell")
    # the In[n] the notebook shows for it (before, the names were one past it: IPython 9
    # counts execution_count up before a cell runs)
    (number,) = [m["content"]["execution_count"] for m in kernel.messages
                 if m["msg_type"] == "execute_input"
                 and m["parent_header"].get("msg_id") == msg_id]
    task = _latest(db_path, "cell")
    eventually_sync(lambda: task_of(db_path, task.id).status == "failed", what="failure")
    error = task_of(db_path, task.id).error
    tb = error["traceback"]
    # what the panel, the dashboard and a remote card show by default
    assert tb.startswith("Traceback (most recent call last):")
    assert f"Cell In[{number}], line 4, in <module>" in tb
    assert f"Cell In[{number}], line 3, in inner" in tb
    assert tb.rstrip().endswith("ValueError: bad value")
    for engine in ("_attempt", "run_in_thread", "run_source", "jupyter_tasks/", "ipykernel_"):
        assert engine not in tb, engine
    assert "_attempt" in error["traceback_full"] and f"Cell In[{number}]" in error["traceback_full"]

    # the card (its Output widget: IPython's own traceback) names the same cell
    def card_traceback() -> str:
        kernel.pump(0.05)
        for comm_id in _widgets(kernel, "OutputModel"):
            for out in kernel.widget_state(comm_id).get("outputs", ()):
                if out.get("output_type") == "error":
                    return ANSI.sub("", "\n".join(out["traceback"]))
        return ""

    text = eventually_sync(card_traceback, what="traceback in the card")
    assert f"Cell In[{number}], line 4" in text and f"Cell In[{number}], line 3" in text
    assert "Cell In[0]" not in text and "cells.py" not in text


def test_registered_and_subprocess_tasks_keep_only_user_frames(db_path: Path,
                                                              tmp_path: Path) -> None:
    module = tmp_path / "user_tasks.py"
    module.write_text("def fails(n):\n    return helper(n)\n\n"
                      "def helper(n):\n    raise KeyError(n)\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import user_tasks  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))

    async def run(manager: Any) -> tuple[Any, Any]:
        manager.registry.register("fails", user_tasks.fails, replace=True)
        task = await manager.submit("fails", n=3, mode="background")
        proc = await manager.submit_spec({"command": [sys.executable, "-c", "raise SystemExit(3)"]},
                                         mode="background")
        return await manager.wait(task.id), await manager.wait(proc.id)

    task, proc = with_manager(db_path, run)
    tb = task.error["traceback"]
    assert 'user_tasks.py", line 2, in fails' in tb and 'line 5, in helper' in tb
    assert "_attempt" not in tb and "jupyter_tasks/" not in tb and "concurrent" not in tb
    assert "_attempt" in task.error["traceback_full"]
    # a command that exits non-zero ran no user Python here: its message only (before,
    # the card also offered a "full traceback" of the engine's frames)
    assert proc.error["traceback"] is None and proc.error.get("traceback_full") is None
    assert proc.error["message"].endswith("exited with code 3"), proc.error


def test_output_past_the_cap_keeps_whole_lines() -> None:
    # before: the cut landed mid-line, and "…(earlier output dropped)…" was followed by
    # the end of a line that read as a line of its own
    from jupyter_tasks.kernel.capture import STREAM_CAP, OutputSink

    sink = OutputSink("t")
    lines = [f"line {i:07d}\n" for i in range(3 * STREAM_CAP // 13)]
    for line in lines:
        sink.stream("stdout", line)
    text = sink.snapshot()[-1]["text"]
    head, _, kept = text.partition("\n")
    assert head == "…(earlier output dropped)…"
    written = set(lines)
    assert all(line + "\n" in written for line in kept.splitlines()), kept[:80]
    assert kept.endswith(lines[-1])


def test_a_question_ends_with_its_task(kernel: Kernel, db_path: Path) -> None:
    # before: a cancelled (or interrupted) task's handle still said its question was
    # pending, and answer() then refused: "not waiting for a confirmation"
    kernel.execute("%%background --name q --no-card\nimport jupyter_tasks\n"
                   "await jupyter_tasks.request_confirmation('Delete the old runs?', "
                   "['yes', 'no'])\n")
    eventually_sync(lambda: kernel.value("q.question is not None"), timeout=60,
                    what="the question asked")
    assert kernel.value("q.question") == {"prompt": "Delete the old runs?",
                                          "choices": ["yes", "no"]}
    kernel.execute("q.cancel()")
    eventually_sync(lambda: kernel.value("q.status") == "cancelled", timeout=60,
                    what="cancelled")
    assert kernel.value("q.question is None") is True


def test_after_stop_manager_a_handle_says_what_brings_it_back(kernel: Kernel) -> None:
    # before: it said "jupyter_tasks.start_manager()", after which the magics still asked
    # for %reload_ext; %load_ext, the notebook advice, does nothing once loaded
    kernel.execute("%%background --name d --no-card\n'D'\n")
    eventually_sync(lambda: kernel.value("d.status") == "succeeded", timeout=60,
                    what="the cell's end")
    kernel.execute("import jupyter_tasks; jupyter_tasks.stop_manager()")
    outputs = kernel.execute("d.status", allow_error=True)
    error = next(m["content"] for m in outputs if m["msg_type"] == "error")
    assert error["ename"] == "ManagerNotRunning"
    assert "%reload_ext jupyter_tasks" in error["evalue"], error["evalue"]
    kernel.execute("%reload_ext jupyter_tasks")
    assert kernel.value("d.status") == "succeeded"
