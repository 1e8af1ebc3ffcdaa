"""Durable-queue throughput beside SqliteHuey and raw SQLite, measured in the same run.

Cases, each repeated in interleaved rounds (medians and spread reported, since one
run's speed on a shared machine can move by a fifth):

- concurrent: N trivial jobs submitted through the async API with 64 in flight,
  four in-process job slots, submit to all finished; also the rate of the submit
  phase alone, beside the raw SQLite limit: the same task and event rows inserted
  by plain ``sqlite3`` (same schema, WAL, synchronous=NORMAL) 64 per commit; the
  task rows fresh, as a submit writes them (outside the history indexes); and the
  rate of the harness alone (the same gather and semaphore, futures resolved once
  a loop turn, no work), which bounds what share of the raw limit a submit reaches.
- sequential: the same N jobs submitted one at a time (a notebook loop), beside
  SqliteHuey enqueueing from one thread with fsync off (synchronous=OFF, less
  durable than ours) and with fsync on (synchronous=FULL); Huey's thread consumer
  has four threads, its polling tuned to its fastest (10 ms, 100 ms cap). Beside
  them, the SQL floor: the very transactions a sequential run committed (recorded in
  an untimed run of its own), replayed on one plain ``sqlite3`` connection with no
  asyncio, no validation and no engine around them. It bounds what any trimming of
  the engine's Python could reach with this schema.
- sequential-process: the notebook loop as it is usually deployed, the jobs run by
  another process: one ``jupyter tasks worker`` (4 slots), beside SqliteHuey with its
  consumer in a process of its own (``huey_consumer``, 4 threads, the same polling),
  fsync off and on; submit to the last job's end (polled in the rows, each 2 ms).
- workers: N jobs queued first, then drained by one or two ``jupyter tasks worker``
  processes (4 slots each) on the same database; the rate is N over the span from
  the first start to the last finish written in the rows. Twice: trivial jobs (the
  database is all the work, and SQLite has one writer at a time) and jobs that
  spend a millisecond of CPU each; with the CPU cores the workers used over that
  span (a core left idle by two workers is time spent waiting for the write lock).
- backlog: the rate of one-job claims (``Store.claim_jobs``) with 100 jobs queued
  and with BACKLOG queued (each claimed job is handed back, untimed, so the depth
  stays), and the claim statement's ``EXPLAIN QUERY PLAN``.

Every case of ours counts the settling of its ended jobs into the history indexes
(``Store.settle``, which the store's upkeep does about a second later): the
in-process cases settle before the clock stops, the worker cases add the time a
settling of all N takes to the span.

Usage: python benchmarks/bench_engine_queue.py [N] [ROUNDS] [BACKLOG] [CASES]

CASES is a comma-separated subset of concurrent,sequential,sequential-process,workers,
backlog (all by
default): ``... 2000 5 0 sequential`` runs the sequential case and its Huey peers alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from bench_server_common import noop_registry

from jupyter_tasks import TaskManager
from jupyter_tasks.models import new_task_id
from jupyter_tasks.store import Store
from jupyter_tasks.store import store as store_module
from jupyter_tasks.store.connection import setup_connection
from jupyter_tasks.store.task_sql import SETTLE_BATCH, tx_settle

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
BACKLOG = int(sys.argv[3]) if len(sys.argv) > 3 else 500_000
CASES = set((sys.argv[4] if len(sys.argv) > 4 else
              "concurrent,sequential,sequential-process,workers,backlog").split(","))
WORKERS = 4
IN_FLIGHT = 64
CLAIMS = 1000
SHALLOW = 100

TASK_MODULE = '''
import time

from jupyter_tasks import task

@task("noop", mode="job")
async def noop(i: int) -> int:
    return i

@task("cpu_ms", mode="job")
def cpu_ms(i: int) -> int:
    # a job that works: about a millisecond of CPU in its thread
    until = time.thread_time() + 0.001
    while time.thread_time() < until:
        pass
    return i
'''


async def bench_ours(folder: Path, in_flight: int) -> tuple[float, float]:
    """(submit phase seconds, submit-to-all-finished seconds)."""
    async with TaskManager(folder / f"ours-{in_flight}.db", registry=noop_registry(),
                           queues={"default": WORKERS}, make_default=False) as manager:
        with manager.subscribe(maxsize=10 * N) as feed:
            started = time.perf_counter()
            gate = asyncio.Semaphore(in_flight)

            async def submit(i: int) -> None:
                async with gate:
                    await manager.submit_spec({"name": "noop", "params": {"i": i}}, mode="job")

            if in_flight == 1:
                for i in range(N):
                    await submit(i)
            else:
                await asyncio.gather(*(submit(i) for i in range(N)))
            submitted = time.perf_counter() - started
            finished = 0
            while finished < N:
                event = await feed.get()
                if event.type == "task.succeeded":
                    finished += 1
            # the ended jobs' way into the history indexes, which the store's upkeep
            # would do a second later, inside the measured span (the jobs' own cost)
            await manager.store.settle()
            elapsed = time.perf_counter() - started
        stats = await manager.store.stats()
        assert stats["statuses"]["succeeded"] == N, stats
    return submitted, elapsed


def bench_huey(folder: Path, fsync: bool) -> float:
    from huey import SqliteHuey
    from huey.signals import SIGNAL_COMPLETE

    huey = SqliteHuey("bench", filename=str(folder / f"huey-{fsync}.db"), fsync=fsync)

    @huey.task()
    def noop(i: int) -> int:
        return i

    done = threading.Event()
    count = 0
    lock = threading.Lock()

    @huey.signal(SIGNAL_COMPLETE)
    def completed(signal: Any, task: Any, *args: Any) -> None:
        nonlocal count
        with lock:
            count += 1
            if count == N:
                done.set()

    consumer = huey.create_consumer(workers=WORKERS, worker_type="thread", initial_delay=0.01,
                                    backoff=1.15, max_delay=0.1, periodic=False)
    consumer.start()
    try:
        started = time.perf_counter()
        for i in range(N):
            noop(i)
        if not done.wait(600):
            raise RuntimeError(f"huey finished only {count} of {N}")
        elapsed = time.perf_counter() - started
    finally:
        consumer.stop(graceful=True)
    return elapsed


async def fresh_database(path: Path) -> None:
    """An empty database with the store's schema (then closed)."""
    async with await Store.open(path):
        pass


