"""Sustained load: 20 concurrent clients submit 10,000 jobs in total over REST.

Reports submit throughput and the time until the server's job workers finished
them all, then proves from the database itself that every accepted task is
stored exactly once and succeeded. Run: ``python benchmarks/bench_server_load.py``.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_server_common import start_server, summary

CLIENTS = 20
TOTAL = 10_000
WORKERS = "default=4"


def main() -> None:
    server = start_server(workers=WORKERS)
    per_client = TOTAL // CLIENTS
    accepted: list[list[str]] = [[] for _ in range(CLIENTS)]
    latencies: list[list[float]] = [[] for _ in range(CLIENTS)]
    errors: list[str] = []
    barrier = threading.Barrier(CLIENTS + 1)

    def client(index: int) -> None:
        conn = server.connection()
        barrier.wait()
        try:
            for i in range(per_client):
                n = index * per_client + i
                began = time.perf_counter()
                status, body = server.call(conn, "POST", "/api/tasks",
                                           {"name": "bench_noop", "params": {"n": n},
                                            "idempotency_key": f"load-{n}"})
                latencies[index].append(time.perf_counter() - began)
                if status != 202:
                    errors.append(f"{status} {body}")
                    continue
                accepted[index].append(body["id"])
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    submitted = time.perf_counter() - started
    ids = [task_id for chunk in accepted for task_id in chunk]
    print(f"{CLIENTS} clients submitted {len(ids)} jobs in {submitted:.1f}s: "
          f"{len(ids) / submitted:.0f} submits/s ({len(errors)} errors)")
    print(summary("submit latency under load", [x for chunk in latencies for x in chunk]))

    conn = server.connection()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        _, stats = server.call(conn, "GET", "/api/tasks/stats")
        if stats["statuses"]["queued"] == 0 and stats["statuses"]["running"] == 0:
            break
        time.sleep(0.5)
    drained = time.perf_counter() - started
    print(f"all jobs finished {drained:.1f}s after the first submit: "
          f"{len(ids) / drained:.0f} jobs/s end to end (server job workers {WORKERS})")
    conn.close()
    server.stop()

    db = sqlite3.connect(server.db_path)
    rows = db.execute("SELECT id, status, attempts, params FROM tasks").fetchall()
    by_id: dict[str, int] = {}
    for row in rows:
        by_id[row[0]] = by_id.get(row[0], 0) + 1
    statuses = {row[1] for row in rows}
    missing = [task_id for task_id in ids if task_id not in by_id]
    assert len(set(ids)) == len(ids) == TOTAL, "an accepted id was returned twice"
    assert not missing, f"{len(missing)} accepted tasks are not in the store"
    assert len(rows) == TOTAL and all(count == 1 for count in by_id.values())
    assert statuses == {"succeeded"}, statuses
    params = sorted(int(row[3].split(":")[1].rstrip("}")) for row in rows)
    assert params == list(range(TOTAL)), "some job ran with the wrong parameters"
    retried = sum(1 for row in rows if row[2] != 1)
    print(f"verified in the store: {len(rows)} tasks, each accepted id exactly once, "
          f"all succeeded ({retried} needed more than one attempt)")


if __name__ == "__main__":
    main()
