"""REST submit latency: 1,000 sequential ``POST /api/tasks`` over one keep-alive connection.

Target: p50 under 10 ms. Run: ``python benchmarks/bench_server_rest.py [default=2]``
(the argument is the server's job workers, which run the submitted no-op jobs meanwhile).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_server_common import start_server, summary

SUBMITS = 1000
WARMUP = 50


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
    conn.close()
    server.stop()


if __name__ == "__main__":
    main()
