"""Named task functions: registration, introspection, parameter validation and binding."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import json
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .exceptions import DuplicateTaskName, InvalidParameters, InvalidTaskName, UnknownTask
from .models import TaskMode
from .values import number_held

NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]+")  # the whole name (fullmatch)
ENTRY_POINT_GROUP = "jupyter_tasks"
MODULES_ENV = "JUPYTER_TASKS_MODULES"
# names people give the context parameter: unannotated, they are taken for the caller's
CONTEXT_NAMES = frozenset({"ctx", "context", "task_context"})


def _injected_types() -> tuple[type, ...]:
    from .context import TaskContext

    return (TaskContext,)


@dataclass(frozen=True)
class TaskInfo:
    """What the registry knows of one function: enough to call it and to describe it."""

    name: str
    fn: Callable[..., Any]
    tags: tuple[str, ...]
    mode: str
    signature: inspect.Signature
    hints: dict[str, Any] = field(repr=False)
    injected: dict[str, type] = field(repr=False)
    return_hint: Any = field(default=inspect.Parameter.empty, repr=False)

    @property
    def docstring(self) -> str:
        """The function's cleaned docstring ('' if none)."""
        return inspect.getdoc(self.fn) or ""

    @functools.cached_property
    def is_async(self) -> bool:
        """True for ``async def`` functions (run on the loop rather than in a thread)."""
        return inspect.iscoroutinefunction(self.fn)

    def parameters(self) -> list[dict[str, Any]]:
        """The caller-facing parameters: name, annotation, default, required."""
        result = []
        for p in self._caller_params():
            annotation = self.hints.get(p.name, p.annotation)
            result.append({
                "name": p.name,
                "annotation": None if annotation is inspect.Parameter.empty
                else _annotation_name(annotation),
                "default": None if p.default is inspect.Parameter.empty else _jsonable(p.default),
                "required": p.default is inspect.Parameter.empty,
            })
        return result

    def params_schema(self) -> dict[str, Any]:
        """A JSON Schema (draft 2020-12) of the parameters object."""
        properties = {}
        required = []
        for p in self._caller_params():
            annotation = self.hints.get(p.name, p.annotation)
            prop = _schema_for(annotation)
            if p.default is not inspect.Parameter.empty:
                prop = {**prop, "default": _jsonable(p.default)}
            else:
                required.append(p.name)
            properties[p.name] = prop
        schema: dict[str, Any] = {"type": "object", "properties": properties,
                                  "additionalProperties": self._accepts_kwargs()}
        if required:
            schema["required"] = required
        return schema

    def to_json(self) -> dict[str, Any]:
        """The API's TaskInfo JSON."""
        return {
            "name": self.name,
            "docstring": self.docstring,
            "signature": f"{self.name}{self._public_signature()}",
            "parameters": self.parameters(),
            "tags": list(self.tags),
            "mode": self.mode,
            "params_schema": self.params_schema(),
        }

    def validate(self, params: dict[str, Any] | None) -> dict[str, Any]:
        """Check ``params`` against the signature; raise one error listing every problem."""
        params = {} if params is None else params
        if not isinstance(params, dict):
            raise InvalidParameters(
                f"parameters of {self.name} must be an object",
                errors=[{"field": "params", "message": "must be an object"}],
            )
        errors: list[dict[str, Any]] = []
        caller = self._caller_by_name
        for key in params:
            if key in self.injected:
                errors.append({"field": key,
                               "message": "is provided by jupyter-tasks, not the caller"})
            elif key not in caller and not self._accepts_kwargs():
                errors.append({"field": key, "message": "unexpected parameter"})
        for name, p in caller.items():
            if name not in params:
                if p.default is inspect.Parameter.empty:
                    message = "required parameter missing"
                    if name in CONTEXT_NAMES and p.annotation is inspect.Parameter.empty:
                        # the context is injected by its type, never by its name
                        message += (f" (to receive the task's context, annotate it: "
                                    f"{name}: TaskContext)")
                    errors.append({"field": name, "message": message})
                continue
            annotation = self.hints.get(name, p.annotation)
            problem = _type_problem(params[name], annotation)
            if problem:
                errors.append({"field": name, "message": problem})
        if errors:
            summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
            # each field named by its place in a spec (``params.width``), as a REST body
            # and a schedule's job hold it: a parameter called ``queue`` or ``timeout``
            # is then not taken for the submit option of that name
            raise InvalidParameters(
                f"invalid parameters for {self.name}: {summary}",
                errors=[{**e, "field": f"params.{e['field']}"} for e in errors])
        return params

    def bind(self, params: dict[str, Any], injections: dict[type, Any]) -> dict[str, Any]:
        """Keyword arguments for a call: the caller's params plus injected framework objects."""
        kwargs = dict(params)
        for name, typ in self.injected.items():
            kwargs[name] = injections.get(typ)
        return kwargs

    @functools.cached_property
    def _caller_by_name(self) -> dict[str, inspect.Parameter]:
        # validate() runs for every submit; the signature never changes
        return {p.name: p for p in self._caller_params()}

    def _caller_params(self) -> list[inspect.Parameter]:
        return [
            p for p in self.signature.parameters.values()
            if p.name not in self.injected
            and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        ]

    def _accepts_kwargs(self) -> bool:
        return any(p.kind is inspect.Parameter.VAR_KEYWORD
                   for p in self.signature.parameters.values())

    def _public_signature(self) -> str:
        # resolved hints, so ``from __future__ import annotations`` shows `int`, not `'int'`
        params = []
        for p in self.signature.parameters.values():
            if p.name in self.injected:
                continue
            text = p.name
            if p.kind is inspect.Parameter.VAR_POSITIONAL:
                text = "*" + text
            elif p.kind is inspect.Parameter.VAR_KEYWORD:
                text = "**" + text
            annotation = self.hints.get(p.name, p.annotation)
            if annotation is not inspect.Parameter.empty:
                text += f": {_annotation_name(annotation)}"
            if p.default is not inspect.Parameter.empty:
                text += f" = {p.default!r}"
            params.append(text)
        returns = self.return_hint
        suffix = "" if returns is inspect.Parameter.empty else f" -> {_annotation_name(returns)}"
        return f"({', '.join(params)}){suffix}"


