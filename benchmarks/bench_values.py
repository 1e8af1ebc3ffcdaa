"""Storing big results: the storage rule's encode beside plain ``json.dumps``, same run.

A task that returns an array (``tolist()``-able: numpy's, or the standard library's
``array.array`` used here so nothing beyond Python is needed) or a long list is encoded
by ``jupyter_tasks.values.encode`` on the event loop of the process that ran it (the
Jupyter server, a worker, a kernel). The peer is the least any Python server pays:
``json.dumps`` of the same value's plain-list form. Also measured: the longest stall of
that event loop while a ``TaskManager`` stores such a result (a 5 ms ticker beside it).

Cases: 5M float64 (an array), 5M int64 (an array), 1M floats in a list with a nan at the
end (its note is written), 100k small dicts.

Also: keeping a 512 MB file as an artifact (a code job's output file), the longest stall
of the event loop meanwhile, beside the time the copy and its sha256 take in plain Python.

Usage: python benchmarks/bench_values.py [ROUNDS]
"""

from __future__ import annotations

import array
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from jupyter_tasks import TaskManager, task
from jupyter_tasks.values import MAX_RESULT_CHARS, encode

N = 5_000_000


def cases() -> dict[str, tuple[Callable[[], Any], Callable[[Any], Any]]]:
    """name -> (make the value, its plain form for the peer)."""
    return {
        "5M float64 array": (lambda: array.array("d", bytes(8 * N)), lambda v: v.tolist()),
        "5M int64 array": (lambda: array.array("q", range(N)), lambda v: v.tolist()),
        "1M floats + a nan": (lambda: [0.5] * 1_000_000 + [float("nan")],
                              lambda v: [None if x != x else x for x in v]),
        "100k small dicts": (lambda: [{"i": i, "v": [i, i + 0.5]} for i in range(100_000)],
                             lambda v: v),
    }


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    started = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - started


def dumps_plain(value: Any, plain: Callable[[Any], Any]) -> str:
    """The peer: json.dumps of the value's plain form."""
    return json.dumps(plain(value))


@task("bench_big_result", mode="job")
def bench_big_result() -> Any:
    """Return a 5M-float array (its encoding is what is measured)."""
    return array.array("d", bytes(8 * N))


ARTIFACT_MB = 512


async def stall_while(work: Callable[[], Awaitable[Any]]) -> tuple[float, float, Any]:
    """(longest gap of a 5 ms ticker on this loop, seconds, result) while ``work()`` runs."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)  # the ticker runs (and holds its first time) before the work
    started = time.perf_counter()
    result = await work()
    elapsed = time.perf_counter() - started
    done.set()
    await ticking
    return max(gaps), elapsed, result


async def artifact_stall(source: Path) -> tuple[float, float]:
    """(longest loop stall, seconds) while the store keeps ``source`` as an artifact."""
    from jupyter_tasks.models import new_task_id

    with tempfile.TemporaryDirectory(dir=source.parent) as folder:
        async with TaskManager(Path(folder) / "artifacts.db", queues={}) as manager:
            stall, elapsed, _ = await stall_while(
                lambda: manager.store.add_artifact(new_task_id(), "output.bin", source))
    return stall, elapsed


def copy_and_hash(source: Path) -> None:
    """The peer: the same copy and sha256 in plain Python."""
    import hashlib
    import shutil

    digest = hashlib.sha256()
    with open(source, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    target = source.with_suffix(".copy")
    shutil.copyfile(source, target)
    target.unlink()


async def loop_stall() -> tuple[float, float]:
    """(longest loop stall, submit-to-end seconds) while a job's 5M-float result is stored."""
    with tempfile.TemporaryDirectory() as folder:
        async with TaskManager(Path(folder) / "values.db", queues={"default": 1}) as manager:

            async def run() -> Any:
                submitted = await manager.submit("bench_big_result")
                return await manager.wait(submitted.id, timeout=600)

            stall, elapsed, ended = await stall_while(run)
            assert ended.status == "succeeded", ended.error
    return stall, elapsed


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    print(f"storing big results, {rounds} interleaved rounds, cpu count {os.cpu_count()}, "
          f"load {os.getloadavg()}")
    ours: dict[str, list[float]] = {name: [] for name in cases()}
    peer: dict[str, list[float]] = {name: [] for name in cases()}
    stalls: list[float] = []
    spans: list[float] = []
    artifact_stalls: list[float] = []
    artifact_spans: list[float] = []
    copies: list[float] = []
    scratch = Path(tempfile.mkdtemp(prefix="bench-values-"))
    source = scratch / "output.bin"
    with open(source, "wb") as f:
        for _ in range(ARTIFACT_MB):
            f.write(os.urandom(1 << 20))
    for round_no in range(1, rounds + 1):
        for name, (make, plain) in cases().items():
            value = make()
            ours[name].append(timed(encode, value, where="result", limit=MAX_RESULT_CHARS))
            peer[name].append(timed(dumps_plain, value, plain))
        stall, span = asyncio.run(loop_stall())
        stalls.append(stall)
        spans.append(span)
        stall, span = asyncio.run(artifact_stall(source))
        artifact_stalls.append(stall)
        artifact_spans.append(span)
        copies.append(timed(copy_and_hash, source))
        print(f"  round {round_no} (load {os.getloadavg()[0]:.2f}): "
              + ", ".join(f"{n} {ours[n][-1]:.2f}s vs {peer[n][-1]:.2f}s" for n in ours)
              + f"; loop stall {stalls[-1] * 1000:.0f} ms; artifact stall "
              f"{artifact_stalls[-1] * 1000:.0f} ms")
    print("medians (min-max), encode vs json.dumps of the plain form:")
    for name in ours:
        mine, theirs = statistics.median(ours[name]), statistics.median(peer[name])
        print(f"  {name:20} {mine:6.2f}s ({min(ours[name]):.2f}-{max(ours[name]):.2f})   "
              f"json.dumps {theirs:6.2f}s ({min(peer[name]):.2f}-{max(peer[name]):.2f})   "
              f"ratio {mine / theirs:.2f}")
    print(f"  a job returning the 5M-float array: longest event-loop stall "
          f"{statistics.median(stalls) * 1000:.0f} ms ({min(stalls) * 1000:.0f}-"
          f"{max(stalls) * 1000:.0f}), submit to end {statistics.median(spans):.2f}s")
    print(f"  keeping a {ARTIFACT_MB} MB file as an artifact: "
          f"{statistics.median(artifact_spans):.2f}s ({min(artifact_spans):.2f}-"
          f"{max(artifact_spans):.2f}), longest event-loop stall "
          f"{statistics.median(artifact_stalls) * 1000:.0f} ms ({min(artifact_stalls) * 1000:.0f}-"
          f"{max(artifact_stalls) * 1000:.0f}); its copy and sha256 in plain Python "
          f"{statistics.median(copies):.2f}s")
    source.unlink()
    scratch.rmdir()
    print(f"  load at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
