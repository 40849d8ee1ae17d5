"""`rolloutctl simulate` backtests plans against real Prometheus holding synthetic histories.

Each history is generated (tests.harness.traces), backfilled with promtool and served by
Debian's prometheus; the simulator runs the controller's engine over it on a virtual clock.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from controller.cli.main import app
from tests.harness.fixtures import BackfilledFactory
from tests.harness.traces import Trace, TrackShape, after, between

pytestmark = pytest.mark.prometheus

T0 = 1_764_000_000
MIN = 60
JUMP = 15 * MIN  # mid-way through the 25 % step (steps of 10 minutes, starting at T0)
BAD = ('sum(rate(http_requests_total{service="{{service}}",track="{{track}}",code=~"5.."}'
       "[{{window}}]))")
TOTAL = 'sum(rate(http_requests_total{service="{{service}}",track="{{track}}"}[{{window}}]))'


def policy(url: str, fast_burn: bool = True) -> dict[str, Any]:
    alerts = [{"severity": "critical", "factor": 14.4, "long": "1h", "short": "5m"}]
    return {
        "apiVersion": "rolloutctl.dev/v1alpha1", "kind": "SLOPolicy",
        "metadata": {"name": "platform", "namespace": "shop"},
        "spec": {
            "prometheus": {"url": url, "timeout": "5s"},
            "slos": [
                {"name": "api_availability", "objective": 99.9, "window": "30d",
                 "sli": {"ratio": {"bad": BAD, "total": TOTAL}},
                 "burnRateAlerts": alerts if fast_burn else []},
                {"name": "auth_latency", "objective": 95, "window": "7d",
                 "sli": {"latency": {"histogram": "http_request_duration_seconds",
                                     "le": "0.2"}}},
            ],
        },
    }


def plan(service: str, hold: str = "10m") -> dict[str, Any]:
    return {
        "apiVersion": "rolloutctl.dev/v1alpha1", "kind": "RolloutPlan",
        "metadata": {"name": service, "namespace": "shop"},
        "spec": {
            "service": service,
            "target": {"stable": {"name": service}, "canary": {"name": f"{service}-canary"}},
            "traffic": {"replicas": {}},
            "steps": [{"weight": w, "hold": hold} for w in (10, 25, 50, 100)],
            "sloPolicyRef": {"name": "platform"},
            "gates": [{"slo": "api_availability"}, {"slo": "auth_latency"}],
            "analysis": {"interval": "60s", "window": "2m", "rollbackAfter": "5m",
                         "minSamples": 500, "noDataTimeout": "15m"},
        },
    }


def backtest(tmp_path: Path, url: str, service: str, minutes: int = 60,
             fast_burn: bool = True, hold: str = "10m", fast_interval: str = "10"
             ) -> dict[str, Any]:
    plan_file = tmp_path / "plan.yaml"
    policy_file = tmp_path / "policy.yaml"
    plan_file.write_text(yaml.safe_dump(plan(service, hold)))
    policy_file.write_text(yaml.safe_dump(policy(url, fast_burn)))
    result = CliRunner().invoke(app, [
        "simulate", str(plan_file), "--policy", str(policy_file), "--start", str(T0),
        "--end", str(T0 + minutes * MIN), "--fast-interval", fast_interval, "-o", "json"])
    assert result.exit_code == 0, result.output
    out: dict[str, Any] = json.loads(result.output)
    assert set(out) == {"outcome", "rolledBackAt", "completedAt", "events"}
    return out


def serve(prometheus_backfilled: BackfilledFactory, service: str,
          canary: TrackShape, stable: TrackShape | None = None) -> str:
    trace = Trace(service, T0 - 10 * MIN, 80 * MIN,
                  {"canary": canary, "stable": stable or TrackShape(rate=100, noise=0.1)},
                  seed=7)
    return str(prometheus_backfilled(trace.series()))


def steps_started(out: dict[str, Any]) -> list[int]:
    return [e["weight"] for e in out["events"] if e["type"] == "StepAdvanced"]


def test_healthy_canary_is_promoted(tmp_path: Path,
                                    prometheus_backfilled: BackfilledFactory) -> None:
    url = serve(prometheus_backfilled, "healthy", TrackShape(rate=20, error_ratio=0.0002))
    out = backtest(tmp_path, url, "healthy")
    assert out["outcome"] == "Succeeded"
    assert steps_started(out) == [10, 25, 50, 100]
    assert out["rolledBackAt"] is None and out["completedAt"] >= T0 + 40 * MIN
    gate_events = [e for e in out["events"] if e["type"] == "GateEvaluated"]
    assert gate_events and all(e["verdict"] == "Pass" for e in gate_events
                               if e["at"] >= T0 + 2 * MIN)
    assert {"at", "type", "step", "weight", "gate", "verdict", "reason", "value"} == set(
        gate_events[0])


def test_errors_jumping_to_5_percent_roll_back_once_rollback_after_passed(
        tmp_path: Path, prometheus_backfilled: BackfilledFactory) -> None:
    url = serve(prometheus_backfilled, "jump",
                TrackShape(rate=20, error_ratio=after(10 * MIN + JUMP, 0.05, 0.0002)))
    out = backtest(tmp_path, url, "jump", fast_burn=False)
    assert out["outcome"] == "RolledBack"
    assert steps_started(out) == [10, 25]
    rollback = next(e for e in out["events"] if e["type"] == "RollbackStarted")
    assert rollback["reason"] == "SustainedViolation"
    # not before the violation has lasted rollbackAfter (5m), and within two intervals after
    assert T0 + JUMP + 5 * MIN <= out["rolledBackAt"] <= T0 + JUMP + 7 * MIN


def test_canary_failing_every_request_rolls_back_within_two_intervals(
        tmp_path: Path, prometheus_backfilled: BackfilledFactory) -> None:
    url = serve(prometheus_backfilled, "dead",
                TrackShape(rate=20, error_ratio=after(10 * MIN + JUMP, 1.0, 0.0002)))
    out = backtest(tmp_path, url, "dead")
    assert out["outcome"] == "RolledBack"
    rollback = next(e for e in out["events"] if e["type"] == "RollbackStarted")
    assert rollback["reason"] == "FastBurn"
    assert out["rolledBackAt"] - (T0 + JUMP) <= 2 * MIN


def test_latency_regression_past_the_slo_rolls_back(
        tmp_path: Path, prometheus_backfilled: BackfilledFactory) -> None:
    fast = {0.05: 0.5, 0.1: 0.8, 0.2: 0.99, 0.5: 1.0, 1.0: 1.0, 2.5: 1.0}
    slow = {0.05: 0.2, 0.1: 0.4, 0.2: 0.70, 0.5: 0.95, 1.0: 1.0, 2.5: 1.0}
    url = serve(prometheus_backfilled, "slow", TrackShape(
        rate=20, latency=lambda t: slow if t >= 10 * MIN + JUMP else fast))
    out = backtest(tmp_path, url, "slow")
    assert out["outcome"] == "RolledBack"
    failing = [e for e in out["events"] if e["type"] == "GateEvaluated"
               and e["gate"] == "auth_latency" and e["verdict"] == "Fail"]
    assert failing and failing[0]["at"] <= T0 + JUMP + 2 * MIN
    # once the 2-minute window holds only slow requests, 70 % are under 200 ms (< 95 %)
    steady = [e for e in failing if e["at"] >= T0 + JUMP + 2 * MIN]
    assert steady and steady[0]["value"] == pytest.approx(70, abs=1.5)


def test_canary_series_vanishing_never_promote(
        tmp_path: Path, prometheus_backfilled: BackfilledFactory) -> None:
    url = serve(prometheus_backfilled, "gone",
                TrackShape(rate=20, absent=[(10 * MIN + JUMP, float("inf"))]))
    out = backtest(tmp_path, url, "gone")
    assert out["outcome"] == "Holding"
    assert out["rolledBackAt"] is None and out["completedAt"] is None
    assert steps_started(out) == [10, 25]
    reasons = {e["reason"] for e in out["events"]
               if e["type"] == "GateEvaluated" and e["at"] > T0 + JUMP + 5 * MIN}
    assert reasons <= {"NoData", "Stale"}


def test_a_60_second_blip_does_not_roll_back(
        tmp_path: Path, prometheus_backfilled: BackfilledFactory) -> None:
    url = serve(prometheus_backfilled, "blip", TrackShape(
        rate=20, error_ratio=between(10 * MIN + JUMP, 10 * MIN + JUMP + 60, 0.05, 0.0002)))
    out = backtest(tmp_path, url, "blip", fast_burn=False)
    failed = [e for e in out["events"] if e["type"] == "GateEvaluated" and e["verdict"] == "Fail"]
    assert failed, "the blip must be seen failing, or this test proves nothing"
    assert out["outcome"] == "Succeeded" and out["rolledBackAt"] is None


def test_a_trickle_of_requests_is_never_promoted(
        tmp_path: Path, prometheus_backfilled: BackfilledFactory) -> None:
    url = serve(prometheus_backfilled, "trickle", TrackShape(rate=0.1))
    out = backtest(tmp_path, url, "trickle")
    assert out["outcome"] == "Holding" and steps_started(out) == [10]
    last = [e for e in out["events"] if e["type"] == "GateEvaluated"][-1]
    assert last["reason"] == "TooFewSamples"


def test_a_counter_reset_mid_step_is_no_false_alarm(
        tmp_path: Path, prometheus_backfilled: BackfilledFactory) -> None:
    url = serve(prometheus_backfilled, "reset",
                TrackShape(rate=20, error_ratio=0.0002, resets=[10 * MIN + JUMP]))
    out = backtest(tmp_path, url, "reset")
    assert out["outcome"] == "Succeeded"
    assert not [e for e in out["events"] if e["type"] == "GateEvaluated"
                and e["verdict"] == "Fail"]


@pytest.mark.slow
def test_prometheus_unreachable_holds_and_never_rolls_back(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    out = backtest(tmp_path, f"http://127.0.0.1:{port}", "nowhere", minutes=25)
    assert out["outcome"] == "Holding"
    assert out["rolledBackAt"] is None
    reasons = {e["reason"] for e in out["events"] if e["type"] == "GateEvaluated"}
    assert reasons == {"PrometheusError"}


# -- the fast path: a severe fault is a fast burn wherever in the step it starts ------------


def test_a_50x_burn_from_15_minutes_into_a_step_rolls_back_within_two_evaluations(
        tmp_path: Path, prometheus_backfilled: BackfilledFactory) -> None:
    # steps of 30 minutes from T0: the fault starts 15 minutes into the first step, where the
    # long window (clipped to the run) holds 15 healthy minutes
    fault = 15 * MIN
    url = serve(prometheus_backfilled, "late",
                TrackShape(rate=20, error_ratio=after(10 * MIN + fault, 0.05, 0.0002)))
    out = backtest(tmp_path, url, "late", minutes=40, hold="30m")
    assert out["outcome"] == "RolledBack"
    rollback = next(e for e in out["events"] if e["type"] == "RollbackStarted")
    assert rollback["reason"] == "FastBurn"
    # two analysis intervals (60 s each) of the fault at most; the rule alone needs 86 s of
    # 50x for the 5-minute window to pass 14.4x
    assert T0 + fault < out["rolledBackAt"] <= T0 + fault + 2 * MIN
    # without the fast path the analyses apply the same rule, at their own cadence
    slow = backtest(tmp_path, url, "late", minutes=40, hold="30m", fast_interval="0")
    assert slow["outcome"] == "RolledBack"
    assert out["rolledBackAt"] <= slow["rolledBackAt"] <= T0 + fault + 3 * MIN


def test_a_60_second_spike_of_3_percent_is_no_fast_burn(
        tmp_path: Path, prometheus_backfilled: BackfilledFactory) -> None:
    url = serve(prometheus_backfilled, "spike", TrackShape(
        rate=20, error_ratio=between(10 * MIN + JUMP, 10 * MIN + JUMP + 60, 0.03, 0.0002)))
    out = backtest(tmp_path, url, "spike")  # fast burn on, fast path on
    assert out["outcome"] == "Succeeded" and out["rolledBackAt"] is None
    assert not [e for e in out["events"] if e.get("reason") == "FastBurn"]
