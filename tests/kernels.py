"""Kernels for tests that drive nbclient or papermill directly: on IPC sockets, not TCP ports.

jupyter_client picks a TCP kernel's ports by binding and releasing them, and the
kernel binds them a moment later. Under xdist another worker's kernel can take
one in between: that kernel dies with "Address already in use" and nbclient
waits for it until its startup timeout (a CI run lost 300 s to it in a
papermill reference run). An IPC kernel's sockets are files under a folder of
this process's own, so no other process can take them. jupyter-tasks' own
kernels keep TCP and start again on new ports instead (``jupyter_tasks.jobs.kernel``).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid

from jupyter_client.manager import AsyncKernelManager
from traitlets import default

# short on purpose: a Unix socket's path is limited to 107 bytes, and the sockets
# are named after ``ip`` plus "-<number>"
_SOCKETS = tempfile.mkdtemp(prefix="jt-ipc-")
atexit.register(shutil.rmtree, _SOCKETS, ignore_errors=True)


class IpcKernelManager(AsyncKernelManager):
    """An async kernel manager whose kernels talk over IPC sockets in a private folder."""

    transport = "ipc"

    @default("ip")
    def _ip_default(self) -> str:
        return f"{_SOCKETS}/{uuid.uuid4().hex[:12]}"
