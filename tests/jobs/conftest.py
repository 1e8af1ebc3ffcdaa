"""Jobs-tier fixtures: notebooks on disk, a manager with job workers, the server's REST API."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

# pytest-jupyter's fixtures, then the server tier's: its server with jupyter_tasks enabled
# (the later import of jp_asyncio_loop overrides pytest-jupyter's)
from pytest_jupyter.jupyter_server import *  # noqa: F403

from jupyter_tasks import TaskManager
from tests.server.conftest import (  # noqa: F401
    Api,
    api,
    jp_asyncio_loop,
    jp_server_config,
    tasks_app,
    tasks_config,
)


def write_notebook(path: Path, cells: Sequence[str | tuple[str, list[str]]],
                   markdown: str | None = "# a job") -> Path:
    """A notebook of code cells (``source`` or ``(source, tags)``), optionally a heading."""
    nb_cells: list[Any] = [new_markdown_cell(markdown)] if markdown else []
    for cell in cells:
        source, tags = (cell, []) if isinstance(cell, str) else cell
        nb_cells.append(new_code_cell(source, metadata={"tags": tags} if tags else {}))
    nb = new_notebook(cells=nb_cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
async def manager(db_path: Path):
    async with TaskManager(db_path, queues={"default": 2}, retry_base_delay=0.05,
                           flush_interval=0.05) as m:
        yield m
