"""One pass under construction: the observation, the typed next status (``StatusDraft``),
the actions and the requeues, with the primitives every job of the engine shares (route
and scale the canary, record a decision, enter a phase, roll back, end a run)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Literal, overload

from controller.api.decisions import DecisionType
from controller.api.notifications import trim_outbox
from controller.api.plan import (
    MAX_DECISIONS,
    MAX_HISTORY,
    DecisionRecord,
    DrillRequest,
    GateStatus,
    Phase,
    PromoteRequest,
    Request,
    RolloutPlanSpec,
    RouterKind,
    RunOutcome,
    RunRecord,
)
from controller.engine import announce, requests
from controller.engine.draft import StatusDraft
from controller.engine.observation import Action, ActionTag, ActionType, Observation
from controller.engine.requests import RequestKind
from controller.engine.schedule import TRANSITION_REQUEUE, elapsed


@dataclass
class Pass:
    """One decision under construction: the next status, the actions and the requeues."""

    obs: Observation
    d: StatusDraft = field(init=False)
    actions: list[Action] = field(default_factory=list)
    requeue: list[float] = field(default_factory=list)
    added: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.d = StatusDraft.of(self.obs.plan.status)
        self.spec: RolloutPlanSpec = self.obs.plan.spec
        self.now: datetime = self.obs.now
        self.has_requests = requests.any_request(self.spec.requests)

    # -- the canary and the route ----------------------------------------------------------

    @cached_property
    def uses_canary_replicas(self) -> bool:
        """Routers other than the replica ratio need the canary scaled by the controller.
        (Asked only by passes that move something: most passes never look.)"""
        return self.spec.traffic.kind != RouterKind.REPLICAS

    def canary_can_take_traffic(self) -> bool:
        canary = self.obs.canary
        return canary.ready and canary.replicas > 0 and canary.ready_replicas > 0

    def canary_replicas(self) -> int:
        wanted = self.spec.target.canary.replicas
        if wanted is not None:
            return int(wanted)
        return max(1, self.obs.stable.replicas)

    def set_weight(self, weight: int, tag: ActionTag = ActionTag.NONE, mirror: int = 0) -> None:
        """Route WEIGHT percent of requests to the canary and copy MIRROR percent to it;
        the header/cookie routes (``spec.traffic.match``) are on whenever either is."""
        self.actions = [a for a in self.actions if a.type != ActionType.SET_WEIGHT]
        self.actions.append(Action(ActionType.SET_WEIGHT, weight=weight, tag=tag,
                                   mirror=mirror, match=self.match_for(weight, mirror)))
        self.d.canary_weight = weight
        self.d.canary_mirror = mirror or None
        if weight == 0 and not mirror:
            self.d.route_pending_since = None

    def match_for(self, weight: int, mirror: int) -> bool:
        return bool(self.spec.traffic.match) and (weight > 0 or mirror > 0)

    def route_carries(self, weight: int, mirror: int) -> bool:
        """Does the route carry this routing (weight, mirror, header routes) now?"""
        r = self.obs.router
        return (r.weight == weight and r.mirror == mirror
                and r.match == self.match_for(weight, mirror))

    def route_accepted(self) -> bool:
        """The route carries the intended routing and its parents accepted it."""
        return (self.route_carries(self.d.canary_weight, self.d.canary_mirror or 0)
                and self.obs.router.ready is not False)

    def first_weight(self) -> int:
        """The first weighted step's weight (a drill shifts that much, mirror steps aside)."""
        return int(next(s.weight for s in self.spec.steps if s.mirror is None))

    def scale_canary(self, replicas: int) -> None:
        if not self.uses_canary_replicas:
            return
        canary = self.obs.canary
        if canary.exists and canary.replicas == replicas:
            return
        if canary.autoscaled and replicas > 0 and canary.replicas > 0:
            # An HPA owns a running canary's replicas. The controller only starts it from 0
            # (an HPA never scales up from 0) and scales it to 0 at the end of a run.
            return
        self.actions = [a for a in self.actions if a.type != ActionType.SCALE_CANARY]
        self.actions.append(Action(ActionType.SCALE_CANARY, replicas=replicas))

    # -- requests --------------------------------------------------------------------------

    @overload
    def pending(self, kind: Literal["promote"]) -> PromoteRequest | None: ...
    @overload
    def pending(self, kind: Literal["drill"]) -> DrillRequest | None: ...
    @overload
    def pending(self, kind: RequestKind) -> Request | None: ...
    def pending(self, kind: RequestKind) -> Request | None:
        """KIND's request when the plan carries one not yet acted on."""
        if not self.has_requests:
            return None
        return requests.pending(self.spec.requests, self.d.handled, kind)

    def handle(self, kind: RequestKind, request: Request) -> None:
        self.d.handled = requests.handle(self.d.handled, kind, request)

    # -- decisions, phases and runs --------------------------------------------------------

    def event(self, type_: DecisionType, reason: str, message: str, *,
              evidence: list[GateStatus] | None = None, drill: bool = False) -> None:
        """Record a decision in status and, when the plan has notifications, queue it."""
        d = self.d
        d.seq = seq = d.seq + 1
        step, weight = d.current_step, d.canary_weight
        record = DecisionRecord(seq=seq, at=self.now, type=type_, reason=reason,
                                message=message, step=step, weight=weight)
        d.decisions = (d.decisions + [record])[-MAX_DECISIONS:]
        if self.spec.notifications is None:
            return
        key = f"{d.run}.{seq}"
        title = announce.title(type_, self.obs.plan.metadata, drill=drill, step=step,
                               steps=len(self.spec.steps), weight=weight,
                               weight_before=self.obs.plan.status.canary_weight)
        entry = announce.outgoing(key, type_, self.now, title, message, drill=drill,
                                  run=d.run, step=step, weight=weight,
                                  evidence=evidence or [])
        outbox = trim_outbox(list(d.notifications.outbox) + [entry])
        d.notifications = d.notifications.model_copy(update={"outbox": outbox})
        self.added.append(key)

    def enter(self, phase: Phase, reason: str, message: str = "") -> None:
        self.d.phase = phase
        self.d.reason = reason
        self.d.message = message

    def waited_past_deadline(self) -> bool:
        """Start counting the progress deadline at the first pass that waits; has it
        passed?"""
        since = self.d.waiting_since
        if since is None:
            self.d.waiting_since = self.now
            return False
        return elapsed(since, self.now) >= self.spec.analysis.progress_deadline.seconds

    def end_run(self, outcome: RunOutcome, reason: str, message: str) -> None:
        d = self.d
        d.waiting_since = None
        started = d.run_started_at
        weight_zero_at = next(
            (r.at for r in reversed(d.decisions)
             if r.type == DecisionType.ROLLBACK_STARTED and r.at >= (started or r.at)), None,
        ) if outcome == RunOutcome.ROLLED_BACK else None
        record = RunRecord(
            run=d.run, revision=d.revision, outcome=outcome, reason=reason, message=message,
            started_at=started, ended_at=self.now, final_step=d.current_step,
            final_weight=self.obs.plan.status.canary_weight, promoted_full=d.promoted_full,
            weight_zero_at=weight_zero_at, evidence=list(d.gates),
        )
        d.history = (d.history + [record])[-MAX_HISTORY:]

    def rollback(self, reason: str, message: str, evidence: list[GateStatus],
                 tag: ActionTag = ActionTag.ROLLBACK, drill: bool = False) -> None:
        """Canary traffic to 0 first (one idempotent write), then scale the canary down."""
        d = self.d
        d.rollback_reason = reason
        d.promotion_stage = d.pause_reason = None
        d.waiting_since = d.route_pending_since = None
        self.set_weight(0, tag)
        self.scale_canary(0)
        self.enter(Phase.ROLLING_BACK, reason, message)
        self.event(DecisionType.ROLLBACK_STARTED, reason, message, evidence=evidence,
                   drill=drill)
        self.requeue.append(TRANSITION_REQUEUE)