def raw_rows(count: int) -> list[tuple[list[Any], tuple[Any, ...]]]:
    """(task row, event row) values like a submitted noop job's, built before timing."""
    now = time.time()
    rows = []
    for i in range(count):
        task_id = new_task_id()
        params = json.dumps({"i": i}, separators=(",", ":"))
        spec = f'{{"name":"noop","params":{params}}}'
        hashes = json.dumps({"spec": f"{i:064d}"})
        task = {"id": task_id, "kind": "function", "mode": "job", "status": "queued",
                "name": "noop", "label": "noop", "params": params, "spec": spec,
                "queue": "default", "priority": 0, "owner": "bench", "origin": "{}",
                "attempts": 0, "max_retries": 2, "content_hashes": hashes,
                "created_at": now, "updated_at": now,
                # fresh, as a submit writes it: outside the history indexes (migration 11)
                "fresh": 1}
        snapshot = json.dumps({"id": task_id, "status": "queued", "name": "noop",
                               "params": {"i": i}}, separators=(",", ":"))
        rows.append((task, ("task.created", now, "bench", snapshot, task_id)))
    return rows


async def bench_raw_limit(folder: Path, per_commit: int) -> float:
    """Seconds for plain sqlite3 to insert N task rows and their events, per_commit a commit."""
    path = folder / f"raw-{per_commit}.db"
    await fresh_database(path)
    rows = raw_rows(N)
    columns = list(rows[0][0])
    insert_task = (f"INSERT INTO tasks ({', '.join(columns)}) "
                   f"VALUES ({', '.join('?' * len(columns))})")
    insert_event = "INSERT INTO events (type, ts, owner, task, task_id) VALUES (?, ?, ?, ?, ?)"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    started = time.perf_counter()
    for at in range(0, N, per_commit):
        conn.execute("BEGIN IMMEDIATE")
        for task, event in rows[at:at + per_commit]:
            conn.execute(insert_task, [task[c] for c in columns])
            conn.execute(insert_event, event)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


async def record_sequential_transactions(folder: Path) -> list[list[tuple[Any, tuple[Any, ...]]]]:
    """The writes of an untimed sequential run, one list of (function, args) per commit."""
    recorded: list[list[tuple[Any, tuple[Any, ...]]]] = []
    commit_writes = store_module.stream_transaction

    def recording(conn: sqlite3.Connection, ops: Any, limit: int, **options: Any) -> Any:
        taken: list[tuple[Any, tuple[Any, ...]]] = []

        class Taking:
            def get_nowait(self) -> Any:
                op = ops.get_nowait()
                taken.append((op[0], op[1]))
                return op

        outcome = commit_writes(conn, Taking(), limit, **options)
        if outcome is not None and outcome[1]:  # committed, in one piece
            recorded.append(taken)
        return outcome

    store_module.stream_transaction = recording
    (folder / "recorded").mkdir(exist_ok=True)
    try:
        await bench_ours(folder / "recorded", 1)
    finally:
        store_module.stream_transaction = commit_writes
    return recorded


