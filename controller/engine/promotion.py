"""The end of a run: promotion (stable takes the canary's template, then all traffic),
success, failure (stable cannot take the traffic back) and the end of a rollback."""

from __future__ import annotations

from controller.api.decisions import DecisionType, Reason
from controller.api.plan import (
    OnSuccessPromote,
    Phase,
    PromotionStage,
    RunOutcome,
    Verdict,
    WorkloadReason,
)
from controller.engine.announce import why
from controller.engine.context import Pass
from controller.engine.observation import Action, ActionTag, ActionType
from controller.engine.schedule import TRANSITION_REQUEUE


def finish_steps(p: Pass) -> None:
    if p.spec.on_success.promote == OnSuccessPromote.COPY_TO_STABLE:
        p.d.promotion_stage = PromotionStage.COPYING_TEMPLATE
        p.d.route_pending_since = None
        p.enter(Phase.PROMOTING, Reason.COPYING_TEMPLATE,
                "every step passed; stable takes the canary's pod template")
        p.event(DecisionType.PROMOTING, Reason.STEPS_COMPLETE,
                "every step passed; promoting to stable")
        promoting(p)
        return
    succeed(p, Reason.STEPS_COMPLETE, "every step passed; the canary keeps the traffic")


def succeed(p: Pass, reason: str, message: str) -> None:
    p.end_run(RunOutcome.SUCCEEDED, reason, message)
    p.d.promotion_stage = None
    p.enter(Phase.SUCCEEDED, reason, message)
    p.event(DecisionType.SUCCEEDED, reason, message)


def fail(p: Pass, reason: str, message: str) -> None:
    """End the run where it stands, without a rollback: stable cannot take the traffic
    back, so the route stays as it is (the canary keeps serving) and people are told."""
    p.end_run(RunOutcome.FAILED, reason, message)
    p.d.promotion_stage = None
    p.enter(Phase.FAILED, reason, message)
    p.event(DecisionType.FAILED, reason, message)


def promoting(p: Pass) -> None:
    """Stable takes the canary's template; once ready, all traffic to stable, then the
    canary scales to 0."""
    obs = p.obs
    if obs.canary.revision != obs.stable.revision:
        p.actions.append(Action(ActionType.PROMOTE_STABLE))
        p.d.promotion_stage = PromotionStage.WAITING_FOR_STABLE
        p.enter(Phase.PROMOTING, Reason.COPYING_TEMPLATE,
                "stable takes the canary's pod template")
        p.requeue.append(TRANSITION_REQUEUE)
        return
    if not obs.stable.ready:
        _stable_not_ready(p)
        return
    p.d.waiting_since = None
    routed = p.route_carries(0, 0)
    scaled = not p.uses_canary_replicas or obs.canary.replicas == 0
    if routed and scaled and p.d.canary_weight == 0:
        succeed(p, Reason.PROMOTED, "stable runs the canary's template and takes all traffic")
        return
    p.d.promotion_stage = (PromotionStage.ROUTING_TO_STABLE if not routed
                           else PromotionStage.SCALING_DOWN_CANARY)
    p.set_weight(0)
    p.scale_canary(0)
    p.enter(Phase.PROMOTING, Reason.ROUTING_TO_STABLE,
            "all traffic to stable, then the canary scales to 0")
    p.requeue.append(TRANSITION_REQUEUE)


def _stable_not_ready(p: Pass) -> None:
    stable = p.obs.stable
    if p.waited_past_deadline():
        fail(p, WorkloadReason.PROGRESS_DEADLINE_EXCEEDED.value,
             f"stable was not ready within {p.spec.analysis.progress_deadline} "
             f"(analysis.progressDeadline) after taking the canary's template: "
             f"{stable.ready_replicas}/{stable.replicas} ready{why(stable)}; the canary "
             f"keeps serving {p.d.canary_weight}% until an operator acts")
        return
    p.d.promotion_stage = PromotionStage.WAITING_FOR_STABLE
    p.enter(Phase.PROMOTING, Reason.WAITING_FOR_STABLE,
            f"stable has {stable.ready_replicas}/{stable.replicas} ready" + why(stable))
    p.requeue.append(TRANSITION_REQUEUE)


def rolling_back(p: Pass) -> None:
    """Keep the route at 0 and the canary at 0 replicas until both are observed; then the
    run has rolled back."""
    obs, d = p.obs, p.d
    before = obs.plan.status
    if not p.route_carries(0, 0) or before.canary_weight != 0 or before.canary_mirror:
        p.set_weight(0, ActionTag.ROLLBACK)
    p.scale_canary(0)
    routed = p.route_carries(0, 0)
    scaled = not p.uses_canary_replicas or obs.canary.replicas == 0
    if not (routed and scaled):
        p.requeue.append(TRANSITION_REQUEUE)
        return
    reason = d.rollback_reason or Reason.ROLLED_BACK
    message = d.message
    p.end_run(RunOutcome.ROLLED_BACK, reason, message)
    p.enter(Phase.ROLLED_BACK, reason, message)
    p.event(DecisionType.ROLLED_BACK, reason,
            "all traffic is on stable and the canary is scaled to 0: " + message,
            evidence=[g for g in d.gates if g.verdict == Verdict.FAIL])
