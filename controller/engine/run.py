"""The run state machine: a new canary revision starts a run, which walks the steps
(shift, hold, judge the gates, advance), then promotes or rolls back. Each function is one
state's pass; drills live in ``drills``, the shared primitives in ``context``."""

from __future__ import annotations

from controller.api.decisions import DecisionType, Reason
from controller.api.plan import (
    Gate,
    GateReason,
    GateStatus,
    OnNoData,
    Phase,
    PromotionMode,
    Request,
    RunOutcome,
    Step,
    Verdict,
    WorkloadReason,
)
from controller.api.policy import InFlight
from controller.engine import verdicts
from controller.engine.announce import freeze_info, freeze_text, stuck_text, why
from controller.engine.context import Pass
from controller.engine.drift import correct_drift
from controller.engine.drills import start_drill
from controller.engine.observation import FreezeInput
from controller.engine.promotion import finish_steps, promoting, rolling_back
from controller.engine.requests import RequestKind
from controller.engine.schedule import TRANSITION_REQUEUE, elapsed, slo_of, steps_hash

# -- starting a run and its steps ------------------------------------------------------------


def start_run(p: Pass, reason: str, message: str) -> None:
    d = p.d
    d.run += 1
    d.revision = p.obs.canary.revision
    d.steps_hash = steps_hash(p.spec.steps)
    d.current_step = d.canary_weight = 0
    d.canary_mirror = None
    d.route_pending_since = d.step_started_at = d.last_analysis_at = None
    d.run_started_at = p.now
    d.promotion_stage = None
    d.promoted_full = False
    d.rollback_reason = d.pause_reason = None
    d.waiting_since = None
    d.freeze = None
    d.gates = [verdicts.initial(g) for g in p.spec.gates]
    p.enter(Phase.PROGRESSING, Reason.WAITING_FOR_CANARY, message)
    p.event(DecisionType.RUN_STARTED, reason, message)
    p.scale_canary(p.canary_replicas())
    begin_step_if_ready(p)


def _canary_not_ready(p: Pass, step: Step) -> None:
    """Wait for the canary before shifting to STEP; past the progress deadline, roll back."""
    canary = p.obs.canary
    if p.waited_past_deadline():
        p.rollback(
            WorkloadReason.PROGRESS_DEADLINE_EXCEEDED.value,
            f"the canary was not ready within {p.spec.analysis.progress_deadline} "
            f"(analysis.progressDeadline): {canary.ready_replicas}/{canary.replicas} "
            f"ready{why(canary)}", [])
        return
    p.enter(Phase.PROGRESSING, Reason.WAITING_FOR_CANARY,
            "waiting for the canary to be ready before "
            + (f"mirroring {step.mirror}%" if step.mirror else f"shifting {step.weight}%")
            + why(canary))
    p.requeue.append(TRANSITION_REQUEUE)


def begin_step_if_ready(p: Pass) -> None:
    """Shift traffic to the current step once the canary can take it."""
    d = p.d
    assert d.current_step is not None
    step = p.spec.steps[d.current_step]
    if p.uses_canary_replicas and not p.canary_can_take_traffic():
        _canary_not_ready(p, step)
        return
    p.set_weight(step.weight, mirror=step.mirror or 0)
    # The gates keep the verdicts that let this step start until its first evaluation.
    d.step_started_at = p.now
    d.last_analysis_at = d.waiting_since = None
    if p.obs.router.ready is not None and not p.route_carries(step.weight, step.mirror or 0):
        # The hold counts once the route's parents accept the change (stepping()).
        d.route_pending_since = p.now
        p.enter(Phase.PROGRESSING, Reason.WAITING_FOR_ROUTE, waiting_text(p))
    else:
        p.enter(Phase.PROGRESSING, Reason.HOLDING_STEP, holding_text(p))
    gates = [g for g in d.gates if g.evaluated_at is not None]
    evidence = ("; gates at the advance: " + ", ".join(
        f"{g.name} {g.verdict.value}" + (f" ({g.value:g})" if g.value is not None else "")
        for g in gates)) if gates else ""
    what = (f"mirroring {step.mirror}% to the canary" if step.mirror
            else f"canary weight {step.weight}%")
    p.event(DecisionType.STEP_ADVANCED, Reason.STEP_STARTED,
            f"{what}, holding {step.hold}{evidence}")
    p.requeue.append(min(p.spec.analysis.interval.seconds, step.hold.seconds,
                         TRANSITION_REQUEUE if d.route_pending_since else 1e9))


