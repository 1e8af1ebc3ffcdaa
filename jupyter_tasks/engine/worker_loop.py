"""The job worker: claim due jobs of each queue into free slots, keep this worker's lease alive."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any

import psutil

from ..exceptions import StoreError
from ..models import Task, WorkerInfo
from .execution import Execution, outcome_despite_cancel
from .loop_failures import LoopFailures
from .state import Doorbell, EngineState

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
        # why jobs that ran here could not be handed back (or ended) at the stop
        self.left_at_stop: list[StoreError] = []

    def note_left_at_stop(self, runs: set[asyncio.Task[Any]]) -> None:
        """Keep in ``left_at_stop`` why ended ``runs`` (taken at the stop) could not write
        their jobs' ends or hand them back; said once in the log. Such a job shows running
        until a reaper finds this worker gone and queues it again (attempt not counted)."""
        self.left_at_stop = left = []
        for run in runs:
            if not run.done() or run.cancelled():
                continue  # still running past the grace: the process ends with it
            error = run.exception()  # taken, not left "never retrieved"
            if isinstance(error, StoreError):
                left.append(error)
            elif error is not None:
                log.error("a job run of worker %s failed at its stop", self.state.worker_id,
                          exc_info=error)
        if left:
            log.error("%d job(s) running in worker %s could not be handed back to their "
                      "queue at its stop: %s. They show running until a worker's reaper "
                      "finds this one gone and queues them again (that attempt not "
                      "counted)", len(left), self.state.worker_id, left[0].message)

    async def register(self) -> None:
        """Write this worker's row (what the reapers of other processes check)."""
        state = self.state
        me = psutil.Process()
        now = time.time()
        await state.store.register_worker(WorkerInfo(
            id=state.worker_id, kind=state.config.worker_kind, pid=os.getpid(),
            host=socket.gethostname(), started_at=now, heartbeat_at=now,
            pid_started_at=me.create_time(), queues=sorted(state.config.queues or {}),
            slots=dict(state.config.queues), tasks=state.registry.names(),
        ))

    def start_queues(self) -> list[asyncio.Task[Any]]:
        """A claim loop for each configured queue (its wake-up set up first)."""
        loops = []
        for queue, concurrency in (self.state.config.queues or {}).items():
            self.state.wake_queues[queue] = Doorbell()
            loops.append(asyncio.create_task(self.job_loop(queue, concurrency)))
        return loops

    async def heartbeat_loop(self) -> None:
        """Renew this worker's lease every ``heartbeat_interval`` seconds until cancelled."""
        config = self.state.config
        failures = LoopFailures(log, "heartbeat failed")
        while True:
            await asyncio.sleep(config.heartbeat_interval)
            try:
                await self.state.store.heartbeat(self.state.worker_id, config.lease_seconds,
                                                 self.state.leased,
                                                 self.state.registry.names_json())
                failures.succeeded()
            except Exception:
                failures.failed()

    async def job_loop(self, queue: str, concurrency: int) -> None:
        """Claim due jobs of ``queue`` whenever a slot is free; run each to its end."""
        state = self.state
        # rung by new work (here, or another process's commit) and by a freed slot
        wake = state.wake_queues[queue]
        active: set[asyncio.Task[Any]] = set()
        claim_every = max(POLL_SECONDS, state.config.poll_interval)
        # after a wait, look (a read) before claiming (a write): an idle worker is woken
        # by every commit on the database, most of which queue nothing for it, and a
        # slot that ran out of jobs found the queue empty when its last one finished
        look_first = False
        failures = LoopFailures(log, "claiming jobs of queue %s failed")

        def done(t: asyncio.Task[Any]) -> None:
            active.discard(t)
            self.job_runs.discard(t)
            wake.ring()

        while not state.stopping:
            free = concurrency - len(active)
            wake.clear()
            if free > 0:
                claimed: list[Task] = []
                try:
                    runnable = state.registry.names_json()
                    if not look_first or await state.store.has_due_job(queue, runnable):
                        # cancelled meanwhile (stop()), the jobs it took go back
                        claimed = await outcome_despite_cancel(state.store.claim_jobs(
                            queue, state.worker_id, state.config.lease_seconds,
                            min(free, state.config.claim_batch), runnable),
                            self.execution.hand_back_all)
                    failures.succeeded()
                except Exception:  # the database may be locked for a moment; try again soon
                    failures.failed(queue)
                for job in claimed:
                    t = asyncio.ensure_future(self.execution.run_task(job))
                    active.add(t)
                    self.job_runs.add(t)
                    t.add_done_callback(done)
                if claimed:
                    look_first = False
                    continue
            look_first = True
            wake.has_free_slot = free > 0
            await wake.wait(claim_every)
        if active:
            await asyncio.gather(*active, return_exceptions=True)
