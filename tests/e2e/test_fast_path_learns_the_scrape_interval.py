"""The fast path's default cadence comes from what a real Prometheus reports for its targets
(``/api/v1/targets``): the scrape interval, and a phase just after the scrapes land."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from controller.adapters.metrics.fastpath import ScrapeIntervals
from controller.adapters.metrics.prometheus import PrometheusSource
from tests.harness.cluster import free_port
from tests.harness.fixtures import LiveFactory

pytestmark = pytest.mark.prometheus


@pytest.fixture
def target() -> Iterator[str]:
    registry = CollectorRegistry()
    Counter("demo_requests", "Requests served", registry=registry).inc()
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_the_cadence_is_the_targets_scrape_interval_just_after_their_scrapes(
        prometheus_live: LiveFactory, target: str) -> None:
    prom = prometheus_live([target], scrape_interval="2s")
    prom.wait_for_targets_up()
    with PrometheusSource(prom.url) as source:
        timing = source.scrape_timing()
        assert timing is not None and len(timing) == 1
        [(interval, ready)] = timing
        assert interval == 2.0
        assert ready is not None and abs(ready - time.time()) < 30
        cadence = ScrapeIntervals(lambda: [source], time.monotonic)()
    assert cadence is not None and cadence.interval == 2.0
    assert cadence.phase is not None
    off = (cadence.phase - (ready + 0.2)) % 2.0  # circular: 1.99 is 0.01 from 0.0
    assert min(off, 2.0 - off) < 0.05


def test_a_server_that_does_not_answer_leaves_the_default() -> None:
    with PrometheusSource(f"http://127.0.0.1:{free_port()}", timeout_seconds=2) as source:
        assert source.scrape_timing() is None
        cadence = ScrapeIntervals(lambda: [source], time.monotonic)()
    assert cadence is not None and (cadence.interval, cadence.phase) == (10.0, None)
