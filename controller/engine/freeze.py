"""SLOPolicy evaluation: budgets, burn rates and the release freeze. Pure.

- Budget remaining per SLO = 1 - (bad / total over the SLO window) / (1 - objective).
- Freeze when the freeze SLO's budget remaining is below ``whenRemainingBelow``, or while a
  critical burn-rate alert fires on the stable service; release at ``releaseAbove`` or more
  (hysteresis), once no critical alert fires. The hysteresis is a latch in status
  (``budgetFreeze``): set below ``whenRemainingBelow``, cleared at ``releaseAbove`` or more,
  left as it was by an unknown budget (a metrics outage never lifts a budget freeze).
- An unknown budget (no data, a query error) freezes with reason ``BudgetUnknown``: new runs
  never start on an unknown budget. In-flight runs hold on it; they are not rolled back.
- Break-glass overrides are active until they expire; their activation and expiry are
  announced once each.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from controller.api.conditions import Condition, ConditionStatus, ConditionType, set_condition
from controller.api.decisions import DecisionType, Reason, severity_of, title_of
from controller.api.notifications import OutgoingMessage, Severity, trim_outbox
from controller.api.policy import (
    MAX_FREEZE_OVERRIDES,
    MAX_FREEZES,
    SLO,
    AlertSeverity,
    BurnRateStatus,
    FreezeRecord,
    FreezeReleases,
    OverrideStatus,
    ServiceStatus,
    SLOPolicy,
    SLOPolicyStatus,
    SLOState,
    SLOStatus,
)
from controller.engine import budget
from controller.engine.measurements import BurnRateMeasurement, Measurement
from controller.engine.observation import FreezeInput, FreezeReason


@dataclass(frozen=True, slots=True)
class SLOMeasurements:
    """One SLO's measurements on the policy's service: its budget window and burn rates."""

    slo: str
    budget: Measurement | None = None
    burn_rates: tuple[BurnRateMeasurement, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    status: SLOPolicyStatus
    requeue_after: float
    announcements: tuple[str, ...] = ()  # outbox keys added (when notifications are set)
    # every announcement as (seq, type, message), for Kubernetes Events whatever the channels
    events: tuple[tuple[int, str, str], ...] = ()


def _slo_status(slo: SLO, m: SLOMeasurements | None) -> SLOStatus:
    base = SLOStatus(name=slo.name, objective=slo.objective, window=slo.window)
    if slo.is_threshold or slo.objective is None:
        return base.model_copy(update={
            "state": SLOState.OK, "reason": "ThresholdSLI",
            "message": "judged against its bound by the gates; no error budget"})
    burns = []
    for i, alert in enumerate(slo.burn_rate_alerts):
        found = next((b for b in (m.burn_rates if m else ()) if b.alert == i), None)
        long_rate = short_rate = None
        if found is not None and found.long.ok and found.short.ok:
            assert found.long.value is not None and found.short.value is not None
            long_rate = round(budget.burn_rate(found.long.value, slo.objective), 6)
            short_rate = round(budget.burn_rate(found.short.value, slo.objective), 6)
        burns.append(BurnRateStatus(
            severity=alert.severity, factor=alert.factor, long=alert.long, short=alert.short,
            long_rate=long_rate, short_rate=short_rate,
            firing=budget.alert_fires(long_rate, short_rate, alert.factor),
        ))
    b = m.budget if m else None
    if b is None or not b.ok or b.numerator is None or b.denominator is None:
        reason = "NoData" if b is None or b.status.value == "no_data" else "PrometheusError"
        return base.model_copy(update={
            "state": SLOState.UNKNOWN, "reason": reason,
            "message": (b.message if b is not None and b.message else "budget not measured"),
            "burn_rates": burns})
    remaining = budget.budget_remaining(b.numerator, b.denominator, slo.objective)
    if remaining is None:
        return base.model_copy(update={
            "state": SLOState.UNKNOWN, "reason": "NoData",
            "message": f"no events in the last {slo.window}", "burn_rates": burns})
    return base.model_copy(update={
        "state": SLOState.OK, "reason": "Measured",
        "message": f"{b.numerator:.0f} bad of {b.denominator:.0f} events in {slo.window}",
        "budget_remaining": round(100.0 * remaining, 4),
        "error_ratio": b.value,
        "burn_rates": burns,
    })


def evaluate(policy: SLOPolicy, measured: dict[str, SLOMeasurements],
             now: datetime) -> PolicyDecision:
    """The next status of a policy guarding one service (``spec.service`` or its name),
    kept at the top level of the status only (no ``services``): every plan of the policy
    sees that freeze."""
    decision = evaluate_services(
        policy, {policy.spec.service_for(policy.metadata.name): measured}, now)
    return replace(decision, status=decision.status.model_copy(update={"services": None}))


def _previous(old: SLOPolicyStatus, service: str, only: bool) -> ServiceStatus | None:
    """SERVICE's state as the last evaluation left it. A status written before services
    were listed kept the one service's state at the top level."""
    found = next((s for s in old.services or [] if s.service == service), None)
    if found is not None:
        return found
    if only and old.services is None:
        return ServiceStatus(
            service=service, frozen=old.frozen, frozen_since=old.frozen_since,
            freeze_announced=old.freeze_announced, budget_freeze=old.budget_freeze,
            reason=old.reason, message=old.message, budget_remaining=old.budget_remaining,
            slos=old.slos)
    return None  # a service this policy has not evaluated before


