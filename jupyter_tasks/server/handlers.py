"""REST handlers (docs/reference/rest-api.md): authenticate, parse, one manager call, finish."""

from __future__ import annotations

import asyncio
import datetime
import json
import math
import os
import re
import sys
from collections.abc import Mapping
from typing import Any

from jupyter_core.paths import is_hidden
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from ..engine.options import MAX_TEXT_CHARS, OPTION_CHECKS, memory_limit_errors
from ..engine.submission import answer_json
from ..exceptions import InvalidRequest, JupyterTasksError, KeyGivenTwice
from ..jobs.notebook import KERNEL_NAME_RULE, is_kernel_name
from ..jobs.notebook_record import render_output_path
from ..liveness import live_workers
from ..manager import TaskManager, was_deduplicated
from ..models import Task, TaskKind, TaskMode, TaskStatus, slots_by_queue
from ..schedules import FIRING_KEY_PREFIX
from ..store import (
    LARGE_PAGE_CHARS,
    LIST_SORTS,
    valid_artifact_content_type,
    valid_artifact_name,
)
from ..values import (
    MAX_DEPTH,
    check_input,
    loads_keys_once,
    lone_surrogate,
    safe_dumps,
    walk_fields,
)
from .auth import (
    KIND_RESOURCES,
    OTHERS,
    RESOURCE,
    check_may_call_back,
    check_may_run,
    check_task_access,
    may,
    owners_filter,
    username,
    work_resource,
)
from .openapi import openapi_document
from .problems import PROBLEM_TYPE, Problem, problem_for, status_for

ID = r"(?P<task_id>[0-9a-f]{32})"
ID_RE = re.compile(r"^[0-9a-f]{32}$")
# the largest event id or log offset a query may name (SQLite's integers end at 2**63 - 1)
MAX_EVENT_ID = 2**62
# a number in a query is plain ASCII: int() and float() also take '+5', '1_000' and
# other scripts' digits, which no client means and no other server would read alike
_INTEGER_RE = re.compile(r"[0-9]+")
_NUMBER_RE = re.compile(r"([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")


def query_integer(raw: str) -> int | None:
    """``raw`` as a non-negative integer written in ASCII digits, else None."""
    # past 20 digits no id or limit fits (and int() refuses 4,300 digits: a 500)
    return int(raw) if len(raw) <= 20 and _INTEGER_RE.fullmatch(raw) else None


def query_number(raw: str) -> float | None:
    """``raw`` as a finite non-negative decimal number (ASCII, exponent allowed), else None."""
    if not _NUMBER_RE.fullmatch(raw):
        return None
    value = float(raw)
    return value if math.isfinite(value) else None
MAX_LIMIT = 500
# a search is a few words typed into a box; SQLite caps pattern lengths anyway
MAX_SEARCH_CHARS = 1_000
MAX_RESULT_WAIT = 300.0
MAX_INT = 2**31 - 1

# field -> (check, description); None values count as absent
_STR = (lambda v: isinstance(v, str), "a string")
_NONEMPTY = (lambda v: isinstance(v, str) and 0 < len(v) <= MAX_TEXT_CHARS,
             f"a non-empty string of at most {MAX_TEXT_CHARS} characters")
# a code job's source: as long as a cell is (the body's size bounds it, 413 past it)
_SOURCE = (lambda v: isinstance(v, str) and v != "", "a non-empty string")
_OBJ = (lambda v: isinstance(v, dict), "an object")
_ANY = (lambda v: True, "any JSON value")
_ARGV = (lambda v: isinstance(v, list) and len(v) > 0 and all(isinstance(a, str) for a in v),
         "a non-empty list of strings")
_ENV = (lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
        "an object of strings")
