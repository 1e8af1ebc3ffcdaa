"""A small asynchronous REST + websocket client for scripts (and the terminal dashboard).

    from jupyter_tasks.client import TasksClient

    async with TasksClient("http://127.0.0.1:8888", token) as client:
        task = await client.submit(name="long_count", params={"seconds": 5})
        async for event in client.events(since=0, task_id=task["id"]):
            print(event["type"], event["task"]["progress"])
            if event["task"]["status"] not in ("queued", "running"):
                break
        done = await client.wait(task["id"])

Every method returns the JSON of ``docs/reference/rest-api.md``. An error answer raises
``TasksClientError`` carrying the HTTP status and the problem+json document
(``detail`` is the human message, ``errors`` the per-field problems).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from .exceptions import said_with_errors
from .models import SINCE_HEADER, STREAM_RESET, TASK_ID_PATTERN
from .values import check_input

# how long wait() goes on asking a server it cannot reach (one restarting), and how often
UNREACHABLE_SECONDS = 60.0
UNREACHABLE_RETRY_SECONDS = 0.5
# how much longer than its long poll a wait with a deadline gives the server's answer
REPLY_MARGIN_SECONDS = 5.0

TASK_ID = re.compile(TASK_ID_PATTERN.strip("^$"))
TERMINAL = frozenset({"succeeded", "failed", "timeout", "oom", "cancelled", "interrupted"})


class TasksClientError(Exception):
    """An error answer from the server (or no answer at all: ``status`` 0)."""

    def __init__(self, status: int, detail: str, problem: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status}: {detail}" if status else detail)
        self.status = status
        self.detail = detail
        self.problem = problem or {}

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Per-field problems (``[{"field", "message"}]``) of a 4xx answer."""
        return list(self.problem.get("errors") or [])

    def describe(self) -> str:
        """``detail`` followed by the field problems it does not already say, for people."""
        return said_with_errors(self.detail, self.errors)


