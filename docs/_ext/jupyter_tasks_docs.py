"""Generated pages of the jupyter-tasks docs: REST reference, configuration, CLI help.

Each generated page holds a marker line (``<!-- generated: NAME -->``); on
``source-read`` the marker is replaced by Markdown rendered from the code itself
(the OpenAPI document, the traitlets classes, the argparse parser), so the
pages cannot drift from what the server, the config system and the CLI accept.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from sphinx.application import Sphinx

MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)
METHODS = ("get", "put", "post", "patch", "delete", "head", "options")


# ------------------------------------------------------------------ helpers

def _cell(text: str) -> str:
    """One Markdown table cell: no newlines, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return f"`{text}`"


def schema_anchor(name: str) -> str:
    """The label of a schema's section in the REST reference."""
    return f"schema-{name.lower()}"


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _schema_link(name: str) -> str:
    return f"{{ref}}`{name} <{schema_anchor(name)}>`"


def schema_type(schema: dict[str, Any]) -> str:
    """A short Markdown description of a schema's type (links for ``$ref``)."""
    if not schema:
        return "any"
    if "$ref" in schema:
        text = _schema_link(_ref_name(schema["$ref"]))
    elif "allOf" in schema:
        text = " and ".join(schema_type(part) for part in schema["allOf"])
    elif "oneOf" in schema and "type" not in schema:
        text = " or ".join(schema_type(part) for part in schema["oneOf"])
    elif "enum" in schema:
        text = "one of " + ", ".join(_code(v) for v in schema["enum"])
    else:
        kind = schema.get("type")
        if kind == "array":
            text = f"array of {schema_type(schema.get('items', {}))}"
        elif kind == "object" and isinstance(schema.get("additionalProperties"), dict):
            text = f"object of {schema_type(schema['additionalProperties'])}"
        elif kind is None:
            text = "any"
        else:
            text = kind + (f" ({schema['format']})" if "format" in schema else "")
    if schema.get("nullable"):
        text += " or null"
    return text


def constraints(schema: dict[str, Any]) -> str:
    """Limits, pattern and default of a schema, as a short sentence."""
    parts = []
    if "pattern" in schema:
        parts.append(f"pattern {_code(schema['pattern'])}")
    for key, word in (("minLength", "min length"), ("maxLength", "max length"),
                      ("minItems", "min items"), ("maxItems", "max items")):
        if key in schema:
            parts.append(f"{word} {schema[key]}")
    if "minimum" in schema:
        sign = ">" if schema.get("exclusiveMinimum") else "≥"
        parts.append(f"{sign} {schema['minimum']}")
    if "maximum" in schema:
        parts.append(f"≤ {schema['maximum']}")
    if "default" in schema:
        parts.append(f"default {_code(schema['default'])}")
    return "; ".join(parts)


def _describe(schema: dict[str, Any], description: str = "") -> str:
    text = (description or schema.get("description", "")).rstrip(".")
    limits = constraints(schema)
    return _cell("; ".join(p for p in (text, limits) if p))


def _property_rows(schema: dict[str, Any], prefix: str = "") -> Iterable[str]:
    """Table rows of an object's properties, nested objects flattened with dots."""
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        yield (f"| `{path}` | {_cell(schema_type(prop))} | {'yes' if name in required else ''} "
               f"| {_describe(prop)} |")
        if prop.get("type") == "object" and "properties" in prop:
            yield from _property_rows(prop, f"{path}.")
        items = prop.get("items", {})
        if prop.get("type") == "array" and "properties" in items:
            yield from _property_rows(items, f"{path}[].")
        extra = prop.get("additionalProperties")
        if isinstance(extra, dict) and "properties" in extra:
            yield from _property_rows(extra, f"{path}.*.")


def _property_table(schema: dict[str, Any]) -> list[str]:
    rows = list(_property_rows(schema))
    if not rows:
        return []
    return ["| field | type | required | description |", "| --- | --- | --- | --- |", *rows, ""]


# ------------------------------------------------------------------ REST reference

