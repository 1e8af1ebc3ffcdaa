"""The wake-up bell: after a commit, wake the other processes on the same database at once.

SQLite stays the source of truth; this only says "look now". Each process that
waits (a worker, a server's feed, a kernel) binds a Unix datagram socket in a
folder beside the database, ``<db>.wake/<pid>-<random>.sock`` (mode 0700: only
the same user's processes can ring it). After a commit that changed a row, the
writer sends one byte to every other socket in the folder, without blocking.
A receiver wakes its event feed, which reads the events table as it always does.

Nothing depends on the bell: a lost ring, a full socket buffer, a folder that
cannot be made, a platform without ``AF_UNIX``, all leave the poll to catch up.
A socket left by a killed process refuses datagrams; the next sender removes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("jupyter_tasks")

SUFFIX = ".sock"
# the longest socket path the kernel takes (sun_path is 108 bytes with its NUL; 104 on BSDs)
MAX_ADDRESS = 100
# a listing taken less than this after the folder changed may miss a socket bound in the
# same tick of a coarse timestamp clock: list again until the folder is older than this
RACY_NS = 2_000_000_000
# while it is that young, listed again at most this often: a process that rings after
# every commit would otherwise list it at each ring for two seconds after any process
# joined. A peer bound within a listing's clock tick misses the rings of those few ms
# (its poll covers them) and hears the first ring after that.
RACY_RELIST_NS = 5_000_000


def wake_folder(db_path: str | os.PathLike[str]) -> Path:
    """The folder beside the database where its processes' wake-up sockets live.

    Named after the file's real path: processes that reach it through a link and
    by its own path ring the same bells.
    """
    path = Path(os.path.realpath(db_path))
    return path.with_name(path.name + ".wake")


class WakeBell:
    """This process's socket in the wake folder: rung by others, rings them after commits."""

    def __init__(self, db_path: str | os.PathLike[str], on_wake: Callable[[], None]) -> None:
        self.folder = wake_folder(db_path)
        self.on_wake = on_wake
        self.name = f"{os.getpid()}-{os.urandom(4).hex()}{SUFFIX}"
        self.bound = False  # whether others can wake us (else we only ring them)
        self.rings = 0  # datagrams sent
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dir_fd: int | None = None  # for socket paths longer than sun_path holds
        self._listed_mtime: int | None = None
        self._listed_at = 0  # time.monotonic_ns() of the last listing
        self._racy = True
        self._folder_path = os.fspath(self.folder)
        self._peers: list[tuple[str, str]] = []

    # ----------------------------------------------------------------- lifecycle

    def open(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Bind this process's socket and listen on ``loop``; False if it cannot (poll only)."""
        if not hasattr(socket, "AF_UNIX"):
            return False
        self._loop = loop
        try:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
        except OSError as exc:
            log.debug("no wake-up bell (%s): other processes are seen by polling", exc)
            self._sock = None
            return False
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(self.folder, 0o700)
            if hasattr(os, "O_PATH"):
                self._dir_fd = os.open(self.folder, os.O_PATH | os.O_DIRECTORY)
            address = self._address(self.name)
            if address is None:
                raise OSError(errno.ENAMETOOLONG, "socket path too long", str(self.folder))
            self._sock.bind(address)
            loop.add_reader(self._sock.fileno(), self._on_readable)
            self.bound = True
        except (OSError, NotImplementedError) as exc:
            # we can still ring the others from the unbound socket
            log.debug("cannot bind a wake-up socket in %s (%s): this process polls",
                      self.folder, exc)
        return self.bound

    def close(self) -> None:
        """Stop listening and remove this process's socket; safe to call twice."""
        sock, self._sock = self._sock, None
        if sock is not None:
            if self.bound and self._loop is not None and not self._loop.is_closed():
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(sock.fileno())
            sock.close()
            if self.bound:
                with contextlib.suppress(OSError):
                    os.unlink(self.folder / self.name)
        self.bound = False
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None

    # ------------------------------------------------------------------- ringing

    def ring(self) -> None:
        """Wake every other process with a socket in the folder (never blocks, never raises)."""
        sock = self._sock
        if sock is None:
            return
        for name, address in self._current_peers():
            try:
                sock.sendto(b"\x01", address)
                self.rings += 1
            except BlockingIOError:
                pass  # its buffer is full: it has wake-ups waiting to be read already
            except (ConnectionRefusedError, FileNotFoundError) as exc:
                # nobody bound there any more (a process killed before it could clean up)
                if isinstance(exc, ConnectionRefusedError):
                    with contextlib.suppress(OSError):
                        os.unlink(self.folder / name)
                self._listed_mtime = None
            except OSError:
                pass  # e.g. another user's socket: that process polls

    def _current_peers(self) -> list[tuple[str, str]]:
        """(name, address) of the other sockets in the folder, listed again when it changed."""
        try:
            mtime = os.stat(self._folder_path).st_mtime_ns
        except OSError:
            return []
        if mtime != self._listed_mtime or (
                self._racy and time.monotonic_ns() - self._listed_at >= RACY_RELIST_NS):
            try:
                names = os.listdir(self._folder_path)
            except OSError:
                return []
            # addresses made once per listing: a ring on the path from every commit
            # would otherwise build each of them again
            peers = ((n, self._address(n)) for n in names
                     if n.endswith(SUFFIX) and n != self.name)
            self._peers = [(n, a) for n, a in peers if a is not None]
            self._listed_mtime = mtime
            self._listed_at = time.monotonic_ns()
            self._racy = time.time_ns() - mtime < RACY_NS
        return self._peers

    def _address(self, name: str) -> str | None:
        """The path to bind or send to: through our folder descriptor when too long."""
        path = os.fspath(self.folder / name)
        if len(os.fsencode(path)) <= MAX_ADDRESS:
            return path
        if self._dir_fd is not None:
            return f"/proc/self/fd/{self._dir_fd}/{name}"
        return None

    # ------------------------------------------------------------------ hearing

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        # many rings since the last read say no more than one: drain them all, wake once
        while True:
            try:
                if not sock.recv(64):
                    break
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
        self.on_wake()
