"""Property-based tests (Hypothesis) for the trust issue: any value, any body.

1. Arbitrary Python values returned by tasks (``background`` callables and a
   registered ``job``) on a real ``TaskManager`` over a real SQLite file: the task
   ends ``succeeded``, every stored text is strict JSON, list and replay show it,
   and the storage rule's promises (``jupyter_tasks.values``) hold.
2. Arbitrary JSON (and some non-JSON) POSTed to every route that takes a body of
   a real ``jupyter server`` subprocess: never a 5xx, a 4xx is problem+json with
   its own status and writes nothing, the server stays up.
"""

from __future__ import annotations

import asyncio
import json
import math
import reprlib
import sqlite3
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from jupyter_tasks import TaskManager, task
from jupyter_tasks import values as values_module
from jupyter_tasks.values import MAX_DEPTH, MAX_RESULT_CHARS, RESULT_ARTIFACT, safe_dumps
from tests.server.conftest import TASKS_MODULE
from tests.waiting import eventually_sync

# huge examples (300 KB values) are expected here
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

FUZZ_MODULE = TASKS_MODULE.with_name("fuzz_tasks.py")
STUB_KEYS = {"preview", "artifact", "chars", "reason"}
# ints longer than this many bits are stored as hex text (values._MAX_INT_DIGITS * 3)
HEX_BITS = 12_000


def strict_loads(text: str | bytes) -> Any:
    """json.loads that refuses NaN/Infinity, as browsers' JSON.parse does."""
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


# =========================================================== 1. values via the engine

# values handed to the registered job by index (the job runs in this process)
PICKED: list[Any] = []


@task("prop_pick", tags=["reliability"], mode="job")
def prop_pick(index: int) -> Any:
    """Return the value the test put at ``index``."""
    return PICKED[index]


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class BadGetattr:
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no attribute {name}")


class LongRepr:
    def __repr__(self) -> str:
        return "r" * 5_000


class FakeArray:
    """numpy-like: ``tolist()`` gives its items."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def tolist(self) -> list[Any]:
        return list(self.items)


def cyclic_list() -> list[Any]:
    value: list[Any] = [1, "a"]
    value.append(value)
    return value


def cyclic_dict() -> dict[str, Any]:
    value: dict[str, Any] = {"x": 1.5}
    value["self"] = [value]
    return value


def deep(depth: int, kind: str, leaf: Any) -> Any:
    """``leaf`` inside ``depth`` containers, built without recursion."""
    value = leaf
    for i in range(depth):
        k = kind if kind != "mixed" else ("list", "dict", "tuple")[i % 3]
        value = [value] if k == "list" else {"k": value} if k == "dict" else (value,)
    return value


SPECIAL_TEXT = ["\ud800", "\udfff", "a\x00b", "\x00", "\U0001f600", "\ud83d\ude00", "é\u200b",
                "\\", '"', "\u2028", ""]
SPECIAL_FLOATS = [math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308]

hashable_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(2 ** 200), 2 ** 200),
    st.floats(), st.sampled_from(SPECIAL_FLOATS), st.text(max_size=8),
    st.sampled_from(SPECIAL_TEXT), st.binary(max_size=8),
)
huge_ints = st.builds(lambda n, sign: sign * (10 ** n + 7), st.integers(5_001, 6_000),
                      st.sampled_from([1, -1]))
objects = st.sampled_from([object, BadRepr, BadGetattr, LongRepr, cyclic_list,
                           cyclic_dict]).map(lambda make: make())
scalars = st.one_of(hashable_scalars, huge_ints, objects,
                    st.text(st.characters(codec=None, exclude_categories=()), max_size=20))
keys = st.one_of(st.text(max_size=6), st.sampled_from(SPECIAL_TEXT), st.integers(),
                 st.floats(), st.tuples(st.integers(), st.text(max_size=3)), st.none())


def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=5),
        st.tuples(children, children),
        st.dictionaries(st.text(max_size=6), children, max_size=5),
        st.dictionaries(keys, children, max_size=4),
        st.frozensets(hashable_scalars, max_size=4),
        st.sets(hashable_scalars, max_size=4),
        st.lists(children, max_size=3).map(FakeArray),
    )


nested_values = st.recursive(scalars, containers, max_leaves=25)
deep_values = st.builds(deep, st.one_of(st.integers(95, 106), st.integers(150, 3_000)),
                        st.sampled_from(["list", "dict", "tuple", "mixed"]), hashable_scalars)
large_values = st.one_of(
    # a string around the result limit (its JSON adds two quotes)
    st.integers(MAX_RESULT_CHARS - 100, 320_000).map(lambda n: "x" * n),
    # ~100 characters of JSON per item
    st.integers(2_000, 3_200).map(lambda n: ["y" * 97] * n),
    st.builds(lambda n, f: {f"k{i}": f for i in range(n)}, st.integers(10_000, 25_000),
              st.sampled_from([math.nan, 1.25, -math.inf])),
)
hostile_values = st.one_of(
    nested_values, nested_values, nested_values,
    deep_values,
    large_values,
    st.lists(st.one_of(deep_values, nested_values), min_size=1, max_size=3),
)


# ------------------------------------------------------------------ the rule's model

class _Any:
    """Some value the model does not predict exactly (a repr, a dict with odd keys)."""

    def __init__(self, what: str, size: int | None = None) -> None:
        self.what = what
        self.size = size


def depth_of(value: Any) -> int:
    """Container depth as the rule counts it (a cycle counts once), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int, frozenset[int]]] = [(value, 0, frozenset())]
    while stack:
        obj, depth, above = stack.pop()
        if isinstance(obj, FakeArray):
            stack.append((obj.tolist(), depth, above))
            continue
        if not isinstance(obj, (list, tuple, dict, set, frozenset)) or id(obj) in above:
            continue
        deepest = max(deepest, depth + 1)
        inner = above | {id(obj)}
        children = obj.values() if isinstance(obj, dict) else obj
        stack.extend((v, depth + 1, inner) for v in children)
    return deepest


