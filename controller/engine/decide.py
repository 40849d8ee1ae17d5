"""The decision engine: ``decide(observation) -> Decision``. Pure: no I/O, no clock reads.

Every pass rebuilds the whole next status from the persisted one and the observation, so a
controller killed at any moment resumes where it was: replaying a pass from the same status
and observation gives the same decision (same actions, same status, same dedup keys).

The status describes intent: ``canaryWeight`` is the weight the route must carry. When the
route carries something else (a failed write, a crash before the status write, a hand
edit), the next pass writes the intended weight again and records ``DriftCorrected``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from controller.api.conditions import Condition, ConditionStatus, ConditionType, set_condition
from controller.api.notifications import OutgoingMessage, Severity
from controller.api.plan import (
    MAX_DECISIONS,
    MAX_DRILLS,
    MAX_HISTORY,
    DecisionRecord,
    DrillOutcome,
    DrillReport,
    DrillStage,
    FreezeInfo,
    GateReason,
    GateStatus,
    OnNoData,
    OnSuccessPromote,
    Phase,
    PromotionMode,
    PromotionStage,
    Request,
    RolloutPlanStatus,
    RouterKind,
    RunOutcome,
    RunRecord,
    Step,
    Verdict,
    WorkloadReason,
)
from controller.api.policy import InFlight
from controller.engine import verdicts
from controller.engine.measurements import GateMeasurement
from controller.engine.observation import (
    Action,
    ActionResult,
    ActionTag,
    ActionType,
    Decision,
    Observation,
)

TRANSITION_REQUEUE = 1.0  # seconds, while waiting on workloads or the router
MAX_OUTBOX = 50

STEPPING_PHASES = frozenset({Phase.PROGRESSING, Phase.HOLDING, Phase.PAUSED, Phase.FROZEN})

_CRITICAL = {"RollbackStarted", "RolledBack", "Failed"}
_WARNING = {"Holding", "Frozen", "DriftCorrected", "Paused", "Superseded", "PromoteRefused"}


def steps_hash(steps: list[Step]) -> str:
    """A short, stable hash of the steps (weights and holds); a change restarts at step 0."""
    return _hash_steps(tuple((s.weight, s.hold.seconds) if s.mirror is None
                             else (0, s.hold.seconds, s.mirror) for s in steps))


@lru_cache(maxsize=1024)
def _hash_steps(steps: tuple[tuple[float, ...], ...]) -> str:
    text = json.dumps([list(s) for s in steps], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _elapsed(since: datetime | None, now: datetime) -> float:
    return (now - since).total_seconds() if since is not None else 0.0


def is_stepping(status: RolloutPlanStatus) -> bool:
    """A run sits at a step (possibly paused, holding or frozen) and not in a drill."""
    return (
        status.phase in STEPPING_PHASES
        and status.current_step is not None
        and status.active_drill is None
    )


def analysis_due(obs_plan_status: RolloutPlanStatus, interval: float, hold: float,
                 now: datetime) -> bool:
    """Should this pass measure the gates? Every ``interval``, at the start of each step and
    once the hold has elapsed (so a step advances on a fresh evaluation)."""
    st = obs_plan_status
    if not is_stepping(st) or st.step_started_at is None:
        return False
    last = st.last_analysis_at
    if last is not None and last < st.step_started_at:
        last = None  # measured during an earlier step
    since = last or st.step_started_at
    if (now - since).total_seconds() >= interval:
        return True
    hold_end = st.step_started_at + timedelta(seconds=hold)
    return now >= hold_end and (last is None or last < hold_end)


def unrecorded_step_start(obs: Observation) -> bool:
    """The route already carries the current step while the status never recorded its
    start: the controller shifted the traffic and crashed before writing the status. The
    canary has served since some moment the engine cannot know, so its gates are judged
    before the step (re)starts, over the whole window (never on less evidence)."""
    spec, st, route = obs.plan.spec, obs.plan.status, obs.router
    if (not is_stepping(st) or st.step_started_at is not None or st.current_step is None
            or st.current_step >= len(spec.steps) or route.weight is None):
        return False
    step = spec.steps[st.current_step]
    mirror = step.mirror or 0
    return (step.weight > 0 or mirror > 0) and route.weight == step.weight \
        and route.mirror == mirror


def gates_due(obs: Observation) -> bool:
    """``analysis_due`` for an observation's plan (the reconciler asks before measuring)."""
    spec, st = obs.plan.spec, obs.plan.status
    if st.current_step is None or st.current_step >= len(spec.steps):
        return False
    if unrecorded_step_start(obs):
        return True
    if (is_stepping(st) and st.step_started_at is not None and obs.router.weight is not None
            and obs.router.weight != st.canary_weight):
        return True  # the route disagrees with the plan: decide on fresh verdicts
    hold = spec.steps[st.current_step].hold.seconds
    return analysis_due(st, spec.analysis.interval.seconds, hold, obs.now)


def evaluation_window(status: RolloutPlanStatus, window: float, now: datetime) -> float:
    """The sliding evaluation window, clipped so it never reaches back before the step.
    With no step start recorded (``unrecorded_step_start``) it is the whole window, which
    the measurement clips to the run's start."""
    since_step = _elapsed(status.step_started_at, now)
    return max(1.0, min(window, since_step)) if status.step_started_at else window


def run_seconds(status: RolloutPlanStatus, now: datetime) -> float:
    return max(1.0, _elapsed(status.run_started_at, now))


