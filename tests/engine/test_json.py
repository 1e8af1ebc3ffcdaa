"""The JSON codec rows and snapshots go through: same text as ``json``, same errors."""

from __future__ import annotations

import datetime
import json
import math

import pytest

from jupyter_tasks.models import dumps, loads_stored

VALUES = [
    None, True, 0, -7, 10**30, 1.5, "plain", "é \" \n", [], {},
    {"b": [1, 2, {"d": None, "c": "x"}], "a": 1.25}, (1, "tuple"),
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_dumps_is_canonical_compact_json(value: object) -> None:
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"))
    assert dumps(value) == expected
    assert loads_stored(expected) == json.loads(expected)


def test_dumps_keeps_nan_and_stringifies_other_objects() -> None:
    assert dumps([math.inf, datetime.date(2026, 11, 24)]) == '[Infinity,"2026-11-24"]'


def test_a_cycle_is_a_value_error_not_a_crash() -> None:
    cyclic: list[object] = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="Circular reference"):
        dumps({"a": cyclic})
    assert dumps({"a": [1]}) == '{"a":[1]}'  # nothing left behind by the failed call


@pytest.mark.parametrize("text", ["", "{", '{"a":1}x', "nope", "[1,]"])
def test_loads_stored_reports_bad_text_as_json_does(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    with pytest.raises(json.JSONDecodeError):
        loads_stored(text)


def test_loads_stored_accepts_surrounding_whitespace() -> None:
    assert loads_stored(' {"a": [1, 2]}\n') == {"a": [1, 2]}


def test_task_build_checks_fields_like_the_dataclass() -> None:
    from jupyter_tasks.models import Task

    fields = {"id": "t", "kind": "function", "mode": "job", "status": "queued", "params": {}}
    assert Task.build(**fields) == Task(**fields)
    with pytest.raises(TypeError, match="status"):
        Task.build(id="t", kind="function", mode="job")
    with pytest.raises(TypeError, match="colour"):
        Task.build(**fields, colour="red")
