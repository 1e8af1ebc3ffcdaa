"""The job worker: claim due jobs of each queue into free slots, keep this worker's lease alive."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any

import psutil

from ..models import Task, WorkerInfo
from .execution import Execution
from .state import EngineState

log = logging.getLogger("jupyter_tasks")
# the periodic claim that catches delayed retries (not_before) and missed wake-ups
# (at least this often; a longer ``poll_interval`` stretches it)
POLL_SECONDS = 0.5


class JobWorker:
    """This process as a worker: its row, its heartbeat, a claim loop per queue."""

    def __init__(self, state: EngineState, execution: Execution) -> None:
        self.state = state
        self.execution = execution
        # each runs claimed jobs one after another until its queue is empty
        self.job_runs: set[asyncio.Task[Any]] = set()

    async def register(self) -> None:
        """Write this worker's row (what the reapers of other processes check)."""
        state = self.state
        me = psutil.Process()
        now = time.time()
        await state.store.register_worker(WorkerInfo(
            id=state.worker_id, kind=state.config.worker_kind, pid=os.getpid(),
            host=socket.gethostname(), started_at=now, heartbeat_at=now,
            pid_started_at=me.create_time(), queues=sorted(state.config.queues or {}),
        ))

    def start_queues(self) -> list[asyncio.Task[Any]]:
        """A claim loop for each configured queue (its wake-up event set up first)."""
        loops = []
        for queue, concurrency in (self.state.config.queues or {}).items():
            self.state.wake_queues[queue] = asyncio.Event()
            loops.append(asyncio.create_task(self.job_loop(queue, concurrency)))
        return loops

    async def heartbeat_loop(self) -> None:
        """Renew this worker's lease every ``heartbeat_interval`` seconds until cancelled."""
        config = self.state.config
        while True:
            await asyncio.sleep(config.heartbeat_interval)
            try:
                await self.state.store.heartbeat(self.state.worker_id, config.lease_seconds)
            except Exception:
                log.exception("heartbeat failed")

    async def job_loop(self, queue: str, concurrency: int) -> None:
        """Claim due jobs of ``queue`` whenever a slot is free; run each to its end."""
        state = self.state
        wake = state.wake_queues[queue]
        active: set[asyncio.Task[Any]] = set()
        slot_freed = asyncio.Event()
        claim_every = max(POLL_SECONDS, state.config.poll_interval)

        def done(t: asyncio.Task[Any]) -> None:
            active.discard(t)
            self.job_runs.discard(t)
            slot_freed.set()

        while not state.stopping:
            free = concurrency - len(active)
            claimed: list[Task] = []
            if free > 0:
                wake.clear()
                try:
                    claimed = await state.store.claim_jobs(
                        queue, state.worker_id, state.config.lease_seconds,
                        min(free, state.config.claim_batch))
                except Exception:  # the database may be locked for a moment; try again soon
                    log.exception("claiming jobs of queue %s failed", queue)
                for job in claimed:
                    t = asyncio.ensure_future(self.execution.run_task(job))
                    active.add(t)
                    self.job_runs.add(t)
                    t.add_done_callback(done)
                if claimed:
                    continue
                waiters = [wake.wait()]
            else:
                slot_freed.clear()
                waiters = [slot_freed.wait()]
            wait_tasks = [asyncio.ensure_future(w) for w in waiters]
            try:
                await asyncio.wait(wait_tasks, timeout=claim_every)
            finally:
                for w in wait_tasks:
                    w.cancel()
        if active:
            await asyncio.gather(*active, return_exceptions=True)
