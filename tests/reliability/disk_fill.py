"""Filling a (small, test-only) file system to its last byte, for the disk-full scripts."""

from __future__ import annotations

from pathlib import Path


def fill_disk(filler: Path) -> None:
    """Write zeros into ``filler`` until the file system holding it has no room left."""
    with filler.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:  # ENOSPC: full
            pass
