"""Callback URLs: decide whether one may be called, and deliver the POST.

A task may carry a ``callback_url``; when it ends, the engine POSTs the task's JSON
there. The URL comes from whoever submitted the task, so this module treats it as
hostile: it must name a host on the allow-list (``JupyterTasksApp.callback_allowlist``,
``TaskManager(callback_allowlist=...)``; default :data:`LOOPBACK_HOSTS`), and the
request may only reach addresses that list allows.

**Allow-list entries.** Each entry is one of

- an IP address (``127.0.0.1``, ``::1``, ``[::1]``) or a CIDR network (``10.0.0.0/8``,
  ``fd00::/8``): it matches *addresses*. A URL may name such an address literally,
  and a host name on the list may resolve to it;
- a host name (``localhost``, ``hooks.example.com``; case and a trailing dot are
  ignored, no wildcards): the URL may name exactly that host, and every address it
  resolves to must be allowed: by an IP/CIDR entry, or, for a loopback name
  (``localhost``, ``*.localhost``), by being a loopback address, or, for any other
  name, by being globally routable (``ipaddress``'s ``is_global``: never loopback,
  private, link-local such as cloud metadata, or reserved).

A URL naming an IP literal needs an IP/CIDR entry that contains it (a name entry
never admits a literal). IPv4-mapped IPv6 addresses (``::ffff:a.b.c.d``) are checked
as the IPv4 address they reach. An empty list refuses every callback.

**Checks.** At submit, :func:`check_url` refuses (``InvalidRequest``, one ``errors``
entry for ``callback_url``) anything but a plain ``http``/``https`` URL: no host,
userinfo (``http://127.0.0.1@evil.example/``), a bad or zero port, malformed IPv6,
zone ids, non-canonical IPv4 (``2130706433``, ``127.1``, ``0x7f.0.0.1``), whitespace,
control or non-ASCII characters, or a host the list does not name. It does not
resolve names (no DNS wait in a request). At delivery, :func:`deliver` checks again,
resolves the host and requires *every* resolved address to be allowed, then connects
to those checked addresses only (pinned: DNS is not asked again between the check and
the connection), sending the original ``Host`` header (and, for https, the original
name for SNI and certificate checks).

**Redirects.** 301, 302, 307 and 308 are followed only when the new URL passes the
same check (resolution included), at most :data:`MAX_REDIRECTS` times, and the hop
re-sends the same POST with the same body: RFC 9110 lets a client keep POST on 301/302
and requires it on 307/308, and a callback turned into a bodiless GET would deliver
nothing. A 303 ("see other") means the receiver took the POST and points at some other
resource; the callback is delivered and the Location is not fetched. A refused hop
ends delivery without retry (:class:`CallbackRefused`); network errors, error statuses,
too many hops and a try past its deadline (:data:`TIMEOUT` for the whole try, redirects
included, however slowly an answer trickles in) are retried by :func:`post_callback`.

**This machine.** Over REST, a callback to this machine needs the server's permission
to execute terminals (a terminal's curl would reach the same services), and a redirect
from elsewhere to this machine is not followed. This machine is a loopback address,
the unspecified address, a ``localhost`` name, or an address of one of its own
interfaces (its LAN address: with that network on the allow-list it reaches the same
services). A name on the allow-list that resolves to a LAN address of this machine is
not caught at submit (no DNS there): list names of other machines only.

Only the standard library (``http.client``, ``socket``) speaks HTTP here: this is
engine code, not the tornado layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import ipaddress
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit

from .exceptions import InvalidRequest
from .runners import on_daemon_thread

log = logging.getLogger("jupyter_tasks.callbacks")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
MAX_REDIRECTS = 3
FOLLOWED = (301, 302, 307, 308)
TIMEOUT = 10.0
MAX_RESPONSE_BYTES = 64 * 1024

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[..., list[tuple[Any, ...]]]

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_BRACKETED = re.compile(r"^\[[^\[\]]*\](:[0-9]*)?$")  # an IPv6 host, then a port at most
_IPV4_LIKE = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")  # a label inet_aton would read as a number


class CallbackRefused(Exception):
    """Delivery stopped by policy (a hop off the allow-list, too many redirects): no retry."""


class CallbackFailed(Exception):
    """The receiver answered with an error status, or the connection failed: retried."""


# ================================================================== the policy


@dataclass(frozen=True)
class CallbackPolicy:
    """An allow-list, parsed: names the URL may spell, networks addresses must fall in."""

    names: frozenset[str]
    networks: tuple[Network, ...]

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> CallbackPolicy:
        """Parse allow-list entries; ``ValueError`` for one that is neither IP, CIDR nor name."""
        names: set[str] = set()
        networks: list[Network] = []
        for raw in entries:
            entry = str(raw).strip()
            bare = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
            try:
                if "/" in bare:
                    networks.append(ipaddress.ip_network(bare, strict=False))
                else:
                    networks.append(ipaddress.ip_network(_unmap(ipaddress.ip_address(bare))))
                continue
            except ValueError:
                pass
            name = entry.lower().rstrip(".")
            if not _is_hostname(name):
                raise ValueError(f"callback_allowlist entry {raw!r} is not an IP address, "
                                 "a CIDR network or a host name")
            names.add(name)
        return cls(frozenset(names), tuple(networks))

    def address_allowed(self, address: Address, name: str | None = None) -> bool:
        """Whether ``address`` may be connected to, reached as ``name`` (None: an IP literal)."""
        address = _unmap(address)
        if any(address.version == net.version and address in net for net in self.networks):
            return True
        if name is None:
            return False
        if _is_loopback_name(name):
            return address.is_loopback
        return address.is_global


def _unmap(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_loopback_name(name: str) -> bool:
    return name == "localhost" or name.endswith(".localhost")


def _is_hostname(name: str) -> bool:
    labels = name.split(".")
    return (0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in labels)
            and not _IPV4_LIKE.fullmatch(labels[-1]))


# ============================================================ checking a URL


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect and what to send."""

    url: str
    scheme: str
    host: str  # lowercased, no brackets, no trailing dot
    port: int
    address: Address | None  # the host as an IP literal, else None (a name)
    target: str  # path and query, the request line's target