def holding_text(p: Pass) -> str:
    """Stable across passes (status is written only when something changes): the time
    left is derived from stepStartedAt by whoever shows it."""
    index, started = p.d.current_step, p.d.step_started_at
    assert index is not None and started is not None
    step = p.spec.steps[index]
    at = f"mirroring {step.mirror}%" if step.mirror else f"at {step.weight}%"
    return (f"step {index + 1}/{len(p.spec.steps)} {at}, holding {step.hold}"
            f" from {started.isoformat()[11:19]}Z")


def waiting_text(p: Pass) -> str:
    """Stable across passes: the parent's own words are in the Degraded condition."""
    index, since = p.d.current_step, p.d.route_pending_since
    assert index is not None and since is not None
    return (f"step {index + 1}/{len(p.spec.steps)}: waiting for the route to accept "
            f"the change (since {since.isoformat()[11:19]}Z) before the hold counts")


# -- idle plans --------------------------------------------------------------------------------


def idle(p: Pass) -> None:
    """No run: ignore requests meant for a run, start a drill or a run, or wait."""
    obs, d = p.obs, p.d
    _ignore_run_requests(p)
    drill = p.pending("drill")
    if drill is not None and obs.canary.exists:
        if d.canary_weight == 0:
            start_drill(p, drill, mid_run=False)
            return
        p.handle("drill", drill)
        p.event(DecisionType.REQUEST_IGNORED, Reason.CANARY_CARRIES_TRAFFIC,
                f"drill {drill.id} ignored: the idle canary carries {d.canary_weight}% "
                "(onSuccess: none)")
    if not obs.canary.exists:
        p.enter(Phase.PENDING, Reason.CANARY_NOT_FOUND,
                f"Deployment {p.spec.target.canary.name} not found; create it")
        return
    if not obs.stable.exists:
        p.enter(Phase.PENDING, Reason.STABLE_NOT_FOUND,
                f"Deployment {p.spec.target.stable.name} not found; create it")
        return
    if _start_if_new(p):
        return
    same = obs.canary.revision is not None and obs.canary.revision == obs.stable.revision
    if same and d.phase in (Phase.PENDING, Phase.FROZEN):
        p.enter(Phase.PENDING, Reason.NO_NEW_REVISION,
                "the canary runs the same pod template as stable")
        d.freeze = None
    if d.phase != Phase.FAILED:  # after a failure the route is the operator's
        correct_drift(p)


def _ignore_run_requests(p: Pass) -> None:
    kinds: tuple[RequestKind, ...] = ("promote", "resume", "abort")
    for kind in kinds:
        request = p.pending(kind)
        if request is not None:
            p.handle(kind, request)
            p.event(DecisionType.REQUEST_IGNORED, Reason.NO_RUN_IN_PROGRESS,
                    f"{kind} request {request.id} ignored: no run in progress")


