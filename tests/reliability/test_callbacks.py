"""Callback URLs: refused when invalid, never redirected off the allow-list, and pinned.

Every receiver is a real HTTP server on a loopback address (127.0.0.1, 127.0.0.2: both
loopback on Linux); nothing here talks to any other address.
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from jupyter_tasks import callbacks
from jupyter_tasks.callbacks import CallbackFailed, CallbackPolicy, CallbackRefused, Target
from jupyter_tasks.exceptions import InvalidRequest
from tests.waiting import eventually


@pytest.fixture
def tasks_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Only 127.0.0.1 on the allow-list; a test changes that by parametrizing this fixture."""
    return {"callback_allowlist": ["127.0.0.1"], **getattr(request, "param", {})}


class Receiver:
    """A real HTTP server on a loopback address that records every request it gets."""

    def __init__(self, host: str, status: int = 204, location: str | None = None) -> None:
        self.status = status
        self.location = location
        self.done_paths: set[str] = set()  # answered 204 whatever status is set
        self.requests: list[dict[str, Any]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                receiver.requests.append({
                    "method": self.command, "path": self.path, "host": self.headers["Host"],
                    "body": self.rfile.read(length) if length else b"",
                })
                if self.path in receiver.done_paths:
                    self.send_response(204)
                else:
                    self.send_response(receiver.status)
                if receiver.location is not None and self.path not in receiver.done_paths:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET = do_PUT = do_HEAD = _record

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Any]:
    """``receiver(host, status=, location=)``: loopback receivers, all closed at teardown."""
    made: list[Receiver] = []

    def make(host: str, status: int = 204, location: str | None = None) -> Receiver:
        assert host.startswith("127."), "receivers stay on loopback"
        made.append(Receiver(host, status, location))
        return made[-1]

    yield make
    for r in made:
        r.close()


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def callback_log() -> Iterator[Records]:
    """What the engine logged about callbacks (delivered, refused, failed)."""
    records = Records()
    logger = logging.getLogger("jupyter_tasks")
    level = logger.level
    logger.addHandler(records)
    logger.setLevel(logging.DEBUG)
    yield records
    logger.removeHandler(records)
    logger.setLevel(level)


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.code == status, (response.code, response.body[:500])
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json["status"] == status
    return response.json


def _refused(log: Records, task_id: str) -> bool:
    return any(task_id in m and "refused" in m for m in log.messages)


# ====================================================================== REST


async def test_redirect_to_a_host_off_the_allow_list_is_not_followed(api, receiver, callback_log):
    second = receiver("127.0.0.2")
    first = receiver("127.0.0.1", status=302, location=f"{second.url}/stolen")
    job = await api.submit({"name": "srv_job", "callback_url": f"{first.url}/done"})

    async def settled() -> bool:
        return bool(second.requests) or _refused(callback_log, job["id"])

    await eventually(settled, what="the redirect refused (or followed)")
    assert second.requests == []
    assert [r["method"] for r in first.requests] == ["POST"]
    assert json.loads(first.requests[0]["body"])["id"] == job["id"]


@pytest.mark.parametrize("tasks_config", [{"callback_allowlist": ["127.0.0.1", "127.0.0.2"]}],
                         indirect=True)
async def test_redirect_between_allowed_hosts_delivers_the_post(api, receiver):
    second = receiver("127.0.0.2")
    first = receiver("127.0.0.1", status=302, location=f"{second.url}/moved")
    job = await api.submit({"name": "srv_job", "params": {"value": 7},
                            "callback_url": f"{first.url}/done"})

    async def arrived() -> list[dict[str, Any]]:
        return second.requests

    (request,) = await eventually(arrived, what="the POST at the redirect's end")
    assert (request["method"], request["path"]) == ("POST", "/moved")
    assert request["host"] == second.url.removeprefix("http://")
    task = json.loads(request["body"])
    assert (task["id"], task["status"], task["result"]) == (job["id"], "succeeded", {"value": 7})


