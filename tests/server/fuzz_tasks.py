"""The only tasks the fuzzed server knows: quick and harmless whatever the parameters."""

from __future__ import annotations

from jupyter_tasks import task


@task("fuzz_echo", tags=["fuzz"])
def fuzz_echo(text: str = "", flag: bool = False) -> dict:
    """Return the parameters."""
    return {"text": text[:100], "flag": flag}


@task("fuzz_fail", tags=["fuzz"])
def fuzz_fail(message: str = "no") -> None:
    """Raise."""
    raise ValueError(message[:100])
