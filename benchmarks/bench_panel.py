"""Responsiveness of the JupyterLab Tasks panel under load, measured in headless chromium.

Set-up (issue 13): 2,000 finished tasks in history (bulk-inserted with
``Store.create_tasks``), all loaded into the panel's model page by page, and 200 tasks
running at once, each reporting progress (the server flushes progress every 0.2 s, so up
to ~1,000 events/s), in a 1400 x 1000 px window.

Figures printed:
  * frame time (requestAnimationFrame deltas over ~5 s): p50 / p95 / max, long frames,
    with the panel closed and open (alternated, ``--rounds`` times each, pooled), and
    open/closed ratios of p50 and p95 (target: open within 1.2x of closed);
  * rows visible per 1000 px (rows wholly inside the panel's list, scaled to 1000 px of
    window height) and rows in the DOM (the list is virtual: only rows in view);
  * a burst of 1,000 websocket events (500 new tasks + 500 progress updates) pushed
    through the same path as socket messages (JSON.parse + the stream's signal):
    time to apply, time until the DOM shows the result, worst frame meanwhile;
  * end to end: 1,000 tiny jobs submitted over REST, time until the model counts
    them all succeeded and frame times meanwhile, with the panel closed (the peer) and
    open, and the toasts left up.

The model is reached through ``window.__jupyterTasks``, which the extension sets only
with the ``jupyter-tasks-debug`` flag (set here in localStorage before the page loads).

    python benchmarks/bench_panel.py [--history 2000] [--running 50] [--burst 1000]
                                     [--jobs 1000] [--seconds 5] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jupyter_tasks.models import TERMINAL_STATUSES, Task, new_task_id  # noqa: E402
from jupyter_tasks.store import Store  # noqa: E402
from tests.browser.lab import (  # noqa: E402
    MISSING_CHROMIUM,
    LabServer,
    chromium_path,
    launch_chromium,
    open_lab_and_panel,
)

FRAME_SAMPLER_JS = """
async (seconds) => {
  const deltas = [];
  let last = performance.now();
  const end = last + seconds * 1000;
  const api = window.__jupyterTasks;
  let events = 0;
  const count = () => { events += 1; };
  api.connection.eventsApplied.connect(count);
  // main-thread tasks over 50 ms: the page's own work, apart from CPU contention
  let longTaskMs = 0;
  const observer = new PerformanceObserver(list => {
    for (const entry of list.getEntries()) { longTaskMs += entry.duration; }
  });
  observer.observe({ entryTypes: ['longtask'] });
  await new Promise(resolve => {
    const tick = now => {
      deltas.push(now - last);
      last = now;
      if (now < end) { requestAnimationFrame(tick); } else { resolve(); }
    };
    requestAnimationFrame(tick);
  });
  api.connection.eventsApplied.disconnect(count);
  observer.disconnect();
  return { deltas, events, longTaskMs };
}
"""

BURST_JS = """
async ([creates, progresses]) => {
  const { model, connection } = window.__jupyterTasks;
  const running = model.all.filter(t => t.status === 'running');
  const queuedBefore = model.count('queued');
  let id = (model.lastEventId ?? 0) + 1000000;
  const now = new Date().toISOString();
  const messages = [];
  let newest = null;
  for (let i = 0; i < creates; i++) {
    const taskId = (BigInt(Date.now()) * 1000000n + BigInt(i)).toString(16).padStart(16, '0')
      + 'b'.repeat(16);
    newest = taskId;
    const task = {
      id: taskId, kind: 'function', mode: 'job', name: 'burst', label: `burst ${i}`,
      status: 'queued', params: { i }, result: null, error: null, progress: null,
      task_key: null, idempotency_key: null, queue: 'default', priority: 0,
      owner: running[0]?.owner ?? null, origin: { type: 'rest' }, attempts: 0,
      max_retries: 0, timeout: null, parent_id: null, relationship: null,
      cancel_requested: false, confirmation: null, created_at: now, started_at: null,
      finished_at: null
    };
    messages.push(JSON.stringify(
      { id: id++, type: 'task.created', task_id: taskId, ts: now, task }));
  }
  for (let i = 0; i < progresses; i++) {
    const base = running[i % running.length];
    const current = (base.progress?.current ?? 0) + 1 + Math.floor(i / running.length);
    const task = { ...base, progress: { current, total: 1e9, message: `burst ${i}` } };
    messages.push(JSON.stringify(
      { id: id++, type: 'task.progress', task_id: base.id, ts: now, task }));
  }
  // the stream's socket handler: parse, then emit on `received`
  const stream = connection.stream;
  const frames = [];
  let last = performance.now();
  let sampling = true;
  const tick = t => { frames.push(t - last); last = t; if (sampling) requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  await new Promise(r => requestAnimationFrame(() => r()));

  const t0 = performance.now();
  for (const text of messages) {
    stream._received.emit(JSON.parse(text));
  }
  const t1 = performance.now();
  await new Promise(resolve => {
    const check = () => {
      // the new tasks wait in Queued (maybe out of view: the list is virtual), so the
      // section's count is what shows them
      const count = document.querySelector('[data-section=queued] .jp-TasksPanel-sectionCount');
      if (count && Number(count.textContent) >= queuedBefore + creates) { resolve(); }
      else { requestAnimationFrame(check); }
    };
    check();
  });
  const t2 = performance.now();
  await new Promise(r => setTimeout(r, 500));
  sampling = false;
  return {
    applyMs: t1 - t0, visibleMs: t2 - t0, messages: messages.length,
    worstFrameMs: Math.max(...frames), rows: document.querySelectorAll('.jp-TasksPanel-row').length,
    modelSize: model.size
  };
}
"""


ROWS_IN_VIEW_JS = """
() => {
  const list = document.querySelector('.jp-TasksPanel-list').getBoundingClientRect();
  const rows = [...document.querySelectorAll('.jp-TasksPanel-row')];
  const inView = rows.filter(r => {
    const b = r.getBoundingClientRect();
    return b.height > 0 && b.top >= list.top && b.bottom <= list.bottom;
  }).length;
  return { inView, inDom: rows.length, windowPx: window.innerHeight,
           modelSize: window.__jupyterTasks.model.size };
}
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def frame_summary(deltas: list[float]) -> str:
    deltas = deltas[1:]  # the first delta spans the call set-up
    long = sum(1 for d in deltas if d > 50)
    return (f"{len(deltas)} frames, p50 {percentile(deltas, 50):.1f} ms, "
            f"p95 {percentile(deltas, 95):.1f} ms, max {max(deltas):.1f} ms, "
            f"{long} frames > 50 ms")


async def seed_history(db: Path, count: int) -> None:
    store = await Store.open(db)
    try:
        now = time.time()
        rng = random.Random(7)
        tasks = []
        for i in range(count):
            created = now - 86400 + i * 30
            status = rng.choice(TERMINAL_STATUSES)
            error = None
            if status != "succeeded":
                error = {"type": "RuntimeError", "message": f"history {i} {status}",
                         "traceback": "Traceback (most recent call last):\n  ..."}
            tasks.append(Task(
                id=new_task_id(), kind="function", mode="job", status=status,
                name="history_task", label=f"history task {i}", params={"i": i},
                result={"i": i} if status == "succeeded" else None, error=error,
                progress={"current": 10, "total": 10, "message": "done"},
                origin={"type": "rest"}, created_at=created, started_at=created + 1,
                finished_at=created + 5, updated_at=created + 5,
            ))
        await store.create_tasks(tasks)
    finally:
        await store.close()


def submit_many(server: LabServer, bodies: list[dict], threads: int = 8) -> list[dict]:
    def one(body: dict) -> dict:
        code, task = server.request("POST", "/api/tasks", body)
        if code not in (200, 202):
            raise RuntimeError(f"submit failed: {code} {task}")
        return task

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, bodies))


