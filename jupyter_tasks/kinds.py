"""The standard job kinds, for the composition roots to install.

``standard()`` is what the server extension, ``jupyter tasks worker`` and a
kernel's manager run: registered functions, commands, notebooks and code.
``import jupyter_tasks`` makes it the default of a ``TaskManager()`` given no
``kinds``; pass ``kinds=`` to choose others, or ``manager.install_kind(kind)``
to add one (the kernel's ``cell`` kind, the Dask backend's routing).
"""

from __future__ import annotations

from .engine.kinds import JobKind, core_kinds, set_default_kinds
from .jobs import job_kinds

__all__ = ["JobKind", "install_as_default", "standard"]


def standard() -> list[JobKind]:
    """Fresh instances of the function, command, notebook and code kinds."""
    return [*core_kinds(), *job_kinds()]


def install_as_default() -> None:
    """Make ``standard()`` what a ``TaskManager`` given no ``kinds`` runs."""
    set_default_kinds(standard)