def _operation(path: str, method: str, op: dict[str, Any],
               shared: list[dict[str, Any]]) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", ""]
    if op.get("summary"):
        lines += [op["summary"].rstrip(".") + ".", ""]
    if op.get("description"):
        lines += [op["description"], ""]
    params = [*shared, *op.get("parameters", [])]
    if params:
        lines += ["| parameter | in | type | required | description |",
                  "| --- | --- | --- | --- | --- |"]
        for p in params:
            schema = p.get("schema", {})
            lines.append(f"| `{p['name']}` | {p['in']} | {_cell(schema_type(schema))} | "
                         f"{'yes' if p.get('required') else ''} | "
                         f"{_describe(schema, p.get('description', ''))} |")
        lines.append("")
    body = op.get("requestBody")
    if body:
        for media, content in body.get("content", {}).items():
            need = "required" if body.get("required") else "optional"
            lines += [f"Request body ({need}, `{media}`): "
                      f"{schema_type(content.get('schema', {}))}.", ""]
    lines += ["| status | meaning | body |", "| --- | --- | --- |"]
    for code, response in sorted(op.get("responses", {}).items()):
        bodies = [f"`{media}` {schema_type(c.get('schema', {}))}"
                  for media, c in response.get("content", {}).items()]
        headers = response.get("headers", {})
        if headers:
            bodies.append("headers " + ", ".join(f"`{h}`" for h in headers))
        lines.append(f"| {code} | {_cell(response.get('description', ''))} | "
                     f"{_cell('; '.join(bodies))} |")
    return [*lines, ""]


def _schema_section(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"({schema_anchor(name)})=", f"### {name}", ""]
    if schema.get("description"):
        lines += [schema["description"].rstrip(".") + ".", ""]
    parts = schema.get("allOf")
    if parts:
        bases = [schema_type(p) for p in parts if "$ref" in p]
        if bases:
            lines += [f"Every field of {', '.join(bases)}, and:", ""]
        for part in parts:
            if "$ref" not in part:
                lines += _property_table(part)
        return lines
    if schema.get("type") not in (None, "object") or "items" in schema:
        lines += [f"Type: {schema_type(schema)}.", ""]
    if "oneOf" in schema:
        sets = [", ".join(f"`{f}`" for f in alt.get("required", [])) for alt in schema["oneOf"]]
        lines += ["Exactly one of: " + "; ".join(sets) + ".", ""]
    if schema.get("additionalProperties") is False:
        lines += ["Other fields are refused (422).", ""]
    return lines + _property_table(schema)


def rest_api_markdown(document: dict[str, Any]) -> str:
    """The REST reference in Markdown: every path and method, then every schema."""
    lines = [f"OpenAPI {document['openapi']}, API version {document['info']['version']}.", ""]
    for scheme in document.get("components", {}).get("securitySchemes", {}).values():
        lines += [f"Authentication: the `{scheme['name']}` {scheme['in']} "
                  f"(`{scheme.get('description', '')}`).", ""]
    lines += ["## Routes", ""]
    for path, item in document["paths"].items():
        shared = item.get("parameters", [])
        for method in METHODS:
            if method in item:
                lines += _operation(path, method, item[method], shared)
    lines += ["## Schemas", ""]
    for name, schema in document["components"]["schemas"].items():
        lines += _schema_section(name, schema)
    return "\n".join(lines)


# ------------------------------------------------------------------ configuration

def configurable_classes() -> list[type]:
    """The configurable classes of jupyter-tasks (the server extension's app)."""
    from jupyter_tasks.server.app import JupyterTasksApp

    return [JupyterTasksApp]


def _trait_rst(cls: type, name: str, trait: Any, instance: Any) -> list[str]:
    try:
        default = repr(getattr(instance, name))
    except Exception:  # a default that needs a running server: say what the class says
        default = trait.default_value_repr()
    kind = type(trait).__name__.lstrip("_")
    if hasattr(trait, "values") and kind == "Enum":
        kind = "one of " + ", ".join(f"``{v!r}``" for v in trait.values)
    help_text = inspect.cleandoc(trait.help or "") or "No description."
    body = ["    " + line if line else "" for line in help_text.splitlines()]
    return [f"``{cls.__name__}.{name}`` : {kind}", f"    Default: ``{default}``", "", *body, ""]


