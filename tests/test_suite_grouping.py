"""The suite's own distribution: pytest-xdist must keep each file, and the browser tier, whole."""

from __future__ import annotations

import pytest


def test_every_test_carries_its_xdist_group(request: pytest.FixtureRequest) -> None:
    """Each file is one group (the browser tier one group), so module-scoped servers start once."""
    config = request.config
    if not getattr(config.option, "loadgroup", False):  # set on xdist workers only
        pytest.skip("the groups exist only on an xdist worker under --dist loadgroup")
    wrong = []
    for item in request.session.items:
        # xdist appends "@group"; a parameter id may hold "@" too, so split at the last one
        path, _, group = item.nodeid.rpartition("@")
        expected = "browser" if path.startswith("tests/browser/") else path.split("::")[0]
        if group != expected:
            wrong.append(f"{item.nodeid} (expected @{expected})")
    assert not wrong, f"{len(wrong)} tests outside their group, e.g. {wrong[:3]}"