INVALID_URLS = [
    "http://[::1",                      # malformed IPv6 (urlsplit raises)
    "http://[::1]:99999/",              # port out of range
    "http://127.0.0.1:abc/",            # port not a number
    "http://127.0.0.1:0/",              # port 0
    "http:///no-host",                  # no host
    "http://:8080/",                    # no host, only a port
    "//127.0.0.1/",                     # no scheme
    "ftp://127.0.0.1/",                 # not http(s)
    "file:///etc/passwd",
    "javascript:alert(1)",
    "http://127.0.0.1@evil.example/",   # userinfo: the host is evil.example
    "http://user:pw@127.0.0.1/",        # userinfo at all
    "http://127.0.0.1\\@evil.example/",
    "http://127.0.0.1 /",               # whitespace
    "http://127.0.0.1/\r\nX-Injected: 1",
    "http://2130706433/",               # 127.0.0.1 as a bare number
    "http://127.1/",                    # short dotted form
    "http://0x7f.0.0.1/",               # hex octet
    "http://[::1%25lo]/",               # zone id
    "http://[::1]x/",                   # junk after the bracket (urlsplit drops it)
    "http://[::1].evil.example/",
    "http://x[::1]/",
    "http://127.0.0.2/",                # loopback, but not on this server's list
    "http://169.254.169.254/latest",    # cloud metadata
    "http://[::ffff:169.254.169.254]/",  # the same, IPv4-mapped
    "http://localhost.evil.example/",
    "http://localhost/",                # a name, and only 127.0.0.1 is listed here
]


@pytest.mark.parametrize("url", INVALID_URLS)
async def test_invalid_callback_url_is_a_422_naming_the_field(api, url):
    problem = assert_problem(await api.post(body={"name": "srv_job", "callback_url": url}), 422)
    assert [e["field"] for e in problem["errors"]] == ["callback_url"], problem
    assert (await api.get(params={"limit": 500})).json["tasks"] == []  # nothing written


# ====================================================================== units

DEFAULT = CallbackPolicy.from_entries(callbacks.LOOPBACK_HOSTS)


@pytest.mark.parametrize("url", INVALID_URLS[:-2])
def test_check_url_refuses_what_the_default_list_does_not_allow(url):
    with pytest.raises(InvalidRequest) as err:
        callbacks.check_url(url, DEFAULT)
    assert [e["field"] for e in err.value.errors] == ["callback_url"]


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook", "https://127.0.0.1:8443/a?b=c", "http://localhost:8000/",
    "http://LOCALHOST./x", "http://[::1]:9000/", "http://[::ffff:127.0.0.1]/",
])
def test_check_url_accepts_loopback_by_default(url):
    assert callbacks.check_url(url, DEFAULT).port > 0


def test_allow_list_entries_are_ip_cidr_or_names():
    policy = CallbackPolicy.from_entries(["10.0.0.0/8", "[fd00::1]", "Hooks.Example."])
    assert policy.names == {"hooks.example"}
    assert callbacks.check_url("http://10.1.2.3/", policy).host == "10.1.2.3"
    assert callbacks.check_url("http://[fd00::1]/", policy).port == 80
    assert callbacks.check_url("http://hooks.example/", policy).address is None
    for url in ("http://11.0.0.1/", "http://[fd00::2]/", "http://sub.hooks.example/"):
        with pytest.raises(InvalidRequest):
            callbacks.check_url(url, policy)
    for bad in ("http://x/", "*.example", "10.0.0.0/33", ""):
        with pytest.raises(ValueError):
            CallbackPolicy.from_entries([bad])
    assert CallbackPolicy.from_entries([]).names == frozenset()


def _resolver(*answers: str, calls: list[str] | None = None):
    """A stand-in for getaddrinfo: each call returns the next answer (a comma-separated list)."""
    queue = list(answers)

    def resolve(host: str, port: int, type: int = 0) -> list[tuple[Any, ...]]:
        if calls is not None:
            calls.append(host)
        if not queue:
            raise OSError("no more answers")
        infos = []
        for address in queue.pop(0).split(","):
            if ":" in address:
                infos.append((socket.AF_INET6, type, 6, "", (address, port, 0, 0)))
            else:
                infos.append((socket.AF_INET, type, 6, "", (address, port)))
        return infos

    return resolve


def _target(host: str) -> Target:
    return Target(f"http://{host}/", "http", host, 80, None, "/")


@pytest.mark.parametrize(("entries", "host", "answer", "allowed"), [
    (list(callbacks.LOOPBACK_HOSTS), "localhost", "127.0.0.1,::1", True),
    (["localhost"], "localhost", "127.0.0.1", True),            # loopback name: loopback only
    (["localhost"], "localhost", "127.0.0.1,10.0.0.5", False),  # one bad address refuses all
    (["localhost"], "localhost", "93.184.216.34", False),
    (["hooks.example"], "hooks.example", "93.184.216.34", True),   # other names: global only
    (["hooks.example"], "hooks.example", "169.254.169.254", False),
    (["hooks.example"], "hooks.example", "10.0.0.7", False),
    (["hooks.example"], "hooks.example", "127.0.0.1", False),
    (["hooks.example"], "hooks.example", "::ffff:169.254.169.254", False),
    (["hooks.example", "10.0.0.0/8"], "hooks.example", "10.0.0.7,::ffff:10.9.9.9", True),
])
def test_every_resolved_address_must_be_allowed(entries, host, answer, allowed):
    policy = CallbackPolicy.from_entries(entries)
    resolve = _resolver(answer)
    if allowed:
        found = callbacks.resolve_checked(_target(host), policy, resolve)
        assert [sockaddr[0] for _family, sockaddr in found] == answer.split(",")
    else:
        with pytest.raises(CallbackRefused):
            callbacks.resolve_checked(_target(host), policy, resolve)


