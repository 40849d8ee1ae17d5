"""Policy evaluation: when a freeze is announced (engine/freeze.py, pure)."""

from __future__ import annotations

from datetime import timedelta

from controller.engine.freeze import SLOMeasurements, evaluate
from controller.engine.measurements import MeasurementStatus
from tests.harness import builders as b


def policy_with_notifications() -> object:
    doc = b.policy_doc()
    doc["spec"]["notifications"] = {"slack": {
        "channel": "#deploys", "tokenSecretRef": {"name": "slack", "key": "token"}}}
    from controller.api.policy import SLOPolicy

    return SLOPolicy.model_validate(doc)


def measured(bad: float | None, total: float = 1_000_000) -> dict[str, SLOMeasurements]:
    budget = b.missing(MeasurementStatus.NO_DATA) if bad is None else b.ratio(bad / total, total)
    return {"api_availability": SLOMeasurements("api_availability", budget)}


def run(policy: object, steps: list[float | None]) -> list[list[str]]:
    out = []
    now = b.T0
    for bad in steps:
        d = evaluate(policy, measured(bad), now)  # type: ignore[arg-type]
        out.append([m.type for m in d.status.notifications.outbox
                    if m.key in d.announcements])
        policy = policy.model_copy(update={"status": d.status})  # type: ignore[attr-defined]
        now += timedelta(seconds=60)
    return out


def test_an_unknown_budget_at_start_blocks_quietly() -> None:
    p = policy_with_notifications()
    d = evaluate(p, measured(None), b.T0)  # type: ignore[arg-type]
    assert d.status.frozen and d.status.reason == "BudgetUnknown"
    assert d.announcements == ()
    assert run(p, [None, None, 100.0]) == [[], [], []]


def test_losing_a_known_budget_is_announced_once_and_lifted_once() -> None:
    p = policy_with_notifications()
    assert run(p, [100.0, None, None, 100.0]) == [[], ["FreezeStarted"], [], ["FreezeLifted"]]


def test_a_spent_budget_freezes_once_with_hysteresis() -> None:
    p = policy_with_notifications()
    # 8 % left (920 bad of 1e6 at 99.9 %): freeze; 12 % stays frozen; 20 % lifts.
    assert run(p, [100.0, 920.0, 920.0, 880.0, 800.0]) == [
        [], ["FreezeStarted"], [], [], ["FreezeLifted"]]


def test_announcements_become_events_even_without_notification_channels() -> None:
    from tests.harness import builders as bb

    plain = bb.policy()  # no spec.notifications
    first = evaluate(plain, measured(100.0), bb.T0)
    frozen = evaluate(plain.model_copy(update={"status": first.status}), measured(920.0),
                      bb.T0 + timedelta(seconds=60))
    assert frozen.announcements == ()  # nothing to deliver
    assert [e[1] for e in frozen.events] == ["FreezeStarted"]
    assert frozen.status.notifications.outbox == []