def model(value: Any, path: str, notes: dict[str, str],
          above: frozenset[int] = frozenset()) -> tuple[Any, bool]:
    """What the rule promises to store for ``value`` (recursive: only for shallow values).

    Returns (expected, exact); ``notes`` gets path -> what the note must say it became.
    """
    if isinstance(value, str) and any("\ud800" <= c <= "\udfff" for c in value):
        # JSON's \u escapes cannot keep a pair of surrogate code points apart: JSON readers
        # join "\ud83d\ude00" into one character (lone surrogates come back as they were)
        return json.loads(json.dumps(value)), True
    if value is None or isinstance(value, (bool, str)):
        return value, True
    if isinstance(value, int):
        if value.bit_length() > HEX_BITS:
            notes[path] = "its hex text"
            return hex(value), True
        return value, True
    if isinstance(value, float):
        if math.isfinite(value):
            return value, True
        notes[path] = "null"
        return None, True
    if isinstance(value, FakeArray):
        return model(value.tolist(), path, notes, above)
    if isinstance(value, (list, tuple, dict, set, frozenset)) and id(value) in above:
        notes[path] = "the text <cycle>"
        return "<cycle>", True
    inner = above | {id(value)}
    if isinstance(value, (list, tuple)):
        items = [model(v, f"{path}[{i}]", notes, inner) for i, v in enumerate(value)]
        return [e for e, _ in items], all(x for _, x in items)
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        items = {k: model(v, f"{path}[{k!r}]", notes, inner) for k, v in value.items()}
        # keys go through JSON as strings do (a surrogate pair comes back joined)
        return ({model(k, path, notes)[0]: e for k, (e, _) in items.items()},
                all(x for _, x in items.values()))
    if isinstance(value, (dict, set, frozenset)):
        return _Any(type(value).__name__, len(value)), False
    return _Any("repr"), False