def evaluate_services(policy: SLOPolicy, measured: dict[str, dict[str, SLOMeasurements]],
                      now: datetime, deployments: dict[str, list[str]] | None = None,
                      ) -> PolicyDecision:
    """The policy's next status from this evaluation's measurements of each guarded
    service (``measured``: service -> SLO -> measurements). Each service has its own
    budgets, burn rates, hysteresis latch and freeze, announced once each.
    ``deployments``: service -> the Deployments of its plans (for ``frozenDeployments``)."""
    old = policy.status
    spec = policy.spec
    gen = policy.metadata.generation
    announce = _Announcer(policy, now)
    only = len(measured) == 1
    never_evaluated = old.evaluated_at is None

    services: list[ServiceStatus] = []
    for service in sorted(measured):
        prev = _previous(old, service, only)
        # in a policy guarding several services every title and text names the service
        label = "" if only else f"{service}: "
        services.append(_service(policy, service, measured[service],
                                 prev or ServiceStatus(service=service), now,
                                 never_evaluated or prev is None, label, announce))
    overrides = _overrides(policy, now, announce)

    frozen_ones = [s for s in services if s.frozen]
    head = frozen_ones[0] if frozen_ones else (services[0] if only else None)
    frozen = bool(frozen_ones)
    reason = head.reason if head is not None and frozen else ""
    if head is not None and (frozen or only):
        message = (f"{head.service}: " if not only else "") + head.message
        remaining = head.budget_remaining
    else:
        message, remaining = "", None
    if not services:
        message = "no service to guard yet: no plan governed by this policy"
    conditions = _conditions(old, services, only, frozen, reason, message, gen, now)
    outbox = trim_outbox(announce.outbox)
    since = min((s.frozen_since for s in frozen_ones if s.frozen_since), default=None)
    freezes = _freeze_history(old, frozen, since, reason, message, remaining, overrides, now)
    frozen_deployments = sorted({d for s in frozen_ones
                                 for d in (deployments or {}).get(s.service, [])})
    status = old.model_copy(update={
        "observed_generation": gen, "seq": announce.seq, "evaluated_at": now, "frozen": frozen,
        "frozen_since": since,
        "freeze_announced": any(s.freeze_announced for s in frozen_ones),
        "budget_freeze": any(s.budget_freeze for s in services), "reason": reason,
        "message": message, "budget_remaining": remaining,
        "slos": services[0].slos if only else [], "services": services,
        "frozen_services": [s.service for s in frozen_ones],
        "frozen_deployments": frozen_deployments,
        "overrides": overrides, "freezes": freezes,
        "conditions": list(conditions),
        "notifications": old.notifications.model_copy(update={"outbox": outbox}),
    })
    interval = spec.evaluation_interval.seconds
    expiries = [(o.until - now).total_seconds() for o in overrides if o.active]
    requeue = min([interval, *[e + 0.01 for e in expiries]])
    return PolicyDecision(status, max(0.0, requeue), tuple(announce.added),
                          tuple(announce.events))


