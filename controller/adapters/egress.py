"""Outbound HTTP with a total deadline, a size cap, no redirects and an egress check.

Every call the controller makes to a URL someone wrote (Prometheus, probes, incident
webhooks; SMTP uses :func:`connect_checked`) goes through :func:`fetch`:

* **A total deadline** covers DNS-to-last-byte: the lookup (in a daemon thread the caller
  stops waiting for at the deadline), connect, TLS, the status line, headers and the whole
  body. A socket timeout bounds each read only (a server dripping one byte every
  0.5 s never trips a 1 s read timeout), so every socket is also registered with one reaper
  thread that shuts it down when its deadline passes; the blocked read then returns and the
  call raises :class:`DeadlineExceeded`.
* **A size cap**: the body is read up to ``max_bytes``; more is :class:`ResponseTooLarge`
  (or, with ``truncate=True``, dropped: a probe only needs the status).
* **No redirects**: a 3xx is returned as the answer; callers decide (a probe counts it as
  success, the Prometheus client refuses it).
* **Egress control** (:class:`EgressPolicy`): the host is resolved once, every address is
  checked, and the connection goes to the address that was checked (Host header and TLS
  SNI/verification keep the name), so DNS cannot answer differently between the check and
  the connect. The API server's addresses are refused even inside an allowed CIDR, unless
  the address itself is listed (``10.96.0.1/32``). By default loopback, link-local
  (169.254.0.0/16, fe80::/10), unspecified addresses and the API server's are refused;
  ``ROLLOUTCTL_EGRESS_ALLOW`` (the controller's ``--egress-allow``, the chart's
  ``egress.allow``) lists hosts and CIDRs.
  When the list is set only matching hosts/addresses are allowed, and a match also lifts
  the default refusals (the sandbox and the tests allow ``127.0.0.0/8,::1`` this way); an
  entry ``*`` allows any address the defaults do not refuse.

Through a proxy (``HTTP_PROXY`` & co., read once by the Prometheus source) the proxy
resolves the name: only a literal address is checked here, and the proxy must apply the
platform's own egress rules.

The platform's own URLs (``--prometheus-url``) are trusted: :data:`TRUSTED` skips the
check but keeps the deadline, the cap and the refusal of redirects.

Messages name the field and the rule, never the remote answer's body.
"""

from __future__ import annotations

import contextlib
import heapq
import http.client
import ipaddress
import itertools
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.adapters
from requests.structures import CaseInsensitiveDict

__all__ = [
    "ALLOW_ENV",
    "TRUSTED",
    "DeadlineExceeded",
    "EgressPolicy",
    "EgressRefused",
    "GuardedAdapter",
    "RedirectRefused",
    "Reply",
    "ResponseTooLarge",
    "connect_checked",
    "current_policy",
    "fetch",
    "set_api_server",
]

ALLOW_ENV = "ROLLOUTCTL_EGRESS_ALLOW"
DEFAULT_MAX_BYTES = 1024 * 1024

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_REFUSED: tuple[tuple[str, Network], ...] = (
    ("loopback", ipaddress.ip_network("127.0.0.0/8")),
    ("loopback", ipaddress.ip_network("::1/128")),
    ("link-local", ipaddress.ip_network("169.254.0.0/16")),
    ("link-local", ipaddress.ip_network("fe80::/10")),
    ("unspecified", ipaddress.ip_network("0.0.0.0/32")),
    ("unspecified", ipaddress.ip_network("::/128")),
)


class EgressRefused(Exception):
    """A URL the egress policy refuses. ``field`` names where it was written."""

    def __init__(self, field_name: str, host: str, rule: str) -> None:
        self.field = field_name
        self.host = host
        self.rule = rule
        super().__init__(
            f"{field_name}: {host} is refused by the egress policy ({rule}); "
            f"a platform admin may allow it in egress.allow (--egress-allow)"
        )


class DeadlineExceeded(TimeoutError):
    """The whole call took longer than its deadline."""


class ResponseTooLarge(Exception):
    """The answer is longer than the cap."""


# --------------------------------------------------------------------------- the policy


_HOST_RE = re.compile(r"^(\*|[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?"
                      r"(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*)$")


def _parse_entry(entry: str) -> str | Network:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        pass
    name = entry.lower().rstrip(".")
    if not _HOST_RE.match(name) or "/" in name:
        raise ValueError(f"{entry!r} is neither a host name nor an address or CIDR "
                         "(e.g. prometheus.monitoring.svc, 10.0.0.0/8, *)")
    return name


