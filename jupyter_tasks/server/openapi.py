"""The OpenAPI 3.0 document of every route, at ``/api/tasks/openapi.json`` (docs/reference)."""

from __future__ import annotations

import copy
from typing import Any

from .._version import __version__
from ..models import SCHEDULE_CHANGED, TASK_ID_PATTERN, TASK_JSON, EventType
from ..schedules import MAX_CRON_CHARS
from ..store import ARTIFACT_NAME, LIST_SORTS

ID_PATTERN = TASK_ID_PATTERN
JSON = "application/json"
PROBLEM = "application/problem+json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


_STRING = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}
_OBJECT = {"type": "object", "additionalProperties": True}
_ANY: dict[str, Any] = {"nullable": True}

# the task JSON's fields and their schemas are defined once, in models.TASK_JSON
TASK_PROPERTIES: dict[str, Any] = {f.key: f.schema for f in TASK_JSON if not f.full}
TASK_FULL_PROPERTIES: dict[str, Any] = {f.key: f.schema for f in TASK_JSON if f.full}

WORK = {
    "name": {"type": "string", "minLength": 1, "maxLength": 1000,
             "description": "a registered task"},
    "params": {"type": "object", "description": "parameters of the registered task"},
    "command": {"type": "array", "minItems": 1, "items": _STRING,
                "description": "argv of a subprocess (never a shell string)"},
    "cwd": {"type": "string", "description": "relative to the server root"},
    "env": {"type": "object", "additionalProperties": _STRING},
    "notebook": {"type": "string", "minLength": 1, "maxLength": 1000,
                 "description": "notebook path relative to the server root"},
    "parameters": {"type": "object"},
    "output_path": {"type": "string", "minLength": 1, "maxLength": 1000,
                    "description": "with notebook: also write the executed notebook here, "
                                   "inside the server root; {id}, {date} and parameter names "
                                   "are filled in"},
    "export_html": {"type": "boolean",
                    "description": "with notebook: also export the executed notebook as HTML "
                                   "(an artifact, and beside output_path when given)"},
    "kernel_name": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,255}$",
                    "description": "with notebook: the kernel to run it with instead of "
                                   "the notebook's kernelspec"},
    "code": {"type": "string", "minLength": 1,
             "description": "Python source, as long as a cell (the body's size bounds it)"},
    "input_data": {},
}

OPTIONS = {
    "label": {"type": "string", "minLength": 1, "maxLength": 1000},
    "task_key": {"type": "string", "minLength": 1, "maxLength": 1000},
    "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 1000},
    "queue": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,100}$"},
    "priority": {"type": "integer", "minimum": -1000000, "maximum": 1000000},
    "timeout": {"type": "number", "exclusiveMinimum": True, "minimum": 0, "maximum": 1e9},
    "max_retries": {"type": "integer", "minimum": 0, "maximum": 100},
    "memory_limit_mb": {"type": "integer", "minimum": 1, "maximum": 10000000},
    "callback_url": {"type": "string", "minLength": 1, "maxLength": 1000, "format": "uri",
                     "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[!-~]+$",
                     "description": "an http(s) URL whose host is on the server's allow-list"},
}

