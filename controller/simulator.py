"""Backtesting: replay a plan against a Prometheus time range with the controller's engine.

The simulator runs the same ``decide`` as the controller, on a virtual clock that jumps from
one requested reconcile to the next, querying Prometheus at each evaluation time. The
workloads are taken as ready and the router as obedient; what is judged is the metrics
history. The canary is taken to be deployed at ``start``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from controller.adapters.metrics.analysis import measure_gates
from controller.adapters.metrics.fastpath import FastTarget, measure_fast
from controller.api.decisions import DecisionType
from controller.api.plan import Phase, RolloutPlan, RolloutPlanStatus
from controller.api.policy import SLOPolicy
from controller.engine.decide import (
    decide,
    evaluation_window,
    fast_path_wants,
    gates_due,
    is_stepping,
    record_results,
    run_seconds,
)
from controller.engine.freeze import SLOMeasurements, evaluate_services, freeze_input
from controller.engine.measurements import BurnRateMeasurement, GateMeasurement, Track
from controller.engine.observation import (
    ActionResult,
    ActionType,
    FreezeInput,
    Observation,
    RouterObservation,
    WorkloadState,
)
from controller.ports import MetricsSource, QueryContext

FINAL = {Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.FAILED}
MAX_FREEZE_EVALUATIONS = 500
DEFAULT_FAST_INTERVAL = 10.0


@dataclass
class TimelineEvent:
    at: float
    type: str
    step: int | None
    weight: int
    gate: str | None = None
    verdict: str | None = None
    reason: str = ""
    value: float | None = None
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "type": self.type, "step": self.step, "weight": self.weight,
                "gate": self.gate, "verdict": self.verdict, "reason": self.reason,
                "value": self.value}


@dataclass
class SimulationResult:
    outcome: str
    rolled_back_at: float | None
    completed_at: float | None
    events: list[TimelineEvent] = field(default_factory=list)
    passes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "rolledBackAt": self.rolled_back_at,
                "completedAt": self.completed_at,
                "events": [e.to_json() for e in self.events]}


def simulate(
    plan: RolloutPlan,
    policy: SLOPolicy | None,
    source: MetricsSource,
    start: datetime,
    end: datetime,
    *,
    freeze: bool = True,
    progress: Callable[[datetime], None] | None = None,
    fast_interval: float = DEFAULT_FAST_INTERVAL,
) -> SimulationResult:
    """The decisions the controller would have made between ``start`` and ``end``.

    Like the controller, the fast path checks the plan every ``fast_interval`` seconds
    between analyses (0: off) and hands a measurement that needs a pass to the engine."""
    stable = WorkloadState(revision="stable", replicas=1, ready_replicas=1, updated_replicas=1)
    canary = WorkloadState(revision="candidate", replicas=1, ready_replicas=1,
                           updated_replicas=1)
    plan = plan.model_copy(update={"status": RolloutPlanStatus()})
    weight, mirror, match = 0, 0, False
    result = SimulationResult(outcome=Phase.PENDING.value, rolled_back_at=None,
                              completed_at=None)
    freezes = (_FreezeClock(policy, source, start, end, plan.spec.service_name)
               if freeze and policy else None)
    now = start
    seen_seq = 0
    recent = max(10.0, 3 * (fast_interval or DEFAULT_FAST_INTERVAL))
    fast_on = fast_interval > 0 and policy is not None and hasattr(source, "query_vectors")
    next_regular = start
    next_fast = start + timedelta(seconds=fast_interval) if fast_on else None
    while True:
        fast: tuple[GateMeasurement, ...] | None = None
        if next_fast is not None and next_fast < next_regular:
            now = next_fast
            next_fast = now + timedelta(seconds=fast_interval)
            if now > end:
                break
            if not is_stepping(plan.status) or plan.status.step_started_at is None:
                continue
            assert policy is not None
            seen = measure_fast(source, [FastTarget(plan.key, plan, policy)],  # type: ignore[arg-type]
                                now, recent).get(plan.key)
            if not seen or not fast_path_wants(plan, policy, seen):
                continue
            fast = seen
        else:
            now = next_regular
            if now > end:
                break
        result.passes += 1
        if progress is not None:
            progress(now)
        obs = Observation(
            plan=plan, now=now, stable=stable, canary=canary,
            router=RouterObservation(weight=weight, mirror=mirror, match=match), policy=policy,
            freeze=freezes.at(now, plan.metadata.name) if freezes else None,
        )
        if gates_due(obs):
            st = plan.status
            ctx = QueryContext(service=plan.spec.service_name,
                               namespace=plan.metadata.namespace,
                               revision=st.revision or "none", at=now)
            measured = measure_gates(source, plan, policy, ctx,
                                     evaluation_window(st, plan.spec.analysis.window.seconds,
                                                       now),
                                     run_seconds(st, now), recent_seconds=recent)
            obs = replace(obs, measurements=tuple(measured))
        elif fast is not None:
            obs = replace(obs, fast=fast)
        decision = decide(obs)
        results = []
        for action in decision.actions:
            if action.type == ActionType.SET_WEIGHT and action.weight is not None:
                weight, mirror, match = action.weight, action.mirror, action.match
            elif action.type == ActionType.SCALE_CANARY and action.replicas is not None:
                n = action.replicas
                canary = replace(canary, replicas=n, ready_replicas=n, updated_replicas=n)
            elif action.type == ActionType.PROMOTE_STABLE:
                stable = replace(stable, revision=canary.revision)
            results.append(ActionResult(action, True, now))
        status = record_results(decision.status, results, stable.ready,
                                plan.metadata.generation)
        if obs.measurements is not None:
            for g in status.gates:
                result.events.append(TimelineEvent(
                    at=now.timestamp(), type="GateEvaluated", step=status.current_step,
                    weight=status.canary_weight, gate=g.name, verdict=g.verdict.value,
                    reason=g.reason.value, value=g.value, message=g.message))
        for record in status.decisions:
            if record.seq > seen_seq:
                result.events.append(TimelineEvent(
                    at=record.at.timestamp(), type=record.type, step=record.step,
                    weight=record.weight or 0, reason=record.reason, message=record.message))
                if record.type == DecisionType.ROLLBACK_STARTED and result.rolled_back_at is None:
                    result.rolled_back_at = record.at.timestamp()
                if record.type == DecisionType.SUCCEEDED:
                    result.completed_at = record.at.timestamp()
        seen_seq = status.seq
        plan = plan.model_copy(update={"status": status})
        result.outcome = status.phase.value
        if status.phase in FINAL:
            break
        wait = decision.requeue_after
        interval = plan.spec.analysis.interval.seconds
        wait = interval if wait is None else min(max(wait, 1.0), interval)
        if fast is None or now + timedelta(seconds=wait) < next_regular:
            next_regular = now + timedelta(seconds=wait)
    return result


class _FreezeClock:
    """The policy's freeze as it would have been, re-evaluated every evaluationInterval."""

    def __init__(self, policy: SLOPolicy, source: MetricsSource, start: datetime,
                 end: datetime, service: str) -> None:
        self.policy = policy
        # the plan's service: a policy without spec.service guards each plan's own
        self.service = policy.spec.service or service
        self.source = source
        span = (end - start).total_seconds()
        step = max(policy.spec.evaluation_interval.seconds, span / MAX_FREEZE_EVALUATIONS)
        self.step = timedelta(seconds=step)
        self.next = start

    def at(self, now: datetime, plan_name: str) -> FreezeInput | None:
        if self.policy.spec.error_budget_policy.freeze_releases is None:
            return None
        if now >= self.next:
            decision = evaluate_services(self.policy, {self.service: self._measure(now)}, now)
            self.policy = self.policy.model_copy(update={"status": decision.status})
            self.next = now + self.step
        return freeze_input(self.policy, plan_name, now, self.service)

    def _measure(self, now: datetime) -> dict[str, SLOMeasurements]:
        budget_of = getattr(self.source, "measure_budget", None)
        ctx = QueryContext(service=self.service,
                           namespace=self.policy.metadata.namespace, revision="none", at=now)
        out = {}
        for slo in self.policy.spec.slos:
            if slo.is_threshold or slo.objective is None:
                continue
            budget = budget_of(slo, ctx, slo.window.seconds) if budget_of else None
            burns = tuple(
                BurnRateMeasurement(
                    i,
                    self.source.measure(slo, Track.STABLE, a.long.seconds, ctx),
                    self.source.measure(slo, Track.STABLE, a.short.seconds, ctx),
                    a.long.seconds, a.short.seconds)
                for i, a in enumerate(slo.burn_rate_alerts))
            out[slo.name] = SLOMeasurements(slo.name, budget, burns)
        return out
