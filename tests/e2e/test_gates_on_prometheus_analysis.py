"""One analysis pass end to end: ``measure_gates`` over a real backfilled Prometheus and a
real HTTP probe, then the engine's verdicts on those measurements, as status would show.

Burn-rate windows are clipped to the run's start and each one measures the trace's ground
truth over exactly that window (tolerance: ratios 5 % relative or 0.0005 absolute).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from controller.adapters.metrics.analysis import measure_gates, probe_specs
from controller.adapters.metrics.probe import ProbeRegistry
from controller.adapters.metrics.prometheus import PrometheusSource
from controller.api.plan import GateReason, RolloutPlan, Verdict
from controller.api.policy import SLOPolicy
from controller.engine import verdicts
from controller.engine.measurements import GateMeasurement, MeasurementStatus
from controller.ports import QueryContext
from tests.harness.fakes import FakeClock
from tests.harness.fixtures import BackfilledFactory
from tests.harness.traces import Trace, TrackShape, after, series_of

pytestmark = pytest.mark.prometheus

T0 = 1_700_000_000
HOUR = 3600
BAD = ('sum(rate(http_requests_total{service="{{service}}",track="{{track}}",code=~"5.."}'
       "[{{window}}]))")
TOTAL = 'sum(rate(http_requests_total{service="{{service}}",track="{{track}}"}[{{window}}]))'

HEALTHY = Trace("healthy", T0, 2 * HOUR, {
    "canary": TrackShape(rate=20, error_ratio=0.0005, noise=0.2),
    "stable": TrackShape(rate=180, error_ratio=0.0005, noise=0.2),
}, seed=11)
# The canary starts failing 5 % of requests one hour in.
BROKEN = Trace("broken", T0, 2 * HOUR, {
    "canary": TrackShape(rate=20, error_ratio=after(HOUR, 0.05, 0.0005), noise=0.2),
    "stable": TrackShape(rate=180, error_ratio=0.0005, noise=0.2),
}, seed=12)

POLICY = SLOPolicy.model_validate({"metadata": {"name": "platform"}, "spec": {"slos": [{
    "name": "api_availability", "objective": 99.9, "window": "30d",
    "sli": {"ratio": {"bad": BAD, "total": TOTAL}},
    "burnRateAlerts": [
        {"severity": "critical", "factor": 14.4, "long": "1h", "short": "5m"},
        {"severity": "critical", "factor": 6, "long": "6h", "short": "30m"},
    ],
}]}})


def near(expected: float) -> Any:
    return pytest.approx(expected, rel=0.05, abs=0.0005)


class Health:
    """The canary's health endpoint: answers ``status`` (the test flips it)."""

    def __init__(self) -> None:
        self.status = 200
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(health.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/healthz"


@pytest.fixture
def health() -> Iterator[Health]:
    h = Health()
    try:
        yield h
    finally:
        h.server.shutdown()
        h.server.server_close()


def plan(probe_url: str) -> RolloutPlan:
    return RolloutPlan.model_validate({
        "metadata": {"name": "checkout", "namespace": "shop"},
        "spec": {
            "target": {"stable": {"name": "checkout"}, "canary": {"name": "checkout-canary"}},
            "traffic": {"replicas": {}},
            "sloPolicyRef": {"name": "platform"},
            "gates": [
                {"slo": "api_availability"},
                {"canaryVsStable": {"slo": "api_availability", "maxRatio": 2}},
                {"probe": {"url": probe_url, "interval": "1s", "timeout": "1s"}},
            ],
            "analysis": {"window": "5m", "minSamples": 500},
        },
    })


def judge_all(p: RolloutPlan, ms: list[GateMeasurement], at: float) -> dict[str, Any]:
    now = datetime.fromtimestamp(at, UTC)
    out = {}
    for gate, m in zip(p.spec.gates, ms, strict=True):
        slo = POLICY.spec.slo(gate.slo_name) if gate.slo_name else None
        out[gate.name] = verdicts.judge(gate, slo, m, None, p.spec.analysis, now)
    return out


def wait_for_probes(registry: ProbeRegistry, p: RolloutPlan, ctx: QueryContext,
                    count: int) -> None:
    deadline = time.monotonic() + 10
    for spec in probe_specs(p, POLICY, ctx):
        prober = registry.ensure(spec)
        while len(prober.results()) < count:
            assert time.monotonic() < deadline, "the prober did not run"
            time.sleep(0.02)


def test_one_pass_measures_every_gate_and_the_engine_judges_it(
    prometheus_backfilled: BackfilledFactory, health: Health
) -> None:
    prom = prometheus_backfilled(series_of([HEALTHY, BROKEN]))
    p = plan(health.url)
    at = T0 + HOUR + 900  # 15 minutes into the canary's failure
    run_started = T0 + HOUR - 1500  # the run is 40 minutes old
    # Probes are live; their clock reads the evaluation time, so the results land in the
    # same window as the backfilled history.
    registry = ProbeRegistry(clock=FakeClock(datetime.fromtimestamp(at, UTC), monotonic=at))
    try:
        with PrometheusSource(prom.url) as source:
            results = {}
            for trace in (HEALTHY, BROKEN):
                ctx = QueryContext(trace.service, "shop", "r1", datetime.fromtimestamp(at, UTC))
                health.status = 200 if trace is HEALTHY else 503
                registry.stop_all()  # fresh probe results for this service
                wait_for_probes(registry, p, ctx, 3)  # 1 s apart: 1 s is the least interval
                ms = measure_gates(source, p, POLICY, ctx, window_seconds=300,
                                   run_seconds=at - run_started, probes=registry)
                results[trace.service] = (ms, judge_all(p, ms, at))
    finally:
        registry.stop_all()

    # What was measured: the evaluation window and the burn windows clipped to the run.
    ms, _ = results["broken"]
    slo_gate, versus, probe = ms
    assert slo_gate.window_seconds == 300
    windows = [(b.long_seconds, b.short_seconds) for b in slo_gate.burn_rates]
    assert windows == [(2400, 300), (2400, 1800)]  # 1h and 6h clipped to the 40 min run
    for b in slo_gate.burn_rates:
        for seconds, m in ((b.long_seconds, b.long), (b.short_seconds, b.short)):
            truth = BROKEN.truth("canary", at - seconds, at)
            assert m.status == MeasurementStatus.OK
            assert m.value == near(truth.error_ratio)
    assert versus.stable is not None
    assert versus.stable.value == near(BROKEN.truth("stable", at - 300, at).error_ratio)
    assert probe.canary.status == MeasurementStatus.OK and probe.canary.value == 1.0

    # What status would say.
    _, healthy = results["healthy"]
    assert {name: g.verdict for name, g in healthy.items()} == {
        "api_availability": Verdict.PASS,
        "canaryVsStable:api_availability": Verdict.PASS,
        "probe:probe": Verdict.PASS,
    }
    _, broken = results["broken"]
    fast = broken["api_availability"]
    assert (fast.verdict, fast.reason) == (Verdict.FAIL, GateReason.FAST_BURN)
    assert fast.burn_rate is not None and fast.burn_rate > 14.4
    assert fast.query is not None and 'track="canary"' in fast.query
    assert broken["canaryVsStable:api_availability"].reason == GateReason.WORSE_THAN_STABLE
    assert broken["probe:probe"].verdict == Verdict.FAIL


def test_prometheus_down_is_inconclusive_for_every_gate(
    prometheus_backfilled: BackfilledFactory,
) -> None:
    prom = prometheus_backfilled(HEALTHY.series())
    p = plan("http://127.0.0.1:9/healthz")
    at = T0 + HOUR
    ctx = QueryContext("healthy", "shop", "r1", datetime.fromtimestamp(at, UTC))
    prom.server.stop()
    with PrometheusSource(prom.url) as source:
        ms = measure_gates(source, p, POLICY, ctx, 300, 3000)  # no probe runner either
    judged = judge_all(p, ms, at)
    assert {name: (g.verdict, g.reason) for name, g in judged.items()} == {
        "api_availability": (Verdict.INCONCLUSIVE, GateReason.PROMETHEUS_ERROR),
        "canaryVsStable:api_availability": (Verdict.INCONCLUSIVE, GateReason.PROMETHEUS_ERROR),
        "probe:probe": (Verdict.INCONCLUSIVE, GateReason.PROMETHEUS_ERROR),
    }
    assert "connection refused" in judged["api_availability"].message
