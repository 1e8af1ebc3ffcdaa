"""A background loop's failures logged without flooding the server's log."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

from ..exceptions import StoreError

# a failure that repeats is said again at most this often, with how many times it came
REPEAT_SECONDS = 60.0


class LoopFailures:
    """The failures of one background loop (a heartbeat, a claim, the scheduler's tick).

    The first failure is logged with its traceback; the same failure again (same type,
    message and arguments) only once every ``REPEAT_SECONDS``, as one line with its
    count; the loop's first success after failures says it works again. With the
    database moved away, six loops logged a traceback each every second.
    """

    def __init__(self, logger: logging.Logger, what: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.what = what
        self.clock = clock
        self._failing: tuple[object, ...] | None = None
        self._count = 0
        self._said_at = 0.0

    def failed(self, *args: object) -> None:
        """Log the exception being handled (call it in an ``except`` block)."""
        exc = sys.exc_info()[1]
        key = (type(exc), str(exc), args)
        now = self.clock()
        if key != self._failing:
            self._failing, self._count, self._said_at = key, 1, now
            if isinstance(exc, StoreError):
                # the store's own word (its file gone, locked, a full disk): a traceback
                # adds nothing, and a CLI's wait printed one above its one-line error
                self.logger.error(f"{self.what}: %s", *args, exc)
            else:
                self.logger.exception(self.what, *args)
            return
        self._count += 1
        if now - self._said_at >= REPEAT_SECONDS:
            self._said_at = now
            self.logger.error(f"{self.what} again (%d times since it began): %s: %s", *args,
                              self._count, type(exc).__name__, exc)

    def succeeded(self) -> None:
        """The loop's work went through: say so once after failures."""
        if self._failing is not None:
            args = self._failing[2]
            times = f"{self._count} time{'' if self._count == 1 else 's'}"
            self.logger.warning(f"{self.what} (%s); working again", *args,  # type: ignore[misc]
                                times)
            self._failing, self._count = None, 0
