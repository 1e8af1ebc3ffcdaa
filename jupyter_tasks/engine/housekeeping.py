"""Housekeeping: write live progress and logs, reap dead workers' tasks, post callbacks."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from typing import Any

from .. import callbacks
from ..context import TaskContext
from ..exceptions import InvalidRequest, StoreBusy, StoreError, StoreFull
from ..liveness import worker_alive
from ..models import LogTailWrite, Task
from ..runners import end_recorded_groups
from ..store import Spared
from .loop_failures import LoopFailures
from .state import EngineState

log = logging.getLogger("jupyter_tasks")

# tries of a callback's POST, whichever processes make them
CALLBACK_TRIES = 4
# a claim outlives the longest delivery (4 tries of up to 10 s each, a few redirect
# hops, 3.5 s of backoff): past it, another process may take the callback over
CALLBACK_CLAIM_SECONDS = 300.0
# owed callbacks a process takes over at once (each delivery holds a thread), and the
# owed rows it reads to find them (past those its allow-list does not admit)
OWED_AT_ONCE = 8
OWED_READ = 200
# how long a stop lets deliveries under way finish (a cut one is posted again later)
STOP_GRACE = 2.0


class Housekeeping:
    """The periodic chores of a manager: flushing, reaping, callbacks."""

    def __init__(self, state: EngineState) -> None:
        self.state = state
        self._flushing = asyncio.Lock()
        # the callbacks this process is posting: task id -> the asyncio task doing it
        self._posting: dict[str, asyncio.Task[Any]] = {}
        self._policy = callbacks.CallbackPolicy.from_entries(state.config.callback_allowlist)
        self._refused: set[str] = set()  # owed callbacks this list refused where they go
        self._sweep_after = ""  # the owed callbacks' next page starts after this task id

    # ------------------------------------------------------------ progress & logs

    async def flush(self) -> None:
        """Write the progress and log lines the running tasks recorded since the last flush."""
        # one at a time (the flush loop's and stop()'s): a log's writes stay in order
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        progress: list[tuple[str, dict[str, Any]]] = []
        logs: list[tuple[str, list[tuple[float, str, str]]]] = []
        tails: list[tuple[TaskContext, LogTailWrite]] = []
        # a task ending meanwhile writes its tail's last rows after this whole flush
        flushed = asyncio.get_running_loop().create_future()
        for task_id, running in list(self.state.running.items()):
            ctx = running.ctx
            if ctx.dirty:
                ctx.dirty = False
                value = ctx.current_progress
                if value is not None:
                    progress.append((task_id, value))
            if ctx.has_logs:
                head, tail = ctx.take_log_writes()
                if head:
                    logs.append((task_id, head))
                if tail is not None:
                    tails.append((ctx, tail))
                    ctx.tail_saving = flushed
        saved: set[int] = set()
        try:
            await self._write_batches(progress, logs, tails, saved)
        except (StoreFull, StoreBusy):
            # the lines wait for room (or the lock) in their task, as its end does:
            # dropped here, a job's whole log was lost while it ended succeeded
            running = self.state.running
            for task_id, head in logs:
                if id(head) not in saved and task_id in running:
                    running[task_id].ctx.give_back_logs(head)
            raise
        finally:
            for ctx, tail in tails:
                if id(tail) not in saved:
                    ctx.tail_failed(tail)  # counted as left out; the next write heals the gap
                if ctx.tail_saving is flushed:
                    ctx.tail_saving = None
            flushed.set_result(None)

    async def _write_batches(self, progress: list[tuple[str, dict[str, Any]]],
                             logs: list[tuple[str, list[tuple[float, str, str]]]],
                             tails: list[tuple[TaskContext, LogTailWrite]],
                             saved: set[int]) -> None:
        size = self.state.config.flush_batch or max(len(progress), len(logs), len(tails), 1)
        for start in range(0, max(len(progress), len(logs), len(tails)), size):
            batch = (progress[start:start + size], logs[start:start + size],
                     tails[start:start + size])
            try:
                await self._save(*batch, saved)
            except StoreError:
                raise  # the database itself is gone or busy: a task alone would fail too
            except Exception:
                # one task's bad write must not cost the others their lines: each alone
                log.exception("writing progress and logs failed; retrying each task alone")
                ids = {t for t, _ in batch[0]} | {t for t, _ in batch[1]} | \
                    {w.task_id for _, w in batch[2]}
                for task_id in ids:
                    try:
                        await self._save([p for p in batch[0] if p[0] == task_id],
                                         [entry for entry in batch[1] if entry[0] == task_id],
                                         [t for t in batch[2] if t[1].task_id == task_id],
                                         saved)
                    except Exception:
                        log.exception("writing progress and logs of task %s failed", task_id)

    async def _save(self, progress: list[tuple[str, dict[str, Any]]],
                    logs: list[tuple[str, list[tuple[float, str, str]]]],
                    tails: list[tuple[TaskContext, LogTailWrite]], saved: set[int]) -> None:
        """One transaction; each tail written learns where its rows went."""
        seqs = await self.state.store.save_updates(progress, logs, [w for _, w in tails])
        saved.update(id(head) for _, head in logs)
        for (ctx, tail), written in zip(tails, seqs, strict=True):
            ctx.tail_written(tail, written)
            saved.add(id(tail))

    async def flush_loop(self) -> None:
        """Flush every ``flush_interval`` seconds until cancelled."""
        failures = LoopFailures(log, "writing progress failed")
        while True:
            await asyncio.sleep(self.state.config.flush_interval)
            try:
                await self.flush()
                failures.succeeded()
            except Exception:
                failures.failed()

    # ------------------------------------------------------------------ reaper

    async def reaper_loop(self) -> None:
        """Reap every ``reaper_interval`` seconds until cancelled."""
        failures = LoopFailures(log, "reaping dead workers failed")
        while True:
            await asyncio.sleep(self.state.config.reaper_interval)
            try:
                await self.reap_dead_workers()
                await self.post_owed_callbacks()
                failures.succeeded()
            except Exception:
                failures.failed()

    async def reap_dead_workers(self) -> list[Task]:
        """Settle the tasks of workers that died (pid gone here, or elsewhere heartbeat too old).

        On this host a worker's live process is the authority, not its heartbeat: a job
        holding the GIL in one C call for longer than the lease (a heartbeat cannot run
        then), a worker stopped with SIGSTOP, or a writer kept waiting by another
        process's lock is still running its work, and reaping it ran the work twice
        at once. Its tasks wait until its process is gone. A worker on another host
        can only be judged by its heartbeat.
        """
        state = self.state
        now = time.time()
        host = socket.gethostname()
        dead = []
        # the live workers on this host (and, below, the tasks this process runs itself):
        # spared even when their lease ran out
        alive_here = set()
        dead_here = set()
        for worker in await state.store.list_workers():
            if worker.id == state.worker_id:
                continue
            if not worker_alive(worker, host, now, state.config.lease_seconds):
                dead.append(worker.id)
                if worker.host == host:
                    dead_here.add(worker.id)
            elif worker.host == host:
                alive_here.add(worker.id)
        spared = Spared(frozenset(alive_here), frozenset({*state.running, *state.leased}))
        candidates = await state.store.reap_candidates(dead, now, spared=spared)
        if not dead and not candidates:
            # nothing to settle: an idle worker takes no write lock each round (another
            # process's writer would wait for it, and its bell peers would be rung)
            return []
        # the callbacks a dead process was posting: the sweep gives them to another
        await state.store.release_callbacks(dead)
        cleared = await self._end_leftover_groups(candidates, host, now, dead_here)
        settled = await state.store.reap(dead, now, cleared, state.config.max_lost_attempts,
                                         spared=spared)
        if settled:
            state.wake_all()
        for task in settled:
            # ended here (from the exit its process recorded, or interrupted for good):
            # told as the lost worker would have; a task queued again is told at its end
            if task.is_terminal and task.callback_url:
                state.spawn(self.post_callback(task.id))
        return settled

    async def _end_leftover_groups(self, candidates: list[Task], host: str, now: float,
                                   dead_here: set[str]) -> dict[str, dict[str, Any]]:
        """End the process groups of tasks about to be reaped; id -> record of those now safe.

        A task's group on this host is ended (SIGTERM, SIGKILL) and checked gone
        before its row may go back to ``queued``: until then the row stays
        ``running``, so no slot can claim it beside a survivor. A group on
        another host cannot be ended from here: its task waits for its lease.
        A task of a worker that died here before recording a group ran nothing (the
        shim waits for that record): what its attempt made first is removed.
        """
        cleared: dict[str, dict[str, Any]] = {}
        for task in candidates:
            process = task.process
            if not process:
                if task.worker_id in dead_here:
                    await self._clear_lost_attempt(task)
                continue
            if process.get("host") != host:
                if task.lease_expires_at is not None and task.lease_expires_at < now:
                    cleared[task.id] = process
                continue
            if await asyncio.to_thread(end_recorded_groups, process):
                cleared[task.id] = process
                await self._clear_lost_attempt(task)
            else:
                log.warning("process group %s of task %s survived SIGKILL; the task stays "
                            "running until it is gone", process.get("pgid"), task.id)
        return cleared

    async def _clear_lost_attempt(self, task: Task) -> None:
        """Remove what the lost attempt left on this host, by its kind (a code job's
        working folder): the optional ``lost_attempt`` of a JobKind."""
        lost_attempt = getattr(self.state.kinds.get(task.kind), "lost_attempt", None)
        if lost_attempt is not None:
            await asyncio.to_thread(lost_attempt, task)

    # --------------------------------------------------------------- callbacks

    async def post_callback(self, task_id: str, attempts: int = CALLBACK_TRIES) -> None:
        """POST the ended task's JSON to its ``callback_url`` (allow-list checked).

        The end wrote the callback into the outbox; the process that claims it posts
        it, so two never post it at once, and one that dies or stops first leaves it
        to the next (``post_owed_callbacks``). A process whose allow-list does not
        admit the URL leaves it alone for one whose list does (a kernel or a worker
        beside a server configured for other hosts). ``attempts`` counts every
        process's tries.
        """
        current = asyncio.current_task()
        if task_id in self._posting or current is None or self.state.stopping:
            return  # this process is on it already, or leaves it to the next one
        self._posting[task_id] = current  # before the claim: a stop waits for it too
        store = self.state.store
        try:
            task = await store.get_task(task_id)
            url = task.callback_url if task is not None else None  # None: task gone
            if url and not self._may_post(task_id, url):
                log.debug("callback for task %s left to a process whose allow-list admits "
                          "it", task_id)
                return
            tried = await store.claim_callback(task_id, self.state.worker_id,
                                               CALLBACK_CLAIM_SECONDS)
            if tried is None:
                return  # delivered already, or another process is posting it
            if url and tried < attempts:
                assert task is not None
                body = json.dumps(task.to_json()).encode()
                outcome = await callbacks.post_callback(
                    task_id, url, body, self.state.config.callback_allowlist,
                    attempts=attempts, tried=tried,
                    trying=lambda: store.callback_tried(task_id))
                if outcome == callbacks.REFUSED:
                    # where it would go (a redirect's hop, an address its name resolves
                    # to) is off this process's list: another's may admit it
                    self._refused.add(task_id)
                    await store.unclaim_callback(task_id)
                    return
            elif url:
                log.warning("callback for task %s given up after %d tries", task_id, tried)
            await store.callback_settled(task_id)
        finally:
            self._posting.pop(task_id, None)

    def _may_post(self, task_id: str, url: str) -> bool:
        """Whether this process's allow-list admits the URL's host (no DNS yet), and
        did not refuse where its POST went before."""
        if task_id in self._refused:
            return False
        try:
            callbacks.check_url(url, self._policy)
        except InvalidRequest:
            return False
        return True

    async def post_owed_callbacks(self) -> None:
        """Post the callbacks whose process died or stopped before it delivered them."""
        room = OWED_AT_ONCE - len(self._posting)
        if room <= 0:
            return
        # a page at a time, on from the last one: rows nobody here may post (left for
        # another process) never hide the others
        owed = await self.state.store.owed_callbacks(OWED_READ, self._sweep_after)
        self._sweep_after = owed[-1][0] if len(owed) == OWED_READ else ""
        for task_id, url in owed:
            if room <= 0:
                self._sweep_after = ""  # room again next time: start over
                break
            if task_id in self._posting or (url is not None
                                            and not self._may_post(task_id, url)):
                continue
            self.state.spawn(self.post_callback(task_id))
            room -= 1

    async def stop_callbacks(self, grace: float = STOP_GRACE) -> None:
        """At a stop: let deliveries under way end (up to ``grace`` seconds), end the rest,
        and hand their claims back, for the next process on the database to post them (a
        receiver dedupes on the id)."""
        posting = list(self._posting.values())
        if posting:
            await asyncio.wait(posting, timeout=grace)
        for task in posting:
            task.cancel()
        await asyncio.gather(*posting, return_exceptions=True)
        await self.state.store.release_callbacks([self.state.worker_id])
