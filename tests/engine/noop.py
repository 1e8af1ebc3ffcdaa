"""The trivial ``noop`` job, in a registry of its own: for tests and the engine benchmarks."""

from __future__ import annotations

from jupyter_tasks.registry import Registry


def noop_registry() -> Registry:
    """A registry holding the trivial ``noop`` job (``noop(i) -> i``)."""
    registry = Registry()

    @registry.task("noop", mode="job")
    async def noop(i: int) -> int:
        return i

    return registry
