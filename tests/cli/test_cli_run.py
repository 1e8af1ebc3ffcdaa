"""``jupyter tasks run``: papermill's command line for notebook jobs (issue 14).

A real database file, a real ``jupyter tasks worker`` running the jobs in real kernels,
and ``papermill`` itself (a subprocess) as the oracle of what a command line injects.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from jupyter_tasks.cli import SHORT_ID, papermill_value
from jupyter_tasks.models import Task
from jupyter_tasks.store import Store
from tests.jobs.conftest import write_notebook
from tests.launcher import interrupt
from tests.waiting import eventually_sync

PARAMETERS = ("i = 0\nf = 0.0\nt = False\nn = 'x'\ns = 'x'\nraw = 'x'\nneg = 0\nbig = 0\n"
              "sci = 0\nylist = []\nydict = {}\nydate = ''\nfile_only = ''\norder = 0\n"
              "b64 = ''\nunder = 0")


@pytest.fixture
def env(tmp_path: Path, db_path: Path) -> dict[str, str]:
    """The shell of a user: this test's database, no configured task modules."""
    environ = dict(os.environ)
    environ.pop("JUPYTER_TASKS_MODULES", None)
    environ.update(JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
                   JUPYTER_TASKS_DB=str(db_path),
                   JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    return environ


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The folder the commands run in (the root notebooks and outputs must stay inside)."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def jt(env: dict[str, str], root: Path, *args: str,
       timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["jupyter", "tasks", *args], env=env, cwd=root,
                          capture_output=True, text=True, timeout=timeout)


def stored(db_path: Path) -> list[Task]:
    async def read() -> list[Task]:
        store = await Store.open(db_path, read_only=True)
        try:
            return await store.list_tasks(limit=100)
        finally:
            await store.close()

    return asyncio.run(read())


def log_text(db_path: Path, task: Task) -> str:
    async def read() -> str:
        store = await Store.open(db_path, read_only=True)
        try:
            return "".join(e.text for e in await store.get_logs(task.id))
        finally:
            await store.close()

    return asyncio.run(read())


def executed_notebook(db_path: Path, task: Task) -> Any:
    """The executed notebook the job kept as its artifact."""
    async def read() -> Any:
        store = await Store.open(db_path, read_only=True)
        try:
            [artifact] = [a for a in await store.list_artifacts(task.id)
                          if a.name.endswith(".ipynb")]
            return nbformat.read(store.artifact_path(artifact), as_version=4)
        finally:
            await store.close()

    return asyncio.run(read())