def test_a_name_that_does_not_resolve_is_refused():
    with pytest.raises(CallbackRefused, match="does not resolve"):
        callbacks.resolve_checked(_target("localhost"), DEFAULT, _resolver())


def test_delivery_connects_to_the_checked_address_with_the_original_host(receiver):
    good = receiver("127.0.0.1")
    other = receiver("127.0.0.2")
    port = int(good.url.rsplit(":", 1)[1])
    calls: list[str] = []
    # the second answer (a DNS rebinding to 127.0.0.2) must never be asked for
    resolve = _resolver("127.0.0.1", "127.0.0.2", calls=calls)
    policy = CallbackPolicy.from_entries(["hooks.example", "127.0.0.1", "127.0.0.2"])
    status = callbacks.deliver(f"http://hooks.example:{port}/in?x=1", b'{"a": 1}', policy,
                               resolve=resolve)
    assert status == 204
    assert calls == ["hooks.example"]
    assert [(r["method"], r["path"], r["host"], r["body"]) for r in good.requests] == [
        ("POST", "/in?x=1", f"hooks.example:{port}", b'{"a": 1}')]
    assert other.requests == []


def test_a_redirect_from_elsewhere_to_this_machine_is_not_followed(receiver):
    # review: the check that a user denied terminals sends no callback to this machine
    # looked at the submitted URL only; a host of theirs on the allow-list could answer
    # 307 to a local service, and the POST followed (the loopback entries stay listed)
    local = receiver("127.0.0.1")
    theirs = receiver("127.0.0.2", status=307, location=f"{local.url}/containers/prune")
    port = int(theirs.url.rsplit(":", 1)[1])
    policy = CallbackPolicy.from_entries(["hooks.example", "127.0.0.1", "127.0.0.2"])
    with pytest.raises(CallbackRefused, match="to this machine"):
        callbacks.deliver(f"http://hooks.example:{port}/in", b"{}", policy,
                          resolve=_resolver("127.0.0.2"))
    assert len(theirs.requests) == 1 and local.requests == []
    # one that starts here may move here (a local receiver's own redirect)
    moved = receiver("127.0.0.1", status=307, location=f"{local.url}/moved")
    assert callbacks.deliver(f"{moved.url}/in", b"{}", policy) == 204
    assert [r["path"] for r in local.requests] == ["/moved"]


@pytest.mark.parametrize("url", ["http://0.0.0.0:9/x", "http://[::]:9/x",
                                 "http://127.0.0.1:9/", "http://a.localhost/"])
def test_the_unspecified_address_is_this_machine(url):
    assert callbacks.calls_this_machine(url)


def own_addresses() -> list[str]:
    """This machine's interface addresses other than loopback (its LAN address, say)."""
    import psutil

    return [a.address.split("%", 1)[0] for addresses in psutil.net_if_addrs().values()
            for a in addresses if a.family in (socket.AF_INET, socket.AF_INET6)
            and not ipaddress.ip_address(a.address.split("%", 1)[0]).is_loopback]


def test_an_address_of_this_machines_own_interfaces_is_this_machine():
    # before: only loopback and 0.0.0.0 were "this machine": with its LAN on the
    # allow-list, a user the server denies terminals reached its own services there
    found = own_addresses()
    if not found:
        pytest.skip("this machine has no address but loopback")
    for address in found:
        host = f"[{address}]" if ":" in address else address
        assert callbacks.calls_this_machine(f"http://{host}:9/x"), address
    assert not callbacks.calls_this_machine("http://192.0.2.254:9/x") or \
        "192.0.2.254" in found


def test_redirect_hops_are_bounded(receiver):
    # a loop on an allowed host is the receiver's fault, not the allow-list's: a failed
    # try, counted toward the four (before: a refusal, owed and posted again for good)
    loop = receiver("127.0.0.1", status=307)
    loop.location = f"{loop.url}/again"
    with pytest.raises(CallbackFailed, match="more than 3 redirects"):
        callbacks.deliver(f"{loop.url}/start", b"{}", DEFAULT)
    assert [(r["method"], r["body"]) for r in loop.requests] == [("POST", b"{}")] * 4


