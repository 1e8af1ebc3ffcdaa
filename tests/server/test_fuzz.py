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
EXAMPLES_PER_REAL_TASK = 10
# a code job leaving an artifact whose name has a space, as files often do
ARTIFACT_WRITER = (
    "import os\n"
    "open(os.path.join(os.environ['JUPYTER_TASKS_OUTPUT'], 'a b.txt'), 'w').write('x')\n")
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


def _finished(server, task_id: str) -> dict:
    status, body = server.request("GET", f"/api/tasks/{task_id}/result?timeout=60", timeout=90)
    assert status == 200 and body["status"] not in ("queued", "running"), (status, body)
    return body


@pytest.mark.slow
def test_schemathesis_on_real_tasks_finds_no_schema_violation(server_factory):
    # random ids only meet 404s: these reads are fuzzed on tasks that exist, one of each
    # shape (artifacts, an error, a parent with a child), so their answers meet the schema
    server = server_factory("--JupyterTasksApp.workers=default=2", modules=str(FUZZ_MODULE))
    status, made = server.request("POST", "/api/tasks", {"code": ARTIFACT_WRITER})
    assert status == 202, made
    assert _finished(server, made["id"])["status"] == "succeeded"
    status, failing = server.request("POST", "/api/tasks", {"name": "fuzz_fail"})
    assert status == 202, failing
    assert _finished(server, failing["id"])["status"] == "failed"
    status, child = server.request("POST", f"/api/tasks/{failing['id']}/fork",
                                   {"params": {"message": "again"}})
    assert status == 202, child
    _finished(server, child["id"])
    status, full = server.request("GET", f"/api/tasks/{made['id']}?view=full")
    assert [a["name"] for a in full["artifacts"]] == ["a b.txt"]

    auth = {"Authorization": f"token {server.token}"}
    schema = schemathesis.openapi.from_url(f"{server.url}/api/tasks/openapi.json",
                                           headers=auth, timeout=30)
    reads = [operation for operation in (result.ok() for result in schema.get_all_operations())
             if "{task_id}" in operation.path and operation.method.upper() in ("GET", "HEAD")]
    assert len(reads) >= 5
    tested = []
    for task_id in (made["id"], failing["id"], child["id"]):
        for operation in reads:
            _fuzz_on(server, operation, task_id, auth)
            tested.append((task_id, operation.path))
    assert len(tested) == 3 * len(reads)


def _fuzz_on(server, operation, task_id: str, auth: dict[str, str]) -> None:
    """Fuzz one read's query and headers with its path naming ``task_id`` (and its artifact)."""

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES_PER_REAL_TASK, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def fuzz(case):
        case.path_parameters["task_id"] = task_id
        if "name" in case.path_parameters:
            case.path_parameters["name"] = "a b.txt"
        if case.query and "timeout" in case.query:
            case.query["timeout"] = 0  # the tasks have ended; never wait
        case.call_and_validate(base_url=server.url, headers=auth, checks=CHECKS, timeout=30)

    fuzz()
