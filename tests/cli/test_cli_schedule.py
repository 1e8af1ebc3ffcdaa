"""The real ``jupyter tasks schedule`` command, and ``jupyter tasks worker`` firing schedules."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import nbformat
import pytest

from jupyter_tasks.store import Store
from tests.waiting import eventually_sync


@pytest.fixture
def env(tmp_path: Path, db_path: Path) -> dict[str, str]:
    environ = dict(os.environ)
    environ.pop("JUPYTER_TASKS_MODULES", None)
    environ.update(JUPYTER_TASKS_DB=str(db_path), JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
                   JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), TZ="Asia/Tokyo")
    return environ


def jt(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["jupyter", "tasks", *args], env=env, capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def rows(db_path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute(sql).fetchall()


def test_add_list_pause_resume_run_rm(env: dict[str, str], tmp_path: Path,
                                      db_path: Path) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "day = 'x'\nn = 1", metadata={"tags": ["parameters"]})])
    nbformat.write(nb, tmp_path / "report.ipynb")
    added = jt(env, "schedule", "add", "--name", "daily report", "--cron", "0 9 * * 1-5",
               "--tz", "Europe/Paris", "--catch-up", "skip", "report.ipynb",
               "-p", "n", "5", "-p", "day", "monday", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    cmd = jt(env, "schedule", "add", "--name", "ping", "--cron", "*/10 * * * *",
             "--command", "echo", "hi", cwd=tmp_path)
    assert cmd.returncode == 0, cmd.stderr
    (job,) = rows(db_path, "SELECT job FROM schedules WHERE name = 'daily report'")
    assert '"parameters":{"day":"monday","n":5}' in job[0]
    listed = jt(env, "schedule", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    header, *lines = listed.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "CRON", "TZ", "NEXT", "RUN", "(LOCAL)", "LAST",
                              "STATUS", "PAUSED"]
    assert "ping" in lines[0] and "daily report" in lines[1]  # newest first
    # 09:00 in Paris is 16:00 or 17:00 in Tokyo: next run shown in local time
    assert "Europe/Paris" in lines[1] and (" 16:00 JST" in lines[1] or " 17:00 JST" in lines[1])
    assert lines[1].rstrip().endswith("no")
    paused = jt(env, "schedule", "pause", "daily report", cwd=tmp_path)
    assert paused.returncode == 0 and "(paused)" in paused.stdout
    assert "yes" in jt(env, "schedule", "list", cwd=tmp_path).stdout.splitlines()[2]
    assert rows(db_path, "SELECT next_run_at FROM schedules WHERE name = 'daily report'") \
        == [(None,)]
    resumed = jt(env, "schedule", "resume", "daily report", cwd=tmp_path)
    assert resumed.returncode == 0 and "next" in resumed.stdout
    (sid,) = rows(db_path, "SELECT id FROM schedules WHERE name = 'ping'")[0]
    ran = jt(env, "schedule", "run", sid[-10:], cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert rows(db_path, "SELECT schedule_id, label, status FROM tasks") == [
        (sid, "ping", "queued")]
    assert "queued" in jt(env, "schedule", "list", cwd=tmp_path).stdout
    removed = jt(env, "schedule", "rm", sid, cwd=tmp_path)
    assert removed.returncode == 0, removed.stderr
    assert rows(db_path, "SELECT name FROM schedules") == [("daily report",)]
    assert rows(db_path, "SELECT schedule_id FROM tasks") == [(sid,)]


@pytest.mark.parametrize(("args", "message"), [
    (("--cron", "61 * * * *", "--command", "true"), "cron"),
    (("--cron", "* * * * *", "--tz", "Nowhere/Land", "--command", "true"), "time zone"),
    (("--cron", "* * * * *", "missing.ipynb"), "does not exist"),
    # before: "invalid request body: notebook: must stay inside the server root", the
    # server's words for a request, on a command whose root is the current folder
    (("--cron", "* * * * *", "../outside.ipynb"),
     "error: invalid job: notebook: must stay inside the current folder ("),
    (("--cron", "* * * * *", "--timeout", "-1", "--command", "true"),
     "error: invalid job: timeout: must be a positive number of seconds"),
    (("--cron", "* * * * *"), "NOTEBOOK or --command"),
])
def test_bad_input_is_one_error_and_nothing_written(env: dict[str, str], tmp_path: Path,
                                                    db_path: Path, args: tuple[str, ...],
                                                    message: str) -> None:
    result = jt(env, "schedule", "add", "--name", "x", *args, cwd=tmp_path)
    assert result.returncode == 2, result
    assert message in result.stderr and "Traceback" not in result.stderr
    if db_path.exists():
        assert rows(db_path, "SELECT count(*) FROM schedules") == [(0,)]
    missing = jt(env, "schedule", "pause", "nope", cwd=tmp_path)
    said = "no schedule matches" if db_path.exists() else "no database at"
    assert missing.returncode == 2 and said in missing.stderr, missing.stderr


def test_a_name_of_bytes_no_text_is_an_error_not_a_traceback(env: dict[str, str],
                                                            tmp_path: Path,
                                                            db_path: Path) -> None:
    # an argument that is not UTF-8 reaches Python as lone surrogates, which SQLite cannot
    # store: the insert raised UnicodeEncodeError, a traceback
    result = jt(env, "schedule", "add", "--name", "report\udcff", "--cron", "* * * * *",
                "--command", "true", cwd=tmp_path)
    assert result.returncode == 2, result
    assert "name" in result.stderr and "Traceback" not in result.stderr, result.stderr
    if db_path.exists():
        assert rows(db_path, "SELECT count(*) FROM schedules") == [(0,)]


def test_a_worker_fires_a_due_schedule(env: dict[str, str], tmp_path: Path,
                                       db_path: Path) -> None:
    added = jt(env, "schedule", "add", "--name", "hourly", "--cron", "0 * * * *",
               "--command", "echo", "fired", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    (sid,) = rows(db_path, "SELECT id FROM schedules")[0]
    due = time.time() - 1

    async def make_due() -> None:
        store = await Store.open(db_path)
        try:
            await store.update_schedule(sid, {"next_run_at": due})
        finally:
            await store.close()

    asyncio.run(make_due())
    worker = subprocess.Popen(["jupyter", "tasks", "worker"], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        eventually_sync(lambda: rows(db_path, "SELECT status FROM tasks") == [("succeeded",)],
                        timeout=60, what="the worker fired and ran the job")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    (task,) = rows(db_path, "SELECT schedule_id, idempotency_key, label FROM tasks")
    assert task == (sid, f"schedule:{sid}:{round(due)}", "hourly")
    (next_run,) = rows(db_path, "SELECT next_run_at FROM schedules")[0]
    assert next_run > due and next_run % 3600 == 0


def test_a_mistyped_db_is_refused_not_created(env: dict[str, str], tmp_path: Path) -> None:
    # before: `schedule list --db typo/tasks.db` made that file and showed an empty table
    typo = tmp_path / "typo" / "tasks.db"
    for args in (["list"], ["rm", "nightly"], ["run", "nightly"], ["pause", "nightly"]):
        done = jt(env, "schedule", *args, "--db", str(typo), cwd=tmp_path)
        assert done.returncode != 0, (args, done.stdout)
        assert f"no database at {typo}" in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "typo").exists()


def test_a_name_that_is_another_schedules_short_id_is_ambiguous(
        env: dict[str, str], tmp_path: Path, db_path: Path) -> None:
    # before: `rm 6265249681` deleted the schedule *named* so, not the one whose id
    # `list` printed as 6265249681, without a word
    first = jt(env, "schedule", "add", "--name", "first", "--cron", "@daily", "--paused",
               "--command", "true", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    short = first.stdout.split()[0]
    named = jt(env, "schedule", "add", "--name", short, "--cron", "@daily", "--paused",
               "--command", "true", cwd=tmp_path)
    assert named.returncode == 0, named.stderr
    removed = jt(env, "schedule", "rm", short, cwd=tmp_path)
    assert removed.returncode != 0 and "matches 2 schedules" in removed.stderr, removed
    assert len(rows(db_path, "SELECT id FROM schedules")) == 2  # nothing deleted
    (whole,) = rows(db_path, "SELECT id FROM schedules WHERE name = 'first'")
    assert jt(env, "schedule", "rm", whole[0], cwd=tmp_path).returncode == 0
    assert rows(db_path, "SELECT name FROM schedules") == [(short,)]


def test_an_ambiguous_reference_lists_the_schedules_it_matches(
        env: dict[str, str], tmp_path: Path, db_path: Path) -> None:
    # before: "'nightly' matches 2 schedules; give more of the id", naming neither: the
    # user who typed a name had no id to give more of (a task's ambiguity lists them)
    for cron in ("@daily", "@hourly"):
        added = jt(env, "schedule", "add", "--name", "nightly", "--cron", cron, "--paused",
                   "--command", "true", cwd=tmp_path)
        assert added.returncode == 0, added.stderr
    removed = jt(env, "schedule", "rm", "nightly", cwd=tmp_path)
    assert removed.returncode == 2 and "Traceback" not in removed.stderr, removed.stderr
    ids = sorted(i for (i,) in rows(db_path, "SELECT id FROM schedules"))
    listed = sorted(line.split()[0] for line in removed.stderr.splitlines()[1:])
    assert listed == ids, removed.stderr
    assert "@hourly" in removed.stderr and "@daily" in removed.stderr
    assert jt(env, "schedule", "rm", ids[0], cwd=tmp_path).returncode == 0
    assert sorted(i for (i,) in rows(db_path, "SELECT id FROM schedules")) == ids[1:]


def test_run_now_answered_by_the_keys_run_says_so(env: dict[str, str], tmp_path: Path,
                                                 db_path: Path) -> None:
    # before: the second run printed the key's queued run's id as if it were a new one
    added = jt(env, "schedule", "add", "--name", "ping", "--cron", "@daily", "--command",
               "echo", "hi", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    with sqlite3.connect(db_path) as conn:  # a key, as a REST or Python schedule has one
        conn.execute("UPDATE schedules SET options = json_set(options, '$.task_key', 'k1', "
                     "'$.queue', 'parked')")
    first = jt(env, "schedule", "run", "ping", cwd=tmp_path)
    assert first.returncode == 0 and "not run" not in first.stderr, first.stderr
    again = jt(env, "schedule", "run", "ping", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout
    assert "not run now: its task key has a run queued already" in again.stderr, again.stderr
    assert len(rows(db_path, "SELECT id FROM tasks")) == 1
