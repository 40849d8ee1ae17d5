"""The decision engine: ``decide(observation) -> Decision``. Pure: no I/O, no clock reads.

Every pass rebuilds the whole next status from the persisted one and the observation, so a
controller killed at any moment resumes where it was: replaying a pass from the same status
and observation gives the same decision (same actions, same status, same dedup keys).

The status describes intent: ``canaryWeight`` is the weight the route must carry. When the
route carries something else (a failed write, a crash before the status write, a hand
edit), the next pass writes the intended weight again and records ``DriftCorrected``.

The engine by job: ``context`` (one pass: the typed status draft and shared primitives),
``run`` (the run state machine), ``promotion``, ``drift``, ``drills``, ``announce``
(wording and severity of announcements), ``plan_conditions``, ``requests`` (operator
requests) and ``schedule`` (when to measure). This module runs a pass and keeps the names
the rest of the controller imports.
"""

from __future__ import annotations

from datetime import datetime

from controller.api.conditions import ConditionStatus, ConditionType, set_condition
from controller.api.decisions import DecisionType, Reason
from controller.api.plan import DrillOutcome, Phase, RolloutPlanStatus
from controller.engine.context import Pass
from controller.engine.drift import correct_drift, keep_canary_scaled
from controller.engine.drills import drill
from controller.engine.observation import ActionResult, ActionTag, Decision, Observation
from controller.engine.plan_conditions import plan_conditions
from controller.engine.run import idle, in_run
from controller.engine.schedule import (
    STEPPING_PHASES,
    TRANSITION_REQUEUE,
    analysis_due,
    evaluation_window,
    fast_path_wants,
    gates_due,
    is_stepping,
    run_seconds,
    steps_hash,
    unrecorded_step_start,
)

__all__ = [
    "STEPPING_PHASES", "TRANSITION_REQUEUE", "analysis_due", "decide", "evaluation_window",
    "fast_path_wants", "gates_due", "invalid_status", "is_stepping", "record_results",
    "run_seconds", "steps_hash", "unrecorded_step_start",
]


def decide(obs: Observation) -> Decision:
    """The next status, the actions to reach it, and when to look again."""
    p = Pass(obs)
    st = obs.plan.status
    if st.phase == Phase.INVALID:
        p.enter(Phase.PENDING if st.current_step is None else Phase.PROGRESSING,
                Reason.SPEC_VALID, "the spec is valid again")
        p.event(DecisionType.SPEC_VALID, Reason.SPEC_VALID, "the spec is valid again")
    if st.active_drill is not None:
        drill(p)
    elif st.in_run:
        in_run(p)
        if p.d.phase in STEPPING_PHASES:
            keep_canary_scaled(p)
        if p.d.phase in STEPPING_PHASES or p.d.phase == Phase.PROMOTING:
            correct_drift(p)
    else:
        idle(p)
    d = p.d
    d.observed_generation = obs.plan.metadata.generation
    conditions = plan_conditions(obs, d)
    d.conditions = st.conditions if conditions == tuple(st.conditions) else list(conditions)
    requeue = max(0.0, min(p.requeue)) if p.requeue else None
    return Decision(tuple(p.actions), d.build(st), requeue, tuple(p.added))


def record_results(status: RolloutPlanStatus, results: list[ActionResult], stable_ready: bool,
                   generation: int) -> RolloutPlanStatus:
    """Fold the outcome of the actions into the status before it is written: drill timings
    come from when the writes really happened, and failures show in the Degraded condition."""
    drills = list(status.drills)
    if drills and drills[-1].outcome == DrillOutcome.RUNNING:
        report = drills[-1]
        for r in results:
            if not r.ok:
                continue
            if r.action.tag == ActionTag.DRILL_ZERO and report.canary_weight_zero_at is None:
                report = report.model_copy(update={"canary_weight_zero_at": r.at})
                if stable_ready:
                    report = report.model_copy(update={"stable_ready_at": r.at})
            if r.action.tag == ActionTag.DRILL_RESTORE and report.restored_at is None:
                report = report.model_copy(update={"restored_at": r.at})
        drills[-1] = report
    failed = [r for r in results if not r.ok]
    conditions = list(status.conditions)
    if failed:
        at = failed[0].at
        conditions = list(set_condition(
            conditions, ConditionType.DEGRADED, ConditionStatus.TRUE,
            failed[0].reason or Reason.ACTION_FAILED,
            "; ".join(f"{r.action}: {r.error}" for r in failed), generation, at,
        ))
    return status.model_copy(update={"drills": drills, "conditions": conditions})


def invalid_status(status: RolloutPlanStatus, problems: list[str], generation: int,
                   now: datetime) -> RolloutPlanStatus:
    """The status of a plan whose spec cannot be acted on: nothing moves, the reason shows."""
    message = "; ".join(problems)
    conditions = set_condition(status.conditions, ConditionType.READY, ConditionStatus.FALSE,
                               Reason.INVALID_SPEC, message, generation, now)
    return status.model_copy(update={
        "phase": Phase.INVALID, "reason": Reason.INVALID_SPEC, "message": message,
        "observed_generation": generation, "conditions": list(conditions),
    })
