"""The dashboard's HTTP server: the standard library's ``ThreadingHTTPServer`` on loopback.

Read-only: GET and HEAD only (anything else is 405), no cookies, no forms, no state kept for
a browser. Requests whose ``Host`` is not this loopback address are refused (a web page
elsewhere cannot reach it through DNS rebinding). Pages are whole HTML documents; the
browser then polls ``/fragment<page path>?v=VERSION`` every second and swaps the fragment in
when its version changed (204 when it did not).

Data: one shared snapshot of plans and policies (``SnapshotCache``, at most one cluster read
per second whatever the number of tabs) and Prometheus charts cached per page for a few
seconds.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from controller.dashboard import views
from controller.dashboard.snapshot import SnapshotCache
from controller.dashboard.timelines import plan_charts, policy_charts
from controller.ports import RangeSource

STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".svg": "image/svg+xml", ".txt": "text/plain; charset=utf-8"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; base-uri 'none'; form-action 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Sources:
    """Where the series come from: a range source per policy (or None with the reason)."""

    for_url: Callable[[str], RangeSource]
    burns: Callable[[Any, str], dict[str, dict[str, str]]]
    url: str | None = None  # --prometheus-url: overrides the policies' own

    def url_for(self, policy: Any) -> str | None:
        if self.url:
            return self.url
        ref = getattr(getattr(policy, "spec", None), "prometheus", None)
        return ref.url if ref is not None else None


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"


class Dashboard:
    """Routes and renders; the HTTP layer only moves bytes."""

    CHART_MAX_AGE = 3.0
    BURN_MAX_AGE = 15.0

    def __init__(self, snapshots: SnapshotCache, sources: Sources, who: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.snapshots = snapshots
        self.sources = sources
        self.who = who
        self.clock = clock
        self._cache: dict[tuple[str, ...], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def _cached(self, key: tuple[str, ...], max_age: float, make: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] < max_age:
                return hit[1]
        value = make()
        with self._lock:
            self._cache[key] = (now, value)
        return value

    # -- routing -------------------------------------------------------------------------

    def get(self, target: str) -> Response:
        parts = urlsplit(target)
        path = parts.path
        if path == "/healthz":
            return Response(200, b"ok\n", "text/plain; charset=utf-8")
        if path.startswith("/static/"):
            return self._static(path.removeprefix("/static/"))
        fragment = path.startswith("/fragment/") or path == "/fragment"
        page_path = path.removeprefix("/fragment") or "/" if fragment else path
        found = self._fragment(page_path)
        if found is None:
            return Response(404, views.not_found("page", "", page_path).encode())
        title, html, status = found
        version = hashlib.sha256(html.encode()).hexdigest()[:16]
        if fragment:
            if parse_qs(parts.query).get("v", [""])[0] == version:
                return Response(204, b"", "application/json")
            body = json.dumps({"version": version, "html": html}).encode()
            return Response(status, body, "application/json")
        shell = views.page(title, html, "/fragment" + page_path, version, self.who)
        return Response(status, shell.encode())

    def _fragment(self, path: str) -> tuple[str, str, int] | None:
        now = self.clock()
        snap = self.snapshots.get()
        if path == "/":
            return "overview", views.overview(snap, now), 200
        bits = [unquote(b) for b in path.strip("/").split("/")]
        if len(bits) != 3 or bits[0] not in ("plan", "policy"):
            return None
        kind, ns, name = bits
        if kind == "plan":
            plan = snap.plan(ns, name)
            if plan is None:
                return f"plan {ns}/{name}", views.not_found("RolloutPlan", ns, name), 404
            policy = (snap.policy(ns, plan.spec.slo_policy_ref.name)
                      if plan.spec.slo_policy_ref else None)
            url = self.sources.url_for(policy) if policy or self.sources.url else None
            charts = self._cached(("plan", ns, name, str(plan.status.seq)),
                                  self.CHART_MAX_AGE, lambda: self._plan_charts(plan, url, now))
            return (f"plan {ns}/{name}",
                    views.plan_page(plan, charts, now, _from(url)), 200)
        policy = snap.policy(ns, name)
        if policy is None:
            return f"policy {ns}/{name}", views.not_found("SLOPolicy", ns, name), 404
        url = self.sources.url_for(policy)
        charts = self._cached(("policy", ns, name), self.CHART_MAX_AGE,
                              lambda: self._policy_charts(policy, url, now))
        burns = self._cached(("burns", ns, name), self.BURN_MAX_AGE,
                             lambda: self.sources.burns(policy, url) if url else {})
        return (f"policy {ns}/{name}",
                views.policy_page(policy, charts, burns, now, _from(url)), 200)

    def _plan_charts(self, plan: Any, url: str | None, now: float) -> Any:
        source = self.sources.for_url(url) if url else None
        return plan_charts(plan, source, now, "" if url else "no Prometheus configured")

    def _policy_charts(self, policy: Any, url: str | None, now: float) -> Any:
        source = self.sources.for_url(url) if url else None
        return policy_charts(policy, source, now, "" if url else "no Prometheus configured")

    def _static(self, name: str) -> Response:
        suffix = name[name.rfind("."):] if "." in name else ""
        if "/" in name or name.startswith(".") or suffix not in STATIC_TYPES:
            return Response(404, b"not found", "text/plain; charset=utf-8")
        try:
            data = resources.files("controller.dashboard").joinpath("static", name).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return Response(404, b"not found", "text/plain; charset=utf-8")
        return Response(200, data, STATIC_TYPES[suffix])


def _from(url: str | None) -> str:
    if not url:
        return "no Prometheus (set --prometheus-url or the policy's spec.prometheus.url)"
    from controller.adapters.metrics.redact import safe_url

    return f"Prometheus at {safe_url(url)}"


class _Handler(BaseHTTPRequestHandler):
    dashboard: Dashboard
    allowed_hosts: set[str]
    server_version = "rolloutctl-dashboard"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the terminal shows the URL only; requests are not news

    def _send(self, response: Response, head: bool = False) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for key, value in SECURITY_HEADERS.items():
            self.send_header(key, value)
        if response.status == HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("Allow", "GET, HEAD")
        self.end_headers()
        if not head and response.status != 204:
            self.wfile.write(response.body)

    def _answer(self, head: bool) -> None:
        if self.headers.get("Host", "") not in self.allowed_hosts:
            self._send(Response(403, b"this dashboard answers on its loopback address only\n",
                                "text/plain; charset=utf-8"), head)
            return
        try:
            response = self.dashboard.get(self.path)
        except Exception as exc:  # one page failing must not take the server down
            from controller.cli.errors import describe

            message = describe(exc, None, None) or f"{type(exc).__name__}"
            response = Response(503, f"<p class=problems>cannot read the cluster: "
                                     f"{views.e(message)}</p>".encode())
        self._send(response, head)

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _refuse(self) -> None:
        self._send(Response(405, b"read-only: GET only\n", "text/plain; charset=utf-8"))

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _refuse


def serve(dashboard: Dashboard, port: int = 0, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """A started server (in a daemon thread) for DASHBOARD on HOST:PORT (0: any free)."""
    allowed: set[str] = set()
    handler = type("Handler", (_Handler,), {"dashboard": dashboard, "allowed_hosts": allowed})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    bound = server.server_address[1]
    allowed.update({f"{host}:{bound}", f"localhost:{bound}"})
    threading.Thread(target=server.serve_forever, name="dashboard", daemon=True).start()
    return server
