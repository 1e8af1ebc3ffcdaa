"""A real IPython kernel driven over ZMQ, recording every IOPub message (comms included).

Used by the notebook tests and by ``benchmarks/bench_notebook_background.py``.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Callable
from typing import Any

from jupyter_client.manager import KernelManager

from jupyter_tasks.jobs import kernel

OUTPUT_TYPES = ("stream", "display_data", "execute_result", "error")


class Kernel:
    """A kernel with ``JUPYTER_TASKS_DB`` pointing at ``db_path``.

    ``execute`` runs code and returns the outputs of that request only; every
    IOPub message ever received is kept in ``messages`` (with the local
    receive time in ``msg['_received']``) so tests can look at comm traffic.
    """

    def __init__(self, db_path: os.PathLike[str] | str, cwd: str | None = None,
                 extra_env: dict[str, str] | None = None) -> None:
        env = dict(os.environ)
        env["JUPYTER_TASKS_DB"] = str(db_path)
        env.pop("PYTEST_CURRENT_TEST", None)  # let ipykernel capture fd output normally
        env.update(extra_env or {})
        # started again on new ports when another process took one (jobs.kernel explains)
        for _ in range(kernel.START_ATTEMPTS):
            self.km = KernelManager(kernel_name="python3")
            # its stderr through the jobs' own tail: a kernel that died on a port taken
            # between its choice and its bind says so there (CI lost one such race)
            self._stderr = kernel.StderrTail()
            try:
                self.km.start_kernel(env=env, cwd=cwd or os.getcwd(),
                                     stderr=self._stderr.write_fd)
            finally:
                self._stderr.launched()
            self.client = self.km.blocking_client()
            self.client.start_channels()
            if self._ready():
                break
            self.client.stop_channels()
            self.km.shutdown_kernel(now=True)
        else:
            raise AssertionError("the kernel lost a port to another process at every start")
        self.messages: list[dict[str, Any]] = []

    def _ready(self) -> bool:
        """Wait for the kernel's first answer; False when it lost one of its ports."""
        deadline = time.monotonic() + kernel.STARTUP_TIMEOUT
        pid = kernel.kernel_pid(self.km)
        while True:
            try:
                self.client.wait_for_ready(timeout=kernel.PORT_CHECK_SECONDS)
                return True
            except RuntimeError:
                if kernel.ports_taken(self.km, pid):
                    return False
                if not self.km.is_alive() and self._stderr.port_in_use() is not None:
                    return False  # the port was taken and let go before it was looked at
                if not self.km.is_alive() or time.monotonic() >= deadline:
                    raise

    # ------------------------------------------------------------------ iopub

    def pump(self, timeout: float = 0.05) -> int:
        """Move waiting IOPub messages into ``messages``; returns how many arrived."""
        n = 0
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                msg = self.client.get_iopub_msg(timeout=remaining if n == 0 else 0.001)
            except queue.Empty:
                return n
            msg["_received"] = time.monotonic()
            self.messages.append(msg)
            n += 1

    def wait_for(self, check: Callable[[], Any], timeout: float = 30.0,
                 what: str = "condition") -> Any:
        """Pump IOPub until ``check()`` is truthy; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = check()
            if last:
                return last
            self.pump(0.05)
        raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")

    # ---------------------------------------------------------------- execute

    def submit(self, code: str) -> str:
        """Send an execute request; returns its msg id (does not wait)."""
        return self.client.execute(code, allow_stdin=False)

    def outputs_of(self, msg_id: str) -> list[dict[str, Any]]:
        """Output messages (stream, display, result, error) whose parent is ``msg_id``."""
        return [m for m in self.messages
                if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] in OUTPUT_TYPES]

    def idle(self, msg_id: str) -> bool:
        """True once the kernel reported idle for this request."""
        return any(m["msg_type"] == "status" and m["content"]["execution_state"] == "idle"
                   and m["parent_header"].get("msg_id") == msg_id for m in self.messages)

    def execute(self, code: str, timeout: float = 60.0, allow_error: bool = False) -> list[
            dict[str, Any]]:
        """Run ``code`` and wait until it is done; returns its output messages."""
        msg_id = self.submit(code)
        self.wait_for(lambda: self.idle(msg_id), timeout, f"execution of {code[:40]!r}")
        outputs = self.outputs_of(msg_id)
        if not allow_error:
            errors = [m for m in outputs if m["msg_type"] == "error"]
            if errors:
                content = errors[0]["content"]
                raise AssertionError(f"{content['ename']}: {content['evalue']}\n"
                                     + "\n".join(content["traceback"]))
        return outputs

    def value(self, expr: str, timeout: float = 60.0) -> Any:
        """Evaluate ``expr`` in the kernel and return its ``text/plain`` repr evaluated here."""
        import ast

        outputs = self.execute(expr, timeout)
        for m in outputs:
            if m["msg_type"] == "execute_result":
                return ast.literal_eval(m["content"]["data"]["text/plain"])
        raise AssertionError(f"{expr!r} gave no value: {outputs}")

    # ------------------------------------------------------------------ comms

    def comm_models(self) -> dict[str, str]:
        """comm id → widget model name of the widgets open now (comm_open seen, no close)."""
        models = {}
        for m in self.messages:
            if m["msg_type"] == "comm_open":
                state = m["content"].get("data", {}).get("state", {})
                models[m["content"]["comm_id"]] = state.get("_model_name", "")
            elif m["msg_type"] == "comm_close":
                models.pop(m["content"]["comm_id"], None)
        return models

    def comm_updates(self) -> list[dict[str, Any]]:
        """Every widget state update message (``comm_msg`` with method ``update``)."""
        return [m for m in self.messages if m["msg_type"] == "comm_msg"
                and m["content"].get("data", {}).get("method") == "update"]

    def widget_state(self, comm_id: str) -> dict[str, Any]:
        """The latest synced state of one widget: its open state plus every update."""
        state: dict[str, Any] = {}
        for m in self.messages:
            content = m["content"]
            if m["msg_type"] == "comm_open" and content.get("comm_id") == comm_id:
                state.update(content.get("data", {}).get("state", {}))
            elif m["msg_type"] == "comm_msg" and content.get("comm_id") == comm_id \
                    and content.get("data", {}).get("method") == "update":
                state.update(content["data"].get("state", {}))
        return state

    def button(self, description: str) -> str:
        """The comm id of the open Button with this description ("" if none)."""
        for comm_id, name in self.comm_models().items():
            if name == "ButtonModel" and self.widget_state(comm_id).get("description") \
                    == description:
                return comm_id
        return ""

    def click(self, comm_id: str) -> None:
        """Click a button as the frontend would (a comm message on the shell channel)."""
        msg = self.client.session.msg("comm_msg", {
            "comm_id": comm_id, "data": {"method": "custom", "content": {"event": "click"}}})
        self.client.shell_channel.send(msg)

    # ------------------------------------------------------------------- stop

    @property
    def pid(self) -> int:
        return self.km.provisioner.pid  # type: ignore[union-attr]

    def shutdown(self) -> None:
        try:
            self.client.stop_channels()
        finally:
            if self.km.has_kernel:
                self.km.shutdown_kernel(now=True)