class _Announcer:
    """Announces a policy's transitions: a sequence number and an Event each, and an
    outbox entry when the policy has notifications."""

    def __init__(self, policy: SLOPolicy, now: datetime) -> None:
        self.policy, self.now = policy, now
        self.seq = policy.status.seq
        self.outbox = list(policy.status.notifications.outbox)
        self.added: list[str] = []
        self.events: list[tuple[int, str, str]] = []

    def __call__(self, type_: DecisionType, title: str, text: str,
                 severity: Severity | None = None, /) -> None:
        self.seq += 1
        self.events.append((self.seq, str(type_), text))
        if self.policy.spec.notifications is None:
            return
        key = f"p{self.seq}"
        meta = self.policy.metadata
        self.outbox.append(OutgoingMessage(
            key=key, type=type_, severity=severity or severity_of(type_), at=self.now,
            title=f"{meta.namespace}/{meta.name}: {title}", text=text))
        self.added.append(key)


def _overrides(policy: SLOPolicy, now: datetime, announce: _Announcer) -> list[OverrideStatus]:
    """The break-glass overrides' state; each activation and expiry announced once."""
    overrides = []
    previous = {o.id: o for o in policy.status.overrides}
    for o in policy.spec.overrides:
        active = o.expires > now
        overrides.append(OverrideStatus(id=o.id, by=o.by, reason=o.reason, until=o.expires,
                                        allow=list(o.allow), active=active))
        before = previous.get(o.id)
        who = o.by or "an operator"
        scope = ", ".join(o.allow) if o.allow else "every plan"
        if active and (before is None or not before.active):
            announce(DecisionType.OVERRIDE_ACTIVATED, title_of(DecisionType.OVERRIDE_ACTIVATED),
                     f"{who} let {scope} through until {o.expires:%Y-%m-%d %H:%M:%S}Z: "
                     f"{o.reason}")
        elif not active and before is not None and before.active:
            announce(DecisionType.OVERRIDE_EXPIRED, title_of(DecisionType.OVERRIDE_EXPIRED),
                     f"the override by {who} ({o.reason}) expired")
    return overrides


def _conditions(old: SLOPolicyStatus, services: list[ServiceStatus], only: bool, frozen: bool,
                reason: str, message: str, gen: int, now: datetime) -> list[Condition]:
    """Frozen (with the head service's reason) and Ready (every SLO measured)."""
    conditions = set_condition(
        old.conditions, ConditionType.FROZEN,
        ConditionStatus.TRUE if frozen else ConditionStatus.FALSE,
        reason or Reason.NOT_FROZEN, message if frozen else (message or "releases are open"),
        gen, now)
    unknown = sorted({(("" if only else f"{s.service}/") + slo.name)
                      for s in services for slo in s.slos if slo.state == SLOState.UNKNOWN})
    conditions = set_condition(
        conditions, ConditionType.READY,
        ConditionStatus.FALSE if unknown else ConditionStatus.TRUE,
        "SLOsUnknown" if unknown else "Evaluated",
        ("cannot measure: " + ", ".join(unknown)) if unknown else "every SLO measured",
        gen, now)
    return list(conditions)


