"""The wheel ships the prebuilt labextension and the server-extension switch; both are enabled.

``pip wheel .`` reuses the labextension already built into ``jupyter_tasks/labextension``
(the build hook's ``skip-if-exists``), so no Node.js build runs here. The build
backend runs without isolation when hatchling, hatch-jupyter-builder and hatch-nodejs-version are
installed (seconds instead of minutes of downloads); set
``JUPYTER_TASKS_WHEEL_ISOLATION=1`` to build exactly as ``pip wheel .`` does by default.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILT = ROOT / "jupyter_tasks" / "labextension"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
LABEXT = "share/jupyter/labextensions/jupyter-tasks/"

pytestmark = pytest.mark.slow


def _isolated() -> bool:
    if os.environ.get("JUPYTER_TASKS_WHEEL_ISOLATION") == "1":
        return True
    return not all(importlib.util.find_spec(m) for m in
                   ("hatchling", "hatch_jupyter_builder", "hatch_nodejs_version"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    if not (BUILT / "static" / "style.js").exists():
        pytest.fail(f"the labextension is not built in {BUILT}: run `pip install -e .` or "
                    "`cd labextension && jlpm build:prod` first", pytrace=False)
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-w", str(out), "-q"]
    if not _isolated():
        cmd.append("--no-build-isolation")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = list(out.glob("jupyter_tasks-*.whl"))
    assert len(wheels) == 1, wheels
    with zipfile.ZipFile(wheels[0]) as zf:
        yield zf


def _data(names: list[str]) -> dict[str, str]:
    """Wheel ``*.data/data/<path>`` entries by ``<path>``."""
    found = {}
    for name in names:
        head, sep, rest = name.partition(".data/data/")
        if sep and "/" not in head:
            found[rest] = name
    return found


def test_wheel_contains_the_labextension(wheel: zipfile.ZipFile) -> None:
    data = _data(wheel.namelist())
    assert LABEXT + "package.json" in data, sorted(data)
    assert LABEXT + "install.json" in data, sorted(data)
    remote = re.compile(re.escape(LABEXT) + r"static/remoteEntry\.\w+\.js")
    entries = [p for p in data if remote.fullmatch(p)]
    assert len(entries) == 1, sorted(data)

    # the package.json JupyterLab reads points at the remoteEntry that ships
    meta = json.loads(wheel.read(data[LABEXT + "package.json"]))
    assert meta["name"] == "jupyter-tasks"
    assert LABEXT + meta["jupyterlab"]["_build"]["load"] in data
    install = json.loads(wheel.read(data[LABEXT + "install.json"]))
    assert install["packageName"] == "jupyter-tasks"
    assert install["packageManager"] == "python"


def test_one_version_for_the_wheel_and_the_labextension(wheel: zipfile.ZipFile) -> None:
    source = json.loads((ROOT / "labextension" / "package.json").read_text())["version"]
    metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    assert f"\nVersion: {source}\n" in wheel.read(metadata).decode()
    shipped = json.loads(wheel.read(_data(wheel.namelist())[LABEXT + "package.json"]))
    assert shipped["version"] == source
    generated = wheel.read("jupyter_tasks/_version.py").decode()
    assert f"'{source}'" in generated


def test_wheel_enables_the_server_extension(wheel: zipfile.ZipFile) -> None:
    data = _data(wheel.namelist())
    path = "etc/jupyter/jupyter_server_config.d/jupyter_tasks.json"
    assert path in data, sorted(data)
    config = json.loads(wheel.read(data[path]))
    assert config["ServerApp"]["jpserver_extensions"]["jupyter_tasks"] is True
    # and the Python package itself, with the dashboard import root
    names = set(wheel.namelist())
    assert "jupyter_tasks/server/app.py" in names
    assert any(n.startswith("jupyter_tasks_dashboard/") for n in names)


def _jupyter(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "jupyter", *args], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return ANSI.sub("", proc.stdout + proc.stderr)


def test_labextension_listed_enabled_ok() -> None:
    out = _jupyter("labextension", "list")
    assert re.search(r"^\s*jupyter-tasks v\S+ enabled\s+OK\b", out, re.M), out


def test_server_extension_listed_enabled() -> None:
    out = _jupyter("server", "extension", "list")
    assert re.search(r"^\s*jupyter_tasks\s+enabled\b", out, re.M), out
    assert re.search(r"^\s*jupyter_tasks \S+\s+OK\b", out, re.M), out