class Trickle:
    """A receiver that starts its answer and then sends a byte now and then, for good."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        self.closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            while not self.closed.wait(0.2):  # each byte well within any read timeout
                conn.sendall(b"x")
        except OSError:
            pass  # the client hung up

    def close(self) -> None:
        self.closed.set()
        self.listener.close()
        for conn in self.connections:
            conn.close()


def test_a_try_has_one_deadline_however_slowly_its_answer_trickles_in():
    # before: the 10 s bounded each read, not the try: a receiver sending a byte every
    # few seconds held the POST (and a thread) for good, and after the 300 s claim a
    # second process posted the same callback beside it
    slow = Trickle()
    outcome: list[BaseException | int] = []

    def post() -> None:
        try:
            outcome.append(callbacks.deliver(f"{slow.url}/hook", b"{}", DEFAULT, timeout=1.0))
        except BaseException as exc:
            outcome.append(exc)

    try:
        posting = threading.Thread(target=post, daemon=True)
        posting.start()
        posting.join(60)  # a deadline for the test, far past the try's own
        assert not posting.is_alive(), "the try went on past its deadline"
        (failed,) = outcome
        assert isinstance(failed, CallbackFailed), failed
        assert "within 1 s" in str(failed), failed
    finally:
        slow.close()


def test_a_relative_308_is_reposted_and_a_303_ends_delivery(receiver):
    moved = receiver("127.0.0.1", status=308, location="../final?q=1")
    moved.done_paths.add("/final?q=1")
    assert callbacks.deliver(f"{moved.url}/a/first", b"[1]", DEFAULT) == 204
    assert [(r["method"], r["path"], r["body"]) for r in moved.requests] == [
        ("POST", "/a/first", b"[1]"), ("POST", "/final?q=1", b"[1]")]
    end = receiver("127.0.0.1")
    see_other = receiver("127.0.0.1", status=303, location=f"{end.url}/result")
    assert callbacks.deliver(f"{see_other.url}/", b"[2]", DEFAULT) == 303
    assert end.requests == []  # the 303's Location is not fetched


def test_a_refused_hop_sends_nothing_there(receiver):
    second = receiver("127.0.0.2")
    first = receiver("127.0.0.1", status=302, location=f"{second.url}/x")
    with pytest.raises(CallbackRefused, match="not allowed"):
        callbacks.deliver(f"{first.url}/", b"{}", DEFAULT)
    assert second.requests == []
    assert len(first.requests) == 1


async def test_a_queued_task_cancelled_posts_its_callback_once(api, receiver):
    # before: a cancel of a task still queued ended it through the store alone, and no
    # callback was ever posted (a running one cancelled got its POST); a second cancel
    # of the cancelled task must not post again
    target = receiver("127.0.0.1")
    job = await api.submit({"name": "srv_job", "params": {"value": 1}, "queue": "parked",
                            "callback_url": f"{target.url}/cancelled"})
    assert (await api.post(job["id"], "cancel")).code == 202
    assert (await api.post(job["id"], "cancel")).code in (200, 202)

    async def arrived() -> list[dict[str, Any]]:
        return target.requests

    (request,) = await eventually(arrived, what="the POST of the cancelled task")
    assert json.loads(request["body"])["status"] == "cancelled"
    finished = await api.submit({"name": "srv_job", "params": {"value": 2},
                                 "callback_url": f"{target.url}/later"})
    # every POST arrives in order of its task's end: the later task's POST is the second
    await eventually(lambda: arrived_after(target, finished["id"]), what="a later POST")
    assert [r["path"] for r in target.requests].count("/cancelled") == 1


async def arrived_after(target: Any, task_id: str) -> bool:
    return any(task_id.encode() in r["body"] for r in target.requests)


async def test_a_job_its_lost_workers_ended_interrupted_posts_its_callback(db_path, receiver):
    # before: the reaper posted the callbacks of the ends it wrote from a recorded exit
    # (succeeded, failed) only; a job ended interrupted after its worker was lost got none
    from jupyter_tasks import TaskManager
    from tests.engine.test_retry_policy import claim_as_ghost

    target = receiver("127.0.0.1")
    async with TaskManager(db_path, queues={}, reaper_interval=3600, max_lost_attempts=0,
                           make_default=False) as m:
        job = await m.submit_spec({"command": ["true"]}, mode="job",
                                  callback_url=f"{target.url}/lost")
        await claim_as_ghost(m.store, job.id)
        (ended,) = await m.reap_dead_workers()
        assert ended.status == "interrupted"

        async def arrived() -> list[dict[str, Any]]:
            return target.requests

        (request,) = await eventually(arrived, what="the POST of the interrupted job")
    assert json.loads(request["body"])["status"] == "interrupted"
