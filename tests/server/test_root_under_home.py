"""A server root inside the user's home, where ``git clone`` and ``jupyter lab`` put it.

jupyter_server keeps such a root as ``~/project`` in its settings (for display);
read as a path it pointed to ``<cwd>/~/project``, so ``/api/tasks/me`` named a
folder that does not exist and notebook jobs were resolved against it: how a
normal user's first start went wrong (tests/cli/test_first_start.py found it).
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def jp_root_dir(jp_home_dir):
    root = jp_home_dir / "project"
    root.mkdir()
    return root


async def test_me_names_the_real_root(api, jp_root_dir):
    me = (await api.get("me")).json
    assert os.path.realpath(me["root_dir"]) == os.path.realpath(str(jp_root_dir))


async def test_a_notebook_path_relative_to_the_root_is_accepted(api, jp_root_dir):
    (jp_root_dir / "nb.ipynb").write_text(
        '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    task = await api.submit({"notebook": "nb.ipynb", "queue": "parked"})
    assert task["status"] == "queued", task
