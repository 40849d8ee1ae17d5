"""Rollback drills (``rolloutctl drill``): a rehearsal of the real rollback path, timed.

Mid-run, a drill rolls back as if a gate had failed (and, with ``restore``, puts the step
back); on an idle plan it first shifts the first step's weight to the canary (synthetic).
The timings come from when the writes really happened (``decide.record_results``).
"""

from __future__ import annotations

from datetime import datetime

from controller.api.decisions import DecisionType, Reason
from controller.api.plan import (
    MAX_DRILLS,
    DrillOutcome,
    DrillReport,
    DrillRequest,
    DrillStage,
    Phase,
    RunOutcome,
)
from controller.engine import verdicts
from controller.engine.announce import secs
from controller.engine.context import Pass
from controller.engine.observation import ActionTag
from controller.engine.schedule import TRANSITION_REQUEUE


def start_drill(p: Pass, request: DrillRequest, mid_run: bool) -> None:
    p.handle("drill", request)
    d = p.d
    report = DrillReport(
        id=request.id,
        by=request.by,
        synthetic=not mid_run,
        restore=request.restore,
        max_duration=request.max_duration,
        stage=DrillStage.ROLLING_BACK if mid_run else DrillStage.SHIFTING,
        pre_drill_phase=d.phase,
        pre_drill_step=d.current_step,
        pre_drill_weight=d.canary_weight,
        requested_at=request.at or p.now,
        rollback_started_at=p.now if mid_run else None,
    )
    d.drills = (d.drills + [report])[-MAX_DRILLS:]
    text = (f"drill {request.id} requested by {request.by or 'an operator'}: "
            + ("rolling back as if a gate had failed" if mid_run
               else f"shifting {p.first_weight()}% to the canary, then rolling back"))
    p.event(DecisionType.DRILL_STARTED, Reason.DRILL, text, drill=True)
    if mid_run:
        p.rollback(Reason.DRILL, text, [], ActionTag.DRILL_ZERO, drill=True)
    else:
        p.enter(Phase.ROLLING_BACK, Reason.DRILL, text)
        drill(p)


def _update(p: Pass, *, stage: DrillStage | None = None,
            rollback_started_at: datetime | None = None,
            stable_ready_at: datetime | None = None, outcome: DrillOutcome | None = None,
            message: str | None = None) -> DrillReport:
    """The running drill's report with these fields changed (named: a typo is an error)."""
    values = {"stage": stage, "rollback_started_at": rollback_started_at,
              "stable_ready_at": stable_ready_at, "outcome": outcome, "message": message}
    drills = p.d.drills
    report = drills[-1].model_copy(
        update={k: v for k, v in values.items() if v is not None})
    p.d.drills = drills[:-1] + [report]
    return report


def drill(p: Pass) -> None:
    """One pass of the running drill: the stage it is in decides the next write."""
    report = p.d.drills[-1]
    p.requeue.append(TRANSITION_REQUEUE / 2)
    if report.stage == DrillStage.SHIFTING:
        _shifting(p)
    elif report.stage == DrillStage.ROLLING_BACK:
        _rolling_back(p, report)
    elif report.stage == DrillStage.RESTORING:
        _restoring(p, report)


def _shifting(p: Pass) -> None:
    first = p.first_weight()
    if p.obs.router.weight == first and p.d.canary_weight == first:
        _update(p, stage=DrillStage.ROLLING_BACK, rollback_started_at=p.now)
        p.set_weight(0, ActionTag.DRILL_ZERO)
        p.scale_canary(0)
        return
    p.scale_canary(p.canary_replicas())
    if p.uses_canary_replicas and not p.canary_can_take_traffic():
        p.enter(Phase.ROLLING_BACK, Reason.DRILL, "drill: waiting for the canary")
        return
    p.set_weight(first, ActionTag.DRILL_SHIFT)


def _rolling_back(p: Pass, report: DrillReport) -> None:
    if report.canary_weight_zero_at is None:
        p.set_weight(0, ActionTag.DRILL_ZERO)
        p.scale_canary(0)
        return
    p.scale_canary(0)
    if report.stable_ready_at is None:
        if not p.obs.stable.ready:
            return
        report = _update(p, stable_ready_at=p.now)
    if report.restore and not report.synthetic and report.pre_drill_step is not None:
        _update(p, stage=DrillStage.RESTORING)
        p.enter(Phase.PROGRESSING, Reason.DRILL_RESTORING,
                f"drill: restoring step {report.pre_drill_step + 1}")
        drill(p)
        return
    _finish(p, report)


def _restoring(p: Pass, report: DrillReport) -> None:
    if report.restored_at is not None and p.obs.router.weight == report.pre_drill_weight:
        _finish(p, report)
        return
    p.scale_canary(p.canary_replicas())
    if p.uses_canary_replicas and not p.canary_can_take_traffic():
        return
    p.set_weight(report.pre_drill_weight, ActionTag.DRILL_RESTORE)


def _finish(p: Pass, report: DrillReport) -> None:
    end = report.restored_at or report.stable_ready_at or p.now
    took = (end - report.requested_at).total_seconds()
    outcome = (DrillOutcome.SUCCEEDED if took <= report.max_duration.seconds
               else DrillOutcome.TIMED_OUT)
    to_zero = secs(report.requested_at, report.canary_weight_zero_at)
    message = (f"drill {report.id}: canary weight 0 after {to_zero}, "
               f"stable ready after {secs(report.requested_at, report.stable_ready_at)}"
               + (f", restored after {secs(report.requested_at, report.restored_at)}"
                  if report.restored_at else "")
               + f"; {outcome.value}")
    _update(p, stage=DrillStage.DONE, outcome=outcome, message=message)
    if report.synthetic:
        p.enter(report.pre_drill_phase or Phase.PENDING, Reason.DRILL_COMPLETED, message)
    elif report.restore and report.restored_at is not None:
        d = p.d
        d.step_started_at = report.restored_at
        d.last_analysis_at = d.rollback_reason = None
        d.gates = [verdicts.initial(g) for g in p.spec.gates]
        p.enter(Phase.PROGRESSING, Reason.DRILL_RESTORED, message)
    else:
        p.end_run(RunOutcome.ROLLED_BACK, Reason.DRILL, message)
        p.enter(Phase.ROLLED_BACK, Reason.DRILL, message)
    p.event(DecisionType.DRILL_COMPLETED, outcome.value, message, drill=True)
