"""Authentication and authorization: no token, no access; other users' tasks stay hidden."""

from __future__ import annotations

import json

import pytest
from tornado.httpclient import HTTPClientError

TASK_ID = "0" * 32
ROUTES = [
    ("GET", "api/tasks"), ("POST", "api/tasks"),
    ("GET", f"api/tasks/{TASK_ID}"), ("DELETE", f"api/tasks/{TASK_ID}"),
    ("GET", f"api/tasks/{TASK_ID}/result"), ("GET", f"api/tasks/{TASK_ID}/logs"),
    ("POST", f"api/tasks/{TASK_ID}/cancel"), ("POST", f"api/tasks/{TASK_ID}/rerun"),
    ("POST", f"api/tasks/{TASK_ID}/fork"), ("POST", f"api/tasks/{TASK_ID}/confirm"),
    ("GET", f"api/tasks/{TASK_ID}/artifacts"), ("GET", f"api/tasks/{TASK_ID}/artifacts/a.csv"),
    ("HEAD", f"api/tasks/{TASK_ID}/artifacts/a.csv"),
    ("GET", "api/tasks/registry"), ("GET", "api/tasks/registry/srv_add"),
    ("POST", "api/tasks/registry/srv_add/execute"),
    ("GET", "api/tasks/stats"), ("GET", "api/tasks/openapi.json"),
    ("GET", "api/tasks/no/such/route"),
]


@pytest.mark.parametrize("token", ["", "token wrong-token"])
@pytest.mark.parametrize("method, path", ROUTES)
async def test_every_route_refuses_requests_without_a_valid_token(jp_fetch, tasks_app, method,
                                                                  path, token):
    body = json.dumps({"name": "srv_add", "params": {"a": 1}}) if method == "POST" else None
    response = await jp_fetch(path, method=method, body=body, raise_error=False,
                              headers={"Authorization": token},
                              allow_nonstandard_methods=True)
    assert response.code in (401, 403), (method, path, response.code)
    if method != "HEAD":
        assert json.loads(response.body)["status"] == response.code
    assert await tasks_app.manager.store.count_tasks() == 0  # nothing ran


async def test_websocket_needs_a_token_and_accepts_it_in_the_query(jp_ws_fetch, jp_serverapp,
                                                                   tasks_app):
    for token in ("", "token wrong"):
        with pytest.raises(HTTPClientError) as info:
            await jp_ws_fetch("api", "tasks", "events", headers={"Authorization": token})
        assert info.value.code in (401, 403)
    ws = await jp_ws_fetch("api", "tasks", "events", headers={"Authorization": ""},
                           params={"token": jp_serverapp.identity_provider.token})
    ws.close()
