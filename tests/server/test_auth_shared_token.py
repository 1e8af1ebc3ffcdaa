"""Whoever holds the server's one token is one owner, however the server is told to log in."""

from __future__ import annotations

from typing import Any

import pytest
from jupyter_server.auth.login import LegacyLoginHandler
from traitlets.config import Config


class OwnLoginPage(LegacyLoginHandler):
    """A site's own login page (the pre-2.0 way, ``login_handler_class``): it changes the
    page, not who a token's holder is."""


class NamedByHeader(LegacyLoginHandler):
    """A pre-2.0 custom login that does tell users apart (from a header, here)."""

    @classmethod
    def get_user(cls, handler: Any) -> Any:
        return handler.request.headers.get("X-Test-User") or super().get_user(handler)


@pytest.fixture(params=[OwnLoginPage, NamedByHeader])
def login_class(request: Any) -> type:
    return request.param


@pytest.fixture
def jp_server_config(jp_server_config: Config, login_class: type) -> Config:
    # jupyter_server takes its LegacyIdentityProvider for a custom login_handler_class
    jp_server_config.ServerApp.login_handler_class = login_class
    return jp_server_config


async def test_a_token_holder_is_one_owner_under_a_custom_login_page(api, login_class):
    # before: each token request was a new random owner (uuid), so a task_key's second
    # submit, or an Idempotency-Key's retry, ran the work again
    me = [(await api.get("me")).json["owner"] for _ in range(2)]
    if login_class is NamedByHeader:
        named = await api.get("me", headers={"X-Test-User": "carol"})
        assert named.json["owner"] == "carol", named.json
        return
    assert me[0] == me[1], me
    body = {"name": "srv_job", "queue": "parked", "task_key": "shared-token-key"}
    first = await api.submit(body)
    again = await api.post(body=body)
    assert again.code == 200 and again.json["id"] == first["id"], again.json
    assert again.json["deduplicated"] is True
