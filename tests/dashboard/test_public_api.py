"""The dashboard and its tests use Textual, Rich and the engine through their public API only."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import jupyter_tasks_dashboard

PACKAGE = Path(jupyter_tasks_dashboard.__file__).parent
TESTS = Path(__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py")) + sorted(TESTS.glob("*.py"))


def private(name: str) -> bool:
    """A ``_name`` (dunders are public protocol)."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def defined_names(tree: ast.AST) -> set[str]:
    """The private names a file defines itself: functions, classes, attributes, imports."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return {name for name in names if private(name)}


def package_names() -> set[str]:
    """Every private name the dashboard package defines (a subclass may use its base's)."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        names |= defined_names(ast.parse(path.read_text()))
    return names


def static_uses(path: Path, own: set[str]) -> Iterator[str]:
    """``obj._x`` not defined in this file, ``self._x`` defined nowhere here, private imports."""
    tree = ast.parse(path.read_text())
    local = defined_names(tree)
    where = path.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr):
            base = node.value
            mine = isinstance(base, ast.Name) and base.id in ("self", "cls")
            if (mine and node.attr not in own) or (not mine and node.attr not in local):
                yield f"{where}:{node.lineno} {ast.unparse(node)}"
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and any(private(part) for part in (node.module or "").split(".")):
                yield f"{where}:{node.lineno} from {node.module} import"
            for alias in node.names:
                if private(alias.name):
                    yield f"{where}:{node.lineno} import {alias.name} from {node.module}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if any(private(part) for part in alias.name.split(".")):
                    yield f"{where}:{node.lineno} import {alias.name}"


def overrides() -> Iterator[str]:
    """A ``_name`` a dashboard class defines that a dependency's base class also has."""
    for path in sorted(PACKAGE.rglob("*.py")):
        module = importlib.import_module(f"{PACKAGE.name}.{path.stem}")
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef) or not hasattr(module, node.name):
                continue
            # what the class body writes (Textual's metaclass adds private names of its own)
            names = {name for name in defined_names(ast.Module(body=node.body, type_ignores=[]))
                     if name in vars(getattr(module, node.name))}
            theirs = [base for base in getattr(module, node.name).__mro__[1:]
                      if not base.__module__.startswith(PACKAGE.name) and base is not object]
            for name in sorted(names):
                if any(name in vars(base) for base in theirs):
                    yield f"{module.__name__}.{node.name}.{name}"


def test_the_scan_sees_each_kind_of_private_use(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from textual.widgets._toast import Toast\n"
                      "class A:\n    def f(self, app):\n"
                      "        return app._notifications, self._background_screens\n")
    found = list(static_uses(sample, set()))
    assert len(found) == 3, found


def test_no_private_names_of_dependencies() -> None:
    own = package_names()
    found = [use for path in SOURCES for use in static_uses(path, own)]
    assert found == []


def test_no_overrides_of_a_dependencys_private_methods() -> None:
    assert list(overrides()) == []


async def test_screen_text_reads_the_screenshot_cell_by_cell() -> None:
    from jupyter_tasks_dashboard.tasks_app import screenshot_text
    from textual.app import App, ComposeResult
    from textual.screen import ModalScreen
    from textual.widgets import Static

    class Question(ModalScreen[None]):
        def compose(self) -> ComposeResult:
            yield Static("sure? <y> & n", id="q")

    class Two(App[None]):
        CSS = "Static { width: auto; } #q { margin: 0 4; }"

        def compose(self) -> ComposeResult:
            yield Static("日本語  wide <then> narrow &")

    app = Two()
    async with app.run_test(size=(40, 4)) as pilot:
        lines = screenshot_text(app.export_screenshot(), 40, 4).splitlines()
        assert lines[0] == "日本語  wide <then> narrow &" + " " * 12  # 日本語 is 6 cells
        assert lines[1:] == [" " * 40] * 3
        await app.push_screen(Question())
        await pilot.pause()
        first = screenshot_text(app.export_screenshot(), 40, 4).splitlines()[0]
        # the modal's margin shows the screen below it, wide characters and all
        assert first == "日本" + "sure? <y> & n" + "n> narrow &" + " " * 12