def show_panel(page: Any, shown: bool) -> None:
    """Open the Tasks panel, or collapse the left area (the model still applies events)."""
    if shown:
        page.evaluate("() => window.jupyterapp.commands.execute('jupyter-tasks:open')")
        page.locator(".jp-TasksPanel").wait_for(state="visible")
    else:
        page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
        page.locator(".jp-TasksPanel").wait_for(state="hidden")


def end_to_end(page: Any, server: LabServer, jobs: int, state: str) -> list[float]:
    """Submit ``jobs`` tiny jobs over REST; frame times until the model counts them done."""
    base = page.evaluate("() => window.__jupyterTasks.model.count('succeeded')")
    page.evaluate("""() => {
      window.__benchFrames = []; let last = performance.now();
      window.__benchSampling = true;
      const tick = t => { window.__benchFrames.push(t - last); last = t;
        if (window.__benchSampling) requestAnimationFrame(tick); };
      requestAnimationFrame(tick);
    }""")
    t = time.perf_counter()
    submit_many(server, [{"name": "browser_tiny", "params": {"n": i}} for i in range(jobs)])
    submitted = time.perf_counter() - t
    page.wait_for_function("n => window.__jupyterTasks.model.count('succeeded') >= n",
                           arg=base + jobs, timeout=300_000, polling="raf")
    total = time.perf_counter() - t
    frames = page.evaluate("() => { window.__benchSampling = false; "
                           "return window.__benchFrames; }")
    # each toast is DOM laid out every frame while it is up (1,000 ends made ~700)
    toasts = page.locator(".Toastify__toast").count()
    print(f"end to end, panel {state}: {jobs} tiny jobs submitted over REST in "
          f"{submitted:.1f} s; the model counted them all succeeded after {total:.1f} s "
          f"({jobs / total:.0f} jobs/s, ~3 events each); frames meanwhile: "
          f"{frame_summary(frames)}; {toasts} toasts up")
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:dismiss-notification')")
    return frames[1:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--history", type=int, default=2000)
    parser.add_argument("--running", type=int, default=200)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2,
                        help="closed/open frame samples, alternated")
    args = parser.parse_args()

    chromium = chromium_path()
    if chromium is None:
        print(MISSING_CHROMIUM, file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="bench-panel-") as tmp:
        folder = Path(tmp)
        db = folder / "tasks.db"
        t = time.perf_counter()
        asyncio.run(seed_history(db, args.history))
        print(f"seeded {args.history} finished tasks in {time.perf_counter() - t:.2f} s")

        server = LabServer(folder, db_path=db,
                           workers={"slow": args.running, "default": 4})
        try:
            server.wait_ready()
            slow = submit_many(server, [{
                "name": "browser_slow", "params": {"steps": 1_000_000, "step_seconds": 0.2},
                "label": f"running {i}", "queue": "slow"} for i in range(args.running)])
            with sync_playwright() as p:
                context = launch_chromium(p, folder / "chromium", chromium)
                try:
                    page = context.pages[0] if context.pages else context.new_page()
                    page.add_init_script(
                        "window.localStorage.setItem('jupyter-tasks-debug', '1')")
                    page.set_default_timeout(120_000)
                    t = time.perf_counter()
                    open_lab_and_panel(page, server)
                    print(f"JupyterLab + panel open in {time.perf_counter() - t:.1f} s")
                    page.wait_for_function(
                        "n => window.__jupyterTasks.model.count('running') >= n",
                        arg=args.running)

                    # every page of history into the model, as a user clicking "older"
                    t0 = page.evaluate("""async () => {
                      const { connection } = window.__jupyterTasks;
                      const t = performance.now(); let pages = 0;
                      while (connection.hasOlder) { await connection.loadOlder(); pages++; }
                      return [performance.now() - t, pages];
                    }""")
                    size = page.evaluate("() => window.__jupyterTasks.model.size")
                    rows = page.locator(".jp-TasksPanel-row").count()
                    print(f"history loaded: {size} tasks in the model ({t0[1]} older pages in "
                          f"{t0[0]:.0f} ms), {rows} rows rendered")
                    page.wait_for_function(
                        "() => window.__jupyterTasks.model.all.filter(t => t.status === "
                        "'running' && t.progress).length >= " + str(args.running))

                    # rows a person sees in a 1000 px tall window, and rows in the DOM
                    page.set_viewport_size({"width": 1400, "height": 1000})
                    page.evaluate("() => { document.querySelector('.jp-TasksPanel-list')"
                                  ".scrollTop = 0; return new Promise(r => requestAnimationFrame("
                                  "() => requestAnimationFrame(() => r(true)))); }")
                    density = page.evaluate(ROWS_IN_VIEW_JS)
                    print(f"rows visible: {density['inView']} in a {density['windowPx']} px "
                          f"window ({density['inView'] * 1000 / density['windowPx']:.1f} per "
                          f"1000 px); {density['inDom']} rows in the DOM for "
                          f"{density['modelSize']} tasks")

                    # the same load with the panel closed (the model still applies every
                    # event) and open (rows with live progress), alternated
                    closed: list[float] = []
                    opened: list[float] = []
                    for round_ in range(args.rounds):
                        for state in ("closed", "open"):
                            show_panel(page, state == "open")
                            sample = page.evaluate(FRAME_SAMPLER_JS, args.seconds)
                            (closed if state == "closed" else opened).extend(
                                sample["deltas"][1:])
                            rate = sample["events"] / args.seconds
                            print(f"  round {round_ + 1}, panel {state}, {args.running} "
                                  f"running ({rate:.0f} events/s applied): "
                                  f"{frame_summary(sample['deltas'])}, long tasks "
                                  f"{sample['longTaskMs']:.0f} ms")
                    print(f"panel closed: {frame_summary([0.0, *closed])}")
                    print(f"panel open:   {frame_summary([0.0, *opened])}")
                    p50 = percentile(opened, 50) / percentile(closed, 50)
                    p95 = percentile(opened, 95) / percentile(closed, 95)
                    verdict = "within" if max(p50, p95) <= 1.2 else "NOT within"
                    print(f"open/closed: p50 {p50:.2f}x, p95 {p95:.2f}x ({verdict} the 1.2x "
                          f"target)")

                    if args.jobs:
                        # the same sweep with the panel closed (the peer: the server's work
                        # and the model's) and open (plus the panel's rendering)
                        e2e: dict[str, list[float]] = {}
                        for state in ("closed", "open"):
                            show_panel(page, state == "open")
                            e2e[state] = end_to_end(page, server, args.jobs, state)
                        p50 = percentile(e2e["open"], 50) / percentile(e2e["closed"], 50)
                        p95 = percentile(e2e["open"], 95) / percentile(e2e["closed"], 95)
                        print(f"end to end, open/closed frame times: p50 {p50:.2f}x, "
                              f"p95 {p95:.2f}x")

                    if args.burst:
                        burst = page.evaluate(BURST_JS, [args.burst // 2,
                                                         args.burst - args.burst // 2])
                        print(f"burst of {burst['messages']} events ({args.burst // 2} new "
                              f"tasks + {args.burst - args.burst // 2} progress): applied in "
                              f"{burst['applyMs']:.1f} ms, visible in the DOM after "
                              f"{burst['visibleMs']:.1f} ms, worst frame "
                              f"{burst['worstFrameMs']:.1f} ms; model {burst['modelSize']} "
                              f"tasks, {burst['rows']} rows rendered")
                finally:
                    context.close()
            for task in slow:
                server.request("POST", f"/api/tasks/{task['id']}/cancel")
        finally:
            server.stop()
    print(json.dumps({"history": args.history, "running": args.running}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
