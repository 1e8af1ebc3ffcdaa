"""What an executed notebook records, the way papermill records it.

Readers built for papermill outputs (papermill's own ``load_notebook_node`` and
``inspect_notebook``, scrapbook, report tooling) find the same things in a
notebook job's output:

* the notebook upgraded to the current nbformat minor (4.5: cell ids) and a
  ``tags`` list on every cell;
* ``metadata.papermill``: ``parameters``, ``default_parameters``,
  ``environment_variables``, ``version``, ``input_path``, ``output_path``,
  ``start_time``, ``end_time``, ``duration``, ``exception``;
* per cell ``metadata.papermill``: ``start_time``, ``end_time``, ``duration``,
  ``status`` (pending, running, completed, failed), ``exception`` (nbclient adds
  ``metadata.execution`` with the kernel's timings);
* on a failing cell, papermill's two error-marker cells: "An Exception was
  encountered at 'In [n]'" at the top and an anchor just before the cell; markers
  left in the input by an earlier run are removed first.

Also here: the names a ``parameters`` cell assigns (for the warnings about
parameters it does not define) and the ``output_path`` template.
"""

from __future__ import annotations

import ast
import datetime
import os
import re
import string
from collections.abc import Iterable, Mapping
from typing import Any

from ..exceptions import InvalidRequest

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
ERROR_MARKER_TAG = "papermill-error-cell-tag"
# papermill's marker text, so its readers and its users recognise the marker
_ERROR_STYLE = ('style="color:red; font-family:Helvetica Neue, Helvetica, Arial, sans-serif; '
                'font-size:2em;"')
ERROR_MESSAGE = ("<span " + _ERROR_STYLE + ">An Exception was encountered at "
                 "'<a href=\"#papermill-error-cell\">In [{count}]</a>'.</span>")
ERROR_ANCHOR = ('<span id="papermill-error-cell" ' + _ERROR_STYLE + '>Execution using papermill '
                'encountered an exception here and stopped:</span>')

PENDING, RUNNING, COMPLETED, FAILED = "pending", "running", "completed", "failed"
# the exit values papermill counts as a clean early stop (the error's evalue text)
CLEAN_EXIT_VALUES = ("", "0")
OUTPUT_PATH_FIELDS = ("id", "date")

# a path papermill would hand to a remote store (s3://, gs://, abs://, https://, file://)
URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def now() -> datetime.datetime:
    """The current UTC time (papermill's timestamps are UTC, ISO 8601 with offset)."""
    return datetime.datetime.now(datetime.timezone.utc)


def has_tag(cell: Any, tag: str) -> bool:
    """True when ``cell`` carries ``tag``."""
    return tag in (cell.get("metadata", {}).get("tags") or [])


def upgrade(nb: Any) -> Any:
    """The notebook at the current nbformat 4 minor (ids added), every cell with ``tags``."""
    import nbformat

    nb = nbformat.v4.upgrade(nb) or nb
    for cell in nb.cells:
        cell.setdefault("metadata", {}).setdefault("tags", [])
    return nb


def remove_error_markers(nb: Any) -> int:
    """Drop papermill error-marker cells (an earlier run's); returns how many went."""
    before = len(nb.cells)
    nb.cells = [c for c in nb.cells if not has_tag(c, ERROR_MARKER_TAG)]
    return before - len(nb.cells)


def start_notebook(nb: Any, *, parameters: Mapping[str, Any] | None, input_path: str,
                   output_path: str | None, version: str, started: datetime.datetime) -> None:
    """Reset outputs, counts and papermill metadata for a fresh run (papermill's notebook start).

    ``parameters`` None keeps the ones an earlier run recorded (its injected
    cell is still in the notebook and runs again), as papermill does.
    """
    meta = nb.metadata.setdefault("papermill", {})
    meta.setdefault("default_parameters", {})
    meta.setdefault("environment_variables", {})
    meta.setdefault("parameters", {})
    if parameters is not None:
        meta["parameters"] = dict(parameters)
    meta["version"] = version
    meta["input_path"] = input_path
    meta["output_path"] = output_path
    meta["start_time"] = started.isoformat()
    meta["end_time"] = None
    meta["duration"] = None
    meta["exception"] = None
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.execution_count = None
            cell.outputs = []
        cell.metadata["papermill"] = {"exception": None, "start_time": None, "end_time": None,
                                      "duration": None, "status": PENDING}


def cell_started(cell: Any) -> None:
    """Mark a cell running with its start time."""
    meta = cell.metadata.setdefault("papermill", {})
    meta.update(start_time=now().isoformat(), status=RUNNING, exception=False)


def cell_failed(nb: Any, cell: Any) -> None:
    """Mark a cell (and the notebook) as having raised."""
    cell.metadata.setdefault("papermill", {}).update(exception=True, status=FAILED)
    nb.metadata.setdefault("papermill", {})["exception"] = True


