"""The dashboard's headline figures, computed from the plans' and policies' status alone.

Pure: no I/O, no clock reads (``now`` is passed in). The definitions (also in the README):

* **SLO compliance rate**: the share of SLOs meeting their objective, over the SLOs whose
  budget is known. An SLO meets its objective while its error budget over its window is not
  spent (``budgetRemaining > 0``). SLOs without a budget (throughput, gauge) or not yet
  evaluated are listed but not counted.
* **Active incidents**: every release freeze in force (a policy's ``frozen``), and every
  rollback (a plan RollingBack or RolledBack) with an incident open on the incident webhook.
* **Health**: UNHEALTHY when an incident is active or an SLO's budget is spent; DEGRADED
  when a burn-rate alert fires, a gate fails, a plan holds or is frozen, or an SLO or
  policy is not evaluated; HEALTHY otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from controller.api.plan import Phase, RolloutPlan, Verdict
from controller.api.policy import SLOPolicy, SLOStatus


class Health(StrEnum):
    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"
    UNHEALTHY = "UNHEALTHY"


@dataclass(frozen=True)
class Incident:
    kind: str  # "freeze" or "rollback"
    namespace: str
    name: str
    reason: str
    since: datetime | None


@dataclass(frozen=True)
class Headline:
    health: Health
    why: list[str]  # spent budgets and warnings (incidents are listed on their own)
    slos_met: int
    slos_counted: int
    incidents: list[Incident] = field(default_factory=list)

    @property
    def compliance(self) -> float | None:
        """Percent of counted SLOs meeting their objective (None when none is counted)."""
        if not self.slos_counted:
            return None
        return 100.0 * self.slos_met / self.slos_counted


def meets_objective(slo: SLOStatus) -> bool | None:
    """True/False for an SLO whose budget is known, None otherwise."""
    if slo.budget_remaining is None:
        return None
    return slo.budget_remaining > 0


def incidents(plans: list[RolloutPlan], policies: list[SLOPolicy]) -> list[Incident]:
    out: list[Incident] = []
    for policy in policies:
        st = policy.status
        if st.frozen:
            out.append(Incident("freeze", policy.metadata.namespace or "", policy.metadata.name,
                                st.message or st.reason or "frozen", st.frozen_since))
    for plan in plans:
        pst = plan.status
        incident = pst.notifications.incident
        if pst.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK) and incident is not None:
            out.append(Incident("rollback", plan.metadata.namespace or "", plan.metadata.name,
                                pst.rollback_reason or pst.reason, incident.since))
    return out


def headline(plans: list[RolloutPlan], policies: list[SLOPolicy]) -> Headline:
    met = counted = 0
    bad: list[str] = []
    warn: list[str] = []
    for policy in policies:
        where = f"{policy.metadata.namespace}/{policy.metadata.name}"
        if policy.status.evaluated_at is None:
            warn.append(f"policy {where} not evaluated yet")
        for slo in policy.status.slos:
            verdict = meets_objective(slo)
            if verdict is not None:
                counted += 1
                met += verdict
                if not verdict:
                    bad.append(f"{where} {slo.name}: error budget spent")
            if any(b.firing for b in slo.burn_rates):
                warn.append(f"{where} {slo.name}: burn-rate alert firing")
    for plan in plans:
        where = f"{plan.metadata.namespace}/{plan.metadata.name}"
        st = plan.status
        if st.phase == Phase.ROLLING_BACK:
            warn.append(f"plan {where} rolling back")
        if st.phase in (Phase.HOLDING, Phase.FROZEN):
            warn.append(f"plan {where} {st.phase.value}")
        if st.in_run and any(g.verdict == Verdict.FAIL for g in st.gates):
            warn.append(f"plan {where}: a gate fails")
    found = incidents(plans, policies)
    health = (Health.UNHEALTHY if bad or found else Health.DEGRADED if warn
              else Health.HEALTHY)
    return Headline(health, bad + warn, met, counted, found)


def step_label(plan: RolloutPlan) -> tuple[int, int]:
    """(steps done or under way, steps in all) for the step bar."""
    total = len(plan.spec.steps)
    st = plan.status
    if st.phase == Phase.SUCCEEDED:
        return total, total
    if st.current_step is None:
        return 0, total
    return st.current_step + 1, total
