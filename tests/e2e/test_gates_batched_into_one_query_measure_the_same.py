"""One request per analysis pass measures exactly what one request per query did.

``PrometheusSource.measure_all`` sends every instant query an analysis pass needs as one
(each part labelled with ``label_replace`` and joined with ``or``); the scale benchmark
found the per-query requests to be most of the controller's CPU (about 2 ms each, 14 to 17
per pass with the default plan's gates). Against a real Prometheus on backfilled traces,
every measurement from the batch equals the one ``measure`` returns alone — values,
evidence, and the statuses: ok, no data, stale, ambiguous, an unsafe template value, a
template Prometheus rejects, a scalar template — and a pass costs one request when every
part is an instant vector.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from controller.adapters.metrics.analysis import measure_gates
from controller.adapters.metrics.prometheus import PrometheusSource
from controller.api.plan import RolloutPlan
from controller.api.policy import SLO, SLOPolicy
from controller.engine.measurements import MeasurementStatus, Track
from controller.ports import QueryContext
from tests.harness.fixtures import unavailable
from tests.harness.prometheus import PrometheusError, start_backfilled
from tests.harness.traces import Trace, TrackShape, series_of

pytestmark = pytest.mark.prometheus

T0 = 1_700_000_000
HOUR = 3600
AT = T0 + HOUR + 600  # "vanish" stopped reporting at T0 + 1 h

TRACES = [
    Trace("healthy", T0, 2 * HOUR, {
        "canary": TrackShape(rate=20, error_ratio=0.002, noise=0.2, memory_bytes=2e8),
        "stable": TrackShape(rate=180, error_ratio=0.001, noise=0.2, memory_bytes=3e8),
    }, seed=1),
    Trace("vanish", T0, 2 * HOUR, {
        "canary": TrackShape(rate=20, error_ratio=0.001, absent=[(HOUR, float("inf"))])}),
    Trace("noerrors", T0, 2 * HOUR, {
        "canary": TrackShape(rate=20, error_ratio=0.0, lazy_error_series=True)}),
    Trace("idle", T0, 2 * HOUR, {"canary": TrackShape(rate=0.0)}),
]

SEL = 'service="{{service}}",track="{{track}}"'
BAD = f'sum(rate(http_requests_total{{{SEL},code=~"5.."}}[{{{{window}}}}]))'
TOTAL = f"sum(rate(http_requests_total{{{SEL}}}[{{{{window}}}}]))"


def slo(name: str, sli: dict[str, object], objective: float | None = 99.9) -> SLO:
    return SLO.model_validate({"name": name, "objective": objective, "sli": sli})


RATIO = slo("ratio", {"ratio": {"bad": BAD, "total": TOTAL}})
LATENCY = slo("latency", {"latency": {"histogram": "http_request_duration_seconds",
                                      "le": "0.2"}}, 95)
THROUGHPUT = slo("throughput", {"throughput": {"query": TOTAL, "min": 10}}, None)
GAUGE = slo("gauge", {"gauge": {
    "query": f"max(max_over_time(process_resident_memory_bytes{{{SEL}}}[{{{{window}}}}]))",
    "max": 1e9}}, None)
AMBIGUOUS = slo("ambiguous", {"ratio": {  # no sum(): one series per code
    "bad": BAD, "total": f"rate(http_requests_total{{{SEL}}}[{{{{window}}}}])"}})
REJECTED = slo("rejected", {"throughput": {  # Prometheus answers 400 (parse error)
    "query": f"sum(rate(http_requests_total{{{SEL}}}[{{{{window}}}}])", "min": 1}}, None)
SCALAR = slo("scalar", {"throughput": {"query": f"scalar({TOTAL})", "min": 1}}, None)

WELL_FORMED = [RATIO, LATENCY, THROUGHPUT, GAUGE, AMBIGUOUS]


def ctx(service: str) -> QueryContext:
    return QueryContext(service=service, namespace="shop", revision="r1",
                        at=datetime.fromtimestamp(AT, UTC))


def requests_sent(registry: CollectorRegistry) -> float:
    return sum(registry.get_sample_value("rolloutctl_prometheus_queries_total",
                                         {"status": s}) or 0.0
               for s in ("ok", "empty", "ambiguous", "error"))


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        server = start_backfilled(series_of(TRACES), tmp_path_factory.mktemp("prom-batch"))
    except PrometheusError as exc:
        unavailable(f"cannot start a backfilled Prometheus: {exc}")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.mark.parametrize("service", ["healthy", "vanish", "noerrors", "idle"])
def test_every_measurement_of_a_batch_equals_the_one_measured_alone(
    prometheus_url: str, service: str
) -> None:
    wanted = [(s, track, seconds) for s in WELL_FORMED for track in (Track.CANARY, Track.STABLE)
              for seconds in (300.0, 3600.0)]
    alone_registry, batch_registry = CollectorRegistry(), CollectorRegistry()
    with PrometheusSource(prometheus_url, registry=alone_registry) as alone, \
            PrometheusSource(prometheus_url, registry=batch_registry) as batched:
        expected = [alone.measure(s, t, w, ctx(service)) for s, t, w in wanted]
        got = batched.measure_all(wanted, ctx(service))
    assert got == expected
    assert requests_sent(batch_registry) == 1
    assert requests_sent(alone_registry) > 20
    statuses = {m.status for m in got}
    if service == "healthy":
        assert MeasurementStatus.OK in statuses and MeasurementStatus.AMBIGUOUS in statuses
    if service == "vanish":
        assert MeasurementStatus.STALE in statuses
    if service == "idle":
        assert MeasurementStatus.NO_DATA in statuses


def test_a_part_prometheus_cannot_batch_sends_the_parts_alone_with_the_same_results(
    prometheus_url: str,
) -> None:
    unsafe = QueryContext(service='a"} or vector(1) #', namespace="shop", revision="r1",
                          at=datetime.fromtimestamp(AT, UTC))
    for bad in (REJECTED, SCALAR):
        wanted = [(RATIO, Track.CANARY, 300.0), (bad, Track.CANARY, 300.0),
                  (LATENCY, Track.CANARY, 3600.0)]
        with PrometheusSource(prometheus_url, registry=CollectorRegistry()) as alone, \
                PrometheusSource(prometheus_url, registry=CollectorRegistry()) as batched:
            expected = [alone.measure(s, t, w, ctx("healthy")) for s, t, w in wanted]
            assert batched.measure_all(wanted, ctx("healthy")) == expected
            # an unsafe template value is refused before any query, batched or not
            assert batched.measure_all(wanted[:1], unsafe) == [
                alone.measure(RATIO, Track.CANARY, 300.0, unsafe)]
    assert expected[1].status == MeasurementStatus.OK  # the scalar alone is a fine value


def test_an_analysis_pass_of_the_default_plan_is_one_request(prometheus_url: str) -> None:
    policy = SLOPolicy.model_validate({"metadata": {"name": "platform"}, "spec": {"slos": [
        {"name": "api_availability", "objective": 99.9, "window": "30d",
         "sli": {"ratio": {"bad": BAD, "total": TOTAL}},
         "burnRateAlerts": [
             {"severity": "critical", "factor": 14.4, "long": "1h", "short": "5m"},
             {"severity": "critical", "factor": 6, "long": "6h", "short": "30m"}]},
        {"name": "auth_latency", "objective": 95, "window": "7d",
         "sli": {"latency": {"histogram": "http_request_duration_seconds", "le": "0.2"}},
         "burnRateAlerts": [
             {"severity": "critical", "factor": 3.36, "long": "1h", "short": "5m"}]}]}})
    plan = RolloutPlan.model_validate({
        "metadata": {"name": "healthy", "namespace": "shop"},
        "spec": {"target": {"stable": {"name": "healthy"}, "canary": {"name": "c"}},
                 "traffic": {}, "steps": [{"weight": 10, "hold": "1h"}],
                 "sloPolicyRef": {"name": "platform"},
                 "gates": [{"slo": "api_availability"}, {"slo": "auth_latency"},
                           {"canaryVsStable": {"slo": "api_availability", "maxRatio": 2}}]}})
    alone_registry, batch_registry = CollectorRegistry(), CollectorRegistry()

    class Alone:  # the same source without measure_all: one request per query
        def __init__(self, source: PrometheusSource) -> None:
            self.source = source

        def measure(self, *args: object) -> object:
            return self.source.measure(*args)  # type: ignore[arg-type]

        def measure_budget(self, *args: object) -> object:
            return self.source.measure_budget(*args)  # type: ignore[arg-type]

    with PrometheusSource(prometheus_url, registry=alone_registry) as alone, \
            PrometheusSource(prometheus_url, registry=batch_registry) as batched:
        expected = measure_gates(Alone(alone), plan, policy, ctx("healthy"),  # type: ignore[arg-type]
                                 300.0, 2 * HOUR)
        got = measure_gates(batched, plan, policy, ctx("healthy"), 300.0, 2 * HOUR)
    assert got == expected
    assert all(g.canary.status == MeasurementStatus.OK for g in got)
    # alone: availability over 5 m, 1 h, 2 h (6 h clipped to the run) and 30 m, bad and
    # total, plus its freshness check (9); login latency over 5 m and 1 h plus freshness (5);
    # stable availability over 5 m plus freshness (3); the recent window (30 s) of both
    # canary SLOs for the fast-burn episode rule (4)
    assert requests_sent(alone_registry) == 21
    assert requests_sent(batch_registry) == 1
