"""The artifact folders a prune or a delete removes once its rows are gone, kept in a note.

Rows and files cannot go in one transaction: the rows are deleted and committed,
then the task folders removed. A process killed in between left the folders for
good. So the transaction, before its commit, writes a note naming the tasks whose
folders go (``<artifacts>/.removals/.removing-<pid>-<token>``: a folder of its
own, so finding the notes reads a few names, not the artifacts' folder of a
million tasks), and the note is taken away once the folders are. A later prune
finishes what a note of a dead process lists: each folder whose task has no row
any more. A task whose row is still there (the transaction rolled back) keeps its
folder.

Only folders a note names are ever removed: the folders of a database moved aside
(the new one at its path shares the artifacts' folder) are no prune's business.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path

from ..liveness import pid_alive

NOTE_PREFIX = ".removing-"
NOTES = ".removals"


def notes_folder(folder: Path) -> Path:
    """Where the notes of the artifacts' folder ``folder`` are kept."""
    return folder / NOTES


def write_note(folder: Path, task_ids: Iterable[str]) -> Path | None:
    """Name the tasks whose folders are about to go (before the rows' commit); None when
    none of them has a folder here."""
    names = [task_id for task_id in task_ids if (folder / task_id).is_dir()]
    if not names:
        return None
    notes_folder(folder).mkdir(exist_ok=True)
    note = notes_folder(folder) / f"{NOTE_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    note.write_text("\n".join(names) + "\n", encoding="ascii")
    return note


def remove_folders(folder: Path, task_ids: Iterable[str], note: Path | None) -> None:
    """After the commit: remove the tasks' folders, then the note that named them."""
    for task_id in task_ids:
        shutil.rmtree(folder / task_id, ignore_errors=True)
    if note is not None:
        with contextlib.suppress(OSError):
            note.unlink()


def notes_left(folder: Path) -> list[tuple[Path, list[str]]]:
    """The notes of processes that are gone, with the task ids each names."""
    found = []
    try:
        entries = [e for e in os.scandir(notes_folder(folder))
                   if e.name.startswith(NOTE_PREFIX)]
    except OSError:
        return []  # no note was ever written here
    for entry in entries:
        pid = entry.name[len(NOTE_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and pid_alive(int(pid), None):
            continue  # its own process finishes it (or it is ours, under way)
        with contextlib.suppress(OSError, UnicodeDecodeError):
            found.append((Path(entry.path),
                          Path(entry.path).read_text(encoding="ascii").split()))
    return found

