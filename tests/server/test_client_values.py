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