class TasksClient:
    """Talk to the jupyter-tasks API of one Jupyter server.

    ``url`` is the server's URL including its ``base_url`` (for example
    ``http://127.0.0.1:8888/`` or ``https://hub.example/user/me/``), or the URL
    ``jupyter server list`` prints (``http://127.0.0.1:8888/?token=…``: its token is
    used when none is given); ``token`` is sent as ``Authorization: token …`` (and as
    ``?token=`` on the websocket). ``TasksClientError`` (status 0) for a URL that is
    no server's.
    """

    def __init__(self, url: str, token: str | None = None, *, request_timeout: float = 60.0,
                 validate_cert: bool = True) -> None:
        self.base, url_token = _server_base(url)
        self.token = token or url_token or None
        if self.token is not None and any(c in self.token for c in "\r\n"):
            # a token read from a file with its line end: tornado's "Illegal characters"
            # ValueError at each call
            raise TasksClientError(0, "the token holds a line break (read from a file? "
                                   "strip it)")
        self.request_timeout = request_timeout
        self.validate_cert = validate_cert
        self._http = AsyncHTTPClient()

    async def __aenter__(self) -> TasksClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release today (tornado shares its HTTP client per loop); kept for symmetry."""

    # --------------------------------------------------------------- plumbing

    def _url(self, path: str, params: dict[str, Any] | None = None) -> str:
        url = self.base + "api/tasks" + (f"/{path}" if path else "")
        query = []
        for key, value in (params or {}).items():
            if value is None:
                continue
            if isinstance(value, (list, tuple)):
                query += [(key, str(v)) for v in value]
            else:
                query.append((key, str(value)))
        return url + (f"?{urlencode(query)}" if query else "")

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        return headers

    async def request(self, method: str, path: str = "", *, params: dict[str, Any] | None = None,
                      body: Any = None, headers: dict[str, str] | None = None,
                      timeout: float | None = None) -> Any:
        """One API call; returns the decoded JSON body (None when empty)."""
        data = None
        all_headers = {**self._headers(), **(headers or {})}
        if body is not None:
            # what JSON cannot carry is said here, naming where, as the Python API says it
            # (json.dumps would send NaN as a token no JSON parser takes, a set as a
            # TypeError, and a key 1 as "1")
            check_input(body, where="body")
            data = json.dumps(body, allow_nan=False)
            all_headers["Content-Type"] = "application/json"
        elif method in ("POST", "PUT", "PATCH"):
            data = ""
        request = HTTPRequest(
            self._url(path, params), method=method, body=data, headers=all_headers,
            request_timeout=timeout or self.request_timeout, validate_cert=self.validate_cert,
            allow_nonstandard_methods=True,
        )
        try:
            response = await self._http.fetch(request, raise_error=False)
        except (OSError, asyncio.TimeoutError) as exc:
            raise TasksClientError(0, f"cannot reach {self.base}: {exc}") from exc
        except HTTPClientError as exc:
            # raise_error=False still raises a connection that closed mid-request (599
            # "Stream closed": the server was killed while it answered); it reached the
            # dashboard's page loader as a crash, seen once in CI
            raise TasksClientError(0, f"cannot reach {self.base}: {exc}") from exc
        if response.code == 599:
            raise TasksClientError(0, f"cannot reach {self.base}: {response.error}")
        payload = _decode(response.body)
        if response.body and payload is None and response.code < 400:
            # an HTML page where the API answers JSON: the URL names some other site, or
            # a path outside the server's base_url (before: None, as if all were well)
            raise TasksClientError(response.code, f"{self.base} answered {path or 'api/tasks'}"
                                   f" with no JSON ({response.headers.get('Content-Type')}):"
                                   " is it a Jupyter server's URL, with its base_url?")
        if response.code == 404 and not _is_problem(payload):
            # not the API's own 404 (a problem+json): no jupyter-tasks route at this URL,
            # most often one without the server's base_url (before: "404: Not Found", as
            # if a task were missing)
            raise TasksClientError(404, f"{self.base} has no jupyter-tasks API at "
                                   f"{path or 'api/tasks'}: is it a Jupyter server's URL, "
                                   "with its base_url (as `jupyter server list` prints it), "
                                   "and is the jupyter_tasks extension enabled there?")
        if response.code >= 400:
            if isinstance(payload, dict):
                detail = payload.get("detail") or payload.get("message") or response.reason
                raise TasksClientError(response.code, str(detail), payload)
            raise TasksClientError(response.code, response.reason or "error")
        return payload

    # ------------------------------------------------------------------ tasks

    async def submit(self, name: str | None = None, params: dict[str, Any] | None = None,
                     **fields: Any) -> dict[str, Any]:
        """Submit a job: ``name`` + ``params``, or ``command=``/``notebook=``/``code=``."""
        body = {k: v for k, v in fields.items() if v is not None}
        if name is not None:
            body["name"] = name
        if params is not None:
            body["params"] = params
        return await self.request("POST", body=body)

    async def get(self, task_id: str, *, full: bool = False) -> dict[str, Any]:
        """One task; ``full`` adds artifacts, worker, children, resource usage."""
        return await self.request("GET", _task(task_id),
                                  params={"view": "full"} if full else None)

    async def list(self, *, status: str | list[str] | None = None, limit: int = 50,
                   cursor: str | None = None, **filters: Any) -> dict[str, Any]:
        """``{"tasks": [...], "next_cursor": ...}``, newest first, filtered."""
        params = {"status": status, "limit": limit, "cursor": cursor, **filters}
        return await self.request("GET", params=params)

    async def wait(self, task_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Wait until the task ends and return it; ``TimeoutError`` after ``timeout`` seconds.

        A server that cannot be reached for up to a minute (a restart) is asked again;
        past that, ``TasksClientError`` (status 0)."""
        if timeout is not None and timeout != timeout:
            # NaN: every poll asked for 0 s and no deadline ever passed (2,140 requests in 4 s)
            raise ValueError("timeout must be a number of seconds or None, not nan")
        deadline = None if timeout is None else time.monotonic() + timeout
        unreachable_since: float | None = None
        while True:
            left = 60.0 if deadline is None else max(0.0, deadline - time.monotonic())
            step = min(left, 60.0)
            # the server answers the long poll after ``step``; a frozen one (stopped, a
            # machine swapping) must not hold a wait with a deadline past it
            margin = REPLY_MARGIN_SECONDS if deadline is not None else 30.0
            try:
                answer = await self.request("GET", _task(task_id, "result"),
                                            params={"timeout": f"{step:.3f}"},
                                            timeout=step + margin)
            except TasksClientError as exc:
                # a server restart drops the long poll while the job goes on (it is
                # taken back and run again): the wait goes on too, for a while
                now = time.monotonic()
                unreachable_since = unreachable_since or now
                if exc.status == 0 and deadline is not None and now >= deadline:
                    raise TimeoutError(f"task {task_id}: no answer from the server within "
                                       f"{timeout:g} s ({exc.detail})") from None
                if exc.status != 0 or now - unreachable_since >= UNREACHABLE_SECONDS:
                    raise
                await asyncio.sleep(UNREACHABLE_RETRY_SECONDS)
                continue
            unreachable_since = None
            if answer.get("status") in TERMINAL:
                return await self.get(task_id)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"task {task_id} still {answer.get('status')}")

    async def cancel(self, task_id: str) -> dict[str, Any]:
        """Cancel a queued or running task."""
        return await self.request("POST", _task(task_id, "cancel"))

    async def rerun(self, task_id: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """The same spec again as a new task (``relationship: "rerun"``); with
        ``idempotency_key``, a repeat of this call returns the task the first made."""
        return await self.request("POST", _task(task_id, "rerun"),
                                  headers=_idempotency(idempotency_key))

    async def fork(self, task_id: str, overrides: dict[str, Any] | None = None, *,
                   idempotency_key: str | None = None, **more: Any) -> dict[str, Any]:
        """A new task from the spec with overrides (``params``, ``code``, ``label``, ...);
        ``idempotency_key`` as for :meth:`rerun`."""
        return await self.request("POST", _task(task_id, "fork"),
                                  body={**(overrides or {}), **more},
                                  headers=_idempotency(idempotency_key))

    async def confirm(self, task_id: str, answer: str,
                      asked_at: float | None = None) -> dict[str, Any]:
        """Answer a pending confirmation (only the one asked at ``asked_at``, if given)."""
        body: dict[str, Any] = {"answer": answer}
        if asked_at is not None:
            body["asked_at"] = asked_at
        return await self.request("POST", _task(task_id, "confirm"), body=body)

    async def delete(self, task_id: str) -> None:
        """Forget a finished task."""
        await self.request("DELETE", _task(task_id))

    async def logs(self, task_id: str, after: int = 0, limit: int = 1000) -> dict[str, Any]:
        """``{"entries": [{"seq", "ts", "stream", "text"}], "next": seq}``."""
        return await self.request("GET", _task(task_id, "logs"), params={"after": after,
                                                                    "limit": limit})

    async def artifacts(self, task_id: str) -> list[dict[str, Any]]:
        """The task's artifacts."""
        return await self.request("GET", _task(task_id, "artifacts"))

    async def stats(self) -> dict[str, Any]:
        """Per-queue and per-status counts, and live workers."""
        return await self.request("GET", "stats")

    async def registry(self, tags: list[str] | None = None) -> list[dict[str, Any]]:
        """Registered tasks (all ``tags`` must match)."""
        return await self.request("GET", "registry",
                                  params={"tags": ",".join(tags)} if tags else None)

    # ----------------------------------------------------------------- events

    def events_url(self, since: int | None = None, task_id: str | None = None) -> str:
        """The websocket URL of the event feed."""
        parts = urlsplit(self._url("events", {"since": since, "task_id": task_id,
                                              "token": self.token}))
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        return urlunsplit((scheme, *parts[1:]))

    async def connect_events(self, since: int | None = None,
                             task_id: str | None = None) -> WebSocketClientConnection:
        """Open the websocket (raises ``TasksClientError`` when refused)."""
        request = HTTPRequest(self.events_url(since, task_id), headers=self._headers(),
                              validate_cert=self.validate_cert,
                              request_timeout=self.request_timeout)
        try:
            return await websocket_connect(request)
        except HTTPClientError as exc:
            payload = _decode(exc.response.body) if exc.response is not None else None
            detail = payload.get("detail") if isinstance(payload, dict) else str(exc)
            raise TasksClientError(exc.code, str(detail), payload) from exc
        except (OSError, asyncio.TimeoutError) as exc:
            raise TasksClientError(0, f"cannot reach {self.base}: {exc}") from exc

    async def events(self, since: int | None = None, *, task_id: str | None = None,
                     reconnect: bool = True, retry_delay: float = 0.5,
                     max_retry_delay: float = 10.0) -> AsyncIterator[dict[str, Any]]:
        """Every event after ``since`` (None: from now on), then live ones, forever.

        A dropped connection is reopened with ``since=<last event id seen>``, so
        nothing is missed and nothing repeats. Refusals (4xx) are raised;
        with ``reconnect=False`` a drop ends the iteration. A ``stream.reset``
        message says the id was of another history (the database file was
        replaced): what was read before no longer holds, and events resume after
        its ``id``.
        """
        last = since
        delay = retry_delay
        while True:
            try:
                conn = await self.connect_events(last, task_id)
            except TasksClientError as exc:
                if not reconnect or 400 <= exc.status < 500:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_retry_delay)
                continue
            delay = retry_delay
            if last is None:
                # "from now": where the server began this stream, so that a connection
                # lost before the first event is reopened from there, not from a later now
                last = _event_id(conn.headers.get(SINCE_HEADER) if conn.headers else None)
            try:
                while True:
                    message = await conn.read_message()
                    if message is None:
                        break
                    event = json.loads(message)
                    if not isinstance(event, dict) or "id" not in event:
                        continue
                    if event.get("type") == STREAM_RESET:
                        # our id was of another history (the database was replaced):
                        # what was read before is gone; resume after the server's newest
                        last = event["id"]
                        yield event
                        continue
                    if last is not None and event["id"] <= last:
                        continue
                    last = event["id"]
                    yield event
            finally:
                conn.close()
            if not reconnect:
                return
            await asyncio.sleep(delay)


