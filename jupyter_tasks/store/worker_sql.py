"""The SQL of workers: claims, leases, heartbeats and reaping lost ones."""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from ..models import (
    WORKER_LOST,
    EventType,
    Task,
    TaskMode,
    TaskStatus,
    WorkerInfo,
    dumps,
    failure_reason,
    worker_task_names,
)
from .event_sql import insert_event
from .task_sql import encode_column, tx_append_logs, tx_transition, update_task


class Finished(NamedTuple):
    """What :meth:`Store.finish` wrote: whether the task ended, its callback, the next job."""

    written: bool
    callback_url: str | None
    next_job: Task | None


class FinishWritten(NamedTuple):
    """What ``tx_finish`` wrote, the next job's row still to decode (after the commit)."""

    written: bool
    callback_url: str | None
    next_row: sqlite3.Row | None


# the jobs of a queue a claim may take now (arguments: queue, now); the claim and the
# look before it (DUE_JOB_SQL) share it, so they never disagree on what is due
DUE_JOBS = ("FROM tasks WHERE status = 'queued' AND mode = 'job' AND queue = ? "
            "AND ifnull(not_before, 0) <= ?")
# ... and of those, the ones a worker can run (argument: a JSON list of the task names it
# has registered): a worker started with an older task module took jobs of names it
# lacked and failed them ("no task registered"), while another worker had the task
RUNNABLE = " AND (kind != 'function' OR name IN (SELECT value FROM json_each(?)))"


def _claim_sql(subquery_test: str, due: str) -> str:
    return (
        "UPDATE tasks SET status = 'running', worker_id = ?, lease_expires_at = ?, "
        "attempts = attempts + 1, started_at = ?, updated_at = ?, not_before = NULL, "
        "process = NULL "
        f"WHERE id {subquery_test} (SELECT id {due} "
        "ORDER BY priority DESC, id LIMIT ?) RETURNING *")


# one job (a busy slot's next) compares with the subquery's single id; several go
# through IN, which builds a temporary index of the ids first; each without and with
# the runnable names
CLAIM_ONE_SQL = (_claim_sql("=", DUE_JOBS), _claim_sql("=", DUE_JOBS + RUNNABLE))
CLAIM_MANY_SQL = (_claim_sql("IN", DUE_JOBS), _claim_sql("IN", DUE_JOBS + RUNNABLE))
# whether a claim would find a job: a read, so an idle worker woken by a commit that
# queued nothing looks without taking the write lock (the claim's own index answers it)
DUE_JOB_SQL = (f"SELECT 1 {DUE_JOBS} LIMIT 1", f"SELECT 1 {DUE_JOBS}{RUNNABLE} LIMIT 1")


def due_args(queue: str, now: float, runnable: str | None) -> tuple[Any, ...]:
    """The arguments of DUE_JOBS (with RUNNABLE when ``runnable`` names the tasks)."""
    return (queue, now) if runnable is None else (queue, now, runnable)


def tx_claim(
    conn: sqlite3.Connection, queue: str, worker_id: str, lease_seconds: float, limit: int,
    runnable: str | None = None,
) -> list[sqlite3.Row]:
    """Claim up to ``limit`` due jobs; their rows, in the order they start.

    ``runnable``: the JSON list of the task names the worker has (its function jobs of
    other names are left for another worker); None takes any. Rows, not tasks: the
    caller decodes them after the commit, so the write lock (which another worker
    process may be waiting for) is not held for that Python.
    """
    now = time.time()
    rows = conn.execute(
        (CLAIM_ONE_SQL if limit == 1 else CLAIM_MANY_SQL)[runnable is not None],
        (worker_id, now + lease_seconds, now, now, *due_args(queue, now, runnable), limit),
    ).fetchall()
    rows.sort(key=lambda r: (-r["priority"], r["id"]))
    for row in rows:
        insert_event(conn, row["id"], EventType.STARTED, now)
    return rows