SCHEMAS: dict[str, Any] = {
    "Task": {
        "type": "object",
        "required": list(TASK_PROPERTIES),
        "properties": {**TASK_PROPERTIES, "deduplicated": {"type": "boolean"}},
    },
    "TaskFull": {
        "allOf": [_ref("Task"), {"type": "object", "properties": {
            **TASK_FULL_PROPERTIES,
            # added by GET /api/tasks/{task_id}?view=full beside the task's own fields
            "artifacts": {"type": "array", "items": _ref("Artifact")},
            "worker": _nullable(_ref("Worker")),
            "children": {"type": "array", "items": _ref("Task")},
        }, "required": [*TASK_FULL_PROPERTIES, "artifacts", "worker", "children"]}],
    },
    "TaskList": {
        "type": "object", "required": ["tasks", "next_cursor"],
        "properties": {"tasks": {"type": "array", "items": _ref("Task")},
                       "next_cursor": _nullable(_STRING)},
    },
    "Submission": {
        "type": "object", "additionalProperties": False,
        "description": "exactly one of name, command, notebook, code; params goes with name, "
                       "cwd and env with command, parameters with notebook, input_data with code",
        "properties": {**WORK, **OPTIONS},
        "oneOf": [{"required": [f]} for f in ("name", "command", "notebook", "code")],
    },
    "Execution": {
        "type": "object", "additionalProperties": False,
        "properties": {"params": {"type": "object"}, **OPTIONS},
    },
    "Forking": {
        "type": "object", "additionalProperties": False,
        "description": "overrides that fit the task's kind",
        "properties": {k: WORK[k] for k in ("params", "code", "command", "parameters",
                                            "input_data")} | {"label": OPTIONS["label"]},
    },
    "Answer": {
        "type": "object", "additionalProperties": False, "required": ["answer"],
        "properties": {"answer": _STRING,
                       "asked_at": {"type": "number",
                                    "description": "the question's asked_at: 409 when the "
                                                   "task no longer asks that question"}},
    },
    "Result": {
        "type": "object", "required": ["id", "status", "result", "error"],
        "properties": {"id": TASK_PROPERTIES["id"], "status": TASK_PROPERTIES["status"],
                       "result": _ANY, "error": _nullable(_OBJECT)},
    },
    "ExecuteResult": {
        "type": "object",
        "required": ["task_id", "task_name", "params", "status", "result", "error"],
        "properties": {"task_id": TASK_PROPERTIES["id"], "task_name": _nullable(_STRING),
                       "params": _ANY, "status": TASK_PROPERTIES["status"], "result": _ANY,
                       "error": _nullable(_OBJECT)},
    },
    "Logs": {
        "type": "object", "required": ["entries", "next"],
        "properties": {
            "entries": {"type": "array", "items": {
                "type": "object", "required": ["seq", "ts", "stream", "text"],
                "properties": {"seq": {"type": "integer"}, "ts": _TIME, "stream": _STRING,
                               "text": _STRING}}},
            "next": {"type": "integer", "minimum": 0},
        },
    },
    "Artifact": {
        "type": "object", "required": ["name", "size", "sha256", "content_type"],
        "properties": {"name": {"type": "string", "pattern": ARTIFACT_NAME.pattern},
                       "size": {"type": "integer", "minimum": 0},
                       "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                       "content_type": _STRING, "created_at": _nullable(_TIME)},
    },
    "TaskInfo": {
        "type": "object",
        "required": ["name", "docstring", "signature", "parameters", "tags", "mode",
                     "params_schema"],
        "properties": {
            "name": _STRING, "docstring": _STRING, "signature": _STRING,
            "parameters": {"type": "array", "items": {
                "type": "object", "required": ["name", "annotation", "default", "required"],
                "properties": {"name": _STRING, "annotation": _nullable(_STRING),
                               "default": _ANY, "required": {"type": "boolean"}}}},
            "tags": {"type": "array", "items": _STRING},
            "mode": TASK_PROPERTIES["mode"],
            "params_schema": _OBJECT,
        },
    },
    "Worker": {
        "type": "object", "required": ["id", "kind", "pid", "host", "heartbeat_at"],
        "properties": {"id": _STRING, "kind": _STRING, "pid": {"type": "integer"},
                       "host": _STRING, "heartbeat_at": _TIME,
                       "queues": {"type": "array", "items": _STRING}},
    },
    "Stats": {
        "type": "object", "required": ["queues", "statuses", "workers"],
        "properties": {
            "queues": {
                "type": "object",
                "description": "the queues this server or a live worker serves, and any "
                               "other that holds queued or running tasks",
                "additionalProperties": {
                    "type": "object", "required": ["queued", "running", "max_workers"],
                    "properties": {"queued": {"type": "integer"},
                                   "running": {"type": "integer"},
                                   "max_workers": {
                                       "type": "integer",
                                       "description": "how many of the queue's jobs run at "
                                                      "once: the slots of every live worker "
                                                      "serving it (worker processes included); "
                                                      "0 when none does"}}}},
            "statuses": {"type": "object", "additionalProperties": {"type": "integer"}},
            "workers": {"type": "array", "items": _ref("Worker")},
        },
    },
    "Me": {
        "type": "object", "required": ["owner", "root_dir", "sees_others"],
        "properties": {
            "owner": {**_STRING, "description": "the owner name stored on this user's tasks"},
            "root_dir": {**_STRING, "description": "absolute server root; origin.notebook "
                                                   "paths are relative to it in the frontend"},
            "sees_others": {"type": "boolean",
                            "description": "whether other users' tasks are visible"},
        },
    },
    "Event": {
        "type": "object", "required": ["id", "type", "task_id", "ts", "task"],
        "description": "a task event, or a schedule.changed event (task_id and task null, "
                       "schedule_id and schedule set; schedule null once deleted)",
        "properties": {"id": {"type": "integer"},
                       "type": {"type": "string",
                                "enum": [*(e.value for e in EventType), SCHEDULE_CHANGED]},
                       "task_id": _nullable(TASK_PROPERTIES["id"]), "ts": _TIME,
                       "task": _nullable(_ref("Task")),
                       "schedule_id": {"type": "string", "pattern": ID_PATTERN},
                       "schedule": _nullable(_ref("Schedule"))},
    },
    "Problem": {
        "type": "object", "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": _STRING, "title": _STRING, "status": {"type": "integer"},
            "detail": _STRING,
            "errors": {"type": "array", "items": {"type": "object", "properties": {
                "field": _nullable(_STRING), "message": _STRING}}},
        },
    },
}

