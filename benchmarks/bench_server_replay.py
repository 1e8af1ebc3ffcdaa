"""Live events beside replays: a listening client's latency while others read the history.

A client that connects with ``since=0`` (a script reading every event, a dashboard
started with a long history) is sent the stored events page by page. The replays
share the server's event loop with the live stream, so ``--replayers`` clients
replaying a history of ``--events`` events could hold back the events of a client
that only listens.

The history is written into the server's database beforehand (``task.succeeded``
events with a typical task snapshot). Then, in each round, quick jobs are submitted
at 10/s and one listening client measures each state change (created, started,
succeeded) from the event's ``ts`` to its arrival: once with no replay running (the
peer, same run), once while the replayers each read the whole history again and
again (spread over ``--procs`` client processes, which only count messages).

Run: ``python benchmarks/bench_server_replay.py [--events 100000] [--replayers 20]
[--quick 100] [--rounds 3]``; with ``BENCH_SLOW=1`` each state change later than
200 ms is printed with when it arrived (a stall shows as many at one moment).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sqlite3
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

sys.path.insert(0, str(Path(__file__).parent))
from bench_server_common import epoch_of, percentile, start_server

QUICK_RATE = 10.0  # submits per second


def write_history(db_path: Path, count: int) -> None:
    """``count`` stored ``task.succeeded`` events of finished-looking tasks."""
    now = time.time()
    conn = sqlite3.connect(db_path, timeout=60)
    try:
        rows = []
        for i in range(count):
            task_id = uuid.uuid4().hex
            snapshot = json.dumps({
                "id": task_id, "kind": "function", "mode": "job", "status": "succeeded",
                "name": "bench_noop", "label": f"history {i}", "params": {"n": i},
                "queue": "history", "priority": 0, "owner": None, "attempts": 1,
                "created_at": now - 60, "started_at": now - 59, "finished_at": now - 58,
                "progress": {"current": 10, "total": 10, "message": "done"},
                "result": i, "error": None, "tags": ["history"], "origin": None})
            rows.append((task_id, "task.succeeded", now - 58, None, snapshot))
        with conn:
            conn.executemany("INSERT INTO events (task_id, type, ts, owner, task) "
                             "VALUES (?, ?, ?, ?, ?)", rows)
    finally:
        conn.close()


async def _replay_forever(url: str, headers: dict[str, str], count: int, history: int,
                          ready: Any) -> None:
    """``count`` clients, each reading the ``history`` stored events from 0, again and
    again (messages counted, not parsed)."""

    async def one() -> None:
        first = True
        while True:
            ws = await websocket_connect(HTTPRequest(f"{url}?since=0", headers=headers))
            if first:
                ready.put(1)
                first = False
            for _ in range(history):
                if await ws.read_message() is None:
                    break
            ws.close()

    await asyncio.gather(*(one() for _ in range(count)))


def _replayer_process(url: str, headers: dict[str, str], count: int, history: int,
                      ready: Any) -> None:
    asyncio.run(_replay_forever(url, headers, count, history, ready))


async def measure_live(server: Any, quick: int) -> list[float]:
    """Submit ``quick`` jobs at QUICK_RATE; one listener's state-change latencies."""
    base = f"http://127.0.0.1:{server.port}"
    client = AsyncHTTPClient()
    ws = await websocket_connect(HTTPRequest(f"ws://127.0.0.1:{server.port}/api/tasks/events",
                                             headers=server.headers))
    latencies: list[float] = []
    ours: set[str] = set()

    async def listen() -> None:
        done = 0
        while done < quick:
            raw = await ws.read_message()
            if raw is None:
                return
            received = time.time()
            event = json.loads(raw)
            if event.get("task_id") in ours or (event.get("task") or {}).get("queue") == "fast":
                latencies.append(received - epoch_of(event["ts"]))
                if os.environ.get("BENCH_SLOW") and latencies[-1] > 0.2:
                    print(f"    slow {latencies[-1] * 1000:.0f} ms {event['type']} at "
                          f"{time.monotonic() - started:.2f}s", flush=True)
                done += event["type"] == "task.succeeded"

    listener = asyncio.ensure_future(listen())
    started = time.monotonic()
    for i in range(quick):
        response = await client.fetch(f"{base}/api/tasks", method="POST", headers=server.headers,
                                      body=json.dumps({"name": "bench_noop", "params": {"n": i},
                                                       "queue": "fast"}))
        ours.add(json.loads(response.body)["id"])
        await asyncio.sleep(max(0.0, started + (i + 1) / QUICK_RATE - time.monotonic()))
    await asyncio.wait_for(listener, 120)
    ws.close()
    return latencies


def ms(values: list[float], q: float) -> float:
    return percentile(values, q) * 1000


async def run(args: argparse.Namespace) -> None:
    server = start_server(workers="default=1,fast=2")
    write_history(server.db_path, args.events)
    url = f"ws://127.0.0.1:{server.port}/api/tasks/events"
    ctx = multiprocessing.get_context("spawn")
    quiet: list[list[float]] = []
    loaded: list[list[float]] = []
    for round_no in range(1, args.rounds + 1):
        quiet.append(await measure_live(server, args.quick))
        ready = ctx.Queue()
        procs = max(1, min(args.procs, args.replayers))
        shares = [args.replayers // procs + (i < args.replayers % procs) for i in range(procs)]
        replayers = [ctx.Process(target=_replayer_process,
                                 args=(url, server.headers, n, args.events, ready))
                     for n in shares if n]
        for proc in replayers:
            proc.start()
        for _ in range(args.replayers):
            ready.get(timeout=60)
        try:
            loaded.append(await measure_live(server, args.quick))
        finally:
            for proc in replayers:
                proc.kill()
                proc.join(10)
        print(f"  round {round_no}: p99 quiet {ms(quiet[-1], 99):.0f} ms, "
              f"beside {args.replayers} replays {ms(loaded[-1], 99):.0f} ms "
              f"(load {os.getloadavg()[0]:.1f})")
    server.stop()

    def line(name: str, rounds: list[list[float]]) -> str:
        p50s = [ms(r, 50) for r in rounds]
        p99s = [ms(r, 99) for r in rounds]
        return (f"{name}: p50 {statistics.median(p50s):.1f} ms, p99 {statistics.median(p99s):.1f}"
                f" ms (min {min(p99s):.1f}, max {max(p99s):.1f}) over {len(rounds)} rounds")

    print(f"history of {args.events} events; {args.quick} quick jobs at {QUICK_RATE:.0f}/s per "
          f"measurement; {args.replayers} replaying clients in {args.procs} processes; "
          f"{os.cpu_count()} cores")
    print(line("live client, no replay running (peer)", quiet))
    print(line(f"live client beside {args.replayers} replays of the history", loaded))
    p99 = statistics.median(ms(r, 99) for r in loaded)
    print(f"ratio of p99s: {p99 / max(statistics.median(ms(r, 99) for r in quiet), 0.001):.1f}x; "
          f"target p99 < 100 ms: {'met' if p99 < 100 else 'MISSED'}")


def main() -> None:
    """Parse the flags and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--replayers", type=int, default=20)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--quick", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