def configuration_markdown() -> str:
    """Every configurable trait: the class's own ones, then the inherited ones."""
    lines: list[str] = []
    for cls in configurable_classes():
        instance = cls()
        traits = cls.class_traits(config=True)
        own = sorted(n for n in traits if n in vars(cls))
        inherited = sorted(n for n in traits if n not in vars(cls))
        for title, names in ((f"{cls.__name__}", own),
                             (f"{cls.__name__}: inherited from jupyter_server's ExtensionApp",
                              inherited)):
            lines += [f"## {title}", "", "```{eval-rst}"]
            for name in names:
                lines += _trait_rst(cls, name, traits[name], instance)
            lines += ["```", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ CLI help

def _help(words: list[str]) -> str | None:
    """What ``jupyter tasks WORDS --help`` prints (None: the words pass their flags on)."""
    import contextlib
    import io

    from jupyter_tasks.cli import build_parser

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            build_parser().parse_args([*words, "--help"])
        except SystemExit as exc:
            return out.getvalue() if not exc.code else None
    return None


def cli_markdown() -> str:
    """``jupyter tasks --help`` and every subcommand's ``--help``, as printed."""
    lines: list[str] = []

    def walk(words: list[str]) -> None:
        text = _help(words)
        if text is None:
            return  # lab and dashboard hand every flag to the program they start
        title = " ".join(["jupyter", "tasks", *words])
        lines.extend([f"### `{title}`", "", "```text", text.rstrip(), "```", ""])
        found = re.search(r"^\s+\{([a-z,-]+)\}", text, re.MULTILINE)
        for name in found.group(1).split(",") if found else []:
            walk([*words, name])

    walk([])
    return "\n".join(lines)


# ------------------------------------------------------------------ event types

#: what each event type means; a type missing here fails the build
EVENT_MEANINGS = {
    "task.created": "a task was stored, queued (a task that runs at once, such as a "
                    "background cell, begins with task.started instead)",
    "task.started": "a worker or process started running it; the first event of a task "
                    "that runs at once",
    "task.progress": "its progress changed (coalesced per task: at most one every 0.1 s, "
                     "longer when many tasks report at once so a client gets at most ~250 "
                     "a second; the latest always delivered, after any state change)",
    "task.log": "log lines were appended; read them with `GET /api/tasks/{task_id}/logs"
                "?after=SEQ`",
    "task.confirmation": "it asks a person a question, or its question was answered",
    "task.retrying": "an attempt ended and the task went back to the queue",
    "task.cancel_requested": "someone asked a running task to stop",
    "task.succeeded": "it ended with a result",
    "task.failed": "it ended with an error",
    "task.timeout": "it ran past its timeout",
    "task.oom": "it went over its memory limit",
    "task.cancelled": "it was cancelled",
    "task.interrupted": "its process ended before it did, and it will not be retried",
    "task.deleted": "it was deleted: its earlier events are gone with it, and `task` is its "
                    "last state without its data (`params`, `result`, `error`, "
                    "`retry_reason`, `progress`, `confirmation` and `origin` are null)",
    "schedule.changed": "a schedule was created, edited, paused, resumed, fired or deleted "
                        "(`task_id` and `task` are null; `schedule_id` and `schedule` are set, "
                        "`schedule` null once deleted)",
}


def events_markdown() -> str:
    """A table of every event type the websocket sends, from ``EventType``."""
    from jupyter_tasks.models import SCHEDULE_CHANGED, EventType

    rows = ["| `type` | meaning |", "| --- | --- |"]
    for kind in [*(e.value for e in EventType), SCHEDULE_CHANGED]:
        rows.append(f"| `{kind}` | {_cell(EVENT_MEANINGS[kind])} |")
    return "\n".join(rows)


# ------------------------------------------------------------------ Sphinx hooks

def _rest_api() -> str:
    from jupyter_tasks.server.openapi import openapi_document

    return rest_api_markdown(openapi_document("/"))


GENERATORS: dict[str, Callable[[], str]] = {
    "rest-api": _rest_api,
    "configuration": configuration_markdown,
    "cli": cli_markdown,
    "events": events_markdown,
}


def _fill(app: Sphinx, docname: str, source: list[str]) -> None:
    source[0] = MARKER.sub(lambda m: GENERATORS[m.group(1)](), source[0])


def _always_outdated(app: Sphinx, env: Any, added: set[str], changed: set[str],
                     removed: set[str]) -> list[str]:
    # a generated page changes with the code, not with its file
    return [d for d in env.found_docs if d in GENERATED_DOCS]


GENERATED_DOCS = {"reference/rest-api", "reference/configuration", "reference/events",
                  "user-guide/cli"}


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the source-read hook that fills the generated pages."""
    app.connect("source-read", _fill)
    app.connect("env-get-outdated", _always_outdated)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