def cell_ended(cell: Any) -> None:
    """End time, duration and (unless failed) ``completed`` for a cell that ran."""
    meta = cell.metadata.setdefault("papermill", {})
    end = now()
    meta["end_time"] = end.isoformat()
    if meta.get("start_time"):
        started = datetime.datetime.fromisoformat(meta["start_time"])
        meta["duration"] = (end - started).total_seconds()
    if meta.get("status") != FAILED:
        meta["status"] = COMPLETED


def end_notebook(nb: Any, started: datetime.datetime) -> None:
    """End time and duration of the run."""
    end = now()
    meta = nb.metadata.setdefault("papermill", {})
    meta["end_time"] = end.isoformat()
    meta["duration"] = (end - started).total_seconds()


def add_error_markers(nb: Any, cell_index: int, execution_count: int | None) -> None:
    """papermill's markers: the message at the top, the anchor just before cell ``cell_index``."""
    import nbformat

    message = nbformat.v4.new_markdown_cell(ERROR_MESSAGE.format(count=execution_count),
                                            metadata={"tags": [ERROR_MARKER_TAG]})
    anchor = nbformat.v4.new_markdown_cell(ERROR_ANCHOR, metadata={"tags": [ERROR_MARKER_TAG]})
    nb.cells.insert(cell_index, anchor)
    nb.cells.insert(0, message)


def is_clean_exit(ename: str | None, evalue: str | None) -> bool:
    """``sys.exit()``, ``sys.exit(0)``, ``raise SystemExit``: a clean stop (papermill's rule)."""
    return ename == "SystemExit" and (evalue or "") in CLEAN_EXIT_VALUES


# ------------------------------------------------------------------ parameters

_ASSIGNMENT = re.compile(r"^(\w+)\s*(?::[^=]*)?=(?!=)")


