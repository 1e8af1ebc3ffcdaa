"""The engine's shape (issue 15): parts with one job each, kinds as plug-ins, public seams only.

The import graph and the private-name rule are read from the source with
``ast`` (every import counts: at module level, in a function, under
``TYPE_CHECKING``); the plug-in tests run real managers on real databases.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import jupyter_tasks
from jupyter_tasks import TaskManager
from jupyter_tasks.engine.config import ManagerConfig
from jupyter_tasks.engine.kinds import FunctionKind, ValidSpec, core_kinds
from jupyter_tasks.exceptions import InvalidRequest
from jupyter_tasks.kinds import standard
from jupyter_tasks.registry import Registry

PACKAGE = Path(jupyter_tasks.__file__).parent


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package modules it imports (any import, anywhere in the file)."""
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")
                if node.level:
                    base = base[:len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                # `from . import x` names a module x when there is one
                targets = [f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target
                           for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                # a module importing its own package's __init__ is how Python loads it
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def private_uses(root: Path) -> list[str]:
    """``from m import _x`` and ``obj._x`` where ``_x`` is defined in another module."""
    defined: dict[str, set[str]] = {}
    trees = {p: ast.parse(p.read_text()) for p in root.rglob("*.py")}
    for path, tree in trees.items():
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)  # __slots__ entries
        defined[str(path)] = {n for n in names if n.startswith("_") and not n.startswith("__")}
    hits = []
    for path, tree in trees.items():
        own = defined[str(path)]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                hits += [f"{path.relative_to(root)}:{node.lineno} imports {a.name}"
                         for a in node.names
                         if a.name.startswith("_") and not a.name.startswith("__")]
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_") \
                    and not node.attr.startswith("__") and node.attr not in own:
                hits.append(f"{path.relative_to(root)}:{node.lineno} "
                            f"{ast.unparse(node.value)}.{node.attr}")
    return sorted(hits)


def test_the_package_has_no_import_circles() -> None:
    assert cycles(import_graph(PACKAGE)) == []


def test_no_module_uses_another_modules_private_names() -> None:
    # os._exit is the documented way out of a forked child, sys._current_frames the
    # documented way to see where another thread is: not private names
    allowed = {"os._exit", "sys._current_frames"}
    hits = [h for h in private_uses(PACKAGE) if h.split(" ", 1)[1] not in allowed]
    assert hits == []


def test_the_manager_module_is_a_facade() -> None:
    """Each engine part stays one job: no module of the engine grows back into a god object."""
    sizes = {p.name: len(p.read_text().splitlines())
             for p in [PACKAGE / "manager.py", *(PACKAGE / "engine").glob("*.py")]}
    assert max(sizes.values()) < 500, sizes


class EchoKind:
    """A kind of our own: ``echo`` work returns its text reversed."""

    kind = "echo"
    work_field = "code"  # reuses a work field the REST contract knows

    def validate(self, spec: Mapping[str, Any], registry: Registry) -> ValidSpec:
        if not isinstance(spec["code"], str):
            raise InvalidRequest("code must be a string")
        return ValidSpec({"code": spec["code"]}, label="echo")

    async def execute(self, task: Any, ctx: Any, run: Any) -> Any:
        return task.spec["code"][::-1]


async def test_a_manager_runs_the_kinds_it_is_given(db_path: Path) -> None:
    async with TaskManager(db_path, kinds=[*core_kinds(), EchoKind()],
                           make_default=False) as manager:
        done = await manager.submit_spec({"code": "abc"}, mode="sync")
        assert (done.kind, done.status, done.result) == ("echo", "succeeded", "cba")
        with pytest.raises(InvalidRequest, match="no job kind for 'notebook'"):
            await manager.submit_spec({"notebook": "x.ipynb"}, mode="background")
        assert await manager.store.list_tasks(limit=10) and \
            len(await manager.store.list_tasks(limit=10)) == 1  # the refusal wrote nothing


async def test_kinds_are_installed_by_whoever_builds_the_manager(db_path: Path) -> None:
    async with TaskManager(db_path, kinds=[FunctionKind()], make_default=False) as bare:
        assert sorted(bare.kinds) == ["function"]
        with pytest.raises(InvalidRequest, match="no job kind for 'command'"):
            await bare.submit_spec({"command": ["true"]}, mode="background")
    # a plain TaskManager() runs the standard kinds, which `import jupyter_tasks` chose
    plain = TaskManager(db_path, make_default=False)
    assert sorted(plain.kinds) == sorted(k.kind for k in standard())
    plain.install_kind(EchoKind())
    assert type(plain.kinds["echo"]) is EchoKind


def test_options_are_a_config() -> None:
    manager = TaskManager(lease_seconds=12.5, queues={"q": 3}, make_default=False)
    assert (manager.config.lease_seconds, manager.queues) == (12.5, {"q": 3})
    same = TaskManager(config=ManagerConfig(lease_seconds=12.5, queues={"q": 3}))
    assert same.config.lease_seconds == 12.5 and same.queues == {"q": 3}
    with pytest.raises(TypeError, match=r"lease_secnds.*fields of ManagerConfig"):
        TaskManager(lease_secnds=1)
    with pytest.raises(ValueError, match="no worker runs nothing"):
        TaskManager(as_worker=False, queues={"q": 1})
    # a lease that lapses between two heartbeats: a reaper would run its jobs again
    with pytest.raises(ValueError, match=r"lease_seconds \(2\.0\) must be longer than "
                                         r"heartbeat_interval \(2\.0\)"):
        TaskManager(lease_seconds=2.0, make_default=False)