def _start_if_new(p: Pass) -> bool:
    """Start a run on a new canary revision or a retry request, unless a freeze or the
    concurrency limit holds it (then say so). True when this pass is decided."""
    obs, d = p.obs, p.d
    retry = p.pending("retry")
    new_revision = (obs.canary.revision is not None and obs.canary.revision != d.revision
                    and obs.canary.revision != obs.stable.revision)
    if retry is not None and d.phase != Phase.ROLLED_BACK:
        p.handle("retry", retry)
        p.event(DecisionType.REQUEST_IGNORED, Reason.NOTHING_TO_RETRY,
                f"retry request {retry.id} ignored: the last run did not roll back")
        retry = None
    if not new_revision and retry is None:
        return False
    freeze = obs.freeze
    if freeze is not None and freeze.blocks:
        if d.phase != Phase.FROZEN:
            p.event(DecisionType.FROZEN, freeze.reason, freeze_text(freeze))
        p.enter(Phase.FROZEN, freeze.reason, freeze_text(freeze))
        d.freeze = freeze_info(freeze, d.freeze, p.now)
        return True
    if not obs.slot_available:
        p.enter(Phase.PENDING, Reason.WAITING_FOR_SLOT,
                "maxConcurrentRollouts runs (in all, or in this namespace) are in progress; "
                "this run waits")
        return True
    if d.phase == Phase.FROZEN:
        p.event(DecisionType.UNFROZEN, Reason.FREEZE_LIFTED,
                "the error-budget freeze no longer blocks this plan"
                + (" (override)" if freeze and freeze.overridden else ""))
    if retry is not None:
        p.handle("retry", retry)
        start_run(p, Reason.RETRY, f"retry requested by {retry.by or 'an operator'}")
    else:
        start_run(p, Reason.NEW_REVISION, f"new canary revision {obs.canary.revision}")
    return True


# -- a run in progress ---------------------------------------------------------------------


def in_run(p: Pass) -> None:
    obs, spec, d = p.obs, p.spec, p.d
    phase = d.phase
    if (obs.canary.revision is not None and obs.canary.revision != d.revision
            and phase != Phase.ROLLING_BACK):
        supersede(p)
        return
    abort = p.pending("abort")
    if abort is not None and phase != Phase.ROLLING_BACK:
        p.handle("abort", abort)
        p.rollback(Reason.ABORTED, f"aborted by {abort.by or 'an operator'}"
                   + (f": {abort.reason}" if abort.reason else ""), [])
        return
    if phase == Phase.ROLLING_BACK:
        rolling_back(p)
        return
    if phase == Phase.PROMOTING:
        promoting(p)
        return
    if d.steps_hash != steps_hash(spec.steps):
        d.steps_hash = steps_hash(spec.steps)
        d.current_step = 0
        d.step_started_at = None
        p.event(DecisionType.STEPS_CHANGED, Reason.STEPS_CHANGED,
                "the steps changed; restarting at step 1")
        p.set_weight(0)
        begin_step_if_ready(p)
        return
    stepping(p)


def supersede(p: Pass) -> None:
    obs, d = p.obs, p.d
    message = f"canary revision {obs.canary.revision} replaced {d.revision}"
    p.end_run(RunOutcome.SUPERSEDED, Reason.NEW_REVISION, message)
    p.event(DecisionType.SUPERSEDED, Reason.NEW_REVISION, message)
    p.set_weight(0)
    freeze = obs.freeze
    if freeze is not None and freeze.blocks:
        p.scale_canary(0)  # the new revision waits with no pods and no traffic
        d.current_step = None
        d.step_started_at = None
        p.enter(Phase.FROZEN, freeze.reason, freeze_text(freeze))
        d.freeze = freeze_info(freeze, None, p.now)
        p.event(DecisionType.FROZEN, freeze.reason, freeze_text(freeze))
        return
    start_run(p, Reason.NEW_REVISION, message)


