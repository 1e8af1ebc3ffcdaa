"""Terminal dashboard on 100,000 tasks: start-up to first table render, and paging latency.

Usage: python benchmarks/bench_dashboard.py [tasks] [pages] [--server-only]

Runs the Textual app headless (``App.run_test``) in ``--db`` mode on a fresh
database holding ``tasks`` finished tasks. "Render" is the moment Textual has
refreshed the screen after the page's rows were put in the table
(``call_after_refresh``). Targets: first render < 300 ms, a page < 50 ms.

Server mode, cold process: a real ``jupyter server`` on the same database, and
``COLD_RUNS`` fresh Python processes that each start the dashboard on it (``--url``
``--token``, as a person would). Timed from just before the process is spawned:
"first screen" is the first frame Textual composes (``App._display``), "full page"
the first page of tasks on screen. Targets: first screen < 300 ms, full page < 1 s.
``BENCH_DASHBOARD_PATH`` puts another copy of the dashboard package first on the
child's path (for before/after figures on the same machine).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jupyter_tasks_dashboard.app import TasksDashboard  # noqa: E402
from jupyter_tasks_dashboard.sources import DatabaseSource  # noqa: E402

from tests.dashboard.conftest import build_history  # noqa: E402

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
TASKS = int(ARGS[0]) if ARGS else 100_000
PAGES = int(ARGS[1]) if len(ARGS) > 1 else 50
SERVER_ONLY = "--server-only" in sys.argv
RUNS = 5  # start-ups; paging is measured in the last one
COLD_RUNS = 5  # fresh processes against the server

# the child: a cold Python process that starts the dashboard on the server, headless
CHILD = r"""
import asyncio, json, sys, time
spawned = float(sys.argv[1])
t_start = time.time()
from jupyter_tasks_dashboard.app import TasksDashboard, build_parser, choose_source
t_imported = time.time()

async def run():
    args = build_parser().parse_args(["--url", sys.argv[2], "--token", sys.argv[3]])
    source, fallback = choose_source(args)
    app = TasksDashboard(source, page_size=args.page_size, fallback=fallback)
    marks = {}
    display = app._display

    def first_frame(screen, renderable):
        if renderable is not None and "screen" not in marks:
            marks["screen"] = time.time()
        return display(screen, renderable)

    app._display = first_frame
    async with app.run_test(size=(180, 50)) as pilot:
        deadline = time.monotonic() + 120
        while not (app.paints and app.table.row_count) and time.monotonic() < deadline:
            await asyncio.sleep(0)
        marks["page"] = time.time() - (time.perf_counter() - app.paints[0])
        rows = app.table.row_count
    print(json.dumps({"python": t_start - spawned, "imports": t_imported - t_start,
                      "screen": marks["screen"] - spawned, "page": marks["page"] - spawned,
                      "rows": rows}))

asyncio.run(run())
"""


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
            spawned = time.time()
            out = subprocess.run([sys.executable, "-c", CHILD, repr(spawned), server.url,
                                  server.token], env=env, capture_output=True, text=True,
                                 timeout=300)
            if out.returncode:
                raise RuntimeError(out.stderr[-3000:])
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(figures)
            print(f"    run #{run + 1}: first screen {figures['screen'] * 1000:.0f} ms, "
                  f"full page ({figures['rows']} rows) {figures['page'] * 1000:.0f} ms "
                  f"(python up {figures['python'] * 1000:.0f} ms, "
                  f"imports {figures['imports'] * 1000:.0f} ms)")
        screens = [r["screen"] for r in rows]
        pages = [r["page"] for r in rows]
        print(f"  server mode, from spawn: first screen median "
              f"{statistics.median(screens) * 1000:.0f} ms max {max(screens) * 1000:.0f} ms "
              f"(target < 300 ms); full page median {statistics.median(pages) * 1000:.0f} ms "
              f"max {max(pages) * 1000:.0f} ms (target < 1000 ms)")
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
