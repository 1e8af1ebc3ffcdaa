"""REST latency: 1,000 sequential submits, then GETs with and without a held write lock.

Submit target: p50 under 10 ms. Reads target: a write lock held by another process for
5 s leaves GET latency as it is (reads have their own connection). Run:
``python benchmarks/bench_server_rest.py [default=2]`` (the argument is the server's job
workers, which run the submitted no-op jobs meanwhile).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_server_common import start_server, summary

SUBMITS = 1000
WARMUP = 50
LOCK_SECONDS = 5.0
HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


def read_latencies(server, conn, task_id: str, seconds: float | None = None,
                   count: int = 0) -> list[float]:
    """GET latencies, alternating a list page and one task, for ``seconds`` or ``count`` calls."""
    latencies = []
    end = time.monotonic() + seconds if seconds is not None else None
    i = 0
    while (end is None and i < count) or (end is not None and time.monotonic() < end):
        path = "/api/tasks?limit=50" if i % 2 else f"/api/tasks/{task_id}"
        started = time.perf_counter()
        status, _ = server.call(conn, "GET", path)
        latencies.append(time.perf_counter() - started)
        assert status == 200, status
        i += 1
    return latencies


def main() -> None:
    workers = sys.argv[1] if len(sys.argv) > 1 else "default=2"
    server = start_server(workers=workers)
    conn = server.connection()
    for i in range(WARMUP):
        server.call(conn, "POST", "/api/tasks", {"name": "bench_noop", "params": {"n": i}})
    latencies = []
    for i in range(SUBMITS):
        started = time.perf_counter()
        status, _ = server.call(conn, "POST", "/api/tasks",
                                {"name": "bench_noop", "params": {"n": i}})
        latencies.append(time.perf_counter() - started)
        assert status == 202, status
    print(summary(f"REST submit latency ({SUBMITS} submits, workers {workers} running them)",
                  latencies))
    p50 = sorted(latencies)[len(latencies) // 2] * 1000
    print(f"target p50 < 10 ms: {'met' if p50 < 10 else 'MISSED'}")

    _, task = server.call(conn, "POST", "/api/tasks", {"name": "bench_noop", "params": {"n": 0}})
    free = read_latencies(server, conn, task["id"], count=1000)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(server.db_path),
                               str(LOCK_SECONDS)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    locked = read_latencies(server, conn, task["id"], seconds=LOCK_SECONDS * 0.9)
    holder.wait(timeout=60)
    print(summary("GET latency, no lock held (1,000 reads)", free))
    print(summary(f"GET latency while another process holds the write lock {LOCK_SECONDS:.0f} s "
                  f"({len(locked)} reads)", locked))
    ratio = sorted(locked)[int(len(locked) * 0.99)] / sorted(free)[int(len(free) * 0.99)]
    print(f"p99 with the lock held / p99 without: {ratio:.2f}x; slowest read with the lock "
          f"held {max(locked) * 1000:.0f} ms (target: reads unaffected, ~1x, no read waiting "
          f"for the lock)")
    conn.close()
    server.stop()


if __name__ == "__main__":
    main()
