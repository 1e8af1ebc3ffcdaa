"""Tasks that return, report and log the values a real training cell produces on a bad day."""

from __future__ import annotations

import time

from jupyter_tasks import TaskContext, task


def nested(depth: int) -> list:
    """A list nested ``depth`` levels deep, built without recursion."""
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


VALUES = {
    "nan": lambda: float("nan"),
    "inf": lambda: float("inf"),
    "neg_inf": lambda: float("-inf"),
    "loss_dict": lambda: {"loss": float("nan"), "acc": 0.5, "history": [1.0, float("inf")]},
    "deep": lambda: nested(1_000),
    "very_deep": lambda: nested(50_000),
    "abyss": lambda: nested(200_000),
    "huge": lambda: ["x" * 1000] * 1000,
    "object": lambda: object(),
    "big_int": lambda: 10 ** 5000,
    "tuple_keys": lambda: {(1, 2): "pair", 3: "three"},
    "big_array": lambda: __import__("numpy").arange(1_500_000),
}


@task("hostile_value", tags=["reliability"])
def hostile_value(kind: str) -> object:
    """Return one of the values above."""
    return VALUES[kind]()


@task("echo_types", tags=["reliability"])
def echo_types(values: dict) -> dict:
    """Each value given, beside the name of the type the job received it as."""
    return {k: [v, type(v).__name__] for k, v in values.items()}


@task("typed_numbers", tags=["reliability"])
def typed_numbers(n: int, x: float, flag: bool) -> list:
    """The annotated numbers as received, with the name of n's type."""
    return [n, x, flag, type(n).__name__]


@task("nan_progress", tags=["reliability"])
def nan_progress(ctx: TaskContext, steps: int = 50) -> str:
    """Report NaN progress (and a NaN total) for a while."""
    for _ in range(steps):
        ctx.progress(float("nan"), float("inf"), "diverged")
        time.sleep(0.005)
    return "done"


@task("chatty", tags=["reliability"])
def chatty(ctx: TaskContext, lines: int = 100) -> int:
    """Log ``lines`` lines, a few milliseconds apart."""
    for i in range(lines):
        ctx.log(f"line {i}")
        ctx.progress(i + 1, lines)
        time.sleep(0.003)
    return lines
