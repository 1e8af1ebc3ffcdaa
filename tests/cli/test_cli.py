"""The real ``jupyter tasks`` command: the server's task modules, short ids and id parts,
and ``jupyter tasks lab`` as root and as a normal user (issue 13)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from jupyter_tasks import cli as cli_module
from jupyter_tasks.cli import SHORT_ID, lab_argv
from jupyter_tasks.models import Task, new_task_id
from jupyter_tasks.paths import DB_ENV
from jupyter_tasks.store import Store
from tests.launcher import interrupt
from tests.waiting import eventually_sync

GREET = '''\
from jupyter_tasks import task


@task("cli_greet")
def cli_greet(name: str = "world") -> str:
    print(f"greeting {name}")
    return f"hello {name}"
'''


@pytest.fixture
def env(tmp_path: Path, db_path: Path) -> dict[str, str]:
    """A Jupyter config dir whose server config names a task module, as a server's would."""
    (tmp_path / "modules").mkdir()
    module = tmp_path / "modules" / "cli_greet_tasks.py"
    module.write_text(GREET)
    config = tmp_path / "config"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(json.dumps(
        {"JupyterTasksApp": {"task_modules": [str(module)]}}))
    environ = dict(os.environ)
    environ.pop("JUPYTER_TASKS_MODULES", None)
    environ.update(JUPYTER_CONFIG_DIR=str(config), JUPYTER_TASKS_DB=str(db_path),
                   JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    return environ


def jt(env: dict[str, str], *args: str,
       cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["jupyter", "tasks", *args], env=env, capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def stored(db_path: Path) -> list[Task]:
    async def read() -> list[Task]:
        store = await Store.open(db_path, read_only=True)
        try:
            return await store.list_tasks(limit=100)
        finally:
            await store.close()

    return asyncio.run(read())


def test_a_rerun_of_a_task_whose_key_has_a_run_queued_says_so_and_queues_none(
        env: dict[str, str], db_path: Path, tmp_path: Path) -> None:
    # before: the rerun dropped the task key and queued a second run of the same work
    first = jt(env, "submit", "--task-key", "nightly", "--queue", "parked", "--command",
               "true", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = jt(env, "rerun", first.stdout.strip(), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout  # the run already queued, as a submit answers
    assert "not rerun: its task key has a run queued already" in again.stderr, again.stderr
    assert len(stored(db_path)) == 1


def test_a_code_jobs_input_can_come_from_a_file_and_a_path_as_input_is_pointed_there(
        env: dict[str, str], db_path: Path, tmp_path: Path) -> None:
    # before: --input took JSON text only: a file's path was "--input is not JSON:
    # Expecting value: line 1 column 1 (char 0)", and an input past the ~128 KB one
    # argument may hold could not be given at all
    data = {"rows": ["x" * 100] * 3000}  # 300 KB of JSON
    big = tmp_path / "input.json"
    big.write_text(json.dumps(data))
    done = jt(env, "submit", "--queue", "parked", "--code", "print(1)", "--input-file",
              str(big), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [task] = stored(db_path)
    assert task.spec["input_data"] == data
    wrong = jt(env, "submit", "--queue", "parked", "--code", "print(1)", "--input", str(big),
               cwd=tmp_path)
    assert wrong.returncode != 0 and f"--input-file {big}" in wrong.stderr, wrong.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    broken = jt(env, "submit", "--code", "print(1)", "--input-file", str(bad), cwd=tmp_path)
    assert broken.returncode != 0 and "--input-file" in broken.stderr and "not JSON" \
        in broken.stderr, broken.stderr
    empty = tmp_path / "empty.json"
    empty.write_text("\n")
    nothing = jt(env, "submit", "--code", "print(1)", "--input-file", str(empty), cwd=tmp_path)
    assert nothing.returncode != 0 and "is empty" in nothing.stderr, nothing.stderr
    assert len(stored(db_path)) == 1


def test_a_param_without_a_name_is_refused_saying_so(env: dict[str, str], tmp_path: Path) -> None:
    # before: "invalid parameters for cli_greet: : unexpected parameter"
    done = jt(env, "submit", "--name", "cli_greet", "--param", "=1", cwd=tmp_path)
    assert done.returncode != 0
    assert "--param takes key=value; the key is empty in '=1'" in done.stderr, done.stderr


def _shared(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def test_submit_and_rerun_know_the_servers_configured_task_modules(
        env: dict[str, str], db_path: Path, tmp_path: Path) -> None:
    done = jt(env, "submit", "--name", "cli_greet", "--param", "name=Ada", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    short = done.stdout.strip()
    assert len(short) == SHORT_ID  # the form the views show
    [task] = stored(db_path)
    assert task.id.endswith(short) and task.name == "cli_greet"
    assert task.params == {"name": "Ada"}
    # a worker started from the same shell imports the same modules and runs it
    terminal = tmp_path / "worker.out"
    with open(terminal, "wb") as out:
        worker = subprocess.Popen(["jupyter", "tasks", "worker"], env=env, cwd=tmp_path,
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        eventually_sync(lambda: stored(db_path)[0].status == "succeeded", timeout=60,
                        what="the job run by the worker")
        assert stored(db_path)[0].result == "hello Ada"
        # what the job printed is in its log, not in the worker's terminal
        logs = jt(env, "logs", short, cwd=tmp_path)
        assert logs.stdout == "greeting Ada\n", logs
        assert "serving default" in terminal.read_text()
        assert "greeting" not in terminal.read_text()
        again = jt(env, "rerun", short, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        new = next(t for t in stored(db_path) if t.id.endswith(again.stdout.strip()))
        assert new.parent_id == task.id and new.relationship == "rerun"
        eventually_sync(lambda: next(t for t in stored(db_path) if t.id == new.id).status
                        == "succeeded", timeout=60, what="the rerun")
    finally:
        interrupt(worker)


def test_an_unknown_name_says_where_modules_come_from(env: dict[str, str],
                                                      tmp_path: Path) -> None:
    env = {**env, "JUPYTER_CONFIG_DIR": str(tmp_path / "empty")}
    done = jt(env, "submit", "--name", "cli_greet")
    assert done.returncode == 2
    assert "no task registered under the name 'cli_greet'" in done.stderr
    assert "JupyterTasksApp.task_modules" in done.stderr and "--modules" in done.stderr


def test_ids_are_short_in_output_and_any_unique_part_names_a_task(
        env: dict[str, str], db_path: Path, tmp_path: Path) -> None:
    for name in ("Ada", "Bob"):
        assert jt(env, "submit", "--name", "cli_greet", "--param", f"name={name}",
                  cwd=tmp_path).returncode == 0
    first, second = sorted(t.id for t in stored(db_path))
    listed = jt(env, "list")
    assert listed.returncode == 0
    ids = [line.split()[0] for line in listed.stdout.splitlines()[1:]]
    assert ids == [second[-SHORT_ID:], first[-SHORT_ID:]]
    full = jt(env, "list", "--full").stdout.splitlines()[1:]
    assert [line.split()[0] for line in full] == [second, first]
    assert {t["id"] for t in json.loads(jt(env, "list", "--json").stdout)} == {first, second}

    # the end the views show, a unique start, the whole id, the dashboard's "…" form
    for ref in (first[-SHORT_ID:], first[-5:], first, "…" + first[-SHORT_ID:],
                first[:len(_shared(first, second)) + 1]):
        shown = jt(env, "show", ref)
        assert shown.returncode == 0, (ref, shown.stderr)
        assert json.loads(shown.stdout)["id"] == first
    logs = jt(env, "logs", first[-SHORT_ID:])
    assert logs.returncode == 0, logs.stderr

    # both ids start with the same time stamp: a clear error listing both
    # (the whole shared start: its first 6 digits change every ~18 minutes, so two ids
    # seconds apart can differ there)
    shared = _shared(first, second)
    assert len(shared) >= 4  # ids begin with their creation time
    ambiguous = jt(env, "show", shared)
    assert ambiguous.returncode == 2
    assert "matches more than one task" in ambiguous.stderr
    assert first in ambiguous.stderr and second in ambiguous.stderr
    missing = jt(env, "cancel", "0123abcd")
    assert missing.returncode == 2 and "no task matches '0123abcd'" in missing.stderr
    assert "Traceback" not in missing.stderr + ambiguous.stderr

    cancelled = jt(env, "cancel", first[-6:])
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.split() == [first[-SHORT_ID:], "cancelled"]
    assert jt(env, "cancel", "--full", second[-6:]).stdout.split()[0] == second


def test_the_global_db_option_before_dashboard_or_lab_goes_to_them(
        db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `jupyter tasks --db FILE dashboard` (the order `jupyter tasks -h` shows) ended in
    # a TypeError traceback. The dashboard needs a terminal and lab replaces the
    # process, so their entry points are stood in for; what reaches them is real
    import jupyter_tasks_dashboard.app as dashboard_app

    from jupyter_tasks import cli

    received: dict[str, Any] = {}

    def dashboard(argv: list[str], prog: str | None = None) -> int:
        received["dashboard"] = list(argv)
        received["prog"] = prog
        return 0

    def lab(argv: list[str]) -> int:
        received["lab"] = (list(argv), os.environ.get(DB_ENV))
        return 0

    monkeypatch.setattr(dashboard_app, "main", dashboard)
    monkeypatch.setattr(cli, "_cmd_lab", lab)
    monkeypatch.setenv(DB_ENV, "elsewhere.db")  # restored after the test
    assert cli.main(["--db", str(db_path), "dashboard", "--page-size", "10"]) == 0
    assert received["dashboard"] == ["--db", str(db_path), "--page-size", "10"]
    assert received["prog"] == "jupyter tasks dashboard"  # its usage names the command typed
    assert cli.main(["--db", str(db_path), "lab", "--port=0"]) == 0
    assert received["lab"] == (["--port=0"], str(db_path.resolve()))


def test_lab_adds_allow_root_for_root_only() -> None:
    assert lab_argv(["--port=0"], uid=0) == ["jupyter", "lab", "--port=0", "--allow-root"]
    assert lab_argv(["--port=0"], uid=1000) == ["jupyter", "lab", "--port=0"]
    assert lab_argv(["--allow-root"], uid=0) == ["jupyter", "lab", "--allow-root"]
    assert lab_argv(["--ServerApp.allow_root=True"], uid=0).count("--allow-root") == 0


@pytest.mark.slow
def test_the_readme_flow_lab_as_this_user_then_submit_from_a_shell(
        env: dict[str, str], tmp_path: Path) -> None:
    """The README's first command, as whoever runs the tests (root in a fresh container),
    with the task module on the server's command line only; then a shell submits by name."""
    runtime = tmp_path / "runtime"
    env = {**env, "JUPYTER_CONFIG_DIR": str(tmp_path / "empty")}  # no configured modules
    module = tmp_path / "modules" / "cli_greet_tasks.py"
    lab = subprocess.Popen(
        ["jupyter", "tasks", "lab", "--no-browser", "--port=0", "--ServerApp.token=t",
         f"--ServerApp.root_dir={tmp_path}", f"--JupyterTasksApp.task_modules={module}"],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def started() -> dict[str, Any] | None:
            if lab.poll() is not None:
                raise AssertionError(f"jupyter tasks lab exited: {lab.stderr.read()}")
            for path in runtime.glob("jpserver-*.json"):
                try:  # the server creates the file, then writes it: it can be read empty
                    return json.loads(path.read_text())
                except ValueError:
                    pass
            return None

        info = eventually_sync(started, timeout=90, what="JupyterLab running")
        assert info["pid"] == lab.pid  # exec'd: the server is the process we started
        # this shell does not know cli_greet: the server's workers run it
        done = jt(env, "submit", "--name", "cli_greet", "--param", "name=Ada", "--wait")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["result"] == "hello Ada"
        assert "queued for a server that has it" in done.stderr
        # a typo of it: before, queued "for the server's workers" to wait for good
        typo = jt(env, "submit", "--name", "cli_gret")
        assert typo.returncode == 2, typo
        assert "no live worker of queue 'default' has a task named 'cli_gret'; they have: " \
               "cli_greet" in typo.stderr, typo.stderr
    finally:
        lab.terminate()
        try:
            lab.wait(30)
        except subprocess.TimeoutExpired:
            lab.kill()
            lab.wait(10)
    assert "Running as root is not recommended" not in (lab.stderr.read() or "")
    assert sys.platform != "win32"


def test_a_reader_that_leaves_ends_the_output_quietly(env: dict[str, str], tmp_path: Path) -> None:
    assert jt(env, "submit", "--code", "print(1)", cwd=tmp_path).returncode == 0
    # `jupyter tasks list | head -1`: the reader is gone before the listing is written
    # buffered as a terminal-less run buffers it: written at the end, not line by line
    quiet = {k: v for k, v in env.items() if k != "PYTHONUNBUFFERED"}
    listing = subprocess.Popen(["jupyter", "tasks", "list"], env=quiet, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    listing.stdout.close()  # type: ignore[union-attr]
    _, err = listing.communicate(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert listing.returncode == 141


@pytest.mark.parametrize("command", [["list"], ["list", "--json"], ["show", "ID"],
                                     ["doctor"]])
def test_output_that_cannot_be_written_is_one_clear_error(
        env: dict[str, str], tmp_path: Path, command: list[str]) -> None:
    # `jupyter tasks list > report.txt` on a full disk. Before: a 20-line traceback
    # ending in "OSError: [Errno 28] No space left on device", and Python's own
    # "Exception ignored ... flush" after it
    done = jt(env, "submit", "--name", "cli_greet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    command = [done.stdout.strip() if word == "ID" else word for word in command]
    with open("/dev/full", "w") as full:
        written = subprocess.run(["jupyter", "tasks", *command], env=env, stdout=full,
                                 stderr=subprocess.PIPE, text=True, timeout=120)
    assert written.returncode == 1, written.stderr
    assert written.stderr.splitlines() == [
        "error: the output could not be written: No space left on device"], written.stderr


def test_lab_starts_the_jupyterlab_of_its_own_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # /venv/bin/jupyter tasks lab, the venv not activated: another environment's
    # jupyter-lab first on PATH has no jupyter-tasks (every /api/tasks call was a 404)
    def executable(folder: Path, name: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
        return path

    venv = tmp_path / "venv" / "bin"
    python = executable(venv, "python")
    elsewhere = executable(tmp_path / "other" / "bin", "jupyter-lab")
    monkeypatch.setenv("PATH", str(elsewhere.parent))
    assert cli_module.lab_executable(str(python)) == str(elsewhere)  # none beside it: PATH's
    own = executable(venv, "jupyter-lab")
    assert cli_module.lab_executable(str(python)) == str(own)


DEEP = "[" * 5000 + "]" * 5000


def refused_clearly(env: dict[str, str], db_path: Path, args: list[str], message: str) -> None:
    """The command exits 2 with ``message`` in one error line, and submitted nothing."""
    done = jt(env, *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not db_path.exists() or stored(db_path) == []


@pytest.mark.parametrize(("args", "message"), [
    # before: a RecursionError traceback (exit 1)
    (["submit", "--code", "print(1)", "--input", DEEP], "--input is nested too deep"),
    (["submit", "--name", "cli_greet", "--param", f"name={DEEP}"], "--param name=… is nested"),
    (["submit", "--name", "cli_greet", "--params", f'{{"x": {DEEP}}}'],
     "--params is nested too deep"),
    # before: taken, and dropped without a word
    (["submit", "--code", "print(x)", "--param", "x=5"], "--param and --params go with"),
    (["submit", "--code", "print(x)", "--params", '{"x": 5}'], "--param and --params go with"),
    (["submit", "--name", "cli_greet", "--input", "[1]"], "--input goes with --code"),
    # before: exit 0, the command queued with "params": null
    (["submit", "--param", "a=1", "--command", "echo", "hi"], "--param and --params go with"),
    (["submit", "--params", '{"b": 2}', "--command", "echo"], "--param and --params go with"),
])
def test_input_a_job_cannot_take_is_one_clear_error(env: dict[str, str], db_path: Path,
                                                    args: list[str], message: str) -> None:
    refused_clearly(env, db_path, args, message)


def test_a_code_job_runs_a_file_given_with_code_file(env: dict[str, str], db_path: Path,
                                                    tmp_path: Path) -> None:
    source = "import json\nprint(json.dumps({'rows': 7}))\n"
    (tmp_path / "job.py").write_text(source)
    done = jt(env, "submit", "--queue", "parked", "--code-file", "job.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [task] = stored(db_path)
    assert task.spec["code"] == source and task.kind == "code", task.spec


@pytest.mark.parametrize("given", ["job.py", "./job.py"])
def test_a_file_name_given_as_code_is_refused_naming_code_file(
        env: dict[str, str], db_path: Path, tmp_path: Path, given: str) -> None:
    # before: queued as the source "job.py", which failed on the worker with
    # "NameError: name 'job' is not defined"
    (tmp_path / "job.py").write_text("print(1)\n")
    done = jt(env, "submit", "--queue", "parked", "--code", given, cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"--code-file {given}" in done.stderr and "Traceback" not in done.stderr, \
        done.stderr
    assert not db_path.exists() or stored(db_path) == []


@pytest.mark.parametrize(("make", "message"), [
    (lambda folder: None, "no such file"),
    (lambda folder: (folder / "job.py").mkdir(), "is a folder"),
    (lambda folder: (folder / "job.py").write_bytes(b"print('\xff')\n"), "not UTF-8"),
])
def test_a_code_file_that_cannot_be_read_is_one_clear_error(
        env: dict[str, str], db_path: Path, tmp_path: Path, make: Any, message: str) -> None:
    make(tmp_path)
    done = jt(env, "submit", "--queue", "parked", "--code-file", "job.py", cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr and "job.py" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert not db_path.exists() or stored(db_path) == []


def test_an_id_the_locale_cannot_decode_is_one_clear_error(env: dict[str, str],
                                                           db_path: Path) -> None:
    # before: a UnicodeEncodeError traceback from the database for a byte the locale could
    # not decode (the shell passes it; Python keeps it as a lone surrogate)
    assert jt(env, "submit", "--queue", "parked", "--command", "true").returncode == 0
    for command in ("show", "cancel", "logs", "rerun"):
        done = jt(env, command, "ab\udcff")
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert "not valid Unicode" in done.stderr and "Traceback" not in done.stderr, \
            (command, done.stderr)


def test_a_task_module_missing_a_dependency_is_named(env: dict[str, str], db_path: Path,
                                                     tmp_path: Path) -> None:
    # before: "error: No module named 'nosuch_dependency_xyz'", the module given with
    # --modules named nowhere: read as that module not found, with several given unclear
    module = tmp_path / "needs_more.py"
    module.write_text("import nosuch_dependency_xyz  # noqa\n")
    for command in (["worker"], ["submit", "--name", "x"]):
        done = jt(env, *command, "--modules", str(module))
        assert done.returncode == 2, (done.stdout, done.stderr)
        (error,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert f"task module {module} failed to import" in error, done.stderr
        assert "No module named 'nosuch_dependency_xyz'" in error, done.stderr
    assert not db_path.exists()


@pytest.mark.parametrize(("source", "message"), [
    ("raise RuntimeError('boom at import')\n", "RuntimeError: boom at import ("),
    ("def broken(:\n", "SyntaxError: "),
])
def test_a_task_module_that_fails_at_import_is_one_clear_error(
        env: dict[str, str], db_path: Path, tmp_path: Path, source: str, message: str) -> None:
    # before: a module whose own code raised (a bug, a syntax error) ended worker, submit
    # and rerun with a 20-line importlib traceback and exit 1
    module = tmp_path / "buggy_tasks.py"
    module.write_text(source)
    for command in (["worker"], ["submit", "--name", "x"]):
        done = jt(env, *command, "--modules", str(module))
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        (error,) = done.stderr.splitlines()
        assert error.startswith(f"error: task module {module} failed to import: {message}"), \
            error
        assert "buggy_tasks.py" in error.split(message, 1)[1] and "line 1" in error, error
    assert not db_path.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["list", "--limit", "-1"], "must be from 1 to 1000000, not -1"),
    (["list", "--limit", "99999999999999999999"], "must be from 1 to"),
    (["worker", "--concurrency", "0"], "must be from 1 to 10000, not 0"),
    (["submit", "--priority", "99999999999999999999", "--command", "true"],
     "priority: must be an integer from -1000000 to 1000000"),
    (["submit", "--timeout", "nan", "--command", "true"], "timeout: must be a positive"),
])
def test_numbers_out_of_range_are_one_clear_error(env: dict[str, str], db_path: Path,
                                                  args: list[str], message: str) -> None:
    # before: a negative --limit listed the whole history, a huge one and a huge
    # --priority ended in OverflowError, --concurrency 0 served forever running nothing,
    # --timeout nan was stored as no timeout
    refused_clearly(env, db_path, args, message)


@pytest.mark.parametrize(("args", "message"), [
    (["submit", "--name", "cli_greet", "--params", "{bad"], "--params is not JSON"),
    (["submit", "--name", "cli_greet", "--params", "[1, 2]"],
     "--params takes a JSON object, not an array"),
    (["submit", "--name", "cli_greet", "--params", "null"],
     "--params takes a JSON object, not null"),  # before: "not a NoneType"
    (["submit", "--code", "print(1)", "--input", "{bad"], "--input is not JSON"),
    # before: the last of a key given twice was taken, silently
    (["submit", "--name", "cli_greet", "--params", '{"who": "a", "who": "b"}'],
     "--params: who: given more than once"),
    (["submit", "--code", "print(1)", "--input", '{"a": {"b": 1, "b": 2}}'],
     "--input: a.b: given more than once"),
    (["submit", "--code", "print(1)", "--input", '{"a": {"b": 1, "b": 2}, "a": 3}'],
     "--input: a: given more than once"),
    (["submit", "--name", "cli_greet", "--param", 'who={"x": 1, "x": 2}'],
     "--param who=…: x: given more than once"),
    (["worker", "--queue", "a b"], "not a queue name: 'a b'"),
    (["worker", "--queue", ""], "not a queue name: ''"),
    # the option's error, not "no task registered" (nor "queued for the server's
    # workers" when a server serves the queue) for a name this shell does not know
    (["submit", "--name", "not_here", "--queue", "bad queue"],
     "not a queue name: 'bad queue'"),
    (["submit", "--name", "not_here", "--timeout", "-1"], "timeout: must be a positive"),
    (["submit", "--name", "cli_greet", "--timeout", "-5"], "timeout: must be a positive"),
    # before: ImportError tracebacks (exit 1) for a --modules file that is not there
    (["submit", "--name", "x", "--modules", "/no such/file.py"],
     "task module file /no such/file.py does not exist"),
    (["worker", "--modules", "/no such/file.py"],
     "task module file /no such/file.py does not exist"),
    # before: "give exactly one of name, command, notebook, code (got none)" to a user
    # who gave --command, with nothing after it
    (["submit", "--command"], "--command needs the command's arguments after it"),
    (["submit", "--wait", "--command"], "--command needs the command's arguments after it"),
])
def test_malformed_input_is_one_clear_error(env: dict[str, str], db_path: Path,
                                            args: list[str], message: str) -> None:
    # before: JSONDecodeError, TypeError and ValueError tracebacks, or the wrong reason
    done = jt(env, *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    # said once (before, a field's error was printed again under the message)
    assert done.stderr.count(message) == 1, done.stderr
    assert "queued" not in done.stderr
    assert not db_path.exists() or stored(db_path) == []


# an OSC title change, a colour, a clear screen, a right-to-left override
HOSTILE = "\x1b]0;pwned\x07\x1b[31mred\x1b[2J \u202eevil"


def test_task_and_schedule_text_cannot_steer_the_terminal(env: dict[str, str], db_path: Path,
                                                          tmp_path: Path) -> None:
    # before: 'list' printed a label's escape sequences raw (the terminal's title became
    # "pwned", the screen was cleared), and 'schedule list' a schedule's name
    from jupyter_tasks.manager import TaskManager
    from jupyter_tasks.scheduler import Scheduler
    from jupyter_tasks.server.handlers import parse_job_body

    async def write() -> None:
        async with TaskManager(db_path, runs_background=False, make_default=False) as m:
            await m.submit_spec({"command": ["true"]}, mode="job", label=HOSTILE,
                                owner=HOSTILE, queue="parked")
            await Scheduler(m).create(
                {"name": HOSTILE, "cron": "0 7 * * *", "job": {"command": ["true"]}},
                owner="me", parse_job=lambda job: parse_job_body(job, str(tmp_path)))

    asyncio.run(write())
    for args in (["list"], ["schedule", "list"], ["schedule", "list", "--json"]):
        done = jt(env, *args)
        assert done.returncode == 0, done.stderr
        assert "\x1b" not in done.stdout and "\x07" not in done.stdout, repr(done.stdout)
        assert "\u202e" not in done.stdout, repr(done.stdout)
    shown = jt(env, "list").stdout
    assert "\\x1b]0;pwned\\x07" in shown and "\\u202eevil" in shown, shown
    # a part of an id that matches several tasks lists their labels, as text too
    asyncio.run(write())
    task_ids = [t.id for t in stored(db_path)]
    common = task_ids[0][:6]  # ids begin with their time: these two share their start
    assert all(task_id.startswith(common) for task_id in task_ids), task_ids
    ambiguous = jt(env, "show", common)
    assert ambiguous.returncode == 2 and "matches" in ambiguous.stderr, ambiguous.stderr
    assert "\x1b" not in ambiguous.stderr and "\\x1b]0;pwned" in ambiguous.stderr


def on_a_terminal(env: dict[str, str], *args: str) -> bytes:
    """What ``jupyter tasks ARGS`` writes to a terminal (a pty), stdout and stderr."""
    master, slave = os.openpty()
    proc = subprocess.Popen(["jupyter", "tasks", *args], env=env, stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    output = b""
    try:
        while True:
            try:
                chunk = os.read(master, 1 << 16)  # returns once the command wrote or ended
            except OSError:  # EIO: every writer of the pty has exited
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(master)
        proc.wait(60)
    assert proc.returncode == 0, output
    return output


def test_a_jobs_log_cannot_steer_the_terminal_it_is_read_in(env: dict[str, str],
                                                            db_path: Path) -> None:
    # before: 'logs' wrote a job's output raw, so the job set the title, cleared the screen
    # and planted a hyperlink in the terminal of whoever read its log; colours stay
    from jupyter_tasks.manager import TaskManager

    written = ("plain \x1b[31mred\x1b[0m\tdone\r\n" + HOSTILE +
               "\x1b]8;;http://evil.example/\x07click\x1b]8;;\x07\n")

    async def write() -> str:
        async with TaskManager(db_path, runs_background=False, make_default=False) as m:
            task = await m.submit_spec({"command": ["true"]}, mode="job", queue="parked")
            await m.store.append_logs(task.id, [(time.time(), "stdout", written)])
            return task.id

    task_id = asyncio.run(write())
    shown = on_a_terminal(env, "logs", task_id)
    assert b"\x1b]" not in shown and b"\x07" not in shown and b"\x1b[2J" not in shown, shown
    assert "\u202e".encode() not in shown, shown
    assert b"plain \x1b[31mred\x1b[0m\tdone" in shown, shown
    assert b"\\x1b]0;pwned\\x07" in shown and b"\\x1b]8;;http://evil.example/" in shown, shown
    # into a file or a pipe, the log is what the job wrote
    piped = subprocess.run(["jupyter", "tasks", "logs", task_id], env=env, capture_output=True,
                           timeout=120)
    assert piped.stdout == written.encode()


def test_wide_characters_keep_the_tables_columns(env: dict[str, str], db_path: Path,
                                                 tmp_path: Path) -> None:
    # before: padded by len(), a CJK or emoji label shifted the columns after it
    from jupyter_tasks.manager import TaskManager
    from jupyter_tasks.scheduler import Scheduler
    from jupyter_tasks.server.handlers import parse_job_body

    async def write() -> None:
        async with TaskManager(db_path, runs_background=False, make_default=False) as m:
            for label in ("中文标签很长的中文标签", "plain label", "Über täglich 💥"):
                await m.submit_spec({"command": ["true"]}, mode="job", label=label,
                                    queue="parked")
                await Scheduler(m).create(
                    {"name": label, "cron": "0 7 * * *", "job": {"command": ["true"]}},
                    owner="me", parse_job=lambda job: parse_job_body(job, str(tmp_path)))

    asyncio.run(write())
    from jupyter_tasks.cli_common import cell_width

    for args, column in ((["list"], "PROGRESS"), (["schedule", "list"], "CRON")):
        lines = jt(env, *args).stdout.splitlines()
        at = cell_width(lines[0][:lines[0].index(column)])
        for line in lines[1:]:  # the column after the label starts in the same cell
            cells, before = 0, ""
            for ch in line:
                if cells >= at:
                    break
                before += ch
                cells = cell_width(before)
            assert cells == at and line[len(before) - 1] == " ", (args, line)


def test_a_name_no_live_worker_has_is_refused_not_queued_for_good(
        env: dict[str, str], db_path: Path, tmp_path: Path) -> None:
    # before: `submit --name gret` (a typo of a task the server had from its command line)
    # said "queued for the server's workers", and the job waited for good; doctor found
    # "no problem". Live workers now record the names they claim
    worker_env = dict(env)  # the worker knows cli_greet from the config
    shell = {**env, "JUPYTER_CONFIG_DIR": str(tmp_path / "empty")}  # this shell does not
    terminal = tmp_path / "worker.out"
    with open(terminal, "wb") as out:
        worker = subprocess.Popen(["jupyter", "tasks", "worker", "--queue", "side"],
                                  env=worker_env, cwd=tmp_path, stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        eventually_sync(lambda: "serving side" in terminal.read_text(), timeout=60,
                        what="the worker serving queue side")
        typo = jt(shell, "submit", "--name", "cli_gret", "--queue", "side")
        assert typo.returncode == 2, typo
        assert "no live worker of queue 'side' has a task named 'cli_gret'" in typo.stderr
        assert "they have: cli_greet" in typo.stderr
        assert stored(db_path) == []  # nothing queued
        known = jt(shell, "submit", "--name", "cli_greet", "--queue", "side",
                   "--param", "name=Bo", "--wait")
        assert known.returncode == 0, known
        assert "not registered in this shell; queued for a worker that has it" in known.stderr
        assert json.loads(known.stdout)["result"] == "hello Bo"

        # a job for a name the live worker lacks, queued by a process that had it
        async def queue_other() -> None:
            from jupyter_tasks import TaskManager

            async with TaskManager(db_path, runs_background=False, make_default=False) as m:
                await m.enqueue_by_name("cli_other", {}, label="other", queue="side")

        asyncio.run(queue_other())
        doctor = jt(shell, "doctor")
        assert doctor.returncode == 0, doctor
        assert "1 job of queue 'side' waits for task 'cli_other', which no live worker of " \
               "that queue has registered" in doctor.stdout, doctor.stdout
    finally:
        interrupt(worker)


def test_the_dashboards_usage_names_the_command_as_typed(env: dict[str, str]) -> None:
    # before: `jupyter-tasks-dashboard --help` said "usage: jupyter tasks dashboard"
    for argv, usage in ((["jupyter-tasks-dashboard", "--help"], "usage: jupyter-tasks-dashboard"),
                        (["jupyter", "tasks", "dashboard", "--help"],
                         "usage: jupyter tasks dashboard")):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and done.stdout.startswith(usage), (argv, done.stdout)


def test_list_shows_rows_whose_progress_holds_anything(db_path: Path, env: dict[str, str]
                                                       ) -> None:
    # before: one row with progress {"current": "Decimal('2.5')", ...} (what progress() of
    # a Decimal stored) made `jupyter tasks list` crash for everyone on the database
    from tests.engine.test_progress_values import STORED

    async def write() -> None:
        async with await Store.open(db_path) as store:
            now = time.time()
            await store.insert_task_rows(
                {"id": new_task_id(), "kind": "function", "mode": "job", "status": "running",
                 "name": "odd", "label": f"odd {i}", "params": {}, "spec": {"name": "odd"},
                 "queue": "default", "progress": progress, "created_at": now,
                 "updated_at": now, "started_at": now}
                for i, progress in enumerate(STORED))

    asyncio.run(write())
    listed = jt(env, "list")
    assert listed.returncode == 0, listed.stderr
    assert all(f"odd {i}" in listed.stdout for i in range(len(STORED))), listed.stdout


def test_list_shows_no_progress_for_a_job_back_in_its_queue(db_path: Path,
                                                             env: dict[str, str]) -> None:
    # before: "queued … 16%" for a job put back after its worker stopped, while the panel
    # shows no bar for it (its next attempt starts from nothing)
    async def write() -> None:
        async with await Store.open(db_path) as store:
            now = time.time()
            await store.insert_task_rows(
                {"id": new_task_id(), "kind": "function", "mode": "job", "status": status,
                 "name": "again", "label": f"again {status}", "params": {},
                 "spec": {"name": "again"}, "queue": "default",
                 "progress": {"current": 16, "total": 100}, "created_at": now,
                 "updated_at": now} for status in ("queued", "running"))

    asyncio.run(write())
    listed = jt(env, "list").stdout.splitlines()
    assert "16%" not in next(line for line in listed if "again queued" in line), listed
    assert "16%" in next(line for line in listed if "again running" in line), listed


def test_a_worker_on_a_new_database_says_so(env: dict[str, str], tmp_path: Path) -> None:
    # before: `jupyter tasks worker` with a mistyped --db (or no $JUPYTER_TASKS_DB in its
    # unit) made a new file and served it in silence, while the jobs waited in the real one
    typo = tmp_path / "typo.db"
    out = tmp_path / "worker.out"

    def serve_once() -> str:
        """What a worker on ``typo`` says until it serves its queue (then it is stopped)."""
        with out.open("wb") as terminal:
            worker = subprocess.Popen(["jupyter", "tasks", "--db", str(typo), "worker"],
                                      env=env, cwd=tmp_path, stdout=terminal,
                                      stderr=subprocess.STDOUT)
            try:
                eventually_sync(lambda: "serving default" in out.read_text(), timeout=60,
                                what="the worker serving its queue")
            finally:
                interrupt(worker)
        return out.read_text()

    said = serve_once()
    assert f"no database at {typo}: creating a new one" in said, said
    said = serve_once()  # the file it made is not new to the next one
    assert "creating a new one" not in said, said


def test_a_refused_command_leaves_no_new_database_and_a_new_one_is_said(
        env: dict[str, str], tmp_path: Path) -> None:
    # (said before the work is queued: `run --wait` on a file nobody serves never ends)
    # before: a refused `submit --name nothing` left a new 221 KB database at a mistyped
    # --db, and `submit --command` queued work in a new file with no word that nobody
    # (no server, no worker) used that file
    typo = tmp_path / "typo.db"
    for args in (["submit", "--name", "nothing"],
                 ["schedule", "add", "nightly", "--cron", "not a cron", "--command", "true"]):
        done = jt(env, "--db", str(typo), *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("typo.db")], args
    done = jt(env, "--db", str(typo), "submit", "--command", "true")
    assert done.returncode == 0, done.stderr
    assert f"no database at {typo}: creating a new one" in done.stderr, done.stderr
    assert len(stored(typo)) == 1
    again = jt(env, "--db", str(typo), "submit", "--command", "true")
    assert again.returncode == 0 and "creating a new one" not in again.stderr, again.stderr


def test_ctrl_c_in_submit_wait_says_which_job_goes_on(env: dict[str, str],
                                                      tmp_path: Path) -> None:
    # before: `submit --wait` on a queue nobody served waited without a word and printed
    # the id only at the job's end, so Ctrl-C left a queued job the user could not name
    said = tmp_path / "stderr"
    with said.open("w") as terminal:
        # as from a terminal: Ctrl-C not ignored. A test run before this one in the same
        # xdist worker (a Jupyter server's) can leave SIGINT ignored, which a child inherits
        waiting = subprocess.Popen(
            ["jupyter", "tasks", "submit", "--queue", "nobody", "--wait", "--command", "true"],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=terminal, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            eventually_sync(lambda: "waiting for it" in said.read_text(), timeout=60,
                            what="submit --wait saying what it waits for")
            interrupt(waiting)
        finally:
            if waiting.poll() is None:
                waiting.kill()
                waiting.wait(10)
    [task] = stored(Path(env["JUPYTER_TASKS_DB"]))
    ident = task.id[-SHORT_ID:]
    lines = said.read_text().splitlines()
    assert waiting.returncode == 130, lines
    assert f"{ident} queued; waiting for it (Ctrl-C stops waiting, not the job)" in lines
    assert [line for line in lines if "no server or `jupyter tasks worker` serves queue "
            "'nobody' now" in line]
    assert lines[-1] == (f"stopped waiting; {ident} goes on "
                         f"(`jupyter tasks cancel {ident}` stops it)")
    assert task.status == "queued" and not task.cancel_requested


def test_a_db_under_home_written_with_a_tilde_is_the_file_in_home(
        env: dict[str, str], tmp_path: Path) -> None:
    # `--db=~/tasks.db`: the shell leaves a tilde after `--db=` as it is. Before: submit
    # made a folder named `~` in the current folder and a new database in it, while
    # JUPYTER_TASKS_DB=~/tasks.db named the file in the home folder
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {**env, "HOME": str(home)}
    for args in (["--db=~/tasks.db", "submit", "--command", "true"],
                 ["list", "--db=~/tasks.db"], ["schedule", "list", "--db", "~/tasks.db"]):
        done = jt(env, *args, cwd=work)
        assert done.returncode == 0, (args, done.stderr)
    assert list(work.iterdir()) == []
    assert len(stored(home / "tasks.db")) == 1


def test_list_says_when_more_tasks_match_than_it_shows(db_path: Path,
                                                       env: dict[str, str]) -> None:
    # before: `jupyter tasks list` showed the newest 50 of 60 tasks with no sign that it
    # had stopped there: the table read as the whole history
    async def write(count: int) -> None:
        async with await Store.open(db_path) as store:
            now = time.time()
            await store.insert_task_rows(
                {"id": new_task_id(), "kind": "function", "mode": "job", "status": "queued",
                 "name": "many", "label": f"many {i}", "params": {}, "spec": {"name": "many"},
                 "queue": "default", "created_at": now + i, "updated_at": now + i}
                for i in range(count))

    asyncio.run(write(60))
    listed = jt(env, "list")
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) == 51  # the header and the newest 50
    assert listed.stderr == "note: the newest 50 shown; more match (--limit N shows more)\n"
    as_json = jt(env, "list", "--json", "--limit", "10")
    assert len(json.loads(as_json.stdout)) == 10 and "more match" in as_json.stderr
    whole = jt(env, "list", "--limit", "60")
    assert len(whole.stdout.splitlines()) == 61 and whole.stderr == "", whole.stderr


@pytest.mark.parametrize(("source", "message"), [
    (None, "does not exist"),
    ("raise RuntimeError('boom at import')\n",
     "failed to import: RuntimeError: boom at import"),
])
def test_a_worker_whose_configured_task_module_fails_says_so_in_one_line(
        env: dict[str, str], tmp_path: Path, source: str | None, message: str) -> None:
    # JupyterTasksApp.task_modules of the Jupyter config, not --modules. Before: the
    # worker ended with a traceback (exit 1), the --modules case already one line
    module = tmp_path / "configured_tasks.py"
    if source is not None:
        module.write_text(source)
    config = tmp_path / "config-of-a-worker"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(json.dumps(
        {"JupyterTasksApp": {"task_modules": [str(module)]}}))
    done = jt({**env, "JUPYTER_CONFIG_DIR": str(config)}, "worker")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    (error,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert str(module) in error and message in error, done.stderr


def test_a_folder_given_as_a_task_module_is_refused_not_served_empty(
        env: dict[str, str], tmp_path: Path) -> None:
    # `--modules examples` for examples/tasks.py: a folder without __init__.py imports as
    # an empty namespace package. Before: the worker served with no task registered, and
    # every job naming examples' tasks waited for another worker, without a word
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "tasks.py").write_text(GREET)
    on_path = {**env, "PYTHONPATH": os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])}
    for command in (["worker"], ["submit", "--name", "cli_greet"]):
        done = jt(on_path, *command, "--modules", "examples", cwd=tmp_path)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert done.stderr.splitlines() == [
            "error: task module examples is a folder without __init__.py, which registers "
            "no task: name its modules instead (examples.tasks)"], done.stderr
    # and a module name for a file of this folder, which a command does not import from
    mine = tmp_path / "my_tasks.py"
    mine.write_text(GREET)
    done = jt(env, "submit", "--name", "cli_greet", "--modules", "my_tasks", cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.splitlines() == [
        "error: No module named 'my_tasks' (my_tasks.py in this folder is given by its "
        "path: --modules my_tasks.py)"], done.stderr


def test_version_is_printed(env: dict[str, str]) -> None:
    # before: "error: the following arguments are required: cmd", exit 2
    from jupyter_tasks import __version__

    done = jt(env, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"jupyter-tasks {__version__}"
