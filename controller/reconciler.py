"""One reconcile pass: observe -> decide -> act -> write status once -> announce.

``PlanReconciler`` drives RolloutPlans, ``PolicyReconciler`` evaluates SLOPolicies (budgets,
burn rates, the release freeze). Both re-read their object on every pass, read the clock
once, write the whole next status with the resourceVersion they read, and only then record
Events and hand the outbox to the notification dispatcher — which never blocks them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from controller.api.notification_merge import merge_notifications
from controller.api.notifications import NotificationState
from controller.api.plan import Phase, RolloutPlan, RolloutPlanStatus
from controller.api.policy import SLOPolicy, SLOPolicyStatus
from controller.api.validation import (
    Problem,
    check_plan,
    check_plan_against_policy,
    check_policy,
)
from controller.engine.decide import (
    decide,
    evaluation_window,
    gates_due,
    invalid_status,
    record_results,
    run_seconds,
)
from controller.engine.freeze import (
    SLOMeasurements,
    combine,
    evaluate,
    evaluate_services,
    freeze_input,
    plan_facing_state,
)
from controller.engine.measurements import BurnRateMeasurement, GateMeasurement, Track
from controller.engine.observation import (
    Action,
    ActionResult,
    ActionType,
    Decision,
    FreezeInput,
    FreezeReason,
    Observation,
    RouterObservation,
)
from controller.errors import Conflict, ControllerError
from controller.ports import (
    BudgetSource,
    Clock,
    EventSink,
    PlanStore,
    QueryContext,
    RouterError,
    TrafficRouter,
    WorkloadControl,
)
from controller.telemetry import Telemetry

log = logging.getLogger(__name__)


GateMeasurer = Callable[[RolloutPlan, SLOPolicy | None, QueryContext, float, float],
                        list[GateMeasurement]]
Submit = Callable[[str, str, str], object]


class Slots:
    """``maxConcurrentRollouts``: which plans hold one of the limited run slots.

    ``seed`` lists the plans in a run when this replica starts acting (from the cache), so a
    new leader never hands out a slot an earlier leader's run still holds.
    ``per_namespace`` (``--max-concurrent-rollouts-per-namespace``) also bounds the runs of
    one namespace, so one tenant cannot hold every slot.
    """

    def __init__(self, limit: int | None,
                 seed: Callable[[], list[str]] | None = None,
                 per_namespace: int | None = None) -> None:
        self.limit = limit
        self.per_namespace = per_namespace
        self._active: set[str] = set()
        self._seed = seed
        self._lock = threading.Lock()

    def available(self, key: str) -> bool:
        with self._lock:
            if self._seed is not None:
                self._active.update(self._seed())
                self._seed = None
            if key in self._active:
                return True
            if self.limit is not None and len(self._active) >= self.limit:
                return False
            if self.per_namespace is not None:
                prefix = key.split("/", 1)[0] + "/"
                held = sum(1 for k in self._active if k.startswith(prefix))
                return held < self.per_namespace
            return True

    def update(self, key: str, active: bool) -> None:
        with self._lock:
            if active:
                self._active.add(key)
            else:
                self._active.discard(key)

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._active)


@dataclass
class PlanReconciler:
    store: PlanStore
    workloads: WorkloadControl
    router_for: Callable[[RolloutPlan], TrafficRouter]
    measure_gates: GateMeasurer
    policy_lookup: Callable[[str, str], dict[str, Any] | None]
    clock: Clock
    telemetry: Telemetry
    events: EventSink | None = None
    submit: Submit | None = None
    slots: Slots = field(default_factory=lambda: Slots(None))
    leading: Callable[[], bool] = lambda: True
    # The namespace's platform SLOPolicies (label rolloutctl.dev/platform: "true"): their
    # freeze applies to every plan of the namespace, whatever its sloPolicyRef names.
    platform_policies: Callable[[str], list[dict[str, Any]]] = lambda namespace: []
    # Called after each pass with (key, decision, results): benchmarks and tests listen here.
    on_pass: Callable[[str, Decision, list[ActionResult]], None] | None = None
    # the fast path's latest measurements (runtime.fastpath.FastBoard): a pass with no
    # analysis due hands the plan's to the engine
    fast_board: Any = None
    fast_max_age: float = 30.0

    def reconcile(self, key: str) -> float | None:
        namespace, name = key.split("/", 1)
        raw = self.store.get("RolloutPlan", namespace, name)
        if raw is None:
            self.slots.update(key, False)
            self.telemetry.forget_plan(namespace, name)
            return None
        now = self.clock.now()
        generation = int(raw["metadata"].get("generation") or 0)
        plan, problems = check_plan(raw)
        policy: SLOPolicy | None = None
        if plan is not None and not problems and plan.spec.slo_policy_ref is not None:
            policy, more = self._policy(namespace, plan)
            problems += more
        if plan is None or problems:
            self._invalid(raw, problems, generation, now)
            return None

        router, router_error = self._router(plan)
        obs = self._observe(plan, policy, router, router_error, now)
        decision = decide(obs)
        if not self.leading():
            return None  # lost the lease mid-pass: act on nothing
        results = self._act(plan, router, decision.actions)
        status = record_results(decision.status, results, obs.stable.ready, generation)
        self._write(raw, plan.status, status, decision)
        self.slots.update(key, status.in_run)
        self.telemetry.plan(namespace, name, status)
        self.telemetry.transition(namespace, name, plan.status, status)
        for r in results:
            self.telemetry.actions.labels(r.action.type.value, "ok" if r.ok else "error").inc()
        if status.phase == Phase.ROLLING_BACK and plan.status.phase != Phase.ROLLING_BACK:
            self.telemetry.rollbacks.labels(status.rollback_reason or "Unknown").inc()
        if (status.phase in (Phase.ROLLED_BACK, Phase.FAILED)
                and plan.status.phase != status.phase):
            self.telemetry.runs_failed.labels(status.phase.value, status.reason or "Unknown").inc()
        if self.on_pass is not None:
            self.on_pass(key, decision, results)
        requeue = decision.requeue_after
        if any(not r.ok for r in results) or obs.router.weight is None:
            requeue = min(requeue if requeue is not None else 5.0, 2.0)
        return requeue

    # -- observe -------------------------------------------------------------------------

    def _policy(self, namespace: str, plan: RolloutPlan) -> tuple[SLOPolicy | None, list[Problem]]:
        ref = plan.spec.slo_policy_ref
        assert ref is not None
        raw = self.policy_lookup(namespace, ref.name)
        if raw is None:
            return None, [Problem("spec.sloPolicyRef.name",
                                  f"SLOPolicy {ref.name!r} not found in namespace {namespace}; "
                                  "create it or fix the name")]
        policy, problems = check_policy(raw)
        if policy is None or problems:
            return None, [Problem("spec.sloPolicyRef.name",
                                  f"SLOPolicy {ref.name!r} is invalid: "
                                  + "; ".join(str(p) for p in problems))]
        return policy, check_plan_against_policy(plan, policy)

    def _freeze(self, plan: RolloutPlan, policy: SLOPolicy | None,
                now: datetime) -> FreezeInput | None:
        """The freeze the plan is under: its own policy's and its namespace's platform
        policies', each for the plan's service (the first that blocks it counts)."""
        name, service = plan.metadata.name, plan.spec.service_name
        inputs = [freeze_input(policy, name, now, service) if policy is not None else None]
        own = plan.spec.slo_policy_ref.name if plan.spec.slo_policy_ref else None
        for raw in self.platform_policies(plan.metadata.namespace):
            if raw["metadata"]["name"] == own:
                continue
            platform, problems = check_policy(raw)
            if platform is None or problems:  # never a way around the freeze
                inputs.append(FreezeInput(
                    policy=raw["metadata"]["name"], frozen=True,
                    reason=FreezeReason.BUDGET_UNKNOWN,
                    message="the namespace's platform SLOPolicy is invalid: "
                    + "; ".join(str(p) for p in problems)))
                continue
            inputs.append(freeze_input(platform, name, now, service))
        return combine(inputs)

    def _router(self, plan: RolloutPlan) -> tuple[TrafficRouter | None, RouterError | None]:
        try:
            return self.router_for(plan), None
        except RouterError as exc:
            return None, exc

    def _observe(self, plan: RolloutPlan, policy: SLOPolicy | None,
                 router: TrafficRouter | None, router_error: RouterError | None,
                 now: datetime) -> Observation:
        ns = plan.metadata.namespace
        spec = plan.spec
        stable = self.workloads.observe(ns, spec.target.stable.name)
        canary = self.workloads.observe(ns, spec.target.canary.name)
        try:
            if router is None:
                assert router_error is not None
                raise router_error
            router_obs = router.observe()
        except RouterError as exc:
            router_obs = RouterObservation(weight=None, reason=exc.reason, message=exc.message)
        obs = Observation(
            plan=plan, now=now, stable=stable, canary=canary, router=router_obs,
            policy=policy, freeze=self._freeze(plan, policy, now),
            slot_available=self.slots.available(plan.key),
        )
        if gates_due(obs):
            ctx = QueryContext(service=spec.service_name, namespace=ns,
                               revision=plan.status.revision or "none", at=now)
            window = evaluation_window(plan.status, spec.analysis.window.seconds, now)
            measured = self.measure_gates(plan, policy, ctx, window,
                                          run_seconds(plan.status, now))
            obs = replace(obs, measurements=tuple(measured))
        elif self.fast_board is not None:
            fast = self.fast_board.take(plan.key, now, self.fast_max_age)
            if fast is not None:
                obs = replace(obs, fast=fast)
        return obs

    # -- act -----------------------------------------------------------------------------

    def _act(self, plan: RolloutPlan, router: TrafficRouter | None,
             actions: tuple[Action, ...]) -> list[ActionResult]:
        ns = plan.metadata.namespace
        target = plan.spec.target
        results: list[ActionResult] = []
        for action in actions:
            try:
                if action.type == ActionType.SET_WEIGHT:
                    if router is None:
                        raise RouterError("RouterUnavailable", "the traffic router cannot be built")
                    assert action.weight is not None
                    router.apply(action.weight, mirror=action.mirror, match=action.match)
                    if not router.verify(action.weight, mirror=action.mirror,
                                         match=action.match):
                        raise RouterError("WeightNotApplied",
                                          f"the route does not carry {action.weight}%"
                                          + (f" with {action.mirror}% mirrored"
                                             if action.mirror else "")
                                          + (" and the header routes" if action.match else "")
                                          + " after the write")
                elif action.type == ActionType.SCALE_CANARY:
                    assert action.replicas is not None
                    self.workloads.scale(ns, target.canary.name, action.replicas)
                elif action.type == ActionType.PROMOTE_STABLE:
                    self.workloads.promote(ns, target.stable.name, target.canary.name)
                results.append(ActionResult(action, True, self.clock.now()))
            except (RouterError, ControllerError) as exc:
                reason = getattr(exc, "reason", "ActionFailed")
                message = getattr(exc, "message", str(exc))
                log.warning("%s: %s failed: %s", plan.key, action, message)
                results.append(ActionResult(action, False, self.clock.now(), message, reason))
                break  # later actions depend on this one (never scale down a routed canary)
        return results

    # -- record --------------------------------------------------------------------------

    def _write(self, raw: dict[str, Any], old: RolloutPlanStatus, status: RolloutPlanStatus,
               decision: Decision) -> None:
        wire = status.to_wire()
        if wire == (raw.get("status") or {}):
            self._submit(raw)  # cheap and deduplicated: pending entries get delivered
            return
        try:
            written = self.store.write_status(raw, wire)
        except Conflict:
            written = self._rebase(raw, old, status, decision)
        self._announce(written, old, status, decision)

    def _rebase(self, raw: dict[str, Any], old: RolloutPlanStatus, status: RolloutPlanStatus,
                decision: Decision) -> dict[str, Any]:
        """Someone else wrote the status since we read it. When that was only the
        notification dispatcher (the spec and the rest of the status are as we read them),
        keep its delivery progress and write our decision on top; otherwise start over."""
        meta = raw["metadata"]
        fresh = self.store.get("RolloutPlan", meta["namespace"], meta["name"])
        if fresh is None or fresh["metadata"].get("generation") != meta.get("generation"):
            raise Conflict("the plan changed while it was reconciled")
        theirs = RolloutPlanStatus.model_validate(fresh.get("status") or {})
        if theirs.model_copy(update={"notifications": old.notifications}) != old:
            raise Conflict("the plan's status changed while it was reconciled")
        merged = status.model_copy(update={"notifications": _with_announcements(
            theirs.notifications, status.notifications, decision.announcements)})
        return self.store.write_status(fresh, merged.to_wire())

    def _announce(self, written: dict[str, Any], old: RolloutPlanStatus,
                  status: RolloutPlanStatus, decision: Decision) -> None:
        if self.events is not None:
            for record in status.decisions:
                if record.seq > old.seq:
                    self.events.record(written, record.seq, status.run, record.type,
                                       record.reason, record.message, record.at)
        self._submit(written)

    def _submit(self, obj: dict[str, Any]) -> None:
        if self.submit is not None and obj.get("spec", {}).get("notifications"):
            meta = obj["metadata"]
            self.submit("RolloutPlan", meta["namespace"], meta["name"])

    def _invalid(self, raw: dict[str, Any], problems: list[Problem], generation: int,
                 now: datetime) -> None:
        try:
            old = RolloutPlanStatus.model_validate(raw.get("status") or {})
        except ValueError:
            old = RolloutPlanStatus()
        status = invalid_status(old, [str(p) for p in problems], generation, now)
        wire = status.to_wire()
        if wire != (raw.get("status") or {}):
            written = self.store.write_status(raw, wire)
            if self.events is not None and old.phase != Phase.INVALID:
                self.events.record(written, old.seq + 1, old.run, "InvalidSpec", "InvalidSpec",
                                   status.message, now)


def _with_announcements(theirs: NotificationState, ours: NotificationState,
                        added: tuple[str, ...]) -> NotificationState:
    """The dispatcher's progress (THEIRS, as stored now) plus the entries this pass added."""
    return merge_notifications(theirs, added=[m for m in ours.outbox if m.key in added])


