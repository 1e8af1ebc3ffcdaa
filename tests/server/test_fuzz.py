"""Schemathesis against the served ``openapi.json``: no 5xx, no response breaking the schema."""

from __future__ import annotations

from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

FUZZ_MODULE = Path(__file__).with_name("fuzz_tasks.py")
EXAMPLES_PER_OPERATION = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_or_schema_violation(server_factory):
    # no job workers: fuzzed submissions stay queued instead of running random commands
    server = server_factory("--JupyterTasksApp.workers=default=0", modules=str(FUZZ_MODULE))
    auth = {"Authorization": f"token {server.token}"}
    schema = schemathesis.openapi.from_url(f"{server.url}/api/tasks/openapi.json",
                                           headers=auth, timeout=30)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18
    tested = []
    for operation in operations:
        if operation.path == "/api/tasks/events":
            continue  # a websocket: covered by test_events.py

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        def fuzz(case):
            case.call_and_validate(base_url=server.url, headers=auth, checks=CHECKS, timeout=30)

        fuzz()
        tested.append(f"{operation.method.upper()} {operation.path}")
    assert len(tested) == len(operations) - 1
    status, _ = server.request("GET", "/api/tasks/stats")
    assert status == 200  # still serving after the fuzzing
