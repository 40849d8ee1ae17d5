"""A counting pass-through proxy: which controller sent how many requests.

The API server's ``apiserver_request_total`` has no client label (and priority and fairness,
whose flow-schema metrics would have one, is off in the local control plane), and
Prometheus's ``prometheus_http_requests_total`` counts every client together. Each system
under test therefore talks to the API server and to Prometheus through its own
:class:`CountingProxy` on loopback, which forwards every request unchanged (the API server's
with the admin token added, over TLS) and counts it: requests per system, measured at the
same time for the three systems.

Responses are streamed back as they arrive (watches) and each connection carries one request
(``Connection: close``). ``pause()`` closes the listening socket (clients get "connection
refused", as from a stopped server) and ``resume()`` opens it again on the same port.
"""

from __future__ import annotations

import http.client
import ssl
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer",
                        "transfer-encoding", "upgrade", "host", "authorization"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: CountingProxy


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _forward(self) -> None:
        owner = self.server.owner
        owner.record(self.command, self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if owner.token:
            headers["Authorization"] = f"Bearer {owner.token}"
        conn = owner.connection(watch=_is_watch(self.path))
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
        except OSError as exc:
            owner.errors += 1
            conn.close()
            self.send_error(502, f"upstream: {exc}")
            return
        try:
            # chunked stays chunked (a watch's events must reach the client as they come:
            # a client reading a body without framing waits for whole blocks)
            chunked = response.getheader("Transfer-Encoding", "").lower() == "chunked"
            self.send_response_only(response.status, response.reason)
            for k, v in response.getheaders():
                if k.lower() not in HOP_BY_HOP:
                    self.send_header(k, v)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            while chunk := response.read1(65536):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client went away (a watch closed): done
            pass
        except http.client.HTTPException:
            # the upstream went away mid-body (the control plane stopping at the end of a
            # run): an upstream error, and done
            owner.errors += 1
        finally:
            conn.close()
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward


def _is_watch(path: str) -> bool:
    parts = urlsplit(path)
    return "/watch/" in parts.path or parse_qs(parts.query).get("watch", [""])[0] in (
        "true", "1")


def kind_of(method: str, path: str) -> str:
    """WATCH, a read (GET) or a write (the method), as ``apiserver_request_total``'s verbs
    would group them; Prometheus's paths (``/api/v1/query``...) as they are."""
    if _is_watch(path):
        return "WATCH"
    return method


class CountingProxy:
    """Forwards 127.0.0.1:PORT to UPSTREAM (``http://`` or ``https://``) and counts."""

    def __init__(self, name: str, upstream: str, *, token: str = "",
                 ca_file: Path | None = None) -> None:
        self.name = name
        parts = urlsplit(upstream)
        self.scheme, self.host = parts.scheme, parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or (443 if parts.scheme == "https" else 80)
        self.token = token
        self.context: ssl.SSLContext | None = None
        if self.scheme == "https":
            self.context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self.port = 0
        self.counts: Counter[tuple[str, str]] = Counter()  # (kind, path without query)
        self.errors = 0
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connection(self, watch: bool) -> http.client.HTTPConnection:
        timeout = None if watch else 120.0
        if self.context is not None:
            return http.client.HTTPSConnection(self.host, self.upstream_port, timeout=timeout,
                                               context=self.context)
        return http.client.HTTPConnection(self.host, self.upstream_port, timeout=timeout)

    def record(self, method: str, path: str) -> None:
        with self._lock:
            self.counts[(kind_of(method, path), urlsplit(path).path)] += 1

    def snapshot(self) -> Counter[tuple[str, str]]:
        with self._lock:
            return Counter(self.counts)

    def start(self) -> CountingProxy:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.owner = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.1,),
                                        daemon=True, name=f"proxy-{self.name}")
        self._thread.start()
        return self

    def pause(self) -> None:
        """Stop listening (new connections are refused); requests in flight finish."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def resume(self) -> None:
        """Listen again on the same port."""
        if self._server is None:
            self.start()

    stop = pause

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig pointing at this proxy (no credentials: the proxy adds them)."""
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: proxy\n  cluster:\n    server: {self.url}\n"
            "users:\n- name: proxy\n  user: {}\n"
            "contexts:\n- name: proxy\n  context:\n    cluster: proxy\n    user: proxy\n"
            "current-context: proxy\n")
        return path

