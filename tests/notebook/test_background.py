"""``%%background`` cells in a real kernel: return at once, output in their own card, cancel,
rerun from another process, and a killed kernel's tasks end ``interrupted``."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.processes import ended, reaped
from tests.waiting import eventually_sync

from .conftest import logs_of, read_store, task_of, with_manager
from .harness import Kernel


def _task_id(kernel: Kernel, name: str) -> str:
    return kernel.value(f"{name}.id")


def _texts(outputs: list[dict]) -> str:
    return "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")


def test_background_cell_returns_at_once_and_prints_into_its_card(
        kernel: Kernel, db_path: Path, tmp_path: Path) -> None:
    flag = tmp_path / "go"
    cell = (
        "%%background --name h --label busy-cell\n"
        "import os, time\n"
        "i = 0\n"
        f"while not os.path.exists({str(flag)!r}):\n"
        "    print('step', i)\n"
        "    i += 1\n"
        "    time.sleep(0.05)\n"
        "print('final line')\n"
        "'finished after %d steps' % i\n"
    )
    bg_outputs = kernel.execute(cell, timeout=20)
    task_id = _task_id(kernel, "h")
    # the cell came back while the work is still going (it waits for the flag)
    assert task_of(db_path, task_id).status == "running"
    assert kernel.value("h.status") == "running"
    # the next cell runs while the background one is busy printing
    next_outputs = kernel.execute("print('next cell')")
    eventually_sync(lambda: "step" in logs_of(db_path, task_id), what="background prints")
    assert task_of(db_path, task_id).status == "running"
    flag.touch()
    eventually_sync(lambda: task_of(db_path, task_id).status == "succeeded", what="success")
    task = task_of(db_path, task_id)
    assert task.result.startswith("finished after")
    assert task.origin["type"] == "kernel" and task.origin["kernel_id"]
    assert task.kind == "cell" and task.label == "busy-cell"
    assert kernel.value("h.result(10)").startswith("finished after")
    logs = logs_of(db_path, task_id)
    assert "step 0" in logs and "final line" in logs
    # nothing of it in the next cell, nor in the submitting cell's own output
    assert _texts(next_outputs) == "next cell\n"
    assert "step" not in _texts(bg_outputs)
    later = kernel.execute("print('later cell')")
    assert _texts(later) == "later cell\n"
    # ... but all of it in the card's Output widget (its synced widget state)
    outputs_widgets = [c for c, name in kernel.comm_models().items() if name == "OutputModel"]
    assert outputs_widgets

    def card_text() -> str:
        kernel.pump(0.05)
        state = kernel.widget_state(outputs_widgets[0])
        return "".join(o.get("text", "") for o in state.get("outputs", ()))

    eventually_sync(lambda: "final line" in card_text(), what="final output in the card")
    assert "step 0" in card_text()


def card_output_reader(kernel: Kernel, first: bool) -> Callable[[], list[Any]]:
    """A reader of the outputs of the kernel's first (or newest) card's Output widget."""
    widgets = [c for c, name in kernel.comm_models().items() if name == "OutputModel"]
    widget = widgets[0] if first else widgets[-1]

    def outputs() -> list[Any]:
        kernel.pump(0.05)
        return list(kernel.widget_state(widget).get("outputs", ()))

    return outputs


def test_errors_and_rich_displays_go_to_the_card(kernel: Kernel, db_path: Path) -> None:
    kernel.execute(
        "%%background --name h\n"
        "from IPython.display import display, HTML\n"
        "display(HTML('<b>rich</b>'))\n"
        "1 / 0\n"
    )
    task_id = _task_id(kernel, "h")
    eventually_sync(lambda: task_of(db_path, task_id).status == "failed", what="failure")
    task = task_of(db_path, task_id)
    assert task.error["type"] == "ZeroDivisionError"
    card_outputs = card_output_reader(kernel, first=True)
    eventually_sync(lambda: any(o.get("output_type") == "error" for o in card_outputs()),
                    what="traceback in the card")
    kinds = [o["output_type"] for o in card_outputs()]
    assert kinds == ["display_data", "error"]
    assert card_outputs()[0]["data"]["text/html"] == "<b>rich</b>"
    later = kernel.execute("print('ok')")
    assert [m["msg_type"] for m in later] == ["stream"]


def test_sys_exit_in_a_background_cell_fails_that_task_and_the_kernel_lives_on(
        kernel: Kernel, db_path: Path) -> None:
    pid = kernel.value("__import__('os').getpid()")
    kernel.execute("%%background --name h\nimport sys\nsys.exit(2)\n")
    task_id = _task_id(kernel, "h")
    eventually_sync(lambda: task_of(db_path, task_id).status == "failed", what="failure")
    assert task_of(db_path, task_id).error["type"] == "SystemExit"
    # the same kernel process, its variables, its next cell
    assert kernel.value("__import__('os').getpid()") == pid
    assert kernel.value("h.status") == "failed"
    assert [m["msg_type"] for m in kernel.execute("print('ok')")] == ["stream"]


@pytest.mark.parametrize(("code", "error_type"), [
    ("next(iter([]))", "StopIteration"), ("raise GeneratorExit('bye')", "GeneratorExit")])
def test_a_background_cell_raising_what_asyncio_cannot_carry_fails_and_ends(
        kernel: Kernel, db_path: Path, code: str, error_type: str) -> None:
    # before: the task stayed running (a StopIteration until cancelled, a
    # GeneratorExit for good: even its cancel was lost) and its waiters hung
    kernel.execute(f"%%background --name h\n{code}\n")
    task_id = _task_id(kernel, "h")
    eventually_sync(lambda: task_of(db_path, task_id).status == "failed", timeout=30,
                    what="the task failed")
    assert task_of(db_path, task_id).error["type"] == error_type
    assert kernel.value("h.wait(30).status") == "failed"


def test_a_logging_handler_made_before_the_extension_writes_into_the_card_and_log(
        db_path: Path, tmp_path: Path) -> None:
    # logging.basicConfig(stream=sys.stdout) keeps the kernel's own stream, from before
    # %load_ext wrapped sys.stdout: before, a background cell's log lines went to the
    # cell that had submitted it, and neither into its card nor into the task's log
    k = Kernel(db_path, cwd=str(tmp_path))
    try:
        k.execute("import logging, sys\nlogging.basicConfig(level=logging.INFO, "
                  "stream=sys.stdout, format='%(message)s', force=True)")
        k.execute("%load_ext jupyter_tasks")
        submitted = k.execute("%%background --name h\nlogging.getLogger('mine').info("
                              "'logged in the background')\n")
        task_id = _task_id(k, "h")
        assert k.value("h.wait(30).status") == "succeeded"
        assert "logged in the background" in logs_of(db_path, task_id)
        assert "logged in the background" not in _texts(submitted)
        # and outside a task, the handler writes into the running cell as before
        assert "in the foreground" in _texts(k.execute(
            "logging.getLogger('mine').info('in the foreground')"))
        k.execute("%unload_ext jupyter_tasks")
        assert "after unloading" in _texts(k.execute(
            "logging.getLogger('mine').info('after unloading')"))
    finally:
        k.shutdown()


def test_a_pool_a_background_cell_started_prints_later_foreground_work_in_its_cell(
        kernel: Kernel, db_path: Path) -> None:
    # a pool's threads outlive the work that started them: before, once a background
    # cell had started them, a later foreground cell's work printed into that ended
    # task's card and log, and nothing showed in the cell that ran it
    kernel.execute("from concurrent.futures import ThreadPoolExecutor\n"
                   "pool = ThreadPoolExecutor(2)")
    kernel.execute("%%background --name h\n"
                   "list(pool.map(lambda i: print('background item', i), range(2)))\n")
    assert kernel.value("h.wait(30).status") == "succeeded"
    foreground = kernel.execute("list(pool.map(lambda i: print('foreground item', i), "
                                "range(4)));")
    assert _texts(foreground).count("foreground item") == 4, foreground
    logs = logs_of(db_path, _task_id(kernel, "h"))
    assert "background item" in logs and "foreground item" not in logs, logs
    # and work a background cell submits to a pool the foreground started is its own
    kernel.execute("%%background --name g\n"
                   "list(pool.map(lambda i: print('second background', i), range(2)))\n")
    assert kernel.value("g.wait(30).status") == "succeeded"
    assert "second background" in logs_of(db_path, _task_id(kernel, "g"))


def test_cancel_from_another_process_stops_a_pure_python_loop(
        kernel: Kernel, db_path: Path) -> None:
    kernel.execute("%%background --name h\nx = 0\nwhile True:\n    x += 1\n")
    task_id = _task_id(kernel, "h")
    eventually_sync(lambda: kernel.value("x") > 0, what="loop running")
    with_manager(db_path, lambda m: m.cancel(task_id))
    # the loop never ends on its own: reaching "cancelled" is the proof (a generous deadline)
    eventually_sync(lambda: task_of(db_path, task_id).status == "cancelled", timeout=60,
                    interval=0.01, what="cancelled")
    # the loop really stopped: x no longer moves
    first = kernel.value("x")
    assert kernel.value("x") == first
    assert kernel.value("h.status") == "cancelled"


def test_cancel_from_the_handle_and_timeout(kernel: Kernel, db_path: Path) -> None:
    kernel.execute("%%background --name h --no-card\ny = 0\nwhile True:\n    y += 1\n")
    eventually_sync(lambda: kernel.value("y") > 0, what="loop running")
    kernel.execute("h.cancel()")
    assert kernel.value("h.wait(30).status") == "cancelled"
    kernel.execute("%%background --name t --timeout 0.5 --no-card\nwhile True:\n    pass\n")
    assert kernel.value("t.wait(30).status") == "timeout"


def test_cancel_stops_the_program_a_background_cell_waits_on(
        kernel: Kernel, db_path: Path, tmp_path: Path) -> None:
    # before: the cell's thread sat in subprocess.run's waitpid, where the cancel cannot
    # land; the task said cancelled and the program (here ten minutes) ran on
    pid_file = tmp_path / "program.pid"
    kernel.execute("%%background --name h\nimport subprocess\n"
                   f"subprocess.run(['bash', '-c', 'echo $$ > {pid_file}; exec sleep 600'])\n"
                   "print('after the program')\n")
    eventually_sync(lambda: pid_file.exists() and pid_file.read_text().strip() != "",
                    timeout=30, what="the program started")
    program = int(pid_file.read_text())
    kernel.execute("h.cancel()")
    assert kernel.value("h.wait(30).status") == "cancelled"

    # reaped by the cell's own subprocess.run: no zombie left to see either
    eventually_sync(lambda: reaped(program), timeout=30, what="the program ended with its cell")
    assert "after the program" not in logs_of(db_path, _task_id(kernel, "h"))


def test_cancel_stops_a_cell_awaiting_on_its_own_event_loop(
        kernel: Kernel, tmp_path: Path) -> None:
    # before: the cell's thread sat in its loop's select, where the cancel cannot land:
    # the task said cancelled, and the thread (with an asyncio program it awaited) went
    # on for ten minutes
    pid_file = tmp_path / "program.pid"
    kernel.execute("%%background --name h\nimport asyncio\n"
                   "p = await asyncio.create_subprocess_exec('bash', '-c', "
                   f"'echo $$ > {pid_file}; exec sleep 600')\n"
                   "await p.wait()\nprint('after the program')\n")
    kernel.execute("%%background --name s\nimport asyncio\nawait asyncio.sleep(600)\n")
    eventually_sync(lambda: pid_file.exists() and pid_file.read_text().strip() != "",
                    timeout=30, what="the program started")
    program = int(pid_file.read_text())
    kernel.execute("h.cancel()\ns.cancel()")
    assert kernel.value("(h.wait(30).status, s.wait(30).status)") == ("cancelled", "cancelled")

    eventually_sync(lambda: reaped(program), timeout=30,
                    what="the awaited program ended with its cell")
    threads = "[t.name for t in __import__('threading').enumerate() " \
              "if t.name == 'jupyter-tasks:_run_in_thread']"
    eventually_sync(lambda: kernel.value(threads) == [], timeout=30,
                    what="both cells' threads ended")


def test_rerun_from_another_process_runs_the_cell_again_in_its_kernel(
        kernel: Kernel, db_path: Path) -> None:
    kernel.execute("counter = 0")
    kernel.execute("%%background --name h\ncounter += 1\ncounter * 10\n")
    task_id = _task_id(kernel, "h")
    eventually_sync(lambda: task_of(db_path, task_id).status == "succeeded", what="first run")
    new = with_manager(db_path, lambda m: m.rerun(task_id))
    assert new.parent_id == task_id and new.relationship == "rerun"
    eventually_sync(lambda: task_of(db_path, new.id).status == "succeeded", what="rerun")
    assert task_of(db_path, new.id).result == 20
    assert kernel.value("counter") == 2


def test_what_a_cells_thread_prints_after_the_cell_ended_reaches_its_log_and_card(
        kernel: Kernel, db_path: Path) -> None:
    # before: the lines sat in the card's in-memory output, which had stopped refreshing,
    # and never reached the task's log (its context was gone)
    kernel.execute("import threading\ngo = threading.Event()\ndone = threading.Event()")
    kernel.execute("%%background --name th\n"
                   "def later():\n"
                   "    go.wait(60)\n"
                   "    for i in range(3):\n"
                   "        print('thread line', i)\n"
                   "    done.set()\n"
                   "threading.Thread(target=later).start()\n"
                   "print('cell body done')\n")
    task_id = _task_id(kernel, "th")
    eventually_sync(lambda: task_of(db_path, task_id).status == "succeeded", what="the end")
    kernel.execute("go.set(); done.wait(30)")
    eventually_sync(lambda: "thread line 2" in logs_of(db_path, task_id),
                    what="the thread's lines in the task's log")
    assert logs_of(db_path, task_id).index("cell body done") < \
        logs_of(db_path, task_id).index("thread line 0")
    kernel.wait_for(lambda: "thread line 2" in str(kernel.value(
        "[o.get('text') for c in __import__('jupyter_tasks.kernel.cards', fromlist=['x'])"
        ".get_hub().cards[th.id] for o in c._output.outputs]")), what="the lines in the card")


def test_what_a_forked_child_of_a_background_cell_prints_is_not_lost(
        kernel: Kernel, db_path: Path) -> None:
    # before: a fork child's copy of the cell's output routing kept its lines in the
    # child's memory: in no card, no log and no cell (a plain cell shows them)
    kernel.execute("%%background --name mp\n"
                   "import multiprocessing\n"
                   "def work(i):\n"
                   "    print('child line', i, flush=True)\n"
                   "    return i * i\n"
                   "with multiprocessing.get_context('fork').Pool(2) as pool:\n"
                   "    squares = pool.map(work, range(3))\n"
                   "print('parent line', squares)\n")
    task_id = _task_id(kernel, "mp")
    eventually_sync(lambda: task_of(db_path, task_id).status == "succeeded", what="the end")
    assert "parent line [0, 1, 4]" in logs_of(db_path, task_id)

    def printed() -> str:
        kernel.pump()
        return "".join(m["content"].get("text", "") for m in kernel.messages
                       if m["msg_type"] == "stream")

    # the children's lines reach the notebook, as a plain cell's children's do (the
    # kernel sends a print's pieces one by one: two children's interleave)
    kernel.wait_for(lambda: printed().count("child line") >= 3,
                    what="the children's lines in the notebook")


def test_a_rerun_for_a_killed_kernel_is_refused_and_one_waiting_for_it_ends(
        kernel: Kernel, db_path: Path) -> None:
    # before: the liveness check read the kernel's worker row, which a kill -9 leaves
    # unmarked until a reaper runs: the rerun was accepted and sat queued for good
    # (no reaper settles a task that never started), and h.wait() never returned
    import pytest

    from jupyter_tasks.exceptions import NotRerunnable
    from jupyter_tasks.liveness import pid_alive

    kernel.execute("%%background --name h --no-card\n21 * 2\n")
    task_id = _task_id(kernel, "h")
    eventually_sync(lambda: task_of(db_path, task_id).status == "succeeded", what="first run")
    # a rerun taken while the kernel lives, which it dies before starting (held back by
    # SIGSTOP here; a busy kernel's queued rerun waits the same way)
    os.kill(kernel.pid, signal.SIGSTOP)
    try:
        late = with_manager(db_path, lambda m: m.rerun(task_id))
    finally:
        os.kill(kernel.pid, signal.SIGKILL)
    eventually_sync(lambda: not pid_alive(kernel.pid, None), what="the kernel gone")
    # asked as the CLI asks (no reaper of its own has marked the kernel's row stopped)
    with pytest.raises(NotRerunnable, match=r"kernel that ran cell task .* is gone"):
        with_manager(db_path, lambda m: m.rerun(task_id), runs_background=False,
                     as_worker=False)
    # the reaper of another process ends what waited for that kernel, saying why
    with_manager(db_path, lambda m: m.reap_dead_workers())
    ended = task_of(db_path, late.id)
    assert ended.status == "interrupted", ended
    assert "stopped before it ran this" in ended.error["message"], ended.error


def test_rerun_of_a_kernels_background_command_from_another_process_runs_in_that_kernel(
        kernel: Kernel, db_path: Path, tmp_path: Path) -> None:
    # before: the rerun became a job (this process runs no background work), which no
    # kernel takes and no worker served: "started" in the dashboard, queued forever
    marker = tmp_path / "runs"
    kernel.execute(f"proc = %run_subprocess --background {sys.executable} -c "
                   f"\"open({str(marker)!r}, 'a').write('run\\\\n')\"")
    task_id = kernel.value("proc.id")
    eventually_sync(lambda: task_of(db_path, task_id).status == "succeeded", what="first run")
    for fn in (lambda m: m.rerun(task_id),
               lambda m: m.fork(task_id, {"label": "forked from afar"})):
        new = with_manager(db_path, fn, runs_background=False, as_worker=False)
        assert new.mode == "background" and new.worker_id == task_of(db_path, task_id).worker_id
        eventually_sync(lambda new=new: task_of(db_path, new.id).status == "succeeded",
                        what=f"the {new.relationship} run by the kernel")
    assert marker.read_text() == "run\n" * 3


def test_rerun_button_of_the_card_reruns_the_cell_and_the_card_follows(
        kernel: Kernel, db_path: Path) -> None:
    kernel.execute("runs = []")
    kernel.execute("%%background --name h\nruns.append(len(runs))\nprint('run', len(runs))\n")
    task_id = _task_id(kernel, "h")
    eventually_sync(lambda: task_of(db_path, task_id).status == "succeeded", what="first run")
    rerun = kernel.wait_for(lambda: kernel.button("Rerun"), what="rerun button")
    kernel.wait_for(lambda: kernel.widget_state(rerun).get("disabled") is False,
                    what="rerun enabled once finished")
    kernel.click(rerun)
    kernel.wait_for(lambda: kernel.value("runs") == [0, 1], what="cell ran again")
    children = with_manager(db_path, lambda m: m.store.list_tasks(parent_id=task_id))
    assert [t.relationship for t in children] == ["rerun"]
    eventually_sync(lambda: task_of(db_path, children[0].id).status == "succeeded",
                    what="rerun succeeded")
    out = next(c for c, name in kernel.comm_models().items() if name == "OutputModel")
    kernel.wait_for(lambda: "run 2" in "".join(
        o.get("text", "") for o in kernel.widget_state(out).get("outputs", ())),
        what="the card shows the rerun's output")


def test_task_key_returns_the_running_task(kernel: Kernel) -> None:
    # a runs a minute (cancelled below): a 3 s run could end before b's submit under load
    kernel.execute("%%background --name a --key k1 --no-card\nimport time\n"
                   "for _ in range(600):\n    time.sleep(0.1)\n")
    kernel.execute("%%background --name b --key k1 --no-card\n'never'\n")
    assert kernel.value("a.id == b.id") is True
    kernel.execute("a.cancel()")


def test_a_cell_stopped_with_its_kernels_manager_notes_why_not_cancelled(
        kernel: Kernel, db_path: Path) -> None:
    # before: the task ended `interrupted`, and its log ended "cancelled" on stdout, as
    # if the cell had printed it, or the user had cancelled it
    kernel.execute("%%background --name h --no-card\nimport time\n"
                   "while True:\n    print('tick')\n    time.sleep(0.05)\n")
    task_id = _task_id(kernel, "h")
    eventually_sync(lambda: "tick" in logs_of(db_path, task_id), what="the cell printing")
    kernel.execute("import jupyter_tasks\njupyter_tasks.stop_manager()")
    ended = task_of(db_path, task_id)
    assert ended.status == "interrupted", ended
    entries = read_store(db_path, lambda s: s.get_logs(task_id, 0, 100_000))
    last = entries[-1]
    assert "cancelled" not in last.text and "interrupted" in last.text, last
    assert last.stream != "stdout", last


def test_a_cell_that_timed_out_notes_its_timeout_not_a_cancel(kernel: Kernel,
                                                              db_path: Path) -> None:
    # review: a timeout asks the cancel too, so the note said "cancelled"
    kernel.execute("%%background --name h --no-card --timeout 1\nimport time\n"
                   "while True:\n    time.sleep(0.05)\n")
    task_id = _task_id(kernel, "h")
    eventually_sync(lambda: task_of(db_path, task_id).status == "timeout", timeout=60,
                    what="the timeout")
    eventually_sync(lambda: logs_of(db_path, task_id), what="the note")
    assert logs_of(db_path, task_id).strip().splitlines()[-1].startswith("timed out"), \
        logs_of(db_path, task_id)


def test_killed_kernel_leaves_its_background_tasks_interrupted(
        db_path: Path, tmp_path: Path) -> None:
    k = Kernel(db_path, cwd=str(tmp_path))
    try:
        k.execute("%load_ext jupyter_tasks")
        k.execute("%%background --name h --no-card\n"
                  "import time\nwhile True:\n    time.sleep(0.05)\n")
        task_id = k.value("h.id")
        assert task_of(db_path, task_id).status == "running"
        os.kill(k.pid, signal.SIGKILL)
        eventually_sync(lambda: ended(k.pid), what="kernel gone")
    finally:
        k.shutdown()

    async def reaped(manager):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            await manager.reap_dead_workers()
            task = await manager.get(task_id)
            if task.status != "running":
                return task
            await asyncio.sleep(0.05)
        return await manager.get(task_id)

    task = with_manager(db_path, reaped)
    assert task.status == "interrupted"


def test_a_card_keeps_both_streams_and_an_error_whose_str_fails(
        kernel: Kernel, db_path: Path) -> None:
    # before: stdout, stderr, stdout showed ['', '', 'line3'] in the card (a stream's pending
    # text was dropped when the other stream began), and an exception whose __str__ raised
    # was recorded as that RuntimeError, with no error in the card
    kernel.execute(
        "%%background --name both\n"
        "import sys\n"
        "print('line1 to stdout'); sys.stderr.write('to stderr\\n'); print('line3 to stdout')\n"
        "class Unprintable(Exception):\n"
        "    def __str__(self):\n"
        "        raise RuntimeError('nostr')\n"
        "raise Unprintable()\n"
    )
    task_id = _task_id(kernel, "both")
    eventually_sync(lambda: task_of(db_path, task_id).status == "failed", what="failure")
    assert task_of(db_path, task_id).error["type"] == "Unprintable"
    card_outputs = card_output_reader(kernel, first=False)
    eventually_sync(lambda: any(o.get("output_type") == "error" for o in card_outputs()),
                    what="the error in the card")
    outputs = card_outputs()
    assert [(o.get("name"), o.get("text")) for o in outputs[:3]] == [
        ("stdout", "line1 to stdout\n"), ("stderr", "to stderr\n"),
        ("stdout", "line3 to stdout\n")]
    assert outputs[3]["ename"] == "Unprintable"
    assert outputs[3]["evalue"] == "<exception str() failed>"


def test_a_syntax_error_in_a_background_cell_names_the_cell_not_a_temp_file(
        kernel: Kernel, db_path: Path) -> None:
    # before: the stored message read "invalid syntax (3894580861.py, line 2)"
    kernel.execute("%%background --name bad --no-card\nx = 1\nx = = 2\n", allow_error=True)
    task_id = _task_id(kernel, "bad")
    eventually_sync(lambda: task_of(db_path, task_id).status == "failed", what="the failure")
    message = task_of(db_path, task_id).error["message"]
    assert message.startswith("invalid syntax (Cell In[") and ", line 3)" in message, message
    assert ".py" not in message, message


def test_a_compile_time_syntax_error_names_the_cell_too(kernel: Kernel, db_path: Path) -> None:
    # ``return`` outside a function parses, and fails only when the cell is compiled:
    # before, the stored message read "'return' outside function (704488813.py, line 3)"
    kernel.execute("%%background --name bad --no-card\nx = 1\nreturn x\n", allow_error=True)
    task_id = _task_id(kernel, "bad")
    eventually_sync(lambda: task_of(db_path, task_id).status == "failed", what="the failure")
    message = task_of(db_path, task_id).error["message"]
    assert message.startswith("'return' outside function (Cell In[") \
        and ", line 3)" in message, message
    assert ".py" not in message, message

# held on the kernel manager's loop (no await) until the cell's thread has returned, then
# the cancel is sent: it reaches the attempt before its coroutine takes the value
HOLD_THEN_CANCEL = '''
import time as _time
from jupyter_tasks.kernel import kernel_side as _kernel_side
_m = _kernel_side().manager
_running = _m.state.running[done.id]
def _race():
    open(_gate, "w").close()
    until = _time.monotonic() + 30
    while not _running.thread.finished and _time.monotonic() < until:
        _time.sleep(0.001)
    _m.execution.stop_by_id(done.id, "cancel")
_m.loop.call_soon_threadsafe(_race)
'''


def test_a_cell_that_returned_just_as_a_cancel_came_keeps_its_value(
        kernel: Kernel, tmp_path: Path) -> None:
    # as a function job does: the cell's work ran to its end before the cancel reached
    # it, so it ends succeeded with its value (was: cancelled, the value lost)
    gate = tmp_path / "gate"
    kernel.execute(f"_gate = {str(gate)!r}")
    kernel.execute("%%background --name done --no-card\nimport os, time\n"
                   "while not os.path.exists(_gate):\n    time.sleep(0.005)\n'ran to its end'\n")
    eventually_sync(lambda: kernel.value(
        "done.id in __import__('jupyter_tasks.kernel', fromlist=['_'])"
        ".kernel_side().manager.state.running and bool(__import__('jupyter_tasks.kernel', "
        "fromlist=['_']).kernel_side().manager.state.running[done.id].thread.thread_id)"),
        what="the cell running in its thread")
    kernel.execute(HOLD_THEN_CANCEL)
    assert kernel.value("(lambda t: (t.status, t.result))(done.wait(30))") == \
        ("succeeded", "ran to its end")


STUCK_REPR = (
    "%%background --name stuck\n"
    "import time\n"
    "class Stuck:\n"
    "    def __repr__(self):\n"
    "        while True:\n"
    "            time.sleep(0.01)\n"
    "Stuck()\n")


def test_a_result_whose_repr_never_returns_holds_its_own_task_only(
        kernel: Kernel, db_path: Path) -> None:
    # before: the result's repr (to store it) ran on the kernel's task loop and never
    # came back: no other cell could start, no card or handle answered, nothing ended
    kernel.execute(STUCK_REPR, timeout=30)
    stuck = _task_id(kernel, "stuck")
    kernel.execute("%%background --name other --no-card\n6 * 7\n", timeout=30)
    assert kernel.value("other.result(20)", timeout=30) == 42
    # the repr is the cell's own code, still running: its Cancel stops it
    assert kernel.value("stuck.status", timeout=30) == "running"
    kernel.execute("stuck.cancel()", timeout=30)
    eventually_sync(lambda: task_of(db_path, stuck).status == "cancelled", what="cancelled")


def test_a_cells_result_is_shown_without_the_kernels_task_loop_calling_its_repr(
        kernel: Kernel, db_path: Path) -> None:
    # the card's result text and the stored result both come from the cell's thread
    kernel.execute(
        "import threading\n"
        "repr_threads = []\n"
        "class Watched:\n"
        "    def __repr__(self):\n"
        "        repr_threads.append(threading.current_thread().name)\n"
        "        return 'Watched()'\n")
    kernel.execute("%%background --name w\nWatched()\n")
    task_id = _task_id(kernel, "w")
    eventually_sync(lambda: task_of(db_path, task_id).status == "succeeded", what="success")
    assert task_of(db_path, task_id).result == "Watched()"

    def card_shows_result() -> bool:
        kernel.pump(0.05)
        return any("Watched()" in str(kernel.widget_state(c).get("value", ""))
                   for c, name in kernel.comm_models().items() if name == "HTMLModel")

    eventually_sync(card_shows_result, what="the result in the card")
    assert "jupyter-tasks-runtime" not in kernel.value("repr_threads")
    # the handle still gives the object itself
    assert kernel.value("type(w.result(10)).__name__") == "Watched"


def test_asyncio_tasks_a_background_cell_left_pending_are_cancelled_and_said(
        kernel: Kernel, db_path: Path) -> None:
    # before: the cell's own event loop was closed under them: their `finally` never ran,
    # and nothing said that the work they were doing was dropped
    kernel.execute(
        "%%background --name a --no-card\n"
        "import asyncio\n"
        "cleaned = []\n"
        "async def tick():\n"
        "    try:\n"
        "        await asyncio.sleep(3600)\n"
        "    finally:\n"
        "        cleaned.append('tick')\n"
        "asyncio.create_task(tick())\n"
        "await asyncio.sleep(0)\n"
        "'done'\n")
    assert kernel.value("a.result(30)", timeout=40) == "done"
    assert kernel.value("cleaned") == ["tick"]
    task_id = _task_id(kernel, "a")
    eventually_sync(lambda: "1 asyncio task the cell started was still pending"
                    in logs_of(db_path, task_id), what="the note in the log")


def test_input_in_a_background_cell_fails_at_once_saying_why(
        kernel: Kernel, db_path: Path, tmp_path: Path) -> None:
    # the cell has returned: its prompt went out under that ended cell (no frontend shows
    # it) while another cell ran, and the task waited for a reply for ever; with no cell
    # running, input() read the kernel's own stdin and failed "EOF when reading a line"
    flag = tmp_path / "ask"
    bg = kernel.client.execute(
        "%%background --name asks --no-card\n"
        "import os, time\n"
        f"while not os.path.exists({str(flag)!r}):\n"
        "    time.sleep(0.01)\n"
        "input('your name? ')\n", allow_stdin=True)
    kernel.wait_for(lambda: kernel.idle(bg), what="the background cell's return")
    # JupyterLab sends every cell with allow_stdin: a foreground cell runs meanwhile
    fg = kernel.client.execute(f"open({str(flag)!r}, 'w').close()\nasks.wait(20).status",
                               allow_stdin=True)
    kernel.wait_for(lambda: kernel.idle(fg), timeout=60, what="the foreground cell")
    task = task_of(db_path, _task_id(kernel, "asks"))
    assert task.status == "failed"
    assert task.error["type"] == "StdinNotImplementedError"
    assert "input() cannot ask in a %%background cell" in task.error["message"]
    # and between cells, getpass too
    kernel.execute("%%background --name pw --no-card\nimport getpass\ngetpass.getpass()\n")
    eventually_sync(lambda: task_of(db_path, _task_id(kernel, "pw")).is_terminal,
                    what="the end")
    error = task_of(db_path, _task_id(kernel, "pw")).error
    assert error["type"] == "StdinNotImplementedError", error
    assert "getpass() cannot ask in a %%background cell" in error["message"]
    # a foreground cell still asks as ever
    ask = kernel.client.execute("answer = input('name? ')", allow_stdin=True)
    assert kernel.client.get_stdin_msg(timeout=30)["content"]["prompt"] == "name? "
    kernel.client.input("alice")
    kernel.wait_for(lambda: kernel.idle(ask), what="the asking cell")
    assert kernel.value("answer") == "alice"


def test_wait_for_background_as_a_last_line_shows_one_line_per_task(
        kernel: Kernel, db_path: Path) -> None:
    # the guide ends a headless notebook with it: its Out was every Task's whole repr
    # (spec, source, hashes, usage: a screenful each), kept in the saved notebook
    kernel.execute("%%background --label good --no-card\n6 * 7\n")
    kernel.execute("%%background --label bad --no-card\n1 / 0\n")
    outputs = kernel.execute("import jupyter_tasks\njupyter_tasks.wait_for_background(check=False)")
    text = next(m["content"]["data"]["text/plain"] for m in outputs
                if m["msg_type"] == "execute_result")
    lines = text.splitlines()
    assert lines[0] == "2 background tasks ended: 1 succeeded, 1 failed", text
    assert "'good'" in lines[1] and "succeeded" in lines[1], text
    assert "'bad'" in lines[2] and "ZeroDivisionError: division by zero" in lines[2], text
    assert len(lines) == 3 and "spec=" not in text, text
    # still the list of the tasks
    assert kernel.value("[t.label for t in jupyter_tasks.wait_for_background(check=False)]") \
        == ["good", "bad"]


def test_progress_from_threads_a_background_cell_starts_reaches_its_card(
        kernel: Kernel, db_path: Path) -> None:
    # before: progress() and track() in a thread pool's threads did nothing (the task's
    # context is the cell thread's own), while their print()s did reach the card
    kernel.execute(
        "%%background --name pooled --no-card\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "from jupyter_tasks import progress, track\n"
        "from jupyter_tasks.context import current_context\n"
        "import threading\n"
        "lock, done = threading.Lock(), []\n"
        "def work(i):\n"
        "    with lock:\n"
        "        done.append(i)\n"
        "        progress(len(done), 40, 'in a pool thread')\n"
        "def walk():\n"
        "    return sum(track(range(5), message='tracked'))\n"
        "with ThreadPoolExecutor(4) as pool:\n"
        "    list(pool.map(work, range(40)))\n"
        "    counted = (current_context.get().current_progress or {}).get('current')\n"
        "    walked = pool.submit(walk).result()\n"
        "counted, walked\n")
    task_id = _task_id(kernel, "pooled")
    eventually_sync(lambda: task_of(db_path, task_id).is_terminal, what="the end")
    task = task_of(db_path, task_id)
    assert task.status == "succeeded", task.error
    assert task.result == [40, 10]
    assert task.progress == {"current": 5, "total": 5, "message": "tracked"}


def _pngs_in_card_updates(kernel: Kernel) -> int:
    """How many figures (image/png) the last update of any card's outputs holds."""
    found = 0
    for m in kernel.messages:
        if m["msg_type"] == "comm_msg":
            outputs = (m["content"]["data"].get("state") or {}).get("outputs")
            if outputs is not None:
                found = max(found, sum("image/png" in (o.get("data") or {}) for o in outputs))
    return found


