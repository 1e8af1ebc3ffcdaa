"""Found by driving jobs as users do: output paths named by parameters, a task module that
failed to import, two writes of one output path at once. No server, real files."""

from __future__ import annotations

import datetime
import sys
import threading
from pathlib import Path

import pytest

from jupyter_tasks.jobs.notebook import _write_file
from jupyter_tasks.jobs.notebook_record import render_output_path
from jupyter_tasks.registry import import_module_or_path


def test_a_parameter_named_date_or_id_fills_its_own_field_in_output_path(tmp_path: Path) -> None:
    # papermill fills OUTPUT from the parameters only; before, the run's own {date} and
    # {id} won over -r date 2024-01-01, so a backfill's runs overwrote each other
    def render(parameters: dict) -> str:
        return render_output_path("rep-{date}-{id}.ipynb", root_dir=str(tmp_path),
                                  task_id="t" * 32, date=datetime.date(2026, 12, 6),
                                  parameters=parameters)

    assert render({"date": "2024-01-01", "id": 7}) == str(tmp_path / "rep-2024-01-01-7.ipynb")
    assert render({}) == str(tmp_path / f"rep-2026-12-06-{'t' * 32}.ipynb")


def test_a_task_module_that_failed_to_import_fails_again_until_it_is_fixed(
        tmp_path: Path) -> None:
    # before: the half-run module stayed in sys.modules; the next import returned it
    # with no error and without its tasks, so the real cause was hidden for good
    helper = tmp_path / "helper_for_jt_test.py"
    module = tmp_path / "needs_helper_tasks.py"
    module.write_text("import helper_for_jt_test\n"
                      "from jupyter_tasks import task\n\n"
                      "@task('jt_needs_helper')\n"
                      "def needs_helper() -> int:\n"
                      "    return helper_for_jt_test.VALUE\n")
    sys.path.insert(0, str(tmp_path))
    try:
        for _ in range(2):
            with pytest.raises(ModuleNotFoundError, match="helper_for_jt_test"):
                import_module_or_path(str(module))
        helper.write_text("VALUE = 42\n")
        loaded = import_module_or_path(str(module))
        assert loaded.needs_helper() == 42
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("helper_for_jt_test", None)
        sys.modules.pop("jupyter_tasks_user_needs_helper_tasks", None)


def test_two_writes_of_one_output_path_at_once_both_succeed(tmp_path: Path) -> None:
    # two notebook jobs of one worker with the same OUTPUT: before, both wrote the same
    # per-process temporary file, and one job failed (FileNotFoundError) after its run
    target = str(tmp_path / "out" / "latest.ipynb")
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def write(n: int) -> None:
        try:
            start.wait()
            for _ in range(20):
                _write_file(target, f"writer {n} " + "x" * 200_000)
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    text = Path(target).read_text()
    assert text.startswith("writer ") and len(text) == len("writer 0 ") + 200_000
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["latest.ipynb"]


def test_a_failure_reason_is_a_whole_line_not_one_ending_in_a_colon() -> None:
    # a notebook job's error: its first line introduces the cell excerpt below it; as
    # the retry reason or `run --wait`'s last line it ended in a dangling ':'
    from jupyter_tasks.models import failure_reason

    error = {"type": "PapermillExecutionError",
             "message": "ValueError: bad input (in cell 2 of fails.ipynb, In [2]):\n"
                        "raise ValueError('bad input')"}
    assert failure_reason(error) == \
        "PapermillExecutionError: ValueError: bad input (in cell 2 of fails.ipynb, In [2])"
    assert failure_reason({"type": "KeyError", "message": "'a:'"}) == "KeyError: 'a:'"
    assert failure_reason({"type": "E", "message": "ratio:"}) == "E: ratio:"  # one line: as is
    assert failure_reason(None) == "failed"


async def test_a_huge_error_message_is_cut_in_the_row_keeping_its_start_and_end(
        tmp_path: Path) -> None:
    # before: a 25 MB message (an OS error quoting a 25 MB file name) went whole into the
    # row and its event, and so into every list page and to every client
    from jupyter_tasks import TaskManager
    from jupyter_tasks.registry import Registry
    from jupyter_tasks.tracebacks import MAX_ERROR_MESSAGE_CHARS, MAX_TRACEBACK_CHARS

    def shout() -> None:
        raise ValueError("START " + "x" * 5_000_000 + " END")

    registry = Registry()
    registry.register("shout", shout, mode="job")
    async with TaskManager(tmp_path / "tasks.db", registry=registry,
                           queues={"default": 1}) as manager:
        task = await manager.submit_spec({"name": "shout"}, max_retries=0)
        done = await manager.wait(task.id, timeout=60)
        assert done.status == "failed"
        message = done.error["message"]
        assert message.startswith("START xxx") and message.endswith("xxx END")
        assert "characters cut" in message
        assert len(message) < MAX_ERROR_MESSAGE_CHARS + 100
        for key in ("traceback", "traceback_full"):
            assert "ValueError" in done.error[key] and "END" in done.error[key]
            assert len(done.error[key]) < MAX_TRACEBACK_CHARS + 100
        events = await manager.store.events_after(0, limit=100)
        failed = [e for e in events if e.type == "task.failed"]
        assert len(failed) == 1 and len(str(failed[0].task)) < 3 * MAX_TRACEBACK_CHARS
