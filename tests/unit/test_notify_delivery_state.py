"""The dispatcher's bookkeeping: what status says after each pass, how it merges with the
engine's concurrent writes, how it backs off and when it gives up, and the work queue's
promises (one worker per key, deduplicated keys, bounded, delays).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from controller.adapters.notify import (
    Dispatcher,
    DispatcherConfig,
    InMemoryNotificationStore,
    Kind,
    NotifyMetrics,
    ObjectRef,
)
from controller.adapters.notify.memory import outbox_entry, plan_object
from controller.api.notifications import MAX_SENT_KEYS
from controller.runtime.workqueue import WorkQueue
from tests.harness.fakes import FakeClock
from tests.harness.webhook_stub import WebhookReceiver

NS = "shop"
T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def incident_plan(hook: WebhookReceiver, *entries: dict[str, Any]) -> dict[str, Any]:
    return plan_object("checkout", NS, notifications={"incident": {
        "url": hook.url(), "routingKeySecretRef": {"name": "pd", "key": "key"}}},
        outbox=list(entries))


def make(store: InMemoryNotificationStore, clock: FakeClock | None = None,
         registry: CollectorRegistry | None = None, **config: Any) -> Dispatcher:
    return Dispatcher(store, DispatcherConfig(send_timeout=2, **config), clock=clock,
                      metrics=NotifyMetrics(registry or CollectorRegistry()))


def outbox(store: InMemoryNotificationStore, ref: ObjectRef) -> list[dict[str, Any]]:
    return list(store.get(ref)["status"]["notifications"]["outbox"])


def test_failures_back_off_exponentially_and_are_recorded_then_given_up_on() -> None:
    clock = FakeClock(T0)
    registry = CollectorRegistry()
    store = InMemoryNotificationStore()
    store.put_secret(NS, "pd", {"key": "routing-key-123456"})
    with WebhookReceiver() as hook:
        hook.fail(503, count=100)
        ref = store.put(Kind.ROLLOUT_PLAN, incident_plan(
            hook, outbox_entry("1.1", "RollbackStarted", at=clock.now())))
        d = make(store, clock, registry, backoff_base=5, backoff_max=60, max_attempts=4)
        delays = []
        for _ in range(3):
            delays.append(d.process(ref))
            entry = outbox(store, ref)[0]
            assert entry["lastError"] == "incident: incident webhook trigger: HTTP 5xx"
            assert datetime.fromisoformat(entry["nextAttemptAt"]) == clock.now() + timedelta(
                seconds=delays[-1] or 0)
            assert d.process(ref) == delays[-1]  # not due yet: nothing sent
            clock.advance(delays[-1] or 0)
        assert delays == [5, 10, 20]
        assert [e["attempts"] for e in outbox(store, ref)] == [3]
        assert len(hook.posts) == 0

        assert d.process(ref) is None  # 4th attempt fails too: given up
    state = store.get(ref)["status"]["notifications"]
    assert state["outbox"] == [] and state["sent"] == ["1.1"]
    assert state["failures"] == 4 and state["lastError"].startswith("gave up on 1.1")
    assert [e.reason for e in store.events] == ["NotificationFailed", "NotificationDropped"]
    assert store.secret_reads == 1  # the routing key is cached between passes
    assert registry.get_sample_value("rolloutctl_notifications_failed_total",
                                     {"channel": "incident", "reason": "ServerError"}) == 4
    assert registry.get_sample_value("rolloutctl_notifications_dropped_total",
                                     {"reason": "GaveUp"}) == 1


def test_a_missing_secret_is_a_clear_error_and_a_single_event() -> None:
    store = InMemoryNotificationStore()
    with WebhookReceiver() as hook:
        ref = store.put(Kind.ROLLOUT_PLAN, incident_plan(
            hook, outbox_entry("1.1", "RollbackStarted")))
        clock = FakeClock(T0)
        d = make(store, clock, backoff_max=30)
        assert d.process(ref) == 30  # permanent until someone creates it: longest backoff
        clock.advance(30)
        d.process(ref)
        entry = outbox(store, ref)[0]
        assert entry["lastError"] == "incident: Secret shop/pd not found"
        assert [(e.reason, e.message) for e in store.events] == [
            ("NotificationFailed", "incident: Secret shop/pd not found")]

        store.put_secret(NS, "pd", {"key": "routing-key-123456"})
        clock.advance(30)
        assert d.process(ref) is None
        assert [p.body["event_action"] for p in hook.posts] == ["trigger"]


def test_the_engines_concurrent_writes_are_kept_and_merged() -> None:
    store = InMemoryNotificationStore()
    store.put_secret(NS, "pd", {"key": "routing-key-123456"})
    with WebhookReceiver() as hook:
        ref = store.put(Kind.ROLLOUT_PLAN, incident_plan(
            hook, outbox_entry("1.1", "RollbackStarted")))
        writes = 0

        def engine_writes_meanwhile(r: ObjectRef) -> None:
            nonlocal writes
            writes += 1
            if writes == 2:  # between the claim and the record
                store.update_status(r, lambda st: (
                    st.update(phase="RolledBack"),
                    st["notifications"]["outbox"].append(outbox_entry("1.2", "RolledBack"))))

        store.before_write = engine_writes_meanwhile
        d = make(store)
        d.process(ref)
        store.before_write = None
        assert store.conflicts == 1
        status = store.get(ref)["status"]
        assert status["phase"] == "RolledBack"
        assert [e["key"] for e in status["notifications"]["outbox"]] == ["1.2"]
        assert status["notifications"]["sent"] == ["1.1"]
        assert status["notifications"]["incident"]["triggerKey"] == "1.1"
        assert d.process(ref) is None  # 1.2 needs no incident event: simply done
        assert store.get(ref)["status"]["notifications"]["sent"] == ["1.1", "1.2"]


def test_sent_keeps_the_last_keys_and_objects_without_settings_just_drain() -> None:
    store = InMemoryNotificationStore()
    old = [f"0.{i}" for i in range(MAX_SENT_KEYS)]
    obj = plan_object("quiet", NS, outbox=[outbox_entry(f"1.{i}", "StepAdvanced")
                                           for i in range(5)])
    obj["status"]["notifications"]["sent"] = old
    ref = store.put(Kind.ROLLOUT_PLAN, obj)
    make(store).process(ref)
    state = store.get(ref)["status"]["notifications"]
    assert state["outbox"] == []
    assert len(state["sent"]) == MAX_SENT_KEYS
    assert state["sent"][-5:] == [f"1.{i}" for i in range(5)] and state["sent"][0] == "0.5"
    assert store.writes == 1  # nothing to claim: one write records it


def test_a_deleted_object_is_forgotten() -> None:
    store = InMemoryNotificationStore()
    ref = store.put(Kind.ROLLOUT_PLAN, plan_object("gone", NS))
    store.delete(ref)
    assert make(store).process(ref) is None


def test_the_work_queue_is_the_runtimes_deduplicating_bounded_and_on_the_clock() -> None:
    """Notifications run on the runtime's work queue: keys ``namespace/Kind/name``, a key
    submitted twice is one pass, never two passes of one key at once, bounded, and the
    retries wait on the injected clock."""
    clock = FakeClock(T0)
    store = InMemoryNotificationStore()
    store.put_secret(NS, "pd", {"key": "routing-key-123456"})
    with WebhookReceiver() as hook:
        hook.fail(503, count=1)
        ref = store.put(Kind.ROLLOUT_PLAN, incident_plan(
            hook, outbox_entry("1.1", "RollbackStarted", at=clock.now())))
        queue = WorkQueue("notifications", clock=clock.monotonic, max_keys=2)
        d = Dispatcher(store, DispatcherConfig(send_timeout=2, backoff_base=5), clock=clock,
                       metrics=NotifyMetrics(CollectorRegistry()), queue=queue)
        assert d.submit("RolloutPlan", NS, "checkout") and d.submit("RolloutPlan", NS,
                                                                     "checkout")
        assert len(queue) == 1 and queue.get(0) == f"{NS}/RolloutPlan/checkout"
        assert d.submit("RolloutPlan", NS, "checkout")  # queued again while processed...
        assert d.submit("SLOPolicy", NS, "budget")
        assert not d.submit("SLOPolicy", NS, "other")  # ...and the queue holds two keys
        assert queue.get(0) == f"{NS}/SLOPolicy/budget"  # not the key being processed
        queue.done(f"{NS}/SLOPolicy/budget")
        queue.done(f"{NS}/RolloutPlan/checkout")
        assert d.work_once() and not d.work_once()  # one pass: the webhook fails (503)
        assert len(hook.posts) == 0 and d.pending() == 1 and queue.waiting() == 1
        clock.advance(4.9)
        assert not d.work_once()  # the retry waits for the clock
        clock.advance(0.1)
        assert d.work_once() and d.pending() == 0
        assert [p.body["event_action"] for p in hook.posts] == ["trigger"]
    assert outbox(store, ref) == []


def test_conflicting_writes_of_the_outcome_are_retried_in_place_not_after_the_claim() -> None:
    """Another replica or the engine writing between the claim and the record (eight times
    in a row here, more than ``write_attempts``): the outcome is re-merged into the fresh
    state and written in this pass, not left claimed until the claim expires."""
    store = InMemoryNotificationStore()
    store.put_secret(NS, "pd", {"key": "routing-key-123456"})
    with WebhookReceiver() as hook:
        ref = store.put(Kind.ROLLOUT_PLAN, incident_plan(
            hook, outbox_entry("1.1", "RollbackStarted")))
        writes = 0

        def someone_else_writes_first(r: ObjectRef) -> None:
            nonlocal writes
            writes += 1
            if 2 <= writes <= 9:  # every write of the outcome, eight times
                store.update_status(r, lambda st: st.update(canaryWeight=writes))

        store.before_write = someone_else_writes_first
        assert make(store, write_attempts=5).process(ref) is None  # done: nothing left
    assert store.conflicts == 8
    state = store.get(ref)["status"]["notifications"]
    assert state["outbox"] == [] and state["sent"] == ["1.1"]
    assert [p.body["event_action"] for p in hook.posts] == ["trigger"]


def test_a_pass_that_used_its_time_up_delivering_still_records_after_a_conflict() -> None:
    """The record comes after the pass's delivery deadline (a slow channel, a loaded
    machine) and meets another replica's write: it is merged and written at once, not left
    claimed for the claim's two minutes."""
    clock = FakeClock(T0)
    store = InMemoryNotificationStore()
    store.put_secret(NS, "pd", {"key": "routing-key-123456"})
    with WebhookReceiver() as hook:
        ref = store.put(Kind.ROLLOUT_PLAN, incident_plan(
            hook, outbox_entry("1.1", "RollbackStarted", at=clock.now())))
        writes = 0

        def slow_pass_then_a_race(r: ObjectRef) -> None:
            nonlocal writes
            writes += 1
            if writes == 2:  # the record: the pass took its whole time, someone wrote first
                clock.advance(119)
                store.update_status(r, lambda st: st.update(canaryWeight=0))

        store.before_write = slow_pass_then_a_race
        assert make(store, clock, claim_ttl=120).process(ref) is None
    assert store.conflicts == 1
    state = store.get(ref)["status"]["notifications"]
    assert state["outbox"] == [] and state["sent"] == ["1.1"]
