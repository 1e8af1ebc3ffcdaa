"""Finding 6 of the trust issue: a write lock held by another process is a 503, and reads go on.

Another real process holds SQLite's write lock (``BEGIN IMMEDIATE``) on the
server's database file until the test lets it go.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()          # held until the test writes a line (or closes stdin)
conn.execute("ROLLBACK")
"""


@pytest.fixture
def tasks_config() -> dict[str, Any]:
    # long enough that a write is still waiting while the test reads beside it
    return {"busy_timeout": 5.0}


class LockHolder:
    """A process that holds the database's write lock until ``release``."""

    def __init__(self, db_path: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db_path)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("go\n")
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture
def hold_lock(db_path: Path) -> Iterator[Any]:
    holders: list[LockHolder] = []

    def hold() -> LockHolder:
        holders.append(LockHolder(db_path))
        return holders[-1]

    yield hold
    for holder in holders:
        holder.release()


async def test_writes_get_503_with_retry_after_and_reads_go_on(api, tasks_app,
                                                                hold_lock) -> None:
    done = await api.submit({"name": "srv_add", "params": {"a": 1}})
    holder = hold_lock()
    submit = asyncio.ensure_future(api.post(body={"name": "srv_add", "params": {"a": 2}}))
    execute = asyncio.ensure_future(api.post("registry", "srv_add", "execute",
                                             body={"params": {"a": 3}}))
    # reads answer while both writes still wait for the lock: they have their own connection
    listed = await api.get()
    one = await api.get(done["id"])
    stats = await api.get("stats")
    assert not submit.done() and not execute.done()
    assert (listed.code, one.code, stats.code) == (200, 200, 200)
    assert done["id"] in {t["id"] for t in listed.json["tasks"]}
    for response in (await submit, await execute):
        assert response.code == 503, (response.code, response.body[:300])
        assert response.headers["Retry-After"] == "1"
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert "busy" in response.json["detail"]
    holder.release()
    again = await api.post(body={"name": "srv_add", "params": {"a": 2}})
    assert again.code == 202, again.body[:300]


async def test_a_busy_store_is_retried_by_the_job_loop_not_lost(api, tasks_app,
                                                                 hold_lock) -> None:
    from tests.waiting import eventually

    queued = await api.submit({"name": "srv_job", "params": {"value": 7}, "queue": "parked"})
    holder = hold_lock()
    # cancelling is a write: refused while the lock is held, the task untouched
    refused = await api.post(queued["id"], "cancel")
    assert refused.code == 503
    holder.release()

    async def status() -> str:
        return (await api.get(queued["id"])).json["status"]

    assert await status() == "queued"
    cancelled = await api.post(queued["id"], "cancel")
    assert cancelled.code == 202
    assert await eventually(lambda: _is(status, "cancelled"), what="cancel lands")


async def _is(get: Any, value: str) -> bool:
    return await get() == value
