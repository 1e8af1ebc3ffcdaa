"""What a child forked by a process that serves tasks starts with: its own signals.

A job that forks (``os.fork``, a ``multiprocessing`` pool of the ``fork`` start method)
gets a copy of its process, signal handlers and signal wake-up socket included. The
server's and the worker's handlers are Python ones that the event loop runs when the
wake-up socket says a signal came. So a SIGTERM to the child (what a pool's
``terminate()`` sends) was written into the socket the child shares with its parent,
and the parent stopped as if it had been sent the signal; the child, whose own copy of
the handler only wakes a loop it does not run, lived on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

# the signals a serving process handles itself; a forked child gets their defaults
_HANDLED = {s for s in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGHUP", None))
            if s is not None}
_registered = False
_forking = threading.local()  # the forking thread's signal mask, kept across the fork


def _hold_signals() -> None:
    # held from before the fork until the child's handlers are its own: one sent as soon
    # as the child exists (a job that forks, then stops its child) came through the
    # parent's socket before the child could change anything
    _forking.mask = signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)


def _release_signals() -> None:
    mask = getattr(_forking, "mask", None)
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        _forking.mask = None


def _fresh_signals() -> None:
    # a child's only thread is its main thread: signal calls are allowed there
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)
    for sig in _HANDLED:
        with contextlib.suppress(ValueError, OSError):
            handler = signal.getsignal(sig)
            # a handler of the parent's (an ignored signal stays ignored, as across exec)
            if callable(handler) and handler is not signal.default_int_handler:
                signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT
                              else signal.SIG_DFL)
    _release_signals()  # a signal held meanwhile is now the child's own


def fresh_signals_in_forked_children() -> None:
    """From now on, every child this process forks starts with the stop signals' default
    handling and no wake-up socket of its parent's (once per process; a no-op after)."""
    global _registered
    if not _registered and hasattr(os, "register_at_fork") and \
            hasattr(signal, "pthread_sigmask"):
        os.register_at_fork(before=_hold_signals, after_in_parent=_release_signals,
                            after_in_child=_fresh_signals)
        _registered = True