def tx_register_worker(conn: sqlite3.Connection, w: WorkerInfo) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO workers (id, kind, pid, host, pid_started_at, queues, slots, "
        "tasks, started_at, heartbeat_at, stopped_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
        (w.id, w.kind, w.pid, w.host, w.pid_started_at, dumps(w.queues), dumps(w.slots),
         None if w.tasks is None else dumps(w.tasks), w.started_at, w.heartbeat_at),
    )


def tx_heartbeat(conn: sqlite3.Connection, worker_id: str, lease_seconds: float,
                 task_ids: list[str], tasks_json: str | None = None) -> None:
    now = time.time()
    # the names it claims, as they are now (a module may register more after the start)
    conn.execute("UPDATE workers SET heartbeat_at = ?, tasks = ifnull(?, tasks) WHERE id = ?",
                 (now, tasks_json, worker_id))
    # only the tasks the worker says it runs: a row it lost track of (its end could
    # not be written) lets its lease run out, and a reaper settles it
    conn.execute(
        "UPDATE tasks SET lease_expires_at = ? WHERE worker_id = ? AND status = 'running' "
        "AND id IN (SELECT value FROM json_each(?))",
        (now + lease_seconds, worker_id, json.dumps(task_ids)),
    )


def tx_stop_worker(conn: sqlite3.Connection, worker_id: str) -> None:
    conn.execute("UPDATE workers SET stopped_at = ? WHERE id = ?", (time.time(), worker_id))


def worker_from_row(row: sqlite3.Row) -> WorkerInfo:
    return WorkerInfo(
        id=row["id"], kind=row["kind"], pid=row["pid"], host=row["host"],
        started_at=row["started_at"], heartbeat_at=row["heartbeat_at"],
        pid_started_at=row["pid_started_at"], queues=json.loads(row["queues"] or "[]"),
        stopped_at=row["stopped_at"], slots=_slots(row["slots"]),
        tasks=worker_task_names(row["tasks"]),
    )


def _slots(text: str | None) -> dict[str, int]:
    """A worker row's slots; nothing for a missing or unreadable value (the row is a hint)."""
    try:
        slots = json.loads(text or "{}")
    except ValueError:
        return {}
    if not isinstance(slots, dict):
        return {}
    return {q: n for q, n in slots.items()
            if isinstance(q, str) and isinstance(n, int) and not isinstance(n, bool) and n > 0}


def reap_candidates_query(dead: list[str], now: float) -> tuple[str, list[Any]]:
    """The running tasks of dead workers, or past their lease: SQL and arguments."""
    if dead:
        marks = ",".join("?" * len(dead))
        return (f"SELECT * FROM tasks WHERE status = 'running' AND (worker_id IN ({marks}) "
                "OR lease_expires_at < ?)", [*dead, now])
    return "SELECT * FROM tasks WHERE status = 'running' AND lease_expires_at < ?", [now]


class Spared(NamedTuple):
    """Running tasks a reaper leaves alone although their lease ran out."""

    workers: frozenset[str] = frozenset()  # live workers on the reaper's host
    tasks: frozenset[str] = frozenset()  # the tasks the reaper's own process runs

    def spares(self, task: Task) -> bool:
        return task.worker_id in self.workers or task.id in self.tasks


def _reap_candidates(conn: sqlite3.Connection, dead: list[str], now: float,
                     spared: Spared) -> list[Task]:
    return [task for task in map(Task.from_row, conn.execute(*reap_candidates_query(dead, now)))
            if not spared.spares(task)]


def tx_set_process(conn: sqlite3.Connection, task_id: str, worker_id: str,
                    process: dict[str, Any] | None) -> bool:
    # no event: the record is for reapers, not for people watching the task
    return conn.execute(
        "UPDATE tasks SET process = ? WHERE id = ? AND worker_id = ? AND status = 'running'",
        (None if process is None else dumps(process), task_id, worker_id),
    ).rowcount > 0