def test_a_background_cells_figure_shows_in_its_card_not_in_the_next_cell(
        kernel: Kernel, tmp_path: Path) -> None:
    # before: the inline backend shows a cell's figures when a cell execution ends; the
    # %%background one had ended at once, so the figure went to whichever foreground
    # cell ended after it was drawn (here the wait), and never to the card
    flag = tmp_path / "draw"
    kernel.execute("%matplotlib inline")
    kernel.execute("%%background --name h\nimport os, time\nimport matplotlib.pyplot as plt\n"
                   f"while not os.path.exists({str(flag)!r}):\n    time.sleep(0.02)\n"
                   "plt.plot([1, 2, 3])\nprint('drawn')\n")
    flag.touch()
    waited = kernel.submit("h.wait(30).status")
    kernel.wait_for(lambda: kernel.idle(waited), what="the wait")
    following = kernel.submit("print('the next cell')")
    kernel.wait_for(lambda: kernel.idle(following), what="the next cell")
    for msg_id in (waited, following):
        shown = [m for m in kernel.outputs_of(msg_id)
                 if "image/png" in (m["content"].get("data") or {})]
        assert not shown, "the background cell's figure went to a foreground cell"
    kernel.wait_for(lambda: _pngs_in_card_updates(kernel) == 1, what="the figure in the card")
    # shown once, and closed as a cell's figures are
    assert kernel.value("plt.get_fignums()") == []
