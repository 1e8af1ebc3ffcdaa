"""A submission's options, checked alike whichever way it came in (Python, REST, CLI)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..exceptions import InvalidRequest
from ..values import is_unicode

# (does the value pass, what it must be): the "must be ..." of an error
Check = tuple[Callable[[Any], bool], str]

QUEUE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
# the most jobs of one queue a worker runs at once
MAX_SLOTS = 10_000


def int_between(low: int, high: int) -> Check:
    """An integer (not a bool) from ``low`` to ``high``."""
    return (lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high,
            f"an integer from {low} to {high}")


TIMEOUT: Check = (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
                  and 0 < v <= 10**9 and math.isfinite(v), "a positive number of seconds")
TEXT: Check = (lambda v: isinstance(v, str) and is_unicode(v),
              "a string of valid Unicode (no lone surrogate)")
# a label or key is shown in every list and kept in an index; a longer label is cut (it
# is display text), a longer key refused (it is an identity)
MAX_TEXT_CHARS = 1000
# a key is an identity: an empty one made every submit given "" one task (REST refused it)
KEY: Check = (lambda v: TEXT[0](v) and 0 < len(v) <= MAX_TEXT_CHARS,
              f"a non-empty string of valid Unicode of at most {MAX_TEXT_CHARS} characters")

# the options every submission is held to (a None is an option not given); REST holds
# its bodies to these and to its own stricter ones (a label or key there is non-empty)
OPTION_CHECKS: dict[str, Check] = {
    "queue": (lambda v: isinstance(v, str) and bool(QUEUE_RE.fullmatch(v)),
              "a queue name (letters, digits, '_', '-', '.')"),
    "priority": int_between(-1_000_000, 1_000_000),
    "timeout": TIMEOUT,
    "max_retries": int_between(0, 100),
    "memory_limit_mb": int_between(1, 10_000_000),
    "label": TEXT, "task_key": KEY, "idempotency_key": KEY,
}


def shown_label(label: str) -> str:
    """``label`` cut to ``MAX_TEXT_CHARS`` characters (the last an ellipsis) when longer."""
    return label if len(label) <= MAX_TEXT_CHARS else label[:MAX_TEXT_CHARS - 1] + "…"


def check_options(options: Mapping[str, Any]) -> None:
    """``InvalidRequest`` naming each option that breaks its rule; nothing is written then."""
    errors = [{"field": name, "message": f"must be {what}"}
              for name, (ok, what) in OPTION_CHECKS.items()
              if options.get(name) is not None and not ok(options[name])]
    if errors:
        raise InvalidRequest(
            "invalid options: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors),
            errors=errors)


# before: accepted and never enforced (a function's 800 MB task ended succeeded)
NO_MEMORY_LIMIT = ("applies to a command, code or notebook job, a process of its own; a "
                   "registered function runs in its worker's process, whose memory is not "
                   "its alone (run the work as a code job to limit it)")


def memory_limit_errors(kind: str, memory_limit_mb: Any) -> list[dict[str, str]]:
    """The problem of a memory limit given to work it cannot be enforced on."""
    if memory_limit_mb is None or kind != "function":
        return []
    return [{"field": "memory_limit_mb", "message": NO_MEMORY_LIMIT}]


def check_queue_slots(queues: Mapping[str, Any], what: str = "queues") -> None:
    """``ValueError`` unless each queue is a queue name with 0 to MAX_SLOTS slots."""
    for name, slots in queues.items():
        if not (isinstance(name, str) and QUEUE_RE.fullmatch(name)):
            raise ValueError(f"{what}: {name!r} is not a queue name (letters, digits, '_', "
                             "'-', '.')")
        if not (isinstance(slots, int) and not isinstance(slots, bool)
                and 0 <= slots <= MAX_SLOTS):
            raise ValueError(f"{what}: the slots of {name!r} must be an integer from 0 to "
                             f"{MAX_SLOTS}, not {slots!r}")