def matches(actual: Any, expected: Any) -> bool:
    stack = [(actual, expected)]
    while stack:
        a, e = stack.pop()
        if isinstance(e, _Any):
            if e.what == "repr":
                if not (isinstance(a, str) and len(a) <= values_module.REPR_CHARS):
                    return False
            elif e.what in ("set", "frozenset"):
                if not (isinstance(a, list) and len(a) == e.size):
                    return False
            elif not (isinstance(a, dict) and (0 < len(a) <= e.size if e.size else a == {})):
                return False  # a dict with other keys: colliding str() keys may merge
        elif isinstance(e, list):
            if not isinstance(a, list) or len(a) != len(e):
                return False
            stack.extend(zip(a, e, strict=True))
        elif isinstance(e, dict):
            if not isinstance(a, dict) or a.keys() != e.keys():
                return False
            stack.extend((a[k], e[k]) for k in e)
        elif type(a) is not type(e) or a != e or (
                isinstance(e, float) and math.copysign(1, a) != math.copysign(1, e)):
            return False
    return True


def json_length(expected: Any) -> int:
    return len(json.dumps(expected, sort_keys=True, separators=(",", ":"), allow_nan=False))


# ------------------------------------------------------------------ the engine

class Engine:
    """A real TaskManager on its own event loop in a thread, over a real SQLite file."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="props-engine",
                                       daemon=True)
        self.thread.start()
        manager = TaskManager(db_path, queues={"default": 2}, flush_interval=0.02,
                              retry_base_delay=0.05, make_default=False)
        self.manager = asyncio.run_coroutine_threadsafe(manager.start(), self.loop).result(60)

    def run(self, coro: Any, timeout: float = 120) -> Any:
        return self.manager.run_sync(coro, timeout)

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db_path) as conn:
            return conn.execute(sql, args).fetchall()

    def close(self) -> None:
        self.run(self.manager.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = Engine(tmp_path_factory.mktemp("properties") / "tasks.db")
    yield engine
    engine.close()
    PICKED.clear()


class ShortRepr(reprlib.Repr):
    """A bounded repr for Hypothesis notes (ints too long for repr() included)."""

    def repr_int(self, x: int, level: int) -> str:
        return f"<int of {x.bit_length()} bits>" if x.bit_length() > 1_000 else repr(x)


SHORT_REPR = ShortRepr()
SHORT_REPR.maxlevel, SHORT_REPR.maxstring, SHORT_REPR.maxother = 8, 200, 200


def check_stored_task(engine: Engine, task_id: str, value: Any) -> None:
    """Every property of one task that returned ``value``."""
    manager = engine.manager
    done = engine.run(manager.wait(task_id, timeout=60))
    assert done.status == "succeeded", (done.status, done.error)
    # the row and every event snapshot are JSON a strict parser accepts
    (text,), = engine.rows("SELECT result FROM tasks WHERE id = ?", task_id)
    stored = strict_loads(text)
    assert stored == done.result
    snapshots = engine.rows("SELECT type, task FROM events WHERE task_id = ? ORDER BY id",
                            task_id)
    assert snapshots and snapshots[-1][0] == "task.succeeded", [t for t, _ in snapshots]
    for _, snapshot in snapshots:
        strict_loads(snapshot)
    assert strict_loads(snapshots[-1][1])["result"] == stored
    # list, replay (as the websocket sends it), and the full view
    assert task_id in {t.id for t in engine.run(manager.store.list_tasks(limit=10))}
    replay = engine.run(manager.store.events_after(0, task_id=task_id))
    # every event of the task, in order (a background task starts with task.started)
    assert [e.type for e in replay] == [t for t, _ in snapshots]
    assert replay[0].type in ("task.created", "task.started")
    for one in replay:
        assert strict_loads(one.to_json_text())["task_id"] == task_id
    strict_loads(safe_dumps(done.to_json(full=True)))
    strict_loads(safe_dumps([e.to_json() for e in replay]))
    check_the_rule(engine, done, stored, value)


def check_the_rule(engine: Engine, done: Any, stored: Any, value: Any) -> None:
    notes = done.value_notes or []
    depth = depth_of(value)
    is_stub = isinstance(stored, dict) and set(stored) == STUB_KEYS \
        and stored.get("artifact") == RESULT_ARTIFACT
    if depth > MAX_DEPTH:
        assert is_stub, f"a value {depth} deep was stored as is"
    expected, exact, expected_notes = None, False, {}
    if depth <= MAX_DEPTH:
        expected, exact = model(value, "result", expected_notes)
    event("too deep" if depth > MAX_DEPTH else "modelled exactly" if exact else "partly opaque")
    if exact:
        too_large = json_length(expected) > MAX_RESULT_CHARS
        assert is_stub == too_large, (is_stub, json_length(expected))
        if not too_large:
            # the promise: JSON-native values round-trip exactly, the rest as the rule says
            assert matches(stored, expected), (stored, expected)
            if len(notes) < 100:
                for path, became in expected_notes.items():
                    assert any(n["path"] == path and n["stored_as"] == became
                               for n in notes), (path, became, notes)
            if not expected_notes:
                assert not notes, notes
    elif depth <= MAX_DEPTH and not is_stub:
        assert matches(stored, expected), (stored, expected)
    if is_stub:
        assert any("preview" in n["stored_as"] for n in notes), notes
        artifact = engine.run(engine.manager.store.get_artifact(done.id, RESULT_ARTIFACT))
        assert artifact is not None and artifact.size == stored["chars"]
        assert stored["chars"] > MAX_RESULT_CHARS or "deep" in stored["reason"]
        if exact and depth < 500:
            whole = strict_loads(engine.manager.store.artifact_path(artifact).read_text())
            assert matches(whole, expected)
    assert depth_of(stored) <= MAX_DEPTH


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.large_base_example])
@given(value=hostile_values, as_job=st.booleans())
def test_any_returned_value_ends_succeeded_as_strict_json(engine: Engine, value: Any,
                                                          as_job: bool) -> None:
    note(f"value: {SHORT_REPR.repr(value)}")
    manager = engine.manager
    task_ids = [engine.run(manager.submit(lambda: value, mode="background")).id]
    if as_job:
        PICKED.append(value)
        task_ids.append(engine.run(manager.submit(
            "prop_pick", params={"index": len(PICKED) - 1}, mode="job")).id)
    for task_id in task_ids:
        check_stored_task(engine, task_id, value)


json_native = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-(2 ** 200), 2 ** 200),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=10),
              st.sampled_from(SPECIAL_TEXT)),
    lambda children: st.one_of(st.lists(children, max_size=5),
                               st.dictionaries(st.text(max_size=6), children, max_size=5)),
    max_leaves=30)


@settings(max_examples=200, deadline=None, database=None)
@given(value=json_native, beside=st.sampled_from(
    [math.nan, math.inf, -math.inf, b"bytes", BadRepr(), 10 ** 5_001, (1, 2), {3: "x"}]))
def test_the_rule_keeps_json_exactly_alone_and_beside_anything(value: Any, beside: Any) -> None:
    # the encoder only (no store): both of its paths, the fast one and the cleaning one
    notes: dict[str, str] = {}
    expected, exact = model(value, "result[0]", notes)
    assert exact and not notes
    alone = values_module.encode(value, where="result")
    assert matches(strict_loads(alone.text), model(value, "result", {})[0]) and not alone.notes
    mixed = values_module.encode([value, beside], where="result")
    decoded = strict_loads(mixed.text)
    assert matches(decoded[0], expected), (decoded, expected)
    assert not [n for n in mixed.notes if n["path"].startswith("result[0]")], mixed.notes


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5),
                    st.sampled_from([10 ** 5_001, -(10 ** 5_001), 2 ** 63, True, 0.0, -0.0]))


def item_by_item(items: list[Any], where: str) -> tuple[str, list[dict[str, Any]]]:
    """The oracle: each item alone through the walk (a one-item list), joined."""
    texts, notes = [], []
    for i, item in enumerate(items):
        alone = values_module.encode([item], where=where)
        texts.append(alone.text[1:-1])
        notes += [{**n, "path": n["path"].replace(f"{where}[0]", f"{where}[{i}]", 1)}
                  for n in alone.notes]
    return "[" + ",".join(texts) + "]", notes


@settings(max_examples=300, deadline=None, database=None)
@given(items=st.lists(scalars, min_size=17, max_size=80), as_array=st.booleans())
def test_a_long_list_of_scalars_is_stored_as_its_items_are_one_by_one(
        items: list[Any], as_array: bool) -> None:
    # long lists of scalars (an array's tolist()) take a path of their own, at C speed
    value: Any = items
    if as_array and all(type(v) is float for v in items):
        import array
        value = array.array("d", items)
    def in_order(notes: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
        return sorted((n["path"], n["original"], n["stored_as"]) for n in notes)

    encoded = values_module.encode(value, where="result")
    text, notes = item_by_item(items, "result")
    assert encoded.text == text
    assert in_order(encoded.notes) == in_order(notes)
    inside = values_module.encode({"k": value}, where="result")
    assert inside.text == '{"k":' + encoded.text + "}"
    assert in_order(inside.notes) == in_order(
        [{**n, "path": n["path"].replace("result", "result['k']", 1)} for n in notes])


def test_the_models_check_can_tell_a_wrong_value() -> None:
    notes: dict[str, str] = {}
    expected, exact = model({"a": [1, math.nan, (2, 3)], "b": -0.0}, "result", notes)
    assert exact and notes == {"result['a'][1]": "null"}
    assert matches({"a": [1, None, [2, 3]], "b": -0.0}, expected)
    assert not matches({"a": [1, None, [2, 3]], "b": 0.0}, expected)
    assert not matches({"a": [1, None, [2, 3.0]], "b": -0.0}, expected)
    assert not matches({"a": [1, "NaN", [2, 3]], "b": -0.0}, expected)


class EndlessTolist:
    """A numpy-like object whose ``tolist()`` hands back another one, forever (bounded here)."""

    calls = 0

    def tolist(self) -> Any:
        EndlessTolist.calls += 1
        return EndlessTolist() if EndlessTolist.calls < 20_000 else "gave up"


def test_an_endless_tolist_chain_is_cut_short() -> None:
    # found by this file's strategy: it looped forever, the task stayed running
    EndlessTolist.calls = 0
    values_module.encode(EndlessTolist(), where="result")
    assert EndlessTolist.calls <= 100


class EndlessTolistList:
    """Like ``EndlessTolist``, but ``tolist()`` wraps the next one in a list."""

    calls = 0

    def tolist(self) -> Any:
        EndlessTolistList.calls += 1
        return [EndlessTolistList()] if EndlessTolistList.calls < 20_000 else "gave up"


def test_an_endless_tolist_chain_through_lists_is_cut_short() -> None:
    # found by this file: tolist() returning [another such object] was followed forever
    EndlessTolistList.calls = 0
    values_module.encode(EndlessTolistList(), where="result")
    assert EndlessTolistList.calls <= MAX_DEPTH + 10


def test_colliding_keys_leave_a_note() -> None:
    # they lost a value silently
    encoded = values_module.encode({1: "a", "1": "b"}, where="result")
    assert len(strict_loads(encoded.text)) == 2 or encoded.notes


# =========================================================== 2. bodies via the server

KNOWN_FIELDS = ["name", "command", "notebook", "code", "params", "cwd", "env", "parameters",
                "input_data", "label", "task_key", "idempotency_key", "queue", "priority",
                "timeout", "max_retries", "memory_limit_mb", "callback_url", "answer"]
OVERFLOWS = ["1e999", "-1e999", "1E400", "-0", "0e0", "1e-400", "9" * 5_000, "-" + "9" * 4_400,
             "123456789012345678901234567890", "2147483648", "-1", "0.5", "1e9", "1.0"]
RAW_STRINGS = ['"a\\u0000b"', '"\\u0000"', '"\\ud800"', '"x\\udfff"', '"\\ud83d\\ude00"',
               '"\U0001f600"', '""', '"%00"', '"../../etc/passwd"', '"/abs"',
               '"http://127.0.0.1:1/cb"', '"yes"', '"fuzz_echo"', '"srv_confirm"']


def raw_object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"


json_keys = st.one_of(st.text(max_size=8), st.sampled_from(KNOWN_FIELDS),
                      st.text(st.characters(codec=None, exclude_categories=()), max_size=4)
                      ).map(json.dumps)
json_leaves = st.one_of(
    st.sampled_from(["null", "true", "false"]),
    st.integers().map(str), st.integers(-(2 ** 80), 2 ** 80).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(OVERFLOWS), st.sampled_from(RAW_STRINGS),
    st.text(max_size=12).map(json.dumps),
)
json_docs = st.recursive(json_leaves, lambda children: st.one_of(
    st.lists(children, max_size=5).map(lambda xs: "[" + ",".join(xs) + "]"),
    st.lists(st.tuples(json_keys, children), max_size=5).map(raw_object),
), max_leaves=20)
deep_docs = st.builds(
    lambda depth, kind: "[" * depth + "]" * depth if kind == "list"
    else '{"params":' * depth + "1" + "}" * depth,
    st.integers(90, 6_000), st.sampled_from(["list", "object"]))
any_json = st.one_of(json_docs, json_docs, json_leaves, deep_docs)

# routes -> valid bodies (field -> raw JSON text)
VALID: dict[str, list[dict[str, str]]] = {
    "submit": [
        {"name": '"fuzz_echo"', "params": '{"text": "hi"}'},
        {"command": '["echo", "x"]', "env": '{"A": "b"}', "label": '"cmd"'},
        {"code": '"print(1)"', "input_data": '{"x": [1, 2.5]}', "priority": "3"},
        {"name": '"fuzz_echo"', "params": "{}", "timeout": "10", "max_retries": "1",
         "queue": '"default"', "task_key": '"k"', "callback_url": '"http://127.0.0.1:9/x"'},
    ],
    "execute": [{"params": '{"text": "hi", "flag": true}'}, {"params": "{}", "label": '"e"'},
                {}],
    "fork": [{"params": '{"text": "forked"}'}, {"label": '"f"'}, {}],
    "confirm": [{"answer": '"yes"'}, {"answer": '"no"'}],
    "cancel": [{}],
    "rerun": [{}],
}


@st.composite
def mutated_bodies(draw: st.DrawFn, route: str) -> bytes:
    body = dict(draw(st.sampled_from(VALID[route])))
    field = draw(st.one_of(st.sampled_from(sorted(body) or ["params"]),
                           st.sampled_from(KNOWN_FIELDS), json_keys.map(json.loads)))
    value = draw(any_json)
    if draw(st.booleans()) and "params" in body:  # one level in: a parameter's value
        body["params"] = raw_object([('"text"', value)])
    else:
        body[field] = value
    return serialize(body)


def serialize(body: dict[str, str]) -> bytes:
    return raw_object([(json.dumps(k), v) for k, v in body.items()]).encode()


BIG = b'{"name": "fuzz_echo", "params": {"text": "' + b"x" * (1 << 20) + b'"}}'


def bodies(route: str) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.sampled_from(VALID[route]).map(serialize),
        # mostly valid bodies with one thing wrong: they reach furthest into the handlers
        mutated_bodies(route), mutated_bodies(route), mutated_bodies(route),
        mutated_bodies(route),
        any_json.map(str.encode),
        st.binary(max_size=40),
        st.sampled_from([b"", b" ", b"{", b'{"a": NaN}', b'{"a": Infinity}', b"\xff\xfe",
                         b'{"answer": "yes"', b'"\\ud800"', BIG]),
    )


post_requests = st.sampled_from(sorted(VALID)).flatmap(
    lambda route: st.tuples(st.just(route), bodies(route), st.sampled_from(
        ["application/json", "application/json; charset=utf-8", "text/plain", None])))


class Client:
    """Raw bytes over urllib to a ``ServerProcess``; answers (code, headers, body bytes)."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def send(self, method: str, path: str, data: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
        req = urllib.request.Request(self.server.url + path, data=data, method=method, headers={
            "Authorization": f"token {self.server.token}", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers, err.read()

    def json(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        data = json.dumps(body or {}).encode() if method == "POST" else None
        code, _, raw = self.send(method, path, data,
                                 {"Content-Type": "application/json", **headers})
        assert code < 300, (code, raw[:300])
        return strict_loads(raw)


def count_rows(db_path: Path) -> tuple[int, int]:
    with sqlite3.connect(db_path) as conn:
        return (conn.execute("SELECT count(*) FROM tasks").fetchone()[0],
                conn.execute("SELECT count(*) FROM events").fetchone()[0])


def test_any_body_on_any_route_is_answered_and_4xx_writes_nothing(server_factory,
                                                                  db_path: Path) -> None:
    # no job workers: queued submissions never run random commands
    server = server_factory("--JupyterTasksApp.workers=default=0",
                            modules=f"{FUZZ_MODULE},{TASKS_MODULE}")
    client = Client(server)
    submit = {"name": "fuzz_echo", "params": {"text": "t"}}
    targets = {"fork": client.json("POST", "/api/tasks", submit)["id"],
               "cancel": client.json("POST", "/api/tasks", submit)["id"],
               "rerun": client.json("POST", "/api/tasks", submit)["id"]}
    client.json("POST", f"/api/tasks/{targets['rerun']}/cancel")

    def status(task_id: str) -> str:
        return client.json("GET", f"/api/tasks/{task_id}")["status"]

    def new_confirm_target() -> str:
        task_id = client.json("POST", "/api/tasks/registry/srv_confirm/execute", {},
                              Prefer="respond-async")["id"]
        eventually_sync(lambda: client.json("GET", f"/api/tasks/{task_id}")["confirmation"],
                        what="a pending confirmation")
        return task_id

    targets["confirm"] = new_confirm_target()
    answered: Counter[tuple[str, int]] = Counter()
    paths = {"submit": lambda: "/api/tasks",
             "execute": lambda: "/api/tasks/registry/fuzz_echo/execute",
             **{route: (lambda route=route: f"/api/tasks/{targets[route]}/{route}")
                for route in ("fork", "confirm", "cancel", "rerun")}}

    @settings(max_examples=200, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(request=post_requests)
    def post_anything(request: tuple[str, bytes, str | None]) -> None:
        route, body, content_type = request
        note(f"POST {route} ({content_type}): {body[:500]!r}")
        headers = {"Prefer": "respond-async"} if route == "execute" else {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        before = count_rows(db_path)
        code, answer_headers, raw = client.send("POST", paths[route](), body, headers)
        event(f"{route} {code}")
        answered[route, code] += 1
        assert code < 500, (route, body[:300], code, raw[:500])
        assert server.popen.poll() is None, "the server died"
        if code >= 400:
            assert answer_headers["Content-Type"].startswith("application/problem+json"), \
                (code, answer_headers["Content-Type"])
            problem = strict_loads(raw)
            assert problem["status"] == code, (code, problem)
            assert count_rows(db_path) == before, (route, body[:300], code, raw[:300])
            return
        answer = strict_loads(raw)
        if route == "execute":  # it runs in the server: let it end before the next count
            task_id = answer.get("id") or answer.get("task_id")
            eventually_sync(lambda: status(task_id) not in ("queued", "running"),
                            what="the executed task ends")
        if route == "confirm":
            eventually_sync(lambda: status(targets["confirm"]) == "succeeded",
                            what="the confirmed task ends")
            targets["confirm"] = new_confirm_target()

    post_anything()
    # both sides of the properties were exercised: accepted bodies and refused ones
    assert any(code < 300 for _, code in answered) and any(code >= 400 for _, code in answered)
    code, _, _ = client.send("GET", "/api/tasks/stats")
    assert code == 200 and server.popen.poll() is None


def _describe_the_strategies_now() -> None:
    """Name every lambda of this file's strategies while the process is fresh.

    Hypothesis names a lambda (for a strategy's repr, which it takes when it first
    validates a strategy) by parsing this file with ``ast.parse``. On CPython 3.11 that
    parse once raised ``SystemError: AST constructor recursion depth mismatch`` when
    taken deep in a worker that had run other tests (a CPython bug of the AST
    constructor's depth count): done at import, the names are cached for good.
    """
    for strategy in (hostile_values, json_native, any_json, post_requests):
        repr(strategy)


_describe_the_strategies_now()