_PROBLEM_TEXT = {
    400: "malformed request (bad JSON, bad artifact name)",
    401: "not authenticated",
    403: "not authenticated or not authorized",
    404: "no such task, name or route (or not yours)",
    409: "conflict with the task's state or an earlier idempotency key",
    413: "request body larger than the configured limit",
    422: "invalid parameters or fields; one entry per problem in errors",
}


def _problems(*codes: int) -> dict[str, Any]:
    # every route answers 422 for a query parameter it does not take (or one given twice)
    return {str(code): {"description": _PROBLEM_TEXT[code],
                        "content": {PROBLEM: {"schema": _ref("Problem")}}}
            for code in sorted({401, 403, 422, *codes})}


def _json(description: str, schema: dict[str, Any],
          headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _body(schema: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": _ref(schema)}}}


_HEADER = {"schema": _STRING}
_ID_PARAM = {"name": "task_id", "in": "path", "required": True,
             "schema": {"type": "string", "pattern": ID_PATTERN}}
_NAME_PARAM = {"name": "name", "in": "path", "required": True,
               "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"}}
# the body's idempotency_key, given as a header (the same rules)
_IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
                "schema": OPTIONS["idempotency_key"]}


def _query(name: str, schema: dict[str, Any], description: str = "",
           **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description, **extra}


