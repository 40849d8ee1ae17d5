"""Drift: the route or the canary's replicas differ from what the status intends (a
failed write, a crash before the status write, a hand edit). The next pass writes the
intended routing again and records ``DriftCorrected`` — except that traffic never goes
back to a canary with evidence of failure."""

from __future__ import annotations

from controller.api.decisions import DecisionType, Reason
from controller.api.plan import Phase, Verdict
from controller.engine.announce import on_off
from controller.engine.context import Pass
from controller.engine.observation import ActionType
from controller.engine.schedule import STEPPING_PHASES


def keep_canary_scaled(p: Pass) -> None:
    """While a run sits at a step, the canary keeps its replicas (a hand scale-down, or a
    scale-down the controller did not see land before it scaled up again)."""
    if (p.d.phase in STEPPING_PHASES and p.d.current_step is not None
            and p.obs.canary.exists):
        p.scale_canary(p.canary_replicas())


def correct_drift(p: Pass) -> None:
    observed = p.obs.router.weight
    desired = p.d.canary_weight
    if observed is None or any(a.type == ActionType.SET_WEIGHT for a in p.actions):
        return
    mirror = p.d.canary_mirror or 0
    if observed == desired:
        if not p.route_carries(desired, mirror):
            r = p.obs.router
            p.set_weight(desired, mirror=mirror)
            p.event(DecisionType.DRIFT_CORRECTED, Reason.ROUTE_DRIFT,
                    f"the route mirrored {r.mirror}% with header routes {on_off(r.match)} "
                    f"instead of {mirror}% and "
                    f"{'on' if p.match_for(desired, mirror) else 'off'}; restored")
        return
    stepping = p.d.phase in STEPPING_PHASES and p.d.step_started_at is not None
    if stepping and observed < desired and _below_plan(p, observed, desired):
        return
    p.set_weight(desired, mirror=mirror)
    p.event(DecisionType.DRIFT_CORRECTED, Reason.WEIGHT_DRIFT,
            f"the route carried {observed}% instead of {desired}%; restored {desired}%")


def _below_plan(p: Pass, observed: int, desired: int) -> bool:
    """Less canary traffic than planned: a crash between a rollback's route write and its
    status write, or a hand edit. Traffic never goes back to a canary with evidence of
    failure. True when handled here (finish the rollback, or hold)."""
    gates = p.d.gates
    passing = p.obs.measurements is not None and all(g.verdict == Verdict.PASS for g in gates)
    failing = [g for g in gates if g.verdict == Verdict.FAIL or g.failing_since is not None]
    if failing and observed == 0:
        # Unrouted, the canary cannot be measured any more (no traffic, no data): waiting
        # for its gates would wait forever. Finish the rollback.
        p.rollback(Reason.ROUTE_AT_ZERO, "the route sends 0% to the canary (plan: "
                   f"{desired}%) while " + ", ".join(g.name for g in failing)
                   + " failed: finishing the rollback", failing)
        return True
    if failing and not passing:
        # Still some traffic: the gates keep judging; a sustained failure rolls back.
        p.enter(Phase.HOLDING, Reason.WEIGHT_BELOW_PLAN,
                f"the route carries {observed}% instead of {desired}%; restoring it once "
                "every gate passes")
        p.requeue.append(p.spec.analysis.interval.seconds)
        return True
    return False
