"""Whoever holds the server's one token is one owner, however the server is told to log
in; a login that names its users keeps them apart."""

from __future__ import annotations

import json
from http.cookies import SimpleCookie
from typing import Any

import pytest
from jupyter_server.auth import PasswordIdentityProvider, User
from jupyter_server.auth.login import LegacyLoginHandler, LoginFormHandler
from tornado.httpclient import AsyncHTTPClient
from traitlets.config import Config


class OwnLoginPage(LegacyLoginHandler):
    """A site's own login page (the pre-2.0 way, ``login_handler_class``): it changes the
    page, not who a token's holder is."""


class NamedByHeader(LegacyLoginHandler):
    """A pre-2.0 custom login that tells users apart (from a header, here)."""

    @classmethod
    def get_user(cls, handler: Any) -> Any:
        return handler.request.headers.get("X-Test-User") or super().get_user(handler)


class NamedByLegacyForm(LegacyLoginHandler):
    """A pre-2.0 login form that names its user in the cookie it sets."""

    def post(self) -> None:
        self.set_login_cookie(self, self.get_argument("username"))
        self.redirect(self.base_url)


class NamedByForm(PasswordIdentityProvider):
    """A jupyter_server 2 provider whose login form names its user."""

    def process_login_form(self, handler: Any) -> User:
        return User(handler.get_argument("username"))


class NamingLoginPage(LoginFormHandler):
    """A jupyter_server 2 login page of a site's own (the default provider's
    ``login_handler_class``) that names its user in the cookie."""

    def post(self) -> None:
        self.identity_provider.set_login_cookie(self, User(self.get_argument("username")))
        self.redirect(self.base_url)


class OAuthLikeLegacyPage(LegacyLoginHandler):
    """A pre-2.0 login page that names its user on its GET (an OAuth callback's way)."""

    def get(self) -> None:
        if self.get_argument("username", None):
            self.set_login_cookie(self, self.get_argument("username"))
            self.redirect(self.base_url)
        else:
            super().get()


SETUPS = {"own login page": ("login_handler_class", OwnLoginPage),
          "named by header": ("login_handler_class", NamedByHeader),
          "named by a legacy form": ("login_handler_class", NamedByLegacyForm),
          "named by a form": ("identity_provider_class", NamedByForm),
          "named by a login page": ("PasswordIdentityProvider.login_handler_class",
                                    NamingLoginPage),
          "named on a legacy get": ("login_handler_class", OAuthLikeLegacyPage)}


@pytest.fixture(params=list(SETUPS))
def setup(request: Any) -> str:
    return request.param


@pytest.fixture
def jp_server_config(jp_server_config: Config, setup: str) -> Config:
    # a login_handler_class makes jupyter_server take its LegacyIdentityProvider
    trait, value = SETUPS[setup]
    section, _, name = trait.rpartition(".")
    setattr(getattr(jp_server_config, section or "ServerApp"), name, value)
    return jp_server_config


async def logged_in(base: str, username: str, by_get: bool = False,
                    password: str = "x") -> str:
    """The cookie header of a browser that logged in on the form as ``username`` with
    ``password`` (or, ``by_get``, came back to the login page from elsewhere naming it)."""
    client = AsyncHTTPClient()
    page = await client.fetch(base + "login", raise_error=False)
    cookies = SimpleCookie()
    for header in page.headers.get_list("Set-Cookie"):
        cookies.load(header)
    xsrf = cookies["_xsrf"].value
    if by_get:
        done = await client.fetch(base + f"login?username={username}", raise_error=False,
                                  follow_redirects=False, headers={"Cookie": f"_xsrf={xsrf}"})
    else:
        done = await client.fetch(
            base + "login", method="POST", raise_error=False, follow_redirects=False,
            headers={"Cookie": f"_xsrf={xsrf}"},
            body=f"username={username}&password={password}&_xsrf={xsrf}")
    for header in done.headers.get_list("Set-Cookie"):
        cookies.load(header)
    return "; ".join(f"{name}={morsel.value}" for name, morsel in cookies.items())


async def test_a_token_holder_is_one_owner_and_named_users_stay_apart(
        api, setup, jp_http_port, jp_base_url):
    # before (own login page): each token request was a new random owner (uuid), so a
    # task_key's second submit, or an Idempotency-Key's retry, ran the work again; and a
    # check by overrides took the users of a login form for one owner
    base = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    if setup == "own login page":
        me = [(await api.get("me")).json["owner"] for _ in range(2)]
        assert me[0] == me[1], me
        body = {"name": "srv_job", "queue": "parked", "task_key": "shared-token-key"}
        first = await api.submit(body)
        again = await api.post(body=body)
        assert again.code == 200 and again.json["id"] == first["id"], again.json
        assert again.json["deduplicated"] is True
    elif setup == "named by header":
        named = await api.get("me", headers={"X-Test-User": "carol"})
        assert named.json["owner"] == "carol", named.json
    else:
        client = AsyncHTTPClient()
        owners = []
        for user in ("alice", "bob"):
            cookie = await logged_in(base, user, by_get=setup == "named on a legacy get")
            me = await client.fetch(base + "api/tasks/me", headers={"Cookie": cookie})
            owners.append(json.loads(me.body)["owner"])
        assert owners == ["alice", "bob"], owners
