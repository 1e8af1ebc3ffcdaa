"""A standalone worker process: ``jupyter tasks worker`` runs queued jobs until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Iterable
from typing import Any

from . import print_capture
from .exceptions import StoreUnavailable
from .forks import fresh_signals_in_forked_children
from .kinds import standard
from .manager import TaskManager
from .registry import load_task_modules
from .scheduler import Scheduler

log = logging.getLogger("jupyter_tasks.worker")


def stop_signals() -> list[signal.Signals]:
    """The signals that stop a worker cleanly: SIGTERM, SIGINT, and SIGHUP unless ignored."""
    signals = [signal.SIGTERM, signal.SIGINT]
    hangup = getattr(signal, "SIGHUP", None)
    # a closed terminal (an SSH session that ended) killed the worker outright: its jobs
    # stayed running until a reaper ran them again as lost. Under nohup (ignored) the
    # worker is meant to outlive its terminal
    if hangup is not None and signal.getsignal(hangup) is not signal.SIG_IGN:
        signals.append(hangup)
    return signals


async def run_worker(
    db_path: str | None = None,
    *,
    queues: Iterable[str] = ("default",),
    concurrency: int = 4,
    task_modules: Iterable[str] = (),
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
    **manager_options: Any,
) -> None:
    """Run jobs of ``queues``, ``concurrency`` slots each, until a ``stop_signals()`` or ``stop``.

    On a signal the worker stops claiming, hands running jobs back to the queue
    without spending an attempt (one whose work had already ended keeps that end), and
    exits; a second signal exits at once, its jobs left to a reaper. What a job prints
    goes to its log.
    """
    load_task_modules(task_modules)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signalled = False

    def on_signal(sig: signal.Signals) -> None:
        nonlocal signalled
        if not signalled:
            signalled = True
            log.info("%s: stopping, running jobs go back to their queue (%s again to stop "
                     "at once)", sig.name, sig.name)
            stop.set()
            return
        # the clean stop waits for the database (another process may hold its write lock
        # for good) or for a job that ignores its stop: the operator asked twice
        log.warning("%s again: stopping at once; jobs running here go back to their queue "
                    "when a reaper finds this worker gone, as after a crash", sig.name)
        os._exit(128 + sig)

    # a job's forked children must neither share these handlers nor wake them
    fresh_signals_in_forked_children()
    for sig in stop_signals():
        try:
            loop.add_signal_handler(sig, on_signal, sig)
        except (NotImplementedError, RuntimeError):
            pass  # not the main thread: the caller stops us through ``stop``
    manager_options.setdefault("kinds", standard())
    manager = TaskManager(db_path, worker_kind="worker",
                          queues={q: concurrency for q in queues}, **manager_options)
    print_capture.install()
    try:
        async with manager:
            # this worker fires due schedules too: jobs keep their times with no server
            scheduler = Scheduler(manager).start()
            log.info("worker %s serving %s (concurrency %d) on %s", manager.worker_id,
                     ", ".join(manager.queues), concurrency, manager.db_path)
            if ready is not None:
                ready.set()
            try:
                lost = await _serve_until(stop, manager)
            finally:
                await scheduler.stop()
    finally:
        print_capture.uninstall()
    if lost is not None:
        raise StoreUnavailable(f"{lost} (this worker stopped)")
    if left := manager.worker.left_at_stop:
        # not a clean stop: say so (exit non-zero), not 0 as if its jobs were back
        first = left[0]
        raise type(first)(f"this worker stopped, and {len(left)} job(s) it "
                          f"ran could not be handed back to their queue: {first.message}. "
                          "A worker's reaper queues them again once it finds this one gone")


# how often a worker looks whether its database can still be written (a flag, no I/O)
WATCH_SECONDS = 1.0


async def _serve_until(stop: asyncio.Event, manager: TaskManager) -> str | None:
    """Until ``stop``; or, once the database can never be written again (deleted,
    replaced, damaged), the reason. Living on, the worker logged failures for good and
    its jobs stayed ``running`` in the file now at that path: on this host a reaper takes
    a live worker's process as the authority, so none ever took them back."""
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), WATCH_SECONDS)
        reason = manager.store.unusable
        if reason is not None:
            log.error("%s; this worker stops, its jobs' programs ended: a reaper on the file "
                      "at that path queues them again", reason)
            return reason
    return None
