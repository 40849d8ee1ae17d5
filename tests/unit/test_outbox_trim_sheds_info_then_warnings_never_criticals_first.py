"""The one outbox trim (controller/api/notifications.py), used by the plan engine and the
SLOPolicy evaluator: a full outbox sheds its oldest info entries, then its oldest warnings;
a critical entry goes only when nothing else is left."""

from __future__ import annotations

from datetime import timedelta

from controller.api.notifications import MAX_OUTBOX, OutgoingMessage, Severity, trim_outbox
from tests.harness import builders as b


def entry(i: int, type_: str, severity: Severity, prefix: str = "p") -> OutgoingMessage:
    return OutgoingMessage(key=f"{prefix}{i}", type=type_, severity=severity,
                           at=b.T0 + timedelta(seconds=i), title=type_)


def test_a_full_outbox_of_criticals_and_warnings_plus_a_warning_keeps_every_critical() -> None:
    outbox = [entry(0, "FreezeStarted", Severity.CRITICAL)]
    outbox += [entry(i, "BurnRateWarning", Severity.WARNING) for i in range(1, MAX_OUTBOX - 1)]
    outbox += [entry(MAX_OUTBOX - 1, "RollbackStarted", Severity.CRITICAL)]
    assert len(outbox) == MAX_OUTBOX
    trimmed = trim_outbox(outbox + [entry(MAX_OUTBOX, "BurnRateWarning", Severity.WARNING)])
    assert len(trimmed) == MAX_OUTBOX
    criticals = [e.key for e in trimmed if e.severity is Severity.CRITICAL]
    assert criticals == ["p0", f"p{MAX_OUTBOX - 1}"]
    assert "p1" not in {e.key for e in trimmed}  # the oldest warning went
    assert trimmed[-1].key == f"p{MAX_OUTBOX}"  # order kept, the new one last


def test_info_goes_before_any_warning_oldest_first() -> None:
    outbox = [entry(i, "Holding", Severity.WARNING) for i in range(MAX_OUTBOX - 2)]
    outbox += [entry(100, "StepAdvanced", Severity.INFO), entry(101, "Resumed", Severity.INFO)]
    trimmed = trim_outbox(outbox + [entry(102, "Paused", Severity.WARNING)])
    assert [e.key for e in trimmed if e.severity is Severity.INFO] == ["p101"]
    assert sum(e.severity is Severity.WARNING for e in trimmed) == MAX_OUTBOX - 1


def test_only_criticals_left_sheds_the_oldest_critical() -> None:
    outbox = [entry(i, "RollbackStarted", Severity.CRITICAL) for i in range(MAX_OUTBOX + 2)]
    trimmed = trim_outbox(outbox)
    assert [e.key for e in trimmed] == [f"p{i}" for i in range(2, MAX_OUTBOX + 2)]


def test_an_outbox_within_the_limit_is_returned_as_it_is() -> None:
    outbox = [entry(i, "StepAdvanced", Severity.INFO) for i in range(MAX_OUTBOX)]
    assert trim_outbox(outbox) is outbox


def test_a_policy_whose_outbox_is_full_keeps_its_undelivered_freeze() -> None:
    """The SLOPolicy evaluator kept the last 50 entries: a Slack outage long enough to
    fill the outbox with warnings dropped the FreezeStarted that opened it."""
    from test_policy_freeze_announcements import measured, policy_with_notifications

    from controller.api.policy import SLOPolicy
    from controller.engine.freeze import evaluate

    policy = policy_with_notifications()
    assert isinstance(policy, SLOPolicy)
    first = evaluate(policy, measured(100.0), b.T0).status
    full = [entry(0, "FreezeStarted", Severity.CRITICAL, "old")]
    full += [entry(i, "BurnRateWarning", Severity.WARNING, "old") for i in range(1, MAX_OUTBOX)]
    first = first.model_copy(update={
        "notifications": first.notifications.model_copy(update={"outbox": full})})
    frozen = evaluate(policy.model_copy(update={"status": first}), measured(920.0),
                      b.T0 + timedelta(seconds=60))
    outbox = frozen.status.notifications.outbox
    assert len(outbox) == MAX_OUTBOX
    assert frozen.announcements  # the new freeze
    freezes = [e.key for e in outbox if e.type == "FreezeStarted"]
    assert freezes == ["old0", *frozen.announcements]
    assert "old1" not in {e.key for e in outbox}  # the oldest warning made room
