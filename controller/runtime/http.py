"""``/healthz``, ``/readyz`` and ``/metrics`` on a stdlib ``ThreadingHTTPServer``.

Each check is a callable returning ``(ok, reason)``; a failed check answers 503 with the
reason as plain text (never a secret: reasons are written by the runtime). ``/metrics`` is
the Prometheus exposition (text, or OpenMetrics when asked for) of the registry given.
Bind to 127.0.0.1 unless the operator asks for another address (``--metrics-address``).

Limits: each connection has a timeout (``connection_timeout``, 5 s: a client that sends
nothing, or reads nothing, is dropped) and at most ``max_connections`` (64) are served at
once; a connection beyond that is closed at once, so 300 idle sockets never become 300
threads.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from controller.constants import METRICS_PORT

__all__ = ["Check", "HealthServer", "parse_bind_address"]

log = logging.getLogger(__name__)

Check = Callable[[], tuple[bool, str]]


def parse_bind_address(text: str, default_port: int = METRICS_PORT) -> tuple[str, int]:
    """``host:port``, ``:port`` (all interfaces) or ``host``; IPv6 as ``[::1]:8080``."""
    host, sep, port = text.rpartition(":")
    if not sep or host.endswith(":"):  # no port, or a bare IPv6 address
        return text.strip("[]") or "127.0.0.1", default_port
    if host == "":
        host = "0.0.0.0"
    return host.strip("[]"), int(port)


class _BoundedServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer serving at most ``max_connections`` connections at once."""

    daemon_threads = True
    request_queue_size = 128  # accepted (and, over the cap, closed) rather than left queued

    def __init__(self, address: tuple[str, int], handler: Any, max_connections: int) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)
        self.refused = 0
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)  # over the cap: closed at once, no thread
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class HealthServer:
    """Serves the three endpoints from a daemon thread until :meth:`stop`."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        liveness: Check,
        readiness: Check,
        address: tuple[str, int] = ("127.0.0.1", METRICS_PORT),
        max_connections: int = 64,
        connection_timeout: float = 5.0,
    ) -> None:
        self._registry = registry
        self._liveness = liveness
        self._readiness = readiness
        self._connection_timeout = connection_timeout
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        server_class = type("Server", (_BoundedServer,), {"address_family": family})
        self._server = server_class(address, self._handler_class(), max_connections)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The address bound (the port is the real one when 0 was asked for)."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
            name="health-server", daemon=True,
        )
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "rolloutctl"
            timeout = owner._connection_timeout  # per connection: idle clients are dropped

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                    self._send(200, encoder(owner._registry), content_type)
                elif path in ("/healthz", "/livez"):
                    self._check(owner._liveness)
                elif path == "/readyz":
                    self._check(owner._readiness)
                else:
                    self._send(404, b"not found\n", "text/plain; charset=utf-8")

            def _check(self, check: Check) -> None:
                try:
                    ok, reason = check()
                except Exception as exc:  # a failing check is a failed check
                    ok, reason = False, f"check failed: {type(exc).__name__}"
                body = (reason or ("ok" if ok else "not ok")) + "\n"
                self._send(200 if ok else 503, body.encode(), "text/plain; charset=utf-8")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError, TimeoutError):
                    pass  # the prober gave up waiting (a loaded node): nothing to report

            def log_message(self, format: str, *args: object) -> None:
                log.debug("%s %s", self.address_string(), format % args)

        return Handler
