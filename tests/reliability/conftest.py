"""Reliability tier: hostile values, crashes, damaged files, contention, redirects.

Uses the server tier's fixtures (a real Jupyter server in-process through
pytest-jupyter, and real ``jupyter server`` subprocesses, from tests/launcher.py,
for kill tests).
"""

from __future__ import annotations

# pytest-jupyter's fixtures, then the server tier's (its jp_asyncio_loop overrides theirs)
from pytest_jupyter.jupyter_server import *  # noqa: F403

from tests.server.conftest import (  # noqa: F401  (fixtures are found by name)
    Api,
    api,
    jp_asyncio_loop,
    jp_server_config,
    server_factory,
    tasks_app,
    tasks_config,
)
