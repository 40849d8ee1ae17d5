"""A fake world around the pure engine: a router, two workloads and scripted measurements.

It applies the engine's actions the way the real adapters would (instantly, or after a
readiness delay), so engine property tests, the engine benchmark and the reconciler's unit
tests can drive whole runs in virtual time. It is not the end-to-end proof: that runs on the
real API server and Prometheus.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from controller.api.plan import RolloutPlan
from controller.api.policy import SLOPolicy
from controller.engine.decide import (
    decide,
    evaluation_window,
    gates_due,
    record_results,
)
from controller.engine.measurements import GateMeasurement, Measurement
from controller.engine.observation import (
    ActionResult,
    ActionType,
    Decision,
    FreezeInput,
    Observation,
    RouterObservation,
    WorkloadState,
)
from tests.harness.builders import gate_measurement, ratio

# (seconds since the world started, canary weight, gate name) -> canary measurement
Script = Callable[[float, int, str], Measurement | GateMeasurement]


def healthy(_t: float, _w: int, _gate: str) -> Measurement:
    return ratio(0.0, samples=1000)


@dataclass
class Step:
    at: datetime
    decision: Decision
    weight_before: int
    measured: bool


@dataclass
class World:
    plan: RolloutPlan
    policy: SLOPolicy | None
    start: datetime
    script: Script = healthy
    router_weight: int = 0
    router_mirror: int = 0
    router_match: bool = False
    # None: the route reports no acceptance; else whether its parents accept a change
    # (``accept_after`` passes after each write: a Gateway controller that takes its time).
    router_ready: bool | None = None
    accept_after: int = 0
    _pending_passes: int = 0
    stable: WorkloadState = field(default_factory=lambda: WorkloadState(
        revision="rev-stable", replicas=2, ready_replicas=2, updated_replicas=2))
    canary: WorkloadState = field(default_factory=lambda: WorkloadState(
        revision="rev-new", replicas=0, ready_replicas=0, updated_replicas=0))
    freeze: FreezeInput | None = None
    fail_router: bool = False
    history: list[Step] = field(default_factory=list)

    def observe(self, now: datetime) -> Observation:
        obs = Observation(
            plan=self.plan, now=now, stable=self.stable, canary=self.canary,
            router=RouterObservation(
                weight=self.router_weight, mirror=self.router_mirror, match=self.router_match,
                ready=self.router_ready, ready_message="" if self.router_ready is not False
                else "Gateway shop/web: Accepted=False (Pending): not reconciled yet"),
            policy=self.policy, freeze=self.freeze,
        )
        if self.router_ready is False and self._pending_passes <= 0:
            self.router_ready = True
        self._pending_passes -= 1
        if gates_due(obs):
            window = evaluation_window(self.plan.status, self.plan.spec.analysis.window.seconds,
                                       now)
            t = (now - self.start).total_seconds()
            ms = []
            for gate in self.plan.spec.gates:
                m = self.script(t, self.router_weight, gate.name)
                ms.append(m if isinstance(m, GateMeasurement)
                          else gate_measurement(gate.name, m, stable=ratio(0.0), window=window))
            obs = replace(obs, measurements=tuple(ms))
        return obs

    def apply(self, decision: Decision, now: datetime) -> list[ActionResult]:
        results = []
        for action in decision.actions:
            ok = True
            if action.type == ActionType.SET_WEIGHT:
                if self.fail_router:
                    ok = False
                else:
                    assert action.weight is not None
                    self.router_weight = action.weight
                    self.router_mirror, self.router_match = action.mirror, action.match
                    if self.router_ready is not None:
                        self.router_ready = False
                        self._pending_passes = self.accept_after
            elif action.type == ActionType.SCALE_CANARY:
                n = action.replicas or 0
                self.canary = replace(self.canary, replicas=n, ready_replicas=n,
                                      updated_replicas=n)
            elif action.type == ActionType.PROMOTE_STABLE:
                self.stable = replace(self.stable, revision=self.canary.revision)
            results.append(ActionResult(action, ok, now, "" if ok else "router down",
                                        "" if ok else "ApiError"))
        return results

    def tick(self, now: datetime, *, write_status: bool = True) -> Step:
        """One reconcile pass; ``write_status=False`` simulates a crash before the write."""
        obs = self.observe(now)
        before = self.router_weight
        decision = decide(obs)
        results = self.apply(decision, now)
        status = record_results(decision.status, results, self.stable.ready,
                                self.plan.metadata.generation)
        if write_status:
            self.plan = self.plan.model_copy(update={"status": status})
        step = Step(now, decision, before, obs.measurements is not None)
        self.history.append(step)
        return step

    def run(self, until: datetime, *, max_passes: int = 100_000,
            crash: Callable[[int], bool] | None = None) -> None:
        """Reconcile at each requested time (at least every 30 s) until ``until``."""
        now = self.start
        for n in range(max_passes):
            if now > until:
                return
            step = self.tick(now, write_status=not (crash and crash(n)))
            wait = step.decision.requeue_after
            wait = 30.0 if wait is None else min(max(wait, 0.05), 30.0)
            now = now + timedelta(seconds=wait)
