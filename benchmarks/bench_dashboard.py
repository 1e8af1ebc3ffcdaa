"""Terminal dashboard on 100,000 tasks: start-up to first table render, and paging latency.

Usage: python benchmarks/bench_dashboard.py [tasks] [pages] [--server-only]

Runs the Textual app headless (``App.run_test``) in ``--db`` mode on a fresh
database holding ``tasks`` finished tasks. "Render" is the moment Textual has
refreshed the screen after the page's rows were put in the table
(``call_after_refresh``). Targets: first render < 300 ms, a page < 50 ms.

Server mode, cold process: a real ``jupyter server`` on the same database, and
``COLD_RUNS`` fresh processes of the real entry point (``jupyter-tasks-dashboard
--url --token``, as a person runs it) in a pseudo-terminal of 120x40, read as a
terminal would. Timed from just before the spawn: "first screen" is the first
visible text drawn (the title line), "full page" the first task row's text on
screen. Targets: first screen < 300 ms, full page < 1 s. ``BENCH_DASHBOARD_PATH``
puts another copy of the dashboard package first on the child's path (for
before/after figures on the same machine).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jupyter_tasks_dashboard.app import TasksDashboard  # noqa: E402
from jupyter_tasks_dashboard.sources import DatabaseSource  # noqa: E402

from tests.dashboard.conftest import build_history  # noqa: E402
from tests.dashboard.pty_run import run_in_pty  # noqa: E402

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
TASKS = int(ARGS[0]) if ARGS else 100_000
PAGES = int(ARGS[1]) if len(ARGS) > 1 else 50
SERVER_ONLY = "--server-only" in sys.argv
RUNS = 5  # start-ups; paging is measured in the last one
COLD_RUNS = 5  # fresh processes against the server

async def wait_for(check, timeout: float = 30.0) -> None:
    deadline = time.perf_counter() + timeout
    while not check():
        if time.perf_counter() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def server_mode(root: Path, db: Path) -> None:
    """Cold processes starting the dashboard against a real server on ``db``."""
    from tests.dashboard.conftest import Server

    server = Server(root, db).start(timeout=120)
    env = dict(os.environ)
    extra = os.environ.get("BENCH_DASHBOARD_PATH")
    if extra:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (extra, env.get("PYTHONPATH")) if p)
    try:
        print(f"  server mode, cold process ({COLD_RUNS} runs"
              f"{', dashboard from ' + extra if extra else ''}):")
        rows = []
        for run in range(COLD_RUNS):
            # the newest task of build_history is "history <count - 1>": on the first page
            done = run_in_pty(["--url", server.url, "--token", server.token],
                              f"history {TASKS - 1}", env=env)
            if "row" not in done.marks:
                raise RuntimeError(done.output[-3000:].decode("utf-8", "replace"))
            figures = {"bytes": done.marks["bytes"], "screen": done.marks["title"],
                       "page": done.marks["row"]}
            rows.append(figures)
            print(f"    run #{run + 1}: first bytes {figures['bytes'] * 1000:.0f} ms, "
                  f"first screen {figures['screen'] * 1000:.0f} ms, "
                  f"first task row {figures['page'] * 1000:.0f} ms")
        screens = [r["screen"] for r in rows]
        pages = [r["page"] for r in rows]
        print(f"  server mode, from spawn: first screen median "
              f"{statistics.median(screens) * 1000:.0f} ms max {max(screens) * 1000:.0f} ms "
              f"(target < 300 ms); full page median {statistics.median(pages) * 1000:.0f} ms "
              f"max {max(pages) * 1000:.0f} ms (target < 1000 ms); load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        server.kill()


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "tasks.db"
        built = await build_history(db, TASKS)
        print(f"dashboard benchmark: {TASKS:,} tasks in history (built in {built:.1f}s), "
              f"{PAGES} pages; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if SERVER_ONLY:
            await asyncio.to_thread(server_mode, Path(tmp), db)
            return
        firsts = []
        for run in range(RUNS):
            t0 = time.perf_counter()
            app = TasksDashboard(DatabaseSource(db))
            async with app.run_test(size=(180, 50)) as pilot:
                await wait_for(lambda a=app: a.paints)
                first = app.paints[0] - t0
                firsts.append(first)
                print(f"  start-up #{run + 1}: first table render {first * 1000:.0f} ms "
                      f"(query {app.last_page_query * 1000:.1f} ms, "
                      f"rows {app.last_page_build * 1000:.1f} ms)")
                if run < RUNS - 1:
                    continue
                await pilot.pause(0.5)  # let start-up work (stats, throughput sample) settle
                keys, queries, builds = [], [], []
                for page in range(PAGES):
                    before = len(app.paints)
                    start = time.perf_counter()
                    await pilot.press("n" if page < PAGES - 1 else "p")
                    await wait_for(lambda a=app, b=before: len(a.paints) > b)
                    keys.append(app.paints[-1] - start)
                    queries.append(app.last_page_query)
                    builds.append(app.last_page_build)
        print(f"  paging, key press to render over {PAGES} pages: "
              f"p50 {statistics.median(keys) * 1000:.1f} ms  p99 {pct(keys, 0.99) * 1000:.1f} ms"
              f"  max {max(keys) * 1000:.1f} ms   (target < 50 ms)")
        print(f"    of which the query p50 {statistics.median(queries) * 1000:.2f} ms, "
              f"rows into the table p50 {statistics.median(builds) * 1000:.2f} ms")
        print(f"  first table render: first app in the process {firsts[0] * 1000:.0f} ms, "
              f"median of the {RUNS - 1} after it {statistics.median(firsts[1:]) * 1000:.0f} ms"
              f"   (target < 300 ms)")
        await asyncio.to_thread(server_mode, Path(tmp), db)


if __name__ == "__main__":
    asyncio.run(main())