_NUMBER = (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number")


# the values a ``status`` / ``kind`` filter may name
STATUS_VALUES = frozenset(s.value for s in TaskStatus)
KIND_VALUES = frozenset(k.value for k in TaskKind)
WORK_FIELDS = {"name": _NONEMPTY, "command": _ARGV, "notebook": _NONEMPTY, "code": _SOURCE}
WORK_EXTRAS = {"params": ("name", _OBJ), "cwd": ("command", _STR), "env": ("command", _ENV),
               "parameters": ("notebook", _OBJ), "input_data": ("code", _ANY),
               "output_path": ("notebook", _NONEMPTY),
               "export_html": ("notebook", (lambda v: isinstance(v, bool), "true or false")),
               "kernel_name": ("notebook", (is_kernel_name, KERNEL_NAME_RULE))}
# the engine's rules for every submission's options, and a label or key here is non-empty
OPTION_FIELDS = {**OPTION_CHECKS, "label": _NONEMPTY, "task_key": _NONEMPTY,
                 "idempotency_key": _NONEMPTY, "callback_url": _NONEMPTY}
FORK_FIELDS = {"params": _OBJ, "code": _SOURCE, "command": _ARGV, "parameters": _OBJ,
               "label": _NONEMPTY, "input_data": _ANY}


def _type_errors(body: dict[str, Any], checks: dict[str, Any]) -> list[dict[str, Any]]:
    errors = []
    for key, value in body.items():
        check = checks.get(key)
        if check is None:
            errors.append({"field": key, "message": "unknown field"})
        elif value is not None and not check[0](value):
            errors.append({"field": key, "message": f"must be {check[1]}"})
    return errors


def _reject(errors: list[dict[str, Any]], what: str = "invalid request body") -> None:
    if errors:
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise Problem(422, f"{what}: {summary}", title="Invalid request", errors=errors)


class TasksHandler(APIHandler):
    """Common parts: problem+json errors, JSON bodies, the manager, the user."""

    auth_resource = RESOURCE

    @property
    def tasks_app(self) -> Any:
        return self.settings["jupyter_tasks_app"]

    @property
    def manager(self) -> TaskManager:
        return self.settings["jupyter_tasks_manager"]

    @property
    def user_name(self) -> str:
        return username(self)

    @property
    def root_dir(self) -> str:
        """The server root as an absolute path.

        jupyter_server's ``server_root_dir`` setting is for display: a root under
        the user's home reads ``~/project``, which is no path to resolve against.
        """
        root = self.settings.get("server_root_dir") or os.getcwd()
        return os.path.abspath(os.path.expanduser(root))

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        await self.tasks_app.ensure_started()

    # ------------------------------------------------------------------ waiting

    _waiting: asyncio.Future[Task] | None = None
    _client_gone = False

    async def wait_for_end(self, task_id: str, timeout: float | None) -> Task | None:
        """``manager.wait``, given up when the client goes away (then None: answer nothing)."""
        if self._client_gone:
            return None
        self._waiting = asyncio.ensure_future(self.manager.wait(task_id, timeout))
        try:
            return await self._waiting
        except asyncio.CancelledError:
            if self._client_gone and not _current_task_cancelling():
                # nothing is sent; the access log says why (nginx's code for this)
                self.set_status(499, "Client Closed Request")
                return None
            raise
        finally:
            self._waiting = None

    def on_connection_close(self) -> None:
        # a long poll or a synchronous execute stops waiting for a client that left
        # (its timeout, a closed tab); the task itself goes on
        self._client_gone = True
        if self._waiting is not None:
            self._waiting.cancel()
        super().on_connection_close()

    # ------------------------------------------------------------------ errors

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = (kwargs.get("exc_info") or (None, None, None))[1]
        status = status_for(exc, status_code)
        self.set_status(status)
        for header in ("ETag", "Content-Length", "Location", "X-Task-Id"):
            self.clear_header(header)
        if status == 405:  # RFC 9110: say which methods the route has
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:  # contention: the client should come back, not give up
            self.set_header("Retry-After", str(retry_after))
        self.finish(json.dumps(problem_for(status, exc)), set_content_type=PROBLEM_TYPE)

    def allowed_methods(self) -> list[str]:
        """The HTTP methods this route answers: those its handler class defines."""
        return [method for method in self.SUPPORTED_METHODS
                if getattr(type(self), method.lower(), None)
                is not getattr(web.RequestHandler, method.lower(), None)]

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, JupyterTasksError):
            self.log.debug("%s %s: %s", self.request.method, self.request.path, value)
            return
        super().log_exception(typ, value, tb)

    # ------------------------------------------------------------------ input

    def json_body(self, *, optional: bool = False) -> Any:
        """The request body as JSON; 413 over the limit, 400 when malformed."""
        body = self.request.body or b""
        limit = self.tasks_app.max_body_bytes
        if len(body) > limit:
            raise Problem(413, f"request body of {len(body)} bytes exceeds the limit of {limit}")
        if not body.strip():
            if optional:
                return None
            raise Problem(400, "the request needs a JSON body")
        try:
            value = loads_keys_once(body, parse_constant=_no_constants)
            # lone surrogates cannot be stored: refuse them here, not as a database error
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except KeyGivenTwice as exc:
            _reject([{"field": exc.field, "message": exc.reason}])
        except UnicodeEncodeError:
            where, char = _lone_surrogate(value)
            _reject([{"field": where, "message": f"holds a lone surrogate {char!r} (a \\u "
                                                 "escape of half a pair): no Unicode text"}])
        except RecursionError:
            # JSON, maybe, but past what the parser takes, and far past what is stored
            _reject([{"field": "body", "message": f"nested deeper than {MAX_DEPTH} levels"}])
        except (ValueError, UnicodeError) as exc:
            if "integer string conversion" in str(exc):  # Python's limit on int digits
                _reject([{"field": "body", "message": "holds an integer of more than "
                                                      f"{sys.get_int_max_str_digits():,} digits"}])
            raise Problem(400, f"malformed JSON body: {exc}") from None
        # well-formed but not storable (1e999 overflows to infinity, nesting too deep): 422
        check_input(value, where="body")
        return value

    def json_object(self, *, optional: bool = False) -> dict[str, Any]:
        value = self.json_body(optional=optional)
        if value is None and optional:
            return {}
        if not isinstance(value, dict):
            raise Problem(422, "the JSON body must be an object", title="Invalid request",
                          errors=[{"field": "", "message": "must be an object"}])
        return value

    def takes_no_body(self, what: str) -> None:
        """422 for a body other than none or ``{}``: ``what`` takes no fields, and a field
        dropped without a word reads as taken (a cancel's ``force``, a pause's ``paused``)."""
        _reject([{"field": field, "message": f"{what} takes no fields"}
                 for field in self.json_object(optional=True)])

    def exact_argument(self, name: str) -> str | None:
        """A query value exactly as sent (its last one), or None.

        ``get_argument`` strips spaces and turns control characters into spaces: a key
        stored with either was never found by its own filter.
        """
        values = self.request.query_arguments.get(name)
        return self.decode_argument(values[-1], name=name) if values else None

    def int_arg(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.get_argument(name, None)
        if raw is None or raw == "":
            return default
        value = query_integer(raw)
        if value is None or not low <= value <= high:
            _reject([{"field": name, "message": f"must be an integer from {low} to {high}"}],
                    "invalid query parameter")
        return value  # type: ignore[return-value]

    def float_arg(self, name: str, default: float, low: float, high: float) -> float:
        raw = self.get_argument(name, None)
        if raw is None or raw == "":
            return default
        value = query_number(raw)
        if value is None or not low <= value <= high:
            _reject([{"field": name, "message": f"must be a number from {low} to {high}"}],
                    "invalid query parameter")
        return value

    # ------------------------------------------------------------------ output

    def location(self, *parts: str) -> str:
        return url_path_join(self.base_url, "api", "tasks", *parts)

    def answer(self, status: int, body: Any, **headers: str) -> None:
        self.set_status(status)
        for key, value in headers.items():
            self.set_header(key.replace("_", "-"), value)
        # safe_dumps: a stored value too deep for json (written by something else) is cut,
        # not a 500 for every list that includes it
        self.finish(safe_dumps(body))

    async def visible(self, task_id: str, action: str = "read") -> Task:
        return await check_task_access(self, await self.manager.get(task_id), action)

    def only_query(self, *names: str) -> None:
        """422 for a query parameter this route does not take: a misspelt one was read as
        not given (``/result?timout=30`` answered at once, ``/logs?aftr=5`` from the start)."""
        _reject(self.unknown_query(frozenset(names)), "invalid query parameter")

    def unknown_query(self, known: frozenset[str]) -> list[dict[str, Any]]:
        """``query_problems`` of this request's query for a route that takes ``known``."""
        return query_problems(self.request.query_arguments, known)

    def refuse_hidden(self, parent: Task, overrides: dict[str, Any]) -> None:
        """422 for a rerun or fork of a notebook job that would read or write a hidden file
        this server does not serve (with the parameters as the fork changes them)."""
        if parent.kind != TaskKind.NOTEBOOK or self.contents_manager.allow_hidden:
            return
        spec = dict(parent.spec or {})
        if isinstance(overrides.get("parameters"), dict):
            spec["parameters"] = {**(spec.get("parameters") or {}), **overrides["parameters"]}
        refuse_hidden(spec, spec.get("root_dir") or self.root_dir)

    def origin(self) -> dict[str, Any]:
        return {"type": "rest", "remote_ip": self.request.remote_ip}

    def idempotency_header(self) -> str | None:
        """The ``Idempotency-Key`` header, stripped (422 when blank or a firing's)."""
        header = self.request.headers.get("Idempotency-Key")
        if header is None:
            return None
        header = header.strip()
        if not _NONEMPTY[0](header):
            _reject([{"field": "Idempotency-Key", "message": f"must be {_NONEMPTY[1]}"}])
        _reject(_firing_key_errors(header))
        return header

    def answer_created(self, task: Task) -> None:
        """202 and its ``Location`` for a new task; 200 for the one a key returned."""
        if was_deduplicated(task):
            self.answer(200, answer_json(task))
        else:
            self.answer(202, answer_json(task), Location=self.location(task.id))

    def submit_options(self, body: dict[str, Any]) -> dict[str, Any]:
        """Options shared by submit and execute; the Idempotency-Key header joins the body."""
        options = {k: body[k] for k in OPTION_FIELDS if body.get(k) is not None}
        header = self.idempotency_header()
        if header is not None:
            if options.get("idempotency_key") not in (None, header):
                _reject([{"field": "idempotency_key",
                          "message": "differs from the Idempotency-Key header"}])
            options["idempotency_key"] = header
        _reject(_firing_key_errors(options.get("idempotency_key")))
        url = options.get("callback_url")
        if url is not None:
            self.manager.check_callback_url(url)
        return {**options, "owner": self.user_name, "origin": self.origin()}


def query_problems(arguments: Mapping[str, list[bytes]],
                   known: frozenset[str]) -> list[dict[str, Any]]:
    """An error for each query parameter not in ``known`` (a misspelt filter read as no
    filter), for each known one given twice that takes one value (only the last was
    read), and for each value tornado would read with a control character dropped; the
    server's own parameters and JupyterLab's cache-buster (a number with no value) pass.
    The REST routes and the event stream share it."""
    errors = []
    for key, values in arguments.items():
        if key in SERVER_QUERY:
            continue  # the server's, by its rules
        if key not in known and not (key.isdigit() and values == [b""]):
            errors.append({"field": key[:100], "message": "unknown query parameter"})
        elif len(values) > 1 and key in known and key not in MULTI_VALUED_QUERY:
            errors.append({"field": key, "message": REPEATED})
        elif key not in EXACT_QUERY and any(DROPPED_CONTROLS.search(v) for v in values):
            # tornado's get_argument turns them into spaces, then strips: ?status=%00
            # was read as no status, and listed every task
            errors.append({"field": key[:100], "message": "holds a control character"})
    return errors[:20]


# taken by every route: the server's token, and the XSRF token a form may send in the query
SERVER_QUERY = frozenset({"token", "_xsrf"})
# the filters read as sent (exact_argument): identities, whatever characters they hold
EXACT_QUERY = ("name", "queue", "task_key", "key_prefix", "idempotency_key", "parent_id",
               "schedule_id")
# what tornado's get_argument replaces in a query value (its _remove_control_chars_regex)
DROPPED_CONTROLS = re.compile(rb"[\x00-\x08\x0e-\x1f]")
# the one query parameter a route reads every value of; of any other the last was read
MULTI_VALUED_QUERY = frozenset({"status", "tags"})
REPEATED = "given more than once; it takes one value"


def _lone_surrogate(value: Any) -> tuple[str, str]:
    """(path, character) of the first string or key of a decoded body holding a lone
    surrogate (a JSON \\u escape of half a pair decodes to one)."""
    for path, item in walk_fields(value):
        texts = [item] if isinstance(item, str) else item if isinstance(item, dict) else []
        for text in texts:
            if found := lone_surrogate(text):
                return path, found
    return "body", "?"


def _firing_key_errors(key: Any) -> list[dict[str, str]]:
    if not str(key or "").startswith(FIRING_KEY_PREFIX):
        return []
    return [{"field": "idempotency_key",
             "message": f"keys starting {FIRING_KEY_PREFIX!r} are kept for schedule firings"}]


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _inside(root: str, relative: str, field: str, what: str = "invalid request body") -> str:
    """``relative`` resolved under ``root``; 422 for an absolute path or one leaving the root
    (``what``: where the path came from, for the problem's title)."""
    root = os.path.realpath(root)
    if "\0" in relative or os.path.isabs(relative):
        _reject([{"field": field, "message": "must be a path relative to the server root"}],
                what)
    path = os.path.realpath(os.path.join(root, relative))
    if path != root and not path.startswith(root + os.sep):
        _reject([{"field": field, "message": "must stay inside the server root"}], what)
    return path


def parse_job_body(body: dict[str, Any], root: str, *, allow_hidden: bool = True
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(spec, options) of a ``POST /api/tasks`` body, paths resolved under ``root``; 422 if bad.

    Schedules store their job through this too, so a schedule's job is checked
    exactly as a submitted one. ``allow_hidden`` False (the server's
    ``ContentsManager.allow_hidden``): a notebook job may not read or write a hidden
    file, or one in a hidden folder, as the contents API may not.
    """
    checks = {**WORK_FIELDS, **{k: v[1] for k, v in WORK_EXTRAS.items()}, **OPTION_FIELDS}
    errors = _type_errors(body, checks)
    present = [f for f in WORK_FIELDS if body.get(f) is not None]
    if len(present) != 1:
        errors.append({"field": ",".join(present) or "name",
                       "message": "give exactly one of name, command, notebook, code"})
    else:
        errors += [{"field": k, "message": f"only goes with {owner_field}"}
                   for k, (owner_field, _) in WORK_EXTRAS.items()
                   if body.get(k) is not None and owner_field != present[0]]
    if body.get("name") is not None:  # said here for schedules too, not at each firing
        errors += memory_limit_errors("function", body.get("memory_limit_mb"))
    _reject(errors)
    spec = {k: body[k] for k in (*WORK_FIELDS, *WORK_EXTRAS) if body.get(k) is not None}
    if "cwd" in spec:
        spec["cwd"] = _inside(root, spec["cwd"], "cwd")
    if "notebook" in spec:
        _inside(root, spec["notebook"], "notebook")
        spec["root_dir"] = root
        if not allow_hidden:
            # before: the contents API answered 404 for .private/keys.ipynb, and
            # notebook-parameters too, while a job ran it and wrote beside it
            refuse_hidden(spec, root)
    return spec, {k: body[k] for k in OPTION_FIELDS if body.get(k) is not None}


def refuse_hidden(spec: dict[str, Any], root: str) -> None:
    """422 if a notebook job's notebook or ``output_path`` names a hidden file or folder
    under ``root``; the output as a run fills it in, as a parameter (``{label}`` given
    ``.x``) or a date format (``{date:.%Y}``) can make a name start with a dot."""
    fields = [field for field in ("notebook", "output_path")
              if isinstance(spec.get(field), str) and _hidden_under(root, spec[field])]
    template = spec.get("output_path")
    if isinstance(template, str) and "output_path" not in fields:
        try:
            # by the names given, as the contents API and the notebook's check judge them
            # (a link to a hidden folder is served by its own name)
            filled = render_output_path(
                template, root_dir=root, task_id=PLACEHOLDER_TASK_ID,
                date=datetime.date.today(), parameters=spec.get("parameters") or {},
                resolve=False)
        except InvalidRequest:  # said by the job's own check of its output_path
            filled = None
        if filled is not None and _hidden_under(root, os.path.relpath(
                filled, os.path.realpath(root))):
            fields.append("output_path")
    _reject([{"field": field, "message": "names a hidden file or folder, which this server "
              "does not serve (ContentsManager.allow_hidden)"} for field in fields])


# what a notebook job's {id} is filled with when its output_path is checked before it exists
PLACEHOLDER_TASK_ID = "0" * 32


def _hidden_under(root: str, relative: str) -> bool:
    """Whether ``relative`` names a hidden file or folder under ``root``, as the contents
    API judges it (jupyter_core's ``is_hidden``); a path leaving the root is refused apart."""
    real_root = os.path.realpath(root)
    try:
        return is_hidden(os.path.join(real_root, relative), real_root)
    except ValueError:  # outside the root (an output_path's "../x"): said by its own check
        return False
    except OSError:
        # no file can be there (a name too long, a file taken for a folder, a symlink
        # loop): said by the job's own checks, not a 500 here
        return False


# the helpers above, for the schedule handlers' module
reject = _reject
inside_root = _inside
hidden_under = _hidden_under


# ====================================================================== tasks


# what a list may be asked with; a misspelt filter (?stauts=failed) ignored listed every
# task as if it matched. ``token``: the server's auth takes it from the query too; and a
# bare number is the cache buster JupyterLab's ServerConnection adds (``?1796593387127``)
LIST_QUERY = frozenset({"status", "kind", "search", "sort", "order", "limit", "cursor", "owner",
                        "name", "queue", "task_key", "key_prefix", "idempotency_key",
                        "parent_id", "schedule_id"})


class TaskCollectionHandler(TasksHandler):
    """``GET /api/tasks`` (list) and ``POST /api/tasks`` (submit a job)."""

    @web.authenticated
    @authorized("read")
    async def get(self) -> None:
        # each once: a status repeated 501 times was 501 parts of one SQL compound (a 500)
        statuses = list(dict.fromkeys(
            s for raw in self.get_arguments("status") for s in raw.split(",") if s))
        errors = self.unknown_query(LIST_QUERY)
        errors += [{"field": "status", "message": f"unknown status {s!r}"}
                   for s in statuses if s not in STATUS_VALUES]
        kind = self.get_argument("kind", None)
        if kind is not None and kind not in KIND_VALUES:
            errors.append({"field": "kind", "message": f"unknown kind {kind!r}"})
        search = self.get_argument("search", None)
        if search is not None and len(search) > MAX_SEARCH_CHARS:
            errors.append({"field": "search",
                           "message": f"at most {MAX_SEARCH_CHARS} characters"})
        sort = self.get_argument("sort", "created")
        if sort not in LIST_SORTS:
            errors.append({"field": "sort", "message": f"must be one of {', '.join(LIST_SORTS)}"})
        # newest/oldest: the names this parameter had before sort existed
        order = self.get_argument("order", None)
        order = {"newest": "desc", "oldest": "asc"}.get(order or "", order)
        if order is not None and order not in ("asc", "desc"):
            errors.append({"field": "order", "message": "must be 'asc' or 'desc'"})
        _reject(errors, "invalid query parameter")
        limit = self.int_arg("limit", 50, 1, MAX_LIMIT)
        owners = await owners_filter(self)
        owner = self.get_argument("owner", None)
        if owner is not None:
            owners = [owner] if owners is None or owner in owners else []
        # identities as stored; the search is text typed in a box, its ends trimmed
        filters = {key: self.exact_argument(key) for key in EXACT_QUERY}
        filters["search"] = self.get_argument("search", None)
        page = await self.manager.store.page_tasks(
            sort=sort, order=order, cursor=self.get_argument("cursor", None) or None,
            limit=limit, statuses=statuses or None, kind=kind, owners=owners, **filters)
        if page.stored_chars <= LARGE_PAGE_CHARS:
            self.answer(200, {"tasks": [t.to_json() for t in page.tasks],
                              "next_cursor": page.next_cursor})
            return

        def body() -> str:
            # a task at a time: one dumps of the whole page holds the GIL, and so the
            # loop waiting for it, as long as encoding it all on the loop did
            tasks = ", ".join(safe_dumps(t.to_json()) for t in page.tasks)
            return f'{{"tasks": [{tasks}], "next_cursor": {json.dumps(page.next_cursor)}}}'

        # a large page is encoded off the loop, as the store decoded it
        self.finish(await self.manager.store.off_loop(body))

    @web.authenticated
    @authorized("execute")
    async def post(self) -> None:
        # a submit takes its options in the body: a query's idempotency_key was dropped,
        # and each repeat made a task of its own
        self.only_query()
        body = self.json_object()
        # before its paths are looked at: a user who may not run the work must not learn
        # from a 422 which of the server's paths are links, hidden or missing
        await check_may_run(self, *work_resource(body))
        await check_may_call_back(self, body.get("callback_url"))
        spec, _ = parse_job_body(body, self.root_dir,
                                 allow_hidden=self.contents_manager.allow_hidden)
        task = await self.manager.submit_spec(spec, mode=TaskMode.JOB.value,
                                              **self.submit_options(body))
        self.answer_created(task)


class TaskItemHandler(TasksHandler):
    """``GET /api/tasks/{id}`` (``?view=full``) and ``DELETE``."""

    @web.authenticated
    @authorized("read")
    async def get(self, task_id: str) -> None:
        self.only_query("view")
        view = self.get_argument("view", "default")
        if view not in ("default", "full"):
            _reject([{"field": "view", "message": "must be 'full' or omitted"}],
                    "invalid query parameter")
        task = await self.visible(task_id)
        data = task.to_json(full=view == "full")
        if view == "full":
            store = self.manager.store
            data["artifacts"] = [a.to_json() for a in await store.list_artifacts(task.id)]
            workers = {w.id: w for w in await store.list_workers(include_stopped=True)}
            worker = workers.get(task.worker_id or "")
            data["worker"] = worker.to_json() if worker else None
            # only those the user may see (an admin's fork of my task is not mine to read)
            owners = await owners_filter(self)
            data["children"] = [c.to_json() for c in await store.children(task.id)
                                if owners is None or c.owner in owners]
        self.answer(200, data)

    @web.authenticated
    @authorized("write")
    async def delete(self, task_id: str) -> None:
        self.only_query()
        await self.visible(task_id, "write")
        await self.manager.delete(task_id)
        self.set_status(204)
        self.finish()


class TaskResultHandler(TasksHandler):
    """``GET /api/tasks/{id}/result?timeout=S``: long-poll for the end."""

    @web.authenticated
    @authorized("read")
    async def get(self, task_id: str) -> None:
        self.only_query("timeout")
        timeout = self.float_arg("timeout", 0.0, 0.0, MAX_RESULT_WAIT)
        await self.visible(task_id)
        task = await self.wait_for_end(task_id, timeout)
        if task is None:
            return
        if task.is_terminal:
            self.answer(200, {"id": task.id, "status": task.status, "result": task.result,
                              "error": task.error})
        else:
            self.answer(202, task.to_json())


class TaskLogsHandler(TasksHandler):
    """``GET /api/tasks/{id}/logs?after=SEQ&limit=N``."""

    @web.authenticated
    @authorized("read")
    async def get(self, task_id: str) -> None:
        self.only_query("after", "limit")
        after = self.int_arg("after", 0, 0, MAX_EVENT_ID)
        limit = self.int_arg("limit", 1000, 1, 10_000)
        await self.visible(task_id)
        entries = await self.manager.store.get_logs(task_id, after, limit)
        self.answer(200, {"entries": [e.to_json() for e in entries],
                          "next": entries[-1].seq if entries else after})


class TaskCancelHandler(TasksHandler):
    """``POST /api/tasks/{id}/cancel``."""

    @web.authenticated
    @authorized("write")
    async def post(self, task_id: str) -> None:
        self.only_query()
        self.takes_no_body("a cancel")
        await self.visible(task_id, "write")
        task = await self.manager.cancel(task_id)
        self.answer(202, task.to_json())


class TaskRerunHandler(TasksHandler):
    """``POST /api/tasks/{id}/rerun``: the same spec as a new task."""

    @web.authenticated
    @authorized("write")
    async def post(self, task_id: str) -> None:
        self.only_query()
        # the same spec: changes asked for here would be dropped without a word
        changes = self.json_object(optional=True)
        _reject([{"field": field, "message": "a rerun takes no changes"} for field in changes],
                "a rerun runs the same spec again; to change it, POST "
                f"/api/tasks/{task_id}/fork with the changes")
        key = self.idempotency_header()
        parent = await self.visible(task_id, "write")
        await check_may_run(self, KIND_RESOURCES.get(parent.kind), f"{parent.kind} work")
        self.refuse_hidden(parent, {})
        task = await self.manager.rerun(task_id, owner=self.user_name, origin=self.origin(),
                                        idempotency_key=key)
        self.answer_created(task)


class TaskForkHandler(TasksHandler):
    """``POST /api/tasks/{id}/fork``: the spec with overrides."""

    @web.authenticated
    @authorized("write")
    async def post(self, task_id: str) -> None:
        self.only_query()
        overrides = self.json_object(optional=True)
        _reject(_type_errors(overrides, FORK_FIELDS), "invalid overrides")
        key = self.idempotency_header()
        parent = await self.visible(task_id, "write")
        await check_may_run(self, KIND_RESOURCES.get(parent.kind), f"{parent.kind} work")
        overrides = {k: v for k, v in overrides.items() if v is not None}
        self.refuse_hidden(parent, overrides)
        task = await self.manager.fork(task_id, overrides, owner=self.user_name,
                                       origin=self.origin(), idempotency_key=key)
        self.answer_created(task)


class TaskConfirmHandler(TasksHandler):
    """``POST /api/tasks/{id}/confirm`` with ``{"answer": "...", "asked_at": T}``."""

    @web.authenticated
    @authorized("write")
    async def post(self, task_id: str) -> None:
        self.only_query()
        body = self.json_object()
        errors = _type_errors(body, {"answer": _STR, "asked_at": _NUMBER})
        if not isinstance(body.get("answer"), str):
            errors.append({"field": "answer", "message": "a string answer is required"})
        _reject(errors)
        await self.visible(task_id, "write")
        task = await self.manager.confirm(task_id, body["answer"], body.get("asked_at"))
        self.answer(200, task.to_json())


# ================================================================== artifacts


class ArtifactListHandler(TasksHandler):
    """``GET /api/tasks/{id}/artifacts``."""

    @web.authenticated
    @authorized("read")
    async def get(self, task_id: str) -> None:
        self.only_query()
        await self.visible(task_id)
        artifacts = await self.manager.store.list_artifacts(task_id)
        self.answer(200, [a.to_json() for a in artifacts])


class ArtifactHandler(TasksHandler):
    """``GET``/``HEAD /api/tasks/{id}/artifacts/{name}`` with ETag and If-None-Match."""

    @property
    def content_security_policy(self) -> str:
        # an HTML or SVG artifact opened in a tab is a page of the server's origin: no
        # script runs there already (default-src 'none'), and sandboxed, no form posts
        # from it either, and it is an origin of its own
        return f"{super().content_security_policy}; sandbox"

    async def _artifact(self, task_id: str, name: str) -> tuple[Any, str]:
        """(file to send or None for a 304, its content type); headers set."""
        if not valid_artifact_name(name):
            raise Problem(400, "an artifact name is a plain file name (no '/', no '..')")
        await self.visible(task_id)
        artifact = await self.manager.store.get_artifact(task_id, name)
        path = self.manager.store.artifact_path(artifact) if artifact else None
        if artifact is None or path is None or not path.is_file():
            raise Problem(404, f"task {task_id} has no artifact named {name!r}")
        etag = f'"{artifact.sha256}"'
        # a type stored before types were checked (one with a line break made every
        # download a 500) is sent as plain bytes
        content_type = artifact.content_type if valid_artifact_content_type(
            artifact.content_type) else "application/octet-stream"
        self.set_header("ETag", etag)
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "private, no-cache")
        if _etag_matches(self.request.headers.get("If-None-Match"), artifact.sha256):
            self.set_status(304)
            return None, content_type
        self.set_header("Content-Length", str(artifact.size))
        return path, content_type

    @web.authenticated
    @authorized("read")
    async def get(self, task_id: str, name: str) -> None:
        self.only_query()
        # jupyter_server's finish() sets a JSON content type unless told the artifact's
        path, content_type = await self._artifact(task_id, name)
        if path is None:
            self.finish(set_content_type=content_type)
            return
        with open(path, "rb") as f:
            while chunk := f.read(256 * 1024):
                self.write(chunk)
                await self.flush()
        self.finish(set_content_type=content_type)

    @web.authenticated
    @authorized("read")
    async def head(self, task_id: str, name: str) -> None:
        self.only_query()
        _path, content_type = await self._artifact(task_id, name)
        self.finish(set_content_type=content_type)


def _etag_matches(header: str | None, sha256: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    tags = [t.strip() for t in header.split(",")]
    return any(t.removeprefix("W/").strip('"') == sha256 for t in tags)


# =================================================================== registry


class RegistryListHandler(TasksHandler):
    """``GET /api/tasks/registry?tags=a,b``."""

    @web.authenticated
    @authorized("read")
    async def get(self) -> None:
        self.only_query("tags")
        tags = [t.strip() for raw in self.get_arguments("tags") for t in raw.split(",")
                if t.strip()]
        self.answer(200, [info.to_json() for info in self.manager.registry.list_by_tags(tags)])


class RegistryItemHandler(TasksHandler):
    """``GET /api/tasks/registry/{name}``."""

    @web.authenticated
    @authorized("read")
    async def get(self, name: str) -> None:
        self.only_query()
        self.answer(200, self.manager.registry.get_info(name).to_json())


class RegistryExecuteHandler(TasksHandler):
    """``POST /api/tasks/registry/{name}/execute``: synchronous unless ``Prefer: respond-async``."""

    @web.authenticated
    @authorized("execute")
    async def post(self, name: str) -> None:
        self.only_query()
        body = self.json_object(optional=True)
        _reject(_type_errors(body, {"params": _OBJ, **OPTION_FIELDS}))
        respond_async, wait = _parse_prefer(self.request.headers.get_list("Prefer"))
        await check_may_call_back(self, body.get("callback_url"))
        info = self.manager.registry.get_info(name)
        # registered sync/background functions run here, beside the request; jobs queue
        mode = TaskMode.JOB.value if info.mode == TaskMode.JOB.value else \
            TaskMode.BACKGROUND.value
        task = await self.manager.submit_spec(
            {"name": name, "params": body.get("params") or {}}, mode=mode,
            **self.submit_options(body))
        headers = {"X-Task-Id": task.id}
        if not (respond_async and wait is None):
            waited = await self.wait_for_end(task.id, wait)
            if waited is None:
                return
            task = waited
        if task.is_terminal:
            self.answer(200, {"task_id": task.id, "task_name": task.name, "params": task.params,
                              "status": task.status, "result": task.result,
                              "error": task.error}, **headers)
        else:
            # the preferences honoured, as asked (RFC 7240): a wait alone that ran out is
            # answered 202 too, but respond-async was not asked for then
            applied = [*(["respond-async"] if respond_async else []),
                       *([f"wait={wait:g}"] if wait is not None else [])]
            if applied:
                headers["Preference-Applied"] = ", ".join(applied)
            self.answer(202, task.to_json(), Location=self.location(task.id), **headers)


def _current_task_cancelling() -> bool:
    """Whether the coroutine running now was itself cancelled (not just what it awaited)."""
    current = asyncio.current_task()
    cancelling = getattr(current, "cancelling", None)  # Python 3.11 on
    return cancelling is not None and cancelling() > 0


def _parse_prefer(values: list[str]) -> tuple[bool, float | None]:
    """(respond-async asked, wait seconds or None) from RFC 7240 ``Prefer`` headers."""
    respond_async = False
    wait: float | None = None
    for value in values:
        for pref in value.split(","):
            token, _, arg = pref.split(";")[0].strip().partition("=")
            token = token.strip().lower()
            if token == "respond-async":
                respond_async = True
            elif token == "wait":
                try:
                    seconds = float(arg.strip().strip('"'))
                except ValueError:
                    continue
                if math.isfinite(seconds) and seconds >= 0:
                    wait = min(seconds, 3600.0)
    return respond_async, wait


# ===================================================================== others


class StatsHandler(TasksHandler):
    """``GET /api/tasks/stats``."""

    @web.authenticated
    @authorized("read")
    async def get(self) -> None:
        self.only_query()
        store = self.manager.store
        stats = await store.stats(await owners_filter(self))
        live = live_workers(await store.list_workers(), self.manager.config.lease_seconds)
        # every live worker's slots (this server's and separate worker processes'); this
        # server's configuration for a queue no worker row counts (rows of older versions)
        capacity = dict(self.tasks_app.workers)
        capacity.update(slots_by_queue(live))
        queues = {q: {"queued": 0, "running": 0} for q in capacity}
        queues.update(stats["queues"])
        for name, counts in queues.items():
            counts["max_workers"] = capacity.get(name, 0)
        workers = [w.to_json() for w in live]
        self.answer(200, {"queues": queues, "statuses": stats["statuses"], "workers": workers})


class MeHandler(TasksHandler):
    """``GET /api/tasks/me``: who the server takes the caller for.

    ``owner`` is the name this server stores as ``owner`` of the caller's tasks (with a
    shared token that is the account running the server, not the random name the
    token's session gets); ``root_dir`` is the server root, which turns the absolute
    notebook paths kernels record in ``origin.notebook`` into the paths a frontend uses.
    """

    @web.authenticated
    @authorized("read")
    async def get(self) -> None:
        self.only_query()
        self.answer(200, {"owner": self.user_name, "root_dir": self.root_dir,
                          "sees_others": await may(self, "read", OTHERS)})


class OpenAPIHandler(TasksHandler):
    """``GET /api/tasks/openapi.json``."""

    @web.authenticated
    @authorized("read")
    async def get(self) -> None:
        self.only_query()
        self.answer(200, openapi_document(self.base_url))


# what may follow a task id in a route, and the routes that are no task id
TASK_ACTIONS = frozenset({"", "result", "logs", "cancel", "rerun", "fork", "confirm",
                          "artifacts"})
TOP_LEVEL_ROUTES = frozenset({"registry", "stats", "me", "openapi.json", "events", "schedules"})


class NotFoundHandler(TasksHandler):
    """Anything else under ``/api/tasks``: a problem+json 404, never an HTML page."""

    async def _missing(self, *args: Any) -> None:
        rest = self.path_args[0] if self.path_args else ""
        first, _, action = rest.partition("/")
        if ID_RE.fullmatch(first) and rest.endswith("/"):
            raise Problem(404, f"no route ends with '/': use {self.request.path.rstrip('/')} "
                               "without the trailing '/'")
        if ID_RE.fullmatch(first.lower()) and action in TASK_ACTIONS:
            raise Problem(404, f"no task with id {first!r}: task ids are lowercase: "
                               f"{first.lower()}", title="Task not found")
        if first and "/" not in action and action in TASK_ACTIONS \
                and first not in TOP_LEVEL_ROUTES:
            # an id cut short (the views show its last 10 characters) or mistyped: the same
            # answer as for an unknown full id, not a route the client got wrong
            raise Problem(404, f"no task with id {first!r}: a task id is 32 hexadecimal "
                               "characters (the panel, dashboard and CLI show its last 10)",
                          title="Task not found")
        raise Problem(404, f"no such route: {self.request.path}")

    @web.authenticated
    async def get(self, *args: Any) -> None:
        await self._missing()

    post = put = patch = delete = head = get