@pytest.fixture
def worker(env: dict[str, str], root: Path, db_path: Path) -> Iterator[subprocess.Popen[str]]:
    """``jupyter tasks worker`` on this database, registered before the test goes on."""
    proc = subprocess.Popen(["jupyter", "tasks", "worker", "--concurrency", "2"], env=env,
                            cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def registered() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the worker exited with {proc.returncode}")
        done = jt(env, root, "doctor", "--json")
        return done.returncode in (0, 1) and bool(json.loads(done.stdout).get("workers"))

    eventually_sync(registered, timeout=120, what="the worker registered")
    yield proc
    interrupt(proc, grace=60)


def injected(nb: Any) -> tuple[list[str], dict[str, tuple[str, Any]]]:
    """The injected cell's names in order, and each value with its type, as the kernel sees them."""
    [cell] = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    names: dict[str, Any] = {}
    # the cell is Python literals papermill or we wrote: run it as the kernel would
    exec(compile(cell.source, "<injected>", "exec"), {}, names)
    return list(names), {k: (type(v).__name__, v) for k, v in names.items()}


def test_values_read_as_papermill_reads_them() -> None:
    from papermill.cli import _resolve_type  # the oracle, for the values a shell can type

    for text in ("True", "False", "None", "true", "1", "-1", "007", "1_000", " 12 ", "1.5",
                 "-0.0", "1e3", "1e999", "nan", "inf", "0x1f", "12345678901234567890", "",
                 "hello", "1.2.3", "None ", "١٢"):
        ours, theirs = papermill_value(text), _resolve_type(text)
        assert (type(ours), repr(ours)) == (type(theirs), repr(theirs)), text


def test_parameters_land_as_papermill_injects_them(env: dict[str, str], root: Path,
                                                   db_path: Path, worker: Any) -> None:
    write_notebook(root / "report.ipynb", [(PARAMETERS, ["parameters"]),
                                           "print('order is', order)"])
    (root / "params.yaml").write_text("file_only: from the file\norder: 1\nylist: [0]\n")
    encoded = base64.b64encode(b"b64: decoded\norder: 0\n").decode()
    # every kind of source, and overlaps whose winner is papermill's order (-b, -f, -y, -p,
    # -r), not the command line's
    line = ["-p", "i", "3", "-p", "f", "2.5", "-p", "t", "True", "-p", "n", "None",
            "-p", "s", "hello world", "-r", "raw", "42", "-p", "neg", "-7",
            "-p", "big", "12345678901234567890", "-p", "sci", "1e3", "-p", "under", "1_000",
            # values that start with '-' (before: "expected 2 arguments" from argparse)
            "-p", "sci_neg", "-2.5e3", "-r", "dash", "-x",
            "-y", "ylist: [1, two, 3.0, null]\nydict: {a: 1, b: [true]}\nydate: 2024-01-02",
            "-y", "order: 2", "-f", "params.yaml", "-b", encoded, "--inject-paths",
            "-k", "python3", "--cwd", ".", "--log-output", "--no-progress-bar",
            "--request-save-on-cell-execute", "--autosave-cell-every", "10",
            "--log-level", "WARNING", "--start-timeout", "60"]
    # papermill's own line, with `papermill` changed to `jupyter tasks run`
    ours = jt(env, root, "run", "report.ipynb", "out.ipynb", *line, "--wait")
    assert ours.returncode == 0, ours.stderr
    assert "order is 2" in ours.stdout  # the log, streamed while waiting
    # the same line again (ours has finished with out.ipynb: we read its artifact)
    theirs = subprocess.run(["papermill", "report.ipynb", "out.ipynb", *line], cwd=root,
                            env=env, capture_output=True, text=True, timeout=300)
    assert theirs.returncode == 0, theirs.stderr

    [task] = stored(db_path)
    assert task.status == "succeeded"
    names, expected = injected(nbformat.read(root / "out.ipynb", as_version=4))
    # the same names, values and types; the store keeps a spec's keys sorted (its JSON is
    # canonical, for content hashes), so the lines may come in another order
    ours_names, ours_values = injected(executed_notebook(db_path, task))
    assert ours_values == expected and sorted(ours_names) == sorted(names)
    assert expected["order"] == ("int", 2) and expected["ydate"] == ("str", "2024-01-02")
    assert expected["raw"] == ("str", "42") and expected["n"] == ("NoneType", None)
    assert expected["sci_neg"] == ("float", -2500.0) and expected["dash"] == ("str", "-x")
    assert expected["PAPERMILL_OUTPUT_PATH"] == ("str", "out.ipynb")


def test_injected_paths_name_the_files_from_where_the_kernel_runs(
        env: dict[str, str], root: Path, db_path: Path, worker: Any) -> None:
    # before: 'sub/nb.ipynb' as typed, which the kernel (in sub/, the notebook's folder)
    # could not open; papermill's kernel runs where the path was typed
    (root / "sub").mkdir()
    (root / "out").mkdir()
    write_notebook(root / "sub" / "nb.ipynb", [
        "import os\n"
        "print('input there:', os.path.isfile(PAPERMILL_INPUT_PATH))\n"
        "print('output folder there:', os.path.isdir(os.path.dirname(PAPERMILL_OUTPUT_PATH)))"])
    done = jt(env, root, "run", "sub/nb.ipynb", "out/nb.ipynb", "--inject-paths", "--wait")
    assert done.returncode == 0, done.stderr
    assert "input there: True" in done.stdout and "output folder there: True" in done.stdout
    [task] = stored(db_path)
    assert task.spec["parameters"] == {"PAPERMILL_INPUT_PATH": "nb.ipynb",
                                       "PAPERMILL_OUTPUT_PATH": os.path.join("..", "out",
                                                                             "nb.ipynb")}


def test_base64_parameters_may_be_wrapped_as_base64_writes_them(
        env: dict[str, str], root: Path, db_path: Path) -> None:
    # before: refused ("is not base64"); GNU base64 wraps its output at 76 characters,
    # and papermill reads such a line
    write_notebook(root / "nb.ipynb", ["x = 1"])
    yaml_text = f'long: "{"z" * 80}"\na: 1\n'.encode()
    wrapped = base64.encodebytes(yaml_text).decode()  # a newline every 76 characters
    assert "\n" in wrapped.strip()
    done = jt(env, root, "run", "nb.ipynb", "out.ipynb", "-b", wrapped)
    assert done.returncode == 0, done.stderr
    [task] = stored(db_path)
    assert task.spec["parameters"] == {"long": "z" * 80, "a": 1}


def test_an_empty_kernel_name_means_the_notebooks_kernel_as_in_papermill(
        env: dict[str, str], root: Path, db_path: Path) -> None:
    # before: refused as "kernel_name must be a kernel's name", naming the REST field
    write_notebook(root / "nb.ipynb", ["x = 1"])
    done = jt(env, root, "run", "nb.ipynb", "-k", "")
    assert done.returncode == 0, done.stderr
    [task] = stored(db_path)
    assert "kernel_name" not in task.spec


def test_without_wait_it_prints_the_id_and_keeps_the_job_options(
        env: dict[str, str], root: Path, db_path: Path) -> None:
    write_notebook(root / "nb.ipynb", ["x = 1"])
    done = jt(env, root, "run", "nb.ipynb", "-p", "a", "1", "--memory-limit", "512",
              "--timeout", "90", "--queue", "reports", "-k", "python3")
    assert done.returncode == 0, done.stderr
    [task] = stored(db_path)
    assert done.stdout.strip() == task.id[-SHORT_ID:]
    assert "no server or `jupyter tasks worker` serves queue 'reports'" in done.stderr
    assert (task.kind, task.status, task.queue) == ("notebook", "queued", "reports")
    assert (task.memory_limit_mb, task.timeout) == (512, 90)
    assert task.spec["parameters"] == {"a": 1} and task.spec["kernel_name"] == "python3"
    # `submit` has the memory limit too (issue 14, finding 7)
    more = jt(env, root, "submit", "--notebook", "nb.ipynb", "--memory-limit", "256")
    assert more.returncode == 0, more.stderr
    assert {t.memory_limit_mb for t in stored(db_path)} == {512, 256}


def test_wait_exits_by_how_the_job_ended(env: dict[str, str], root: Path, db_path: Path,
                                         worker: Any) -> None:
    write_notebook(root / "fails.ipynb", ["print('before')", "raise ValueError('bad input')"])
    write_notebook(root / "sleeps.ipynb", ["print('sleeping', flush=True)",
                                           "import time\ntime.sleep(600)"])
    write_notebook(root / "hog.ipynb", [
        "chunks = []\nimport time\nfor _ in range(400):\n"
        "    chunks.append(b'x' * 10_000_000)\n    time.sleep(0.02)"])

    failed = jt(env, root, "run", "fails.ipynb", "--wait")
    assert failed.returncode == 1
    assert "before" in failed.stdout
    reason = failed.stderr.strip().splitlines()[-1]
    assert reason.startswith("error: ") and "failed" in reason and "ValueError" in reason

    timed_out = jt(env, root, "run", "sleeps.ipynb", "--timeout", "5", "--wait")
    assert timed_out.returncode == 124, timed_out.stderr
    assert timed_out.stderr.strip().splitlines()[-1].endswith("timed out after 5s")

    oom = jt(env, root, "run", "hog.ipynb", "--memory-limit", "200", "--wait")
    assert oom.returncode == 1, oom.stderr
    assert " oom: " in oom.stderr.strip().splitlines()[-1]

    waiting = subprocess.Popen(["jupyter", "tasks", "run", "sleeps.ipynb", "--wait"],
                               env=env, cwd=root, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        task = eventually_sync(
            lambda: next((t for t in stored(db_path) if t.label == "sleeps.ipynb"
                          and t.timeout is None and "sleeping" in log_text(db_path, t)),
                         None),
            timeout=120, what="the sleeping job in its second cell")
        assert jt(env, root, "cancel", task.id).returncode == 0
        out, err = waiting.communicate(timeout=120)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait(10)
    assert waiting.returncode == 1
    assert err.strip().splitlines()[-1] == f"error: {task.id[-SHORT_ID:]} cancelled"
    assert "sleeping" in out


@pytest.mark.parametrize("args, message", [
    (["missing.ipynb"], "error: notebook 'missing.ipynb' does not exist"),
    (["nb.ipynb", "-p", "x", "1e999"], "-p x 1e999: papermill would pass float('inf')"),
    # before: "parameters['x']: nan cannot be stored as JSON", with no way out named
    (["nb.ipynb", "-p", "x", "nan"], "cannot hold; -r x nan passes the text"),
    (["nb.ipynb", "-y", "x: .nan"], "parameters['x']: nan cannot be stored as JSON"),
    (["nb.ipynb", "-y", "x: [1"], "error: -y 'x: [1' is not valid YAML: "),
    (["nb.ipynb", "-y", "[1, 2]"], "must be a YAML mapping of parameter names to values"),
    # before: a RecursionError traceback, exit 1
    (["nb.ipynb", "-y", "a: " + "[" * 1000 + "]" * 1000], "is nested too deep for YAML here"),
    (["nb.ipynb", "-y", "{1: 2}"], "parameters[1]: a key of type int: JSON keys are text"),
    (["nb.ipynb", "-p", "not-a-name", "1"], "parameter names must be Python identifiers"),
    (["nb.ipynb", "-f", "nothere.yaml"], "error: parameters file nothere.yaml: no such file"),
    (["nb.ipynb", "-b", "%%%"], "is not base64"),
    # before: a traceback ending in int()'s 4,300-digit limit
    (["nb.ipynb", "-y", "a: " + "9" * 5000], "a number too long to read"),
    (["../outside.ipynb"], "outside the root folder"),
    # before: out/p-x/../../nb.ipynb, read lexically: the root's own nb.ipynb, overwritten
    (["nb.ipynb", "out/p-{region}.ipynb", "-p", "region", "x/../../nb"],
     "parameter region is 'x/../../nb', which would change the folder written to"),
    (["nb.ipynb", "out/{region}/r.ipynb", "-p", "region", ".."],
     "parameter region is '..', which would change the folder written to"),
    (["nb.ipynb", "--prepare-only"], "error: --prepare-only is not supported"),
    (["nb.ipynb", "--execution-timeout", "5"], "--timeout S limits the whole run"),
    (["nb.ipynb", "--engine", "custom"], "error: --engine is not supported"),
    (["nb.ipynb", "-"], "error: OUTPUT '-' (a pipe) is not supported"),
    # papermill's remote storage: before, `s3://b/out.ipynb` was written, "succeeded",
    # to a local folder named `s3:` (the run's result said "s3:/b/out.ipynb")
    (["nb.ipynb", "s3://bucket/out.ipynb"],
     "error: OUTPUT 's3://bucket/out.ipynb' (a URL) is not supported"),
    (["https://example.com/nb.ipynb"],
     "error: NOTEBOOK 'https://example.com/nb.ipynb' (a URL) is not supported"),
    (["nb.ipynb", "--inject-output-path"], "need an OUTPUT path"),
    (["nb.ipynb", "--bogus"], "unrecognized arguments: --bogus"),
    (["nb.ipynb", "--cwd", ".."], "error: --cwd .. is not supported: a notebook job runs in"),
    (["nb.ipynb", "--memory-limit", "0"], "must be a positive number"),
    (["nb.ipynb", "-p", "x"], "expected 2 arguments"),
    # before: taken as no --db at all, the default database (an unset `--db "$DB"`)
    (["--db", "", "nb.ipynb"], "argument --db: names no file (an empty path)"),
])
def test_bad_input_is_one_clear_line_and_nothing_is_written(
        env: dict[str, str], root: Path, db_path: Path, args: list[str], message: str) -> None:
    write_notebook(root / "nb.ipynb", ["x = 1"])
    write_notebook(root.parent / "outside.ipynb", ["x = 1"])
    done = jt(env, root, "run", *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr
    assert not db_path.exists()  # not even the database file


def test_output_outside_the_root_is_refused(env: dict[str, str], root: Path,
                                           db_path: Path) -> None:
    write_notebook(root / "nb.ipynb", ["x = 1"])
    done = jt(env, root, "run", "nb.ipynb", "../out.ipynb")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: ") and "output" in done.stderr.lower()
    assert not db_path.exists()


def test_output_is_written_where_papermill_writes_it(env: dict[str, str], root: Path,
                                                      db_path: Path, worker: Any) -> None:
    write_notebook(root / "nb.ipynb", [("who = 'x'", ["parameters"]), "print('hi', who)"])
    (root / "out").mkdir()
    done = jt(env, root, "run", "nb.ipynb", "out/{who}-{id}.ipynb", "-p", "who", "ada",
              "--html", "--wait")
    assert done.returncode == 0, done.stderr
    [task] = stored(db_path)
    written = root / "out" / f"ada-{task.id}.ipynb"
    assert written.is_file(), sorted(p.name for p in (root / "out").iterdir())
    nb = nbformat.read(written, as_version=4)
    nbformat.validate(nb)
    assert injected(nb)[1] == {"who": ("str", "ada")}
    assert any("hi ada" in o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert f"output: out/ada-{task.id}.ipynb" in done.stderr.strip().splitlines()[-1]