@dataclass
class _Pass:
    """One decision under construction: the next status, the actions and the requeues."""

    obs: Observation
    s: dict[str, Any] = field(default_factory=dict)
    actions: list[Action] = field(default_factory=list)
    requeue: list[float] = field(default_factory=list)
    added: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        st = self.obs.plan.status
        # field name -> value; lists are never mutated in place, only replaced
        self.s = dict(st.__dict__)
        self.router_kind: RouterKind = self.obs.plan.spec.traffic.kind
        requests = self.obs.plan.spec.requests
        self.has_requests = any(getattr(requests, k) is not None for k in _REQUEST_KINDS)

    # -- helpers -------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return self.obs.now

    @property
    def spec(self) -> Any:
        return self.obs.plan.spec

    def get(self, name: str) -> Any:
        return self.s[name]

    def set(self, **values: Any) -> None:
        self.s.update(values)

    @property
    def provider(self) -> RouterKind:
        return self.router_kind

    @property
    def uses_canary_replicas(self) -> bool:
        """Routers other than the replica ratio need the canary scaled by the controller."""
        return self.provider != RouterKind.REPLICAS

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
        self.s["canary_weight"] = weight
        self.s["canary_mirror"] = mirror or None
        if weight == 0 and not mirror:
            self.s["route_pending_since"] = None

    def match_for(self, weight: int, mirror: int) -> bool:
        return bool(self.spec.traffic.match) and (weight > 0 or mirror > 0)

    def route_carries(self, weight: int, mirror: int) -> bool:
        """Does the route carry this routing (weight, mirror, header routes) now?"""
        r = self.obs.router
        return (r.weight == weight and r.mirror == mirror
                and r.match == self.match_for(weight, mirror))

    def route_accepted(self) -> bool:
        """The route carries the intended routing and its parents accepted it."""
        return (self.route_carries(self.s["canary_weight"], self.s["canary_mirror"] or 0)
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

    def handle(self, kind: str, request: Request) -> None:
        handled = self.s["handled"]
        self.s["handled"] = handled.model_copy(update={kind: request.id})

    def pending(self, kind: str) -> Any:
        if not self.has_requests:
            return None
        request = getattr(self.spec.requests, kind)
        if request is None:
            return None
        if getattr(self.s["handled"], kind) == request.id:
            return None
        return request

    def event(
        self,
        type_: str,
        reason: str,
        message: str,
        *,
        evidence: list[GateStatus] | None = None,
        drill: bool = False,
    ) -> None:
        """Record a decision in status and, when the plan has notifications, queue it."""
        seq = self.s["seq"] + 1
        self.s["seq"] = seq
        step = self.s["current_step"]
        weight = self.s["canary_weight"]
        record = DecisionRecord(
            seq=seq, at=self.now, type=type_, reason=reason, message=message,
            step=step, weight=weight,
        )
        self.s["decisions"] = (self.s["decisions"] + [record])[-MAX_DECISIONS:]
        if self.spec.notifications is None:
            return
        severity = (
            Severity.CRITICAL if type_ in _CRITICAL
            else Severity.WARNING if type_ in _WARNING else Severity.INFO
        )
        plan = self.obs.plan.metadata
        steps = len(self.spec.steps)
        where = f" at step {step + 1}/{steps}" if step is not None else ""
        if type_ == "RollbackStarted":
            where += f" (from {self.obs.plan.status.canary_weight}%)"
        elif step is not None and type_ not in ("RolledBack", "Succeeded", "Failed"):
            where += f" ({weight}%)"
        key = f"{self.s['run']}.{seq}"
        message_obj = OutgoingMessage(
            key=key,
            type=type_,
            severity=severity,
            at=self.now,
            title=f"{'[DRILL] ' if drill else ''}{plan.namespace}/{plan.name}: "
            f"{_TITLES.get(type_, type_)}{where}",
            text=message,
            drill=drill,
            run=self.s["run"],
            step=step,
            weight=weight,
            evidence=[_evidence(g) for g in (evidence or [])],
        )
        state = self.s["notifications"]
        outbox = list(state.outbox) + [message_obj]
        if len(outbox) > MAX_OUTBOX:  # keep every warning and critical; shed old info first
            infos = [m for m in outbox if m.severity == Severity.INFO]
            drop = {m.key for m in infos[: len(outbox) - MAX_OUTBOX]}
            outbox = [m for m in outbox if m.key not in drop]
        self.s["notifications"] = state.model_copy(update={"outbox": outbox})
        self.added.append(key)

    def enter(self, phase: Phase, reason: str, message: str = "") -> None:
        self.s["phase"] = phase
        self.s["reason"] = reason
        self.s["message"] = message

    # -- runs ----------------------------------------------------------------------------

    def start_run(self, reason: str, message: str) -> None:
        obs = self.obs
        self.set(
            run=self.s["run"] + 1,
            revision=obs.canary.revision,
            steps_hash=steps_hash(self.spec.steps),
            current_step=0,
            canary_weight=0,
            canary_mirror=None,
            route_pending_since=None,
            run_started_at=self.now,
            step_started_at=None,
            last_analysis_at=None,
            promotion_stage=None,
            promoted_full=False,
            rollback_reason=None,
            pause_reason=None,
            waiting_since=None,
            freeze=None,
            gates=[verdicts.initial(g) for g in self.spec.gates],
        )
        self.enter(Phase.PROGRESSING, "WaitingForCanary", message)
        self.event("RunStarted", reason, message)
        self.scale_canary(self.canary_replicas())
        self.begin_step_if_ready()

    def begin_step_if_ready(self) -> None:
        """Shift traffic to the current step once the canary can take it."""
        step = self.spec.steps[self.s["current_step"]]
        if self.uses_canary_replicas and not self.canary_can_take_traffic():
            if self.waited_past_deadline():
                canary = self.obs.canary
                self.rollback(
                    WorkloadReason.PROGRESS_DEADLINE_EXCEEDED.value,
                    f"the canary was not ready within {self.spec.analysis.progress_deadline} "
                    f"(analysis.progressDeadline): {canary.ready_replicas}/{canary.replicas} "
                    f"ready{_why(canary)}", [])
                return
            self.enter(Phase.PROGRESSING, "WaitingForCanary",
                       "waiting for the canary to be ready before "
                       + (f"mirroring {step.mirror}%" if step.mirror else
                          f"shifting {step.weight}%")
                       + _why(self.obs.canary))
            self.requeue.append(TRANSITION_REQUEUE)
            return
        self.set_weight(step.weight, mirror=step.mirror or 0)
        # The gates keep the verdicts that let this step start until its first evaluation.
        self.set(step_started_at=self.now, last_analysis_at=None, waiting_since=None)
        if self.obs.router.ready is not None and not self.route_carries(
                step.weight, step.mirror or 0):
            # The hold counts once the route's parents accept the change (stepping()).
            self.set(route_pending_since=self.now)
            self.enter(Phase.PROGRESSING, "WaitingForRoute", self.waiting_text())
        else:
            self.enter(Phase.PROGRESSING, "HoldingStep", self.holding_text())
        gates = [g for g in self.s["gates"] if g.evaluated_at is not None]
        evidence = ("; gates at the advance: " + ", ".join(
            f"{g.name} {g.verdict.value}" + (f" ({g.value:g})" if g.value is not None else "")
            for g in gates)) if gates else ""
        what = (f"mirroring {step.mirror}% to the canary" if step.mirror
                else f"canary weight {step.weight}%")
        self.event("StepAdvanced", "StepStarted", f"{what}, holding {step.hold}{evidence}")
        self.requeue.append(min(self.spec.analysis.interval.seconds, step.hold.seconds,
                                TRANSITION_REQUEUE if self.s["route_pending_since"] else 1e9))

    def waited_past_deadline(self) -> bool:
        """Start counting the progress deadline at the first pass that waits; has it
        passed?"""
        since = self.s["waiting_since"]
        if since is None:
            self.set(waiting_since=self.now)
            return False
        deadline: float = self.spec.analysis.progress_deadline.seconds
        return _elapsed(since, self.now) >= deadline

    def end_run(self, outcome: RunOutcome, reason: str, message: str) -> None:
        self.set(waiting_since=None)
        record = RunRecord(
            run=self.s["run"],
            revision=self.s["revision"],
            outcome=outcome,
            reason=reason,
            message=message,
            started_at=self.s["run_started_at"],
            ended_at=self.now,
            final_step=self.s["current_step"],
            final_weight=self.obs.plan.status.canary_weight,
            promoted_full=self.s["promoted_full"],
            weight_zero_at=next((d.at for d in reversed(self.s["decisions"])
                                 if d.type == "RollbackStarted"
                                 and d.at >= (self.s["run_started_at"] or d.at)), None)
            if outcome == RunOutcome.ROLLED_BACK else None,
            evidence=list(self.s["gates"]),
        )
        self.s["history"] = (self.s["history"] + [record])[-MAX_HISTORY:]

    def rollback(self, reason: str, message: str, evidence: list[GateStatus],
                 tag: ActionTag = ActionTag.ROLLBACK, drill: bool = False) -> None:
        """Canary traffic to 0 first (one idempotent write), then scale the canary down."""
        self.set(rollback_reason=reason, promotion_stage=None, pause_reason=None,
                 waiting_since=None, route_pending_since=None)
        self.set_weight(0, tag)
        self.scale_canary(0)
        self.enter(Phase.ROLLING_BACK, reason, message)
        self.event("RollbackStarted", reason, message, evidence=evidence, drill=drill)
        self.requeue.append(TRANSITION_REQUEUE)

    # -- phases --------------------------------------------------------------------------

    def idle(self) -> None:
        obs, spec = self.obs, self.spec
        for kind in ("promote", "resume", "abort"):
            request = self.pending(kind)
            if request is not None:
                self.handle(kind, request)
                self.event("RequestIgnored", "NoRunInProgress",
                           f"{kind} request {request.id} ignored: no run in progress")
        drill = self.pending("drill")
        if drill is not None and obs.canary.exists:
            if self.s["canary_weight"] == 0:
                self.start_drill(drill, mid_run=False)
                return
            self.handle("drill", drill)
            self.event("RequestIgnored", "CanaryCarriesTraffic",
                       f"drill {drill.id} ignored: the idle canary carries "
                       f"{self.s['canary_weight']}% (onSuccess: none)")
        if not obs.canary.exists:
            self.enter(Phase.PENDING, "CanaryNotFound",
                       f"Deployment {spec.target.canary.name} not found; create it")
            return
        if not obs.stable.exists:
            self.enter(Phase.PENDING, "StableNotFound",
                       f"Deployment {spec.target.stable.name} not found; create it")
            return
        retry = self.pending("retry")
        new_revision = (
            obs.canary.revision is not None
            and obs.canary.revision != self.s["revision"]
            and obs.canary.revision != obs.stable.revision
        )
        if retry is not None and self.s["phase"] != Phase.ROLLED_BACK:
            self.handle("retry", retry)
            self.event("RequestIgnored", "NothingToRetry",
                       f"retry request {retry.id} ignored: the last run did not roll back")
            retry = None
        if new_revision or retry is not None:
            freeze = obs.freeze
            if freeze is not None and freeze.blocks:
                if self.s["phase"] != Phase.FROZEN:
                    self.event("Frozen", freeze.reason, _freeze_text(freeze))
                self.enter(Phase.FROZEN, freeze.reason, _freeze_text(freeze))
                self.set(freeze=_freeze_info(freeze, self.s.get("freeze"), self.now))
                return
            if not obs.slot_available:
                self.enter(Phase.PENDING, "WaitingForSlot",
                           "maxConcurrentRollouts runs (in all, or in this namespace) "
                           "are in progress; this run waits")
                return
            if self.s["phase"] == Phase.FROZEN:
                self.event("Unfrozen", "FreezeLifted", "the error-budget freeze no longer "
                           "blocks this plan" + (" (override)" if freeze and freeze.overridden
                                                 else ""))
            if retry is not None:
                self.handle("retry", retry)
                self.start_run("Retry", f"retry requested by {retry.by or 'an operator'}")
            else:
                self.start_run("NewRevision", f"new canary revision {obs.canary.revision}")
            return
        same = obs.canary.revision is not None and obs.canary.revision == obs.stable.revision
        if same and self.s["phase"] in (Phase.PENDING, Phase.FROZEN):
            self.enter(Phase.PENDING, "NoNewRevision",
                       "the canary runs the same pod template as stable")
            self.set(freeze=None)
        if self.s["phase"] != Phase.FAILED:  # after a failure the route is the operator's
            self.correct_drift()

    def in_run(self) -> None:
        obs, spec = self.obs, self.spec
        phase = self.s["phase"]
        if (
            obs.canary.revision is not None
            and obs.canary.revision != self.s["revision"]
            and phase != Phase.ROLLING_BACK
        ):
            self.supersede()
            return
        abort = self.pending("abort")
        if abort is not None and phase != Phase.ROLLING_BACK:
            self.handle("abort", abort)
            self.rollback("Aborted", f"aborted by {abort.by or 'an operator'}"
                          + (f": {abort.reason}" if abort.reason else ""), [])
            return
        if phase == Phase.ROLLING_BACK:
            self.rolling_back()
            return
        if phase == Phase.PROMOTING:
            self.promoting()
            return
        if self.s["steps_hash"] != steps_hash(spec.steps):
            self.set(steps_hash=steps_hash(spec.steps), current_step=0, step_started_at=None)
            self.event("StepsChanged", "StepsChanged", "the steps changed; restarting at step 1")
            self.set_weight(0)
            self.begin_step_if_ready()
            return
        self.stepping()

    def supersede(self) -> None:
        obs = self.obs
        message = f"canary revision {obs.canary.revision} replaced {self.s['revision']}"
        self.end_run(RunOutcome.SUPERSEDED, "NewRevision", message)
        self.event("Superseded", "NewRevision", message)
        self.set_weight(0)
        freeze = obs.freeze
        if freeze is not None and freeze.blocks:
            self.scale_canary(0)  # the new revision waits with no pods and no traffic
            self.set(current_step=None, step_started_at=None)
            self.enter(Phase.FROZEN, freeze.reason, _freeze_text(freeze))
            self.set(freeze=_freeze_info(freeze, None, self.now))
            self.event("Frozen", freeze.reason, _freeze_text(freeze))
            return
        self.start_run("NewRevision", message)

    def stepping(self) -> None:
        obs, spec = self.obs, self.spec
        if self.s["step_started_at"] is None:
            self.begin_step_if_ready()
            if self.s["step_started_at"] is None or obs.measurements is None:
                return
            # Measured because the route already carried this step (unrecorded_step_start):
            # judge what the canary served before the crash now, before holding.
        index = self.s["current_step"]
        step = spec.steps[index]
        analysis = spec.analysis
        if self.s["route_pending_since"] is not None and self.route_accepted():
            # The parents accepted the change: the step's hold counts from now.
            self.set(route_pending_since=None, step_started_at=self.now, last_analysis_at=None)
        gates = self.judge_gates()

        drill = self.pending("drill")
        if drill is not None:
            self.start_drill(drill, mid_run=True)
            return

        # Safety first: a rollback is decided whatever else holds the run.
        fast = [g for g in gates if g.reason == "FastBurn"]
        sustained = [
            g for g in gates
            if g.verdict == Verdict.FAIL
            and _elapsed(g.failing_since, self.now) >= analysis.rollback_after.seconds
        ]
        if fast:
            self.rollback("FastBurn", "; ".join(f"{g.name}: {g.message}" for g in fast), fast)
            return
        if sustained:
            self.rollback(
                "SustainedViolation",
                "; ".join(f"{g.name} failing for {analysis.rollback_after} or more: {g.message}"
                          for g in sustained),
                sustained,
            )
            return
        freeze = obs.freeze
        if (
            freeze is not None and freeze.blocks and not freeze.unknown
            and freeze.in_flight == InFlight.ROLLBACK
        ):
            self.rollback("ErrorBudgetFrozen", _freeze_text(freeze), [])
            return
        stuck = [
            g for g in gates
            if g.verdict == Verdict.INCONCLUSIVE
            and _elapsed(g.inconclusive_since, self.now) >= analysis.no_data_timeout.seconds
        ]
        if stuck and analysis.on_no_data == OnNoData.ROLLBACK:
            self.rollback("NoDataTimeout", _stuck_text(stuck, analysis.no_data_timeout.text),
                          stuck)
            return

        resume = self.pending("resume")
        if resume is not None:
            self.handle("resume", resume)
            self.set(pause_reason=None)
        if stuck and analysis.on_no_data == OnNoData.PAUSE and self.s["pause_reason"] is None:
            self.set(pause_reason="NoDataTimeout")

        was = self.obs.plan.status.phase
        if spec.paused or self.s["pause_reason"] is not None:
            reason = "PausedByOperator" if spec.paused else self.s["pause_reason"]
            text = ("paused by spec.paused" if spec.paused
                    else _stuck_text(stuck, analysis.no_data_timeout.text) if stuck
                    else "paused by the controller; `rolloutctl resume` to continue")
            if was != Phase.PAUSED or self.obs.plan.status.reason != reason:
                self.event("Paused", reason, text)
            self.enter(Phase.PAUSED, reason, text)
            self.schedule_step(step, gates)
            return
        if was == Phase.PAUSED and self.obs.plan.status.reason in (
            "PausedByOperator", "NoDataTimeout"
        ):
            self.event("Resumed", "Resumed", "the run continues")

        if freeze is not None and freeze.blocks:
            if was != Phase.FROZEN:
                self.event("Frozen", freeze.reason, "holding at this step: " + _freeze_text(freeze))
            self.enter(Phase.FROZEN, freeze.reason, "holding at this step: " + _freeze_text(freeze))
            self.set(freeze=_freeze_info(freeze, self.s.get("freeze"), self.now))
            self.schedule_step(step, gates)
            return
        if was == Phase.FROZEN:
            self.set(freeze=None)
            self.event("Unfrozen", "FreezeLifted", "the freeze lifted; the run continues")

        if self.s["route_pending_since"] is not None:
            self.enter(Phase.PROGRESSING, "WaitingForRoute", self.waiting_text())
            self.requeue.append(TRANSITION_REQUEUE)
            return
        self.try_advance(index, step, gates)

    def judge_gates(self) -> list[GateStatus]:
        obs, spec = self.obs, self.spec
        previous = {g.name: g for g in self.s["gates"]}
        if obs.measurements is None and obs.fast is not None:
            fast = {m.gate: m for m in obs.fast}
            gates = []
            for gate in spec.gates:
                prev = previous.get(gate.name) or verdicts.initial(gate)
                m = fast.get(gate.name)
                gates.append(prev if m is None else verdicts.judge_fast(
                    gate, _slo_of(obs, gate), m, prev, spec.analysis, self.now))
            self.s["gates"] = gates
            return gates
        if obs.measurements is None:
            gates = [previous.get(g.name) or verdicts.initial(g) for g in spec.gates]
            self.s["gates"] = gates
            return gates
        measured = {m.gate: m for m in obs.measurements}
        policy = obs.policy
        gates = []
        for gate in spec.gates:
            slo = (
                policy.spec.slo(gate.slo_name)
                if policy is not None and gate.slo_name is not None else None
            )
            gates.append(self.not_applicable(gate) or verdicts.judge(
                gate, slo, measured.get(gate.name), previous.get(gate.name), spec.analysis,
                self.now))
        self.set(gates=gates, last_analysis_at=self.now)
        return gates

    def not_applicable(self, gate: Any) -> GateStatus | None:
        """canaryVsStable has no baseline at 100 %: stable takes no traffic to compare with.
        The canary's own SLO gates still judge it."""
        step = self.s["current_step"]
        if (gate.canary_vs_stable is None or step is None
                or self.spec.steps[step].weight < 100):
            return None
        return GateStatus(name=gate.name, kind=gate.kind, verdict=Verdict.PASS,
                          reason=GateReason.NOT_APPLICABLE, evaluated_at=self.now,
                          message="stable takes no traffic at 100 %: nothing to compare; "
                                  "the canary's own SLO gates still judge it")

    def try_advance(self, index: int, step: Step, gates: list[GateStatus]) -> None:
        spec = self.spec
        fresh = self.obs.measurements is not None
        passing = all(g.verdict == Verdict.PASS for g in gates)
        failing = [g for g in gates if g.verdict == Verdict.FAIL]
        hold_end = self.s["step_started_at"] + step.hold.timedelta
        hold_elapsed = self.now >= hold_end
        promote = self.pending("promote")
        if promote is not None and promote.full:
            self.handle("promote", promote)
            if failing:
                self.event("PromoteRefused", "GateFailing",
                           "full promotion refused while gates fail: "
                           + ", ".join(g.name for g in failing), evidence=failing)
            else:
                self.set(promoted_full=True)
                self.event("PromotedFull", "PromotedByOperator",
                           f"{promote.by or 'an operator'} skipped the remaining steps"
                           + (f": {promote.reason}" if promote.reason else ""))
                self.finish_steps()
                return
            promote = None
        manual = spec.promotion.mode == PromotionMode.MANUAL
        if fresh and passing and (promote is not None or (hold_elapsed and not manual)):
            if promote is not None:
                self.handle("promote", promote)
            self.advance(index)
            return
        if manual and fresh and passing and hold_elapsed:
            if self.obs.plan.status.reason != "AwaitingPromotion":
                self.event("AwaitingPromotion", "AwaitingPromotion",
                           "hold elapsed and every gate passes; `rolloutctl promote` to continue")
            self.enter(Phase.PAUSED, "AwaitingPromotion",
                       "waiting for `rolloutctl promote` (promotion mode is manual)")
            return
        inconclusive = [g for g in gates if g.verdict == Verdict.INCONCLUSIVE
                        and g.reason != "NotEvaluated"]
        # Too few samples early in a step is expected (the window starts with the step):
        # the run holds only once the hold is over, or when the metrics themselves fail.
        collecting = all(g.reason == "TooFewSamples" for g in inconclusive) and not hold_elapsed
        if inconclusive and not collecting:
            text = "; ".join(f"{g.name}: {g.reason} ({g.message})" for g in inconclusive)
            if self.obs.plan.status.phase != Phase.HOLDING:
                self.event("Holding", inconclusive[0].reason, text)
            self.enter(Phase.HOLDING, inconclusive[0].reason, text)
        elif failing:
            self.enter(Phase.PROGRESSING, "GateFailing", "; ".join(
                f"{g.name} failing since {g.failing_since:%H:%M:%S}: {g.message}"
                for g in failing if g.failing_since is not None))
        else:
            self.enter(Phase.PROGRESSING, "HoldingStep", self.holding_text())
        self.schedule_step(step, gates)

    def holding_text(self) -> str:
        """Stable across passes (status is written only when something changes): the time
        left is derived from stepStartedAt by whoever shows it."""
        index = self.s["current_step"]
        step = self.spec.steps[index]
        started = self.s["step_started_at"]
        at = f"mirroring {step.mirror}%" if step.mirror else f"at {step.weight}%"
        return (f"step {index + 1}/{len(self.spec.steps)} {at}, holding {step.hold}"
                f" from {started.isoformat()[11:19]}Z")

    def waiting_text(self) -> str:
        """Stable across passes: the parent's own words are in the Degraded condition."""
        index = self.s["current_step"]
        return (f"step {index + 1}/{len(self.spec.steps)}: waiting for the route to accept "
                f"the change (since {self.s['route_pending_since'].isoformat()[11:19]}Z) "
                "before the hold counts")

    def schedule_step(self, step: Step, gates: list[GateStatus]) -> None:
        analysis = self.spec.analysis
        last = self.s["last_analysis_at"] or self.now
        times = [last + analysis.interval.timedelta]
        started = self.s["step_started_at"]
        if started is not None and self.now < started + step.hold.timedelta:
            times.append(started + step.hold.timedelta)
        for g in gates:
            if g.verdict == Verdict.FAIL and g.failing_since is not None:
                times.append(g.failing_since + analysis.rollback_after.timedelta)
            if g.verdict == Verdict.INCONCLUSIVE and g.inconclusive_since is not None:
                times.append(g.inconclusive_since + analysis.no_data_timeout.timedelta)
        future = [t for t in times if t > self.now]
        if future:
            self.requeue.append((min(future) - self.now).total_seconds())
        else:
            self.requeue.append(analysis.interval.seconds)

    def advance(self, index: int) -> None:
        steps = self.spec.steps
        if index + 1 < len(steps):
            self.set(current_step=index + 1, step_started_at=None)
            self.begin_step_if_ready()
            return
        self.finish_steps()

    def finish_steps(self) -> None:
        if self.spec.on_success.promote == OnSuccessPromote.COPY_TO_STABLE:
            self.set(promotion_stage=PromotionStage.COPYING_TEMPLATE, route_pending_since=None)
            self.enter(Phase.PROMOTING, "CopyingTemplate",
                       "every step passed; stable takes the canary's pod template")
            self.event("Promoting", "StepsComplete", "every step passed; promoting to stable")
            self.promoting()
            return
        self.succeed("StepsComplete", "every step passed; the canary keeps the traffic")

    def succeed(self, reason: str, message: str) -> None:
        self.end_run(RunOutcome.SUCCEEDED, reason, message)
        self.set(promotion_stage=None)
        self.enter(Phase.SUCCEEDED, reason, message)
        self.event("Succeeded", reason, message)

    def promoting(self) -> None:
        obs = self.obs
        if obs.canary.revision != obs.stable.revision:
            self.actions.append(Action(ActionType.PROMOTE_STABLE))
            self.set(promotion_stage=PromotionStage.WAITING_FOR_STABLE)
            self.enter(Phase.PROMOTING, "CopyingTemplate",
                       "stable takes the canary's pod template")
            self.requeue.append(TRANSITION_REQUEUE)
            return
        if not obs.stable.ready:
            if self.waited_past_deadline():
                self.fail(WorkloadReason.PROGRESS_DEADLINE_EXCEEDED.value,
                          f"stable was not ready within {self.spec.analysis.progress_deadline} "
                          f"(analysis.progressDeadline) after taking the canary's template: "
                          f"{obs.stable.ready_replicas}/{obs.stable.replicas} ready"
                          f"{_why(obs.stable)}; the canary keeps serving "
                          f"{self.s['canary_weight']}% until an operator acts")
                return
            self.set(promotion_stage=PromotionStage.WAITING_FOR_STABLE)
            self.enter(Phase.PROMOTING, "WaitingForStable",
                       f"stable has {obs.stable.ready_replicas}/{obs.stable.replicas} ready"
                       + _why(obs.stable))
            self.requeue.append(TRANSITION_REQUEUE)
            return
        self.set(waiting_since=None)
        routed = self.route_carries(0, 0)
        scaled = not self.uses_canary_replicas or obs.canary.replicas == 0
        if routed and scaled and self.s["canary_weight"] == 0:
            self.succeed("Promoted", "stable runs the canary's template and takes all traffic")
            return
        self.set(promotion_stage=PromotionStage.ROUTING_TO_STABLE if not routed
                 else PromotionStage.SCALING_DOWN_CANARY)
        self.set_weight(0)
        self.scale_canary(0)
        self.enter(Phase.PROMOTING, "RoutingToStable",
                   "all traffic to stable, then the canary scales to 0")
        self.requeue.append(TRANSITION_REQUEUE)

    def fail(self, reason: str, message: str) -> None:
        """End the run where it stands, without a rollback: stable cannot take the traffic
        back, so the route stays as it is (the canary keeps serving) and people are told."""
        self.end_run(RunOutcome.FAILED, reason, message)
        self.set(promotion_stage=None)
        self.enter(Phase.FAILED, reason, message)
        self.event("Failed", reason, message)

    def rolling_back(self) -> None:
        obs = self.obs
        if (not self.route_carries(0, 0) or self.obs.plan.status.canary_weight != 0
                or self.obs.plan.status.canary_mirror):
            self.set_weight(0, ActionTag.ROLLBACK)
        self.scale_canary(0)
        routed = self.route_carries(0, 0)
        scaled = not self.uses_canary_replicas or obs.canary.replicas == 0
        if routed and scaled:
            reason = self.s["rollback_reason"] or "RolledBack"
            message = self.s["message"]
            self.end_run(RunOutcome.ROLLED_BACK, reason, message)
            self.enter(Phase.ROLLED_BACK, reason, message)
            self.event("RolledBack", reason, "all traffic is on stable and the canary is "
                       "scaled to 0: " + message,
                       evidence=[g for g in self.s["gates"] if g.verdict == Verdict.FAIL])
            return
        self.requeue.append(TRANSITION_REQUEUE)

    def keep_canary_scaled(self) -> None:
        """While a run sits at a step, the canary keeps its replicas (a hand scale-down, or a
        scale-down the controller did not see land before it scaled up again)."""
        if (self.s["phase"] in STEPPING_PHASES and self.s["current_step"] is not None
                and self.obs.canary.exists):
            self.scale_canary(self.canary_replicas())

    def correct_drift(self) -> None:
        observed = self.obs.router.weight
        desired = self.s["canary_weight"]
        if any(a.type == ActionType.SET_WEIGHT for a in self.actions):
            return
        if observed is None:
            return
        mirror = self.s["canary_mirror"] or 0
        if observed == desired:
            if not self.route_carries(desired, mirror):
                r = self.obs.router
                self.set_weight(desired, mirror=mirror)
                self.event("DriftCorrected", "RouteDrift",
                           f"the route mirrored {r.mirror}% with header routes "
                           f"{_on_off(r.match)} instead of {mirror}% and "
                           f"{'on' if self.match_for(desired, mirror) else 'off'}; restored")
            return
        stepping = self.s["phase"] in STEPPING_PHASES and self.s["step_started_at"] is not None
        if stepping and observed < desired:
            # Less canary traffic than planned: a crash between a rollback's route write and
            # its status write, or a hand edit. Traffic never goes back to a canary with
            # evidence of failure.
            passing = self.obs.measurements is not None and all(
                g.verdict == Verdict.PASS for g in self.s["gates"])
            failing = [g for g in self.s["gates"]
                       if g.verdict == Verdict.FAIL or g.failing_since is not None]
            if failing and observed == 0:
                # Unrouted, the canary cannot be measured any more (no traffic, no data):
                # waiting for its gates would wait forever. Finish the rollback.
                self.rollback("RouteAtZero", "the route sends 0% to the canary (plan: "
                              f"{desired}%) while " + ", ".join(g.name for g in failing)
                              + " failed: finishing the rollback", failing)
                return
            if failing and not passing:
                # Still some traffic: the gates keep judging; a sustained failure rolls back.
                self.enter(Phase.HOLDING, "WeightBelowPlan",
                           f"the route carries {observed}% instead of {desired}%; restoring "
                           "it once every gate passes")
                self.requeue.append(self.spec.analysis.interval.seconds)
                return
        self.set_weight(desired, mirror=mirror)
        self.event("DriftCorrected", "WeightDrift",
                   f"the route carried {observed}% instead of {desired}%; restored {desired}%")

    # -- drills --------------------------------------------------------------------------

    def start_drill(self, request: Any, mid_run: bool) -> None:
        self.handle("drill", request)
        report = DrillReport(
            id=request.id,
            by=request.by,
            synthetic=not mid_run,
            restore=request.restore,
            max_duration=request.max_duration,
            stage=DrillStage.ROLLING_BACK if mid_run else DrillStage.SHIFTING,
            pre_drill_phase=self.s["phase"],
            pre_drill_step=self.s["current_step"],
            pre_drill_weight=self.s["canary_weight"],
            requested_at=request.at or self.now,
            rollback_started_at=self.now if mid_run else None,
        )
        self.s["drills"] = (self.s["drills"] + [report])[-MAX_DRILLS:]
        text = (f"drill {request.id} requested by {request.by or 'an operator'}: "
                + ("rolling back as if a gate had failed" if mid_run
                   else f"shifting {self.first_weight()}% to the canary, then rolling "
                   "back"))
        self.event("DrillStarted", "Drill", text, drill=True)
        if mid_run:
            self.rollback("Drill", text, [], ActionTag.DRILL_ZERO, drill=True)
        else:
            self.enter(Phase.ROLLING_BACK, "Drill", text)
            self.drill()

    def update_drill(self, **values: Any) -> DrillReport:
        drills = self.s["drills"]
        report: DrillReport = drills[-1].model_copy(update=values)
        self.s["drills"] = drills[:-1] + [report]
        return report

    def drill(self) -> None:
        obs = self.obs
        report: DrillReport = self.s["drills"][-1]
        self.requeue.append(TRANSITION_REQUEUE / 2)
        if report.stage == DrillStage.SHIFTING:
            first = self.first_weight()
            if obs.router.weight == first and self.s["canary_weight"] == first:
                report = self.update_drill(stage=DrillStage.ROLLING_BACK,
                                           rollback_started_at=self.now)
                self.set_weight(0, ActionTag.DRILL_ZERO)
                self.scale_canary(0)
                return
            self.scale_canary(self.canary_replicas())
            if self.uses_canary_replicas and not self.canary_can_take_traffic():
                self.enter(Phase.ROLLING_BACK, "Drill", "drill: waiting for the canary")
                return
            self.set_weight(first, ActionTag.DRILL_SHIFT)
            return
        if report.stage == DrillStage.ROLLING_BACK:
            if report.canary_weight_zero_at is None:
                self.set_weight(0, ActionTag.DRILL_ZERO)
                self.scale_canary(0)
                return
            self.scale_canary(0)
            if report.stable_ready_at is None:
                if not obs.stable.ready:
                    return
                report = self.update_drill(stable_ready_at=self.now)
            if report.restore and not report.synthetic and report.pre_drill_step is not None:
                self.update_drill(stage=DrillStage.RESTORING)
                self.enter(Phase.PROGRESSING, "DrillRestoring",
                           f"drill: restoring step {report.pre_drill_step + 1}")
                self.drill()
                return
            self.finish_drill(report)
            return
        if report.stage == DrillStage.RESTORING:
            if report.restored_at is not None and obs.router.weight == report.pre_drill_weight:
                self.finish_drill(report)
                return
            self.scale_canary(self.canary_replicas())
            if self.uses_canary_replicas and not self.canary_can_take_traffic():
                return
            self.set_weight(report.pre_drill_weight, ActionTag.DRILL_RESTORE)

    def finish_drill(self, report: DrillReport) -> None:
        end = report.restored_at or report.stable_ready_at or self.now
        took = (end - report.requested_at).total_seconds()
        outcome = (DrillOutcome.SUCCEEDED if took <= report.max_duration.seconds
                   else DrillOutcome.TIMED_OUT)
        to_zero = _secs(report.requested_at, report.canary_weight_zero_at)
        message = (f"drill {report.id}: canary weight 0 after {to_zero}, "
                   f"stable ready after {_secs(report.requested_at, report.stable_ready_at)}"
                   + (f", restored after {_secs(report.requested_at, report.restored_at)}"
                      if report.restored_at else "")
                   + f"; {outcome.value}")
        self.update_drill(stage=DrillStage.DONE, outcome=outcome, message=message)
        if report.synthetic:
            self.enter(report.pre_drill_phase or Phase.PENDING, "DrillCompleted", message)
        elif report.restore and report.restored_at is not None:
            self.set(step_started_at=report.restored_at, last_analysis_at=None,
                     gates=[verdicts.initial(g) for g in self.spec.gates],
                     rollback_reason=None)
            self.enter(Phase.PROGRESSING, "DrillRestored", message)
        else:
            self.end_run(RunOutcome.ROLLED_BACK, "Drill", message)
            self.enter(Phase.ROLLED_BACK, "Drill", message)
        self.event("DrillCompleted", outcome.value, message, drill=True)

    # -- the whole pass ------------------------------------------------------------------

    def run(self) -> Decision:
        st = self.obs.plan.status
        if st.phase == Phase.INVALID:
            self.enter(Phase.PENDING if st.current_step is None else Phase.PROGRESSING,
                       "SpecValid", "the spec is valid again")
            self.event("SpecValid", "SpecValid", "the spec is valid again")
        if st.active_drill is not None:
            self.drill()
        elif st.in_run:
            self.in_run()
            if self.s["phase"] in STEPPING_PHASES:
                self.keep_canary_scaled()
            if self.s["phase"] in STEPPING_PHASES | {Phase.PROMOTING}:
                self.correct_drift()
        else:
            self.idle()
        self.s["observed_generation"] = self.obs.plan.metadata.generation
        old = self.obs.plan.status
        conditions = _conditions(self)
        self.s["conditions"] = (old.conditions if conditions == tuple(old.conditions)
                                else list(conditions))
        # Unchanged is the common case for idle and holding plans: nothing to copy. Else
        # every value was built from validated models: copy without re-validating.
        status = old if _unchanged(old, self.s) else old.model_copy(update=self.s)
        requeue = max(0.0, min(self.requeue)) if self.requeue else None
        return Decision(tuple(self.actions), status, requeue, tuple(self.added))


_REQUEST_KINDS = ("promote", "resume", "abort", "retry", "drill")


def _slo_of(obs: Observation, gate: Any) -> Any:
    policy = obs.policy
    if policy is None or gate.slo_name is None:
        return None
    return policy.spec.slo(gate.slo_name)


def fast_path_wants(obs_plan: Any, policy: Any, fast: tuple[GateMeasurement, ...]) -> bool:
    """Should the fast path hand this measurement to a reconcile? When a gate's ceiling is
    breached or its episode rule holds, or when the status remembers an episode (a pass must
    then clear or confirm it). A plan not at a step never needs one."""
    st = obs_plan.status
    if not is_stepping(st) or st.step_started_at is None:
        return False
    if any(g.burning_since is not None for g in st.gates):
        return True
    analysis = obs_plan.spec.analysis
    by_name = {g.name: g for g in obs_plan.spec.gates}
    for m in fast:
        gate = by_name.get(m.gate)
        if gate is None:
            continue
        slo = (policy.spec.slo(gate.slo_name)
               if policy is not None and gate.slo_name is not None else None)
        if verdicts.ceiling_breached(analysis, m):
            return True
        if verdicts.burning(gate, slo, m, analysis.min_samples) is not None:
            return True
    return False


def _unchanged(old: RolloutPlanStatus, new: dict[str, Any]) -> bool:
    for name, value in old.__dict__.items():
        other = new[name]
        if other is value:
            continue
        if isinstance(value, list):
            if not (isinstance(other, list) and len(other) == len(value)
                    and all(a is b for a, b in zip(other, value, strict=True))):
                return False
        elif other != value:
            return False
    return True


def decide(obs: Observation) -> Decision:
    """The next status, the actions to reach it, and when to look again."""
    return _Pass(obs).run()


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
            failed[0].reason or "ActionFailed",
            "; ".join(f"{r.action}: {r.error}" for r in failed), generation, at,
        ))
    return status.model_copy(update={"drills": drills, "conditions": conditions})


