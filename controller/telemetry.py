"""The controller's own metrics about plans and policies (served on /metrics)."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from controller.api.plan import Phase, RolloutPlanStatus, RunOutcome, Verdict
from controller.api.policy import SLOPolicyStatus, SLOState, SLOStatus
from controller.engine.observation import FreezeReason

_VERDICT = {Verdict.PASS: 1, Verdict.INCONCLUSIVE: 0, Verdict.FAIL: -1}
# Time to restore: from the first failing evaluation (a drill: its request) to canary weight 0
RESTORE_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
FREEZE_REASONS = tuple(r.value for r in FreezeReason)


def alert_label(severity: str, long: str, short: str) -> str:
    """A burn-rate alert's label value: ``critical:1h/5m`` (bounded by the policy's alerts)."""
    return f"{severity}:{long}/{short}"


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
        # -- the SLO overview (issue 19): labels bounded by objects, services, SLOs and enums
        slo = ["namespace", "policy", "service", "slo"]
        self.objective_met = Gauge(
            "rolloutctl_slo_objective_met",
            "1 while the SLO meets its objective over its window, 0 when it misses it "
            "(absent while unknown)", slo, registry=registry)
        self.burn_rate = Gauge(
            "rolloutctl_slo_burn_rate",
            "Burn rate of a burn-rate alert's window on the stable service",
            [*slo, "alert", "window"], registry=registry)
        self.burn_threshold = Gauge(
            "rolloutctl_slo_burn_rate_threshold", "The burn-rate alert's factor",
            [*slo, "alert"], registry=registry)
        self.burn_firing = Gauge(
            "rolloutctl_slo_burn_alert_firing", "1 while the burn-rate alert fires",
            [*slo, "alert"], registry=registry)
        self.freeze_reason = Gauge(
            "rolloutctl_policy_freeze_reason",
            "1 for the reason of the policy's freeze (0 for the others and when open)",
            ["namespace", "policy", "reason"], registry=registry)
        self.incident_active = Gauge(
            "rolloutctl_incident_active",
            "1 while an incident is open: a frozen policy, or a plan whose last run rolled "
            "back (until its next run)", ["namespace", "kind", "name"], registry=registry)
        self.runs = Counter("rolloutctl_runs_total", "Runs ended, by outcome",
                            ["namespace", "plan", "outcome"], registry=registry)
        self.restore = Histogram(
            "rolloutctl_time_to_restore_seconds",
            "From the first failing evaluation (a drill: its request) to canary weight 0",
            ["namespace", "kind"], buckets=RESTORE_BUCKETS, registry=registry)
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
        ended_badly = status.phase.value in ("RolledBack", "Failed")  # Failed: a terminal
        self.incident_active.labels(namespace, "plan", name).set(    # failure, where known
            1 if ended_badly and status.reason != "Drill" else 0)
        for outcome in RunOutcome:  # from 0, so increase() sees the first run end
            self.runs.labels(namespace, name, outcome.value)
        for kind in ("rollback", "drill"):
            self.restore.labels(namespace, kind)
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

    def transition(self, namespace: str, name: str, old: RolloutPlanStatus,
                   new: RolloutPlanStatus) -> None:
        """Counters and histograms of what changed between two statuses of a plan."""
        seen = {(r.run, r.ended_at) for r in old.history}
        for record in new.history:
            if (record.run, record.ended_at) in seen:
                continue
            self.runs.labels(namespace, name, record.outcome.value).inc()
            if record.outcome == RunOutcome.ROLLED_BACK and record.reason != "Drill":
                failing = [g.failing_since for g in record.evidence if g.failing_since]
                zero = record.weight_zero_at
                if failing and zero is not None:
                    self.restore.labels(namespace, "rollback").observe(
                        max(0.0, (zero - min(failing)).total_seconds()))
        done = {d.id for d in old.drills if d.canary_weight_zero_at is not None}
        for drill in new.drills:
            if drill.id not in done and drill.seconds_to_restore is not None:
                self.restore.labels(namespace, "drill").observe(
                    max(0.0, drill.seconds_to_restore))

    def forget_plan(self, namespace: str, name: str) -> None:
        for gauge in (self.step, self.weight, self.plan_frozen):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, name)
        with contextlib.suppress(KeyError):
            self.incident_active.remove(namespace, "plan", name)
        for outcome in RunOutcome:
            with contextlib.suppress(KeyError):
                self.runs.remove(namespace, name, outcome.value)
        for phase in Phase:
            with contextlib.suppress(KeyError):
                self.phase.remove(namespace, name, phase.value)
        self._forget_gates(namespace, name, self._gates.pop((namespace, name), set()))

    def policy(self, namespace: str, name: str, status: SLOPolicyStatus) -> None:
        self.policy_frozen.labels(namespace, name).set(1 if status.frozen else 0)
        now = {slo.name for slo in status.slos if slo.budget_remaining is not None}
        self._forget_slos(namespace, name, self._slos.get((namespace, name), set()) - now)
        self._slos[(namespace, name)] = now
        self.incident_active.labels(namespace, "policy", name).set(1 if status.frozen else 0)
        for reason in FREEZE_REASONS:
            self.freeze_reason.labels(namespace, name, reason).set(
                1 if status.frozen and status.reason == reason else 0)
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
        # per guarded service (a status written before services were listed: its top level)
        guarded = [(svc.service, svc.slos) for svc in status.services or []] or [
            ("", status.slos)]
        for guarded_service, slos in guarded:
            for slo in slos:
                self._slo(namespace, name, guarded_service, slo)

    def forget_policy(self, namespace: str, name: str) -> None:
        with contextlib.suppress(KeyError):
            self.policy_frozen.remove(namespace, name)
        self._forget_slos(namespace, name, self._slos.pop((namespace, name), set()))
        self._forget_services(namespace, name, self._services.pop((namespace, name), set()))
        with contextlib.suppress(KeyError):
            self.incident_active.remove(namespace, "policy", name)
        for reason in FREEZE_REASONS:
            with contextlib.suppress(KeyError):
                self.freeze_reason.remove(namespace, name, reason)
        for metric in (self.objective_met, self.burn_rate, self.burn_threshold,
                       self.burn_firing):
            _remove_series(metric, (namespace, name))

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

    def _slo(self, namespace: str, name: str, service: str, slo: SLOStatus) -> None:
        labels = (namespace, name, service, slo.name)
        if slo.state == SLOState.OK and slo.budget_remaining is not None:
            self.objective_met.labels(*labels).set(1 if slo.budget_remaining >= 0 else 0)
        else:
            with contextlib.suppress(KeyError):
                self.objective_met.remove(*labels)
        for b in slo.burn_rates:
            alert = alert_label(b.severity.value, str(b.long), str(b.short))
            self.burn_threshold.labels(*labels, alert).set(b.factor)
            self.burn_firing.labels(*labels, alert).set(1 if b.firing else 0)
            for window, rate in ((str(b.long), b.long_rate), (str(b.short), b.short_rate)):
                if rate is not None:
                    self.burn_rate.labels(*labels, alert, window).set(rate)
                else:
                    with contextlib.suppress(KeyError):
                        self.burn_rate.remove(*labels, alert, window)


def _remove_series(metric: Gauge, prefix: tuple[str, ...]) -> None:
    """Remove every series of METRIC whose first label values are PREFIX (a deleted
    policy's SLOs, services and alerts). prometheus_client removes one label set at a time
    and does not list them, so the label sets are read from its series map."""
    for labels in list(metric._metrics):
        if tuple(labels[: len(prefix)]) == prefix:
            with contextlib.suppress(KeyError):
                metric.remove(*labels)
