"""PrometheusSource against a real Prometheus on backfilled traces: each SLI kind measures
the trace's ground truth, and each status (ok, no data, error, ambiguous, stale) comes
back as data, never as an exception.

Tolerances. Prometheus computes ``rate(x[300s])`` from the samples inside the window (every
15 s here) and extrapolates to the window's edges; the trace knows the exact events. With a
constant rate the two agree exactly; with ``noise`` (seeded random variation of the rate)
the extrapolated first step differs from the true one, so counts agree within
``COUNT_TOL`` (3 %) and ratios within 5 % relative or 0.0005 absolute (``near``).
"""

from __future__ import annotations

import re
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from controller.adapters.metrics.prometheus import PrometheusSource
from controller.api.policy import SLO
from controller.engine.measurements import Measurement, MeasurementStatus, Track
from controller.ports import QueryContext
from tests.harness.cluster import free_port
from tests.harness.fixtures import BackfilledFactory, unavailable
from tests.harness.prometheus import PrometheusError, PrometheusServer, backfill
from tests.harness.traces import Trace, TrackShape, after, series_of

pytestmark = pytest.mark.prometheus

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z; fixed, so every run sees the same history
HOUR = 3600
COUNT_TOL = 0.03

LATENCY_REGRESSION = {0.05: 0.10, 0.1: 0.30, 0.2: 0.70, 0.5: 0.95, 1.0: 0.99, 2.5: 1.0}

TRACES = {
    t.service: t
    for t in (
        Trace("healthy", T0, 2 * HOUR, {
            "canary": TrackShape(rate=20, error_ratio=0.002, noise=0.2,
                                 memory_bytes=lambda t: 2e8 + 1000 * t),
            "stable": TrackShape(rate=180, error_ratio=0.002, noise=0.2, memory_bytes=3e8),
        }, seed=1),
        Trace("errors", T0, 2 * HOUR, {
            "canary": TrackShape(rate=20, error_ratio=after(HOUR, 0.05, 0.001), noise=0.2),
            "stable": TrackShape(rate=180, error_ratio=0.001, noise=0.2),
        }, seed=2),
        Trace("slow", T0, 2 * HOUR, {
            "canary": TrackShape(
                rate=20, latency=lambda t: LATENCY_REGRESSION if t >= HOUR else
                {0.05: 0.5, 0.1: 0.8, 0.2: 0.98, 0.5: 0.995, 1.0: 0.999, 2.5: 1.0}),
        }, seed=3),
        Trace("resets", T0, 2 * HOUR, {
            "canary": TrackShape(rate=10, error_ratio=0.01, resets=[3000, 3300], noise=0.1),
        }, seed=4),
        Trace("vanish", T0, 2 * HOUR, {
            "canary": TrackShape(rate=20, error_ratio=0.001, absent=[(HOUR, float("inf"))],
                                 memory_bytes=2e8),
        }),
        Trace("noerrors", T0, 2 * HOUR, {
            "canary": TrackShape(rate=20, error_ratio=0.0, lazy_error_series=True),
        }),
        Trace("idle", T0, 2 * HOUR, {"canary": TrackShape(rate=0.0)}),
        Trace("trickle", T0, 2 * HOUR, {"canary": TrackShape(rate=0.05, error_ratio=0.0)}),
    )
}

BAD = ('sum(rate(http_requests_total{service="{{service}}",track="{{track}}",code=~"5.."}'
       "[{{window}}]))")
TOTAL = 'sum(rate(http_requests_total{service="{{service}}",track="{{track}}"}[{{window}}]))'


def slo(sli: dict[str, Any], objective: float | None = 99.9) -> SLO:
    return SLO.model_validate({"name": "s", "objective": objective, "sli": sli})


RATIO = slo({"ratio": {"bad": BAD, "total": TOTAL}})
LATENCY = slo({"latency": {"histogram": "http_request_duration_seconds", "le": "0.2"}}, 95)
THROUGHPUT = slo({"throughput": {"query": TOTAL, "min": 10}}, None)
GAUGE = slo({"gauge": {
    "query": 'max(process_resident_memory_bytes{service="{{service}}",track="{{track}}"})',
    "max": 1e9}}, None)


def near(expected: float) -> Any:
    """The ratio tolerance: 5 % relative or 0.0005 absolute."""
    return pytest.approx(expected, rel=0.05, abs=0.0005)