def invalid_status(status: RolloutPlanStatus, problems: list[str], generation: int,
                   now: datetime) -> RolloutPlanStatus:
    """The status of a plan whose spec cannot be acted on: nothing moves, the reason shows."""
    message = "; ".join(problems)
    conditions = set_condition(status.conditions, ConditionType.READY, ConditionStatus.FALSE,
                               "InvalidSpec", message, generation, now)
    return status.model_copy(update={
        "phase": Phase.INVALID, "reason": "InvalidSpec", "message": message,
        "observed_generation": generation, "conditions": list(conditions),
    })


# ----------------------------------------------------------------------------- helpers

_TITLES = {
    "RunStarted": "rollout started",
    "StepAdvanced": "step started",
    "AwaitingPromotion": "awaiting promotion",
    "Paused": "paused",
    "Resumed": "resumed",
    "Holding": "holding",
    "Frozen": "frozen by the error budget",
    "Unfrozen": "freeze lifted",
    "RollbackStarted": "rolling back",
    "RolledBack": "rolled back",
    "Promoting": "promoting",
    "PromotedFull": "promoted fully by an operator",
    "PromoteRefused": "promotion refused",
    "Succeeded": "succeeded",
    "Failed": "failed",
    "Superseded": "superseded by a new revision",
    "DriftCorrected": "route drift corrected",
    "DrillStarted": "rollback drill started",
    "DrillCompleted": "rollback drill completed",
    "StepsChanged": "steps changed, restarting",
    "RequestIgnored": "request ignored",
    "SpecValid": "spec valid again",
}


