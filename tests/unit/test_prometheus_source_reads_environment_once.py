"""PrometheusSource reads the proxy, CA-bundle and netrc environment once, when built.

``requests`` re-reads the whole environment for every request of a session that trusts it
(proxies, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``, ``~/.netrc``): about 0.4 ms per query here,
and a controller at 1,000 plans sends several queries a second. The source resolves them
once for its URL, so queries behave as before: through the proxy the environment named, or
directly when ``NO_PROXY`` names the host.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from controller.adapters.metrics.prometheus import PrometheusSource
from controller.api.policy import SLO
from controller.engine.measurements import MeasurementStatus, Track
from controller.ports import QueryContext

PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
              "all_proxy", "NO_PROXY", "no_proxy")

SLO_DOC = {
    "name": "api_availability", "objective": 99, "window": "1h",
    "sli": {"ratio": {
        "bad": 'sum(rate(http_requests_total{service="{{service}}",code=~"5.."}[{{window}}]))',
        "total": 'sum(rate(http_requests_total{service="{{service}}"}[{{window}}]))'}},
}


class _Server:
    """Answers every GET like Prometheus's instant query API (one sample of 2.0) and
    records the request targets: an absolute URL means it was asked as a proxy."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.targets.append(self.path)
                body = json.dumps({"status": "success", "data": {
                    "resultType": "vector",
                    "result": [{"metric": {}, "value": [1.0, "2.0"]}]}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Server]:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    s = _Server()
    try:
        yield s
    finally:
        s.close()


def measure(source: PrometheusSource) -> MeasurementStatus:
    ctx = QueryContext(service="checkout", namespace="shop", revision="r1",
                       at=datetime.now(UTC))
    return source.measure(SLO.model_validate(SLO_DOC), Track.CANARY, 60.0, ctx).status


def test_the_proxy_named_at_start_carries_every_query_even_after_the_environment_changes(
    server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", server.url)
    source = PrometheusSource("http://prometheus.example:9090", registry=CollectorRegistry())
    monkeypatch.delenv("HTTP_PROXY")  # read once: later changes do not reach the source
    assert measure(source) == MeasurementStatus.OK
    assert measure(source) == MeasurementStatus.OK
    assert len(server.targets) == 4  # bad and total, twice
    assert all(t.startswith("http://prometheus.example:9090/api/v1/query?") for t in
               server.targets), server.targets
    source.close()


def test_no_proxy_naming_the_host_sends_queries_directly(
    server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    source = PrometheusSource(server.url, registry=CollectorRegistry())
    assert measure(source) == MeasurementStatus.OK
    assert server.targets and all(t.startswith("/api/v1/query?") for t in server.targets)
    source.close()


def test_requests_no_longer_consult_the_environment_per_query(
    server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = PrometheusSource(server.url, registry=CollectorRegistry())
    import requests.sessions
    import requests.utils

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("the environment was read for a query")

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", refuse)
    monkeypatch.setattr(requests.sessions, "get_netrc_auth", refuse)
    monkeypatch.setattr(requests.utils, "get_environ_proxies", refuse)
    assert measure(source) == MeasurementStatus.OK
    source.close()


def test_a_ca_bundle_named_in_the_environment_still_verifies_https(
    server: _Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    source = PrometheusSource("https://prometheus.example:9090", registry=CollectorRegistry())
    # what requests would have passed as ``verify`` for each query
    assert source._client._session.verify == str(bundle)
    source.close()