GAUGE_OVER_WINDOW = slo({"gauge": {
    "query": 'max(max_over_time(process_resident_memory_bytes{service="{{service}}",'
             'track="{{track}}"}[{{window}}]))',
    "max": 1e9}}, None)
KINDS = {"ratio": RATIO, "latency": LATENCY, "throughput": THROUGHPUT, "gauge": GAUGE}


def ctx(service: str, at: float) -> QueryContext:
    return QueryContext(service=service, namespace="shop", revision="r1",
                        at=datetime.fromtimestamp(at, UTC))


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """One real Prometheus on the backfilled traces, shared by this module's tests."""
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus-gates"))
    try:
        backfill(series_of(TRACES.values()), server.data_dir, server.dir / "backfill.om.txt")
        server.start()
    except PrometheusError as exc:
        server.stop()
        unavailable(f"cannot start a backfilled Prometheus: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def source(prometheus: PrometheusServer, registry: CollectorRegistry) -> Iterator[PrometheusSource]:
    with PrometheusSource(prometheus.url, timeout_seconds=5, registry=registry) as s:
        yield s


def queries_sent(registry: CollectorRegistry, status: str) -> float:
    return registry.get_sample_value(
        "rolloutctl_prometheus_queries_total", {"status": status}
    ) or 0.0


def assert_ok(m: Measurement) -> None:
    assert m.status == MeasurementStatus.OK, m.message
    assert m.value is not None


# ------------------------------------------------------------------------- SLI kinds


@pytest.mark.parametrize(
    ("service", "offset", "truth_ratio"),
    [("healthy", 1800, 0.002), ("errors", 1800, 0.001), ("errors", HOUR + 900, 0.05)],
)
def test_ratio_is_bad_over_total_events_in_the_window(
    source: PrometheusSource, service: str, offset: int, truth_ratio: float
) -> None:
    at = T0 + offset
    truth = TRACES[service].truth("canary", at - 300, at)
    m = source.measure(RATIO, Track.CANARY, 300, ctx(service, at))
    assert_ok(m)
    assert truth.error_ratio == pytest.approx(truth_ratio, rel=0.1)
    assert m.value == near(truth.error_ratio)
    assert m.denominator == pytest.approx(truth.requests, rel=COUNT_TOL)
    assert m.numerator == pytest.approx(truth.errors, rel=COUNT_TOL, abs=1)
    assert m.samples == m.denominator
    assert m.query.splitlines()[0].startswith("bad: (sum(rate(http_requests_total{")


def test_stable_is_measured_on_its_own_traffic(source: PrometheusSource) -> None:
    at = T0 + HOUR + 900
    canary = source.measure(RATIO, Track.CANARY, 300, ctx("errors", at))
    stable = source.measure(RATIO, Track.STABLE, 300, ctx("errors", at))
    assert_ok(canary)
    assert_ok(stable)
    truth = TRACES["errors"].truth("stable", at - 300, at)
    assert stable.value == near(truth.error_ratio)
    assert stable.denominator == pytest.approx(truth.requests, rel=COUNT_TOL)
    assert canary.value is not None and stable.value is not None
    assert canary.value > 40 * stable.value


@pytest.mark.parametrize(("offset", "truth_slow"), [(1800, 0.02), (HOUR + 900, 0.30)])
def test_latency_is_the_share_slower_than_le(
    source: PrometheusSource, offset: int, truth_slow: float
) -> None:
    at = T0 + offset
    truth = TRACES["slow"].truth("canary", at - 300, at)
    m = source.measure(LATENCY, Track.CANARY, 300, ctx("slow", at))
    assert_ok(m)
    assert truth.slow_ratio(0.2) == pytest.approx(truth_slow, rel=0.01)
    assert m.value == near(truth.slow_ratio(0.2))
    assert m.denominator == pytest.approx(truth.requests, rel=COUNT_TOL)
    assert m.numerator == pytest.approx(truth.requests - truth.at_or_under[0.2], rel=COUNT_TOL)
    assert "histogram_quantile" not in m.query and 'le="0.2"' in m.query


def test_latency_with_an_le_the_histogram_lacks_is_no_data_not_all_slow(
    source: PrometheusSource,
) -> None:
    wrong = slo({"latency": {"histogram": "http_request_duration_seconds", "le": "0.20"}}, 95)
    m = source.measure(wrong, Track.CANARY, 300, ctx("slow", T0 + 1800))
    assert m.status == MeasurementStatus.NO_DATA
    assert "no bucket with this le" in m.message


def test_throughput_is_the_rate(source: PrometheusSource) -> None:
    at = T0 + 1800
    truth = TRACES["healthy"].truth("canary", at - 300, at)
    m = source.measure(THROUGHPUT, Track.CANARY, 300, ctx("healthy", at))
    assert_ok(m)
    assert m.value == pytest.approx(truth.requests / 300, rel=COUNT_TOL)
    assert m.samples is None and m.numerator is None


def test_gauge_is_the_value_at_the_evaluation_time(source: PrometheusSource) -> None:
    at = T0 + 1800
    m = source.measure(GAUGE, Track.CANARY, 300, ctx("healthy", at))
    assert_ok(m)
    assert m.value == pytest.approx(2e8 + 1000 * 1800)  # the sample at T0+1800 exactly
    assert m.samples is None


# ------------------------------------------------------------------------- statuses


def test_no_traffic_is_no_data(source: PrometheusSource) -> None:
    m = source.measure(RATIO, Track.CANARY, 300, ctx("idle", T0 + 1800))
    assert m.status == MeasurementStatus.NO_DATA
    assert m.value is None and m.denominator == 0
    assert "no traffic" in m.message


def test_no_series_at_all_is_no_data(source: PrometheusSource) -> None:
    before = source.measure(RATIO, Track.CANARY, 300, ctx("healthy", T0 - HOUR))
    unknown = source.measure(RATIO, Track.CANARY, 300, ctx("nosuchservice", T0 + 1800))
    for m in (before, unknown):
        assert m.status == MeasurementStatus.NO_DATA
        assert m.message == "the total returned no series"


def test_a_nan_denominator_is_no_data(source: PrometheusSource) -> None:
    idle = 'sum(rate(http_requests_total{service="idle",track="{{track}}"}[{{window}}]))'
    nan_total = slo({"ratio": {"bad": BAD, "total": f"{idle} / {idle}"}})
    nan_rate = slo({"throughput": {"query": f"{idle} / {idle}", "min": 1}}, None)
    for s in (nan_total, nan_rate):
        m = source.measure(s, Track.CANARY, 300, ctx("healthy", T0 + 1800))
        assert m.status == MeasurementStatus.NO_DATA, m
        assert "NaN" in m.message


def test_a_missing_numerator_with_traffic_is_zero_errors(
    source: PrometheusSource, prometheus: PrometheusServer
) -> None:
    at = T0 + 1800
    bad = 'http_requests_total{service="noerrors",code=~"5.."}'
    assert prometheus.query(bad, at) == []  # the error series never existed
    m = source.measure(RATIO, Track.CANARY, 300, ctx("noerrors", at))
    assert_ok(m)
    assert (m.value, m.numerator) == (0.0, 0.0)
    assert m.denominator == pytest.approx(20 * 300, rel=COUNT_TOL)


def test_several_series_where_one_is_expected_is_ambiguous(source: PrometheusSource) -> None:
    no_sum = slo({"ratio": {"bad": BAD, "total": TOTAL.removeprefix("sum")}})
    m = source.measure(no_sum, Track.CANARY, 300, ctx("healthy", T0 + 1800))
    assert m.status == MeasurementStatus.AMBIGUOUS
    assert m.message.startswith("the total returned 2 series where one was expected")
    assert 'code="200"' in m.message and "sum(" in m.message


def test_series_that_stopped_reporting_are_stale_then_no_data(source: PrometheusSource) -> None:
    vanished_at = T0 + HOUR  # the last sample is at T0 + HOUR - 15
    fresh = source.measure(RATIO, Track.CANARY, 300, ctx("vanish", vanished_at + 60))
    assert_ok(fresh)
    stale = source.measure(RATIO, Track.CANARY, 300, ctx("vanish", vanished_at + 200))
    assert stale.status == MeasurementStatus.STALE
    assert stale.message == "no sample in the last 180s: the series stopped reporting"
    gone = source.measure(RATIO, Track.CANARY, 300, ctx("vanish", vanished_at + 400))
    assert gone.status == MeasurementStatus.NO_DATA


def test_a_short_window_has_no_separate_staleness_check(
    source: PrometheusSource, registry: CollectorRegistry
) -> None:
    m = source.measure(RATIO, Track.CANARY, 120, ctx("healthy", T0 + 1800))
    assert_ok(m)
    assert queries_sent(registry, "ok") == 2  # total and bad; the window itself is fresh


def test_windows_measured_at_the_same_time_share_one_freshness_check(
    source: PrometheusSource, registry: CollectorRegistry
) -> None:
    for window in (300, 1800, 3600):
        assert_ok(source.measure(RATIO, Track.CANARY, window, ctx("healthy", T0 + HOUR)))
    assert queries_sent(registry, "ok") == 3 * 2 + 1  # total and bad each; one freshness
    assert_ok(source.measure(RATIO, Track.CANARY, 300, ctx("healthy", T0 + HOUR + 60)))
    assert queries_sent(registry, "ok") == 7 + 3  # a new evaluation time checks again


def test_a_counter_reset_mid_window_is_no_error_spike(source: PrometheusSource) -> None:
    trace = TRACES["resets"]
    for at in (T0 + 3000 + 150, T0 + 3300 + 15, T0 + 3300 + 285):  # resets at 3000 and 3300
        truth = trace.truth("canary", at - 300, at)
        m = source.measure(RATIO, Track.CANARY, 300, ctx("resets", at))
        assert_ok(m)
        assert m.value == near(truth.error_ratio)
        assert m.value == pytest.approx(0.01, rel=0.1)
        assert m.denominator == pytest.approx(truth.requests, rel=COUNT_TOL)


def test_a_handful_of_requests_is_ok_with_few_samples(source: PrometheusSource) -> None:
    at = T0 + 1800
    truth = TRACES["trickle"].truth("canary", at - 300, at)
    m = source.measure(RATIO, Track.CANARY, 300, ctx("trickle", at))
    assert_ok(m)
    assert truth.requests == 15
    assert m.samples == pytest.approx(15, abs=1.5)  # engine: TooFewSamples below minSamples
    assert m.value == 0.0


# The same statuses for every SLI kind, in one table.
NO_SUM = {
    "ratio": slo({"ratio": {"bad": BAD, "total": TOTAL.removeprefix("sum")}}),
    "throughput": slo({"throughput": {"query": TOTAL.removeprefix("sum"), "min": 1}}, None),
    "gauge": slo({"gauge": {"query": 'process_resident_memory_bytes{service="{{service}}"}',
                            "max": 1e9}}, None),
}
VANISHED = T0 + HOUR


@pytest.mark.parametrize(
    ("kind", "service", "at", "status"),
    [
        *[(k, "nosuchservice", T0 + 1800, MeasurementStatus.NO_DATA) for k in KINDS],
        *[(k, "healthy", T0 - HOUR, MeasurementStatus.NO_DATA) for k in KINDS],
        *[(k, "vanish", VANISHED + 60, MeasurementStatus.OK) for k in KINDS],
        *[(k, "vanish", VANISHED + 200, MeasurementStatus.STALE)
          for k in ("ratio", "latency", "throughput", "gauge_over_window")],
        # an instant gauge keeps its last sample for Prometheus's 5m lookback, then vanishes
        ("gauge", "vanish", VANISHED + 200, MeasurementStatus.OK),
        ("gauge", "vanish", VANISHED + 301, MeasurementStatus.NO_DATA),
        *[(k, "vanish", VANISHED + 400, MeasurementStatus.NO_DATA) for k in KINDS],
        *[(f"{k}_no_sum", "healthy", T0 + 1800, MeasurementStatus.AMBIGUOUS) for k in NO_SUM],
    ],
)
def test_each_status_for_each_sli_kind(
    source: PrometheusSource, kind: str, service: str, at: float, status: MeasurementStatus
) -> None:
    table = {**KINDS, "gauge_over_window": GAUGE_OVER_WINDOW,
             **{f"{k}_no_sum": v for k, v in NO_SUM.items()}}
    m = source.measure(table[kind], Track.CANARY, 300, ctx(service, at))
    assert m.status == status, m.message
    assert (m.value is not None) == (status == MeasurementStatus.OK)
    if status == MeasurementStatus.OK and kind in ("ratio", "latency"):
        # The series stopped 60 s ago: the ratio of the 225 s that have samples is the
        # window's (steady traffic). A rate is not: Prometheus divides by the whole window
        # (15.5/s instead of 20/s here), one reason stopped series must be flagged stale.
        truth = TRACES[service].truth("canary", at - 300, at)
        expected = truth.error_ratio if kind == "ratio" else truth.slow_ratio(0.2)
        assert m.value == near(expected)


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_sli_kind_is_an_error_when_prometheus_is_unreachable(
    kind: str, registry: CollectorRegistry
) -> None:
    with PrometheusSource(f"http://127.0.0.1:{free_port()}", registry=registry) as s:
        m = s.measure(KINDS[kind], Track.CANARY, 300, ctx("healthy", T0 + 1800))
    assert m.status == MeasurementStatus.ERROR
    assert m.message.endswith("connection refused")
    assert m.value is None


# ------------------------------------------------------------------------- errors


def test_a_bad_query_is_an_error_naming_the_problem(source: PrometheusSource) -> None:
    broken = slo({"ratio": {"bad": BAD, "total": TOTAL.replace("[{{window}}]", "[{{window}}")}})
    m = source.measure(broken, Track.CANARY, 300, ctx("healthy", T0 + 1800))
    assert m.status == MeasurementStatus.ERROR
    assert m.message.startswith("HTTP 400 from http://127.0.0.1:")
    assert "bad_data" in m.message and "parse error" in m.message


def test_a_wrong_path_is_an_error_saying_it_is_not_prometheus(
    prometheus: PrometheusServer, registry: CollectorRegistry
) -> None:
    with PrometheusSource(prometheus.url + "/nothing", registry=registry) as s:
        m = s.measure(RATIO, Track.CANARY, 300, ctx("healthy", T0 + 1800))
    assert m.status == MeasurementStatus.ERROR
    assert m.message.startswith("HTTP 4xx from http://127.0.0.1:")
    assert "not a Prometheus API" in m.message


def test_nothing_listening_is_an_error_without_credentials(registry: CollectorRegistry) -> None:
    url = f"http://admin:hunter2@127.0.0.1:{free_port()}"
    started = time.monotonic()
    with PrometheusSource(url, registry=registry, headers={"Authorization": "Bearer t0k3n"}) as s:
        m = s.measure(RATIO, Track.CANARY, 300, ctx("healthy", T0 + 1800))
    assert m.status == MeasurementStatus.ERROR
    assert re.fullmatch(r"cannot reach http://127\.0\.0\.1:\d+: connection refused", m.message)
    assert "hunter2" not in repr(m) and "t0k3n" not in repr(m)
    # three connection attempts and 0.4 s of backoff (the client's default retry: 6 s)
    assert time.monotonic() - started < 5
    assert queries_sent(registry, "error") == 1  # stops at the first failed query


def test_prometheus_stopped_is_an_error(
    prometheus_backfilled: BackfilledFactory, registry: CollectorRegistry
) -> None:
    trace = Trace("checkout", T0, 900, {"canary": TrackShape(rate=5)})
    prom = prometheus_backfilled(trace.series())
    with PrometheusSource(prom.url, registry=registry) as s:
        before = s.measure(RATIO, Track.CANARY, 300, ctx("checkout", T0 + 600))
        prom.server.stop()
        after_stop = s.measure(RATIO, Track.CANARY, 300, ctx("checkout", T0 + 600))
    assert_ok(before)
    assert after_stop.status == MeasurementStatus.ERROR
    assert after_stop.message.endswith("connection refused")


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        sock.close()


def test_a_server_that_never_answers_is_a_timeout_error(
    silent_server: str, registry: CollectorRegistry
) -> None:
    started = time.monotonic()
    with PrometheusSource(silent_server, timeout_seconds=0.5, registry=registry) as s:
        m = s.measure(RATIO, Track.CANARY, 300, ctx("healthy", T0 + 1800))
    elapsed = time.monotonic() - started
    assert m.status == MeasurementStatus.ERROR
    assert re.fullmatch(r"no answer from http://127\.0\.0\.1:\d+ within 1\.5s", m.message)
    assert 1.4 < elapsed < 5.0  # one read timeout, not retried (by default: 4 and 6 s backoff)
    assert registry.get_sample_value("rolloutctl_prometheus_query_seconds_count") == 1


def _prometheus_query_requests(prometheus: PrometheusServer) -> float:
    with urllib.request.urlopen(prometheus.url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("prometheus_http_requests_total{")
        and 'handler="/api/v1/query"' in line
    )


@pytest.mark.parametrize(
    "service", ['a"} or vector(1) #', 'healthy",code=~".*', "healthy\n"]
)
def test_injection_in_template_values_is_refused_before_any_query(
    source: PrometheusSource, prometheus: PrometheusServer, registry: CollectorRegistry,
    service: str,
) -> None:
    sent_before = _prometheus_query_requests(prometheus)
    for s in (RATIO, LATENCY, THROUGHPUT, GAUGE):
        m = source.measure(s, Track.CANARY, 300, ctx(service, T0 + 1800))
        assert m.status == MeasurementStatus.ERROR
        assert m.message.startswith("not queried: refusing to substitute service=")
    assert _prometheus_query_requests(prometheus) == sent_before
    assert registry.get_sample_value("rolloutctl_prometheus_query_seconds_count") == 0


def test_every_query_is_counted_by_outcome(
    source: PrometheusSource, registry: CollectorRegistry
) -> None:
    source.measure(RATIO, Track.CANARY, 300, ctx("healthy", T0 + 1800))  # total, fresh, bad
    source.measure(RATIO, Track.CANARY, 300, ctx("idle", T0 - HOUR))  # total: empty
    assert queries_sent(registry, "ok") == 3
    assert queries_sent(registry, "empty") == 1
    assert registry.get_sample_value("rolloutctl_prometheus_query_seconds_count") == 4


# ------------------------------------------------------------------------- budget


def test_budget_is_a_ratio_of_sums_over_both_tracks(source: PrometheusSource) -> None:
    at = T0 + 2 * HOUR
    trace = TRACES["errors"]
    canary = trace.truth("canary", at - 2 * HOUR, at)
    stable = trace.truth("stable", at - 2 * HOUR, at)
    m = source.measure_budget(RATIO, ctx("errors", at), 2 * HOUR)
    assert_ok(m)
    bad, total = canary.errors + stable.errors, canary.requests + stable.requests
    assert m.denominator == pytest.approx(total, rel=COUNT_TOL)
    assert m.numerator == pytest.approx(bad, rel=COUNT_TOL)
    assert m.value == near(bad / total)
    average_of_ratios = (canary.error_ratio + stable.error_ratio) / 2
    # the canary's 10 % of the traffic weighs 10 %, not half
    assert m.value is not None and m.value < average_of_ratios / 2
    assert "[7200s]" in m.query and 'track="canary"' in m.query and 'track="stable"' in m.query


def test_budget_of_a_track_without_traffic_counts_the_other(source: PrometheusSource) -> None:
    at = T0 + 2 * HOUR
    truth = TRACES["slow"].truth("canary", at - HOUR, at)  # "slow" has no stable track
    m = source.measure_budget(LATENCY, ctx("slow", at), HOUR)
    assert_ok(m)
    assert m.value == near(truth.slow_ratio(0.2))


def test_budget_with_an_le_the_histogram_lacks_is_no_data_not_zero_traffic(
    source: PrometheusSource,
) -> None:
    wrong = slo({"latency": {"histogram": "http_request_duration_seconds", "le": "0.20"}}, 95)
    m = source.measure_budget(wrong, ctx("healthy", T0 + 2 * HOUR), HOUR)
    assert m.status == MeasurementStatus.NO_DATA
    assert "no bucket with this le" in m.message


def test_budget_without_any_traffic_is_no_data(source: PrometheusSource) -> None:
    m = source.measure_budget(RATIO, ctx("idle", T0 + HOUR), HOUR)
    assert m.status == MeasurementStatus.NO_DATA


def test_openmetrics_of_a_trace_backfills_with_promtool(tmp_path: Path) -> None:
    trace = TRACES["resets"]
    text = trace.openmetrics()
    assert text.endswith("# EOF\n")
    assert "# TYPE http_requests counter" in text
    backfill(trace.series(), tmp_path / "data", tmp_path / "trace.om.txt")
    assert any((tmp_path / "data").iterdir())
