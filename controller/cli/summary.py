"""What the CLI tells about a plan, computed from its status and the current time.

Pure functions (``now`` is passed in): the same numbers feed the tables, the live view, the
exit codes and the report.

Exit codes of ``status`` (and ``status --watch`` when it ends):

* 0: succeeded, or healthy: Pending, Progressing, Holding, Paused, Promoting, Frozen and
  RollingBack-for-a-drill are healthy (nothing rolled back, nothing degraded). A freeze is
  the error-budget policy working as intended, so it is healthy too.
* 1: rolled back (phase RolledBack, or RollingBack after a failed gate or an abort),
  degraded (the ``Degraded`` condition is True, e.g. the route cannot be read or written)
  or Invalid (the spec cannot be acted on).
* 2: an error (no cluster, unknown plan, no permission) or ``--watch`` timed out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from controller.api.plan import (
    DrillOutcome,
    DrillReport,
    Phase,
    RolloutPlan,
    Verdict,
)
from controller.cli.errors import ExitCode

FINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.FAILED, Phase.INVALID})


def condition_true(plan: RolloutPlan, type_: str) -> bool:
    return any(c.type == type_ and c.status == "True" for c in plan.status.conditions)


def is_degraded(plan: RolloutPlan) -> bool:
    return condition_true(plan, "Degraded") and plan.status.phase != Phase.ROLLED_BACK


def is_rolling_back(plan: RolloutPlan) -> bool:
    """Rolling back for real (not a drill)."""
    st = plan.status
    return st.phase == Phase.ROLLING_BACK and st.active_drill is None


def exit_code(plan: RolloutPlan) -> ExitCode:
    """0 succeeded or healthy, 1 rolled back / rolling back / degraded / invalid."""
    st = plan.status
    if st.phase in (Phase.ROLLED_BACK, Phase.FAILED, Phase.INVALID) or is_rolling_back(plan):
        return ExitCode.BAD
    if condition_true(plan, "Degraded"):
        return ExitCode.BAD
    return ExitCode.OK


def is_final(plan: RolloutPlan) -> bool:
    """Nothing more will happen without a new revision or an operator: stop watching."""
    st = plan.status
    return st.phase in FINAL_PHASES and st.active_drill is None and (
        st.observed_generation >= plan.metadata.generation)


def health(plan: RolloutPlan) -> str:
    code = exit_code(plan)
    if plan.status.phase == Phase.SUCCEEDED:
        return "succeeded"
    if code == ExitCode.OK:
        return "healthy"
    if plan.status.phase == Phase.INVALID:
        return "invalid"
    if plan.status.phase == Phase.FAILED:
        return "failed"
    if plan.status.phase == Phase.ROLLED_BACK or is_rolling_back(plan):
        return "rolled back" if plan.status.phase == Phase.ROLLED_BACK else "rolling back"
    return "degraded"


# ----------------------------------------------------------------------------- steps


class StepState:
    DONE = "done"
    CURRENT = "current"
    TO_COME = "to come"


@dataclass(frozen=True)
class StepProgress:
    index: int  # 0-based
    weight: int
    hold_seconds: float
    hold_text: str
    state: str
    elapsed: float  # seconds of the hold elapsed (the hold for done steps, 0 to come)
    mirror: int = 0  # a mirror step: percent of requests copied to the canary

    @property
    def share_text(self) -> str:
        """What the step sends the canary: ``mirror 50%`` or `` 25%``."""
        return f"mirror {self.mirror}%" if self.mirror else f"{self.weight:>3}%"

    @property
    def fraction(self) -> float:
        if self.hold_seconds <= 0:
            return 1.0 if self.state != StepState.TO_COME else 0.0
        return min(1.0, self.elapsed / self.hold_seconds)


def steps(plan: RolloutPlan, now: datetime) -> list[StepProgress]:
    """Each step: done, current (with the hold elapsed so far) or to come."""
    st = plan.status
    current = st.current_step
    finished = st.phase in (Phase.SUCCEEDED, Phase.PROMOTING)
    out = []
    for i, step in enumerate(plan.spec.steps):
        hold = step.hold.seconds
        if current is None:
            state, elapsed = StepState.TO_COME, 0.0
        elif i < current or (finished and i <= current):
            state, elapsed = StepState.DONE, hold
        elif i == current:
            state = StepState.CURRENT
            elapsed = hold_elapsed(plan, now)
        else:
            state, elapsed = StepState.TO_COME, 0.0
        out.append(StepProgress(i, step.weight, hold, step.hold.text, state, elapsed,
                                step.mirror or 0))
    return out


def hold_elapsed(plan: RolloutPlan, now: datetime) -> float:
    """Seconds since the current step started (0 when it has not started yet)."""
    started = plan.status.step_started_at
    if started is None:
        return 0.0
    return max(0.0, (now - started).total_seconds())


def step_text(plan: RolloutPlan) -> str:
    """``2/4`` (the current step, 1-based, of all), or ``-`` outside a run."""
    current = plan.status.current_step
    if current is None:
        return "-"
    return f"{current + 1}/{len(plan.spec.steps)}"


def gates_text(plan: RolloutPlan) -> str:
    """``2/3 Pass``: how many gates pass of all the plan's gates."""
    total = len(plan.spec.gates)
    if total == 0:
        return "-"
    passing = sum(1 for g in plan.status.gates if g.verdict == Verdict.PASS)
    return f"{passing}/{total} Pass"