@dataclass(frozen=True)
class EgressPolicy:
    """Which addresses tenant URLs may reach (see the module doc)."""

    allow: tuple[str | Network, ...] = ()
    api_server: frozenset[Address] = frozenset()
    trusted: bool = False

    @classmethod
    def parse(cls, text: str, api_server: Iterable[Address] = ()) -> EgressPolicy:
        """``host,10.0.0.0/8,::1`` (commas or spaces); entries are validated here."""
        entries = [e for e in text.replace(",", " ").split() if e]
        return cls(tuple(_parse_entry(e) for e in entries), frozenset(api_server))

    def _exactly_listed(self, address: Address) -> bool:
        address = _unmapped(address)
        return any(not isinstance(e, str) and e.prefixlen == e.max_prefixlen
                   and e.network_address == address for e in self.allow)

    def refusal(self, host: str, addresses: Iterable[Address]) -> str | None:
        """Why HOST (resolved to ADDRESSES) is refused, or None when it is allowed."""
        if self.trusted:
            return None
        name = host.lower().rstrip(".")
        named = name in self.allow
        for address in addresses:
            if _unmapped(address) in self.api_server and not self._exactly_listed(address):
                # even inside an allowed CIDR: only the address itself, listed, allows it
                return f"{address} is the API server"
            listed = named or any(
                not isinstance(e, str) and address.version == e.version and address in e
                for e in self.allow
            )
            if listed:
                continue
            if self.allow and "*" not in self.allow:
                return f"{address} is not in the allow-list"
            rule = _default_rule(address, self.api_server)
            if rule is not None:
                return f"{address} is {rule}"
        return None


def _unmapped(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _default_rule(address: Address, api_server: frozenset[Address]) -> str | None:
    address = _unmapped(address)
    if address in api_server:
        return "the API server"
    for rule, net in _REFUSED:
        if address.version == net.version and address in net:
            return f"a {rule} address"
    return None


TRUSTED = EgressPolicy(trusted=True)

_api_server: set[Address] = set()
_policy_cache: dict[tuple[str, frozenset[Address]], EgressPolicy] = {}


def set_api_server(url_or_host: str) -> None:
    """Refuse the API server's addresses (the host of its URL, resolved now) and the
    in-cluster service address (``KUBERNETES_SERVICE_HOST``)."""
    host = urlsplit(url_or_host).hostname if "//" in url_or_host else url_or_host
    for name in (host, os.environ.get("KUBERNETES_SERVICE_HOST")):
        if not name:
            continue
        try:
            for info in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP):
                _api_server.add(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
        except (OSError, ValueError):
            continue


def current_policy() -> EgressPolicy:
    """The policy of ``ROLLOUTCTL_EGRESS_ALLOW`` and the API server's addresses."""
    key = (os.environ.get(ALLOW_ENV, ""), frozenset(_api_server))
    found = _policy_cache.get(key)
    if found is None:
        found = _policy_cache[key] = EgressPolicy.parse(key[0], key[1])
    return found


def _getaddrinfo(host: str, port: int, timeout: float | None) -> list[Any]:
    """``getaddrinfo`` within TIMEOUT: the resolver cannot be interrupted, so a slow lookup
    (a tenant's name on a slow DNS server) runs on in its own daemon thread until the
    resolver gives up, while the caller moves on at its deadline."""
    if timeout is None:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    box: list[Any] = []

    def lookup() -> None:
        try:
            box.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=lookup, name="egress-dns", daemon=True)
    thread.start()
    thread.join(timeout)
    if not box:
        raise DeadlineExceeded(f"no DNS answer for {host} within {timeout:g}s")
    if isinstance(box[0], BaseException):
        raise box[0]
    return list(box[0])


def resolve_checked(host: str, port: int, field_name: str, policy: EgressPolicy | None = None,
                    timeout: float | None = None) -> list[tuple[int, Address]]:
    """HOST's addresses (family, address), each allowed by POLICY, or EgressRefused."""
    policy = current_policy() if policy is None else policy
    try:
        infos = _getaddrinfo(host, port, timeout)
    except socket.gaierror:
        raise OSError(f"host not found: {host}") from None
    found: list[tuple[int, Address]] = []
    for family, _, _, _, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if (family, address) not in found:
            found.append((family, address))
    why = policy.refusal(host, [a for _, a in found])
    if why is not None:
        raise EgressRefused(field_name, host, why)
    return found


