"""``GET /api/tasks/me`` when the identity provider knows users: each caller is themself."""

from __future__ import annotations

from tests.server.test_auth_users import (  # noqa: F401 - fixtures
    as_user,
    authorizer,
    jp_server_config,
)


async def test_me_names_each_user(api, authorizer):  # noqa: F811
    for token, name in (("alice-token", "alice"), ("bob-token", "bob")):
        me = (await api.get("me", headers=as_user(token))).json
        task = await api.submit({"name": "srv_job", "queue": "parked"}, headers=as_user(token))
        assert me["owner"] == name == task["owner"]
        assert me["sees_others"] is (authorizer == "default")