def stepping(p: Pass) -> None:
    """A run at a step: judge the gates; roll back, pause, freeze, wait or advance."""
    d = p.d
    if d.step_started_at is None:
        begin_step_if_ready(p)
        if d.step_started_at is None or p.obs.measurements is None:
            return
        # Measured because the route already carried this step (unrecorded_step_start):
        # judge what the canary served before the crash now, before holding.
    assert d.current_step is not None
    index = d.current_step
    step = p.spec.steps[index]
    if d.route_pending_since is not None and p.route_accepted():
        # The parents accepted the change: the step's hold counts from now.
        d.route_pending_since = d.last_analysis_at = None
        d.step_started_at = p.now
    gates = judge_gates(p)
    drill = p.pending("drill")
    if drill is not None:
        start_drill(p, drill, mid_run=True)
        return
    # Safety first: a rollback is decided whatever else holds the run.
    stuck = _stuck(p, gates)
    if _rolled_back(p, gates, stuck):
        return
    if _paused(p, step, gates, stuck) or _frozen(p, step, gates):
        return
    if d.route_pending_since is not None:
        p.enter(Phase.PROGRESSING, Reason.WAITING_FOR_ROUTE, waiting_text(p))
        p.requeue.append(TRANSITION_REQUEUE)
        return
    try_advance(p, index, step, gates)


def _stuck(p: Pass, gates: list[GateStatus]) -> list[GateStatus]:
    """Gates inconclusive for ``analysis.noDataTimeout`` or more."""
    timeout = p.spec.analysis.no_data_timeout.seconds
    return [g for g in gates if g.verdict == Verdict.INCONCLUSIVE
            and elapsed(g.inconclusive_since, p.now) >= timeout]


def _rolled_back(p: Pass, gates: list[GateStatus], stuck: list[GateStatus]) -> bool:
    """Roll back on a fast burn, a sustained violation, a freeze that says so or gates
    without data for too long (when ``onNoData: rollback``). True when it did."""
    analysis = p.spec.analysis
    fast = [g for g in gates if g.reason == GateReason.FAST_BURN]
    sustained = [g for g in gates if g.verdict == Verdict.FAIL
                 and elapsed(g.failing_since, p.now) >= analysis.rollback_after.seconds]
    freeze = p.obs.freeze
    if fast:
        p.rollback(Reason.FAST_BURN, "; ".join(f"{g.name}: {g.message}" for g in fast), fast)
    elif sustained:
        p.rollback(Reason.SUSTAINED_VIOLATION, "; ".join(
            f"{g.name} failing for {analysis.rollback_after} or more: {g.message}"
            for g in sustained), sustained)
    elif (freeze is not None and freeze.blocks and not freeze.unknown
          and freeze.in_flight == InFlight.ROLLBACK):
        p.rollback(Reason.ERROR_BUDGET_FROZEN, freeze_text(freeze), [])
    elif stuck and analysis.on_no_data == OnNoData.ROLLBACK:
        p.rollback(Reason.NO_DATA_TIMEOUT, stuck_text(stuck, analysis.no_data_timeout.text),
                   stuck)
    else:
        return False
    return True


def _paused(p: Pass, step: Step, gates: list[GateStatus], stuck: list[GateStatus]) -> bool:
    """Resume on request; pause (spec.paused, or no data for too long with
    ``onNoData: pause``). True when the run stays paused this pass."""
    d, spec, analysis = p.d, p.spec, p.spec.analysis
    resume = p.pending("resume")
    if resume is not None:
        p.handle("resume", resume)
        d.pause_reason = None
    if stuck and analysis.on_no_data == OnNoData.PAUSE and d.pause_reason is None:
        d.pause_reason = Reason.NO_DATA_TIMEOUT
    before = p.obs.plan.status
    if spec.paused or d.pause_reason is not None:
        reason = Reason.PAUSED_BY_OPERATOR if spec.paused else d.pause_reason
        assert reason is not None
        text = ("paused by spec.paused" if spec.paused
                else stuck_text(stuck, analysis.no_data_timeout.text) if stuck
                else "paused by the controller; `rolloutctl resume` to continue")
        if before.phase != Phase.PAUSED or before.reason != reason:
            p.event(DecisionType.PAUSED, reason, text)
        p.enter(Phase.PAUSED, reason, text)
        schedule_step(p, step, gates)
        return True
    if before.phase == Phase.PAUSED and before.reason in (Reason.PAUSED_BY_OPERATOR,
                                                          Reason.NO_DATA_TIMEOUT):
        p.event(DecisionType.RESUMED, Reason.RESUMED, "the run continues")
    return False


