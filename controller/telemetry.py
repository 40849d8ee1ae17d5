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
        # the label values each object has set, so that its series can be removed when the
        # gate, the SLO or the object itself goes away (a deleted plan leaves no series)
        self._gates: dict[tuple[str, str], set[str]] = {}
        self._slos: dict[tuple[str, str], set[str]] = {}
        self._services: dict[tuple[str, str], set[tuple[str, str | None]]] = {}

    def plan(self, namespace: str, name: str, status: RolloutPlanStatus) -> None:
        for phase in Phase:
            self.phase.labels(namespace, name, phase.value).set(
                1 if status.phase == phase else 0)
        self.step.labels(namespace, name).set(
            status.current_step if status.current_step is not None else -1)
        self.weight.labels(namespace, name).set(status.canary_weight)
        self.plan_frozen.labels(namespace, name).set(1 if status.phase == Phase.FROZEN else 0)
        now = {gate.name for gate in status.gates}
        self._forget_gates(namespace, name, self._gates.get((namespace, name), set()) - now)
        self._gates[(namespace, name)] = now
        for gate in status.gates:
            self.gate_verdict.labels(namespace, name, gate.name).set(_VERDICT[gate.verdict])
            if gate.value is not None:
                self.gate_value.labels(namespace, name, gate.name).set(gate.value)
            else:
                with contextlib.suppress(KeyError):
                    self.gate_value.remove(namespace, name, gate.name)

    def _forget_gates(self, namespace: str, name: str, gates: set[str]) -> None:
        for gate in gates:
            for gauge in (self.gate_verdict, self.gate_value):
                with contextlib.suppress(KeyError):
                    gauge.remove(namespace, name, gate)

    def forget_plan(self, namespace: str, name: str) -> None:
        for gauge in (self.step, self.weight, self.plan_frozen):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, name)
        for phase in Phase:
            with contextlib.suppress(KeyError):
                self.phase.remove(namespace, name, phase.value)
        self._forget_gates(namespace, name, self._gates.pop((namespace, name), set()))

    def policy(self, namespace: str, name: str, status: SLOPolicyStatus) -> None:
        self.policy_frozen.labels(namespace, name).set(1 if status.frozen else 0)
        now = {slo.name for slo in status.slos if slo.budget_remaining is not None}
        self._forget_slos(namespace, name, self._slos.get((namespace, name), set()) - now)
        self._slos[(namespace, name)] = now
        for slo in status.slos:
            if slo.budget_remaining is not None:
                self.budget.labels(namespace, name, slo.name).set(slo.budget_remaining)
        series: set[tuple[str, str | None]] = set()
        for service in status.services or []:
            self.service_frozen.labels(namespace, name, service.service).set(
                1 if service.frozen else 0)
            series.add((service.service, None))
            for slo in service.slos:
                if slo.budget_remaining is not None:
                    self.service_budget.labels(namespace, name, service.service, slo.name).set(
                        slo.budget_remaining)
                    series.add((service.service, slo.name))
        self._forget_services(
            namespace, name, self._services.get((namespace, name), set()) - series)
        self._services[(namespace, name)] = series

    def forget_policy(self, namespace: str, name: str) -> None:
        with contextlib.suppress(KeyError):
            self.policy_frozen.remove(namespace, name)
        self._forget_slos(namespace, name, self._slos.pop((namespace, name), set()))
        self._forget_services(namespace, name, self._services.pop((namespace, name), set()))

    def _forget_services(self, namespace: str, name: str,
                         series: set[tuple[str, str | None]]) -> None:
        """Series of services a policy no longer guards (or of a deleted policy)."""
        for service, slo in series:
            with contextlib.suppress(KeyError):
                if slo is None:
                    self.service_frozen.remove(namespace, name, service)
                else:
                    self.service_budget.remove(namespace, name, service, slo)

    def _forget_slos(self, namespace: str, name: str, slos: set[str]) -> None:
        for slo in slos:
            with contextlib.suppress(KeyError):
                self.budget.remove(namespace, name, slo)
