"""The policy keeps its last freezes in status (``status.freezes``, engine/freeze.py) for
the SLO report: when each started and ended, every reason it had, the lowest budget seen
and the overrides active during it; bounded to MAX_FREEZES."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from controller.api.policy import MAX_FREEZES, SLOPolicy
from controller.engine.freeze import SLOMeasurements, evaluate
from controller.engine.measurements import Measurement, MeasurementStatus
from tests.harness import builders as b

SLO = "api_availability"
TOTAL = 1_000_000.0


def budget(remaining: float | None) -> dict[str, SLOMeasurements]:
    if remaining is None:
        return {SLO: SLOMeasurements(SLO, Measurement(MeasurementStatus.ERROR, message="down"))}
    bad = (1 - remaining / 100) * 0.001 * TOTAL
    return {SLO: SLOMeasurements(SLO, Measurement(
        MeasurementStatus.OK, value=bad / TOTAL, samples=TOTAL, numerator=bad,
        denominator=TOTAL))}


def policy(overrides: list[dict[str, Any]] | None = None) -> SLOPolicy:
    doc = b.policy_doc()
    doc["spec"]["overrides"] = overrides or []
    return SLOPolicy.model_validate(doc)


def run(p: SLOPolicy, budgets: list[float | None], start_minute: int = 0) -> SLOPolicy:
    for i, remaining in enumerate(budgets):
        now = b.T0 + timedelta(minutes=start_minute + i)
        p = p.model_copy(update={"status": evaluate(p, budget(remaining), now).status})
    return p


def test_a_freeze_is_recorded_from_start_to_lift_with_its_reasons_and_lowest_budget() -> None:
    p = run(policy(), [50.0, 8.0, 5.0, None, 12.0, 20.0])
    [f] = p.status.freezes
    assert f.since == b.T0 + timedelta(minutes=1)
    assert f.until == b.T0 + timedelta(minutes=5)  # released at 20 % (>= 15 %)
    assert f.reasons == ["BudgetBelowThreshold", "BudgetUnknown"]
    assert f.reason == "BudgetBelowThreshold" and f.budget_remaining == 5.0


def test_an_ongoing_freeze_has_no_end_and_a_new_one_opens_a_new_record() -> None:
    p = run(policy(), [8.0, 20.0, 9.0])
    first, second = p.status.freezes
    assert first.until == b.T0 + timedelta(minutes=1)
    assert second.since == b.T0 + timedelta(minutes=2) and second.until is None


def test_overrides_active_during_a_freeze_are_recorded_once() -> None:
    expires = (b.T0 + timedelta(hours=2)).isoformat()
    p = run(policy([{"id": "hotfix-1", "reason": "INC-42", "expires": expires,
                     "by": "alice"}]), [8.0, 8.0, 8.0])
    [f] = p.status.freezes
    assert f.overrides == ["hotfix-1"]


def test_the_history_is_bounded() -> None:
    p = policy()
    for i in range(MAX_FREEZES + 5):
        p = run(p, [8.0, 20.0], start_minute=2 * i)
    assert len(p.status.freezes) == MAX_FREEZES
    assert p.status.freezes[-1].since == b.T0 + timedelta(minutes=2 * (MAX_FREEZES + 4))
