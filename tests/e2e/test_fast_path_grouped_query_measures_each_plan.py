"""The fast path's grouped queries against a real Prometheus: one request measures every
plan, and each plan's measurement equals the one its own query gives."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from controller.adapters.metrics.fastpath import FastTarget, measure_fast
from controller.adapters.metrics.prometheus import PrometheusSource
from controller.api.plan import Phase, RolloutPlan, RolloutPlanStatus
from controller.api.policy import SLOPolicy
from controller.engine.measurements import Track
from controller.ports import QueryContext
from tests.harness.fixtures import unavailable
from tests.harness.prometheus import PrometheusError, start_backfilled
from tests.harness.traces import Trace, TrackShape, series_of

pytestmark = pytest.mark.prometheus

T0 = 1_700_000_000
HOUR = 3600
AT = T0 + HOUR + 600
SERVICES = {
    "healthy": TrackShape(rate=20, error_ratio=0.002, noise=0.2),
    "failing": TrackShape(rate=20, error_ratio=0.05, noise=0.2),
    "noerrors": TrackShape(rate=20, error_ratio=0.0, lazy_error_series=True),
    "idle": TrackShape(rate=0.0),
    "vanish": TrackShape(rate=20, error_ratio=0.01, absent=[(HOUR, float("inf"))]),
}
SEL = 'service="{{service}}",track="{{track}}"'
BAD = f'sum(rate(http_requests_total{{{SEL},code=~"5.."}}[{{{{window}}}}]))'
TOTAL = f"sum(rate(http_requests_total{{{SEL}}}[{{{{window}}}}]))"


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    traces = [Trace(name, T0, 2 * HOUR, {"canary": shape,
                                         "stable": TrackShape(rate=50, error_ratio=0.001)},
                    seed=3) for name, shape in SERVICES.items()]
    try:
        server = start_backfilled(series_of(traces), tmp_path_factory.mktemp("prom-fast"))
    except PrometheusError as exc:
        unavailable(f"cannot start a backfilled Prometheus: {exc}")
    try:
        yield server.url
    finally:
        server.stop()


def policy() -> SLOPolicy:
    return SLOPolicy.model_validate({"metadata": {"name": "platform", "namespace": "shop"},
                                     "spec": {"slos": [
        {"name": "api_availability", "objective": 99.9,
         "sli": {"ratio": {"bad": BAD, "total": TOTAL}},
         "burnRateAlerts": [{"severity": "critical", "factor": 14.4, "long": "1h",
                             "short": "5m"}]},
        {"name": "auth_latency", "objective": 95,
         "sli": {"latency": {"histogram": "http_request_duration_seconds", "le": "0.2"}},
         "burnRateAlerts": [{"severity": "critical", "factor": 3.36, "long": "1h",
                             "short": "5m"}]}]}})


def plan(service: str) -> RolloutPlan:
    p = RolloutPlan.model_validate({
        "metadata": {"name": service, "namespace": "shop"},
        "spec": {"service": service,
                 "target": {"stable": {"name": service}, "canary": {"name": f"{service}-c"}},
                 "traffic": {"replicas": {}}, "sloPolicyRef": {"name": "platform"},
                 "gates": [{"slo": "api_availability"}, {"slo": "auth_latency"}]}})
    return p.model_copy(update={"status": RolloutPlanStatus(
        phase=Phase.PROGRESSING, run=1, revision="r1", current_step=0, canary_weight=10,
        run_started_at=datetime.fromtimestamp(T0, UTC),
        step_started_at=datetime.fromtimestamp(T0, UTC))})


def test_one_request_measures_every_plan_as_its_own_queries_would(prometheus_url: str) -> None:
    pol = policy()
    at = datetime.fromtimestamp(AT, UTC)
    targets = [FastTarget(f"shop/{s}", plan(s), pol) for s in SERVICES]
    registry = CollectorRegistry()
    with PrometheusSource(prometheus_url, registry=registry) as source:
        got = measure_fast(source, targets, at, 30)
        sent = sum(registry.get_sample_value("rolloutctl_prometheus_queries_total",
                                             {"status": s}) or 0.0
                   for s in ("ok", "empty", "ambiguous", "error"))
        assert sent == 1  # 5 plans, 2 SLOs, 2 windows: one request
        for s in SERVICES:
            ctx = QueryContext(service=s, namespace="shop", revision="r1", at=at)
            for m in got[f"shop/{s}"]:
                slo = pol.spec.slo(m.gate)
                assert slo is not None
                windows = [(m.recent, m.recent_seconds)] + [
                    (b.short, b.short_seconds) for b in m.burn_rates]
                for measured, seconds in windows:
                    assert measured is not None
                    alone = source.measure(slo, Track.CANARY, seconds, ctx)
                    assert measured.ok == alone.ok, (s, m.gate, seconds, measured, alone)
                    if alone.ok:
                        assert measured.value == pytest.approx(alone.value, abs=1e-9)
                        assert measured.samples == pytest.approx(alone.samples, rel=1e-9)
    failing = {m.gate: m for m in got["shop/failing"]}["api_availability"]
    assert failing.recent is not None and failing.recent.value == pytest.approx(0.05, rel=0.3)
    assert not {m.gate: m for m in got["shop/idle"]}["api_availability"].recent.ok  # type: ignore[union-attr]
