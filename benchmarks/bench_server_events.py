"""Event latency: state change in the store -> websocket client, with 200 tasks reporting progress.

200 ``bench_progress`` jobs run in the server, each reporting progress every
10 ms (the manager writes it a few times per second: ~1,000 progress events/s).
Meanwhile quick jobs are submitted on another queue; for each of their state
changes (created, started, succeeded) the latency is the time between the
event's ``ts`` (written in the same transaction as the change) and its arrival
at a websocket client. Progress messages are reported separately: they are
coalesced on purpose (at most one per task per 100 ms).
Target: p99 under 100 ms. Run: ``python benchmarks/bench_server_events.py [INTERVAL [N]]``
(seconds between a running job's progress calls, default 0.01; running jobs, default 200).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import datetime
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

sys.path.insert(0, str(Path(__file__).parent))
from bench_server_common import start_server, summary

RUNNING = int(sys.argv[2]) if len(sys.argv) > 2 else 200
QUICK = 300
QUICK_RATE = 30.0  # submits per second
INTERVAL = float(sys.argv[1]) if len(sys.argv) > 1 else 0.01  # seconds between progress calls


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


async def run() -> None:
    server = start_server(workers=f"default={RUNNING + 10},fast=4")
    base = f"http://127.0.0.1:{server.port}"
    client = AsyncHTTPClient(max_clients=50)

    async def submit(body: dict) -> dict:
        response = await client.fetch(f"{base}/api/tasks", method="POST", body=json.dumps(body),
                                      headers=server.headers)
        return json.loads(response.body)

    await asyncio.gather(*(submit({"name": "bench_progress",
                                   "params": {"seconds": 40.0, "interval": INTERVAL}})
                           for _ in range(RUNNING)))
    while True:
        stats = json.loads((await client.fetch(f"{base}/api/tasks/stats",
                                               headers=server.headers)).body)
        if stats["statuses"]["running"] >= RUNNING:
            break
        await asyncio.sleep(0.2)
    ws = await websocket_connect(HTTPRequest(f"ws://127.0.0.1:{server.port}/api/tasks/events",
                                             headers=server.headers))
    quick_ids: set[str] = set()
    state_latency: list[float] = []
    progress_latency: list[float] = []
    progress_count = 0
    finished = asyncio.Event()
    done_quick: set[str] = set()

    async def reader() -> None:
        nonlocal progress_count
        while True:
            raw = await ws.read_message()
            if raw is None:
                return
            received = time.time()
            event = json.loads(raw)
            delay = received - _epoch(event["ts"])
            if event["type"] == "task.progress":
                progress_count += 1
                progress_latency.append(delay)
            elif event["task_id"] in quick_ids or (event["task"] or {}).get("queue") == "fast":
                state_latency.append(delay)
                if event["type"] == "task.succeeded":
                    done_quick.add(event["task_id"])
                    if len(done_quick) == QUICK:
                        finished.set()

    reading = asyncio.ensure_future(reader())
    started = time.monotonic()
    for i in range(QUICK):
        task = await submit({"name": "bench_noop", "params": {"n": i}, "queue": "fast"})
        quick_ids.add(task["id"])
        await asyncio.sleep(max(0.0, started + (i + 1) / QUICK_RATE - time.monotonic()))
    await asyncio.wait_for(finished.wait(), 60)
    elapsed = time.monotonic() - started
    ws.close()
    reading.cancel()
    print(f"{RUNNING} jobs running, each calling progress every {INTERVAL * 1000:.0f} ms; "
          f"{QUICK} quick jobs at {QUICK_RATE:.0f}/s; "
          f"{progress_count} progress messages in {elapsed:.1f}s "
          f"({progress_count / elapsed:.0f}/s after coalescing)")
    print(summary("state change -> websocket (created/started/succeeded)", state_latency))
    print(summary("progress -> websocket (coalesced, <= 1 per task per 100 ms)",
                  progress_latency))
    p99 = sorted(state_latency)[int(len(state_latency) * 0.99)] * 1000
    print(f"target p99 < 100 ms: {'met' if p99 < 100 else 'MISSED'}")
    server.stop()


if __name__ == "__main__":
    asyncio.run(run())