PATHS: dict[str, Any] = {
    "/api/tasks": {
        "get": {
            "operationId": "listTasks", "summary": "List tasks, newest first or by a column",
            "parameters": [
                _query("status", {"type": "array", "items": TASK_PROPERTIES["status"]},
                       "repeatable", style="form", explode=True),
                _query("name", _STRING), _query("kind", TASK_PROPERTIES["kind"]),
                _query("owner", _STRING), _query("queue", _STRING), _query("task_key", _STRING),
                _query("key_prefix", _STRING), _query("idempotency_key", _STRING),
                _query("parent_id", _STRING),
                _query("schedule_id", _STRING, "the firings of one schedule"),
                _query("search", {"type": "string", "maxLength": 1000},
                       "text in the label or name, or an id prefix"),
                _query("sort", {"type": "string", "enum": list(LIST_SORTS),
                                "default": "created"},
                       "the column to sort by, over every matching task: created (id "
                       "order), label (else name, else kind; ASCII case-insensitive), owner, "
                       "origin (the notebook path, else the origin type), status (running, "
                       "queued, then finished), progress (current/total; succeeded without "
                       "total counts as 1, else -1), duration (running tasks up to the "
                       "first page's time; not started: -1), started, finished (unset: -1), "
                       "priority. Ties go newest first."),
                _query("order", {"type": "string", "enum": ["asc", "desc", "newest", "oldest"]},
                       "asc or desc; default desc for sort=created, else asc "
                       "(newest and oldest: desc and asc of sort=created)"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 500,
                                 "default": 50}),
                _query("cursor", _STRING,
                       "next_cursor of the previous page, with the same sort and order "
                       "(opaque; a task id for sort=created)"),
            ],
            "responses": {"200": _json("a page of tasks", _ref("TaskList")), **_problems(422)},
        },
        "post": {
            "operationId": "submitTask", "summary": "Submit a job",
            "parameters": [_IDEMPOTENCY],
            "requestBody": _body("Submission"),
            "responses": {
                "200": _json("an existing task (active task_key or same idempotent payload)",
                             _ref("Task")),
                "202": _json("accepted", _ref("Task"), {"Location": _HEADER}),
                **_problems(400, 404, 409, 413, 422),
            },
        },
    },
    "/api/tasks/{task_id}": {
        "parameters": [_ID_PARAM],
        "get": {
            "operationId": "getTask",
            "parameters": [_query("view", {"type": "string", "enum": ["full"]})],
            # a TaskFull (view=full) is a Task with more fields, so anyOf, not oneOf
            "responses": {"200": _json("the task", {"anyOf": [_ref("TaskFull"), _ref("Task")]}),
                          **_problems(404, 422)},
        },
        "delete": {
            "operationId": "deleteTask", "summary": "Forget a finished task",
            "description": "Its row, logs, artifacts and stored events go; one task.deleted "
                           "event names it, without its params, result or error.",
            "responses": {"204": {"description": "deleted"}, **_problems(404, 409)},
        },
    },
    "/api/tasks/{task_id}/result": {
        "parameters": [_ID_PARAM],
        "get": {
            "operationId": "getResult", "summary": "Wait up to timeout seconds for the end",
            "parameters": [_query("timeout", {"type": "number", "minimum": 0, "maximum": 300})],
            "responses": {"200": _json("terminal", _ref("Result")),
                          "202": _json("still active", _ref("Task")), **_problems(404, 422)},
        },
    },
    "/api/tasks/{task_id}/logs": {
        "parameters": [_ID_PARAM],
        "get": {
            "operationId": "getLogs",
            "parameters": [_query("after", {"type": "integer", "minimum": 0, "maximum": 2**62}),
                           _query("limit", {"type": "integer", "minimum": 1,
                                            "maximum": 10000})],
            "responses": {"200": _json("log entries after the sequence number", _ref("Logs")),
                          **_problems(404, 422)},
        },
    },
    "/api/tasks/{task_id}/cancel": {
        "parameters": [_ID_PARAM],
        "post": {"operationId": "cancelTask",
                 "responses": {"202": _json("cancel requested or done", _ref("Task")),
                               **_problems(400, 404, 409, 413)}},
    },
    "/api/tasks/{task_id}/rerun": {
        "parameters": [_ID_PARAM],
        "post": {"operationId": "rerunTask",
                 "description": "The same spec again, with the task's task_key: while a run "
                                "of that key is queued or running, that run is the answer "
                                "(200). No body, or an empty object: a body with changes is "
                                "refused (422); fork changes the spec.",
                 "parameters": [_IDEMPOTENCY],
                 "responses": {"200": _json("an existing task (the key's active run, or "
                                            "this rerun with this idempotency key)",
                                            _ref("Task")),
                               "202": _json("the new task", _ref("Task"),
                                            {"Location": _HEADER}),
                               **_problems(400, 404, 409, 413, 422)}},
    },
    "/api/tasks/{task_id}/fork": {
        "parameters": [_ID_PARAM],
        "post": {"operationId": "forkTask", "requestBody": _body("Forking", required=False),
                 "description": "The spec with overrides, as other work: without the "
                                "task's task_key.",
                 "parameters": [_IDEMPOTENCY],
                 "responses": {"200": _json("the task made by this fork with this "
                                            "idempotency key", _ref("Task")),
                               "202": _json("the new task", _ref("Task"),
                                            {"Location": _HEADER}),
                               **_problems(400, 404, 409, 413, 422)}},
    },
    "/api/tasks/{task_id}/confirm": {
        "parameters": [_ID_PARAM],
        "post": {"operationId": "confirmTask", "requestBody": _body("Answer"),
                 "responses": {"200": _json("answered", _ref("Task")),
                               **_problems(400, 404, 409, 413, 422)}},
    },
    "/api/tasks/{task_id}/artifacts": {
        "parameters": [_ID_PARAM],
        "get": {"operationId": "listArtifacts",
                "responses": {"200": _json("artifacts",
                                           {"type": "array", "items": _ref("Artifact")}),
                              **_problems(404)}},
    },
    "/api/tasks/{task_id}/artifacts/{name}": {
        "parameters": [_ID_PARAM, {"name": "name", "in": "path", "required": True,
                                   "schema": {"type": "string",
                                              "pattern": ARTIFACT_NAME.pattern}}],
        "get": {
            "operationId": "getArtifact",
            "parameters": [{"name": "If-None-Match", "in": "header", "required": False,
                            "description": "entity tags (an ETag is the quoted sha256) or *; "
                                           "a tag that matches none gives the bytes",
                            "schema": _STRING}],
            "responses": {
                "200": {"description": "the bytes",
                        "headers": {"ETag": _HEADER, "Content-Length": _HEADER},
                        "content": {"*/*": {"schema": {"type": "string",
                                                       "format": "binary"}}}},
                "304": {"description": "not modified (If-None-Match)"},
                **_problems(400, 404),
            },
        },
        "head": {
            "operationId": "headArtifact",
            "responses": {"200": {"description": "headers only",
                                  "headers": {"ETag": _HEADER, "Content-Length": _HEADER}},
                          "304": {"description": "not modified"},
                          "400": {"description": "bad name"},
                          "401": {"description": "not authenticated"},
                          "403": {"description": "not authorized"},
                          "404": {"description": "no such artifact"}},
        },
    },
    "/api/tasks/registry": {
        "get": {
            "operationId": "listRegistry",
            "parameters": [_query("tags", _STRING, "comma-separated; all must match")],
            "responses": {"200": _json("registered tasks",
                                       {"type": "array", "items": _ref("TaskInfo")}),
                          **_problems()},
        },
    },
    "/api/tasks/registry/{name}": {
        "parameters": [_NAME_PARAM],
        "get": {"operationId": "getRegistered",
                "responses": {"200": _json("one registered task", _ref("TaskInfo")),
                              **_problems(404)}},
    },
    "/api/tasks/registry/{name}/execute": {
        "parameters": [_NAME_PARAM],
        "post": {
            "operationId": "executeRegistered",
            "summary": "Run a registered task; synchronous unless Prefer: respond-async",
            "description": "Synchronous: the answer comes when the task ends. A client that "
                           "disconnects first ends only the wait; the task goes on (find it "
                           "by name in the task list, or send Prefer: respond-async and "
                           "follow Location).",
            "parameters": [
                {"name": "Prefer", "in": "header", "required": False,
                 "description": "RFC 7240: respond-async answers 202 at once, or after wait=N "
                                "seconds when given; other preferences are ignored",
                 "schema": _STRING, "example": "respond-async, wait=5"},
                _IDEMPOTENCY,
            ],
            "requestBody": _body("Execution", required=False),
            "responses": {
                "200": _json("finished (a failure still answers 200 with error)",
                             _ref("ExecuteResult"), {"X-Task-Id": _HEADER}),
                "202": _json("still running", _ref("Task"),
                             {"X-Task-Id": _HEADER, "Location": _HEADER,
                              "Preference-Applied": _HEADER}),
                **_problems(400, 404, 409, 413, 422),
            },
        },
    },
    "/api/tasks/stats": {
        "get": {"operationId": "getStats",
                "responses": {"200": _json("queues, statuses, workers", _ref("Stats")),
                              **_problems()}},
    },
    "/api/tasks/me": {
        "get": {"operationId": "getMe",
                "responses": {"200": _json("the caller's owner name and the server root",
                                           _ref("Me")),
                              **_problems()}},
    },
    "/api/tasks/openapi.json": {
        "get": {"operationId": "getOpenAPI",
                "responses": {"200": _json("this document", {"type": "object"}),
                              **_problems()}},
    },
    "/api/tasks/events": {
        "get": {
            "operationId": "events",
            "summary": "Websocket: one JSON Event message per event (upgrade required)",
            "description": "with since: every stored event after it, then live, no gap, no "
                           "duplicate; task.progress coalesced per task; with announce=1 "
                           "a first stream.start message whose id the stream starts after",
            "parameters": [_query("since", {"type": "integer", "minimum": 0, "maximum": 2**62}),
                           _query("task_id", {"type": "string", "pattern": ID_PATTERN}),
                           _query("announce", {"type": "integer", "enum": [0, 1]}),
                           _query("token", _STRING)],
            "responses": {
                "101": {"description": "switching protocols; messages follow the Event schema",
                        "content": {JSON: {"schema": _ref("Event")}}},
                "400": {"description": "bad since/task_id, or not a websocket upgrade"},
                "401": {"description": "not authenticated"},
                "403": {"description": "not authenticated or not authorized"},
                "405": {"description": "method not allowed"},
                "426": {"description": "upgrade required"},
            },
        },
    },
}


