"""Event latency: state change in the store -> websocket clients, with 200 tasks reporting progress.

200 ``bench_progress`` jobs run in the server, each reporting progress every
10 ms (the manager writes it a few times per second: ~1,000 progress events/s).
``--clients`` websocket clients (default 20) listen, spread over
``--procs`` client processes so that parsing 20 streams does not starve one
client loop. Meanwhile quick jobs are submitted on another queue; for each of
their state changes (created, started, succeeded) the latency is the time
between the event's ``ts`` (written in the same transaction as the change) and
its arrival at a client; every client is measured. Progress messages are
reported separately: they are coalesced on purpose (at most one per task per
100 ms).

Beside them, measured in the same run on the same server: the server's event
loop lag (a ``bench_loop_lag`` job sleeping 5 ms at a time in the server's
loop) and a plain REST round trip (``GET /api/tasks/stats``), the floor any
delivery sits on. Target: state change p99 under 100 ms.

Run: ``python benchmarks/bench_server_events.py [--clients 20] [--procs 2]
[--interval 0.01] [--running 200] [--quick 300]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

sys.path.insert(0, str(Path(__file__).parent))
from bench_server_common import epoch_of, start_server, summary

QUICK_RATE = 30.0  # submits per second
TS_KEY = '"ts": "'


async def _listen(url: str, headers: dict[str, str], count: int, quick: int,
                  ready: Any, results: Any, timeout: float) -> None:
    """``count`` websocket clients in this process; each sends back its latencies."""

    async def one() -> dict[str, Any]:
        ws = await websocket_connect(HTTPRequest(url, headers=headers))
        ready.put(1)
        state: list[float] = []
        progress: list[float] = []
        done = 0
        while done < quick:
            raw = await ws.read_message()
            if raw is None:
                break
            received = time.time()
            if '"task.progress"' in raw[:120]:
                # progress is most of the stream: read only its ts, not the whole message
                start = raw.index(TS_KEY) + len(TS_KEY)
                progress.append(received - epoch_of(raw[start:raw.index('"', start)]))
                continue
            event = json.loads(raw)
            if (event["task"] or {}).get("queue") == "fast":
                state.append(received - epoch_of(event["ts"]))
                done += event["type"] == "task.succeeded"
        ws.close()
        return {"state": state, "progress": progress, "succeeded": done}

    gathered = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), timeout)
    for item in gathered:
        results.put(item)


def _client_process(url: str, headers: dict[str, str], count: int, quick: int,
                    ready: Any, results: Any, timeout: float) -> None:
    asyncio.run(_listen(url, headers, count, quick, ready, results, timeout))


async def run(args: argparse.Namespace) -> None:
    running, clients = args.running, args.clients
    server = start_server(workers=f"default={running + 10},fast=4")
    base = f"http://127.0.0.1:{server.port}"
    client = AsyncHTTPClient(max_clients=50)

    async def call(path: str, body: dict | None = None) -> dict:
        response = await client.fetch(f"{base}{path}", method="POST" if body else "GET",
                                      body=json.dumps(body) if body else None,
                                      headers=server.headers)
        return json.loads(response.body)

    await asyncio.gather(*(call("/api/tasks", {"name": "bench_progress",
                                               "params": {"seconds": 60.0,
                                                          "interval": args.interval}})
                           for _ in range(running)))
    while (await call("/api/tasks/stats"))["statuses"]["running"] < running:
        await asyncio.sleep(0.2)

    ctx = multiprocessing.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    procs = max(1, min(args.procs, clients))
    shares = [clients // procs + (i < clients % procs) for i in range(procs)]
    url = f"ws://127.0.0.1:{server.port}/api/tasks/events"
    listeners = [ctx.Process(target=_client_process,
                             args=(url, server.headers, n, args.quick, ready, results, 600.0))
                 for n in shares]
    for proc in listeners:
        proc.start()
    for _ in range(clients):
        ready.get(timeout=60)

    seconds = args.quick / QUICK_RATE
    lag_job = await call("/api/tasks", {"name": "bench_loop_lag",
                                        "params": {"seconds": seconds + 1.0}})
    rest: list[float] = []
    started = time.monotonic()
    next_ping = started
    for i in range(args.quick):
        await call("/api/tasks", {"name": "bench_noop", "params": {"n": i}, "queue": "fast"})
        if time.monotonic() >= next_ping:  # a REST round trip under the same load, 4/s
            before = time.perf_counter()
            await call("/api/tasks/stats")
            rest.append(time.perf_counter() - before)
            next_ping += 0.25
        await asyncio.sleep(max(0.0, started + (i + 1) / QUICK_RATE - time.monotonic()))
    per_client = [await asyncio.get_running_loop().run_in_executor(None, results.get, True, 650)
                  for _ in range(clients)]
    elapsed = time.monotonic() - started
    for proc in listeners:
        proc.join(30)
    lags = (await call(f"/api/tasks/{lag_job['id']}/result?timeout=60"))["result"] or []
    load = os.getloadavg()
    server.stop()

    state = [x for c in per_client for x in c["state"]]
    progress = [x for c in per_client for x in c["progress"]]
    missing = sum(args.quick - c["succeeded"] for c in per_client)
    print(f"{running} jobs running, each calling progress every {args.interval * 1000:.0f} ms; "
          f"{args.quick} quick jobs at {QUICK_RATE:.0f}/s; {clients} websocket clients in "
          f"{procs} processes; {len(progress) / max(clients, 1):.0f} progress messages per "
          f"client in {elapsed:.1f}s ({len(progress) / max(clients, 1) / elapsed:.0f}/s per "
          f"client after coalescing); load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
          f"on {os.cpu_count()} cores")
    if missing:
        print(f"  {missing} quick-job endings never reached a client")
    print(summary(f"state change -> websocket, all {clients} clients (created/started/succeeded)",
                  state))
    worst = max(per_client, key=lambda c: sorted(c["state"])[int(len(c["state"]) * 0.99)]
                if c["state"] else 0.0)
    if worst["state"]:
        print(summary("  the client with the worst p99", worst["state"]))
    print(summary("progress -> websocket (coalesced, <= 1 per task per 100 ms)", progress))
    print(summary("peer: server event loop lag (5 ms sleeps in the server's loop)", lags or [0.0]))
    print(summary("peer: REST round trip GET /api/tasks/stats, same load", rest or [0.0]))
    p99 = sorted(state)[int(len(state) * 0.99)] * 1000 if state else float("inf")
    print(f"target p99 < 100 ms: {'met' if p99 < 100 else 'MISSED'} ({p99:.1f} ms)")


def main() -> None:
    """Parse the flags and run once."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20, help="websocket clients (default 20)")
    parser.add_argument("--procs", type=int, default=2,
                        help="client processes the clients are spread over (default 2)")
    parser.add_argument("--interval", type=float, default=0.01,
                        help="seconds between a running job's progress calls (default 0.01)")
    parser.add_argument("--running", type=int, default=200, help="jobs reporting progress")
    parser.add_argument("--quick", type=int, default=300, help="quick jobs measured")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
