"""The suite's own distribution: pytest-xdist must keep each file, and the browser tier, whole."""

from __future__ import annotations

import pytest


def test_every_test_carries_its_xdist_group(request: pytest.FixtureRequest) -> None:
    """xdist applied the group tests/conftest.py marked, so module-scoped servers start once."""
    if not getattr(request.config.option, "loadgroup", False):  # set on xdist workers only
        pytest.skip("the groups exist only on an xdist worker under --dist loadgroup")
    wrong = []
    for item in request.session.items:
        mark = item.get_closest_marker("xdist_group")
        # xdist appends "@group"; a parameter id may hold "@" too, so split at the last one
        applied = item.nodeid.rpartition("@")[2]
        if mark is None or applied != mark.args[0]:
            wrong.append(f"{item.nodeid} (marked {mark.args[0] if mark else None})")
    assert not wrong, f"{len(wrong)} tests outside their group, e.g. {wrong[:3]}"