def _literal_checked(host: str, field_name: str, policy: EgressPolicy | None
                     ) -> list[tuple[int, Address]]:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return []
    policy = current_policy() if policy is None else policy
    why = policy.refusal(host, [address])
    if why is not None:
        raise EgressRefused(field_name, host, why)
    return []


# --------------------------------------------------------------------------- the reaper


class _Reaper:
    """One thread that shuts sockets down when their deadline passes."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, socket.socket]] = []
        self._live: set[int] = set()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, sock: socket.socket, deadline: float) -> int:
        with self._cond:
            token = next(self._seq)
            heapq.heappush(self._heap, (deadline, token, sock))
            self._live.add(token)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="egress-reaper",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()
            return token

    def release(self, token: int) -> None:
        with self._cond:
            self._live.discard(token)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                while self._heap and (self._heap[0][0] <= now
                                      or self._heap[0][1] not in self._live):
                    _, token, sock = heapq.heappop(self._heap)
                    if token in self._live:
                        self._live.discard(token)
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_RDWR)
                wait = self._heap[0][0] - now if self._heap else None
                self._cond.wait(wait)


_REAPER = _Reaper()


@dataclass
class _Deadline:
    at: float
    seconds: float
    tokens: list[int] = field(default_factory=list)

    def left(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded(f"no complete answer within {self.seconds:g}s")
        return left

    def watch(self, sock: socket.socket) -> None:
        self.tokens.append(_REAPER.watch(sock, self.at))

    def release(self) -> None:
        for token in self.tokens:
            _REAPER.release(token)


def _connect(addresses: list[tuple[int, Address]], port: int, deadline: _Deadline
             ) -> socket.socket:
    error: OSError | None = None
    for family, address in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(deadline.left())
            deadline.watch(sock)
            sock.connect((str(address), port))
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError("no address to connect to")


def connect_checked(host: str, port: int, *, timeout: float, field_name: str,
                    policy: EgressPolicy | None = None) -> tuple[socket.socket, _Deadline]:
    """A TCP connection to a checked address of HOST, shut down when TIMEOUT (from now)
    passes; the caller calls ``release()`` on the deadline when done (SMTP uses it)."""
    deadline = _Deadline(time.monotonic() + timeout, timeout)
    addresses = resolve_checked(host, port, field_name, policy, timeout=deadline.left())
    try:
        return _connect(addresses, port, deadline), deadline
    except BaseException:
        deadline.release()
        raise


# --------------------------------------------------------------------------- fetch


@dataclass(frozen=True)
class Reply:
    status: int
    reason: str
    headers: Message
    body: bytes


def fetch(
    url: str,
    *,
    timeout: float,
    field_name: str,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    truncate: bool = False,
    policy: EgressPolicy | None = None,
    ssl_context: ssl.SSLContext | None = None,
    proxy: str | None = None,
) -> Reply:
    """One request to URL (see the module doc). Raises EgressRefused, DeadlineExceeded,
    ResponseTooLarge, OSError or http.client.HTTPException."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("a URL starts with http:// or https:// and names a host")
    host = parts.hostname
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    deadline = _Deadline(time.monotonic() + timeout, timeout)
    try:
        if proxy:  # the proxy resolves the name: only a literal address is checked here
            addresses = _literal_checked(host, field_name, policy)
        else:
            addresses = resolve_checked(host, port, field_name, policy,
                                        timeout=deadline.left())
        context = ssl_context or (ssl.create_default_context() if https else None)
        conn = _connection(parts.scheme, host, port, addresses, deadline, context, proxy)
        try:
            target = parts.path or "/"
            if parts.query:
                target += "?" + parts.query
            if proxy and not https:
                target = f"http://{parts.netloc.rpartition('@')[2]}{target}"
            conn.request(method, target, body=body, headers=dict(headers or {}))
            response = conn.getresponse()
            data = response.read(max_bytes + 1)
            if time.monotonic() >= deadline.at:  # the reaper cut it: what came is partial
                raise DeadlineExceeded(f"no complete answer within {timeout:g}s")
            if len(data) <= max_bytes and response.length:  # the peer closed early
                raise http.client.IncompleteRead(data, response.length)
            if len(data) > max_bytes:
                if not truncate:
                    raise ResponseTooLarge(f"the answer is longer than {max_bytes} bytes")
                data = data[:max_bytes]
            return Reply(response.status, response.reason, response.msg, data)
        finally:
            conn.close()
    except (OSError, http.client.HTTPException) as exc:
        if time.monotonic() >= deadline.at and not isinstance(exc, DeadlineExceeded):
            raise DeadlineExceeded(f"no complete answer within {timeout:g}s") from None
        raise
    finally:
        deadline.release()


