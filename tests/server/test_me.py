"""``GET /api/tasks/me``: the owner name the server stores for the caller, and its root."""

from __future__ import annotations

import os


async def test_me_is_the_owner_stored_on_the_callers_tasks(api, jp_root_dir):
    me = (await api.get("me")).json
    task = await api.submit({"name": "srv_job", "queue": "parked"})
    # with the shared token that is the server's account, not the token's random name
    assert me["owner"] == task["owner"]
    assert os.path.realpath(me["root_dir"]) == os.path.realpath(str(jp_root_dir))
    assert os.path.isabs(me["root_dir"])
    assert me["sees_others"] is True
    doc = (await api.get("openapi.json")).json
    assert "get" in doc["paths"]["/api/tasks/me"]
    assert set(doc["components"]["schemas"]["Me"]["required"]) == set(me)
