"""Which measurements one analysis pass asks for, per gate: tracks, windows, clipping.

The source here records what it is asked and answers a fixed measurement; what Prometheus
answers is proven in tests/e2e/test_gates_on_prometheus*.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from controller.adapters.metrics.analysis import NO_PROBES, measure_gates, probe_specs
from controller.adapters.metrics.probe import ProbeRegistry, ProbeSpec
from controller.api.plan import RolloutPlan
from controller.api.policy import SLO, SLOPolicy
from controller.engine.measurements import Measurement, MeasurementStatus, Track
from controller.ports import QueryContext

CTX = QueryContext(service="checkout", namespace="shop", revision="r7",
                   at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
TOTAL = 'sum(rate(http_requests_total{service="{{service}}",track="{{track}}"}[{{window}}]))'
OK = Measurement(MeasurementStatus.OK, value=0.001, samples=1000, numerator=1, denominator=1000)


class RecordingSource:
    def __init__(self) -> None:
        self.asked: list[tuple[str, Track, float]] = []

    def measure(self, slo: SLO, track: Track, window_seconds: float,
                ctx: QueryContext) -> Measurement:
        assert ctx == CTX
        self.asked.append((slo.name, track, window_seconds))
        return OK


def policy() -> SLOPolicy:
    return SLOPolicy.model_validate({"metadata": {"name": "platform"}, "spec": {"slos": [
        {"name": "availability", "objective": 99.9, "sli": {"ratio": {"bad": TOTAL,
                                                                      "total": TOTAL}},
         "burnRateAlerts": [
             {"severity": "critical", "factor": 14.4, "long": "1h", "short": "5m"},
             {"severity": "warning", "factor": 3, "long": "1d", "short": "2h"},
             {"severity": "critical", "factor": 6, "long": "6h", "short": "30m"},
         ]},
        {"name": "throughput", "sli": {"throughput": {"query": TOTAL, "min": 5}}},
        {"name": "health", "objective": 99, "sli": {"probe": {
            "url": "http://{{service}}-{{track}}.{{namespace}}:8080/healthz",
            "interval": "5s"}}},
    ]}})


def plan(*gates: dict[str, Any]) -> RolloutPlan:
    return RolloutPlan.model_validate({
        "metadata": {"name": "checkout", "namespace": "shop"},
        "spec": {
            "target": {"stable": {"name": "checkout"}, "canary": {"name": "checkout-canary"}},
            "traffic": {"replicas": {}},
            "sloPolicyRef": {"name": "platform"},
            "gates": list(gates),
        },
    })


def test_an_slo_gate_measures_the_window_and_the_critical_burn_windows() -> None:
    source = RecordingSource()
    [m] = measure_gates(source, plan({"slo": "availability"}), policy(), CTX,
                        window_seconds=300, run_seconds=86400)
    assert m.gate == "availability" and m.window_seconds == 300
    assert m.canary == OK and m.stable is None
    assert [(b.alert, b.long_seconds, b.short_seconds) for b in m.burn_rates] == [
        (0, 3600, 300), (2, 21600, 1800),  # the warning alert (index 1) is not measured
    ]
    # the 5m short window equals the evaluation window: measured once; the recent window
    # (30 s by default) feeds the fast-burn episode rule
    assert m.recent == OK and m.recent_seconds == 30
    assert sorted(source.asked) == sorted([
        ("availability", Track.CANARY, 300), ("availability", Track.CANARY, 3600),
        ("availability", Track.CANARY, 21600), ("availability", Track.CANARY, 1800),
        ("availability", Track.CANARY, 30),
    ])


def test_burn_windows_longer_than_the_run_are_clipped_to_its_start() -> None:
    source = RecordingSource()
    [m] = measure_gates(source, plan({"slo": "availability"}), policy(), CTX,
                        window_seconds=300, run_seconds=1200)
    assert [(b.long_seconds, b.short_seconds) for b in m.burn_rates] == [(1200, 300),
                                                                         (1200, 1200)]
    assert sorted(w for _, _, w in source.asked) == [30, 300, 1200]


def test_the_evaluation_window_never_exceeds_the_run() -> None:
    source = RecordingSource()
    [m] = measure_gates(source, plan({"slo": "throughput"}), policy(), CTX,
                        window_seconds=300, run_seconds=45)
    assert m.window_seconds == 45 and m.burn_rates == ()
    assert source.asked == [("throughput", Track.CANARY, 45)]


def test_canary_vs_stable_measures_both_tracks_over_the_window() -> None:
    source = RecordingSource()
    [m] = measure_gates(source, plan({"canaryVsStable": {"slo": "availability"}}), policy(),
                        CTX, window_seconds=300, run_seconds=3600)
    assert m.gate == "canaryVsStable:availability"
    assert m.canary == OK and m.stable == OK and m.burn_rates == ()
    assert source.asked == [("availability", Track.CANARY, 300),
                            ("availability", Track.STABLE, 300)]


def test_gates_sharing_an_slo_share_its_measurements() -> None:
    source = RecordingSource()
    out = measure_gates(source, plan({"slo": "availability"},
                                     {"canaryVsStable": {"slo": "availability"}}),
                        policy(), CTX, window_seconds=300, run_seconds=600)
    assert [m.gate for m in out] == ["availability", "canaryVsStable:availability"]
    # canary 300, 600, 30 (recent); stable 300
    assert len(source.asked) == len(set(source.asked)) == 4


def test_an_slo_missing_from_the_policy_is_an_error_measurement() -> None:
    for pol, where in ((policy(), "SLOPolicy platform"), (None, "no SLOPolicy")):
        [m] = measure_gates(RecordingSource(), plan({"slo": "latency"}), pol, CTX, 300, 600)
        assert m.canary.status == MeasurementStatus.ERROR
        assert m.canary.message == f"SLO latency not found ({where})"


def test_probes_without_a_runner_are_errors_never_passes() -> None:
    source = RecordingSource()
    out = measure_gates(source, plan({"probe": {"url": "http://checkout-canary/healthz"}},
                                     {"slo": "health"}), policy(), CTX, 300, 600)
    assert [(m.gate, m.canary.status, m.canary.message) for m in out] == [
        ("probe:probe", MeasurementStatus.ERROR, NO_PROBES),
        ("health", MeasurementStatus.ERROR, NO_PROBES),
    ]
    assert source.asked == []


def test_probe_urls_are_rendered_per_track_and_listed_for_the_registry() -> None:
    p = plan({"canaryVsStable": {"slo": "health"}},
             {"probe": {"url": "http://{{service}}-canary.{{namespace}}/ready",
                        "interval": "2s", "timeout": "1s"}})
    assert probe_specs(p, policy(), CTX) == [
        ProbeSpec("http://checkout-canary.shop:8080/healthz", 5, 2),
        ProbeSpec("http://checkout-stable.shop:8080/healthz", 5, 2),
        ProbeSpec("http://checkout-canary.shop/ready", 2, 1),
    ]


def test_a_probe_url_with_an_unsafe_value_is_not_probed() -> None:
    registry = ProbeRegistry()
    bad = QueryContext(service="x/../admin", namespace="shop", revision="r", at=CTX.at)
    try:
        [m] = measure_gates(RecordingSource(), plan({"slo": "health"}), policy(), bad, 300, 600,
                            probes=registry)
        assert m.canary.status == MeasurementStatus.ERROR
        assert m.canary.message.startswith("not probed: refusing to substitute service=")
        assert registry.specs() == []
    finally:
        registry.stop_all()