# ------------------------------------------------------------------- schedules

_CRON = {"type": "string", "minLength": 1, "maxLength": MAX_CRON_CHARS,
         "description": "five cron fields (minute hour day month weekday) or @yearly, "
                        "@annually, @monthly, @weekly, @daily, @midnight, @hourly"}
_ZONE = {"type": "string", "description": "IANA time zone the rule is read in",
         "default": "UTC"}
_CATCH_UP = {"type": "string", "enum": ["once", "skip"], "default": "once",
             "description": "firings missed while no process ran: run the newest once, or skip"}
_JOB = {**_ref("Submission"), "description": "exactly the body POST /api/tasks takes "
        "(without idempotency_key: each firing has its own); validated the same way"}
_SCHEDULE_ID_PARAM = {"name": "schedule_id", "in": "path", "required": True,
                      "schema": {"type": "string", "pattern": ID_PATTERN}}

SCHEMAS.update({
    "Schedule": {
        "type": "object",
        "required": ["id", "name", "owner", "cron", "timezone", "catch_up", "paused", "job",
                     "next_run_at", "next_runs", "last_run_at", "last_task_id", "last_status",
                     "created_at", "updated_at"],
        "properties": {
            "id": {"type": "string", "pattern": ID_PATTERN}, "name": _STRING,
            "owner": _nullable(_STRING), "cron": _CRON, "timezone": _ZONE,
            "catch_up": _CATCH_UP, "paused": {"type": "boolean"}, "job": _OBJECT,
            "next_run_at": _nullable({**_TIME, "description": "null while paused"}),
            "next_runs": {"type": "array", "items": _TIME, "maxItems": 5,
                          "description": "the next 5 firing times; [] while paused"},
            "last_run_at": _nullable(_TIME), "last_task_id": _nullable(_STRING),
            "last_status": _nullable(TASK_PROPERTIES["status"]),
            "created_at": _TIME, "updated_at": _TIME,
        },
    },
    "ScheduleList": {"type": "object", "required": ["schedules"],
                     "properties": {"schedules": {"type": "array",
                                                  "items": _ref("Schedule")}}},
    "ScheduleCreate": {
        "type": "object", "additionalProperties": False, "required": ["name", "cron", "job"],
        "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 200},
                       "cron": _CRON, "timezone": _ZONE, "catch_up": _CATCH_UP,
                       "paused": {"type": "boolean", "default": False}, "job": _JOB},
    },
    "ScheduleUpdate": {
        "type": "object", "additionalProperties": False,
        "description": "next_run_at is recomputed from now when cron, timezone or paused "
                       "change",
        "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 200},
                       "cron": _CRON, "timezone": _ZONE, "catch_up": _CATCH_UP,
                       "paused": {"type": "boolean"}, "job": _JOB},
    },
    "SchedulePreview": {
        "type": "object", "additionalProperties": False, "required": ["cron"],
        "properties": {"cron": _CRON, "timezone": _ZONE,
                       "count": {"type": "integer", "minimum": 1, "maximum": 50,
                                 "default": 5}},
    },
    "NextRuns": {"type": "object", "required": ["next_runs"],
                 "properties": {"next_runs": {"type": "array", "items": _TIME}}},
    "NotebookParameters": {
        "type": "object", "required": ["path", "has_parameters_cell", "parameters"],
        "properties": {
            "path": _STRING, "has_parameters_cell": {"type": "boolean"},
            "parameters": {"type": "array", "items": {
                "type": "object", "required": ["name", "default", "source", "type"],
                "properties": {
                    "name": _STRING, "default": _ANY,
                    "source": {"type": "string", "description": "the right-hand side as "
                                                                "written"},
                    "type": {"type": "string", "enum": ["int", "float", "str", "bool", "None",
                                                        "list", "dict", "other"]}}}},
        },
    },
})

