"""The controller's own metrics about plans and policies (served on /metrics)."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge

from controller.api.plan import Phase, RolloutPlanStatus, Verdict
from controller.api.policy import SLOPolicyStatus

_VERDICT = {Verdict.PASS: 1, Verdict.INCONCLUSIVE: 0, Verdict.FAIL: -1}


class Telemetry:
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["namespace", "plan"]
        self.phase = Gauge("rolloutctl_plan_phase", "1 for the plan's current phase",
                           [*labels, "phase"], registry=registry)
        self.step = Gauge("rolloutctl_plan_step", "Current step index (0-based), -1 when idle",
                          labels, registry=registry)
        self.weight = Gauge("rolloutctl_plan_canary_weight_percent",
                            "Canary traffic weight set by the controller", labels,
                            registry=registry)
        self.gate_verdict = Gauge("rolloutctl_gate_verdict",
                                  "Gate verdict: 1 Pass, 0 Inconclusive, -1 Fail",
                                  [*labels, "gate"], registry=registry)
        self.gate_value = Gauge("rolloutctl_gate_value", "Gate value (SLI, rate or burn)",
                                [*labels, "gate"], registry=registry)
        self.plan_frozen = Gauge("rolloutctl_plan_frozen", "1 while the plan is frozen",
                                 labels, registry=registry)
        self.budget = Gauge("rolloutctl_policy_budget_remaining_percent",
                            "Error budget remaining per SLO", ["namespace", "policy", "slo"],
                            registry=registry)
        self.policy_frozen = Gauge("rolloutctl_policy_frozen", "1 while releases are frozen",
                                   ["namespace", "policy"], registry=registry)
        # a policy guarding several services: per service (the two above summarise them)
        self.service_budget = Gauge(
            "rolloutctl_service_budget_remaining_percent",
            "Error budget remaining per guarded service and SLO",
            ["namespace", "policy", "service", "slo"], registry=registry)
        self.service_frozen = Gauge(
            "rolloutctl_service_frozen", "1 while releases of the service are frozen",
            ["namespace", "policy", "service"], registry=registry)
        self.actions = Counter("rolloutctl_actions_total", "Actions taken by the controller",
                               ["type", "result"], registry=registry)
        self.rollbacks = Counter("rolloutctl_rollbacks_total", "Rollbacks started",
                                 ["reason"], registry=registry)
        self.runs_failed = Counter("rolloutctl_runs_failed_total",
                                   "Runs that ended RolledBack or Failed, by reason",
                                   ["outcome", "reason"], registry=registry)

    def plan(self, namespace: str, name: str, status: RolloutPlanStatus) -> None:
        for phase in Phase:
            self.phase.labels(namespace, name, phase.value).set(
                1 if status.phase == phase else 0)
        self.step.labels(namespace, name).set(
            status.current_step if status.current_step is not None else -1)
        self.weight.labels(namespace, name).set(status.canary_weight)
        self.plan_frozen.labels(namespace, name).set(1 if status.phase == Phase.FROZEN else 0)
        for gate in status.gates:
            self.gate_verdict.labels(namespace, name, gate.name).set(_VERDICT[gate.verdict])
            if gate.value is not None:
                self.gate_value.labels(namespace, name, gate.name).set(gate.value)

    def forget_plan(self, namespace: str, name: str) -> None:
        for gauge in (self.step, self.weight, self.plan_frozen):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, name)
        for phase in Phase:
            with contextlib.suppress(KeyError):
                self.phase.remove(namespace, name, phase.value)

    def policy(self, namespace: str, name: str, status: SLOPolicyStatus) -> None:
        self.policy_frozen.labels(namespace, name).set(1 if status.frozen else 0)
        for slo in status.slos:
            if slo.budget_remaining is not None:
                self.budget.labels(namespace, name, slo.name).set(slo.budget_remaining)
        for service in status.services or []:
            self.service_frozen.labels(namespace, name, service.service).set(
                1 if service.frozen else 0)
            for slo in service.slos:
                if slo.budget_remaining is not None:
                    self.service_budget.labels(namespace, name, service.service, slo.name).set(
                        slo.budget_remaining)
