"""``TasksClient`` says what in a body JSON cannot carry, as the server would, naming where."""

from __future__ import annotations

import math

import pytest

from jupyter_tasks.client import TasksClient
from jupyter_tasks.exceptions import ValueNotStorable


@pytest.fixture
def client(tasks_app, http_server_client, jp_http_port, jp_base_url,
           jp_serverapp) -> TasksClient:
    # the test server jp_fetch reaches (http_server_client listens on jp_http_port)
    return TasksClient(f"http://localhost:{jp_http_port}{jp_base_url}",
                       jp_serverapp.identity_provider.token)


@pytest.mark.parametrize(("value", "named"), [
    (math.nan, "nan"), (math.inf, "inf"), ({1, 2}, "set"), ({1: "x"}, "key"),
])
async def test_a_value_json_cannot_carry_is_a_readable_error_naming_its_path(client, value,
                                                                             named):
    # before: NaN went out as the non-JSON token NaN and came back as "400: malformed
    # JSON body: NaN is not valid JSON" (no path; the user never wrote JSON); a set
    # raised json's own TypeError
    with pytest.raises(ValueNotStorable) as info:
        await client.submit(name="srv_job", params={"value": {"inner": value}})
    message = str(info.value)
    assert "params" in message and "inner" in message and named in message, message
    listed = await client.list()
    assert listed["tasks"] == []  # nothing was sent
    good = await client.submit(name="srv_job", params={"value": 2})
    assert good["params"] == {"value": 2}


async def test_the_url_jupyter_server_list_prints_works_and_other_urls_are_refused(
        tasks_app, http_server_client, jp_http_port, jp_base_url, jp_serverapp) -> None:
    # before: the path went after the query ('/?token=x/api/tasks/stats'), the server
    # answered its HTML page with 200, and every call returned None as if all were well
    from jupyter_tasks.client import TasksClientError

    token = jp_serverapp.identity_provider.token
    listed = TasksClient(f"http://localhost:{jp_http_port}{jp_base_url}?token={token}")
    assert set((await listed.stats())["statuses"].values()) == {0}
    for url in (f"http://localhost:{jp_http_port}{jp_base_url}?x=1", "127.0.0.1:8888",
                "ftp://127.0.0.1/"):
        with pytest.raises(TasksClientError) as info:
            TasksClient(url, token)
        assert url in str(info.value)
    with pytest.raises(ValueError, match="not nan"):
        await listed.wait("0" * 32, timeout=math.nan)
    with pytest.raises(TasksClientError, match="line break"):
        TasksClient(f"http://localhost:{jp_http_port}{jp_base_url}", token + "\n")


async def test_a_page_that_is_no_api_answer_is_an_error_not_none() -> None:
    # a URL naming some other site (or a path outside the server's base_url) answered 200
    # with HTML: the client returned None for every call
    import http.server
    import threading

    from jupyter_tasks.client import TasksClientError

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><title>not jupyter</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        client = TasksClient(f"http://127.0.0.1:{site.server_address[1]}/", "t")
        with pytest.raises(TasksClientError, match="no JSON"):
            await client.stats()
    finally:
        site.shutdown()
        site.server_close()


async def test_a_url_missing_the_servers_base_url_is_said_so_not_just_not_found(
        tasks_app, http_server_client, jp_http_port, jp_base_url, jp_serverapp) -> None:
    # before: "404: Not Found" for every call, as if the task were missing
    from jupyter_tasks.client import TasksClientError

    assert jp_base_url != "/"
    token = jp_serverapp.identity_provider.token
    outside = TasksClient(f"http://localhost:{jp_http_port}/", token)
    with pytest.raises(TasksClientError) as info:
        await outside.list()
    assert info.value.status == 404
    assert "base_url" in str(info.value) and f"localhost:{jp_http_port}/" in str(info.value)
    # the API's own 404 (a task it does not have) keeps its words
    inside = TasksClient(f"http://localhost:{jp_http_port}{jp_base_url}", token)
    with pytest.raises(TasksClientError) as info:
        await inside.get("0" * 32)
    assert info.value.status == 404 and "base_url" not in str(info.value)


async def test_what_is_no_task_id_is_refused_before_anything_is_sent(client) -> None:
    # before: get("stats") returned the stats, get("a?b=1") looked up task "a", and
    # delete("schedules/<id>") deleted a schedule
    task = await client.submit(name="srv_job", params={"value": 1})
    for wrong in ("stats", "a?b=1", "", f"schedules/{task['id']}", task["id"][:10]):
        with pytest.raises(ValueError, match="no task id"):
            await client.get(wrong)
        with pytest.raises(ValueError, match="no task id"):
            await client.delete(wrong)
    assert (await client.get(task["id"]))["id"] == task["id"]