async def bench_sql_floor(folder: Path) -> float:
    """Seconds to replay a sequential run's own transactions on a plain connection."""
    transactions = await record_sequential_transactions(folder)
    path = folder / "replayed.db"
    await fresh_database(path)
    conn = sqlite3.connect(path, isolation_level=None)
    setup_connection(conn, 5.0)
    started = time.perf_counter()
    for writes in transactions:
        conn.execute("BEGIN IMMEDIATE")
        for write, args in writes:
            write(conn, *args)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


async def bench_harness_floor() -> float:
    """Seconds for the concurrent case's own asyncio harness with no work in it.

    The same ``gather`` of N coroutines through a 64-wide semaphore, each awaiting a
    future that one callback per loop turn resolves (as the group commit does): what
    the submits cost before any validation, encoding or SQL. The share of the raw
    limit a submit can reach is bounded by it.
    """
    loop = asyncio.get_running_loop()
    waiting: list[asyncio.Future[None]] = []

    def resolve() -> None:
        batch = waiting[:]
        waiting.clear()
        for future in batch:
            future.set_result(None)

    async def write() -> None:
        future = loop.create_future()
        if not waiting:
            loop.call_soon(resolve)
        waiting.append(future)
        await future

    gate = asyncio.Semaphore(IN_FLIGHT)

    async def submit(i: int) -> None:
        async with gate:
            await write()

    started = time.perf_counter()
    await asyncio.gather(*(submit(i) for i in range(N)))
    return time.perf_counter() - started


HUEY_MODULE = '''
import os
from huey import SqliteHuey
huey = SqliteHuey("bench", filename=os.environ["HUEY_DB"],
                  fsync=os.environ["HUEY_FSYNC"] == "1")

@huey.task()
def noop(i):
    return i
'''


def wait_for_rows(path: Path, sql: str, count: int, processes: list[Any]) -> None:
    """Until ``sql`` counts ``count`` rows (a 2 ms poll of the outcome, not a sync)."""
    conn = sqlite3.connect(path, timeout=30)
    deadline = time.monotonic() + 600
    try:
        while conn.execute(sql).fetchone()[0] < count:
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise RuntimeError(f"{path.name}: not {count} rows of {sql!r}")
            time.sleep(0.002)
    finally:
        conn.close()


