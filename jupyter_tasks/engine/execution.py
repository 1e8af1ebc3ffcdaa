"""Execution: run one task of any kind to its end through its kind's plug-in, and settle it."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..context import TaskContext, current_context
from ..exceptions import (
    InvalidParameters,
    InvalidRequest,
    NotInTask,
    NotRerunnable,
    RunOutOfReach,
    StoreBusy,
    StoreFull,
    TaskCancelled,
    TaskTimedOut,
    WorkNotStarted,
)
from ..models import WORKER_STOPPED, EventType, Task, TaskKind, TaskMode, TaskStatus, failure_reason
from ..runners import MemoryLimitExceeded, until_thread_ended
from ..store import Finished
from ..values import MAX_RESULT_CHARS, RESULT_ARTIFACT, JSONText
from ..values import encode as encode_value
from .ends import attempt_marker, error_json
from .kinds import UnsupportedKind
from .state import EngineState, LocalQueue, RunningTask

log = logging.getLogger("jupyter_tasks")
T = TypeVar("T")

# kinds whose shim writes the command's exit into the row (see RunningTask.process)
EXIT_RECORDING_KINDS = (TaskKind.SUBPROCESS.value, TaskKind.CODE.value)


async def outcome_despite_cancel(write: Awaitable[T],
                                  undo: Callable[[T], Awaitable[None]]) -> T:
    """Await a store write; if we are cancelled meanwhile, ``undo`` what it did, then re-raise.

    A queued write commits whether or not its caller still waits: a claim whose
    caller was cancelled (a shutdown) would leave the jobs it took running here,
    leased to a worker that never runs them.
    """
    future = asyncio.ensure_future(write)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        try:
            await undo(await future)
        except Exception:
            log.exception("handing back what a cancelled claim took failed")
        raise


# how long a task's end waits between two tries while another process holds the write
# lock past the busy timeout: growing to END_RETRY_MAX_SECONDS
END_RETRY_FIRST_SECONDS = 0.1
END_RETRY_MAX_SECONDS = 2.0


async def write_despite_locks(task_id: str, write: Callable[[], Awaitable[T]]) -> T:
    """``write()`` (a task's end) again until no lock held elsewhere (nor a full disk)
    stops it.

    The work is done and its outcome known here: given up (StoreBusy after the busy
    timeout, a process holding ``BEGIN EXCLUSIVE``), the task stayed ``running``
    with no lease renewed, and a reaper ran the work a second time. It stays in
    this process's leased tasks meanwhile, so no reaper takes it.
    """
    delay = END_RETRY_FIRST_SECONDS
    tries = 0
    while True:
        try:
            written = await write()
        except (StoreBusy, StoreFull) as exc:
            if tries == 0:  # said once, and once more when it went in (not every try)
                log.warning("the database is locked by another process: the end of task "
                            "%s waits for it" if isinstance(exc, StoreBusy) else
                            "the disk holding the database is full: the end of task %s "
                            "waits for space", task_id)
            tries += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, END_RETRY_MAX_SECONDS)
            continue
        if tries:
            log.warning("the end of task %s is written, after %d tries", task_id, tries + 1)
        return written


# failures every retry would meet again: the job's own parameters, or this process
NOT_RETRIED = (InvalidParameters, NotRerunnable, UnsupportedKind)


class Execution:
    """Runs tasks this process owns: one attempt, its stop, its settlement, its retries."""

    def __init__(self, state: EngineState,
                 post_callback: Callable[[str], Awaitable[None]]) -> None:
        self.state = state
        self.post_callback = post_callback
        self.local_queues: dict[str, LocalQueue] = {}

    async def run_task(self, task: Task, *, limited: bool = False) -> None:
        """Run a task this process owns to a final state (or back to the queue)."""
        state = self.state
        slot = self.local_queues.get(task.queue) if limited else None
        if limited:
            slot = self.local_queues.setdefault(
                task.queue, LocalQueue(state.config.queue_limits[task.queue]))
            await slot.acquire(task.priority)
            started = await state.store.transition(
                task.id, {"status": TaskStatus.RUNNING.value, "started_at": time.time(),
                          "attempts": task.attempts + 1, "worker_id": state.worker_id,
                          "lease_expires_at": time.time() + state.config.lease_seconds},
                EventType.STARTED, when_status=(TaskStatus.QUEUED.value,),
            )
            if started is None:  # cancelled while waiting for a slot
                slot.release()
                state.local_work.pop(task.id, None)
                return
            task = started
        try:
            while True:
                state.leased.add(task.id)
                try:
                    outcome = await self._attempt(task)
                finally:
                    state.leased.discard(task.id)
                if outcome is None:
                    return
                # a background retry after its backoff, or the job claimed on the way out
                task = outcome
        finally:
            if slot is not None:
                slot.release()

    async def run_targeted(self, task_id: str) -> None:
        """Run a background task another process created for this worker (a cell rerun)."""
        state = self.state
        task = await state.store.get_task(task_id)
        if task is None or task.worker_id != state.worker_id or task.mode == TaskMode.JOB:
            return
        if task.id in state.running or task.status != TaskStatus.QUEUED:
            return
        started = await state.store.transition(
            task.id, {"status": TaskStatus.RUNNING.value, "started_at": time.time(),
                      "attempts": task.attempts + 1,
                      "lease_expires_at": time.time() + state.config.lease_seconds},
            EventType.STARTED, when_status=(TaskStatus.QUEUED.value,),
            when_worker=state.worker_id)
        if started is not None:
            await self.run_task(started)

    async def _attempt(self, task: Task) -> Task | None:
        state = self.state
        ctx = TaskContext(task.id, state.host, state.loop,
                          log_budget=state.config.max_log_chars)
        running = RunningTask(task, ctx, state.registry, local=state.local_work.get(task.id))
        running.aio_task = asyncio.current_task()
        running.process.on_group = functools.partial(self.record_group, running)
        if task.kind in EXIT_RECORDING_KINDS:
            # the command's shim writes its exit into the row: a reaper finishing the
            # task after our death uses it instead of running the command again
            running.process.record_exit = (str(state.store.path), task.id, task.attempts)
        state.running[task.id] = running
        if state.cancel_came_early(task.id) or task.cancel_requested:
            running.stop_reason = "cancel"
        if task.timeout:
            assert state.loop is not None
            running.timer = state.loop.call_later(task.timeout, self.stop_local, running,
                                                  "timeout")
        token = current_context.set(ctx)
        value: Any = None
        error: BaseException | None = None
        status = TaskStatus.SUCCEEDED
        try:
            if task.attempts > 1 or task.retry_reason == WORKER_STOPPED:
                # log lines carry no attempt number: a marker line lets the log view (and
                # a reader of the raw log) see where this attempt's (or run's) output begins.
                # In the try: a cancel (or a shutdown) while it is written still settles
                # the task, and a marker that cannot be written fails nothing
                try:
                    await state.store.append_logs(
                        task.id, [(time.time(), "log", attempt_marker(task))], own_line=True)
                except Exception:
                    log.exception("writing the attempt marker of task %s failed", task.id)
            if running.stop_reason == "cancel":
                raise TaskCancelled("cancelled before it started")
            if state.stopping:  # a job claimed while stop() began: hand it back untouched
                running.stop_reason = "shutdown"
                raise asyncio.CancelledError
            kind = state.kinds.get(task.kind)
            if kind is None:
                raise UnsupportedKind(f"this process ({state.config.worker_kind}) cannot run "
                                      f"{task.kind} tasks")
            value = await kind.execute(task, ctx, running)
            if running.stop_swallowed():  # the stop's end, not a success
                raise asyncio.CancelledError
        except (asyncio.CancelledError, RunOutOfReach) as exc:
            # no reason: the loop is closing, or the run is out of reach (never run again)
            status = {"timeout": TaskStatus.TIMEOUT, "cancel": TaskStatus.CANCELLED}.get(
                running.stop_reason or "", TaskStatus.INTERRUPTED)
            error = exc
        except TaskCancelled as exc:
            status = TaskStatus.TIMEOUT if running.stop_reason == "timeout" else \
                TaskStatus.CANCELLED
            error = exc
        except TaskTimedOut as exc:
            status, error = TaskStatus.TIMEOUT, exc
        except MemoryLimitExceeded as exc:
            status, error = TaskStatus.OOM, exc
        except GeneratorExit as exc:
            if running.being_closed():
                raise  # this coroutine itself is being closed (its loop is gone): await nothing
            status, error = TaskStatus.FAILED, exc  # the task's own code raised it
        except BaseException as exc:
            # the task's own code: an exception, and also sys.exit(), a KeyboardInterrupt
            # it raised or a BaseException of its own; each ends this task only, never
            # the process serving the others (asyncio would let them out of the loop)
            status, error = TaskStatus.FAILED, exc
            if running.stop_reason in ("cancel", "timeout") and not running.kept_own_end:
                status = TaskStatus.CANCELLED if running.stop_reason == "cancel" \
                    else TaskStatus.TIMEOUT
        finally:
            current_context.reset(token)
            if running.timer is not None:
                running.timer.cancel()
            state.running.pop(task.id, None)
        settled = await self._settle(task, running, status, value, error)
        # a thread in a native call past its stop keeps its slot (not: 4 bodies on 1 slot)
        await until_thread_ended(running.thread, lambda: self.state.stopping,
                                 f"task {task.id} ({status.value}), queue {task.queue!r},")
        return settled

    async def _settle(self, task: Task, running: RunningTask, status: TaskStatus, value: Any,
                      error: BaseException | None) -> Task | None:
        """Write a finished attempt: final status, a retry, or a return to the queue."""
        state = self.state
        store = state.store
        lease_seconds = state.config.lease_seconds
        ctx = running.ctx
        progress = ctx.current_progress
        if ctx.tail_saving is not None:
            # a flush wrote part of the rolling tail: the last rows go after it
            await asyncio.shield(ctx.tail_saving)
        logs, tail = ctx.take_log_writes(final=True)
        try:
            if logs:  # they wait for room (or a lock) as the end itself does
                await write_despite_locks(task.id, lambda: store.append_logs(task.id, logs))
            if tail is not None:
                ctx.tail_written(tail, await store.write_log_tail(tail))
        except Exception:  # the end is still written: lost lines cost less than a lost end
            log.exception("writing the last log lines of task %s failed", task.id)
        usage = running.resource_usage()
        now = time.time()
        err_json = error_json(error, status, task) if status != TaskStatus.SUCCEEDED else None
        if status == TaskStatus.INTERRUPTED and task.mode == TaskMode.JOB \
                and running.stop_reason == "shutdown" and not isinstance(error, RunOutOfReach):
            await self.hand_back(task, progress, ran=True)
            state.local_work.pop(task.id, None)
            return None
        if isinstance(error, WorkNotStarted) and task.mode == TaskMode.JOB:
            await self.hand_back(task, progress, not_before=now + error.retry_in,
                                 why=err_json)
            return None
        if status == TaskStatus.FAILED and task.work_attempts <= task.max_retries \
                and not isinstance(error, NOT_RETRIED) and not running.retry_refused():
            delay = self.backoff(task.attempts)
            if task.mode == TaskMode.JOB:
                await store.retry_later(task.id, state.worker_id, now + delay, err_json or {})
                return None
            retried = await store.transition(
                task.id, {"status": TaskStatus.QUEUED.value, "not_before": now + delay,
                          "error": err_json, "progress": progress,
                          "retry_reason": failure_reason(err_json)},
                EventType.RETRYING, when_status=(TaskStatus.RUNNING.value,))
            if retried is None:
                return None
            await asyncio.sleep(delay)
            again = await store.transition(
                task.id, {"status": TaskStatus.RUNNING.value, "attempts": task.attempts + 1,
                          "started_at": time.time(), "not_before": None,
                          "lease_expires_at": time.time() + lease_seconds},
                EventType.STARTED, when_status=(TaskStatus.QUEUED.value,))
            return again
        changes: dict[str, Any] = {
            "status": status.value, "result": None, "error": err_json, "progress": progress,
            "finished_at": now, "lease_expires_at": None, "resource_usage": usage}
        # a job slot that stays busy takes its next job in the same transaction; not
        # after a cancel, whose CancelledError must not leak into the next job
        keep_busy = task.mode == TaskMode.JOB and not state.stopping \
            and not running.cancel_sent and task.queue in state.wake_queues
        # remembered before the end is written: a waiter woken by the end's event may
        # run before this coroutine resumes, and read the outcome (a failure of its own
        # code re-raised as it was, not TaskFailed: seen on a loaded CI machine)
        state.remember(task.id, status == TaskStatus.SUCCEEDED,
                       value if status == TaskStatus.SUCCEEDED else error)
        async def write_end() -> Finished:
            if status == TaskStatus.SUCCEEDED:  # its artifact too waits for a full disk
                changes.update(await self._stored_result(task, value))
            # cancelled meanwhile (a shutdown past its grace), the end is written all
            # the same, and the next job it took goes back to the queue
            return await outcome_despite_cancel(
                store.finish(task.id, changes, EventType.for_status(status),
                             worker_id=state.worker_id,
                             claim_queue=task.queue if keep_busy else None,
                             lease_seconds=lease_seconds, runnable=state.registry.names_json()),
                self._hand_back_next)

        try:
            finished = await write_despite_locks(task.id, write_end)
        except Exception as exc:
            # the end of a task must be written even when its values are refused: write
            # it failed, with nothing but why, rather than leave it running forever
            log.exception("writing the end of task %s failed", task.id)
            status = TaskStatus.FAILED
            error = exc
            state.remember(task.id, False, exc)
            finished = await store.finish(
                task.id,
                {"status": status.value, "result": None, "progress": None,
                 "finished_at": now, "lease_expires_at": None,
                 "error": {"type": "TaskEndNotStored",
                           "message": f"the task ended {changes['status']} but that could "
                                      f"not be stored: {type(exc).__name__}: {exc}",
                           "traceback": None}},
                EventType.FAILED, worker_id=state.worker_id)
        state.local_work.pop(task.id, None)
        if finished.callback_url:
            state.spawn(self.post_callback(task.id))
        if task.mode == TaskMode.SYNC and error is not None and status == TaskStatus.FAILED:
            raise error
        return finished.next_job

    async def hand_back(self, task: Task, progress: Any = None, ran: bool = False, *,
                        not_before: float | None = None,
                        why: dict[str, Any] | None = None) -> None:
        """Put a job claimed here (``ran``: and started) back in its queue, no attempt
        spent; one whose cancel was asked meanwhile ends cancelled instead. ``why``: the
        error that kept it from starting, its row's until it runs (from ``not_before``)."""
        await self.state.store.hand_back(task.id, self.state.worker_id, {
            "status": TaskStatus.QUEUED.value, "worker_id": None, "lease_expires_at": None,
            "attempts": max(task.attempts - 1, 0), "progress": progress, "started_at": None,
            "confirmation": None, **({"retry_reason": WORKER_STOPPED} if ran else {}),
            **({"not_before": not_before, "error": why, "retry_reason": failure_reason(why)}
               if why is not None else {})})

    async def hand_back_all(self, tasks: list[Task]) -> None:
        """``hand_back`` each of ``tasks``."""
        for task in tasks:
            await self.hand_back(task)

    async def _hand_back_next(self, finished: Finished) -> None:
        """``hand_back`` the next job a job's end claimed, if it claimed one."""
        if finished.next_job is not None:
            await self.hand_back(finished.next_job)

    async def _stored_result(self, task: Task, value: Any) -> dict[str, Any]:
        """The row's result under the storage rule, the whole value as an artifact if cut."""
        encoded = encode_value(value, where="result", limit=MAX_RESULT_CHARS)
        if encoded.full_text is not None:
            await self.state.store.add_artifact(task.id, RESULT_ARTIFACT,
                                                encoded.full_text.encode(), "application/json")
        return {"result": JSONText(encoded.text), "value_notes": encoded.notes or None}

    def backoff(self, attempt: int) -> float:
        """Seconds before retry ``attempt + 1``: exponential, capped, with equal jitter."""
        config = self.state.config
        base = min(config.retry_max_delay, config.retry_base_delay * 2 ** (attempt - 1))
        return base * (0.5 + random.random() / 2)  # "equal jitter": spread, never zero

    # ---------------------------------------------------------------- stopping

    def stop_local(self, running: RunningTask, reason: str) -> None:
        """Stop a task running here: cancel its asyncio task; its runner stops threads/processes."""
        if running.stop_reason is None or reason == "cancel":
            running.stop_reason = reason
        running.ctx.request_cancel()
        if running.answer is not None and not running.answer.done():
            running.answer.cancel()
        # once only: the cancel arrives both directly and through the event feed,
        # and a second CancelledError would cut short the runner's own clean-up
        if running.aio_task is not None and not running.aio_task.done() \
                and not running.cancel_sent:
            running.cancel_sent = True
            running.aio_task.cancel()

    def stop_all(self) -> set[asyncio.Task[Any]]:
        """Stop every task running here for a shutdown; returns what to wait for."""
        for running in list(self.state.running.values()):
            running.stop_reason = "shutdown"
            if running.aio_task is not None:
                running.aio_task.cancel()
        return {r.aio_task for r in self.state.running.values() if r.aio_task is not None}

    def stop_by_id(self, task_id: str, reason: str) -> None:
        """``stop_local`` the task if it runs here."""
        running = self.state.running.get(task_id)
        if running is not None:
            self.stop_local(running, reason)

    async def record_group(self, running: RunningTask, pgid: int,
                           record: dict[str, Any] | None) -> None:
        """Keep the task's row's ``process`` in step with the groups its work has running."""
        if record is None:
            running.groups.pop(pgid, None)
        else:
            running.groups[pgid] = record
        live = list(running.groups.values())
        # the newest group first; more than one only when a task runs several at once
        process = {**live[-1], "others": live[:-1]} if len(live) > 1 else \
            (live[0] if live else None)
        await self.state.store.set_process(running.task.id, self.state.worker_id, process)

    # ------------------------------------------------------------ confirmation

    async def ask(self, ctx: TaskContext, prompt: str, choices: list[str],
                  timeout: float | None) -> str:
        """Ask a person on behalf of a task running here; wait for the answer."""
        if not choices or not all(isinstance(c, str) for c in choices):
            raise InvalidRequest("choices must be a non-empty list of strings")
        state = self.state
        running = state.running.get(ctx.task_id)
        if running is None:
            raise NotInTask(f"task {ctx.task_id} is not running in this process")
        assert state.loop is not None
        running.answer = state.loop.create_future()
        running.asked_at = time.time()
        asked = await state.store.ask_confirmation(
            ctx.task_id, {"prompt": prompt, "choices": choices, "answer": None,
                          "asked_at": running.asked_at})
        if asked is None:
            raise TaskCancelled(f"task {ctx.task_id} ended while asking")
        try:
            return await asyncio.wait_for(asyncio.shield(running.answer), timeout)
        except asyncio.TimeoutError:
            # the question leaves every view, unless an answer got in first: that one counts
            if (answer := await state.store.withdraw_confirmation(ctx.task_id)) is None:
                asked = prompt if len(prompt) <= 80 else prompt[:79] + "…"
                # said in words: a bare TimeoutError left the task's error empty
                raise TimeoutError(f"nobody answered {asked!r} within {timeout} s") from None
            return answer
        except asyncio.CancelledError:
            # a shutdown's cancel stays one: the job goes back to its queue, to ask again
            if running.stop_reason in ("cancel", "timeout"):
                raise TaskCancelled(f"task {ctx.task_id} was cancelled while waiting") from None
            raise
        finally:
            running.answer = None

    def deliver_answer(self, task_id: str, confirmation: dict[str, Any] | None) -> None:
        """Hand an answer to the task running here that waits for it."""
        running = self.state.running.get(task_id)
        question = confirmation or {}
        # an answer read late may be to an earlier question of the task, not this one
        if running is not None and question.get("answer") is not None \
                and running.answer is not None and not running.answer.done() \
                and question.get("asked_at") == running.asked_at:
            running.answer.set_result(question["answer"])
