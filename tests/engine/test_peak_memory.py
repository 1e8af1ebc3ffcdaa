"""Peak memory of command and code jobs: the exit-time figure, not only what sampling saw.

A job that allocates and ends between two samples of the RSS sampler must still report
what it used. ``MEMORY_POLL_SECONDS`` is raised here so that the sampler takes its first
sample only (at the start, before the job allocates): without the exit-time figure, the
peak would be what that sample saw. The default interval is tested as well, as a user
meets it (there the old sampler missed the allocation most of the time, not always).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jupyter_tasks import TaskManager, runners
from jupyter_tasks.runners import ProcessUsage, run_process

ALLOCATE = "x = bytearray(200 * 2**20)"  # memset: all 200 MB resident, then the process ends
ALLOCATED_MB = 200


@pytest.fixture
def one_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sampler takes its first sample, then waits far longer than any job here runs."""
    monkeypatch.setattr(runners, "MEMORY_POLL_SECONDS", 600.0)


@pytest.fixture
async def manager(db_path: Path):
    async with TaskManager(db_path, queues={"default": 2}, flush_interval=0.05) as m:
        yield m


async def _peak(manager: TaskManager, spec: dict[str, Any]) -> float:
    task = await manager.submit_spec({**spec, "max_retries": 0})
    done = await manager.wait(task.id, timeout=60)
    assert done.status == "succeeded", (done.status, done.error)
    return done.resource_usage["peak_memory_mb"]


@pytest.mark.parametrize("spec", [{"command": [sys.executable, "-c", ALLOCATE]},
                                  {"code": ALLOCATE + "\n"}], ids=["command", "code"])
async def test_a_job_ending_between_samples_reports_what_it_allocated(
        manager: TaskManager, one_sample: None, spec: dict[str, Any]):
    assert await _peak(manager, spec) >= ALLOCATED_MB


@pytest.mark.parametrize("spec", [{"command": [sys.executable, "-c", ALLOCATE]},
                                  {"code": ALLOCATE + "\n"}], ids=["command", "code"])
async def test_a_short_job_reports_what_it_allocated_at_the_default_interval(
        manager: TaskManager, spec: dict[str, Any]):
    assert await _peak(manager, spec) >= ALLOCATED_MB


async def test_a_descendant_waited_for_counts(manager: TaskManager, one_sample: None):
    # the shell waits for python: the kernel folds python's peak into the shell's
    inner = f"{sys.executable} -c '{ALLOCATE}'"
    assert await _peak(manager, {"command": ["sh", "-c", f"{inner}; true"]}) >= ALLOCATED_MB


async def test_run_process_without_a_row_can_ask_for_the_exit_peak(one_sample: None):
    usage = ProcessUsage(exit_peak=True)
    done = await run_process([sys.executable, "-c", ALLOCATE + "; print('done')"], usage=usage)
    assert (done.returncode, done.stdout) == (0, "done\n")
    assert usage.peak_rss_mb >= ALLOCATED_MB


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmHWM")
async def test_the_shims_own_size_is_not_reported_as_the_commands(
        manager: TaskManager, one_sample: None):
    # Linux carries the memory a process had before exec into its ru_maxrss; the command
    # is spawned by the shim, a Python interpreter, so the raw figure of a tiny command is
    # about the size of a bare interpreter (its own high-water mark, VmHWM)
    probe = subprocess.run([sys.executable, "-I", "-S", "-c",
                            "print(open('/proc/self/status').read())"],
                           capture_output=True, text=True, check=True)
    bare_interpreter_mb = int(probe.stdout.split("VmHWM:")[1].split()[0]) / 1024
    assert await _peak(manager, {"command": ["true"]}) < bare_interpreter_mb / 2


async def test_the_memory_limit_still_stops_a_job_in_time(manager: TaskManager):
    hog = "x = bytearray(300 * 2**20); import time; time.sleep(60)"
    task = await manager.submit_spec({"command": [sys.executable, "-c", hog]},
                                     memory_limit_mb=100, max_retries=0)
    done = await manager.wait(task.id, timeout=60)
    assert done.status == "oom", (done.status, done.error)
    assert done.resource_usage["peak_memory_mb"] > 100


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    # workers in this process: the raised sampling interval applies to them too
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=1,
                                  dashboard_address=None, silence_logs=40) as cluster:
        yield cluster


async def test_a_code_job_on_dask_reports_what_it_allocated(
        db_path: Path, dask_cluster: Any, one_sample: None):
    from jupyter_tasks.dask_backend import DaskBackend

    async with TaskManager(db_path, queues={"default": 2}, flush_interval=0.05) as hub:
        backend = DaskBackend(dask_cluster.scheduler_address).install(hub)
        try:
            task = await hub.submit_spec({"code": ALLOCATE + "\n", "max_retries": 0})
            done = await hub.wait(task.id, timeout=60)
        finally:
            await backend.close()
    assert done.status == "succeeded", (done.status, done.error)
    assert done.resource_usage["peak_memory_mb"] >= ALLOCATED_MB
    # a Dask worker in the hub's own process leaves the hub's streams to the hub (it
    # wrapped them for good, and with them every later test of this pytest worker)
    from jupyter_tasks import print_capture

    assert print_capture._installs == 0
