"""A rerun or fork keeps the promises a submit makes: its Idempotency-Key, and a rerun
its task's ``task_key`` (one active run of the work at a time)."""

from __future__ import annotations

import asyncio
from typing import Any

from jupyter_tasks.client import TasksClient
from tests.server.test_api import PARKED, assert_problem, finished


async def keyed_tasks(api: Any, task_key: str) -> list[dict[str, Any]]:
    return (await api.get(params={"task_key": task_key, "limit": 500})).json["tasks"]


async def test_a_rerun_keeps_the_task_key_so_one_run_is_active_at_a_time(api):
    # before: a rerun dropped task_key; 20 reruns of a keyed task at once made 20 tasks
    parent = await api.submit({"name": "srv_job", "task_key": "nightly", "queue": PARKED})
    while_active = await api.post(parent["id"], "rerun")
    assert while_active.code == 200, while_active.json
    assert while_active.json["id"] == parent["id"] and while_active.json["deduplicated"] is True

    assert (await api.post(parent["id"], "cancel")).code == 202
    answers = await asyncio.gather(*(api.post(parent["id"], "rerun") for _ in range(20)))
    created = [a.json for a in answers if a.code == 202]
    assert len(created) == 1, [(a.code, a.json) for a in answers]
    rerun = created[0]
    assert rerun["task_key"] == "nightly" and rerun["deduplicated"] is False
    assert rerun["relationship"] == "rerun" and rerun["parent_id"] == parent["id"]
    assert all(a.code == 200 and a.json["id"] == rerun["id"] and a.json["deduplicated"]
               for a in answers if a.code != 202), [(a.code, a.json) for a in answers]
    active = [t for t in await keyed_tasks(api, "nightly") if t["status"] == "queued"]
    assert [t["id"] for t in active] == [rerun["id"]]
    await api.post(rerun["id"], "cancel")


async def test_a_fork_is_other_work_and_does_not_take_the_task_key(api):
    # a fork changes the work (its params): the key named the parent's work
    parent = await api.submit({"name": "srv_job", "params": {"value": 1},
                               "task_key": "by-value", "queue": PARKED})
    fork = await api.post(parent["id"], "fork", body={"params": {"value": 2}})
    assert fork.code == 202 and fork.json["task_key"] is None, fork.json
    for task in (parent, fork.json):
        await api.post(task["id"], "cancel")


async def test_a_repeated_rerun_or_fork_with_one_idempotency_key_makes_one_task(api):
    # before: the header was ignored on rerun and fork: a client's retry after a lost
    # reply ran the work twice
    parent = await api.submit({"name": "srv_job", "params": {"value": 1}})
    await finished(api, parent["id"])
    key = {"Idempotency-Key": "retry-rerun"}
    first = await api.post(parent["id"], "rerun", headers=key)
    assert first.code == 202 and first.json["idempotency_key"] == "retry-rerun", first.json
    again = await api.post(parent["id"], "rerun", headers=key)
    assert again.code == 200 and again.json["id"] == first.json["id"], again.json
    assert again.json["deduplicated"] is True

    fork_key = {"Idempotency-Key": "retry-fork"}
    forked = await api.post(parent["id"], "fork", body={"params": {"value": 9}},
                            headers=fork_key)
    assert forked.code == 202, forked.json
    forked_again = await api.post(parent["id"], "fork", body={"params": {"value": 9}},
                                  headers=fork_key)
    assert forked_again.code == 200 and forked_again.json["id"] == forked.json["id"]
    assert (await finished(api, forked.json["id"]))["result"] == {"value": 9}

    # one key, another request: other overrides, a rerun for a fork's key, a plain
    # submit of the same spec, a rerun of another task
    assert_problem(await api.post(parent["id"], "fork", body={"params": {"value": 8}},
                                  headers=fork_key), 409)
    assert_problem(await api.post(parent["id"], "rerun", headers=fork_key), 409)
    assert_problem(await api.post(body={"name": "srv_job", "params": {"value": 1}},
                                  headers=key), 409)
    other = await api.submit({"name": "srv_job", "params": {"value": 1}})
    assert_problem(await api.post(other["id"], "rerun", headers=key), 409)
    children = (await api.get(params={"parent_id": parent["id"]})).json["tasks"]
    assert sorted(t["id"] for t in children) == sorted([first.json["id"], forked.json["id"]])


async def test_a_bad_idempotency_key_on_a_rerun_is_a_422_and_queues_nothing(api, tasks_app):
    parent = await api.submit({"name": "srv_job", "queue": PARKED})
    before = await tasks_app.manager.store.count_tasks()
    for header in (" ", "schedule:x"):
        for action in ("rerun", "fork"):
            problem = assert_problem(
                await api.post(parent["id"], action, headers={"Idempotency-Key": header}), 422)
            assert problem["errors"][0]["field"] in ("Idempotency-Key", "idempotency_key")
    assert await tasks_app.manager.store.count_tasks() == before
    await api.post(parent["id"], "cancel")


async def test_the_client_sends_the_idempotency_key_of_a_rerun_and_a_fork(
        tasks_app, http_server_client, jp_http_port, jp_base_url, jp_serverapp):
    client = TasksClient(f"http://localhost:{jp_http_port}{jp_base_url}",
                         jp_serverapp.identity_provider.token)
    parent = await client.submit(name="srv_job", params={"value": 3}, queue=PARKED)
    first = await client.rerun(parent["id"], idempotency_key="client-rerun")
    again = await client.rerun(parent["id"], idempotency_key="client-rerun")
    assert again["id"] == first["id"] and again["deduplicated"] is True
    fork = await client.fork(parent["id"], {"params": {"value": 4}}, idempotency_key="cf")
    assert (await client.fork(parent["id"], {"params": {"value": 4}},
                              idempotency_key="cf"))["id"] == fork["id"]
    for task in (parent, first, fork):
        await client.cancel(task["id"])