def assigned_names(source: str) -> set[str]:
    """The top-level names a ``parameters`` cell assigns (annotated and unpacked too).

    Source that is not plain Python (IPython magics) falls back to one
    ``name = ...`` per line, like papermill's own inspection.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {m.group(1) for line in source.splitlines() if (m := _ASSIGNMENT.match(line))}
    names: set[str] = set()
    for node in tree.body:
        targets: Iterable[ast.AST] = ()
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Name):
                    names.add(sub.id)
    return names


def parameter_warnings(nb: Any, parameters: Mapping[str, Any]) -> list[str]:
    """Warnings papermill also gives: no ``parameters`` cell, or names it does not define."""
    if not parameters:
        return []
    cell = next((c for c in nb.cells if has_tag(c, PARAMETERS_TAG)), None)
    if cell is None:
        return [f"the notebook has no cell tagged 'parameters': the parameters "
                f"{', '.join(parameters)} were injected at the top"]
    language = (nb.metadata.get("kernelspec", {}).get("language")
                or nb.metadata.get("language_info", {}).get("name") or "python")
    if language.lower() != "python":
        return []
    known = assigned_names(cell.source)
    return [f"parameter {name!r} is not defined in the notebook's parameters cell"
            for name in parameters if name not in known]


# ----------------------------------------------------------------- output path


# what Linux's file systems take (NAME_MAX, PATH_MAX)
MAX_PATH_PART_BYTES = 255
MAX_PATH_BYTES = 4096


def _template_fields(template: str) -> list[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise _bad_output_path(f"output_path {template!r} is not a valid template: {exc}") \
            from None
    fields = [name for _, name, _, _ in parsed if name is not None]
    for name in fields:
        if not name or not name.isidentifier():
            raise _bad_output_path(
                f"output_path {template!r}: {{{name}}} is not a field; use {{id}}, {{date}} or "
                "a parameter name")
    for _, name, spec, _ in parsed:
        # a field inside a format ("{id:>{x}}") is filled in before any check: a
        # parameter x of 2e9 held the server's loop 6 s and 3.5 GB, 1e12 ended in a 500
        if name is not None and "{" in (spec or ""):
            raise _bad_output_path(
                f"output_path {template!r}: the format of {{{name}}} holds a field of its "
                "own; a format is written out (such as {date:%Y%m%d})")
        # a width or precision is filled in before any length is known: "{id:>99999999}"
        # in a 56-byte request made a 100 MB name (and error message)
        if name is not None and any(int(n) > MAX_PATH_PART_BYTES
                                    for n in re.findall(r"\d+", spec or "")):
            raise _bad_output_path(
                f"output_path {template!r}: the format of {{{name}}} asks for more than "
                f"{MAX_PATH_PART_BYTES} characters")
    return fields


def _file_above(path: str, root: str) -> str | None:
    """The nearest existing folder ``path`` would be made in, if that is a file (None if a
    folder, as it should be)."""
    above = os.path.dirname(path)
    while above != root and not os.path.lexists(above):
        above = os.path.dirname(above)
    return None if os.path.isdir(above) else above


def _bad_output_path(message: str) -> InvalidRequest:
    return InvalidRequest(message, errors=[{"field": "output_path", "message": message}])


def _check_parameter_values(template: str, parameters: Mapping[str, Any]) -> None:
    """Refuse a parameter's value that would move the output to another folder.

    A value is a run's, not the template's: ``-r region x/../../report`` turned
    ``out/p-{region}.ipynb`` into the root's ``report.ipynb``, another notebook,
    overwritten. A value fills in a name; the template alone says the folders.
    """
    formatter = string.Formatter()
    separators = {"/", os.sep, os.altsep} - {None}
    for _, name, spec, conversion in formatter.parse(template):
        if name is None or name not in parameters:
            continue  # literal text, or the run's own {id} and {date}
        text = formatter.format_field(formatter.convert_field(parameters[name], conversion),
                                      spec or "")
        if text in (".", "..") or any(sep in text for sep in separators):
            raise _bad_output_path(
                f"output_path {template!r}: parameter {name} is {text!r}, which would change "
                "the folder written to; a parameter's value fills in a name, not a path")
        if "\0" in text:  # no file name holds one (os.path raised ValueError: a 500)
            raise _bad_output_path(f"output_path {template!r}: parameter {name} holds a NUL "
                                   "character, which no file name may hold")


def render_output_path(template: str, *, root_dir: str, task_id: str,
                       date: datetime.date, parameters: Mapping[str, Any],
                       input_path: str | None = None, resolve: bool = True) -> str:
    """The real path ``template`` names for one run; ``InvalidRequest`` if it leaves the root.

    ``resolve=False``: the path by the names given, links not followed (what the contents
    API judges hidden or not), after the same checks of the real one.

    Fields: ``{id}`` (the task id), ``{date}`` (the run's date, ISO; a format such
    as ``{date:%Y%m%d}`` works), and any parameter (``{alpha}``), which wins over
    ``id`` and ``date`` of the same name. Relative paths
    resolve under ``root_dir``; the result must be a file path inside it, and not
    ``input_path`` (the notebook the job runs).
    """
    if not isinstance(template, str) or not template.strip() or "\0" in template:
        raise _bad_output_path("output_path must be a non-empty path")
    # a parameter of the same name wins, as papermill fills OUTPUT from the parameters
    # (a backfill's -r date 2024-01-01 must not become today's date)
    values = {"id": task_id, "date": date, **parameters}
    unknown = [f for f in _template_fields(template) if f not in values]
    if unknown:
        raise _bad_output_path(
            f"output_path {template!r} names {', '.join('{' + f + '}' for f in unknown)}, "
            f"which is neither {{id}}, {{date}} nor a parameter")
    try:
        rendered = template.format_map(values)
    except (ValueError, TypeError) as exc:
        raise _bad_output_path(f"output_path {template!r} cannot be filled in: {exc}") from None
    _check_parameter_values(template, parameters)
    # said now, not after the run as "File name too long" (a long parameter's value)
    too_long = [part for part in rendered.split(os.sep)
                if len(part.encode("utf-8", "surrogatepass")) > MAX_PATH_PART_BYTES]
    if too_long or len(rendered.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise _bad_output_path(
            f"output_path {template!r} is too long once filled in ({len(rendered):,} "
            f"characters; a name may have {MAX_PATH_PART_BYTES} bytes, the path "
            f"{MAX_PATH_BYTES})")
    root = os.path.realpath(root_dir)
    path = os.path.realpath(os.path.join(root, rendered))
    if not path.startswith(root + os.sep):
        raise _bad_output_path(
            f"output_path {rendered!r} is outside the root folder {root}")
    if rendered.endswith(("/", os.sep)) or os.path.isdir(path):
        raise _bad_output_path(f"output_path {rendered!r} is a folder, not a file")
    blocking = _file_above(path, root)
    if blocking is not None:
        # said now, not by the run's end as "Not a directory"
        raise _bad_output_path(f"output_path {rendered!r} goes through "
                               f"{os.path.relpath(blocking, root)!r}, which is a file")
    source = None if input_path is None else os.path.realpath(os.path.join(root, input_path))
    if source is not None and (path == source or _same_file(path, source)):
        # the executed copy, injected parameters and outputs, would replace the source
        # for good (a rerun would then run that copy)
        raise _bad_output_path(
            f"output_path {rendered!r} is the input notebook itself: the executed copy would "
            "replace it; name another file (for example with {id} or {date})")
    return path if resolve else os.path.normpath(os.path.join(root, rendered))


def _same_file(a: str, b: str) -> bool:
    """Two names of one file (a hard link, another case on a case-insensitive disk)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # either is missing: no file to overwrite
        return False


def html_path(path: str) -> str:
    """The HTML export's path beside an output notebook (``.ipynb`` → ``.html``)."""
    stem = path[: -len(".ipynb")] if path.endswith(".ipynb") else path
    return stem + ".html"
