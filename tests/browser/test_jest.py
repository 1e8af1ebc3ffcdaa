"""The labextension's jest suite (the panel model), run by pytest: one command runs every test."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

LABEXT = Path(__file__).resolve().parents[2] / "labextension"

pytestmark = pytest.mark.slow


def _jlpm() -> str:
    jlpm = shutil.which("jlpm")
    if jlpm is None:
        pytest.fail("jlpm is missing (it comes with the Python package jupyterlab)",
                    pytrace=False)
    if shutil.which("node") is None:
        pytest.fail("node is missing: the jest suite needs Node.js 18+", pytrace=False)
    return jlpm


def test_jest_suite_passes() -> None:
    jlpm = _jlpm()
    env = {**os.environ, "CI": "1", "FORCE_COLOR": "0"}
    if not (LABEXT / "node_modules" / ".bin" / "jest").exists():
        proc = subprocess.run([jlpm, "install", "--immutable"], cwd=LABEXT, env=env,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"jlpm install failed:\n{proc.stdout[-4000:]}{proc.stderr}"
    proc = subprocess.run([jlpm, "test", "--ci"], cwd=LABEXT, env=env,
                          capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"jlpm test failed:\n{output[-6000:]}"
    summary = re.search(r"^Tests:\s+(.*)$", output, re.M)
    assert summary is not None, output[-3000:]
    assert "failed" not in summary.group(1), summary.group(0)
    assert re.search(r"\b\d+ passed\b", summary.group(1)), summary.group(0)
