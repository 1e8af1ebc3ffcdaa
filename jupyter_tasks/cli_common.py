"""What ``jupyter tasks`` and its ``schedule`` commands share: errors, ids, run parameters."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import sqlite3
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .models import BIDI_CONTROLS

SHORT_ID = 10  # the dashboard and the cards show the last 10 characters of an id
# what a terminal would act on rather than show: C0 and C1 controls (an escape sequence
# can set the title or clear the screen), DEL, and the bidi controls
_UNPRINTABLE = re.compile(f"[\x00-\x1f\x7f-\x9f{BIDI_CONTROLS}]")


DB_HELP = "database file (default: $JUPYTER_TASKS_DB or the Jupyter data dir)"


def db_file(text: str) -> str:
    """An argparse type: the ``--db`` path with ``~`` expanded, as ``$JUPYTER_TASKS_DB``'s is.

    The shell leaves the tilde of ``--db=~/tasks.db`` as it is: taken as written, a folder
    named ``~`` was made in the current folder, with a new database in it.
    """
    if not text.strip():
        # an unset variable (`--db "$DB"`): it meant a file, not the default database
        raise argparse.ArgumentTypeError("names no file (an empty path)")
    return os.path.expanduser(text)


def db_option() -> argparse.ArgumentParser:
    """A parent parser giving a subcommand ``--db`` too: ``jupyter tasks doctor --db FILE``
    (as the database's error messages print it) means ``jupyter tasks --db FILE doctor``."""
    parent = argparse.ArgumentParser(add_help=False)
    # absent here, the global --db (or its default) stays
    parent.add_argument("--db", default=argparse.SUPPRESS, type=db_file, help=DB_HELP)
    return parent


@contextlib.contextmanager
def creating_database(db: str | None) -> Iterator[None]:
    """Around a command that may create the database (submit, run, schedule add).

    A new file is said at once (work queued in a file no server uses waits unseen
    when ``--db`` or ``$JUPYTER_TASKS_DB`` was mistyped), and a command refused
    leaves no new file behind, unless another process has opened it meanwhile.
    """
    from .paths import default_db_path

    path = Path(db) if db else default_db_path()
    if path.exists():
        yield
        return
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the folders on the way are created too
    if os.access(folder, os.W_OK):  # else the refusal to create it is all there is to say
        print(f"note: no database at {path}: creating a new one, which no server or worker "
              "uses yet (if yours runs, it uses another file: see --db and "
              "$JUPYTER_TASKS_DB)", file=sys.stderr)
    try:
        yield
    except BaseException:
        if _unused_and_empty(path):
            for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                leftover.unlink(missing_ok=True)
            from .engine.bell import wake_folder

            shutil.rmtree(wake_folder(path), ignore_errors=True)
        raise


def _unused_and_empty(path: Path) -> bool:
    # a file another process opened meanwhile (a server starting on it) is theirs, rows
    # or not: leaving WAL mode needs every other connection closed, so it is the test
    try:
        conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    except sqlite3.Error:
        return False
    try:
        if conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0].lower() != "delete":
            return False
        for table in ("tasks", "schedules"):
            with contextlib.suppress(sqlite3.OperationalError):  # not created yet
                if conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone():
                    return False
        return True
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def queue_name(text: str) -> str:
    """An argparse type: a queue name (letters, digits, '_', '-', '.'), else a clear error."""
    from .engine.options import QUEUE_RE

    if not QUEUE_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"not a queue name: {text!r} (letters, digits, '_', '-', '.'; at most 100)")
    return text


