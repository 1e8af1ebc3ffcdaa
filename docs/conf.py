"""Sphinx configuration of the jupyter-tasks docs (MyST Markdown, PyData theme, offline)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "_ext"))

from jupyter_tasks import __version__  # noqa: E402

project = "jupyter-tasks"
author = "jupyter-tasks contributors"
copyright = "jupyter-tasks contributors"
version = release = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    # the REST reference, the configuration and the CLI help, generated at build time
    "jupyter_tasks_docs",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# no intersphinx and no remote images: the build must work without a network
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"show-inheritance": False}

html_theme = "pydata_sphinx_theme"
html_title = f"jupyter-tasks {version}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    # the theme's default version check would fetch a switcher file
    "check_switcher": False,
}
html_static_path: list[str] = []
html_show_sourcelink = False