def _frozen(p: Pass, step: Step, gates: list[GateStatus]) -> bool:
    """Hold at this step while a freeze blocks; announce when it lifts. True when held."""
    freeze: FreezeInput | None = p.obs.freeze
    was = p.obs.plan.status.phase
    if freeze is not None and freeze.blocks:
        text = "holding at this step: " + freeze_text(freeze)
        if was != Phase.FROZEN:
            p.event(DecisionType.FROZEN, freeze.reason, text)
        p.enter(Phase.FROZEN, freeze.reason, text)
        p.d.freeze = freeze_info(freeze, p.d.freeze, p.now)
        schedule_step(p, step, gates)
        return True
    if was == Phase.FROZEN:
        p.d.freeze = None
        p.event(DecisionType.UNFROZEN, Reason.FREEZE_LIFTED,
                "the freeze lifted; the run continues")
    return False


def judge_gates(p: Pass) -> list[GateStatus]:
    """This pass's verdicts: from fresh measurements, from the fast path's, or the
    previous ones (no analysis due)."""
    obs, spec, d = p.obs, p.spec, p.d
    previous = {g.name: g for g in d.gates}
    if obs.measurements is None and obs.fast is not None:
        fast = {m.gate: m for m in obs.fast}
        gates = []
        for gate in spec.gates:
            prev = previous.get(gate.name) or verdicts.initial(gate)
            m = fast.get(gate.name)
            gates.append(prev if m is None else verdicts.judge_fast(
                gate, slo_of(obs.policy, gate.slo_name), m, prev, spec.analysis, p.now))
        d.gates = gates
        return gates
    if obs.measurements is None:
        gates = [previous.get(g.name) or verdicts.initial(g) for g in spec.gates]
        d.gates = gates
        return gates
    measured = {m.gate: m for m in obs.measurements}
    gates = [_not_applicable(p, gate) or verdicts.judge(
        gate, slo_of(obs.policy, gate.slo_name), measured.get(gate.name),
        previous.get(gate.name), spec.analysis, p.now) for gate in spec.gates]
    d.gates = gates
    d.last_analysis_at = p.now
    return gates


def _not_applicable(p: Pass, gate: Gate) -> GateStatus | None:
    """canaryVsStable has no baseline at 100 %: stable takes no traffic to compare with.
    The canary's own SLO gates still judge it."""
    step = p.d.current_step
    if gate.canary_vs_stable is None or step is None or p.spec.steps[step].weight < 100:
        return None
    return GateStatus(name=gate.name, kind=gate.kind, verdict=Verdict.PASS,
                      reason=GateReason.NOT_APPLICABLE, evaluated_at=p.now,
                      message="stable takes no traffic at 100 %: nothing to compare; "
                              "the canary's own SLO gates still judge it")