def tx_reap(conn: sqlite3.Connection, dead: list[str], now: float,
            cleared: dict[str, Mapping[str, Any]], max_lost: int,
            spared: Spared = Spared()) -> list[Task]:
    if dead:
        marks = ",".join("?" * len(dead))
        conn.execute(f"UPDATE workers SET stopped_at = ? WHERE id IN ({marks})", [now, *dead])
    settled = []
    for task in _reap_candidates(conn, dead, now, spared):
        if task.process is not None and cleared.get(task.id) != task.process:
            # its process group may still run (or was recorded after the caller looked):
            # it stays running until a reaper has seen that group end
            continue
        if task.process is not None and task.process.get("exit") is not None:
            # the work's process group recorded its exit before its worker died:
            # that is the outcome, the work is not run again
            changes, event = _ended_from_exit(task, task.process, now)
            tx_append_logs(conn, task.id, [(now, "log", (
                f"[jupyter-tasks] worker {task.worker_id} was lost after the process exited "
                f"with code {task.process['exit']}; this end was written from that exit\n"))],
                own_line=True)
        else:
            changes, event = _lost(task, now, max_lost)
        updated = update_task(conn, task.id, changes, (TaskStatus.RUNNING.value,))
        if updated is not None:
            insert_event(conn, updated, event, now)
            settled.append(updated)
    return settled + _end_waiting_for(conn, dead, now)


def _end_waiting_for(conn: sqlite3.Connection, dead: list[str], now: float) -> list[Task]:
    """End the queued work sent to dead workers (a cell's rerun goes to its kernel only):
    no other worker takes it, and it waited for good."""
    if not dead:
        return []
    marks = ",".join("?" * len(dead))
    rows = conn.execute(  # along tasks_waiting_for_worker (migration 19)
        f"SELECT id, worker_id FROM tasks WHERE status = 'queued' AND worker_id IN ({marks}) "
        "AND mode != 'job'", dead).fetchall()
    ended = []
    for task_id, worker_id in rows:
        error = {"type": "WorkerLost", "traceback": None,
                 "message": f"worker {worker_id}, the only one that could run this task, "
                            "stopped before it ran this; run it again where it can run"}
        updated = update_task(conn, task_id, {
            "status": TaskStatus.INTERRUPTED.value, "error": error, "finished_at": now},
            (TaskStatus.QUEUED.value,))
        if updated is not None:
            insert_event(conn, updated, EventType.INTERRUPTED, now)
            ended.append(updated)
    return ended


def _lost(task: Task, now: float, max_lost: int) -> tuple[dict[str, Any], EventType]:
    """A lost worker's task with no recorded exit: back in the queue, or ended."""
    lost = {"type": "WorkerLost",
            "message": f"worker {task.worker_id} stopped while running this task",
            "traceback": None}
    if task.mode == TaskMode.JOB.value and task.lost_attempts < max_lost \
            and not task.cancel_requested:
        # the work did not fail: this attempt is not one of its max_retries
        return ({"status": TaskStatus.QUEUED.value, "worker_id": None,
                 "lease_expires_at": None, "not_before": None, "error": lost,
                 "started_at": None, "process": None, "retry_reason": WORKER_LOST,
                 "lost_attempts": task.lost_attempts + 1}, EventType.RETRYING)
    if task.mode == TaskMode.JOB.value and not task.cancel_requested:
        times = task.lost_attempts + 1
        lost = {**lost, "message": f"{lost['message']}; its worker was lost {times} "
                                   f"time{'' if times == 1 else 's'}, not retried again"}
    status = TaskStatus.CANCELLED if task.cancel_requested else TaskStatus.INTERRUPTED
    return ({"status": status.value, "error": lost, "finished_at": now,
             "lease_expires_at": None, "process": None}, EventType.for_status(status))


