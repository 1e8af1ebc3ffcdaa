"""``jupyter tasks dashboard``: the Textual terminal dashboard of jupyter-tasks.

It talks to a Jupyter server (``--url``/``--token``, or the local server it
finds in the Jupyter runtime dir) over REST and follows it live over the
websocket, or, with ``--db PATH`` or when no server runs, reads the SQLite
hub directly. The app itself is ``tasks_app.TasksDashboard``.

This module is the command line, and stays light on purpose: on a terminal,
``main`` draws a plain skeleton of the first screen (``skeleton``) before
Textual and the engine are imported (~0.4 s), and Textual then draws over it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .skeleton import Skeleton

if TYPE_CHECKING:
    from .sources import DataSource


def _db_file(text: str) -> str:
    """``--db``'s path, ``~`` expanded; an empty one (an unset ``--db "$DB"``) refused.

    Taken as no ``--db`` at all, it looked for a server, then at the default database.
    """
    if not text.strip():
        raise argparse.ArgumentTypeError("names no file (an empty path)")
    return os.path.expanduser(text)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The dashboard's command line options (``prog``: the command's name, as typed)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Terminal dashboard of jupyter-tasks: queues, tasks, details, actions.",
    )
    parser.add_argument("--url", help="Jupyter server URL with its base_url "
                                      "(default: the local running server)")
    parser.add_argument("--token", help="API token (default: $JUPYTER_TOKEN or the token of "
                                        "the server found in the runtime dir)")
    # expanded as `jupyter tasks --db` is: the shell leaves the tilde of --db=~/x.db alone
    parser.add_argument("--db", type=_db_file,
                        help="read this database directly instead of a server")
    parser.add_argument("--page-size", type=int, default=50, help="rows per page (default 50)")
    return parser


def choose_source(args: argparse.Namespace) -> tuple[DataSource, Callable[[], DataSource] | None]:
    """The source the options ask for, and a database fallback for an auto-found server."""
    from jupyter_tasks.paths import default_db_path

    from .sources import DatabaseSource, ServerSource, find_local_server

    if args.db:
        return DatabaseSource(args.db), None
    if args.url:
        return ServerSource(args.url, args.token or os.environ.get("JUPYTER_TOKEN")), None
    found = find_local_server()
    if found is not None:
        url, token = found
        return ServerSource(url, args.token or token), lambda: DatabaseSource(default_db_path())
    return DatabaseSource(default_db_path()), None


def describe(args: argparse.Namespace) -> str:
    """What the skeleton's title says it is opening (before any source exists)."""
    if args.db:
        return f"database {args.db}"
    if args.url:
        return f"server {args.url}"
    return "the local server"


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Entry point of ``jupyter-tasks-dashboard`` and ``jupyter tasks dashboard``."""
    args = build_parser(prog).parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.page_size < 1 or args.page_size > 500:
        print("--page-size must be between 1 and 500", file=sys.stderr)
        return 2
    skeleton = Skeleton.draw(describe(args))  # None unless both ends are a terminal
    try:
        from .tasks_app import TasksDashboard

        source, fallback = choose_source(args)
        app = TasksDashboard(source, page_size=args.page_size, fallback=fallback)
        if skeleton is not None:
            skeleton.handed_over()
        app.run()
    finally:
        if skeleton is not None:
            skeleton.restore()
    return app.return_code or 0


def __getattr__(name: str) -> Any:
    # the app's names, imported only when asked for (``from .app import TasksDashboard``);
    # never for a dunder: the import system itself asks for ``__path__`` on every
    # ``from .app import main``, which would import Textual before the skeleton
    if name.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import tasks_app

    try:
        return getattr(tasks_app, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


if __name__ == "__main__":
    sys.exit(main())