def _evidence(g: GateStatus) -> dict[str, object]:
    data = g.model_dump(mode="json", by_alias=True, exclude_none=True,
                        include={"name", "verdict", "reason", "message", "value", "objective",
                                 "burn_rate", "samples", "query", "stable_value"})
    return dict(data)


def _why(workload: Any) -> str:
    """The pods' own reason for not being ready, for status messages and alarms."""
    if not workload.not_ready_reason:
        return ""
    detail = f" ({workload.not_ready_message})" if workload.not_ready_message else ""
    return f"; pods: {workload.not_ready_reason}{detail}"


def _on_off(value: bool | None) -> str:
    return "on" if value else "off" if value is False else "not as planned"


def _secs(start: datetime, end: datetime | None) -> str:
    return f"{(end - start).total_seconds():.2f}s" if end is not None else "n/a"


def _freeze_text(freeze: Any) -> str:
    budget = (f"{freeze.budget_remaining:.1f}% of the error budget left"
              if freeze.budget_remaining is not None else "budget unknown")
    return f"SLOPolicy {freeze.policy} is frozen ({freeze.reason}: {budget})" + (
        f"; {freeze.message}" if freeze.message else "")


def _freeze_info(freeze: Any, previous: FreezeInfo | None, now: datetime) -> FreezeInfo:
    return FreezeInfo(
        policy=freeze.policy, reason=freeze.reason, message=freeze.message,
        budget_remaining=freeze.budget_remaining,
        since=(previous.since if previous is not None else None) or freeze.since or now,
    )


