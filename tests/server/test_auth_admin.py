"""A user allowed to act on others' tasks beside one who is not: what the first makes
of the second's task stays theirs (its children, its callback)."""

from __future__ import annotations

from typing import Any

import nbformat
import pytest
from jupyter_server.auth import Authorizer, IdentityProvider, User
from traitlets.config import Config

USERS = {"alice-token": "alice", "admin-token": "admin", "eve-token": "eve"}


class TokenUsers(IdentityProvider):
    """Each token names one user; no cookies."""

    async def get_user_token(self, handler: Any) -> User | None:
        name = USERS.get(self.get_token(handler) or "")
        return User(name) if name else None

    def get_user_cookie(self, handler: Any) -> None:
        return None


class AdminSeesOthers(Authorizer):
    """Everyone may use ``tasks``; only admin ``tasks-others``; eve no kernel, terminal
    or file."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        if user.username == "eve" and resource in ("kernels", "terminals", "contents"):
            return False
        return resource != "tasks-others" or user.username == "admin"


@pytest.fixture
def jp_server_config(jp_server_config: Config) -> Config:
    jp_server_config.ServerApp.identity_provider_class = TokenUsers
    jp_server_config.ServerApp.authorizer_class = AdminSeesOthers
    return jp_server_config


def as_user(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


async def test_an_admins_fork_of_my_task_is_neither_listed_to_me_nor_called_back_to_me(
        api, tasks_app):
    # before: alice's ?view=full listed admin's fork (its params, label, result), which
    # she could not open; and the fork kept alice's callback_url, so its result was
    # posted to her hook
    alice, admin = as_user("alice-token"), as_user("admin-token")
    task = await api.submit({"name": "srv_job", "queue": "parked",
                             "callback_url": "http://127.0.0.1:9/alice-hook"}, headers=alice)
    own_rerun = await api.post(task["id"], "rerun", headers=alice)
    assert own_rerun.code == 202, own_rerun.json
    fork = await api.post(task["id"], "fork", headers=admin,
                          body={"params": {"value": 42}})
    assert fork.code == 202, fork.json
    assert fork.json["owner"] == "admin"
    assert (await api.get(fork.json["id"], headers=alice)).code == 404
    full = (await api.get(task["id"], headers=alice, params={"view": "full"})).json
    assert [c["id"] for c in full["children"]] == [own_rerun.json["id"]]
    everyone = (await api.get(task["id"], headers=admin, params={"view": "full"})).json
    assert {c["id"] for c in everyone["children"]} == {own_rerun.json["id"], fork.json["id"]}
    # a rerun of one's own task keeps its callback; another user's does not
    store = tasks_app.manager.store
    assert (await store.get_task(own_rerun.json["id"])).callback_url == \
        "http://127.0.0.1:9/alice-hook"
    assert (await store.get_task(fork.json["id"])).callback_url is None
    for child in (own_rerun.json, fork.json, task):
        await api.post(child["id"], "cancel", headers=admin)


async def test_a_user_denied_terminals_and_kernels_runs_no_command_code_or_notebook(
        api, tasks_app, jp_root_dir):
    # before: eve got 403 on /api/kernels and /api/terminals, yet ran `sh -c 'id'` and
    # Python as the server's account through POST /api/tasks
    eve, alice = as_user("eve-token"), as_user("alice-token")
    (jp_root_dir / "nb.ipynb").write_text(
        '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    before = await tasks_app.manager.store.count_tasks()
    for body in ({"command": ["sh", "-c", "id"]}, {"code": "print(1)"},
                 {"notebook": "nb.ipynb"}):
        response = await api.post(body=body, headers=eve)
        assert response.code == 403, (body, response.json)
        assert "permission to execute" in response.json["detail"], response.json
        scheduled = await api.post("schedules", headers=eve, body={
            "name": "nightly", "cron": "0 3 * * *", "job": body})
        assert scheduled.code == 403, (body, scheduled.json)
    assert await tasks_app.manager.store.count_tasks() == before  # nothing went in
    named = await api.post(body={"name": "srv_job", "queue": "parked"}, headers=eve)
    assert named.code == 202, named.json  # the registry's own tasks need only `tasks`
    mine = await api.submit({"command": ["true"], "queue": "parked"}, headers=alice)
    assert mine["owner"] == "alice"
    for action in ("rerun", "fork"):  # not through another door either
        response = await api.post(named.json["id"], action, headers=eve)
        assert response.code == 202, response.json
    # a command of hers from before the server denied her terminals: no rerun, no fork
    older = await tasks_app.manager.submit_spec({"command": ["true"]}, mode="job",
                                                owner="eve", queue="parked")
    for action in ("rerun", "fork"):
        response = await api.post(older.id, action, headers=eve)
        assert response.code == 403, response.json
    for task_id in (named.json["id"], mine["id"], older.id):
        await api.post(task_id, "cancel", headers=as_user("admin-token"))


async def test_a_user_denied_terminals_fires_no_command_schedule(api, tasks_app, jp_root_dir):
    # before: eve could not rerun her older command task, yet "run now", resume and a new
    # cron made her older command schedule run it, once or every minute
    from jupyter_tasks.server.handlers import parse_job_body

    eve = as_user("eve-token")
    schedule = await tasks_app.scheduler.create(
        {"name": "older", "cron": "0 3 * * *", "paused": True,
         "job": {"command": ["true"], "queue": "parked"}},
        owner="eve", parse_job=lambda job: parse_job_body(job, str(jp_root_dir)))
    before = await tasks_app.manager.store.count_tasks()
    for method, path, body in (("POST", "run", None), ("POST", "resume", None),
                               ("PATCH", None, {"cron": "* * * * *"}),
                               ("PATCH", None, {"paused": False}),
                               ("PATCH", None, {"job": {"command": ["id"]}})):
        parts = ["schedules", schedule.id, *([path] if path else [])]
        response = await api.call(method, *parts, body=body, headers=eve)
        assert response.code == 403, (method, path, body, response.json)
        assert "permission to execute terminals" in response.json["detail"]
    assert await tasks_app.manager.store.count_tasks() == before
    unchanged = await tasks_app.manager.store.require_schedule(schedule.id)
    assert (unchanged.paused, unchanged.cron) == (True, "0 3 * * *")
    # what runs nothing stays hers to do
    renamed = await api.call("PATCH", "schedules", schedule.id, body={"name": "renamed"},
                                headers=eve)
    assert renamed.code == 200, renamed.json
    paused = await api.post("schedules", schedule.id, "pause", headers=eve)
    assert paused.code == 200, paused.json
    deleted = await api.call("DELETE", "schedules", schedule.id, headers=eve)
    assert deleted.code == 204


async def test_a_user_denied_the_servers_files_reads_no_notebooks_parameters(
        api, jp_fetch, jp_root_dir):
    # before: eve got 403 on /api/contents, yet read any notebook's parameters cell (its
    # source: the defaults it assigns, a key pasted there) through notebook-parameters,
    # and learned from 404 or 422 which files exist
    eve, alice = as_user("eve-token"), as_user("alice-token")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "api_key = 's3cret'", metadata={"tags": ["parameters"]})])
    nbformat.write(nb, jp_root_dir / "report.ipynb")
    contents = await jp_fetch("api", "contents", "report.ipynb", headers=eve, raise_error=False)
    assert contents.code == 403
    for path in ("report.ipynb", "missing.ipynb"):
        response = await api.get("notebook-parameters", params={"path": path}, headers=eve)
        assert response.code == 403, (path, response.json)
        assert "permission to read contents" in response.json["detail"], response.json
        assert b"s3cret" not in response.body
    mine = await api.get("notebook-parameters", params={"path": "report.ipynb"}, headers=alice)
    assert mine.code == 200 and mine.json["parameters"][0]["default"] == "s3cret", mine.json


async def test_a_user_denied_kernels_learns_nothing_of_the_servers_paths_from_a_submit(
        api, jp_root_dir, tmp_path):
    # before: the body's paths were checked before the permission: eve got 422 "must
    # stay inside the server root" for a link leading out, 422 for a hidden one, and
    # 403 only for a path that was neither
    eve = as_user("eve-token")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.ipynb").write_text("{}")
    (jp_root_dir / "lnk").symlink_to(outside)
    answers = set()
    for path in ("lnk/secret.ipynb", ".hidden/x.ipynb", "nothere/x.ipynb", "../x.ipynb"):
        for body in ({"notebook": path}, {"notebook": path, "output_path": "out.ipynb"}):
            response = await api.post(body=body, headers=eve)
            assert response.code == 403, (body, response.json)
            answers.add(response.json["detail"])
    assert len(answers) == 1, answers  # one answer, whatever the path is


async def test_a_nul_in_a_parameter_that_names_the_output_is_refused_not_a_500(api,
                                                                                jp_root_dir):
    # before: 500 "internal error" (os.path.realpath: "embedded null byte")
    alice = as_user("alice-token")
    nbformat.write(nbformat.v4.new_notebook(), jp_root_dir / "p.ipynb")
    body = {"notebook": "p.ipynb", "parameters": {"p": "a\u0000b"},
            "output_path": "out-{p}.ipynb", "queue": "parked"}
    response = await api.post(body=body, headers=alice)
    assert response.code == 422, response.json
    assert "parameter p holds a NUL" in response.json["detail"], response.json
    scheduled = await api.post("schedules", headers=alice, body={
        "name": "nul", "cron": "0 3 * * *", "job": body})
    assert scheduled.code == 422, scheduled.json
    sound = await api.submit({**body, "parameters": {"p": "x"}}, headers=alice)
    fork = await api.post(sound["id"], "fork", headers=alice,
                          body={"parameters": {"p": "a\u0000b"}})
    assert fork.code == 422 and "holds a NUL" in fork.json["detail"], fork.json
    await api.post(sound["id"], "cancel", headers=alice)


async def test_a_user_denied_terminals_has_no_callback_sent_to_this_machine(api, tasks_app):
    # before: the default allow-list admits this machine on any port and path, so eve,
    # denied terminals, had the server POST to services only this machine reaches
    eve, alice = as_user("eve-token"), as_user("alice-token")
    before = await tasks_app.manager.store.count_tasks()
    for url in ("http://127.0.0.1:2375/containers/prune", "http://localhost:9200/x",
                "http://[::1]:8080/admin/reset?all=1", "http://api.localhost:9/"):
        job = {"name": "srv_job", "queue": "parked", "callback_url": url}
        for response in (await api.post(body=job, headers=eve),
                         await api.post("registry", "srv_job", "execute", headers=eve,
                                        body={"callback_url": url}),
                         await api.post("schedules", headers=eve, body={
                             "name": "n", "cron": "0 3 * * *", "job": job})):
            assert response.code == 403, (url, response.json)
            assert "permission to execute terminals" in response.json["detail"]
    assert await tasks_app.manager.store.count_tasks() == before
    # a schedule of hers changed to call back here: refused as its creation is
    made = await api.post("schedules", headers=eve, body={
        "name": "n", "cron": "0 3 * * *", "job": {"name": "srv_job", "queue": "parked"}})
    assert made.code == 201, made.json
    changed = await api.call("PATCH", "schedules", made.json["id"], headers=eve, body={"job": {
        "name": "srv_job", "queue": "parked", "callback_url": "http://127.0.0.1:9/x"}})
    assert changed.code == 403, changed.json
    # a user the server lets run commands may, as before
    mine = await api.post(body={"name": "srv_job", "queue": "parked",
                                "callback_url": "http://127.0.0.1:9/hook"}, headers=alice)
    assert mine.code == 202, mine.json
    await api.post(mine.json["id"], "cancel", headers=alice)
    await api.call("DELETE", "schedules", made.json["id"], headers=eve)