def _service(policy: SLOPolicy, service: str, measured: dict[str, SLOMeasurements],
             old: ServiceStatus, now: datetime, never_evaluated: bool, label: str,
             announce: _Announcer) -> ServiceStatus:
    """One service's budgets and freeze, announcing its transitions through ANNOUNCE."""
    spec = policy.spec
    slos = [_slo_status(slo, measured.get(slo.name)) for slo in spec.slos]
    by_name = {s.name: s for s in slos}
    # Statuses written before the latch existed: a budget freeze in them is latched.
    latched = old.budget_freeze or (
        old.frozen and old.reason == FreezeReason.BUDGET_BELOW_THRESHOLD)
    freeze = spec.error_budget_policy.freeze_releases
    frozen, reason, message, remaining = False, "", "", None
    if freeze is not None:
        frozen, reason, message, remaining, latched = _freeze_state(freeze, by_name, latched)

    since = old.frozen_since if (old.frozen and frozen) else (now if frozen else None)
    # A budget not yet known at the service's first evaluations blocks runs without an
    # announcement; losing a budget that was known (a metrics outage) is announced.
    never_known = never_evaluated or (old.frozen and not old.freeze_announced)
    announced = old.freeze_announced if old.frozen else False
    if frozen and not announced and not (reason == FreezeReason.BUDGET_UNKNOWN and never_known):
        # An unknown budget is a warning: nothing is known to burn (it still alarms).
        started = DecisionType.FREEZE_STARTED
        announce(started, f"{label}{title_of(started)} ({reason})", label + message,
                 Severity.WARNING if reason == FreezeReason.BUDGET_UNKNOWN else None)
        announced = True
    elif old.frozen and not frozen and old.freeze_announced:
        lifted = DecisionType.FREEZE_LIFTED
        announce(lifted, f"{label}{title_of(lifted)}", label + message)
    if not frozen:
        announced = False

    # Warning burn-rate alerts: announced when they start firing (to the policy's Slack
    # channel, e.g. #monitoring), once per episode; critical ones freeze (above).
    warnings: list[str] = []
    for slo_status in slos:
        for i, b in enumerate(slo_status.burn_rates):
            if b.severity != AlertSeverity.WARNING or not b.firing:
                continue
            key = f"{slo_status.name}/{i}"
            warnings.append(key)
            if key not in old.warnings_firing:
                warning = DecisionType.BURN_RATE_WARNING
                announce(warning, f"{label}{slo_status.name} {title_of(warning)}",
                         f"{label}{slo_status.name} burns {b.long_rate:.1f}x over {b.long} "
                         f"and {b.short_rate:.1f}x over {b.short} (warning at "
                         f"{b.factor:g}x)")
    return ServiceStatus(
        service=service, frozen=frozen, frozen_since=since, freeze_announced=announced,
        budget_freeze=latched and freeze is not None, reason=reason, message=message,
        budget_remaining=remaining, warnings_firing=warnings, slos=slos)


def _freeze_state(freeze: FreezeReleases, by_name: dict[str, SLOStatus], latched: bool
                  ) -> tuple[bool, str, str, float | None, bool]:
    """A service's freeze from its freeze SLO: (frozen, reason, message, budget remaining,
    the hysteresis latch)."""
    s = by_name.get(freeze.slo)
    remaining = s.budget_remaining if s else None
    firing = [b for b in (s.burn_rates if s else [])
              if b.firing and b.severity == AlertSeverity.CRITICAL]
    below = freeze.when_remaining_below.value
    release = freeze.release_above.value
    if remaining is not None:  # an unknown budget leaves the hysteresis latch as it was
        latched = remaining < below or (latched and remaining < release)
    if s is None or s.state == SLOState.UNKNOWN or remaining is None:
        return True, FreezeReason.BUDGET_UNKNOWN, (
            f"the budget of {freeze.slo} is unknown ({s.reason if s else 'NoData'}): "
            "new runs wait until it can be measured"), remaining, latched
    if firing:
        worst = max(firing, key=lambda b: b.long_rate or 0)
        return True, FreezeReason.FAST_BURN, (
            f"{freeze.slo} burns {worst.long_rate:.1f}x over {worst.long} and "
            f"{worst.short_rate:.1f}x over {worst.short} (critical at "
            f"{worst.factor:g}x)"), remaining, latched
    if latched:
        return True, FreezeReason.BUDGET_BELOW_THRESHOLD, (
            f"{remaining:.1f}% of the {freeze.slo} budget left; releases resume "
            f"at {release:g}%" if remaining >= below else
            f"{remaining:.1f}% of the {freeze.slo} budget left (freeze below "
            f"{below:g}%, release at {release:g}%)"), remaining, latched
    return False, "", f"{remaining:.1f}% of the {freeze.slo} budget left", remaining, latched


def _freeze_history(old: SLOPolicyStatus, frozen: bool, since: datetime | None, reason: str,
                    message: str, remaining: float | None, overrides: list[OverrideStatus],
                    now: datetime) -> list[FreezeRecord]:
    """The last MAX_FREEZES freezes: a record opens when a freeze starts, follows it (every
    reason, the lowest budget, each override active during it) and closes when it lifts."""
    freezes = list(old.freezes)
    current = freezes[-1] if freezes and freezes[-1].until is None else None
    if not frozen:
        if current is not None:
            freezes[-1] = current.model_copy(update={"until": now})
        return freezes
    assert since is not None
    if current is None or current.since != since:
        if current is not None:
            freezes[-1] = current.model_copy(update={"until": since})
        current = FreezeRecord(since=since, reason=reason)
        freezes.append(current)
    lowest = min((v for v in (current.budget_remaining, remaining) if v is not None),
                 default=None)
    used = [*current.overrides, *(o.id for o in overrides
                                  if o.active and o.id not in current.overrides)]
    freezes[-1] = current.model_copy(update={
        "reasons": list(dict.fromkeys([*current.reasons, reason])), "message": message,
        "budget_remaining": lowest, "overrides": used[:MAX_FREEZE_OVERRIDES]})
    return freezes[-MAX_FREEZES:]


