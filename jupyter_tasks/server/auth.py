"""Who may see and act on which task: the server's authorizer on ``tasks`` / ``tasks-others``."""

from __future__ import annotations

from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.identity import (
    IdentityProvider,
    LegacyIdentityProvider,
    PasswordIdentityProvider,
)
from jupyter_server.auth.login import LegacyLoginHandler, LoginFormHandler

from ..callbacks import calls_this_machine
from ..exceptions import TaskNotFound
from ..models import Task
from .problems import Problem

RESOURCE = "tasks"
OTHERS = "tasks-others"


# Identity providers with one shared secret (token or password): whoever holds it is the
# single user of the server, but each token request gets a fresh random "Anonymous" name.
# Exact types: a subclass may name users anywhere (its login form, its cookie)
_SHARED_SECRET = (IdentityProvider, PasswordIdentityProvider)
# where a pre-2.0 login_handler_class (jupyter_server's LegacyIdentityProvider) may name
# its users; one that overrides none of them only changes the login page
_LEGACY_NAMING = ("get", "post", "set_login_cookie", "get_user", "get_user_token",
                  "get_user_cookie")


def _names_users(provider: Any) -> bool:
    """False when ``provider`` only has jupyter_server's shared-secret naming, which tells
    no users apart: its default token and password providers with their own login page,
    and a pre-2.0 ``login_handler_class`` that changes how the page looks, not who is
    logged in. Anything else is taken to name users (a mistake there only scatters one
    person's tasks; the other way, users would see each other's)."""
    if type(provider) in _SHARED_SECRET:
        # a login page of its own (login_handler_class) may name users in its cookie
        return getattr(provider, "login_handler_class", LoginFormHandler) \
            is not LoginFormHandler
    if type(provider) is LegacyIdentityProvider:
        login = provider.login_handler_class
        return any(_function(login, name) is not _function(LegacyLoginHandler, name)
                   for name in _LEGACY_NAMING)
    return True


def _function(cls: type, name: str) -> Any:
    """The function behind ``cls.name`` (a classmethod's own), to tell an override."""
    attribute = getattr(cls, name, None)
    return getattr(attribute, "__func__", attribute)


def username(handler: Any) -> str:
    """The name a task's ``owner`` holds for the current user.

    ``current_user.username`` when the identity provider knows users (JupyterHub, a
    custom provider). Where it only checks the one shared token or password, every
    request or login is a new random anonymous user, which would scatter one person's
    tasks (and their task keys and idempotency keys) over random owners: there the
    owner is the account running the server, the same name kernels and the CLI use.
    """
    if not _names_users(handler.identity_provider):
        return handler.settings["jupyter_tasks_manager"].owner
    user = handler.current_user
    return getattr(user, "username", None) or str(user)


# The server's own resource for what a kind of work runs: a command is what a terminal
# runs, code, a notebook or a cell what a kernel runs. A user the server denies
# terminals and kernels ran `sh -c ...` as the server's account through a task all the
# same; named tasks (the registry's functions) need only ``tasks``
WORK_RESOURCES = {"command": "terminals", "code": "kernels", "notebook": "kernels"}
KIND_RESOURCES = {"subprocess": "terminals", "code": "kernels", "notebook": "kernels",
                  "cell": "kernels"}


async def check_may_run(handler: Any, resource: str | None, what: str) -> None:
    """403 unless the user may ``execute`` ``resource`` (None: nothing to check)."""
    if resource is not None and not await may(handler, "execute", resource):
        raise Problem(403, f"you may not run {what} here: it needs the server's permission "
                           f"to execute {resource}, as opening one would")


async def check_may_call_back(handler: Any, url: Any) -> None:
    """403 for a callback to this machine unless the user may ``execute`` terminals.

    The default allow-list lets callbacks reach any port of this machine (a local
    receiver): a user the server denies terminals would otherwise have it POST to
    services only this machine reaches, which a terminal's curl does for those it allows.
    """
    if calls_this_machine(url) and not await may(handler, "execute", "terminals"):
        raise Problem(403, "you may not have a callback sent to this machine: it needs the "
                           "server's permission to execute terminals, as a terminal would "
                           "reach it")


async def check_may_read_files(handler: Any, what: str) -> None:
    """403 unless the user may ``read`` the server's files (its resource ``contents``)."""
    # a user the server denies its files must not read one through a task route, nor
    # learn from a 404 or a 422 which paths exist
    if not await may(handler, "read", "contents"):
        raise Problem(403, f"you may not read {what} here: it needs the server's permission "
                           "to read contents, as opening it would")


def work_resource(job: Any) -> tuple[str | None, str]:
    """(resource, what) a submitted or scheduled job's body runs."""
    if isinstance(job, dict):
        for field, resource in WORK_RESOURCES.items():
            if job.get(field) is not None:
                return resource, f"{field} work"
    return None, ""


async def may(handler: Any, action: str, resource: str) -> bool:
    """Whether the server's authorizer grants ``action`` on ``resource`` to the current user."""
    return bool(await ensure_async(
        handler.authorizer.is_authorized(handler, handler.current_user, action, resource)
    ))


async def owners_filter(handler: Any, action: str = "read") -> list[str] | None:
    """None when the user may see everyone's tasks, else just their own name."""
    if await may(handler, action, OTHERS):
        return None
    return [username(handler)]


async def check_task_access(handler: Any, task: Task, action: str) -> Task:
    """The task if the user may ``action`` it; 404 if they may not even see it, else 403."""
    if task.owner == username(handler) or await may(handler, action, OTHERS):
        return task
    if action != "read" and await may(handler, "read", OTHERS):
        raise Problem(403, f"you may not {action} tasks of other users")
    raise TaskNotFound(f"no task with id {task.id}")