def _event_id(text: str | None) -> int | None:
    """An event id from a header, None if absent or not one (an older server)."""
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= 0 else None


def _is_problem(payload: Any) -> bool:
    return isinstance(payload, dict) and "title" in payload and "status" in payload


def _idempotency(key: str | None) -> dict[str, str] | None:
    return None if key is None else {"Idempotency-Key": key}


def _task(task_id: str, *action: str) -> str:
    """The path of a task (and one of its actions); ``ValueError`` for what is no task id
    (before: ``get("stats")`` returned the stats, ``get("a?b=1")`` looked up task 'a')."""
    if not (isinstance(task_id, str) and TASK_ID.fullmatch(task_id)):
        raise ValueError(f"{task_id!r} is no task id: 32 hexadecimal digits, as the server "
                         "gives them")
    return "/".join((task_id, *action))


def _server_base(url: str) -> tuple[str, str | None]:
    """(the server's URL ending in '/', the token its query carries)."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise TasksClientError(0, f"{url!r} is no URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TasksClientError(0, f"{url!r} is no http(s) URL of a Jupyter server "
                               "(such as http://127.0.0.1:8888/)")
    query = parse_qs(parts.query)
    unknown = sorted(set(query) - {"token"})
    if unknown:
        # added after the query, every path named another page (answered 200 in HTML)
        raise TasksClientError(0, f"{url!r}: a server's URL takes no query but ?token= "
                               f"(not {', '.join(unknown)})")
    base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/", "", ""))
    return base, (query.get("token") or [None])[0]


def _decode(body: bytes | None) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None