def freeze_input(policy: SLOPolicy, plan_name: str, now: datetime,
                 service: str | None = None) -> FreezeInput | None:
    """What a plan of SERVICE sees of its policy's freeze, with any override covering it.

    A policy with ``spec.service`` guards that one service for all its plans; one without
    guards each plan's own service: the plan sees that service's freeze only (a freeze of
    ``checkout`` does not block ``cart``), and a service the policy has not evaluated yet
    is an unknown budget."""
    freeze = policy.spec.error_budget_policy.freeze_releases
    if freeze is None:
        return None
    st = policy.status
    name = policy.metadata.name
    if st.evaluated_at is None:
        return FreezeInput(policy=name, frozen=True,
                           reason=FreezeReason.BUDGET_UNKNOWN,
                           message="the policy has not been evaluated yet",
                           in_flight=freeze.in_flight)
    overridden = any(
        o.until > now and (not o.allow or plan_name in o.allow) for o in st.overrides
    ) or any(
        o.expires > now and (not o.allow or plan_name in o.allow) for o in policy.spec.overrides
    )
    state: SLOPolicyStatus | ServiceStatus = st
    if service is not None and _per_service(policy):
        found = policy.service_status(service)
        if found is None:
            return FreezeInput(policy=name, frozen=True, reason=FreezeReason.BUDGET_UNKNOWN,
                               message=f"service {service} is not evaluated yet (the policy "
                               "measures it at its next evaluation)",
                               in_flight=freeze.in_flight, overridden=overridden)
        state = found
    if not state.frozen:  # the reason, message and budget describe a freeze: there is none
        return FreezeInput(policy=name, frozen=False,
                           in_flight=freeze.in_flight, overridden=overridden)
    message = state.message
    if isinstance(state, ServiceStatus) and len(st.services or []) > 1:
        message = f"service {state.service}: {message}"
    return FreezeInput(
        policy=name, frozen=True, reason=state.reason, message=message,
        budget_remaining=state.budget_remaining, in_flight=freeze.in_flight,
        overridden=overridden, since=state.frozen_since,
    )


def _per_service(policy: SLOPolicy) -> bool:
    """Does the policy keep a freeze per service? Not with ``spec.service`` (one service),
    nor in a status written before services were listed (or by hand)."""
    return policy.spec.service is None and policy.status.services is not None


def combine(inputs: list[FreezeInput | None]) -> FreezeInput | None:
    """One freeze input from a plan's own policy and its namespace's platform policies: the
    first that blocks the plan, else the first that is frozen, else the first."""
    known = [i for i in inputs if i is not None]
    for test in (lambda i: i.blocks, lambda i: i.frozen, lambda i: True):
        found = next((i for i in known if test(i)), None)
        if found is not None:
            return found
    return None


def plan_facing_state(policy: SLOPolicy) -> tuple[object, ...]:
    """Everything of POLICY that :func:`freeze_input` reads (with ``metadata.generation``,
    which moves with any change of the spec). Two states of a policy with equal values give
    every plan the same freeze input at every time, so a new policy status that leaves this
    value unchanged — each evaluation writes its budget figures and time — is nothing a
    plan needs to look at again for."""
    st = policy.status
    overrides = tuple((o.id, o.until, tuple(o.allow)) for o in st.overrides)
    frozen = ((st.reason, st.message, st.budget_remaining, st.frozen_since)
              if st.frozen else None)
    services = tuple(
        (s.service, s.frozen,
         (s.reason, s.message, s.budget_remaining, s.frozen_since) if s.frozen else None)
        for s in st.services or [])
    return (policy.metadata.name, policy.metadata.generation, st.evaluated_at is None,
            st.frozen, frozen, overrides, _per_service(policy), services,
            policy.is_platform)
