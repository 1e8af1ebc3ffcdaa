"""A full disk under the database: work that ended is written when space comes back, once.

Run in a private mount namespace (``unshare -m``) on a 6 MB tmpfs; skipped where a
mount is not possible.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).with_name("disk_full_run.py")
START = Path(__file__).with_name("disk_full_start.py")
STOP = Path(__file__).with_name("disk_full_stop.py")


def in_small_tmpfs(tmp_path: Path, script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``script`` run in a private mount namespace with a 6 MB tmpfs at ``tmp_path/small``."""
    small = tmp_path / "small"
    small.mkdir()
    command = (f"mount -t tmpfs -o size=6m tmpfs {small} && "
               f"{shlex.quote(sys.executable)} {script} {small} "
               + " ".join(shlex.quote(a) for a in args))
    done = subprocess.run(["unshare", "-m", "sh", "-c", command], capture_output=True,
                          text=True, timeout=400, cwd=Path(__file__).parents[2])
    if "mount" in done.stderr and not done.stdout:
        pytest.skip(f"a tmpfs mount is not possible here: {done.stderr.strip()[-300:]}")
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_an_end_that_meets_a_full_disk_waits_for_space_and_the_job_runs_once(
        tmp_path: Path) -> None:
    # before: the end's write failed ("database or disk is full"), the row stayed running
    # with no lease renewed, and once space came back the worker's own reaper queued the
    # finished job again: it ran twice, the second time blamed on a "worker lost"
    done = in_small_tmpfs(tmp_path, RUN, str(tmp_path / "runs.log"))
    ended = json.loads(done.stdout.strip().splitlines()[-1])
    refused = ended.pop("refused")
    assert ended == {"status": "succeeded", "result": "done", "attempts": 1,
                     "lost_attempts": 0, "runs": 1, "leftovers": []}, \
        (ended, done.stderr[-3000:])
    # (before: sqlite3's OperationalError; a 500 over REST, a traceback in the CLI)
    assert refused is not None and "disk holding the task database is full" in refused


def test_a_big_result_that_meets_a_full_disk_waits_for_space_too(tmp_path: Path) -> None:
    # before: the result's artifact file met the full disk as a plain OSError, outside the
    # end's wait for space: the task ended failed (TaskEndNotStored), its result lost,
    # and the half-written temporary file stayed, keeping the disk full
    done = in_small_tmpfs(tmp_path, RUN, str(tmp_path / "runs.log"), "big")
    ended = json.loads(done.stdout.strip().splitlines()[-1])
    ended.pop("refused")
    assert ended == {"status": "succeeded", "result": [["result.json", 400_002]],
                     "attempts": 1, "lost_attempts": 0, "runs": 1, "leftovers": []}, \
        (ended, done.stderr[-3000:])


def test_a_jobs_log_written_on_a_full_disk_waits_for_space_with_its_end(
        tmp_path: Path) -> None:
    # before: the lines printed after the disk filled were dropped ("writing the last log
    # lines ... failed" in the worker's own log) and the task ended succeeded without them
    done = in_small_tmpfs(tmp_path, RUN, str(tmp_path / "runs.log"), "chatty")
    ended = json.loads(done.stdout.strip().splitlines()[-1])
    ended.pop("refused")
    assert ended == {"status": "succeeded", "result": "done", "attempts": 1,
                     "lost_attempts": 0, "runs": 1, "leftovers": [], "lines": 400}, \
        (ended, done.stderr[-3000:])


def test_a_worker_stopped_on_a_full_disk_says_its_job_was_not_handed_back(
        tmp_path: Path) -> None:
    # before: the stop returned as a clean one (`jupyter tasks worker` exited 0) though
    # the hand back had failed, and the loop logged "Task exception was never retrieved"
    done = in_small_tmpfs(tmp_path, STOP, str(tmp_path / "runs.log"))
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["outcome"].startswith("StoreFull: this worker stopped, and 1 job(s) it "
                                        "ran could not be handed back"), report
    assert not [line for line in report["logged"] if line.startswith("LOOP")], report
    said = [line for line in report["logged"] if "could not be handed back" in line]
    assert len(said) == 1 and said[0].startswith("ERROR"), report
    # and nothing is lost: the next worker's reaper queued it again, not as a failure
    assert (report["status"], report["result"], report["lost_attempts"], report["runs"]) \
        == ("succeeded", "done", 1, 2), report


def test_a_sound_database_on_a_full_disk_is_said_full_not_damaged(tmp_path: Path) -> None:
    # before: the server's start check called it damaged ("cannot be read (disk I/O
    # error)"; SQLite could not grow its -shm file) and advised recovering it or moving
    # it aside to start empty, and answered 503 for good, even once space was back
    done = in_small_tmpfs(tmp_path, START)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for step in ("verify", "start"):
        problem = report[step]
        assert problem is not None and problem["type"] == "StoreFull", (step, report)
        assert "full" in problem["message"] and "not damaged" in problem["message"], report
        assert "recover" not in problem["message"] and "aside" not in problem["message"]
    assert report["tasks_after"] == 1  # nothing lost, usable once there is room
