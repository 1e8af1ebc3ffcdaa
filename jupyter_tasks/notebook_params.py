"""What a notebook's ``parameters`` cell declares: names, defaults, types (for job dialogs)."""

from __future__ import annotations

import ast
import json
from typing import Any

from .exceptions import InvalidRequest

MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024
_TYPES = {bool: "bool", int: "int", float: "float", str: "str", type(None): "None",
          list: "list", tuple: "list", dict: "dict"}


def notebook_parameters(path: str) -> dict[str, Any]:
    """``{"has_parameters_cell", "parameters": [{name, default, source, type}]}`` of a notebook.

    The first code cell tagged ``parameters`` (as papermill finds it) is parsed with
    ``ast``, IPython's magic and shell lines skipped: each name an assignment gives a
    value (annotated, chained and tuple assignments too) is a parameter; its default
    is the literal value when ``ast.literal_eval`` can read it and JSON can hold it,
    else null with type ``other``. Reading never runs code.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_NOTEBOOK_BYTES + 1)
        if len(raw) > MAX_NOTEBOOK_BYTES:
            raise ValueError("larger than 50 MB")
        nb = json.loads(raw)
        cells = nb.get("cells") if isinstance(nb, dict) else None
        if not isinstance(cells, list):
            raise ValueError("no cells list")
    except (OSError, ValueError) as exc:
        raise InvalidRequest(f"not a readable notebook: {exc}",
                             errors=[{"field": "path", "message": "not a notebook"}]) from None
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        tags = (cell.get("metadata") or {}).get("tags") or []
        if "parameters" in tags:
            source = cell.get("source") or ""
            if isinstance(source, list):
                source = "".join(source)
            return {"has_parameters_cell": True, "parameters": parse_parameters(str(source))}
    return {"has_parameters_cell": False, "parameters": []}


def parse_parameters(source: str) -> list[dict[str, Any]]:
    """The assignments of a cell's source, in order; IPython's ``%`` and ``!`` lines are
    skipped (a cell that is still no Python after that: none)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        source = _as_python(source)
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            return []
    found: dict[str, dict[str, Any]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for name, part in _named_values(targets, value):
            text = ast.get_source_segment(source, part) or ast.unparse(part)
            default, kind = _literal(part)
            found.pop(name, None)  # a later assignment wins, as running the cell would
            found[name] = {"name": name, "default": default, "source": text, "type": kind}
    return list(found.values())


def _as_python(source: str) -> str:
    """A cell's source with IPython's syntax (``%magic``, ``!cmd``) as the Python it runs,
    line for line, as the kernel would (a ``%`` inside a string stays text); without
    IPython, such lines blanked."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:
        # blanked, not removed: the values' source segments keep their line numbers
        return "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                         for line in source.split("\n"))
    try:
        return TransformerManager().transform_cell(source)
    except Exception:  # IPython's own syntax errors: the cell is no Python either
        return source


def _named_values(targets: list[ast.expr], value: ast.expr) -> list[tuple[str, ast.expr]]:
    """(name, value) of each name ``targets`` assign: ``a = b = 2`` both, ``x, y = 1, 2``
    pairwise (an unpacking of anything but a tuple of as many: none)."""
    named: list[tuple[str, ast.expr]] = []
    for target in targets:
        if isinstance(target, ast.Name):
            named.append((target.id, value))
        elif isinstance(target, (ast.Tuple, ast.List)) \
                and isinstance(value, (ast.Tuple, ast.List)) \
                and len(target.elts) == len(value.elts) \
                and all(isinstance(t, ast.Name) for t in target.elts):
            named.extend((t.id, v) for t, v in  # type: ignore[attr-defined]
                         zip(target.elts, value.elts, strict=True))
    return named


def _literal(node: ast.expr) -> tuple[Any, str]:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None, "other"
    kind = _TYPES.get(type(value), "other")
    if kind == "other":
        return None, kind
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return None, "other"  # a set inside, a NaN, non-string keys
    return (list(value) if isinstance(value, tuple) else value), kind
