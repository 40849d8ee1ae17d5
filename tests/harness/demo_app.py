"""A small demo service: serves requests, exports Prometheus metrics, takes injected faults.

Each instance plays one track (stable or canary) of one service. It counts
``http_requests_total{service,track,code,handler}`` and observes
``http_request_duration_seconds{service,track,handler}``; ``POST /admin/config`` with
``{"error_rate": 0.2, "latency_ms": 300}`` changes how it behaves.

    python -m tests.harness.demo_app --service checkout --track canary --port 0
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.exposition import generate_latest

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0)
#: the platform SLOs' histograms and their thresholds, with ``le`` written as the policy
#: writes it ("3", as Go clients do; prometheus_client would write "3.0")
PLATFORM_HISTOGRAMS = {"agent_selection_duration_seconds": ("0.05",),
                       "db_query_duration_seconds": ("0.1",),
                       "git_hook_duration_seconds": ("3",)}


class _PlatformHistograms:
    """Every observation 1 ms: each histogram's buckets all count every request."""

    def __init__(self, app: DemoApp) -> None:
        self.app = app

    def describe(self) -> list[HistogramMetricFamily]:
        return []

    def collect(self) -> list[HistogramMetricFamily]:
        with self.app._lock:
            n = float(self.app.platform_count)
        families = []
        for name, les in PLATFORM_HISTOGRAMS.items():
            family = HistogramMetricFamily(name, name.replace("_", " "),
                                           labels=["service", "track"])
            family.add_metric([self.app.service, self.app.track],
                              [*((le, n) for le in les), ("+Inf", n)], n * 0.001)
            families.append(family)
        return families


class DemoApp:
    def __init__(self, service: str, track: str, port: int = 0, *, error_rate: float = 0.0,
                 latency_ms: float = 5.0, seed: int | None = None) -> None:
        self.service = service
        self.track = track
        self.error_rate = error_rate
        self.latency_ms = latency_ms
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.registry = CollectorRegistry()
        self.requests = Counter("http_requests", "Requests served", [
            "service", "track", "code", "handler"], registry=self.registry)
        # the platform policy's error_rate and workflow_success_rate SLIs: each request
        # is one operation and one workflow run, failing together with the request
        self.operations = Counter("app_operations", "Operations", ["service", "track"],
                                  registry=self.registry)
        self.app_errors = Counter("app_errors", "Operations ending in an application error",
                                  ["service", "track"], registry=self.registry)
        self.workflows = Counter("workflow_runs", "Workflow runs", ["service", "track", "result"],
                                 registry=self.registry)
        # Error series exist at 0 before the first error, as Prometheus' instrumentation
        # guide advises: rate() needs two samples of a series, so an error series born with
        # the first error would show the fault one scrape later than the service saw it.
        self.app_errors.labels(service, track)
        self.workflows.labels(service, track, "failure")
        # the other platform SLIs (policies/platform-slos.yaml), all healthy: each request
        # also selects an agent, runs a database query and a git hook, and a CI pipeline
        self.platform_count = 0
        self.registry.register(_PlatformHistograms(self))
        self.pipelines = Counter("ci_pipeline_runs", "CI/CD pipeline runs",
                                 ["service", "track", "result"], registry=self.registry)
        self.duration = Histogram("http_request_duration_seconds", "Request latency",
                                  ["service", "track", "handler"], buckets=BUCKETS,
                                  registry=self.registry)
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self._reply(200, generate_latest(app.registry),
                                "text/plain; version=0.0.4")
                elif self.path == "/healthz":
                    self._reply(200, b"ok")
                elif self.path == "/admin/config":
                    self._reply(200, json.dumps(app.config()).encode(), "application/json")
                else:
                    code = app.serve(self.path.split("?")[0])
                    self._reply(code, b"error\n" if code >= 500 else b"ok\n")

            def do_POST(self) -> None:
                if self.path != "/admin/config":
                    self._reply(404, b"not found")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    app.configure(**json.loads(self.rfile.read(length) or b"{}"))
                except (ValueError, TypeError) as exc:
                    self._reply(400, str(exc).encode())
                    return
                self._reply(200, json.dumps(app.config()).encode(), "application/json")

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, float]:
        with self._lock:
            return {"error_rate": self.error_rate, "latency_ms": self.latency_ms}

    def configure(self, error_rate: float | None = None, latency_ms: float | None = None) -> None:
        with self._lock:
            if error_rate is not None:
                if not 0 <= float(error_rate) <= 1:
                    raise ValueError("error_rate must be in [0, 1]")
                self.error_rate = float(error_rate)
            if latency_ms is not None:
                if float(latency_ms) < 0:
                    raise ValueError("latency_ms must be >= 0")
                self.latency_ms = float(latency_ms)

    def serve(self, handler: str) -> int:
        with self._lock:
            error_rate, latency = self.error_rate, self.latency_ms
            fail = self._random.random() < error_rate
            jitter = self._random.uniform(0.8, 1.2)
        seconds = latency * jitter / 1000.0
        time.sleep(min(seconds, 0.05))  # keep the server responsive; record the full latency
        code = 500 if fail else 200
        self.requests.labels(self.service, self.track, "500", handler)  # at 0 (see __init__)
        self.requests.labels(self.service, self.track, str(code), handler).inc()
        self.operations.labels(self.service, self.track).inc()
        self.workflows.labels(self.service, self.track, "failure" if fail else "success").inc()
        if fail:
            self.app_errors.labels(self.service, self.track).inc()
        with self._lock:
            self.platform_count += 1
        self.pipelines.labels(self.service, self.track, "success").inc()
        self.duration.labels(self.service, self.track, handler).observe(seconds)
        return code

    def start(self) -> DemoApp:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                        name=f"demo-{self.track}")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description="rolloutctl demo service")
    parser.add_argument("--service", default="checkout")
    parser.add_argument("--track", required=True, choices=["stable", "canary"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--port-file", help="write the port here once listening")
    args = parser.parse_args()
    app = DemoApp(args.service, args.track, args.port, error_rate=args.error_rate,
                  latency_ms=args.latency_ms)
    if args.port_file:
        with open(args.port_file, "w", encoding="utf-8") as f:
            f.write(str(app.port))
    print(f"demo {args.service}/{args.track} on {app.url}", flush=True)
    app.server.serve_forever()


if __name__ == "__main__":
    main()