def json_option(text: str | None, option: str, *, obj: bool = False) -> Any:
    """The JSON value of ``option`` (None if not given); CliError when it is not JSON, or
    (with ``obj``) not an object."""
    from .exceptions import KeyGivenTwice
    from .values import loads_keys_once

    if not text:
        return None
    try:
        value = loads_keys_once(text)
    except KeyGivenTwice as exc:
        raise CliError(f"{option}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise CliError(f"{option} is not JSON: {exc}") from None
    except RecursionError:
        raise CliError(f"{option} is nested too deep for JSON here") from None
    if obj and not isinstance(value, dict):
        raise CliError(f"{option} takes a JSON object, not {_json_kind(value)}")
    return value


def read_text_file(name: str, what: str) -> str:
    """The UTF-8 text of the file ``name``; CliError saying why it cannot be read."""
    try:
        return Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        reason = "no such file"
    except IsADirectoryError:
        reason = "is a folder, not a file"
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text (byte {exc.start})"
    except OSError as exc:
        reason = exc.strerror or str(exc)
    raise CliError(f"{what} {name}: {reason}")


def _json_kind(value: Any) -> str:
    """What a JSON value is, in JSON's words (``null``, not ``NoneType``)."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return {str: "a string", list: "an array", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__)


def printable(text: str) -> str:
    """A task's or schedule's own text for a terminal: each control as its escape (``\\x1b``)."""
    return _UNPRINTABLE.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
        else f"\\u{ord(m.group()):04x}", text)


# a log keeps on a terminal its line ends, tabs, carriage returns (a progress bar redraws
# its line) and colours (SGR, "ESC [ 31 m"); any other control is shown as its escape
_LOG_UNSAFE = re.compile(f"(\x1b\\[[0-9;:]*m)|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
                         f"{BIDI_CONTROLS}]")


def log_text_for(stream: Any, text: str) -> str:
    """A task's log text as ``stream`` should get it: as written into a file or a pipe; on
    a terminal, with every control but colours and line ends escaped (a job's output set
    the title, cleared the screen or planted a link in the terminal of whoever read it)."""
    isatty = getattr(stream, "isatty", None)
    if isatty is None or not isatty():
        return text
    return _LOG_UNSAFE.sub(lambda m: m.group(1) or printable(m.group()), text)


def cell_width(text: str) -> int:
    """How many terminal cells ``text`` takes: two for a wide character (CJK, most
    emoji), none for a combining one; tables padded by ``len`` lost their columns."""
    return sum(0 if unicodedata.combining(c) else
               2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def pad(text: str, width: int) -> str:
    """``text`` padded with spaces to ``width`` terminal cells."""
    return text + " " * max(0, width - cell_width(text))


class CliError(Exception):
    """A problem the user can fix, printed as ``error: …`` (exit status 2)."""


def short_id(task_id: str, args: argparse.Namespace | None = None) -> str:
    """The id as the views show it (its end), or whole with ``--full``."""
    if args is not None and getattr(args, "full", False):
        return task_id
    return task_id[-SHORT_ID:]


def papermill_value(text: str) -> Any:
    """A ``-p`` value as papermill reads it: True/False/None, an int, a float, else the text."""
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _yaml_parameters(text: str | bytes, where: str) -> dict[str, Any]:
    """A YAML mapping read as papermill does (dates stay text); ``CliError`` otherwise."""
    import yaml

    class NoDatesLoader(yaml.SafeLoader):
        """YAML's safe loader without the timestamp type."""

    # papermill passes dates to the notebook as the text that was written
    NoDatesLoader.yaml_implicit_resolvers = {
        first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    try:
        value = yaml.load(text, Loader=NoDatesLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CliError(f"{where} is not valid YAML: {problem}{at}") from None
    except RecursionError:
        raise CliError(f"{where} is nested too deep for YAML here") from None
    except ValueError as exc:  # int()'s limit on digits, met by the YAML reader
        raise CliError(f"{where} holds a number too long to read: "
                       f"{str(exc).split(';')[0]}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CliError(f"{where} must be a YAML mapping of parameter names to values, "
                       f"not a {type(value).__name__}")
    return value


def run_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The parameters of ``run``, merged in papermill's order: -b, -f, -y, -p, then -r."""
    import base64
    import binascii

    parameters: dict[str, Any] = {}
    # papermill's kernel runs where the paths were typed; this one runs in the notebook's
    # folder, so each path is given as it reads from there (before: 'sub/nb.ipynb', which
    # the kernel in sub/ could not open)
    kernel_folder = os.path.dirname(args.notebook) or "."

    def from_kernel(path: str) -> str:
        return path if os.path.isabs(path) else os.path.relpath(path, kernel_folder)

    if args.inject_input_path or args.inject_paths:
        parameters["PAPERMILL_INPUT_PATH"] = from_kernel(args.notebook)
    if args.inject_output_path or args.inject_paths:
        if not args.output:
            raise CliError("--inject-output-path and --inject-paths need an OUTPUT path")
        parameters["PAPERMILL_OUTPUT_PATH"] = from_kernel(args.output)
    for text in args.parameters_base64 or []:
        try:
            # wrapped as base64(1) writes it (a line end every 76 characters), as
            # papermill reads it; any other character outside the alphabet is refused
            raw = base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError):
            raise CliError(f"-b {text[:40]!r} is not base64") from None
        parameters.update(_yaml_parameters(raw, f"-b {text[:40]!r}"))
    for name in args.parameters_file or []:
        content = read_text_file(name, "parameters file")
        parameters.update(_yaml_parameters(content, f"parameters file {name}"))
    for text in args.parameters_yaml or []:
        parameters.update(_yaml_parameters(text, f"-y {text[:40]!r}"))
    for name, value in args.parameters or []:
        parameters[name] = read = papermill_value(unshielded(value))
        if isinstance(read, float) and not math.isfinite(read):
            # said with its way out: the refusal of the stored JSON named none
            raise CliError(f"-p {name} {unshielded(value)}: papermill would pass "
                           f"float('{read}'), which a job's parameters (kept as JSON) "
                           f"cannot hold; -r {name} {unshielded(value)} passes the text")
    for name, value in args.parameters_raw or []:
        parameters[name] = unshielded(value)
    return parameters


# papermill's -p/-r take any VALUE, '-x' and '-2.5e3' too; argparse reads a token that
# starts with '-' (and is no plain negative number) as an option, and refuses
_PARAMETER_FLAGS = ("-p", "--parameters", "-r", "--parameters_raw")
_SHIELD = "\x00"


def shield_parameter_values(argv: list[str]) -> list[str]:
    """``argv`` with each -p/-r VALUE that starts with '-' marked so argparse takes it as
    a value (``unshielded`` takes the mark off); nothing from ``--command`` or ``--`` on."""
    out = list(argv)
    i = 0
    while i < len(out):
        token = out[i]
        if token in ("--command", "--"):
            break
        if token in _PARAMETER_FLAGS and i + 2 < len(out) and out[i + 2].startswith("-"):
            out[i + 2] = _SHIELD + out[i + 2]
            i += 3
            continue
        i += 1
    return out


def unshielded(value: str) -> str:
    """A -p/-r VALUE as typed (see ``shield_parameter_values``)."""
    return value[len(_SHIELD):] if value.startswith(_SHIELD) else value