@dataclass
class PolicyReconciler:
    store: PlanStore
    metrics_for: Callable[[SLOPolicy], BudgetSource]
    clock: Clock
    telemetry: Telemetry
    events: EventSink | None = None
    submit: Submit | None = None
    leading: Callable[[], bool] = lambda: True
    # The RolloutPlans of a namespace (raw): the policy guards the services of those it
    # governs. None: the policy guards only spec.service (or its own name), as before.
    plans_in: Callable[[str], list[dict[str, Any]]] | None = None

    def reconcile(self, key: str) -> float | None:
        namespace, name = key.split("/", 1)
        raw = self.store.get("SLOPolicy", namespace, name)
        if raw is None:
            self.telemetry.forget_policy(namespace, name)
            return None
        now = self.clock.now()
        policy, problems = check_policy(raw)
        if policy is None or problems:
            self._invalid(raw, problems, now)
            return None
        old = policy.status
        guarded = self._guarded(policy)
        due = (old.evaluated_at is None
               or old.observed_generation != policy.metadata.generation
               or (self.plans_in is not None
                   and sorted(guarded) != [s.service for s in old.services or []])
               or (now - old.evaluated_at).total_seconds()
               >= policy.spec.evaluation_interval.seconds * 0.95
               or _override_changed(policy, now))
        if not due:
            assert old.evaluated_at is not None
            left = (policy.spec.evaluation_interval.seconds
                    - (now - old.evaluated_at).total_seconds())
            return max(1.0, float(left))
        if self.plans_in is None:
            decision = evaluate(policy, self._measure(policy, next(iter(guarded)), now), now)
        else:
            measured = {service: self._measure(policy, service, now) for service in guarded}
            decision = evaluate_services(policy, measured, now, guarded)
        if not self.leading():
            return None
        wire = decision.status.to_wire()
        if wire != (raw.get("status") or {}):
            try:
                written = self.store.write_status(raw, wire)
            except Conflict:
                fresh = self.store.get("SLOPolicy", namespace, name)
                if fresh is None or fresh["metadata"].get("generation") != raw["metadata"].get(
                        "generation"):
                    raise
                theirs = SLOPolicyStatus.model_validate(fresh.get("status") or {})
                merged = decision.status.model_copy(update={
                    "notifications": _with_announcements(
                        theirs.notifications, decision.status.notifications,
                        decision.announcements)})
                written = self.store.write_status(fresh, merged.to_wire())
            if self.events is not None:
                for seq, type_, text in decision.events:
                    self.events.record(written, seq, 0, type_, type_, text, now)
            if self.submit is not None and policy.spec.notifications is not None:
                self.submit("SLOPolicy", namespace, name)
        self.telemetry.policy(namespace, name, decision.status)
        return decision.requeue_after

    def _guarded(self, policy: SLOPolicy) -> dict[str, list[str]]:
        """The services the policy guards, each with the Deployments of its plans:
        ``spec.service`` when set (one service, whatever its plans are called), else the
        service (``spec.service``, default the stable Deployment's name) of each plan it
        governs — the plans naming it, and every plan of the namespace for a platform
        policy."""
        name = policy.metadata.name
        if self.plans_in is None:
            return {policy.spec.service_for(name): []}
        out: dict[str, list[str]] = {}
        if policy.spec.service is not None:
            out[policy.spec.service] = []
        for plan in self.plans_in(policy.metadata.namespace):
            spec = plan.get("spec") or {}
            ref = (spec.get("sloPolicyRef") or {}).get("name")
            if ref != name and not policy.is_platform:
                continue
            target = spec.get("target") or {}
            stable = (target.get("stable") or {}).get("name")
            canary = (target.get("canary") or {}).get("name")
            service = policy.spec.service or spec.get("service") or stable
            if not isinstance(service, str) or not service:
                continue
            out.setdefault(service, []).extend(
                d for d in (stable, canary) if isinstance(d, str) and d)
        return {s: sorted(set(d)) for s, d in out.items()}

    def _measure(self, policy: SLOPolicy, service: str,
                 now: datetime) -> dict[str, SLOMeasurements]:
        # One set of queries per guarded service and SLO, with the policy's own templates:
        # a template is free PromQL (its aggregation is the author's), so rewriting it to
        # group `by (service)` would change what some queries mean. The cost is small: a
        # namespace has a handful of services, measured once per evaluationInterval (60 s),
        # however many plans share them.
        source = self.metrics_for(policy)
        ctx = QueryContext(service=service,
                           namespace=policy.metadata.namespace, revision="none", at=now)
        out: dict[str, SLOMeasurements] = {}
        for slo in policy.spec.slos:
            if slo.is_threshold or slo.objective is None:
                continue
            budget = source.measure_budget(slo, ctx, slo.window.seconds)
            burns = []
            for i, alert in enumerate(slo.burn_rate_alerts):
                long = source.measure(slo, Track.STABLE, alert.long.seconds, ctx)
                short = source.measure(slo, Track.STABLE, alert.short.seconds, ctx)
                burns.append(BurnRateMeasurement(i, long, short, alert.long.seconds,
                                                 alert.short.seconds))
            out[slo.name] = SLOMeasurements(slo.name, budget, tuple(burns))
        return out

    def _invalid(self, raw: dict[str, Any], problems: list[Problem], now: datetime) -> None:
        from controller.api.conditions import ConditionStatus, ConditionType, set_condition

        try:
            old = SLOPolicyStatus.model_validate(raw.get("status") or {})
        except ValueError:
            old = SLOPolicyStatus()
        message = "; ".join(str(p) for p in problems)
        generation = int(raw["metadata"].get("generation") or 0)
        status = old.model_copy(update={
            "observed_generation": generation, "reason": "InvalidSpec", "message": message,
            "conditions": list(set_condition(old.conditions, ConditionType.READY,
                                             ConditionStatus.FALSE, "InvalidSpec", message,
                                             generation, now)),
        })
        if status.to_wire() != (raw.get("status") or {}):
            self.store.write_status(raw, status.to_wire())


def policy_view(raw: dict[str, Any]) -> object:
    """What a plan's pass reads of this SLOPolicy document (``plan_facing_state``): when it
    is unchanged, a new version of the policy is nothing its plans need to look at again
    for. A document that does not parse is always new (its plans must see it)."""
    try:
        return plan_facing_state(SLOPolicy.model_validate(raw))
    except ValueError:
        return object()


def _override_changed(policy: SLOPolicy, now: datetime) -> bool:
    recorded = {(o.id, o.active) for o in policy.status.overrides}
    wanted = {(o.id, o.expires > now) for o in policy.spec.overrides}
    return recorded != wanted
