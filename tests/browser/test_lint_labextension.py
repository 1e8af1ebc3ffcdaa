"""The labextension's eslint + prettier + stylelint (``jlpm lint:check``), run by pytest."""

from __future__ import annotations

import os
import subprocess

import pytest

from .test_jest import LABEXT, _jlpm

pytestmark = pytest.mark.slow


def test_labextension_lint_check_passes() -> None:
    jlpm = _jlpm()
    env = {**os.environ, "CI": "1", "FORCE_COLOR": "0"}
    if not (LABEXT / "node_modules" / ".bin" / "eslint").exists():
        proc = subprocess.run([jlpm, "install", "--immutable"], cwd=LABEXT, env=env,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"jlpm install failed:\n{proc.stdout[-4000:]}{proc.stderr}"
    proc = subprocess.run([jlpm, "lint:check"], cwd=LABEXT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"jlpm lint:check failed:\n{(proc.stdout + proc.stderr)[-6000:]}"
