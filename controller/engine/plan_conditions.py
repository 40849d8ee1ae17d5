"""A plan's four conditions (Ready, Progressing, Frozen, Degraded), from the next status and
the observation. ``set_condition`` moves ``lastTransitionTime`` only when a status flips."""

from __future__ import annotations

from controller.api.conditions import Condition, ConditionStatus, ConditionType, set_condition
from controller.api.decisions import Reason
from controller.api.plan import Phase
from controller.engine.announce import freeze_text
from controller.engine.draft import StatusDraft
from controller.engine.observation import Observation
from controller.engine.schedule import elapsed

_ACTIVE = frozenset({Phase.PROGRESSING, Phase.HOLDING, Phase.PAUSED, Phase.PROMOTING,
                     Phase.ROLLING_BACK})

Wanted = tuple[ConditionStatus, str, str]


def _ready(obs: Observation, d: StatusDraft) -> Wanted:
    router = obs.router
    if router.weight is None:
        return ConditionStatus.FALSE, router.reason, router.message
    if not obs.canary.exists or not obs.stable.exists:
        return ConditionStatus.FALSE, d.reason or Reason.WORKLOAD_NOT_FOUND, d.message
    return ConditionStatus.TRUE, Reason.RECONCILED, "the controller can act on this plan"


def _progressing(d: StatusDraft) -> Wanted:
    active = d.phase in _ACTIVE or (d.phase == Phase.FROZEN and d.current_step is not None)
    return (ConditionStatus.TRUE if active else ConditionStatus.FALSE,
            d.reason or d.phase.value, d.message)


def _frozen(obs: Observation) -> Wanted:
    freeze = obs.freeze
    if freeze is not None and freeze.frozen:
        return (ConditionStatus.FALSE if freeze.overridden else ConditionStatus.TRUE,
                Reason.OVERRIDE_ACTIVE if freeze.overridden else freeze.reason or Reason.FROZEN,
                freeze_text(freeze))
    return ConditionStatus.FALSE, Reason.NOT_FROZEN, "releases are open"


def _degraded(obs: Observation, d: StatusDraft) -> Wanted:
    router = obs.router
    if d.phase in (Phase.ROLLED_BACK, Phase.FAILED):
        return (ConditionStatus.TRUE, d.rollback_reason or d.reason or Reason.ROLLED_BACK,
                d.message)
    if router.weight is None:
        return ConditionStatus.TRUE, router.reason, router.message
    if d.route_pending_since is not None and (
            router.rejected or elapsed(d.route_pending_since, obs.now)
            >= obs.plan.spec.traffic.ready_timeout.seconds):
        return (ConditionStatus.TRUE, Reason.ROUTE_NOT_ACCEPTED,
                router.ready_message or "the route does not carry the change yet")
    return ConditionStatus.FALSE, Reason.HEALTHY, ""


def plan_conditions(obs: Observation, d: StatusDraft) -> tuple[Condition, ...]:
    """The draft's conditions brought up to date; only what changed is rebuilt."""
    gen = obs.plan.metadata.generation
    wanted = {ConditionType.READY: _ready(obs, d),
              ConditionType.PROGRESSING: _progressing(d),
              ConditionType.FROZEN: _frozen(obs),
              ConditionType.DEGRADED: _degraded(obs, d)}
    conds: tuple[Condition, ...] = tuple(d.conditions)
    current = {c.type: (c.status, c.reason, c.message) for c in conds
               if c.observed_generation == gen}
    for type_, (status, reason, message) in wanted.items():
        if current.get(type_) != (status, reason, message):
            conds = set_condition(conds, type_, status, reason, message, gen, obs.now)
    return conds
