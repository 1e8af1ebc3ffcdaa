"""The notebook side of jupyter-tasks: magics, cell tasks, ``TaskHandle``, progress cards.

``%load_ext jupyter_tasks`` calls :func:`load_ipython_extension`. Importing
this package does not import ipywidgets (only ``cards`` does).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from .progress import progress, track

if TYPE_CHECKING:
    from ..manager import TaskManager
    from .cells import KernelSide

_side: KernelSide | None = None
_lock = threading.Lock()


def kernel_side() -> KernelSide | None:
    """This kernel's state once the extension is loaded, else None."""
    return _side


def kernel_origin() -> dict[str, Any]:
    """``origin`` of tasks submitted from this kernel: its id and notebook path."""
    from .cells import kernel_id_from_connection_file

    return {"type": "kernel", "kernel_id": kernel_id_from_connection_file(),
            "notebook": os.environ.get("JPY_SESSION_NAME") or None}


def ensure_manager() -> TaskManager:
    """The process's running manager, or a kernel manager started on the runtime thread.

    The database is ``$JUPYTER_TASKS_DB`` when set (the server extension sets
    it for the kernels it starts).
    """
    from ..default_manager import start_manager
    from ..kinds import standard
    from ..runtime import get_default_manager

    manager = get_default_manager()
    if manager is not None and manager.running:
        return manager
    # the standard kinds here; the kernel side (KernelSide) installs the cell kind
    return start_manager(worker_kind="kernel", origin=kernel_origin(), kinds=standard())


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_tasks``: start the kernel's manager and register the magics."""
    global _side
    from . import capture, magics
    from .cells import KernelSide, kernel_id_from_connection_file

    with _lock:
        manager = ensure_manager()
        if _side is None or _side.manager is not manager:
            _side = KernelSide(manager, ipython, kernel_id_from_connection_file())
        capture.install(ipython)
        magics.register(ipython)
        keep_kernel_threads_responsive()


SWITCH_INTERVAL_SECONDS = 0.001


def keep_kernel_threads_responsive() -> None:
    """Hand the GIL around every 1 ms instead of Python's default 5 ms (never raise it).

    A background cell running a pure-Python loop holds the GIL; each time the
    kernel's IOPub thread, the manager's loop or the database thread wants it
    back, they wait a whole switch interval. At 5 ms those waits add up so that
    a card is drawn, and its updates sent, only once the loop has ended; at 1 ms
    the card follows the loop live. A CPU-bound thread alone is not slowed: it
    only switches when another thread waits.
    """
    import sys

    if sys.getswitchinterval() > SWITCH_INTERVAL_SECONDS:
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext jupyter_tasks``: stop routing output (the manager keeps running)."""
    from . import capture, magics

    capture.uninstall()
    magics.unregister(ipython)


__all__ = ["ensure_manager", "kernel_side", "load_ipython_extension", "progress", "track",
           "unload_ipython_extension"]