class Registry:
    """A set of named task functions."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskInfo] = {}
        self._names_json: str | None = None

    def register(
        self,
        name: str,
        fn: Callable[..., Any],
        tags: Iterable[str] = (),
        mode: str = TaskMode.SYNC.value,
        *,
        replace: bool = False,
    ) -> TaskInfo:
        """Register ``fn`` under ``name``; names are URL-safe and unique."""
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise InvalidTaskName(
                f"task name {name!r} is not valid: use letters, digits, '_' and '-' only "
                "(it becomes part of a URL)"
            )
        if not callable(fn):
            raise TypeError(f"task {name!r}: {fn!r} is not callable")
        try:
            mode = TaskMode(mode).value
        except ValueError:
            raise ValueError(
                f"task {name!r}: mode must be one of {[m.value for m in TaskMode]}, not {mode!r}"
            ) from None
        existing = self._tasks.get(name)
        if existing is not None and not replace and not _same_function(existing.fn, fn):
            raise DuplicateTaskName(
                f"task name {name!r} is already registered to {_qualname(existing.fn)}"
            )
        if isinstance(tags, str):
            tags = [tags]
        info = _describe(name, fn, tuple(tags), mode)
        self._tasks[name] = info
        self._names_json = None
        return info

    def unregister(self, name: str) -> None:
        """Forget a registered name (no error if absent)."""
        self._tasks.pop(name, None)
        self._names_json = None

    def get_info(self, name: str) -> TaskInfo:
        """The registered function's description, or ``UnknownTask``."""
        try:
            return self._tasks[name]
        except KeyError:
            raise UnknownTask(f"no task registered under the name {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._tasks)

    def names_json(self) -> str:
        """``names()`` as a JSON list: what a worker's claims may take (``tx_claim``)."""
        if self._names_json is None:  # kept until the names change: every claim asks
            self._names_json = json.dumps(self.names())
        return self._names_json

    def list_by_tags(self, tags: Iterable[str] = ()) -> list[TaskInfo]:
        """Registered tasks carrying every one of ``tags``, by name."""
        wanted = set(tags)
        return [info for _, info in sorted(self._tasks.items()) if wanted <= set(info.tags)]

    def task(
        self, name: str | None = None, *, tags: Iterable[str] = (), mode: str = "sync"
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator form of ``register``; the name defaults to the function's name."""

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.register(name or fn.__name__, fn, tags, mode)
            return fn

        return decorate


default_registry = Registry()


def task(
    name: str | Callable[..., Any] | None = None,
    *,
    tags: Iterable[str] = (),
    mode: str = "sync",
    registry: Registry | None = None,
) -> Any:
    """Register a function as a named task: ``@task``, ``@task("name", tags=[...])``."""
    reg = registry or default_registry
    if callable(name):
        fn = name
        reg.register(fn.__name__, fn, tags, mode)
        return fn
    return reg.task(name, tags=tags, mode=mode)


def register_function(
    name: str, fn: Callable[..., Any], tags: Iterable[str] = (), mode: str = "sync"
) -> TaskInfo:
    """Register ``fn`` under ``name`` in the default registry."""
    return default_registry.register(name, fn, tags, mode)


def get_info(name: str) -> TaskInfo:
    """Describe a task of the default registry."""
    return default_registry.get_info(name)


def list_by_tags(tags: Iterable[str] = ()) -> list[TaskInfo]:
    """Tasks of the default registry carrying all ``tags``."""
    return default_registry.list_by_tags(tags)


CONFIG_FILES = ("jupyter_config", "jupyter_server_config", "jupyter_lab_config",
                "jupyter_notebook_config", "jupyter_tasks_config")



# ------------------------------------------------------------------ task modules


def configured_task_modules() -> list[str]:
    """``JupyterTasksApp.task_modules`` from the Jupyter configuration files the server reads.

    Files named ``jupyter_{server,lab,notebook,tasks}_config`` (``.json``, ``.py``, and the
    ``.d/*.json`` folders) in every directory of ``jupyter --paths``' config path, the
    highest-priority directory winning, as in Jupyter. A file that fails to load is skipped
    with a warning.
    """
    from jupyter_core.paths import jupyter_config_path
    from traitlets.config.loader import Config, JSONFileConfigLoader, PyFileConfigLoader

    config = Config()
    for directory in reversed(jupyter_config_path()):  # lowest priority first
        for base in CONFIG_FILES:
            folder = Path(directory, base + ".d")
            files = sorted(folder.glob("*.json")) if folder.is_dir() else []
            files += [Path(directory, base + ext) for ext in (".json", ".py")]
            for path in files:
                if not path.is_file():
                    continue
                loader = PyFileConfigLoader if path.suffix == ".py" else JSONFileConfigLoader
                try:
                    config.merge(loader(path.name, str(path.parent)).load_config())
                except Exception as exc:
                    print(f"warning: skipping Jupyter config file {path}: {exc}",
                          file=sys.stderr)
    app = config.get("JupyterTasksApp", {})
    modules = app.get("task_modules", []) if hasattr(app, "get") else []
    if isinstance(modules, str):
        modules = modules.split(",")
    return [str(m).strip() for m in modules if str(m).strip()]


def load_task_modules(modules: Iterable[str] = (), *, entry_points: bool = True,
                      skipped: dict[str, str] | None = None) -> list[str]:
    """Import task modules: names or ``.py`` paths, ``JUPYTER_TASKS_MODULES``, entry points.

    Returns what was imported. A module that fails to import raises: a worker
    that silently lacks tasks would fail every job sent to it. With ``skipped``, it
    is recorded there instead (its name: its error) and the others are imported: for
    a process that only checks what it can (the dashboard).
    """
    wanted = [m.strip() for m in modules if m and m.strip()]
    wanted += [m.strip() for m in os.environ.get(MODULES_ENV, "").split(",") if m.strip()]
    loaded = []
    for spec in dict.fromkeys(wanted):
        try:
            _import_task_module(spec)
        except Exception as exc:
            if skipped is None:
                raise
            skipped[spec] = f"{type(exc).__name__}: {exc}"
        else:
            loaded.append(spec)
    if entry_points:
        from importlib.metadata import entry_points as eps

        for ep in eps(group=ENTRY_POINT_GROUP):
            try:
                ep.load()
            except Exception as exc:
                if skipped is None:
                    raise
                skipped[ep.value] = f"{type(exc).__name__}: {exc}"
            else:
                loaded.append(ep.value)
    return loaded


def _import_task_module(spec: str) -> None:
    try:
        import_module_or_path(spec)
    except ImportError as exc:
        if _names_itself(spec, exc):
            raise
        # a module its own imports failed (a dependency missing): "No module named
        # 'pandas'" alone read as the given module not found, and named none of several
        raise ImportError(f"task module {spec} failed to import: {exc}",
                          name=exc.name, path=exc.path) from exc
    _refuse_namespace(spec)


def _refuse_namespace(spec: str) -> None:
    """``ImportError`` when ``spec`` imported as a folder without ``__init__.py``: an empty
    namespace package, which registers no task (a worker given it served none)."""
    module = sys.modules.get(spec)
    if module is None or getattr(module, "__file__", None) is not None \
            or not hasattr(module, "__path__"):
        return
    inside = sorted(p.stem for folder in module.__path__ for p in Path(folder).glob("*.py"))
    example = f"{spec}.{inside[0] if inside else 'NAME'}"
    raise ImportError(f"task module {spec} is a folder without __init__.py, which registers "
                      f"no task: name its modules instead ({example})")


def _names_itself(spec: str, exc: ImportError) -> bool:
    """Whether ``exc`` is about ``spec`` itself (or a package of it) not being found."""
    return exc.name is not None and (spec == exc.name or spec.startswith(f"{exc.name}."))


def import_module_or_path(spec: str) -> types.ModuleType:
    """Import a module by dotted name, or a ``.py`` file by path; returns the module."""
    if spec.endswith(".py") or os.sep in spec:
        path = Path(spec).expanduser().resolve()
        if not path.is_file():
            raise ImportError(f"task module file {spec} does not exist", name=spec)
        module_name = f"jupyter_tasks_user_{path.stem}"
        if module_name in sys.modules and getattr(sys.modules[module_name], "__file__", None) \
                == str(path):
            return sys.modules[module_name]
        spec_obj = importlib.util.spec_from_file_location(module_name, path)
        assert spec_obj and spec_obj.loader
        module = importlib.util.module_from_spec(spec_obj)
        sys.modules[module_name] = module
        try:
            spec_obj.loader.exec_module(module)
        except BaseException:
            # as importlib does: a module that failed leaves no half-run copy behind,
            # which the next import would return with no error and without its tasks
            if sys.modules.get(module_name) is module:
                del sys.modules[module_name]
            raise
        return module
    return importlib.import_module(spec)


def _describe(name: str, fn: Callable[..., Any], tags: tuple[str, ...], mode: str) -> TaskInfo:
    signature = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = {}
    return_hint = hints.pop("return", signature.return_annotation)
    injectable = _injected_types()
    injected = {}
    for p in signature.parameters.values():
        annotation = hints.get(p.name, p.annotation)
        if isinstance(annotation, type) and issubclass(annotation, injectable):
            injected[p.name] = next(t for t in injectable if issubclass(annotation, t))
    return TaskInfo(name, fn, tags, mode, signature, hints, injected, return_hint)


def _same_function(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    # re-running a notebook cell or re-importing a module redefines the same function
    return a is b or (_qualname(a) == _qualname(b) and getattr(a, "__module__", None)
                      == getattr(b, "__module__", None))


def _qualname(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _annotation_name(annotation: Any) -> str:
    if annotation is type(None):
        return "None"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


_SIMPLE_SCHEMAS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    list: {"type": "array"},
    tuple: {"type": "array"},
    dict: {"type": "object"},
    type(None): {"type": "null"},
}


def _schema_for(annotation: Any) -> dict[str, Any]:
    if annotation is inspect.Parameter.empty or annotation is Any:
        return {}
    if annotation in _SIMPLE_SCHEMAS:
        return dict(_SIMPLE_SCHEMAS[annotation])
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_schema_for(a) for a in args]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, tuple, set, frozenset):
        schema: dict[str, Any] = {"type": "array"}
        if args and origin is list:
            schema["items"] = _schema_for(args[0])
        return schema
    if origin is dict:
        schema = {"type": "object"}
        if len(args) == 2:
            schema["additionalProperties"] = _schema_for(args[1])
        return schema
    return {}


def _type_problem(value: Any, annotation: Any) -> str | None:
    """A message when ``value`` cannot be the annotated JSON type, else None."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return None
    value = number_held(value)  # np.int64(3) is an int here, as it is stored as one
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if any(_type_problem(value, a) is None for a in args):
            return None
        return f"expected {_annotation_name(annotation)}, got {type(value).__name__}"
    if origin is typing.Literal:
        return None if value in args else f"must be one of {list(args)}"
    check = origin or annotation
    if check is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif check is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif check in (list, tuple, set, frozenset):
        ok = isinstance(value, list)
    elif check in (str, bool, dict) or check is type(None):
        ok = isinstance(value, check)
    else:
        return None  # a type JSON cannot carry: let the function decide
    if ok:
        return None
    return f"expected {_annotation_name(annotation)}, got {type(value).__name__}"
