"""Schedules on a real clock: 100 definitions firing each minute, firing lag and doubles/misses.

A ``TaskManager`` (no job slots: fired jobs stay queued, so only firing is measured)
runs the ``Scheduler`` loop as the server does, on a fresh SQLite file. 100
schedules with ``* * * * *`` fire for ``--minutes`` (default 3). Printed:

* firing lag: task ``created_at`` minus its due time, p50/p99/max (target p99 < 1 s);
* beside it, the peer: an ``asyncio.sleep`` timer per due minute in the same
  loop (the floor any loop on this machine gets, measured in the same run);
* fired, doubles (one due time fired twice) and missed (a due time with no task).

A second loop (``--loops 2``, default) on another manager shares the database,
as a server and a worker would.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from jupyter_tasks import TaskManager
from jupyter_tasks.scheduler import Scheduler
from jupyter_tasks.server.handlers import parse_job_body

JOB = {"command": ["true"], "queue": "bench-parked"}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def show(name: str, lags: list[float]) -> None:
    ms = [lag * 1000 for lag in lags]
    print(f"  {name:<26} n={len(ms):5d}  p50 {statistics.median(ms):7.1f} ms  "
          f"p99 {pct(ms, 0.99):7.1f} ms  max {max(ms):7.1f} ms")


async def timer_peer(due_times: list[float], lags: list[float]) -> None:
    for due in due_times:
        await asyncio.sleep(max(0.0, due - time.time()))
        lags.append(time.time() - due)


async def main(minutes: int, count: int, loops: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-schedules-"))
    db = folder / "tasks.db"
    managers = [TaskManager(db, runs_background=False, make_default=False)
                for _ in range(loops)]
    for m in managers:
        await m.start()
    try:
        schedulers = [Scheduler(m) for m in managers]
        for i in range(count):
            await schedulers[0].create({"name": f"bench {i}", "cron": "* * * * *", "job": JOB},
                                       owner="bench",
                                       parse_job=lambda job: parse_job_body(job, str(folder)))
        first_due = (time.time() // 60 + 1) * 60
        due_times = [first_due + 60 * k for k in range(minutes)]
        print(f"{count} schedules firing each minute, {minutes} minute(s) from "
              f"{time.strftime('%H:%M:%S', time.localtime(first_due))}, {loops} loop(s) "
              f"sharing {db}")
        for s in schedulers:
            s.start()
        peer: list[float] = []
        await timer_peer(due_times, peer)
        # the last minute's firings have ~1 s to land; then stop
        deadline = due_times[-1] + 5
        while time.time() < deadline:
            await asyncio.sleep(0.2)
        for s in schedulers:
            await s.stop()
    finally:
        for m in managers:
            await m.stop()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT idempotency_key, created_at FROM tasks "
                            "WHERE schedule_id IS NOT NULL").fetchall()
    keys = Counter(key for key, _ in rows)
    lags = [created - float(key.rsplit(":", 1)[1]) for key, created in rows]
    expected = count * minutes
    doubles = sum(n - 1 for n in keys.values() if n > 1)
    print(f"  fired {len(rows)} of {expected}; doubles {doubles}; "
          f"missed {expected - len(keys)}")
    show("firing lag (scheduler)", lags)
    show("asyncio timer (peer)", peer)
    print(f"  target p99 < 1000 ms: {'met' if pct(lags, 0.99) < 1.0 else 'NOT met'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=3)
    parser.add_argument("--schedules", type=int, default=100)
    parser.add_argument("--loops", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.minutes, args.schedules, args.loops))
