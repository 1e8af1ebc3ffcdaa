"""Two users under the server's authorizer: each is confined to their own tasks unless allowed."""

from __future__ import annotations

from typing import Any

import pytest
from jupyter_server.auth import Authorizer, IdentityProvider, User
from traitlets.config import Config

from tests.server.test_events import read_until

USERS = {"alice-token": "alice", "bob-token": "bob"}


class TwoUsers(IdentityProvider):
    """Each token names one user (header or ``?token=``); no cookies."""

    async def get_user_token(self, handler: Any) -> User | None:
        name = USERS.get(self.get_token(handler) or "")
        return User(name) if name else None

    def get_user_cookie(self, handler: Any) -> None:
        return None


class OwnTasksOnly(Authorizer):
    """Grants everything on ``tasks`` and nothing on ``tasks-others``."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource != "tasks-others"


@pytest.fixture(params=["restrictive", "default"])
def authorizer(request: Any) -> str:
    return request.param


@pytest.fixture
def jp_server_config(jp_server_config: Config, authorizer: str) -> Config:
    jp_server_config.ServerApp.identity_provider_class = TwoUsers
    if authorizer == "restrictive":
        jp_server_config.ServerApp.authorizer_class = OwnTasksOnly
    return jp_server_config


def as_user(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


async def test_second_user_cannot_see_or_touch_the_first_users_task(api, authorizer, jp_ws_fetch):
    alice, bob = as_user("alice-token"), as_user("bob-token")
    task = await api.submit({"name": "srv_job", "queue": "parked"}, headers=alice)
    assert task["owner"] == "alice"
    own = await api.submit({"name": "srv_job", "queue": "parked"}, headers=bob)
    assert own["owner"] == "bob"
    reads = [("GET", (task["id"],)), ("GET", (task["id"], "result")),
             ("GET", (task["id"], "logs")), ("GET", (task["id"], "artifacts"))]
    writes = [("POST", (task["id"], "cancel")), ("POST", (task["id"], "rerun")),
              ("POST", (task["id"], "fork")), ("DELETE", (task["id"],))]
    bob_list = {t["id"] for t in (await api.get(headers=bob)).json["tasks"]}
    bob_stats = (await api.get("stats", headers=bob)).json
    if authorizer == "restrictive":
        for method, parts in reads + writes:
            response = await api.call(method, *parts, headers=bob)
            assert response.code == 404, (method, parts, response.code)
        assert bob_list == {own["id"]}
        assert bob_stats["statuses"]["queued"] == 1
        assert (await api.get(headers=bob, params={"owner": "alice"})).json["tasks"] == []
    else:  # the default authorizer allows everything: every user sees every task
        assert (await api.get(task["id"], headers=bob)).code == 200
        assert bob_list == {task["id"], own["id"]}
        assert bob_stats["statuses"]["queued"] == 2
    still = (await api.get(task["id"], headers=alice)).json
    assert still["status"] == "queued" and still["cancel_requested"] is False
    assert (await api.get(task["id"], headers=alice)).code == 200

    # the websocket is filtered the same way
    ws = await jp_ws_fetch("api", "tasks", "events", params={"since": "0"}, headers=bob)
    await api.post(own["id"], "cancel", headers=bob)
    messages = await read_until(ws, lambda m: m["task_id"] == own["id"]
                                and m["type"] == "task.cancelled")
    seen = {m["task_id"] for m in messages}
    assert seen == ({own["id"]} if authorizer == "restrictive" else {own["id"], task["id"]})
    ws.close()
    await api.post(task["id"], "cancel", headers=alice)
