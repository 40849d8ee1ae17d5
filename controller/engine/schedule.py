"""When to measure and when a run sits at a step: pure predicates over a plan's status.

The reconciler, the fast path and the simulator ask these before a pass (``gates_due``,
``fast_path_wants``); the engine asks them during one.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from functools import lru_cache

from controller.api.plan import Phase, RolloutPlan, RolloutPlanStatus, Step
from controller.api.policy import SLO, SLOPolicy
from controller.engine import verdicts
from controller.engine.measurements import GateMeasurement
from controller.engine.observation import Observation

TRANSITION_REQUEUE = 1.0  # seconds, while waiting on workloads or the router

STEPPING_PHASES = frozenset({Phase.PROGRESSING, Phase.HOLDING, Phase.PAUSED, Phase.FROZEN})


def steps_hash(steps: list[Step]) -> str:
    """A short, stable hash of the steps (weights and holds); a change restarts at step 0."""
    return _hash_steps(tuple((s.weight, s.hold.seconds) if s.mirror is None
                             else (0, s.hold.seconds, s.mirror) for s in steps))


@lru_cache(maxsize=1024)
def _hash_steps(steps: tuple[tuple[float, ...], ...]) -> str:
    text = json.dumps([list(s) for s in steps], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def elapsed(since: datetime | None, now: datetime) -> float:
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
    since_step = elapsed(status.step_started_at, now)
    return max(1.0, min(window, since_step)) if status.step_started_at else window


def run_seconds(status: RolloutPlanStatus, now: datetime) -> float:
    return max(1.0, elapsed(status.run_started_at, now))


def slo_of(policy: SLOPolicy | None, slo_name: str | None) -> SLO | None:
    """The policy's SLO a gate names (None for a canaryVsStable or probe gate)."""
    if policy is None or slo_name is None:
        return None
    return policy.spec.slo(slo_name)


def fast_path_wants(obs_plan: RolloutPlan, policy: SLOPolicy | None,
                    fast: tuple[GateMeasurement, ...]) -> bool:
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
        if verdicts.ceiling_breached(analysis, m):
            return True
        if verdicts.burning(gate, slo_of(policy, gate.slo_name), m,
                            analysis.min_samples) is not None:
            return True
    return False