def _connection(scheme: str, host: str, port: int, addresses: list[tuple[int, Address]],
                deadline: _Deadline, context: ssl.SSLContext | None, proxy: str | None
                ) -> http.client.HTTPConnection:
    if proxy:
        p = urlsplit(proxy)
        p_host, p_port = p.hostname or "", p.port or 80
        conn: http.client.HTTPConnection
        if scheme == "https":
            conn = http.client.HTTPSConnection(p_host, p_port, timeout=deadline.left(),
                                               context=context)
            conn.set_tunnel(host, port)
        else:
            conn = http.client.HTTPConnection(p_host, p_port, timeout=deadline.left())
        conn.connect()
        assert conn.sock is not None
        deadline.watch(conn.sock)
        return conn
    sock = _connect(addresses, port, deadline)
    if scheme == "https":
        assert context is not None
        sock.settimeout(deadline.left())
        sock = context.wrap_socket(sock, server_hostname=host)
        deadline.watch(sock)  # the TLS socket now owns the descriptor
        conn = http.client.HTTPSConnection(host, port, timeout=deadline.left(), context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=deadline.left())
    sock.settimeout(deadline.left())
    conn.sock = sock  # connected to the checked address; Host (and SNI) keep the name
    return conn


# --------------------------------------------------------------------------- requests


class RedirectRefused(requests.exceptions.RequestException):
    """A 3xx answer: redirects are never followed."""


class GuardedAdapter(requests.adapters.BaseAdapter):
    """A ``requests`` transport sending through :func:`fetch`: the request's ``timeout``
    (a number, or the larger of a pair) is the total deadline, ``max_bytes`` caps the body,
    a 3xx raises RedirectRefused, and the host is checked by POLICY (None: the current
    policy) naming FIELD_NAME. The session's proxies and ``verify``/``cert`` are honoured."""

    def __init__(self, field_name: str, *, policy: EgressPolicy | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES, default_timeout: float = 10.0) -> None:
        super().__init__()
        self.field_name = field_name
        self.policy = policy
        self.max_bytes = max_bytes
        self.default_timeout = default_timeout

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: Any = None, verify: Any = True, cert: Any = None,
             proxies: Mapping[str, str] | None = None) -> requests.Response:
        url = request.url or ""
        total = (max(t for t in timeout if t is not None) if isinstance(timeout, tuple)
                 else timeout) or self.default_timeout
        context = None
        if url.startswith("https://"):
            context = ssl.create_default_context(
                cafile=verify if isinstance(verify, str) else None)
            if verify is False:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if cert:
                context.load_cert_chain(*(cert if isinstance(cert, tuple) else (cert,)))
        proxy = requests.utils.select_proxy(url, dict(proxies or {})) if proxies else None
        body = request.body.encode() if isinstance(request.body, str) else request.body
        try:
            reply = fetch(url, timeout=float(total), field_name=self.field_name,
                          method=request.method or "GET",
                          # identity: the cap counts the bytes we keep (no gzip bomb), and
                          # the body is handed over as it came
                          headers={**{k: str(v) for k, v in request.headers.items()},
                                   "Accept-Encoding": "identity"},
                          body=body if isinstance(body, bytes) else None,
                          max_bytes=self.max_bytes, policy=self.policy,
                          ssl_context=context, proxy=proxy)
        except DeadlineExceeded as exc:
            raise requests.exceptions.ReadTimeout(str(exc), request=request) from None
        except (OSError, http.client.HTTPException) as exc:
            raise requests.exceptions.ConnectionError(exc, request=request) from None
        if 300 <= reply.status < 400:
            raise RedirectRefused(f"HTTP {reply.status}: redirects are not followed",
                                  request=request)
        response = requests.Response()
        response.status_code = reply.status
        response.reason = reply.reason
        response.headers = CaseInsensitiveDict(reply.headers.items())
        response._content = reply.body
        response.url = url
        response.request = request
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
        return response

    def close(self) -> None:
        pass