def _stuck_text(stuck: list[GateStatus], timeout: str) -> str:
    return "; ".join(f"{g.name} inconclusive for {timeout} or more ({g.reason})" for g in stuck)


def _conditions(p: _Pass) -> tuple[Condition, ...]:
    obs, s = p.obs, p.s
    gen = obs.plan.metadata.generation
    phase = s["phase"]
    router = obs.router
    if router.weight is None:
        ready = (ConditionStatus.FALSE, router.reason, router.message)
    elif not obs.canary.exists or not obs.stable.exists:
        ready = (ConditionStatus.FALSE, s["reason"] or "WorkloadNotFound", s["message"])
    else:
        ready = (ConditionStatus.TRUE, "Reconciled", "the controller can act on this plan")
    active = phase in {Phase.PROGRESSING, Phase.HOLDING, Phase.PAUSED, Phase.PROMOTING,
                       Phase.ROLLING_BACK} or (phase == Phase.FROZEN and s["current_step"]
                                               is not None)
    progressing = (ConditionStatus.TRUE if active else ConditionStatus.FALSE,
                   s["reason"] or phase.value, s["message"])
    freeze = obs.freeze
    if freeze is not None and freeze.frozen:
        frozen = (ConditionStatus.FALSE if freeze.overridden else ConditionStatus.TRUE,
                  "OverrideActive" if freeze.overridden else freeze.reason or "Frozen",
                  _freeze_text(freeze))
    else:
        frozen = (ConditionStatus.FALSE, "NotFrozen", "releases are open")
    if phase in (Phase.ROLLED_BACK, Phase.FAILED):
        degraded = (ConditionStatus.TRUE, s["rollback_reason"] or s["reason"] or "RolledBack",
                    s["message"])
    elif router.weight is None:
        degraded = (ConditionStatus.TRUE, router.reason, router.message)
    elif s["route_pending_since"] is not None and (
            router.rejected or _elapsed(s["route_pending_since"], p.now)
            >= p.spec.traffic.ready_timeout.seconds):
        degraded = (ConditionStatus.TRUE, "RouteNotAccepted",
                    router.ready_message or "the route does not carry the change yet")
    else:
        degraded = (ConditionStatus.FALSE, "Healthy", "")
    wanted = {ConditionType.READY: ready, ConditionType.PROGRESSING: progressing,
              ConditionType.FROZEN: frozen, ConditionType.DEGRADED: degraded}
    conds: tuple[Condition, ...] = tuple(s["conditions"])
    current = {c.type: (c.status, c.reason, c.message) for c in conds
               if c.observed_generation == gen}
    for type_, (status, reason, message) in wanted.items():
        if current.get(type_) != (status, reason, message):  # only what changed is rebuilt
            conds = set_condition(conds, type_, status, reason, message, gen, p.now)
    return conds
