"""The one merge of ``status.notifications`` (the reconciler's announcements and the
dispatcher's delivery progress, each applied by key to the state as stored now)."""

from __future__ import annotations

from datetime import UTC, datetime

from controller.api.notification_merge import merge_notifications
from controller.api.notifications import (
    MAX_SENT_KEYS,
    NotificationState,
    OpenIncident,
    OutgoingMessage,
    SlackThread,
)

AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def entry(key: str, **fields: object) -> OutgoingMessage:
    return OutgoingMessage.model_validate({"key": key, "type": "StepAdvanced", "at": AT,
                                           "title": key, **fields})


def thread(run: int) -> SlackThread:
    return SlackThread(channel="C1", thread_ts=f"{run}.0", run=run)


def test_announcements_are_appended_unless_the_other_writer_knows_them_already() -> None:
    stored = NotificationState(outbox=[entry("1.2", attempts=1)], sent=["1.1"], failures=2)
    merged = merge_notifications(stored, added=[entry("1.1"), entry("1.2"), entry("1.3")])
    assert [e.key for e in merged.outbox] == ["1.2", "1.3"]
    assert merged.outbox[0].attempts == 1  # the stored entry, not our stale copy
    assert merged.sent == ["1.1"] and merged.failures == 2


def test_delivery_progress_is_applied_by_key_to_the_stored_entries() -> None:
    stored = NotificationState(outbox=[entry("1.1"), entry("1.2"), entry("1.3")],
                               sent=["1.0"], last_error="old")
    merged = merge_notifications(
        stored,
        update=lambda e: None if e.key == "1.1" else (
            e.model_copy(update={"attempts": 2}) if e.key == "1.2" else e),
        done=["0.9", "1.1", "1.3"],  # 1.3 is still stored: it stays in the outbox
        failures=1, last_error=None, incident=None)
    assert [(e.key, e.attempts) for e in merged.outbox] == [("1.2", 2), ("1.3", 0)]
    assert merged.sent == ["1.0", "1.1", "0.9"]
    assert merged.failures == 1 and merged.last_error is None and merged.incident is None


def test_fields_not_given_are_kept_and_a_newer_runs_thread_is_not_taken_away() -> None:
    incident = OpenIncident(dedup_key="d", since=AT, trigger_key="1.1")
    stored = NotificationState(slack=thread(2), incident=incident, last_error="x")
    assert merge_notifications(stored) == stored
    assert merge_notifications(stored, slack=thread(1)).slack == thread(2)
    assert merge_notifications(stored, slack=thread(3)).slack == thread(3)
    assert merge_notifications(stored, slack=None).slack is None  # a freeze thread ends


def test_sent_keeps_the_last_keys() -> None:
    stored = NotificationState(sent=[f"0.{i}" for i in range(MAX_SENT_KEYS)],
                               outbox=[entry("1.1")])
    merged = merge_notifications(stored, update=lambda e: None)
    assert len(merged.sent) == MAX_SENT_KEYS and merged.sent[-1] == "1.1"
    assert merged.sent[0] == "0.1"
