"""Small helpers shared by the job executors."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def run_to_end(coro: Coroutine[Any, Any, T]) -> T:
    """Await clean-up work to its end even if the caller is cancelled again meanwhile.

    A cancel and a timeout can both reach a job (and a cancel request arrives
    twice: directly and through the event feed); ``asyncio.shield`` alone would
    let the second one return early while the kernel shutdown or the artifact
    write is still under way. A cancel received meanwhile is raised afterwards.
    """
    task = asyncio.ensure_future(coro)
    interrupted = False
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done():
                raise
            interrupted = True
    if interrupted:
        raise asyncio.CancelledError
    return result


def keep_own_end(running: Any) -> bool:
    """``RunningTask.keep_own_end`` of the attempt's record: whether the attempt keeps the
    end its work reached before a cancel or timeout came (never on a Dask worker, whose
    record has no such stop)."""
    keep = getattr(running, "keep_own_end", None)
    return keep is not None and keep()