PATHS.update({
    "/api/tasks/schedules": {
        "get": {"operationId": "listSchedules", "summary": "The caller's schedules, newest "
                                                            "first",
                "responses": {"200": _json("schedules", _ref("ScheduleList")), **_problems()}},
        "post": {"operationId": "createSchedule", "summary": "Add a schedule",
                 "requestBody": _body("ScheduleCreate"),
                 "responses": {"201": _json("created", _ref("Schedule"),
                                            {"Location": _HEADER}),
                               **_problems(400, 413, 422)}},
    },
    "/api/tasks/schedules/preview": {
        "post": {"operationId": "previewSchedule",
                 "summary": "The next firing times of a cron rule (nothing is stored)",
                 "requestBody": _body("SchedulePreview"),
                 "responses": {"200": _json("next firing times", _ref("NextRuns")),
                               **_problems(400, 413, 422)}},
    },
    "/api/tasks/schedules/{schedule_id}": {
        "parameters": [_SCHEDULE_ID_PARAM],
        "get": {"operationId": "getSchedule",
                "responses": {"200": _json("the schedule", _ref("Schedule")),
                              **_problems(404)}},
        "patch": {"operationId": "updateSchedule", "requestBody": _body("ScheduleUpdate"),
                  "responses": {"200": _json("the schedule", _ref("Schedule")),
                                **_problems(400, 404, 413, 422)}},
        "delete": {"operationId": "deleteSchedule",
                   "summary": "Delete (the tasks it fired stay, with their schedule_id)",
                   "responses": {"204": {"description": "deleted"}, **_problems(404)}},
    },
    **{f"/api/tasks/schedules/{{schedule_id}}/{action}": {
        "parameters": [_SCHEDULE_ID_PARAM],
        "post": {"operationId": f"{action}Schedule", "summary": summary,
                 "description": "No body, or an empty object: a field is refused (422).",
                 "responses": {**responses, **_problems(400, 404, *conflicts)}},
    } for action, summary, responses, conflicts in [
        ("pause", "Stop firing", {"200": _json("the schedule", _ref("Schedule"))}, ()),
        ("resume", "Fire again from the next due time after now",
         {"200": _json("the schedule", _ref("Schedule"))}, ()),
        ("run", "Fire once now (next_run_at does not move)",
         {"200": _json("the run its job's task_key already had queued or running "
                       "(deduplicated: true)", _ref("Task")),
          "202": _json("the new task", _ref("Task"), {"Location": _HEADER})},
         (409,)),  # its job's task_key has a run being cancelled
    ]},
    "/api/tasks/notebook-parameters": {
        "get": {"operationId": "getNotebookParameters",
                "summary": "The parameters cell of a notebook: names, defaults, types",
                "parameters": [_query("path", WORK["notebook"], "notebook path relative to "
                                                                "the server root",
                                      required=True)],
                "responses": {"200": _json("the parameters", _ref("NotebookParameters")),
                              **_problems(404, 422)}},
    },
})


def openapi_document(base_url: str = "/") -> dict[str, Any]:
    """The document, with ``servers`` pointing at this server's ``base_url``."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "jupyter-tasks", "version": __version__,
                 "description": "Background tasks for Jupyter: REST and websocket API."},
        "servers": [{"url": base_url.rstrip("/") or "/"}],
        "security": [{"token": []}],
        "paths": copy.deepcopy(PATHS),
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "securitySchemes": {"token": {"type": "apiKey", "in": "header",
                                          "name": "Authorization",
                                          "description": "token <token>"}},
        },
    }
