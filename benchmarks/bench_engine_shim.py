"""What the exit-recording shim costs a command: ``true`` through ``run_process``, with and without.

Without: how any ``run_subprocess`` runs a command. With: how a command or code
job runs it — the shim (``python -I -S jupyter_tasks/shim.py``) leads the group,
waits for the group's record in the task's row, starts the command, waits for
it and writes its exit into the row (a real running task in a real database).
Printed: p50/p99 per command of each, the difference, and the shim's own
start-up (``python -I -S`` importing what it imports) beside a bare interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_server_common import percentile

from jupyter_tasks import TaskManager
from jupyter_tasks.runners import SHIM, ProcessUsage, run_process


async def measure(n: int) -> dict[str, list[float]]:
    folder = Path(tempfile.mkdtemp(prefix="jt-shim-"))
    db = folder / "tasks.db"
    async with TaskManager(db, queues={}) as manager:
        task = await manager.submit_spec({"command": ["true"]}, mode="job")
    conn = sqlite3.connect(db, isolation_level=None, timeout=30)
    conn.execute("PRAGMA synchronous = NORMAL")  # as the store's connections
    conn.execute("UPDATE tasks SET status = 'running', attempts = 1 WHERE id = ?", (task.id,))
    times: dict[str, list[float]] = {"plain": [], "shim": []}
    recorded = []

    async def on_group(pgid: int, record: dict | None) -> None:
        conn.execute("UPDATE tasks SET process = ? WHERE id = ?",
                     (None if record is None else json.dumps(record), task.id))

    async def last_exit(pgid: int, record: dict | None) -> None:
        if record is None:
            recorded.append(json.loads(conn.execute(
                "SELECT process FROM tasks WHERE id = ?", (task.id,)).fetchone()[0])["exit"])
        await on_group(pgid, record)

    for i in range(2 * n + 4):
        shim = i % 2 == 1
        usage = ProcessUsage(on_group=last_exit if shim else on_group,
                             record_exit=(str(db), task.id, 1) if shim else None)
        start = time.perf_counter()
        await run_process(["true"], usage=usage)
        if i >= 4:  # warm-up
            times["shim" if shim else "plain"].append(time.perf_counter() - start)
    assert recorded and set(recorded) == {0}, recorded
    return times


def startup(cmd: list[str], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100)
    args = parser.parse_args()
    times = asyncio.run(measure(args.n))
    ms = {k: (percentile(v, 50) * 1000, percentile(v, 99) * 1000) for k, v in times.items()}
    print(f"run_process(['true']) without shim: p50 {ms['plain'][0]:.1f} ms, "
          f"p99 {ms['plain'][1]:.1f} ms")
    print(f"run_process(['true']) with shim:    p50 {ms['shim'][0]:.1f} ms, "
          f"p99 {ms['shim'][1]:.1f} ms  (+{ms['shim'][0] - ms['plain'][0]:.1f} ms p50)")
    bare = startup([sys.executable, "-I", "-S", "-c", "pass"], 30)
    shim_imports = startup([sys.executable, "-I", "-S", "-c",
                            "import os, signal, sys, time, _sqlite3"], 30)
    print(f"interpreter start-up, python -I -S: bare p50 {percentile(bare, 50) * 1000:.1f} ms, "
          f"with the shim's imports p50 {percentile(shim_imports, 50) * 1000:.1f} ms "
          f"({SHIM})")


if __name__ == "__main__":
    main()
