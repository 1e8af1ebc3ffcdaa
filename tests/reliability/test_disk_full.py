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


def test_an_end_that_meets_a_full_disk_waits_for_space_and_the_job_runs_once(
        tmp_path: Path) -> None:
    # before: the end's write failed ("database or disk is full"), the row stayed running
    # with no lease renewed, and once space came back the worker's own reaper queued the
    # finished job again: it ran twice, the second time blamed on a "worker lost"
    small = tmp_path / "small"
    small.mkdir()
    runs = tmp_path / "runs.log"
    script = (f"mount -t tmpfs -o size=6m tmpfs {small} && "
              f"{shlex.quote(sys.executable)} {RUN} {small} {runs}")
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                          text=True, timeout=400, cwd=Path(__file__).parents[2])
    if "mount" in done.stderr and not done.stdout:
        pytest.skip(f"a tmpfs mount is not possible here: {done.stderr.strip()[-300:]}")
    assert done.returncode == 0, done.stderr[-3000:]
    ended = json.loads(done.stdout.strip().splitlines()[-1])
    refused = ended.pop("refused")
    assert ended == {"status": "succeeded", "result": "done", "attempts": 1,
                     "lost_attempts": 0, "runs": 1}, (ended, done.stderr[-3000:])
    # (before: sqlite3's OperationalError; a 500 over REST, a traceback in the CLI)
    assert refused is not None and "disk holding the task database is full" in refused
