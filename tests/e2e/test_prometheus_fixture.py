"""The Prometheus fixtures run a real Prometheus: backfilled history and live scraping."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from tests.harness.cluster import free_port
from tests.harness.fixtures import BackfilledFactory, LiveFactory
from tests.harness.prometheus import counter, gauge, write_openmetrics

pytestmark = pytest.mark.prometheus

DAY = 86400


def test_openmetrics_text_follows_the_backfill_rules() -> None:
    text = write_openmetrics(
        [counter("http_requests_total", {"code": '5"00'}, [(1700000000, 1), (1699999940, 0)])]
    )
    lines = text.splitlines()
    assert lines[0] == "# TYPE http_requests counter"  # family named without _total
    assert lines[1] == 'http_requests_total{code="5\\"00"} 0 1699999940'  # seconds, sorted
    assert lines[-1] == "# EOF"


def test_backfilled_prometheus_answers_an_instant_query_in_the_past(
    prometheus_backfilled: BackfilledFactory,
) -> None:
    now = int(time.time())
    start = now - 4 * DAY
    # A counter growing by 6 per minute for two days, from 4 days ago to 2 days ago.
    samples = [(start + 60 * i, 6.0 * i) for i in range(2 * 24 * 60)]
    prom = prometheus_backfilled(
        [
            counter("http_requests", {"service": "checkout", "track": "canary"}, samples),
            gauge("canary_weight", {"plan": "checkout"}, [(start + 60 * i, 25) for i in range(60)]),
        ]
    )
    at = now - 3 * DAY
    minutes = (at - start) // 60
    selector = 'http_requests_total{service="checkout",track="canary"}'
    assert prom.query_value(selector, at) == 6.0 * minutes
    assert prom.query_value(f"rate({selector}[5m])", at) == pytest.approx(0.1)
    assert prom.query_value('canary_weight{plan="checkout"}', start + 30 * 60) == 25
    # Past the last sample plus the 5m lookback there is nothing: no data, not zero.
    assert prom.query_value(selector, now) is None


@pytest.fixture
def counter_server() -> Iterator[tuple[str, Counter]]:
    registry = CollectorRegistry()
    requests = Counter("demo_requests", "Requests served", ["track"], registry=registry)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield f"127.0.0.1:{port}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _wait_for_value(prom_query: object, expr: str, want: float, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = prom_query(expr)  # type: ignore[operator]
        if value == want:
            return
        time.sleep(0.25)
    raise AssertionError(f"{expr} = {value}, expected {want}")


def test_live_prometheus_scrapes_a_target_and_follows_target_changes(
    prometheus_live: LiveFactory, counter_server: tuple[str, Counter]
) -> None:
    target, requests = counter_server
    requests.labels(track="canary").inc(7)
    prom = prometheus_live([target])
    prom.wait_for_targets_up()
    _wait_for_value(prom.query_value, 'demo_requests_total{track="canary"}', 7)
    requests.labels(track="canary").inc(3)
    _wait_for_value(prom.query_value, 'demo_requests_total{track="canary"}', 10)

    # Replacing the targets (config rewrite + /-/reload) drops the old one.
    prom.set_targets([])
    deadline = time.monotonic() + 30
    while prom.server.api("/api/v1/targets", {"state": "active"})["activeTargets"]:
        assert time.monotonic() < deadline, "target still active after reload"
        time.sleep(0.25)
    prom.set_targets([target])
    prom.wait_for_targets_up()
    assert prom.url.startswith("http://127.0.0.1:") and prom == prom.url