def bench_sequential_to_a_worker(folder: Path) -> tuple[float, float]:
    """(submit phase, submit to the last end) of N one-at-a-time submits from this
    process, the jobs run by a ``jupyter tasks worker`` process."""
    path = folder / "to-a-worker.db"
    asyncio.run(fresh_database(path))
    module = folder / "bench_noop_tasks.py"
    module.write_text(TASK_MODULE)
    env = {**os.environ, "JUPYTER_TASKS_MODULES": str(module)}
    worker = subprocess.Popen([sys.executable, "-m", "jupyter_tasks.cli", "--db", str(path),
                               "worker", "--concurrency", str(WORKERS)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_rows(path, "SELECT count(*) FROM workers WHERE stopped_at IS NULL", 1,
                      [worker])

        async def submit_all() -> tuple[float, float]:
            async with TaskManager(path, registry=noop_registry(), queues={},
                                   make_default=False, as_worker=False,
                                   runs_background=False) as client:
                started = time.perf_counter()
                for i in range(N):
                    await client.submit_spec({"name": "noop", "params": {"i": i}}, mode="job")
                return started, time.perf_counter() - started

        started, submitted = asyncio.run(submit_all())
        wait_for_rows(path, "SELECT count(*) FROM tasks WHERE status = 'succeeded'", N,
                      [worker])
        return submitted, time.perf_counter() - started
    finally:
        worker.terminate()
        worker.wait(30)


def bench_huey_consumer_process(folder: Path, fsync: bool) -> tuple[float, float]:
    """(enqueue phase, enqueue to the last result) of SqliteHuey, its consumer a process."""
    db = folder / f"huey-process-{fsync}.db"
    (folder / "bench_huey_tasks.py").write_text(HUEY_MODULE)
    env = {**os.environ, "HUEY_DB": str(db), "HUEY_FSYNC": "1" if fsync else "0",
           "PYTHONPATH": str(folder)}
    saved = {k: os.environ.get(k) for k in ("HUEY_DB", "HUEY_FSYNC")}
    os.environ.update({k: env[k] for k in saved})
    sys.path.insert(0, str(folder))
    try:
        import importlib

        import bench_huey_tasks  # type: ignore[import-not-found]
        tasks = importlib.reload(bench_huey_tasks)
    finally:
        sys.path.remove(str(folder))
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    consumer = subprocess.Popen(
        [sys.executable, "-m", "huey.bin.huey_consumer", "bench_huey_tasks.huey",
         "-w", str(WORKERS), "-k", "thread", "-d", "0.01", "-b", "1.15", "-m", "0.1"],
        env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # the consumer's tables exist once it runs (its first poll made them)
        wait_for_rows(db, "SELECT count(*) FROM sqlite_master WHERE name = 'kv'", 1,
                      [consumer])
        started = time.perf_counter()
        for i in range(N):
            tasks.noop(i)
        submitted = time.perf_counter() - started
        wait_for_rows(db, "SELECT count(*) FROM kv", N, [consumer])
        return submitted, time.perf_counter() - started
    finally:
        consumer.terminate()
        consumer.wait(30)


async def queue_jobs(path: Path, count: int) -> None:
    """``count`` queued noop jobs in the database (submitted by a process with no slots)."""
    async with TaskManager(path, registry=noop_registry(), queues={}, make_default=False,
                           as_worker=False, runs_background=False) as manager:
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def submit(i: int) -> None:
            async with gate:
                await manager.submit_spec({"name": "noop", "params": {"i": i}}, mode="job")

        await asyncio.gather(*(submit(i) for i in range(count)))


def bench_worker_processes(folder: Path, processes: int, job: str = "noop"
                           ) -> tuple[float, float]:
    """(jobs per second, CPU cores used) of ``processes`` worker processes draining N jobs.

    The workers start first and register; then the N jobs go in with one commit, so
    every worker meets the same queue; the rate is N over the span from the first
    start to the last finish written in the rows. The cores are the workers' CPU time
    over the drain's wall time: with trivial jobs, a second worker that leaves a core
    idle waits for the write lock, not for a CPU.
    """
    path = folder / f"workers-{processes}-{job}.db"
    asyncio.run(fresh_database(path))
    module = folder / "bench_noop_tasks.py"
    module.write_text(TASK_MODULE)
    env = {**os.environ, "JUPYTER_TASKS_MODULES": str(module)}
    workers = [subprocess.Popen([sys.executable, "-m", "jupyter_tasks.cli", "--db", str(path),
                                 "worker", "--concurrency", str(WORKERS)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for _ in range(processes)]
    conn = sqlite3.connect(path, timeout=30)
    try:
        def wait_for(sql: str, count: int) -> None:
            deadline = time.monotonic() + 600
            while conn.execute(sql).fetchone()[0] < count:
                if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                    raise RuntimeError("the worker processes did not get there")
                time.sleep(0.05)  # a benchmark's poll of the outcome, not a synchronisation

        wait_for("SELECT count(*) FROM workers WHERE stopped_at IS NULL", processes)
        measured = [psutil.Process(w.pid) for w in workers]

        def cpu_seconds() -> float:
            return sum(t.user + t.system for t in (p.cpu_times() for p in measured))

        cpu_before = cpu_seconds()
        asyncio.run(build_backlog(path, N, job))
        wait_for("SELECT count(*) FROM tasks WHERE status = 'succeeded'", N)
        cpu = cpu_seconds() - cpu_before
        first, last = conn.execute("SELECT min(started_at), max(finished_at) FROM tasks"
                                   ).fetchone()
        by_worker = conn.execute("SELECT count(DISTINCT worker_id) FROM tasks").fetchone()[0]
        assert by_worker == processes, f"only {by_worker} of {processes} workers ran jobs"
        # the ended jobs' way into the history indexes (the workers' upkeep does it a
        # second later, beside the jobs): added to the span as if it held up the drain
        settling = time.perf_counter()
        conn.isolation_level = None
        while True:
            conn.execute("BEGIN IMMEDIATE")
            settled = tx_settle(conn)
            conn.execute("COMMIT")
            if settled < SETTLE_BATCH:
                break
        settling = time.perf_counter() - settling
    finally:
        conn.close()
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)
    # over the same span as the rate (an idle worker's CPU outside it is next to none)
    return N / (last - first + settling), cpu / (last - first)


async def build_backlog(path: Path, count: int, job: str = "noop") -> None:
    """``count`` queued ``job`` jobs inserted as history rows (fast: one transaction)."""
    store = await Store.open(path)
    try:
        now = time.time()
        batch = 50_000
        for at in range(0, count, batch):
            await store.insert_task_rows(
                {"id": new_task_id(), "kind": "function", "mode": "job", "status": "queued",
                 "name": job, "label": job, "params": {"i": i},
                 "spec": {"name": job, "params": {"i": i}}, "queue": "default",
                 "created_at": now, "updated_at": now}
                for i in range(at, min(count, at + batch)))
    finally:
        await store.close()


async def claim_rate(path: Path) -> float:
    """One-job claims per second: CLAIMS of them, each job handed back so the depth stays.

    The queue as it stands once the store has settled its waiting jobs (into the
    history indexes, after QUEUED_SETTLE_SECONDS), at either depth: settled first, so
    that the upkeep does not settle it beside the claims.
    """
    store = await Store.open(path)
    try:
        waited, store_module.QUEUED_SETTLE_SECONDS = store_module.QUEUED_SETTLE_SECONDS, 0.0
        try:
            await store.settle()
        finally:
            store_module.QUEUED_SETTLE_SECONDS = waited
        # and its write-ahead log copied back, as the store's own checkpoints soon do
        conn = sqlite3.connect(path)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        spent = 0.0
        for _ in range(CLAIMS):
            started = time.perf_counter()
            claimed = await store.claim_jobs("default", "bench-worker", 30.0, 1)
            spent += time.perf_counter() - started
            assert len(claimed) == 1
            await store.transition(claimed[0].id, {"status": "queued", "worker_id": None},
                                   None, when_status=("running",))
        return CLAIMS / spent
    finally:
        await store.close()


def claim_plan(path: Path) -> list[str]:
    """``EXPLAIN QUERY PLAN`` of the one-job claim statement (a worker's: with its names)."""
    from jupyter_tasks.store.worker_sql import CLAIM_ONE_SQL

    conn = sqlite3.connect(path)
    try:
        now = time.time()
        rows = conn.execute("EXPLAIN QUERY PLAN " + CLAIM_ONE_SQL[1],
                            ("w", now, now, now, "default", now, '["noop"]', 1)).fetchall()
        return [row[-1] for row in rows]
    finally:
        conn.close()


def spread(values: list[float]) -> str:
    rates = sorted(values)
    return f"{statistics.median(rates):8.0f}/s  (min {rates[0]:.0f}, max {rates[-1]:.0f})"


def timed(label: str, fn: Callable[[], Any]) -> Any:
    value = fn()
    print(f"    {label}: done", flush=True)
    return value


def main() -> None:
    rates: dict[str, list[float]] = {k: [] for k in (
        "concurrent submits", "concurrent end-to-end", "raw sqlite 64/commit",
        "raw sqlite 1/commit", "asyncio harness alone", "sequential end-to-end",
        "sequential submits", "huey fsync off", "huey fsync on", "sql floor, sequential",
        "sequential, worker process", "huey consumer process, fsync off",
        "huey consumer process, fsync on",
        "1 worker process", "2 worker processes",
        "1 worker process, 1 ms jobs", "2 worker processes, 1 ms jobs",
        "claims, 100 queued", f"claims, {BACKLOG} queued")}
    cores: dict[str, list[float]] = {}  # CPU cores the worker processes used, per case
    print(f"durable queue, {N} trivial jobs, {WORKERS} slots; {ROUNDS} interleaved rounds; "
          f"load {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        backlog = Path(tmp) / "backlog.db"
        if "backlog" in CASES:
            asyncio.run(build_backlog(backlog, BACKLOG))
            print(f"  backlog of {BACKLOG} built; the claim's plan:")
            for line in claim_plan(backlog):
                print(f"    {line}")
        for round_number in range(1, ROUNDS + 1):
            with tempfile.TemporaryDirectory() as round_tmp:
                folder = Path(round_tmp)
                if "concurrent" in CASES:
                    submitted, elapsed = asyncio.run(bench_ours(folder, IN_FLIGHT))
                    rates["concurrent submits"].append(N / submitted)
                    rates["concurrent end-to-end"].append(N / elapsed)
                    rates["raw sqlite 64/commit"].append(
                        N / asyncio.run(bench_raw_limit(folder, IN_FLIGHT)))
                    rates["raw sqlite 1/commit"].append(
                        N / asyncio.run(bench_raw_limit(folder, 1)))
                    rates["asyncio harness alone"].append(
                        N / asyncio.run(bench_harness_floor()))
                if "sequential" in CASES:
                    submitted, elapsed = asyncio.run(bench_ours(folder, 1))
                    rates["sequential submits"].append(N / submitted)
                    rates["sequential end-to-end"].append(N / elapsed)
                    rates["huey fsync off"].append(N / bench_huey(folder, False))
                    rates["huey fsync on"].append(N / bench_huey(folder, True))
                    rates["sql floor, sequential"].append(
                        N / asyncio.run(bench_sql_floor(folder)))
                if "sequential-process" in CASES:
                    rates["sequential, worker process"].append(
                        N / bench_sequential_to_a_worker(folder)[1])
                    for fsync in (False, True):
                        rates[f"huey consumer process, fsync {'on' if fsync else 'off'}"] \
                            .append(N / bench_huey_consumer_process(folder, fsync)[1])
                if "workers" in CASES:
                    for name, processes, job in (
                            ("1 worker process", 1, "noop"),
                            ("2 worker processes", 2, "noop"),
                            ("1 worker process, 1 ms jobs", 1, "cpu_ms"),
                            ("2 worker processes, 1 ms jobs", 2, "cpu_ms")):
                        rate, used = bench_worker_processes(folder, processes, job)
                        rates[name].append(rate)
                        cores.setdefault(name, []).append(used)
                if "backlog" in CASES:
                    shallow = folder / "shallow.db"
                    asyncio.run(build_backlog(shallow, SHALLOW))
                    rates["claims, 100 queued"].append(asyncio.run(claim_rate(shallow)))
                    rates[f"claims, {BACKLOG} queued"].append(
                        asyncio.run(claim_rate(backlog)))
            print(f"  round {round_number} (load {os.getloadavg()[0]:.2f}): " + ", ".join(
                f"{name} {values[-1]:.0f}/s" for name, values in rates.items() if values),
                flush=True)
    print("medians (min, max):")
    for name, values in rates.items():
        if values:
            print(f"  {name:32s} {spread(values)}")
    if cores:
        print(f"CPU cores the worker processes used (of {os.cpu_count()}):")
    for name, used in cores.items():
        print(f"  {name:32s} {statistics.median(used):8.2f}    "
              f"(min {min(used):.2f}, max {max(used):.2f})")
    med = {name: statistics.median(values) for name, values in rates.items() if values}
    print("targets:")
    deep = f"claims, {BACKLOG} queued"
    for label, a, b, target in (
            ("sequential end-to-end / huey fsync off", "sequential end-to-end",
             "huey fsync off", ">= 1"),
            ("sequential end-to-end / huey fsync on", "sequential end-to-end",
             "huey fsync on", ">= 3"),
            ("  (its SQL floor / huey fsync off)", "sql floor, sequential",
             "huey fsync off", "bound"),
            ("sequential, worker process / huey off", "sequential, worker process",
             "huey consumer process, fsync off", ">= 1"),
            ("sequential, worker process / huey on", "sequential, worker process",
             "huey consumer process, fsync on", ">= 3"),
            ("concurrent submits / raw 64 per commit", "concurrent submits",
             "raw sqlite 64/commit", ">= 0.40"),
            ("2 worker processes / 1", "2 worker processes", "1 worker process", "> 1"),
            ("the same, jobs of 1 ms CPU", "2 worker processes, 1 ms jobs",
             "1 worker process, 1 ms jobs", "> 1"),
            ("claims deep / shallow", deep, "claims, 100 queued", ">= 0.80")):
        if a in med and b in med:
            print(f"  {label:40s}: {med[a] / med[b]:.2f}  ({target})")
    if "asyncio harness alone" in med:
        # the time a submit may take at the target, and what the harness alone takes of it
        budget = 1e6 / (0.40 * med["raw sqlite 64/commit"])
        harness = 1e6 / med["asyncio harness alone"]
        print(f"  a submit at 0.40 of the raw limit: {budget:.1f} us; the asyncio harness "
              f"alone takes {harness:.1f} us of it; a submit now takes "
              f"{1e6 / med['concurrent submits']:.1f} us")
    print(f"  load at the end {os.getloadavg()}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