def try_advance(p: Pass, index: int, step: Step, gates: list[GateStatus]) -> None:
    """Advance when the hold is over and every gate passes on fresh verdicts (or on an
    operator's promote); else say what holds the step."""
    started = p.d.step_started_at
    assert started is not None
    fresh = p.obs.measurements is not None
    passing = all(g.verdict == Verdict.PASS for g in gates)
    failing = [g for g in gates if g.verdict == Verdict.FAIL]
    hold_elapsed = p.now >= started + step.hold.timedelta
    promote = p.pending("promote")
    if promote is not None and promote.full:
        p.handle("promote", promote)
        if not failing:
            _promote_fully(p, promote)
            return
        p.event(DecisionType.PROMOTE_REFUSED, Reason.GATE_FAILING,
                "full promotion refused while gates fail: "
                + ", ".join(g.name for g in failing), evidence=failing)
        promote = None
    manual = p.spec.promotion.mode == PromotionMode.MANUAL
    if fresh and passing and (promote is not None or (hold_elapsed and not manual)):
        if promote is not None:
            p.handle("promote", promote)
        advance(p, index)
        return
    if manual and fresh and passing and hold_elapsed:
        if p.obs.plan.status.reason != Reason.AWAITING_PROMOTION:
            p.event(DecisionType.AWAITING_PROMOTION, Reason.AWAITING_PROMOTION,
                    "hold elapsed and every gate passes; `rolloutctl promote` to continue")
        p.enter(Phase.PAUSED, Reason.AWAITING_PROMOTION,
                "waiting for `rolloutctl promote` (promotion mode is manual)")
        return
    _hold(p, gates, failing, hold_elapsed)
    schedule_step(p, step, gates)


def _promote_fully(p: Pass, promote: Request) -> None:
    p.d.promoted_full = True
    p.event(DecisionType.PROMOTED_FULL, Reason.PROMOTED_BY_OPERATOR,
            f"{promote.by or 'an operator'} skipped the remaining steps"
            + (f": {promote.reason}" if promote.reason else ""))
    finish_steps(p)


def _hold(p: Pass, gates: list[GateStatus], failing: list[GateStatus],
          hold_elapsed: bool) -> None:
    """Say why the step holds: inconclusive gates, failing gates, or the hold itself."""
    inconclusive = [g for g in gates if g.verdict == Verdict.INCONCLUSIVE
                    and g.reason != GateReason.NOT_EVALUATED]
    # Too few samples early in a step is expected (the window starts with the step):
    # the run holds only once the hold is over, or when the metrics themselves fail.
    collecting = (all(g.reason == GateReason.TOO_FEW_SAMPLES for g in inconclusive)
                  and not hold_elapsed)
    if inconclusive and not collecting:
        text = "; ".join(f"{g.name}: {g.reason} ({g.message})" for g in inconclusive)
        if p.obs.plan.status.phase != Phase.HOLDING:
            p.event(DecisionType.HOLDING, inconclusive[0].reason, text)
        p.enter(Phase.HOLDING, inconclusive[0].reason, text)
    elif failing:
        p.enter(Phase.PROGRESSING, Reason.GATE_FAILING, "; ".join(
            f"{g.name} failing since {g.failing_since:%H:%M:%S}: {g.message}"
            for g in failing if g.failing_since is not None))
    else:
        p.enter(Phase.PROGRESSING, Reason.HOLDING_STEP, holding_text(p))


def schedule_step(p: Pass, step: Step, gates: list[GateStatus]) -> None:
    """Look again at the next moment something can change: the next analysis, the end of
    the hold, a failure becoming sustained or a gate timing out without data."""
    analysis, now = p.spec.analysis, p.now
    times = [(p.d.last_analysis_at or now) + analysis.interval.timedelta]
    started = p.d.step_started_at
    if started is not None and now < started + step.hold.timedelta:
        times.append(started + step.hold.timedelta)
    for g in gates:
        if g.verdict == Verdict.FAIL and g.failing_since is not None:
            times.append(g.failing_since + analysis.rollback_after.timedelta)
        if g.verdict == Verdict.INCONCLUSIVE and g.inconclusive_since is not None:
            times.append(g.inconclusive_since + analysis.no_data_timeout.timedelta)
    future = [t for t in times if t > now]
    p.requeue.append((min(future) - now).total_seconds() if future
                     else analysis.interval.seconds)


def advance(p: Pass, index: int) -> None:
    if index + 1 < len(p.spec.steps):
        p.d.current_step = index + 1
        p.d.step_started_at = None
        begin_step_if_ready(p)
        return
    finish_steps(p)
