"""Break-glass overrides of a freeze (``engine/freeze.py``): who they let through, that they
are announced once when they start and once when they expire, that the policy is evaluated
again exactly at the expiry, and that a plan stops being let through at the expiry even
before that evaluation has happened.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from controller.api.policy import SLOPolicy
from controller.engine.freeze import SLOMeasurements, evaluate, freeze_input
from controller.engine.measurements import Measurement, MeasurementStatus
from tests.harness import builders as b

FREEZE_SLO = "api_availability"
EXPIRES = b.T0 + timedelta(minutes=30)
INTERVAL = 60.0  # the policy's default evaluationInterval


def at_8_percent() -> dict[str, SLOMeasurements]:
    total = 1_000_000.0
    bad = 0.92 * 0.001 * total
    m = Measurement(MeasurementStatus.OK, value=bad / total, samples=total, numerator=bad,
                    denominator=total)
    return {FREEZE_SLO: SLOMeasurements(FREEZE_SLO, m)}


def override(id_: str = "ovr-1", expires: datetime = EXPIRES, allow: list[str] | None = None,
             by: str = "alice@example.com", reason: str = "hotfix INC-42") -> dict[str, Any]:
    return {"id": id_, "reason": reason, "expires": expires.isoformat(), "allow": allow or [],
            "by": by}


def policy(*overrides: dict[str, Any], notifications: bool = True) -> SLOPolicy:
    doc = b.policy_doc()
    doc["spec"]["overrides"] = list(overrides)
    if notifications:
        doc["spec"]["notifications"] = {"slack": {
            "channel": "#deploys", "tokenSecretRef": {"name": "slack", "key": "token"}}}
    return SLOPolicy.model_validate(doc)


def evaluated(p: SLOPolicy, now: datetime) -> tuple[SLOPolicy, float, list[str]]:
    """P after one evaluation at NOW, the requeue and the types announced."""
    d = evaluate(p, at_8_percent(), now)
    types = [m.type for m in d.status.notifications.outbox if m.key in d.announcements]
    return p.model_copy(update={"status": d.status}), d.requeue_after, types


def with_spec_overrides(p: SLOPolicy, *overrides: dict[str, Any]) -> SLOPolicy:
    fresh = policy(*overrides)
    return fresh.model_copy(update={"status": p.status})


def lets_through(p: SLOPolicy, plan: str, now: datetime) -> bool:
    fi = freeze_input(p, plan, now)
    assert fi is not None and fi.frozen
    return not fi.blocks


# -- who is let through --------------------------------------------------------------------


@pytest.mark.parametrize(("allow", "plan", "through"), [
    ([], "checkout", True),                      # no allow list: every plan
    ([], "orders", True),
    (["checkout"], "checkout", True),
    (["checkout"], "orders", False),
    (["checkout", "orders"], "orders", True),
    (["checkout"], "checkout-canary", False),    # names, not prefixes
])
def test_an_active_override_lets_its_plans_through_a_freeze(
    allow: list[str], plan: str, through: bool,
) -> None:
    p, _, _ = evaluated(policy(override(allow=allow)), b.T0)
    assert lets_through(p, plan, b.T0 + timedelta(minutes=1)) is through


def test_an_override_does_not_lift_the_freeze_itself() -> None:
    p, _, _ = evaluated(policy(override()), b.T0)
    assert p.status.frozen and p.status.reason == "BudgetBelowThreshold"
    [o] = p.status.overrides
    assert (o.id, o.by, o.reason, o.until, o.active) == (
        "ovr-1", "alice@example.com", "hotfix INC-42", EXPIRES, True)


def test_a_plan_is_no_longer_let_through_at_the_expiry_even_before_the_policy_is_evaluated(
) -> None:
    p, _, _ = evaluated(policy(override()), b.T0)
    assert p.status.overrides[0].active  # as last written; no evaluation since
    assert lets_through(p, "checkout", EXPIRES - timedelta(seconds=1))
    assert not lets_through(p, "checkout", EXPIRES)
    assert not lets_through(p, "checkout", EXPIRES + timedelta(seconds=1))


def test_an_override_removed_from_the_spec_stops_letting_plans_through() -> None:
    p, _, _ = evaluated(policy(override()), b.T0)
    p, _, types = evaluated(with_spec_overrides(p), b.T0 + timedelta(minutes=1))
    assert p.status.overrides == [] and types == []
    assert not lets_through(p, "checkout", b.T0 + timedelta(minutes=2))


# -- announced once ------------------------------------------------------------------------


def test_activation_and_expiry_are_announced_once_each_over_many_evaluations() -> None:
    p = policy(override())
    announced: list[str] = []
    now = b.T0
    while now < EXPIRES + timedelta(minutes=10):
        p, _, types = evaluated(p, now)
        announced += types
        now += timedelta(seconds=INTERVAL)
    assert announced == ["FreezeStarted", "OverrideActivated", "OverrideExpired"]
    assert p.status.overrides[0].active is False
    texts = {m.type: m.text for m in p.status.notifications.outbox}
    assert texts["OverrideActivated"] == ("alice@example.com let every plan through until "
                                          "2026-11-27 12:30:00Z: hotfix INC-42")
    assert texts["OverrideExpired"] == ("the override by alice@example.com (hotfix INC-42) "
                                        "expired")


def test_an_override_already_expired_when_first_seen_is_not_announced() -> None:
    p, _, types = evaluated(policy(override(expires=b.T0 - timedelta(minutes=1))), b.T0)
    assert "OverrideActivated" not in types and "OverrideExpired" not in types
    assert p.status.overrides[0].active is False


def test_an_override_extended_after_its_expiry_is_announced_again() -> None:
    p, _, _ = evaluated(policy(override()), b.T0)
    p, _, types = evaluated(p, EXPIRES)
    assert types == ["OverrideExpired"]
    later = EXPIRES + timedelta(hours=1)
    p, _, types = evaluated(with_spec_overrides(p, override(expires=later)),
                            EXPIRES + timedelta(minutes=1))
    assert types == ["OverrideActivated"] and p.status.overrides[0].active


def test_two_overrides_are_announced_each_on_their_own() -> None:
    p, _, types = evaluated(policy(override("a"), override("b", allow=["orders"])), b.T0)
    assert types == ["FreezeStarted", "OverrideActivated", "OverrideActivated"]
    p, _, types = evaluated(p, b.T0 + timedelta(minutes=1))
    assert types == []


def test_without_notifications_the_status_still_records_the_override() -> None:
    p, _, types = evaluated(policy(override(), notifications=False), b.T0)
    assert types == [] and p.status.notifications.outbox == []
    assert p.status.overrides[0].active and p.status.overrides[0].by == "alice@example.com"


# -- evaluated again at the expiry ---------------------------------------------------------


@pytest.mark.parametrize(("now", "requeue"), [
    (b.T0, INTERVAL),                                        # 30 min away: the interval
    (EXPIRES - timedelta(seconds=20), 20.01),                # due before the next interval
    (EXPIRES - timedelta(milliseconds=500), 0.51),
    (EXPIRES, INTERVAL),                                     # expired: back to the interval
])
def test_the_next_evaluation_is_at_the_expiry_when_that_comes_first(
    now: datetime, requeue: float,
) -> None:
    _, after, _ = evaluated(policy(override()), now)
    assert after == pytest.approx(requeue)


def test_the_earliest_of_several_expiries_sets_the_requeue() -> None:
    soon = b.T0 + timedelta(seconds=5)
    _, after, _ = evaluated(policy(override("a"), override("b", expires=soon)), b.T0)
    assert after == pytest.approx(5.01)