def _ended_from_exit(task: Task, process: Mapping[str, Any],
                     now: float) -> tuple[dict[str, Any], EventType]:
    """The end a lost worker would have written for a command (or code job) that exited."""
    code = int(process["exit"])
    ended_at = float(process.get("ended_at") or now)
    # the peak the shim measured at the exit (the worker that would have kept it is gone)
    usage = dict(task.resource_usage or {})
    if process.get("peak_memory_mb"):
        usage["peak_memory_mb"] = max(float(process["peak_memory_mb"]),
                                      float(usage.get("peak_memory_mb") or 0))
    if code == 0:
        return ({"status": TaskStatus.SUCCEEDED.value, "result": {"returncode": 0},
                 "error": None, "finished_at": ended_at, "lease_expires_at": None,
                 "process": None, "resource_usage": usage or None}, EventType.SUCCEEDED)
    failed = {"type": "CodeFailed" if task.kind == "code" else "SubprocessFailed",
              "message": f"the process exited with code {code}; worker {task.worker_id} "
                         "was lost before it wrote this end",
              "traceback": None}
    # a failure like any other: retried while max_retries allows, as the worker would have
    if task.mode == TaskMode.JOB.value and task.work_attempts <= task.max_retries \
            and not task.cancel_requested:
        return ({"status": TaskStatus.QUEUED.value, "worker_id": None,
                 "lease_expires_at": None, "not_before": None, "error": failed,
                 "started_at": None, "process": None,
                 "retry_reason": failure_reason(failed)}, EventType.RETRYING)
    return ({"status": TaskStatus.FAILED.value, "error": failed, "finished_at": ended_at,
             "lease_expires_at": None, "process": None, "resource_usage": usage or None},
            EventType.FAILED)


# a job whose cancel was under way when its worker stopped: the end the user asked for
CANCELLED_AT_STOP = {"type": "TaskCancelled", "traceback": None,
                     "message": "the task was cancelled (its worker stopped before it ended)"}


def tx_hand_back(conn: sqlite3.Connection, task_id: str, worker_id: str,
                 changes: dict[str, Any]) -> Task | None:
    """Put a running job of ``worker_id`` back in its queue with ``changes``; end it
    cancelled instead when a cancel was asked (back in its queue, it would only show
    queued until a worker claimed it, for good if none serves the queue)."""
    row = conn.execute("SELECT cancel_requested FROM tasks WHERE id = ? AND status = ? "
                       "AND worker_id = ?", (task_id, TaskStatus.RUNNING.value, worker_id)
                       ).fetchone()
    if row is None:
        return None
    if not row[0]:
        return tx_transition(conn, task_id, changes, EventType.RETRYING,
                             (TaskStatus.RUNNING.value,), worker_id)
    now = time.time()
    return tx_transition(conn, task_id, {
        "status": TaskStatus.CANCELLED.value, "finished_at": now, "lease_expires_at": None,
        "progress": changes.get("progress"), "confirmation": None,
        "error": CANCELLED_AT_STOP, "updated_at": now}, EventType.CANCELLED,
        (TaskStatus.RUNNING.value,), worker_id)


def finish_update(changes: Mapping[str, Any]) -> tuple[str, list[Any], float]:
    """The end's UPDATE: its SQL, its encoded values and its time (built before the lock)."""
    changes = {**changes, "updated_at": changes.get("updated_at", time.time())}
    sets = ", ".join(f"{column} = ?" for column in changes)
    sql = (f"UPDATE tasks SET {sets} WHERE id = ? AND status = 'running' AND worker_id = ? "
           "RETURNING callback_url")
    return sql, [encode_column(c, v) for c, v in changes.items()], changes["updated_at"]


def tx_finish(
    conn: sqlite3.Connection,
    task_id: str,
    update: tuple[str, list[Any], float],
    event: EventType | str,
    worker_id: str,
    claim_queue: str | None,
    lease_seconds: float,
    runnable: str | None = None,
) -> FinishWritten:
    sql, args, at = update
    # only what the caller needs back: decoding the whole row costs more than the update
    row = conn.execute(sql, [*args, task_id, worker_id]).fetchone()
    if row is not None:
        insert_event(conn, task_id, event, at)
    claimed = tx_claim(conn, claim_queue, worker_id, lease_seconds, 1, runnable) \
        if claim_queue else []
    return FinishWritten(row is not None, row[0] if row is not None else None,
                         claimed[0] if claimed else None)
