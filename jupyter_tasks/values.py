"""The one rule for storing a value as JSON: results, progress, params, event snapshots.

Every JSON value jupyter-tasks writes passes through :func:`encode` (outputs of
work: results, progress, confirmations) or :func:`encode_input` (inputs that a
job will run with: params, parameters, input data, commands). The rule:

* JSON's own types are kept as they are: ``None``, ``bool``, ``str``, finite
  ``int``/``float``, ``list`` and ``dict`` with string keys.
* **Outputs** are always storable:

  - a non-finite float (``nan``, ``inf``, ``-inf``) becomes ``null``; a note
    keeps its original text and where it was (``Task.value_notes``);
  - as JSON itself has them, with no note (the data is the same): tuples and
    sets become lists, numpy-like objects their ``tolist()`` (a scalar its
    number), ``int``/``float``/``bool``/``None`` dict keys their JSON text;
  - an array of more than :data:`MAX_ARRAY_ITEMS` items, in a value the process
    that made it keeps (a kernel's cell, an in-process callable), its summary
    (type, shape, item type), with a note; a job's is kept whole as below;
  - each with a note: other dict keys their ``str()``, an int too long for JSON
    readers its hex text, any other object its ``repr`` (at most 1,000
    characters), a cycle the text ``"<cycle>"``, an object that cannot even be
    looked at a placeholder;
  - a value nested deeper than :data:`MAX_DEPTH` levels, or whose JSON is longer
    than the caller's limit (:data:`MAX_RESULT_CHARS` for results), is stored as
    ``{"preview", "artifact", "chars", "reason"}``: the start of its JSON text,
    while the whole text becomes the task's artifact ``result.json``.

* **Inputs** are refused instead of changed (a job must run with exactly what
  was asked): non-finite numbers, nesting beyond :data:`MAX_DEPTH`, non-string
  keys and non-JSON objects (an array too: give its ``tolist()``) raise
  :class:`ValueNotStorable` (422 over REST), naming the path of every problem. A
  numpy-like scalar (``np.int64(3)``) is taken as the number it holds, as a
  ``float`` subclass already is. Params (and a notebook's parameters) past
  :data:`MAX_PARAMS_BYTES` of JSON are refused too: every list and event carries them.

Readers apply :func:`safe_dumps`, so even a row written by something else
(too deep, ``NaN`` text) is answered, never a crash.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .exceptions import KeyGivenTwice, ValueNotStorable

# containers inside containers; readers (json in Python, SQLite's json()) recurse per
# level, and a request handler runs some hundred frames deep already
MAX_DEPTH = 100
# a result's JSON beyond this is kept whole as an artifact, the row holds a preview
MAX_RESULT_CHARS = 256 * 1024
# a task's params travel in its row to every list page and event: bounded as the REST
# body that carries them is by default (JupyterTasksApp.max_body_bytes), from Python too
MAX_PARAMS_BYTES = 1024 * 1024
PREVIEW_CHARS = 2_000
# an array (numpy's, a pandas Series) past this many items is stored as a summary: as
# JSON, 20 million floats were 385 MB, and a kernel frozen 12 s turning them into it
MAX_ARRAY_ITEMS = 1_000_000
REPR_CHARS = 1_000
# Python refuses to turn ints longer than this into text (sys.int_info.str_digits_check_threshold)
_MAX_INT_DIGITS = 4_000
RESULT_ARTIFACT = "result.json"

_SCALARS = (str, bool, type(None))


def _refuse(obj: Any) -> Any:
    raise TypeError(f"not JSON: {type(obj).__qualname__}")


# strict: no NaN/Infinity, no objects; anything it refuses takes the slow path below
_strict = json.encoder.c_make_encoder  # type: ignore[attr-defined]
_STRICT = None if _strict is None else _strict(
    None, _refuse, json.encoder.encode_basestring_ascii, None, ":", ",", True, False, False,
)


# what other processes read: Python's default limit on an int's digits, unless raised
_READERS_INT_DIGITS = getattr(sys.int_info, "default_max_str_digits", 4300) or 4300
_LONG_DIGITS = re.compile(rf"\d{{{_READERS_INT_DIGITS + 1},}}")


def _dumps_as_is(value: Any) -> str:
    """JSON of a value already JSON (``ValueError`` else), as every process can read it.

    The encoder refuses an int past the limit on its text; a process that lifted the
    limit (``sys.set_int_max_str_digits(0)``) would write digits no reader at the
    default can parse: then such a run sends the value the way of other ints too long.
    """
    text = _strict_dumps(value)
    # (a Python before 3.10.7 has no limit at all: as if lifted)
    limit = getattr(sys, "get_int_max_str_digits", lambda: 0)()
    if (limit == 0 or limit > _READERS_INT_DIGITS) and _LONG_DIGITS.search(text):
        raise ValueError("an int too long for other processes to read")
    return text


def _strict_dumps(value: Any) -> str:
    if _STRICT is None:  # pragma: no cover - CPython always has the C encoder
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False,
                          default=_refuse)
    return "".join(_STRICT(value, 0))


@dataclass
class Encoded:
    """A value as the store keeps it: its JSON text, what the rule changed, the whole text."""

    text: str
    notes: list[dict[str, Any]] = field(default_factory=list)
    # the complete JSON when the stored text is only a preview (kept as an artifact)
    full_text: str | None = None


@dataclass
class EncodedWithValue(Encoded):
    """An output encoded where it was made, with the object itself for this process.

    A kernel's cell encodes its value in the cell's own thread: its repr is the user's
    code, which may be slow or never return, and must not hold the loop every task and
    card of the kernel runs on. The row takes the encoding; the object is remembered.
    """

    value: Any = None


class JSONText(str):
    """JSON text already encoded by this module: the store writes it as it is."""


def encode(value: Any, *, where: str = "value", limit: int | None = None,
           arrays_summarized: bool = False) -> Encoded:
    """Encode an output value by the rule above; never raises for any Python value.

    ``arrays_summarized``: an array past :data:`MAX_ARRAY_ITEMS` is stored as its summary
    (for a value this process keeps: a kernel's cell, an in-process callable), not as the
    whole JSON artifact a job's result must be (its process is gone once it ends).
    """
    # type(), not isinstance(): the latter asks the object for its __class__
    if issubclass(type(value), Encoded):
        return value  # encoded where it was made, by this same rule (a Dask worker)
    try:
        return _encoded(value, where, limit, arrays_summarized)
    except Exception as exc:
        # an object that breaks on being looked at (a dead weakref proxy, a
        # __getattribute__ that raises): said so, never an end left unwritten
        said = type(exc).__name__
        with contextlib.suppress(Exception):  # its message may be as broken
            said = f"{said}: {exc}"[:200]
        return Encoded(_strict_dumps(f"<{type(value).__name__} that could not be read>"),
                       [{"path": where, "original": f"a {type(value).__name__} whose "
                         f"reading raised {said}", "stored_as": "a placeholder"}])


def _encoded(value: Any, where: str, limit: int | None,
             arrays_summarized: bool = False) -> Encoded:
    notes: list[dict[str, Any]] = []
    depth = 0
    try:
        full = _dumps_as_is(value)
    except (TypeError, ValueError, RecursionError):  # objects, nan, an int too long
        full = None
    if full is not None and (len(full) <= 2 * MAX_DEPTH or _depth_within(value, MAX_DEPTH)):
        if limit is None or len(full) <= limit:
            return Encoded(full)  # JSON already: kept exactly
    else:
        clean, depth = _clean(value, where, notes, arrays_summarized=arrays_summarized)
        # within the bound the C encoder's recursion is safe, and far faster
        full = _strict_dumps(clean) if depth <= MAX_DEPTH else _dumps_iterative(clean)
    reason = None
    if depth > MAX_DEPTH:
        reason = f"nested {depth} levels deep (the limit is {MAX_DEPTH})"
    elif limit is not None and len(full) > limit:
        reason = f"{len(full):,} characters of JSON (the limit is {limit:,})"
    if reason is None:
        return Encoded(full, notes)
    notes.append({"path": where, "original": reason,
                  "stored_as": f"a preview; the whole value is the artifact {RESULT_ARTIFACT}"})
    stub = {"preview": full[:PREVIEW_CHARS], "artifact": RESULT_ARTIFACT, "chars": len(full),
            "reason": reason}
    return Encoded(_strict_dumps(stub), notes, full_text=full)


def encoded_here(value: Any, *, where: str = "result", limit: int | None = MAX_RESULT_CHARS,
                 arrays_summarized: bool = False) -> EncodedWithValue:
    """``value`` encoded now, on the caller's thread, and kept beside its encoding."""
    encoded = encode(value, where=where, limit=limit, arrays_summarized=arrays_summarized)
    return EncodedWithValue(encoded.text, encoded.notes, encoded.full_text, value)


def runs_no_code_to_encode(value: Any) -> bool:
    """Whether encoding ``value`` calls none of its own code (no ``__repr__``, no hooks):
    a JSON scalar, or a short list or dict of them."""
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return True
    if kind is list or kind is tuple:
        return len(value) <= 64 and all(type(item) in _PLAIN_SCALARS for item in value)
    if kind is dict:
        return len(value) <= 64 and all(type(key) is str and type(item) in _PLAIN_SCALARS
                                        for key, item in value.items())
    return False


def encode_input(value: Any, *, where: str, keys_checked: bool = False) -> str:
    """JSON text of a job's input, or ``ValueNotStorable`` naming every path that is not JSON.

    ``keys_checked``: ``value`` is part of an input already encoded by this function (its
    keys and sets were checked then)."""
    try:
        text = _dumps_as_is(value)
    except (TypeError, ValueError, RecursionError):
        text = None
    # the JSON encoder writes a key 1 as "1" and None as "null": the job would see other
    # keys than it was given (`1 in x` false), so such keys are refused, as sets are
    changed = [] if keys_checked else _changed_containers(value, where)
    if text is not None and not changed and (
            len(text) <= 2 * MAX_DEPTH or _depth_within(value, MAX_DEPTH)):
        return text
    notes: list[dict[str, Any]] = []
    clean, depth = _clean(value, where, notes, arrays_noted=True)
    errors = changed + [
        {"field": n["path"], "message": f"{n['original']} cannot be stored as JSON"}
        for n in notes if "a key of type" not in n["original"]]
    if depth > MAX_DEPTH:
        errors.append({"field": where,
                       "message": f"nested {depth} levels deep; the limit is {MAX_DEPTH}"})
    if not errors:
        # all _clean changed were numbers given as numpy-like scalars (np.int64(3), a loop
        # over a DataFrame's column): kept as the numbers they hold, as a float64 already is
        return _strict_dumps(clean)
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    raise ValueNotStorable(f"{where} is not storable JSON: {summary}", errors=errors[:50])


def check_params_size(text: str, *, where: str = "params") -> None:
    """Raise ``ValueNotStorable`` when params' JSON ``text`` is past ``MAX_PARAMS_BYTES``."""
    if len(text) <= MAX_PARAMS_BYTES:  # the escaped text is never shorter than its UTF-8
        return
    size = len(json.dumps(json.loads(text), ensure_ascii=False,
                          separators=(",", ":")).encode("utf-8", "surrogatepass"))
    if size > MAX_PARAMS_BYTES:
        message = (f"{size:,} bytes of JSON; the limit is {MAX_PARAMS_BYTES:,}, as every list "
                   "and event carries a task's params: pass a file's path instead")
        raise ValueNotStorable(f"{where}: {message}", errors=[{"field": where,
                                                               "message": message}])


_CONTAINERS = (Mapping, list, tuple, set, frozenset)


def _changed_containers(value: Any, where: str) -> list[dict[str, str]]:
    """The keys that are not text, and the sets, in a job's input (each would reach the
    job as something else), as errors naming their paths; a walk of the containers only."""
    errors: list[dict[str, str]] = []
    stack: list[tuple[Any, _Path, int]] = [(value, (None, where), 0)]
    seen: set[int] = set()
    while stack and len(errors) < 50:
        obj, path, depth = stack.pop()
        if depth > MAX_DEPTH or id(obj) in seen:
            continue  # the depth and a cycle are the encoder's to report
        if isinstance(obj, (set, frozenset)):
            errors.append({"field": _path_text(path),
                           "message": "a set is not JSON: give a list"})
        elif isinstance(obj, Mapping):
            seen.add(id(obj))
            for k, v in obj.items():
                if not isinstance(k, str):
                    errors.append({"field": f"{_path_text(path)}[{k!r}]"[:200],
                                   "message": f"a key of type {type(k).__qualname__}: JSON keys "
                                              f"are text, give {str(k)!r}"[:200]})
                if isinstance(v, _CONTAINERS):
                    stack.append((v, (path, str(k)), depth + 1))
        elif isinstance(obj, (list, tuple)):
            seen.add(id(obj))
            stack.extend((v, (path, i), depth + 1) for i, v in enumerate(obj)
                         if isinstance(v, _CONTAINERS))
    return errors


def check_input(value: Any, *, where: str) -> None:
    """Raise ``ValueNotStorable`` unless ``value`` is JSON a job can be run with."""
    encode_input(value, where=where)


_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(text: str) -> str | None:
    """The first lone surrogate in ``text`` (no character UTF-8 can carry), or None."""
    found = None if text.isascii() else _SURROGATE.search(text)
    return found.group() if found else None


def is_unicode(text: str) -> bool:
    """False for text UTF-8 cannot hold: a lone surrogate, left by a bad decode (a
    ``surrogateescape`` file name, a subprocess's bytes)."""
    return text.isascii() or _SURROGATE.search(text) is None


def storable_text(text: str) -> str:
    """``text`` with each surrogate code point replaced by U+FFFD: output is kept, not
    refused (one bad character must not cost a log all the lines written beside it)."""
    return text if is_unicode(text) else _SURROGATE.sub("\ufffd", text)


def number_held(value: Any) -> Any:
    """The Python scalar a numpy-like scalar holds (``np.int64(3)`` is 3), else ``value``."""
    if type(value) in _PLAIN_SCALARS or getattr(value, "ndim", None) != 0:
        return value
    try:
        held = value.item()
    except Exception:  # an odd object's item() must not break a check
        return value
    return held if type(held) in _PLAIN_SCALARS else value


def plain(value: Any) -> Any:
    """A JSON-only copy of ``value`` by the output rule (without the size limit)."""
    return _clean(value, "value", [])[0]


def safe_dumps(value: Any) -> str:
    """``json.dumps`` for answers: a value that cannot be encoded is cleaned, never a crash."""
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        clean, depth = _clean(value, "value", [])
        if depth > MAX_DEPTH:
            clean = _cut_deep(clean, MAX_DEPTH)
        return _dumps_iterative(clean)


def loads_or_placeholder(text: str, loads: Any = json.loads) -> Any:
    """Decode stored JSON text; text nothing can decode becomes a readable placeholder."""
    try:
        return loads(text)
    except (ValueError, RecursionError) as exc:
        return {"unreadable": f"{type(exc).__name__}: {str(exc)[:200]}",
                "preview": text[:PREVIEW_CHARS]}


# ---------------------------------------------------------------------------- walks
# All iterative: values nested tens of thousands deep must not hit the recursion limit.


def nested_within(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value``'s containers nest at most ``limit`` levels (an iterative walk)."""
    return _depth_within(value, limit)


def _depth_within(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        obj, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(obj, Mapping):
            stack.extend((v, depth + 1) for v in obj.values() if not isinstance(v, _SCALARS))
        elif isinstance(obj, (list, tuple)):
            stack.extend((v, depth + 1) for v in obj if not isinstance(v, _SCALARS))
    return True


# a value's path as a chain (parent, key or index): rendered only when a note names it,
# since building every path as text cost time quadratic in the depth (50,000 levels took
# 12 s), and each step's text alone was a fifth of walking a long list
_Path = tuple[Any, Any]
# a stack item that marks leaving a container: it is no longer above what comes next
_LEAVE = object()


def _path_text(path: _Path | None) -> str:
    steps: list[str] = []
    while path is not None:
        path, step = path
        steps.append(step if path is None else f"[{step}]" if type(step) is int
                      else f"[{step!r}]")
    return "".join(reversed(steps))


_PLAIN_SCALARS = frozenset({str, bool, type(None), int, float})
_NUMBERS = frozenset({bool, int, float})
_INTS = frozenset({bool, int})


def _scalars_copy(items: list[Any]) -> tuple[list[Any], list[tuple[int, str]]] | None:
    """A long list of JSON scalars stored by the rule at C speed (an array's ``tolist()``).

    ``items`` (a list of the caller's own) with each non-finite float nulled, and those
    floats' (index, repr); None when an item needs the walk of :func:`_clean`.
    """
    types = set(map(type, items))
    if not types <= _PLAIN_SCALARS:
        return None
    if int in types:
        ints = items if types <= _INTS else [v for v in items if type(v) is int]
        if max(max(ints), -min(ints)).bit_length() > _MAX_INT_DIGITS * 3:
            return None  # an int written as its hex text, with its note
    if float not in types:
        return items, []
    if types <= _NUMBERS:
        try:  # a nan or an infinity makes the sum one (so may a huge sum: then look)
            if math.isfinite(sum(items)):
                return items, []
        except OverflowError:
            pass
    nulled = [(i, repr(v)) for i, v in enumerate(items)
              if type(v) is float and not math.isfinite(v)]
    for i, _ in nulled:
        items[i] = None
    return items, nulled


def _clean(value: Any, where: str, notes: list[dict[str, Any]],
           arrays_noted: bool = False, arrays_summarized: bool = False) -> tuple[Any, int]:
    """A JSON-only copy of ``value`` by the output rule, and its container depth.

    ``arrays_noted``: an object turned into a list by its ``tolist()`` (an array) gets a
    note too, as a job's input must (the job would get a list, not what it was given)."""
    root: list[Any] = [None]
    deepest = 0
    # the containers on the way down to the current one (a cycle points back into
    # them); kept as one set with leave markers, not a set per level, for the same reason
    above: set[int] = set()
    # (object, container to put the clean copy in, key in it, path, depth)
    stack: list[tuple[Any, Any, Any, Any, int]] = [(value, root, 0, (None, where), 0)]

    def note(path: _Path, original: str, stored_as: str, step: str = "") -> None:
        if len(notes) < 100:
            notes.append({"path": _path_text(path) + step, "original": original,
                          "stored_as": stored_as})

    while stack:
        obj, into, key, path, depth = stack.pop()
        if obj is _LEAVE:
            above.discard(id(into))  # into holds the container left (alive, so its id is)
            continue
        if isinstance(obj, bool) or obj is None or isinstance(obj, str):
            into[key] = str(obj) if type(obj) not in (str, bool, type(None)) else obj
            continue
        if isinstance(obj, int):
            obj = int(obj)
            if obj.bit_length() > _MAX_INT_DIGITS * 3:
                into[key] = hex(obj)
                note(path, f"an int of {obj.bit_length()} bits", "its hex text")
            else:
                into[key] = obj
            continue
        if isinstance(obj, float):
            if math.isfinite(obj):
                into[key] = float(obj)
            else:
                into[key] = None
                note(path, repr(float(obj)), "null")
            continue
        # within the depth bound only: a tolist() returning [another such object] (each
        # call one level deeper) would otherwise never end
        if not isinstance(obj, (Mapping, list, tuple)) and depth <= MAX_DEPTH:
            items = _array_items(obj) if arrays_summarized else None
            if items is not None and items > MAX_ARRAY_ITEMS:
                into[key] = _array_summary(obj, items)
                note(path, f"an array of {items:,} items", "a summary (more than "
                           f"{MAX_ARRAY_ITEMS:,} items are not stored as JSON)")
                continue
            try:  # numpy arrays and scalars; getattr itself may raise on odd objects
                converted = obj.tolist() if callable(getattr(obj, "tolist", None)) else obj
            except Exception:
                converted = obj
            # once: a tolist() that hands back another such object is not followed again
            if converted is not obj and isinstance(converted, (*_SCALARS, int, float, list)):
                if arrays_noted and isinstance(converted, list):
                    note(path, f"an object of type {type(obj).__qualname__} (give its "
                               ".tolist())", "a list")
                stack.append((converted, into, key, path, depth))
                continue
        if isinstance(obj, (Mapping, list, tuple, set, frozenset)):
            if id(obj) in above:
                into[key] = "<cycle>"
                note(path, "a reference to a container holding it", "the text <cycle>")
                continue
            level = depth + 1
            deepest = max(deepest, level)
            above.add(id(obj))
            stack.append((_LEAVE, obj, None, None, 0))  # popped after all it holds
            if isinstance(obj, Mapping):
                copy: Any = {}
                for k, v in obj.items():
                    if isinstance(k, str):
                        name = k
                    else:
                        name = _key_text(k)
                        if not isinstance(k, (int, float, bool)) and k is not None:
                            note(path, f"a key of type {type(k).__qualname__}", "its str()",
                                 f"[{name!r}]")
                    if name in copy:  # 1 and "1" are both the key "1" in JSON
                        note(path, "a second key with this text", "one of the values",
                             f"[{name!r}]")
                    copy[name] = None
                    stack.append((v, copy, name, (path, name), level))
            else:
                items = list(obj)
                if isinstance(obj, (set, frozenset)):
                    try:
                        items = sorted(items)
                    except TypeError:
                        pass
                scalars = _scalars_copy(items) if len(items) > 16 else None
                if scalars is not None:
                    copy, nulled = scalars
                    for i, original in nulled[:100]:
                        note((path, i), original, "null")
                else:
                    copy = [None] * len(items)
                    for i, v in enumerate(items):
                        stack.append((v, copy, i, (path, i), level))
            into[key] = copy
            continue
        try:
            text = repr(obj)
        except Exception as exc:  # a broken __repr__ must not break storing
            text = f"<{type(obj).__qualname__} whose repr raised {type(exc).__name__}>"
        into[key] = text[:REPR_CHARS]
        note(path, f"an object of type {type(obj).__qualname__}", "its repr")
    return root[0], deepest


def _array_items(obj: Any) -> int | None:
    """How many items an array-like ``obj`` holds (its ``size``), None if it is none."""
    try:
        size = getattr(obj, "size", None)
        if isinstance(size, int) and callable(getattr(obj, "tolist", None)):
            return int(size)
    except Exception:  # an odd object's getattr may raise: looked at as any other
        pass
    return None


def _array_summary(obj: Any, items: int) -> str:
    """What a too-large array is: its type, shape and item type, never its items."""
    described = f"{type(obj).__name__}"
    with contextlib.suppress(Exception):
        described += f" of shape {tuple(obj.shape)}"
    with contextlib.suppress(Exception):
        described += f", {obj.dtype}"
    return f"<{described}: {items:,} items, too many to store as JSON>"[:REPR_CHARS]


def _key_text(key: Any) -> str:
    """A dict key as json writes it (``None`` → ``"null"``, ``True`` → ``"true"``), else ``str``."""
    if key is None or isinstance(key, bool):
        return json.dumps(key)
    if isinstance(key, float):
        return repr(float(key))
    if isinstance(key, int):
        return str(int(key)) if key.bit_length() <= _MAX_INT_DIGITS * 3 else hex(key)
    return str(key)


def _cut_deep(value: Any, limit: int) -> Any:
    """``value`` with containers below ``limit`` levels replaced by the text ``"<too deep>"``."""
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int]] = [(value, root, 0, 0)]
    while stack:
        obj, into, key, depth = stack.pop()
        if isinstance(obj, dict):
            if depth >= limit:
                into[key] = "<too deep>"
                continue
            copy: Any = {}
            for k, v in obj.items():
                copy[k] = None
                stack.append((v, copy, k, depth + 1))
            into[key] = copy
        elif isinstance(obj, list):
            if depth >= limit:
                into[key] = "<too deep>"
                continue
            copy = [None] * len(obj)
            for i, v in enumerate(obj):
                stack.append((v, copy, i, depth + 1))
            into[key] = copy
        else:
            into[key] = obj
    return root[0]


def _dumps_iterative(value: Any) -> str:
    """Compact, key-sorted JSON of a clean value (JSON types only), at any depth."""
    out: list[str] = []
    # items are values to write, or literal text (wrapped in a 1-tuple) to emit as is
    stack: list[Any] = [value]
    while stack:
        obj = stack.pop()
        if type(obj) is tuple:
            out.append(obj[0])
        elif isinstance(obj, dict):
            if not obj:
                out.append("{}")
                continue
            out.append("{")
            pending: list[Any] = []
            for i, k in enumerate(sorted(obj)):
                if i:
                    pending.append((",",))
                pending.append((json.encoder.encode_basestring_ascii(k) + ":",))
                pending.append(obj[k])
            pending.append(("}",))
            stack.extend(reversed(pending))
        elif isinstance(obj, list):
            if not obj:
                out.append("[]")
                continue
            out.append("[")
            pending = []
            for i, v in enumerate(obj):
                if i:
                    pending.append((",",))
                pending.append(v)
            pending.append(("]",))
            stack.extend(reversed(pending))
        else:
            out.append(_strict_dumps(obj))
    return "".join(out)


def walk_fields(value: Any) -> Iterator[tuple[str, Any]]:
    """(path, item) of a decoded JSON body and of everything in it, paths named as a
    problem's fields are ("body" for the whole, then ``params.a``, ``tags[0]``)."""
    pending: list[tuple[str, Any]] = [("body", value)]
    while pending:
        path, item = pending.pop()
        yield path, item
        if isinstance(item, dict):
            pending.extend((key if path == "body" else f"{path}.{key}", child)
                           for key, child in item.items())
        elif isinstance(item, list):
            pending.extend((f"{path}[{i}]", child) for i, child in enumerate(item))


def loads_keys_once(text: str | bytes, **options: Any) -> Any:
    """``json.loads(text, **options)``; KeyGivenTwice when an object holds a key twice.

    Python keeps the last of them, another reader of the same text (a proxy, an audit
    log, the sender's own checks) may keep the first: such input is refused, not guessed.
    """
    # each object holding a key twice, by id, with that key (the object kept: a dropped
    # one's id must not be taken by a later object)
    twice: dict[int, tuple[dict[str, Any], str]] = {}

    def keys_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen: set[str] = set()
            twice[id(obj)] = (obj, next(k for k, _ in pairs if k in seen or seen.add(k)))
        return obj

    value = json.loads(text, object_pairs_hook=keys_once, **options)
    if twice:
        # one still in the value (not the first in the text, necessarily): one whose
        # parent dropped it (its key given twice too) is gone, and that parent is named
        for where, item in walk_fields(value):
            found = twice.get(id(item)) if isinstance(item, dict) else None
            if found is not None:
                key = found[1]
                raise KeyGivenTwice(key if where == "body" else f"{where}.{key}")
    return value

