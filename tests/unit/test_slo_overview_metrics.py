"""The /metrics series behind the Grafana SLO overview (``telemetry.py``), from a real
reconciler driven on a fake clock and from policy statuses: objective met, burn rate per
alert, the freeze reason, active incidents, runs by outcome and the time to restore."""

from __future__ import annotations

from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry

from controller.adapters.traffic.registry import NullRouter
from controller.api.policy import SLOPolicyStatus
from controller.reconciler import PlanReconciler
from controller.telemetry import Telemetry
from tests.harness import builders as b
from tests.harness.fakes import FakeClock, FakeWorkloads, MemoryStore

STEPS = [(10, "1m"), (25, "1m"), (50, "1m"), (100, "1m")]


class Drive:
    def __init__(self, bad: float = 0.0) -> None:
        self.clock = FakeClock(b.T0)
        self.store = MemoryStore()
        self.store.put(b.plan_doc(steps=STEPS))
        policy = b.policy_doc()
        policy["status"] = {
            "evaluatedAt": "2026-11-27T11:59:00Z", "frozen": False, "budgetRemaining": 62.5,
            "slos": [{"name": "api_availability", "state": "Ok", "budgetRemaining": 62.5}]}
        self.store.put(policy)
        self.router = NullRouter()
        self.workloads = FakeWorkloads()
        self.workloads.set("shop", "checkout", b.workload("rev-stable"))
        self.workloads.set("shop", "checkout-canary", b.workload("rev-new", replicas=0))
        self.registry = CollectorRegistry()
        self.telemetry = Telemetry(self.registry)
        self.bad = bad
        self.rec = PlanReconciler(
            store=self.store, workloads=self.workloads, router_for=lambda p: self.router,
            measure_gates=lambda plan, *_: [
                b.gate_measurement(g.name, b.ratio(self.bad, 1000)) for g in plan.spec.gates],
            policy_lookup=lambda ns, n: self.store.get("SLOPolicy", ns, n), clock=self.clock,
            telemetry=self.telemetry)

    def run(self, seconds: float) -> Drive:
        end = self.clock.now() + timedelta(seconds=seconds)
        while self.clock.now() < end:
            requeue = self.rec.reconcile("shop/checkout")
            self.clock.advance(min(max(requeue or 5.0, 0.1), 5.0))
        return self

    def value(self, metric: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(metric, labels)


def test_a_rollback_counts_a_run_an_incident_and_its_time_to_restore() -> None:
    d = Drive().run(30)
    assert d.value("rolloutctl_runs_total", namespace="shop", plan="checkout",
                   outcome="RolledBack") == 0  # exported from 0 before any run ends
    assert d.value("rolloutctl_time_to_restore_seconds_count", namespace="shop",
                   kind="rollback") == 0
    d.bad = 50.0  # 5 % errors from now on
    d.run(200)
    status = d.store.get("RolloutPlan", "shop", "checkout")["status"]  # type: ignore[index]
    assert status["phase"] == "RolledBack", status["phase"]
    [record] = status["history"]
    assert record["weightZeroAt"]
    assert d.value("rolloutctl_runs_total", namespace="shop", plan="checkout",
                   outcome="RolledBack") == 1
    assert d.value("rolloutctl_incident_active", **{"namespace": "shop", "kind": "plan",
                                                    "name": "checkout"}) == 1
    # the first failing evaluation to the weight-0 write: rollbackAfter (5m by default)
    fault = min(g["failingSince"] for g in record["evidence"] if g.get("failingSince"))
    expected = (datetime.fromisoformat(record["weightZeroAt"])
                - datetime.fromisoformat(fault)).total_seconds()
    assert expected > 0
    assert d.value("rolloutctl_time_to_restore_seconds_count", namespace="shop",
                   kind="rollback") == 1
    assert d.value("rolloutctl_time_to_restore_seconds_sum", namespace="shop",
                   kind="rollback") == expected
    d.run(60)  # more passes observe nothing twice
    assert d.value("rolloutctl_time_to_restore_seconds_count", namespace="shop",
                   kind="rollback") == 1
    assert d.value("rolloutctl_runs_total", namespace="shop", plan="checkout",
                   outcome="RolledBack") == 1


def policy_status(**fields: object) -> SLOPolicyStatus:
    """A status guarding one service, checkout (SLOS: its SLOs)."""
    slos = fields.pop("slos", None)
    base: dict[str, object] = {"services": [{"service": "checkout", "slos": slos or [
            {"name": "api_availability", "state": "Ok", "budgetRemaining": 8.0,
             "burnRates": [{"severity": "critical", "factor": 14.4, "long": "1h",
                            "short": "5m", "longRate": 20.5, "shortRate": 16.0,
                            "firing": True}]},
            {"name": "auth_latency", "state": "Ok", "budgetRemaining": -12.5},
            {"name": "db_latency", "state": "Unknown"},
        ]}]}
    base.update(fields)
    return SLOPolicyStatus.model_validate(base)


def test_policy_series_objective_met_burn_rates_and_freeze_reason() -> None:
    registry = CollectorRegistry()
    t = Telemetry(registry)
    t.policy("shop", "platform", policy_status(frozen=True, reason="FastBurn"))

    def v(name: str, **labels: str) -> float | None:
        if name != "rolloutctl_policy_freeze_reason":  # per service
            labels = {"service": "checkout", **labels}
        return registry.get_sample_value(name, {"namespace": "shop", "policy": "platform",
                                                **labels})

    assert v("rolloutctl_slo_objective_met", slo="api_availability") == 1
    assert v("rolloutctl_slo_objective_met", slo="auth_latency") == 0  # overspent
    assert v("rolloutctl_slo_objective_met", slo="db_latency") is None  # unknown: absent
    alert = "critical:1h/5m"
    assert v("rolloutctl_slo_burn_rate", slo="api_availability", alert=alert,
             window="1h") == 20.5
    assert v("rolloutctl_slo_burn_rate", slo="api_availability", alert=alert,
             window="5m") == 16.0
    assert v("rolloutctl_slo_burn_rate_threshold", slo="api_availability", alert=alert) == 14.4
    assert v("rolloutctl_slo_burn_alert_firing", slo="api_availability", alert=alert) == 1
    assert v("rolloutctl_policy_freeze_reason", reason="FastBurn") == 1
    assert v("rolloutctl_policy_freeze_reason", reason="BudgetBelowThreshold") == 0
    assert registry.get_sample_value("rolloutctl_incident_active", {
        "namespace": "shop", "kind": "policy", "name": "platform"}) == 1

    # lifted, and the SLO no longer measured: the reason goes to 0, the stale series go away
    t.policy("shop", "platform", policy_status(frozen=False, slos=[
        {"name": "api_availability", "state": "Unknown", "burnRates": [
            {"severity": "critical", "factor": 14.4, "long": "1h", "short": "5m"}]}]))
    assert v("rolloutctl_policy_freeze_reason", reason="FastBurn") == 0
    assert v("rolloutctl_slo_objective_met", slo="api_availability") is None
    assert v("rolloutctl_slo_burn_rate", slo="api_availability", alert=alert,
             window="1h") is None
    assert registry.get_sample_value("rolloutctl_incident_active", {
        "namespace": "shop", "kind": "policy", "name": "platform"}) == 0