def age(created: datetime | None, now: datetime) -> str:
    """kubectl's AGE: ``45s``, ``12m``, ``5h3m``, ``3d4h``, ``2y``."""
    if created is None:
        return "<unknown>"
    seconds = int(max(0.0, (now - created).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m{s}s" if s else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        m = minutes % 60
        return f"{hours}h{m}m" if m else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        h = hours % 24
        return f"{days}d{h}h" if h else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def duration(seconds: float) -> str:
    """A short human duration: ``0.42s``, ``45s``, ``12m3s``, ``1h2m``, ``2d3h``."""
    if seconds < 0:
        return "-" + duration(-seconds)
    if seconds < 10:
        return f"{seconds:.2f}s"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60}s" if s % 60 else f"{s // 60}m"
    if s < 86400:
        m = (s % 3600) // 60
        return f"{s // 3600}h{m}m" if m else f"{s // 3600}h"
    h = (s % 86400) // 3600
    return f"{s // 86400}d{h}h" if h else f"{s // 86400}d"


# ----------------------------------------------------------------------------- drills

DRILL_STAGES = (
    ("rollback started", "rollback_started_at"),
    ("canary weight 0", "canary_weight_zero_at"),
    ("stable ready", "stable_ready_at"),
    ("restored", "restored_at"),
)


@dataclass(frozen=True)
class Timing:
    stage: str
    at: datetime | None
    since_request: float | None
    since_previous: float | None


def drill_timings(report: DrillReport) -> list[Timing]:
    """request -> rollback started -> canary weight 0 -> stable ready -> restored."""
    out = [Timing("requested", report.requested_at, 0.0, None)]
    previous = report.requested_at
    for label, attr in DRILL_STAGES:
        if attr == "restored_at" and not report.restore:
            continue
        at: datetime | None = getattr(report, attr)
        if at is None:
            out.append(Timing(label, None, None, None))
            continue
        out.append(Timing(label, at, (at - report.requested_at).total_seconds(),
                          (at - previous).total_seconds()))
        previous = at
    return out


def drill_end(report: DrillReport) -> datetime | None:
    if report.outcome == DrillOutcome.RUNNING:
        return None
    return report.restored_at or report.stable_ready_at or report.canary_weight_zero_at


def drill_seconds(report: DrillReport) -> float | None:
    end = drill_end(report)
    return (end - report.requested_at).total_seconds() if end is not None else None
