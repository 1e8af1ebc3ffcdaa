"""problem+json (RFC 9457) bodies for every error the API answers."""

from __future__ import annotations

from http.client import responses
from typing import Any

from tornado import web

from ..exceptions import JupyterTasksError

PROBLEM_TYPE = "application/problem+json"


class Problem(web.HTTPError):
    """An HTTP error with a human ``detail`` and optional per-field ``errors``."""

    def __init__(self, status: int, detail: str, *, title: str | None = None,
                 errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(status, reason=None)
        self.detail = detail
        self.title = title or responses.get(status, "Error")
        self.errors = errors or []


def problem_for(status: int, exc: BaseException | None) -> dict[str, Any]:
    """The problem document for an error answer with ``status``, from the exception if any."""
    title = responses.get(status, "Error")
    detail = title
    errors: list[dict[str, Any]] = []
    if isinstance(exc, Problem):
        title, detail, errors = exc.title, exc.detail, exc.errors
    elif isinstance(exc, JupyterTasksError):
        title, detail, errors = exc.title, exc.message, list(exc.errors)
    elif isinstance(exc, web.HTTPError):
        if exc.log_message:
            try:
                detail = exc.log_message % exc.args if exc.args else exc.log_message
            except (TypeError, ValueError):
                detail = exc.log_message
        if exc.reason:
            title = exc.reason
    elif exc is not None and status >= 500:
        detail = "internal error; see the server log"
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "errors": errors,
    }
    return body


def status_for(exc: BaseException | None, default: int) -> int:
    """The HTTP status an exception stands for."""
    if isinstance(exc, JupyterTasksError):
        return exc.http_status
    return default
