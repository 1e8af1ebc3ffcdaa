"""Looking at tasks never acts as a worker: no worker row, no reaper, no heartbeat.

The database holds a job running on a worker that is alive (its pid is this
test process) but whose heartbeat is old: any reaper would take the job away
from it. ``jupyter tasks list|show|logs`` and the dashboard's ``--db`` source
must leave the workers table and the job exactly as they were.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest
from jupyter_tasks_dashboard.sources import ActionError, DatabaseSource, Filters

from jupyter_tasks.models import Task, WorkerInfo
from jupyter_tasks.store import Store

OTHER = "other-worker"
PARKED = "parked"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jupyter_tasks.cli", *args],
                          capture_output=True, text=True, timeout=120)


def snapshot(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the workers and tasks tables, and the number of events."""
    conn = sqlite3.connect(path)
    try:
        return {
            "workers": conn.execute("SELECT * FROM workers ORDER BY id").fetchall(),
            "tasks": conn.execute("SELECT * FROM tasks ORDER BY id").fetchall(),
            "events": conn.execute("SELECT count(*) FROM events").fetchall(),
        }
    finally:
        conn.close()


async def _seed(path: Path) -> tuple[str, str]:
    store = await Store.open(path)
    try:
        now = time.time()
        await store.register_worker(WorkerInfo(
            id=OTHER, kind="worker", pid=os.getpid(), host=socket.gethostname(),
            started_at=now - 7200, heartbeat_at=now - 3600,  # alive, but silent for an hour
            pid_started_at=psutil.Process().create_time(), queues=["default"]))
        running = Task(id="a" * 32, kind="subprocess", mode="job", status="queued",
                       spec={"command": ["true"]}, label="running elsewhere", max_retries=2,
                       created_at=now, updated_at=now)
        parked = Task(id="b" * 32, kind="subprocess", mode="job", status="queued",
                      queue=PARKED, spec={"command": ["true"]}, label="parked",
                      created_at=now, updated_at=now)
        await store.create_tasks([running, parked])
        claimed = await store.claim_jobs("default", OTHER, lease_seconds=3600)
        assert [t.id for t in claimed] == [running.id]
        await store.append_logs(running.id, [(now, "stdout", "hello\n")])
        return running.id, parked.id
    finally:
        await store.close()


@pytest.fixture
def seeded(db_path: Path) -> tuple[Path, str, str]:
    with ThreadPoolExecutor(1) as pool:
        running, parked = pool.submit(asyncio.run, _seed(db_path)).result()
    return db_path, running, parked


def test_cli_read_commands_leave_workers_and_jobs_alone(seeded):
    path, running, _ = seeded
    before = snapshot(path)
    listed = cli("--db", str(path), "list")
    assert listed.returncode == 0, listed.stderr
    # ids print in the views' short form (the last 10 characters)
    assert running[-10:] in listed.stdout and "running" in listed.stdout
    shown = cli("--db", str(path), "show", running)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["worker_id"] == OTHER
    logs = cli("--db", str(path), "logs", running)
    assert logs.returncode == 0 and logs.stdout == "hello\n", logs.stderr
    assert snapshot(path) == before


def test_cli_list_of_a_missing_file_creates_nothing(tmp_path):
    missing = tmp_path / "nowhere" / "tasks.db"
    for args in (["list"], ["show", "0" * 32], ["logs", "0" * 32]):
        out = cli("--db", str(missing), *args)
        assert out.returncode != 0, out
        assert str(missing) in out.stderr and "no database" in out.stderr, out.stderr
    assert not missing.parent.exists()


async def test_dashboard_database_source_is_no_worker(seeded):
    path, running, parked = seeded
    before = snapshot(path)
    source = DatabaseSource(path)
    await source.start()
    try:
        page = await source.list_tasks(Filters(), None, 50)
        assert {t["id"] for t in page.tasks} == {running, parked}
        stats = await source.stats()
        assert [w["id"] for w in stats["workers"]] == [OTHER]
        assert (await source.get_task(running))["status"] == "running"
        assert snapshot(path) == before
        # actions still write: cancelling the parked job works without a worker row
        assert (await source.cancel(parked))["status"] == "cancelled"
    finally:
        await source.close()
    after = snapshot(path)
    assert after["workers"] == before["workers"]
    assert [row for row in after["tasks"] if row[0] == running] == \
        [row for row in before["tasks"] if row[0] == running]


async def test_dashboard_database_source_needs_an_existing_file(tmp_path):
    missing = tmp_path / "tasks.db"
    source = DatabaseSource(missing)
    with pytest.raises((ActionError, Exception)) as info:
        await source.start()
    assert str(missing) in str(info.value)
    await source.close()
    assert not missing.exists()
