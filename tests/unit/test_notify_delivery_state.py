"""The dispatcher's bookkeeping: what status says after each pass, how it merges with the
engine's concurrent writes, how it backs off and when it gives up, and the work queue's
promises (one worker per key, deduplicated keys, bounded, delays).
"""

from __future__ import annotations

import threading
import time
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
from controller.adapters.notify.workqueue import KeyQueue
from controller.api.notifications import MAX_SENT_KEYS
from tests.harness.webhook_stub import WebhookReceiver

NS = "shop"


class FakeClock:
    def __init__(self) -> None:
        self.at = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return time.monotonic()

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


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
    clock = FakeClock()
    registry = CollectorRegistry()
    store = InMemoryNotificationStore()
    store.put_secret(NS, "pd", {"key": "routing-key-123456"})
    with WebhookReceiver() as hook:
        hook.fail(503, count=100)
        ref = store.put(Kind.ROLLOUT_PLAN, incident_plan(
            hook, outbox_entry("1.1", "RollbackStarted", at=clock.at)))
        d = make(store, clock, registry, backoff_base=5, backoff_max=60, max_attempts=4)
        delays = []
        for _ in range(3):
            delays.append(d.process(ref))
            entry = outbox(store, ref)[0]
            assert entry["lastError"] == "incident: incident webhook trigger: HTTP 5xx"
            assert datetime.fromisoformat(entry["nextAttemptAt"]) == clock.at + timedelta(
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
        clock = FakeClock()
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


def test_the_work_queue_never_gives_one_key_to_two_workers_and_dedups() -> None:
    q: KeyQueue[str] = KeyQueue(maxsize=10)
    assert q.add("a") and q.add("a") and q.add("b")
    assert len(q) == 2
    assert q.get() == "a"
    assert q.add("a")  # queued again while being processed...
    assert q.get() == "b"  # ...but not handed out until done
    q.done("b")
    q.done("a")
    assert q.get() == "a"
    q.done("a")
    assert q.idle()

    busy: set[str] = set()
    overlap = threading.Event()
    seen: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        while (key := q.get()) is not None:
            with lock:
                if key in busy:
                    overlap.set()
                busy.add(key)
                seen.append(key)
            time.sleep(0.001)
            with lock:
                busy.discard(key)
            q.done(key)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(200):
        for k in "xyz":
            q.add(k)
    assert q.wait_idle(5)
    q.shutdown()
    for t in threads:
        t.join()
    assert not overlap.is_set() and set(seen) == {"x", "y", "z"}


def test_the_work_queue_is_bounded_and_delays() -> None:
    q: KeyQueue[int] = KeyQueue(maxsize=3)
    assert [q.add(i) for i in range(5)] == [True, True, True, False, False]
    for _ in range(3):
        q.done(q.get() or 0)
    t0 = time.monotonic()
    q.add_after(7, 0.3)
    q.add_after(7, 5.0)  # a later request does not postpone the earlier one
    assert q.get() == 7
    assert 0.25 <= time.monotonic() - t0 < 2