def _invalid(url: Any, why: str) -> InvalidRequest:
    return InvalidRequest(f"callback_url {url!r} is not allowed: {why}",
                          errors=[{"field": "callback_url", "message": why}])


def parse_url(url: Any) -> Target:
    """The URL's parts if it is a plain http(s) URL; ``InvalidRequest`` otherwise."""
    if not isinstance(url, str) or not url:
        raise _invalid(url, "must be a non-empty string")
    if len(url) > 2000 or any(c <= " " or c == "\x7f" or not c.isascii() for c in url):
        raise _invalid(url, "must be ASCII without spaces or control characters")
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # malformed IPv6 brackets, a port that is no number
        raise _invalid(url, f"is malformed ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise _invalid(url, "must be an http or https URL")
    netloc = parts.netloc
    if "@" in netloc or "\\" in netloc:
        raise _invalid(url, "must not carry user information")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise _invalid(url, "has no host")
    if port == 0:
        raise _invalid(url, "has an invalid port")
    address: Address | None = None
    if ("[" in netloc or "]" in netloc) and not _BRACKETED.fullmatch(netloc):
        # urlsplit reads "[::1]x" and "[::1].evil.example" as ::1, dropping the rest;
        # another reader of the stored URL may not
        raise _invalid(url, "has a malformed IPv6 address")
    if netloc.startswith("["):
        if "%" in host:
            raise _invalid(url, "must not carry an IPv6 zone id")
        try:
            address = ipaddress.IPv6Address(host)
        except ValueError:
            raise _invalid(url, "has a malformed IPv6 address") from None
    else:
        try:
            address = ipaddress.IPv4Address(host)
        except ValueError:
            if not _is_hostname(host):
                raise _invalid(url, "has an invalid host name") from None
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    default = 443 if parts.scheme == "https" else 80
    return Target(url, parts.scheme, host, port or default, address, target)


def calls_this_machine(url: Any) -> bool:
    """Whether ``url`` names this machine: a loopback address, an address of one of its
    interfaces, or a ``localhost`` name (an invalid URL: False, its check says why)."""
    try:
        target = parse_url(url)
    except InvalidRequest:
        return False
    if target.address is not None:
        return _is_here(target.address)
    return _is_loopback_name(target.host)


def _is_here(address: Address, own: set[Address] | None = None) -> bool:
    """Loopback, the unspecified address (a connection to 0.0.0.0 reaches this host), or
    an address of one of this machine's own interfaces (its LAN address, say: with its
    network on the allow-list, it reaches the same local services); ``own``: those
    addresses, read once for many."""
    address = _unmap(address)
    return address.is_loopback or address.is_unspecified \
        or address in (_own_addresses() if own is None else own)


def _own_addresses() -> set[Address]:
    """The addresses of this machine's interfaces, read now (they can change)."""
    import psutil

    own: set[Address] = set()
    for addresses in psutil.net_if_addrs().values():
        for found in addresses:
            if found.family in (socket.AF_INET, socket.AF_INET6):
                with contextlib.suppress(ValueError):  # an odd interface's odd address
                    own.add(_unmap(ipaddress.ip_address(found.address.split("%", 1)[0])))
    return own


def check_url(url: Any, policy: CallbackPolicy) -> Target:
    """Refuse (``InvalidRequest``) a URL that is invalid or names a host the list does not allow.

    No DNS: a host name must be on the list; its addresses are checked at delivery.
    """
    t = parse_url(url)
    if t.address is not None:
        if not policy.address_allowed(t.address):
            raise _invalid(url, "address not in the allow-list")
    elif t.host not in policy.names:
        raise _invalid(url, "host not in the allow-list")
    return t


def resolve_checked(target: Target, policy: CallbackPolicy,
                    resolve: Resolver = socket.getaddrinfo) -> list[tuple[Any, ...]]:
    """The addresses to connect to, as ``(family, sockaddr)``; every one is allowed.

    A name is resolved once here; ``CallbackRefused`` if it does not resolve or if any
    address it resolves to is not allowed (a partly bad answer is refused whole).
    """
    if target.address is not None:
        if not policy.address_allowed(target.address):
            raise CallbackRefused(f"{target.address} is not allowed")
        family = socket.AF_INET6 if target.address.version == 6 else socket.AF_INET
        return [(family, (str(target.address), target.port))]
    try:
        infos = resolve(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise CallbackRefused(f"{target.host} does not resolve ({exc})") from None
    found: list[tuple[Any, ...]] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            raise CallbackRefused(f"{target.host} resolves to a non-IP address")
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if not policy.address_allowed(address, target.host):
            raise CallbackRefused(f"{target.host} resolves to {address}, not allowed")
        if (family, sockaddr) not in found:
            found.append((family, sockaddr))
    if not found:
        raise CallbackRefused(f"{target.host} resolves to no address")
    return found


# ================================================================ delivering


class PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to ``host`` whose socket goes only to already-checked addresses.

    http.client puts ``host`` (and port) in the Host header, and TLS uses it for SNI
    and the certificate check; only where the socket connects is pinned, so a second
    DNS answer (a rebinding) is never asked for. Overrides the public ``connect``.
    """

    def __init__(self, host: str, port: int, addresses: list[tuple[Any, ...]], *,
                 timeout: float, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(host, port, timeout=timeout)
        self.addresses = addresses
        self.tls = tls
        # the port the Host header leaves out, as HTTPSConnection's for https
        self.default_port = http.client.HTTPS_PORT if tls is not None else http.client.HTTP_PORT

    def connect(self) -> None:
        """Open the socket to the first checked address that answers (TLS-wrapped for https)."""
        error: OSError | None = None
        for family, sockaddr in self.addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.timeout)
                sock.connect(sockaddr)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            # as HTTPConnection.connect does: small requests are not held back by Nagle
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                try:
                    sock = self.tls.wrap_socket(sock, server_hostname=self.host)
                except BaseException:
                    sock.close()
                    raise
            self.sock = sock
            return
        raise error or OSError("no address to connect to")


def _connection(target: Target, addresses: list[tuple[Any, ...]],
                timeout: float) -> http.client.HTTPConnection:
    """A connection to ``target.host`` that opens its socket to the checked addresses only."""
    tls = ssl.create_default_context() if target.scheme == "https" else None
    return PinnedConnection(target.host, target.port, addresses, timeout=timeout, tls=tls)


def deliver(url: str, body: bytes, policy: CallbackPolicy, *,
            resolve: Resolver = socket.getaddrinfo, timeout: float = TIMEOUT,
            max_redirects: int = MAX_REDIRECTS) -> int:
    """POST ``body`` to ``url``, following allowed redirects; the final status (2xx or 303).

    Blocking (run it in a thread), ``timeout`` seconds at most in all. ``CallbackRefused``
    when a URL or hop is not allowed; ``CallbackFailed`` for an error status, too many
    hops or no whole answer in time; ``OSError`` or ``http.client.HTTPException`` for
    network trouble.
    """
    deadline = time.monotonic() + timeout
    current = url
    starts_here = calls_this_machine(url)

    def too_late() -> CallbackFailed:
        return CallbackFailed(f"{current}: no whole answer within {timeout:g} s")

    for hop in range(max_redirects + 1):
        try:
            target = check_url(current, policy)
        except InvalidRequest as exc:
            raise CallbackRefused(exc.message) from None
        addresses = resolve_checked(target, policy, resolve)
        if hop and not starts_here:
            # a receiver elsewhere must not send the POST on to a service of this machine
            # (a user the server denies terminals may name no such URL: see check_may_call_back)
            own = _own_addresses()  # once for the hop's addresses
            if any(_is_here(ipaddress.ip_address(sockaddr[0].split("%", 1)[0]), own)
                   for _, sockaddr in addresses):
                raise CallbackRefused(f"{url} redirected to this machine ({current}), which "
                                      "is not followed")
        left = deadline - time.monotonic()
        if left <= 0:
            raise too_late()
        conn = _connection(target, addresses, left)
        # a socket timeout bounds each read only: an answer trickling in a byte at a
        # time held the try (and its thread) for good. At the deadline the socket is
        # shut down, which ends the read blocked on it
        cut = threading.Timer(left, _cut_off, (conn,))
        cut.daemon = True
        cut.start()
        try:
            conn.request("POST", target.target, body=body, headers={
                "Content-Type": "application/json", "User-Agent": "jupyter-tasks-callback"})
            response = conn.getresponse()
            response.read(MAX_RESPONSE_BYTES)
            status, location = response.status, response.getheader("Location")
        except (OSError, http.client.HTTPException):
            if time.monotonic() >= deadline:
                raise too_late() from None
            raise
        finally:
            cut.cancel()
            conn.close()
        if time.monotonic() >= deadline:  # cut off mid-answer, read as a short one
            raise too_late()
        if 200 <= status < 300 or status == 303:
            return status
        if status in FOLLOWED and location:
            if hop == max_redirects:
                raise CallbackFailed(f"more than {max_redirects} redirects (last to "
                                     f"{location!r})")
            current = urljoin(current, location.strip())
            continue
        raise CallbackFailed(f"{current} answered {status}")
    raise AssertionError("unreachable")


def _cut_off(conn: http.client.HTTPConnection) -> None:
    """End a try at its deadline: the read blocked on its socket returns."""
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


DELIVERED, REFUSED, GIVEN_UP = "delivered", "refused", "given up"


async def post_callback(task_id: str, url: str, body: bytes, allowlist: Iterable[str], *,
                        attempts: int = 4, base_delay: float = 0.5, tried: int = 0,
                        trying: Callable[[], Awaitable[None]] | None = None) -> str:
    """Deliver a finished task's callback; retry failures, never refusals.

    Answers ``DELIVERED``, ``REFUSED`` (this allow-list refused where the POST would
    go) or ``GIVEN_UP`` (out of tries). ``tried``: the tries made before (by this or
    another process), which count toward ``attempts``; ``trying`` is awaited before
    each try (to count it: a try cut off by a kill or a stop, or refused on its way,
    counts too, so no number of restarts posts a callback for good). Each try runs on a
    daemon thread: a process that stops does not wait for a receiver that hangs.
    """
    policy = CallbackPolicy.from_entries(allowlist)
    for attempt in range(tried, attempts):
        if trying is not None:
            await trying()
        try:
            status = await on_daemon_thread(deliver, url, body, policy,
                                            name="jupyter-tasks:callback")
        except CallbackRefused as exc:
            log.warning("callback for task %s refused: %s", task_id, exc)
            return REFUSED
        except Exception as exc:
            log.warning("callback for task %s failed (%s)", task_id, exc)
            if attempt + 1 < attempts:
                await asyncio.sleep(base_delay * 2 ** attempt)
            continue
        log.debug("callback for task %s delivered (%s)", task_id, status)
        return DELIVERED
    log.warning("callback for task %s given up after %d tries", task_id, attempts)
    return GIVEN_UP

