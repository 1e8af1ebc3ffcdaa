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
