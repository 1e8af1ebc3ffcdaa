"""The registry: names, introspection, tag queries, validation with one error per problem."""

from __future__ import annotations

from typing import Literal

import pytest

from jupyter_tasks import TaskContext
from jupyter_tasks.exceptions import (
    DuplicateTaskName,
    InvalidParameters,
    InvalidTaskName,
    UnknownTask,
)
from jupyter_tasks.registry import Registry


@pytest.fixture
def registry() -> Registry:
    reg = Registry()

    @reg.task("resize", tags=["images", "batch"])
    def resize(path: str, width: int, height: int = 100, mode: Literal["fit", "fill"] = "fit",
               ctx: TaskContext = None) -> str:
        """Resize one image.

        More words.
        """
        return path

    @reg.task("ping", tags=["batch"])
    async def ping(host: str | None = None) -> str:
        return "pong"

    return reg


# "trail\n": "$" also matches before a last newline, and such a task could not be reached
# at /registry/{name}/execute
@pytest.mark.parametrize("name", ["", "has space", "slash/name", "dot.name", "ünï", None, 3,
                                  "trail\n"])
def test_names_must_be_url_safe(name: object) -> None:
    with pytest.raises(InvalidTaskName, match="not valid"):
        Registry().register(name, lambda: None)  # type: ignore[arg-type]


def test_names_are_unique(registry: Registry) -> None:
    with pytest.raises(DuplicateTaskName, match="already registered"):
        registry.register("resize", lambda: None)


def test_reregistering_the_same_function_is_allowed(registry: Registry) -> None:
    info = registry.get_info("resize")
    registry.register("resize", info.fn, ["images"])
    assert registry.get_info("resize").tags == ("images",)


def test_unknown_name_is_a_lookup_error(registry: Registry) -> None:
    with pytest.raises(UnknownTask, match="nope"):
        registry.get_info("nope")


def test_get_info_describes_signature_without_injected_context(registry: Registry) -> None:
    data = registry.get_info("resize").to_json()
    assert data["docstring"].startswith("Resize one image.")
    assert data["signature"].startswith("resize(path: str, width: int")
    assert "ctx" not in data["signature"]
    assert [p["name"] for p in data["parameters"]] == ["path", "width", "height", "mode"]
    assert data["parameters"][0] == {"name": "path", "annotation": "str", "default": None,
                                     "required": True}
    assert data["parameters"][2]["default"] == 100
    schema = data["params_schema"]
    assert schema["required"] == ["path", "width"]
    assert schema["properties"]["width"] == {"type": "integer"}
    assert schema["properties"]["mode"] == {"enum": ["fit", "fill"], "default": "fit"}
    assert schema["additionalProperties"] is False


def test_list_by_tags_needs_all_tags(registry: Registry) -> None:
    assert [i.name for i in registry.list_by_tags(["batch"])] == ["ping", "resize"]
    assert [i.name for i in registry.list_by_tags(["batch", "images"])] == ["resize"]
    assert registry.list_by_tags(["images", "nope"]) == []
    assert [i.name for i in registry.list_by_tags([])] == ["ping", "resize"]


def test_validation_reports_every_problem_at_once(registry: Registry) -> None:
    with pytest.raises(InvalidParameters) as err:
        registry.get_info("resize").validate(
            {"width": "wide", "mode": "stretch", "colour": "red", "ctx": 1})
    fields = sorted(e["field"] for e in err.value.errors)
    # each named by its place in a spec, as REST bodies and schedules hold it
    assert fields == ["params.colour", "params.ctx", "params.mode", "params.path",
                      "params.width"]


def test_validation_accepts_good_params_and_unions(registry: Registry) -> None:
    assert registry.get_info("resize").validate({"path": "a.png", "width": 3}) == {
        "path": "a.png", "width": 3}
    registry.get_info("ping").validate({"host": None})
    with pytest.raises(InvalidParameters):
        registry.get_info("ping").validate({"host": 5})
    with pytest.raises(InvalidParameters):
        registry.get_info("resize").validate({"path": "a", "width": True})  # bool is not int


def test_an_unannotated_ctx_is_a_parameter_and_its_error_says_how_to_get_the_context(
        registry: Registry) -> None:
    # the context is injected by type: "def f(ctx, n)" makes ctx the caller's to give,
    # and the error said only "required parameter missing"
    registry.register("plain_ctx", lambda ctx, n=1: n)
    with pytest.raises(InvalidParameters) as err:
        registry.get_info("plain_ctx").validate({"n": 2})
    assert err.value.errors == [{"field": "params.ctx", "message": "required parameter missing (to "
                                 "receive the task's context, annotate it: ctx: TaskContext)"}]


def test_bind_injects_context_by_type(registry: Registry) -> None:
    ctx = TaskContext("0" * 32)
    kwargs = registry.get_info("resize").bind({"path": "p", "width": 1}, {TaskContext: ctx})
    assert kwargs["ctx"] is ctx


def test_a_folder_without_init_is_no_task_module(tmp_path, monkeypatch) -> None:
    # JupyterTasksApp.task_modules = ["examples"] for examples/tasks.py: a folder without
    # __init__.py imports as an empty namespace package. Before: the server (as the CLI
    # once did) served with no task registered, every job of those tasks left waiting
    from jupyter_tasks.registry import load_task_modules

    folder = tmp_path / "jt_folder_of_tasks"
    folder.mkdir()
    (folder / "tasks.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match=r"task module jt_folder_of_tasks is a folder without "
                                          r"__init__.py, which registers no task: name its "
                                          r"modules instead \(jt_folder_of_tasks.tasks\)"):
        load_task_modules(["jt_folder_of_tasks"], entry_points=False)
    assert load_task_modules(["jt_folder_of_tasks.tasks"], entry_points=False) == [
        "jt_folder_of_tasks.tasks"]


def test_with_skipped_a_module_that_fails_is_recorded_and_the_others_imported(
        tmp_path, monkeypatch) -> None:
    # the dashboard imports what it can to check a fork; without ``skipped`` a failing
    # module still raises (a worker must not serve with tasks missing)
    from jupyter_tasks.registry import load_task_modules

    (tmp_path / "jt_skip_broken.py").write_text("raise RuntimeError('broken on purpose')\n")
    (tmp_path / "jt_skip_fine.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("JUPYTER_TASKS_MODULES", raising=False)
    skipped: dict[str, str] = {}
    loaded = load_task_modules(["jt_skip_broken", "jt_skip_fine"], entry_points=False,
                               skipped=skipped)
    assert loaded == ["jt_skip_fine"]
    assert skipped == {"jt_skip_broken": "RuntimeError: broken on purpose"}
    with pytest.raises(RuntimeError, match="broken on purpose"):
        load_task_modules(["jt_skip_broken"], entry_points=False)
