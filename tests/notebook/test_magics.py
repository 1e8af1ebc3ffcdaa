"""``%run_subprocess``, ``%run_blocking`` and card throttling in a real kernel."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

from tests.processes import ended
from tests.waiting import eventually_sync

from .conftest import logs_of, read_store, task_of
from .harness import Kernel

SPAWN = """\
import subprocess, sys, time
children = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            for _ in range(2)]
print("children", *[c.pid for c in children], flush=True)
time.sleep(60)
"""


def _latest_task(db_path: Path, kind: str):
    tasks = read_store(db_path, lambda s: s.list_tasks(kind=kind, limit=1))
    return tasks[0]


def test_run_subprocess_timeout_kills_the_child_tree(
        kernel: Kernel, db_path: Path, tmp_path: Path) -> None:
    (tmp_path / "spawn.py").write_text(SPAWN)
    # the script and its children sleep 60 s: returning within the 45 s deadline means the
    # timeout ended them rather than waiting for them (10 s: a loaded machine may take
    # seconds to start the script and its two children before it says "children")
    outputs = kernel.execute(f"%run_subprocess --timeout 10 {sys.executable} spawn.py",
                             timeout=45)
    task = _latest_task(db_path, "subprocess")
    assert task.status == "timeout"
    assert task.spec["command"] == [sys.executable, "spawn.py"]
    logs = logs_of(db_path, task.id)
    pids = [int(p) for p in logs.split("children", 1)[1].split()[:2]]
    assert len(pids) == 2
    eventually_sync(lambda: all(ended(p) for p in pids), timeout=30, what="children gone")
    # the cell says what happened; the card shows it (status, exit output)
    assert any("timeout" in m["content"].get("text", "") for m in outputs
               if m["msg_type"] == "stream")


def test_run_subprocess_streams_output_into_its_card(kernel: Kernel, db_path: Path) -> None:
    kernel.execute(
        f"%run_subprocess --background {sys.executable} -c "
        "\"import time; [print('line', i, flush=True) or time.sleep(0.1) for i in range(5)]\""
    )
    task = _latest_task(db_path, "subprocess")
    assert kernel.value("proc_1.id") == task.id
    eventually_sync(lambda: task_of(db_path, task.id).status == "succeeded", what="exit")
    html_widgets = [c for c, name in kernel.comm_models().items() if name == "HTMLModel"]

    def card_html() -> str:
        kernel.pump(0.05)
        return "".join(str(kernel.widget_state(c).get("value", "")) for c in html_widgets)

    eventually_sync(lambda: "line 4" in card_html() and "exit code 0" in card_html(),
                    what="output and exit code in the card")


def test_a_string_command_is_refused_with_a_clear_error(kernel: Kernel) -> None:
    outputs = kernel.execute("import jupyter_tasks\nawait jupyter_tasks.run_subprocess('ls -l')",
                             allow_error=True)
    error = next(m["content"] for m in outputs if m["msg_type"] == "error")
    assert error["ename"] == "InvalidCommand"
    assert "list of arguments" in error["evalue"] and "shlex.split" in error["evalue"]
    # IPython shows a magic's UsageError as text on stderr
    outputs = kernel.execute("%run_subprocess", allow_error=True)
    text = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
    assert "UsageError" in text and "CMD ARGS" in text


def test_run_blocking_waits_and_keeps_the_kernel_loop_free(
        kernel: Kernel, tmp_path: Path) -> None:
    assert kernel.value("%run_blocking sum(range(10))") == 45
    kernel.execute("async def twice(x):\n    return 2 * x\n")
    assert kernel.value("await __import__('jupyter_tasks').run_blocking(sum, [1, 2, 3])") == 6
    # a widget click (a comm message) is handled while a %%run_blocking cell waits
    flag = tmp_path / "clicked"
    kernel.execute(
        "import ipywidgets, pathlib\n"
        "button = ipywidgets.Button()\n"
        f"button.on_click(lambda b: pathlib.Path({str(flag)!r}).touch())\n"
        "button.model_id"
    )
    model_id = kernel.value("button.model_id")
    msg_id = kernel.submit(
        "%%run_blocking\nimport os, time\n"
        f"while not os.path.exists({str(flag)!r}):\n    time.sleep(0.02)\n'unblocked'\n")
    eventually_sync(lambda: kernel.pump(0.05) is not None and any(
        m["msg_type"] == "status" and m["content"]["execution_state"] == "busy"
        and m["parent_header"].get("msg_id") == msg_id for m in kernel.messages),
        what="blocking cell started")
    click = kernel.client.session.msg("comm_msg", {
        "comm_id": model_id, "data": {"method": "custom", "content": {"event": "click"}}})
    kernel.client.shell_channel.send(click)
    kernel.wait_for(lambda: kernel.idle(msg_id), timeout=15, what="blocking cell done")
    assert flag.exists()
    result = [m for m in kernel.outputs_of(msg_id) if m["msg_type"] == "execute_result"]
    assert result[0]["content"]["data"]["text/plain"] == "'unblocked'"


def test_card_sends_at_most_about_ten_updates_per_second(
        kernel: Kernel, db_path: Path) -> None:
    kernel.pump(0.2)
    before = len(kernel.messages)
    # a tight progress loop that lasts 1.5 s whatever the machine's speed (a fixed
    # number of iterations once ended before its card was even drawn on a fast day,
    # so the card showed the final state at once and sent no update to count)
    kernel.execute(
        "%%background --name h\n"
        "import time\n"
        "from jupyter_tasks import progress\n"
        "end = time.monotonic() + 1.5\n"
        "while (now := time.monotonic()) < end:\n"
        "    progress(round(1.5 - (end - now), 3), 1.5)\n"
        "progress(1.5, 1.5)\n"
    )
    task_id = kernel.value("h.id")
    eventually_sync(lambda: task_of(db_path, task_id).status == "succeeded", timeout=60,
                    what="loop done")
    task = task_of(db_path, task_id)
    # let the card settle on its final state
    kernel.wait_for(lambda: any("100%" in str(m["content"]["data"]["state"].get("value", ""))
                                for m in kernel.comm_updates()), what="final 100% shown")
    kernel.pump(0.5)
    updates = [m for m in kernel.messages[before:] if m["msg_type"] == "comm_msg"
               and m["content"]["data"].get("method") == "update"]
    duration = task.finished_at - task.started_at
    assert duration > 0.3, duration  # the loop is long enough to say something
    # when the kernel sent them: the test reads IOPub in bursts, so arrival times bunch
    times = [m["header"]["date"].timestamp() for m in updates]
    # the card did update while the loop ran, but never faster than ~10 per second
    assert len(updates) >= 2
    # (slack for a tick that also updates the controls, two messages, and for ticks that
    # drift together when one refresh is slow and the next fast; unthrottled, the loop
    # would send thousands)
    assert len(updates) <= 10 * (duration + 0.5) + 6, (len(updates), duration)
    for i, t in enumerate(times):
        in_second = [u for u in times[i:] if u - t < 1.0]
        assert len(in_second) <= 15, (len(in_second), duration)


def _error_of(kernel: Kernel, msg_id: str) -> dict:
    """The one error a cell ended with (waiting for the cell to end)."""
    kernel.wait_for(lambda: kernel.idle(msg_id), timeout=60, what="the cell")
    errors = [m["content"] for m in kernel.outputs_of(msg_id) if m["msg_type"] == "error"]
    assert len(errors) == 1, kernel.outputs_of(msg_id)
    return errors[0]


@pytest.mark.parametrize("kind", ["cell", "subprocess"])
def test_an_interrupted_waiting_magic_stops_its_work_and_raises_the_interrupt(
        kernel: Kernel, db_path: Path, tmp_path: Path, kind: str) -> None:
    # ipykernel (7.4) delivers the interrupt to a top-level await once the wait is over:
    # the work ran to its end (here ten minutes), then the cell said CancelledError, the
    # task recorded succeeded; and the magic's cancel of an ended task raised
    # TaskStateConflict over the interrupt (a traceback through the store)
    started = tmp_path / "started"
    touch = f"__import__('pathlib').Path({str(started)!r}).touch()"
    line = (f"%run_blocking {touch} or __import__('time').sleep(600)" if kind == "cell" else
            f"%run_subprocess {sys.executable} -c \"{touch}; __import__('time').sleep(600)\"")
    msg_id = kernel.submit(line)
    eventually_sync(started.exists, timeout=30, what=f"the {kind} task started")
    kernel.km.interrupt_kernel()
    error = _error_of(kernel, msg_id)
    assert error["ename"] == "KeyboardInterrupt", error
    assert "TaskStateConflict" not in "\n".join(error["traceback"])
    conn = sqlite3.connect(db_path)
    try:
        status = conn.execute("SELECT status FROM tasks ORDER BY id DESC LIMIT 1").fetchone()[0]
    finally:
        conn.close()
    assert status == "cancelled"
    assert kernel.execute("print('ok')")[0]["content"]["text"] == "ok\n"


def test_waiting_magics_refuse_a_timeout_that_is_not_positive_in_one_line(
        kernel: Kernel) -> None:
    # before: InvalidRequest with a traceback through the engine's submission
    for line in ("%run_subprocess --timeout 0 echo hi", "%run_subprocess --timeout -1 echo hi",
                 "%%background --timeout -5 --no-card --name neg\n1"):
        outputs = kernel.execute(line, allow_error=True)
        # IPython shows a UsageError as one line on stderr, with no traceback
        assert not [m for m in outputs if m["msg_type"] == "error"], outputs
        said = "".join(m["content"].get("text", "") for m in outputs)
        assert said.startswith("UsageError: ") and "--timeout" in said, said
        assert "takes a positive number of seconds, not '" in said, said


def test_background_refuses_a_name_python_cannot_use_as_a_variable(kernel: Kernel) -> None:
    # before: `--name for` was taken (`--name 1bad` was not): the handle went to a name
    # no cell can type, and the cell ran anyway
    for name in ("1bad", "for", "None"):
        outputs = kernel.execute(f"%%background --no-card --name {name}\n1", allow_error=True)
        said = "".join(m["content"].get("text", "") for m in outputs)
        assert said.startswith("UsageError: ") and repr(name) in said, (name, said)
        assert "TaskHandle" not in said  # refused before anything ran


def test_run_blocking_takes_a_trailing_semicolon(kernel: Kernel) -> None:
    # a habit to hide a cell's value; before: "invalid syntax" as a UsageError
    outputs = kernel.execute("x = %run_blocking sum(range(4));\nx")
    assert [m["content"]["data"]["text/plain"] for m in outputs
            if m["msg_type"] == "execute_result"] == ["6"]
    outputs = kernel.execute("%run_blocking sum(range(4));")
    assert not [m for m in outputs if m["msg_type"] == "execute_result"]


def test_run_blocking_of_a_stop_iteration_ends_the_cell_with_it(kernel: Kernel) -> None:
    # before: the cell hung until Kernel -> Interrupt (a future refuses a StopIteration)
    outputs = kernel.execute("%run_blocking next(iter([]))", timeout=30, allow_error=True)
    errors = [m["content"] for m in outputs if m["msg_type"] == "error"]
    assert errors and errors[0]["ename"] == "RaisedInThread", outputs
    assert "StopIteration" in errors[0]["evalue"]
    assert kernel.value("1 + 1") == 2


@pytest.mark.parametrize("code", ["%%run_blocking\nimport sys\nsys.exit(2)",
                                  "%run_blocking __import__('sys').exit(2)"])
def test_run_blocking_of_sys_exit_ends_the_cell_as_a_plain_cell_would(
        kernel: Kernel, db_path: Path, code: str) -> None:
    # before: "TaskFailed: ... sys.exit(2) ended the task", where the same code in a plain
    # cell shows "SystemExit: 2" (IPython's own words) and the kernel carries on
    outputs = kernel.execute(code, timeout=30, allow_error=True)
    errors = [m["content"] for m in outputs if m["msg_type"] == "error"]
    assert [(e["ename"], e["evalue"]) for e in errors] == [("SystemExit", "2")], outputs
    task = _latest_task(db_path, "cell")
    assert task.status == "failed" and "sys.exit(2)" in task.error["message"], task
    assert kernel.value("1 + 1") == 2


@pytest.mark.parametrize("code", [
    "%%time\nv = %run_blocking sum(range(4))\nprint('value', v)",
    "%time v = %run_blocking sum(range(4))",
    "%%timeit -n1 -r1\n%run_blocking sum(range(4))",
    "%%capture captured\n%run_subprocess echo hi",
])
def test_waiting_magics_work_inside_the_magics_that_run_code(kernel: Kernel, code: str) -> None:
    # before: "SyntaxError: 'await' outside function" under %%time, %time and %%timeit,
    # and "This event loop is already running" under %%capture: their body was rewritten
    # into a top-level await as a cell is, where they compile or run it without one
    outputs = kernel.execute(code, timeout=60, allow_error=True)
    assert not [m for m in outputs if m["msg_type"] == "error"], outputs
    if code.startswith("%%time\n"):
        assert "value 6" in "".join(m["content"].get("text", "") for m in outputs), outputs
    assert kernel.value("1 + 1") == 2


def _plain_traceback(kernel: Kernel, code: str) -> tuple[str, str]:
    """(ename, the traceback as the notebook shows it, colors stripped) of a failing cell."""
    import re

    outputs = kernel.execute(code, allow_error=True)
    (error,) = [m["content"] for m in outputs if m["msg_type"] == "error"]
    return error["ename"], re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error["traceback"]))


def test_errors_of_run_blocking_and_handles_show_the_users_code_not_the_engine(
        kernel: Kernel) -> None:
    # before: ten engine frames (runners.py, cells.py, execution.py, manager.py) above
    # `1/0`, fifteen (the store, its connection, concurrent.futures) under a handle's
    # status; and logs() of an unknown id was '' where status raised TaskNotFound
    ename, shown = _plain_traceback(kernel, "%run_blocking 1/0")
    assert ename == "ZeroDivisionError" and "----> 1 1/0" in shown, shown
    for engine in ("runners.py", "cells.py", "execution.py", "manager.py"):
        assert engine not in shown, (engine, shown)
    # cancelled from outside (the card, the CLI): said in one line (before: TaskFailed
    # with a frame of manager.py's outcome())
    ename, shown = _plain_traceback(
        kernel, "import time\nfrom jupyter_tasks import TaskHandle\n"
                "from jupyter_tasks.context import current_context\n"
                "def cancels_itself():\n"
                "    TaskHandle(current_context.get().task_id).cancel()\n"
                "    for _ in range(600):\n"
                "        time.sleep(0.1)\n"
                "%run_blocking cancels_itself()")
    assert ename == "TaskFailed" and "ended cancelled" in shown, shown
    for engine in ("runners.py", "cells.py", "execution.py", "manager.py"):
        assert engine not in shown, (engine, shown)
    # TaskCard of an unknown id too (before: eleven frames through run_sync, the loop hop,
    # concurrent.futures and the store)
    for call in ("TaskHandle('0' * 32).status", "TaskHandle('0' * 32).logs()",
                 "TaskHandle('0' * 32).cancel()", "TaskHandle('0' * 32).answer('yes')",
                 "TaskCard('does-not-exist-123')"):
        ename, shown = _plain_traceback(
            kernel, f"from jupyter_tasks import TaskCard, TaskHandle\n{call}")
        assert ename == "TaskNotFound", (call, shown)
        for engine in ("store.py", "connection.py", "concurrent/futures", "manager.py"):
            assert engine not in shown, (call, engine, shown)


def test_handles_and_cards_take_the_short_ids_cards_and_the_cli_show(
        kernel: Kernel) -> None:
    # before: TaskHandle(id[-10:]).status and TaskCard(id[-10:]) raised TaskNotFound for
    # the very 10 characters every card, the dashboard and `jupyter tasks run` print
    kernel.execute("%%background --name first\n41")
    kernel.execute("%%background --name second\n42")
    kernel.execute("from jupyter_tasks import TaskCard, TaskHandle\n"
                   "first.result(30), second.result(30)")
    assert kernel.value("TaskHandle(second.id[-10:]).id == second.id")
    assert kernel.value("TaskHandle(first.id[:20]).result(30)") == 41
    assert kernel.value("TaskCard(second.id[-10:]).task_id == second.id")
    # a start two ids share is said so, naming them; one that matches none is not found
    for call, said in (("TaskHandle(first.id[:4])", "more than one task"),
                       ("TaskCard('zzzzzzzzzz')", "nor one whose id starts or ends")):
        ename, shown = _plain_traceback(kernel, call)
        assert ename == "TaskNotFound" and said in shown, (call, shown)
        assert "store.py" not in shown and "manager.py" not in shown, shown


def test_magics_after_the_manager_was_stopped_say_how_to_start_it_again(
        kernel: Kernel) -> None:
    # before: ManagerNotRunning, "use `async with TaskManager() as m:` or
    # `jupyter_tasks.start_manager()`": neither brought the magics back
    kernel.execute("import jupyter_tasks\njupyter_tasks.stop_manager()")
    for cell in ("%%background\n1\n", "%run_blocking sum([1])", "%run_subprocess true"):
        outputs = kernel.execute(cell, allow_error=True)
        # IPython shows a UsageError as one line on stderr (awaited) or as an error
        said = [m["content"].get("text") or f"{m['content']['ename']}: {m['content']['evalue']}"
                for m in outputs if m["msg_type"] == "error"
                or (m["msg_type"] == "stream" and m["content"]["name"] == "stderr")]
        assert any(text.startswith("UsageError: this kernel's task manager was stopped: run "
                                   "`%reload_ext jupyter_tasks`") for text in said), (cell, said)
    kernel.execute("%reload_ext jupyter_tasks")
    kernel.execute("%%background --name again --no-card\n6 * 7\n")
    assert kernel.value("again.result(30)") == 42


def test_a_handle_from_before_the_manager_was_stopped_works_after_reload_ext(
        kernel: Kernel) -> None:
    # before: h.status said "the task manager is not running: use ... start_manager()",
    # though %reload_ext had started one on the same database
    kernel.execute("%%background --name h --no-card\n6 * 7\n")
    assert kernel.value("h.wait(30).status") == "succeeded"
    kernel.execute("import jupyter_tasks\njupyter_tasks.stop_manager()")
    kernel.execute("%reload_ext jupyter_tasks")
    assert kernel.value("h.status") == "succeeded"
    assert kernel.value("h.result(30)") == 42  # as stored: the object went with the manager
    assert kernel.value("h.done") is True
    # before: "TimeoutError: " and no words, for an ended task
    ename, shown = _plain_traceback(kernel, "h.result(timeout=float('nan'))")
    assert ename == "ValueError" and "not nan" in shown, shown
    # the cell's kernel is this one still: its rerun runs here (before: NotRerunnable,
    # "the kernel that ran cell task ... is gone", as if the notebook had been closed)
    kernel.execute("h2 = h.rerun()")
    assert kernel.value("h2.result(30)") == 42
    assert kernel.value("h2.status") == "succeeded"


def test_waits_refuse_a_timeout_that_is_no_number_of_seconds(kernel: Kernel) -> None:
    # before: wait_for_background(timeout=nan) raised "still runs after nan s", and -1
    # "after -1 s", for a task that had not been waited for at all
    kernel.execute("import threading\ngo = threading.Event()")
    kernel.execute("%%background --name slow --no-card\ngo.wait(60)\n")
    kernel.execute("import jupyter_tasks")
    for call, ename, words in (
            ("jupyter_tasks.wait_for_background(timeout=float('nan'))", "ValueError",
             "not nan"),
            ("jupyter_tasks.wait_for_background(timeout=-1)", "ValueError", "not -1"),
            ("jupyter_tasks.wait_for_background(timeout='5')", "TypeError", "not str"),
            ("slow.wait(-1)", "ValueError", "not -1")):
        got, shown = _plain_traceback(kernel, call)
        assert got == ename and words in shown, (call, shown)
    assert kernel.value("slow.status") == "running"
    kernel.execute("go.set()")
    assert kernel.value("[t.status for t in jupyter_tasks.wait_for_background(30)]") == [
        "succeeded"]


def test_a_graceful_kernel_shutdown_leaves_a_background_program_interrupted(
        db_path: Path, tmp_path: Path) -> None:
    # before: the kernel's exit stopped its manager after the interpreter had shut the
    # loop's thread pool, the program's stop raised "cannot schedule new futures after
    # shutdown", and the task ended failed with that error (a kill -9 said interrupted)
    k = Kernel(db_path, cwd=str(tmp_path))
    try:
        k.execute("%load_ext jupyter_tasks")
        k.execute("job = %run_subprocess --background sleep 120")
        task_id = k.value("job.id")
        running = eventually_sync(
            lambda: (t := task_of(db_path, task_id)).status == "running" and t.process and t,
            timeout=30, what="the program running")
        program = running.process["pid"]
        k.km.shutdown_kernel(now=False)  # as Kernel -> Shut Down or a restart does
        done = eventually_sync(lambda: (t := task_of(db_path, task_id)).finished_at and t,
                               timeout=30, what="the task ended")
        assert done.status == "interrupted", done.error
        eventually_sync(lambda: ended(program), timeout=30, what="the program ended")
    finally:
        k.shutdown()


def test_a_background_command_records_the_folder_it_runs_in(kernel: Kernel,
                                                            db_path: Path) -> None:
    # before: no folder was recorded (or --cwd as typed), so once the kernel was gone a
    # rerun ran as a worker's job in the worker's folder: `rm -r build` removed the
    # worker's build, not the notebook's
    here = kernel.value("__import__('os').getcwd()")
    kernel.execute("import os; os.makedirs('sub', exist_ok=True)")
    kernel.execute("plain = %run_subprocess --background true")
    kernel.execute("inside = %run_subprocess --background --cwd sub true")
    plain = task_of(db_path, kernel.value("plain.id"))
    inside = task_of(db_path, kernel.value("inside.id"))
    assert plain.spec["cwd"] == here, plain.spec
    assert inside.spec["cwd"] == str(Path(here) / "sub"), inside.spec
