"""The project's documentation: it builds without a warning, its links resolve, and
the generated references cover every route, event type and configurable trait."""

from __future__ import annotations

import html.parser
import importlib
import inspect
import pkgutil
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from traitlets.config import Configurable

import jupyter_tasks
from jupyter_tasks.models import SCHEDULE_CHANGED, EventType
from jupyter_tasks.server.openapi import openapi_document

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
READMES = [ROOT / "README.md", ROOT / "dashboard" / "README.md",
           ROOT / "labextension" / "README.md"]
METHODS = ("get", "put", "post", "patch", "delete", "head", "options")

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$", re.MULTILINE)
LABEL = re.compile(r"^\(([A-Za-z0-9_-]+)\)=\s*$", re.MULTILINE)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
# a backticked repository path in prose, e.g. `examples/tasks.py`
CODE_PATH = re.compile(
    r"`([A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+\.(?:py|md|ipynb|ts|tsx|tcss|toml))`")


@pytest.fixture(scope="module")
def built_docs(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One warnings-as-errors HTML build of docs/, shared by the tests of this module."""
    out = tmp_path_factory.mktemp("docs-html")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", str(DOCS), str(out)],
        capture_output=True, text=True, cwd=ROOT,
    )
    return result, out


class _Text(html.parser.HTMLParser):
    """The visible text of an HTML page, whitespace collapsed."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def page_text(built: tuple[subprocess.CompletedProcess[str], Path], page: str) -> str:
    """The text of one built page (the build must have succeeded)."""
    result, out = built
    assert result.returncode == 0, f"the docs build failed:\n{result.stdout}\n{result.stderr}"
    parser = _Text()
    parser.feed((out / page).read_text(encoding="utf-8"))
    return " ".join(" ".join(parser.parts).split())


# ------------------------------------------------------------------ (a) the build

def test_docs_build_without_warnings(built_docs) -> None:
    result, out = built_docs
    output = f"{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, f"sphinx-build -W failed:\n{output}"
    assert "WARNING" not in result.stderr and "ERROR" not in result.stderr, output
    assert (out / "index.html").is_file()


# ------------------------------------------------------------------ (b) links

def slug(heading: str) -> str:
    """GitHub's (and MyST's) anchor for a heading."""
    text = re.sub(r"[`*]", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Heading anchors and MyST ``(label)=`` targets of a Markdown file."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {slug(m.group(2)) for m in HEADING.finditer(text)} | set(LABEL.findall(text))


def broken_links(path: Path) -> list[str]:
    """Relative links (and backticked repository paths) of a Markdown file that lead nowhere."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # http(s), mailto: not fetched (no network in the tests)
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{target}: no file {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading or label #{anchor} in {dest.name}")
    for name in CODE_PATH.findall(text):
        if not ((ROOT / name).exists() or (path.parent / name).exists()):
            broken.append(f"`{name}`: no such file in the repository")
    return broken


@pytest.mark.parametrize("path", [*READMES, *sorted(DOCS.rglob("*.md"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(path: Path) -> None:
    assert broken_links(path) == []


def test_link_check_finds_a_broken_link(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## A part\n")
    page.write_text("# Page\n\n[ok](other.md#a-part) [here](#page) [gone](missing.md) "
                    "[bad anchor](other.md#nothing) `docs/no_such_file.py`\n")
    assert broken_links(page) == [
        f"missing.md: no file {tmp_path / 'missing.md'}",
        "other.md#nothing: no heading or label #nothing in other.md",
        "`docs/no_such_file.py`: no such file in the repository",
    ]


def test_no_reference_to_a_missing_api_md() -> None:
    files = [*READMES, ROOT / "jupyter_tasks" / "client.py",
             ROOT / "dashboard" / "jupyter_tasks_dashboard" / "sources.py",
             ROOT / "tests" / "server" / "test_api.py",
             *sorted((ROOT / "jupyter_tasks" / "server").glob("*.py")),
             *sorted((ROOT / "labextension" / "src").glob("*.ts"))]
    assert not (ROOT / "API.md").exists()
    assert [str(f.relative_to(ROOT)) for f in files if "API.md" in f.read_text()] == []


# ------------------------------------------------------------------ (c) generated references

def test_rest_reference_covers_every_route_and_schema(built_docs) -> None:
    text = page_text(built_docs, "reference/rest-api.html")
    document = openapi_document("/")
    missing = []
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                if f"{method.upper()} {path}" not in text:
                    missing.append(f"{method.upper()} {path}")
                for param in [*item.get("parameters", []), *item[method].get("parameters", [])]:
                    if param["name"] not in text:
                        missing.append(f"parameter {param['name']} of {method.upper()} {path}")
    for name, schema in document["components"]["schemas"].items():
        if name not in text:
            missing.append(f"schema {name}")
        parts = [schema, *schema.get("allOf", [])]
        for field in (f for part in parts for f in part.get("properties", {})):
            if field not in text:
                missing.append(f"field {name}.{field}")
    assert missing == []


def test_events_reference_covers_every_event_type(built_docs) -> None:
    text = page_text(built_docs, "reference/events.html")
    types = [*(e.value for e in EventType), SCHEDULE_CHANGED]
    assert [t for t in types if t not in text] == []


def configurable_classes() -> list[type[Configurable]]:
    """Every class of the jupyter_tasks package with configurable traits."""
    found = set()
    for info in pkgutil.walk_packages(jupyter_tasks.__path__, "jupyter_tasks."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra (dask) that is not installed
            continue
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (issubclass(cls, Configurable) and cls.__module__.startswith("jupyter_tasks")
                    and cls.class_traits(config=True)):
                found.add(cls)
    return sorted(found, key=lambda c: c.__name__)


def test_configuration_reference_covers_every_trait(built_docs) -> None:
    text = page_text(built_docs, "reference/configuration.html")
    classes = configurable_classes()
    assert [c.__name__ for c in classes] == ["JupyterTasksApp"]
    # each trait's own entry: its name, its type, then its default
    missing = [f"{cls.__name__}.{name}" for cls in classes
               for name in cls.class_traits(config=True)
               if not re.search(rf"{re.escape(cls.__name__)}\.{name} \S.{{0,200}}?Default: ", text)]
    assert missing == []


def test_cli_page_has_every_subcommand(built_docs) -> None:
    text = page_text(built_docs, "user-guide/cli.html")
    for command in ("list", "show", "submit", "run", "cancel", "rerun", "logs", "doctor",
                    "worker", "schedule add", "schedule list", "schedule pause",
                    "schedule resume", "schedule rm", "schedule run", "lab", "dashboard"):
        assert f"jupyter tasks {command}" in text, command


# ------------------------------------------------------------------ (d) commands as written

SHELL_BLOCK = re.compile(r"^```(?:bash|sh|shell|console)?\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE_COMMAND = re.compile(r"`(jupyter tasks [^`]+)`")


def documented_commands(path: Path) -> tuple[list[str], list[str]]:
    """The ``jupyter tasks …`` lines of a Markdown file's shell blocks, and its inline ones."""
    text = path.read_text(encoding="utf-8")
    lines = [line.strip().removeprefix("$ ") for block in SHELL_BLOCK.findall(text)
             for line in block.replace("\\\n", " ").splitlines()]
    return ([line for line in lines if line.startswith("jupyter tasks ")],
            INLINE_COMMAND.findall(FENCE.sub("", text)))


def refused(command: str) -> str | None:
    """Why the CLI's own parser refuses ``command`` as written (None: it takes it)."""
    from contextlib import redirect_stderr, redirect_stdout
    from io import StringIO

    from jupyter_tasks.cli import parse_args

    # a comment, a command chained or piped after it, "…" (and so on) are not its words
    for end in (" #", " && ", " | ", "…"):
        command = command.split(end)[0]
    # pause|resume|run|rm (in a table: pause\|resume…) stands for the first
    command = re.sub(r"\b(\w+)(?:\|\w+)+", r"\1", command.replace("\\|", "|"))
    words = shlex.split(command)[2:]
    if words[:1] in (["lab"], ["dashboard"]):
        return None  # their flags are JupyterLab's and the dashboard's own
    said = StringIO()
    with redirect_stderr(said), redirect_stdout(StringIO()):
        try:
            parse_args(words)
        except SystemExit as exc:
            return said.getvalue().strip().splitlines()[-1] if exc.code else None
    return None


@pytest.mark.parametrize("path", [*READMES, *sorted(DOCS.rglob("*.md"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_documented_command_line_is_taken_by_the_cli(path: Path) -> None:
    blocks, inline = documented_commands(path)
    problems = [f"{c}: {why}" for c in blocks if (why := refused(c))]
    # an inline mention may leave out what it is not about (`jupyter tasks run`, no
    # NOTEBOOK), but every subcommand and option it names must exist
    problems += [f"{c}: {why}" for c in inline if (why := refused(c))
                 and ("unrecognized arguments" in why or "invalid choice" in why)]
    assert problems == []


def test_the_command_check_finds_a_wrong_flag(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```bash\njupyter tasks list --status queued   # fine\n"
                    "jupyter tasks submit --name greet --parm name=Ada\n```\n\n"
                    "Run `jupyter tasks lsit` or `jupyter tasks worker --concurency 2`.\n")
    blocks, inline = documented_commands(page)
    assert [refused(c) for c in blocks] == [
        None, "jupyter tasks: error: unrecognized arguments: --parm name=Ada"]
    assert ["invalid choice: 'lsit'" in refused(inline[0]),
            "unrecognized arguments: --concurency 2" in refused(inline[1])] == [True, True]


def test_the_dashboard_readme_lays_out_every_module_it_has() -> None:
    # its "Layout:" paragraph is where a contributor looks for a piece of the app
    text = (ROOT / "dashboard" / "README.md").read_text(encoding="utf-8")
    layout = text.split("Layout:", 1)[1].split("\n\n", 1)[0]
    named = set(re.findall(r"`([a-z_]+\.(?:py|tcss))`", layout))
    package = ROOT / "dashboard" / "jupyter_tasks_dashboard"
    files = {p.name for p in [*package.glob("*.py"), *package.glob("*.tcss")]
             if p.name != "__init__.py"}
    assert (sorted(files - named), sorted(named - files)) == ([], [])
