"""A run is told in one Slack thread: a root message kept up to date in place, one reply
per transition, in order; restarts, crashes and a second replica never duplicate a message.

Real slack_sdk against the local Slack stub; the object store is the in-memory one (same
resourceVersion rules as the API server; tests/e2e/test_notify_e2e_* use the real one).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from controller.adapters.notify import (
    Dispatcher,
    DispatcherConfig,
    InMemoryNotificationStore,
    Kind,
    NotifyMetrics,
    ObjectRef,
)
from controller.adapters.notify.memory import outbox_entry, plan_object, policy_object
from controller.errors import Transient
from controller.runtime.workqueue import WorkQueue
from tests.harness.fakes import FakeClock
from tests.harness.slack_stub import SlackStub

NS = "shop"
SLACK = {"channel": "#deploys", "criticalChannel": "#oncall",
         "tokenSecretRef": {"name": "slack", "key": "token"}}


T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def slack() -> Iterator[SlackStub]:
    with SlackStub() as stub:
        yield stub


@pytest.fixture
def store(slack: SlackStub) -> InMemoryNotificationStore:
    s = InMemoryNotificationStore()
    s.put_secret(NS, "slack", {"token": slack.token})
    return s


def dispatcher(store: InMemoryNotificationStore, slack: SlackStub, clock: Any = None,
               **config: Any) -> Dispatcher:
    cfg = DispatcherConfig(cluster_name="prod-eu1", slack_base_url=slack.api_url,
                           send_timeout=3, **config)
    queue = WorkQueue("notifications", clock=clock.monotonic if clock else time.monotonic,
                      max_per_namespace=cfg.workers - 1 if cfg.workers > 1 else None)
    return Dispatcher(store, cfg, clock=clock, metrics=NotifyMetrics(CollectorRegistry()),
                      queue=queue)


def add(store: InMemoryNotificationStore, ref: ObjectRef, *entries: dict[str, Any],
        **status: Any) -> None:
    """What the engine does: change the status and append to the outbox, in one write."""

    def change(st: dict[str, Any]) -> None:
        st.update(status)
        st.setdefault("notifications", {}).setdefault("outbox", []).extend(entries)

    store.update_status(ref, change)


def keys_in_order(slack: SlackStub, thread_ts: str) -> list[str | None]:
    return [m.key for m in slack.replies(thread_ts)]


def gate(verdict: str, value: float) -> dict[str, Any]:
    return {"name": "api_availability", "kind": "slo", "verdict": verdict,
            "reason": "ObjectiveMet" if verdict == "Pass" else "ObjectiveMissed",
            "value": value, "objective": 99.9, "samples": 1500, "burnRate": 0.4}


def test_a_full_run_is_one_root_message_updated_in_place_and_replies_in_order(
    slack: SlackStub, store: InMemoryNotificationStore
) -> None:
    ref = store.put(Kind.ROLLOUT_PLAN, plan_object(
        "checkout", NS, notifications={"slack": SLACK}, run=3, step=0, weight=10,
        gates=[gate("Pass", 99.95)], outbox=[outbox_entry("3.1", "RunStarted", run=3)]))
    d = dispatcher(store, slack, root_refresh_interval=0)

    d.process(ref)
    add(store, ref, outbox_entry("3.2", "StepAdvanced", run=3, step=1, weight=25),
        currentStep=1, canaryWeight=25, gates=[gate("Pass", 99.97)])
    d.process(ref)
    calls = len(slack.calls())
    d.process(ref)  # nothing changed: no call to Slack at all
    assert len(slack.calls()) == calls
    add(store, ref, gates=[gate("Pass", 99.93)])  # gate value moves, no outbox entry
    d.process(ref)
    assert [c.method for c in slack.calls()[calls:]] == ["chat.update"]
    add(store, ref, outbox_entry("3.3", "StepAdvanced", run=3, step=2, weight=50),
        outbox_entry("3.4", "StepAdvanced", run=3, step=3, weight=100),
        currentStep=3, canaryWeight=100)
    d.process(ref)
    add(store, ref, outbox_entry("3.5", "Promoting", run=3), phase="Promoting")
    add(store, ref, outbox_entry("3.6", "Succeeded", run=3), phase="Succeeded",
        canaryWeight=0)
    d.process(ref)

    roots = slack.roots("#deploys")
    assert len(roots) == 1
    root = roots[0]
    assert keys_in_order(slack, root.ts) == ["3.1", "3.2", "3.3", "3.4", "3.5", "3.6"]
    # The root shows the final state, and was edited each time the state changed.
    assert "Succeeded" in root.text and "run 3" in root.text and "prod-eu1" in root.text
    fields = " ".join(f["text"] for f in root.blocks[1]["fields"])
    for shown in ("prod-eu1", "shop", "checkout", "7f9c2ab", "Succeeded", "4/4", "0%"):
        assert shown in fields
    # One edit per pass that changed what the root shows (``updates`` keeps what it showed
    # before each edit): step 2, the gate value, step 4, then promoting + succeeded.
    assert [u["text"].split(",")[1].strip() for u in root.updates] == [
        "step 1/4", "step 2/4", "step 2/4", "step 4/4"]
    gate_texts = [b["text"]["text"] for u in root.updates for b in u["blocks"]
                  if b.get("text", {}).get("text", "").startswith("*Gates*")]
    assert any("99.93" in t for t in gate_texts)
    state = store.get(ref)["status"]["notifications"]
    assert state["outbox"] == []
    assert state["sent"] == ["3.1", "3.2", "3.3", "3.4", "3.5", "3.6"]
    assert state["slack"]["threadTs"] == root.ts and state["slack"]["run"] == 3
    assert state["slack"]["channel"] == slack.channel_id("#deploys")


def test_measured_values_alone_refresh_the_root_at_most_once_per_interval(
    slack: SlackStub, store: InMemoryNotificationStore
) -> None:
    ref = store.put(Kind.ROLLOUT_PLAN, plan_object(
        "checkout", NS, notifications={"slack": SLACK}, gates=[gate("Pass", 99.95)],
        outbox=[outbox_entry("1.1", "RunStarted")]))
    clock = FakeClock(datetime.now(UTC))
    d = dispatcher(store, slack, clock, root_refresh_interval=0.5)
    d.process(ref)

    def edits() -> int:
        return len(slack.calls("chat.update"))

    add(store, ref, gates=[gate("Pass", 99.94)])
    d.process(ref)
    assert edits() == 0  # a value moved, shown less than 0.5 s ago: wait
    add(store, ref, gates=[gate("Fail", 99.2)])
    d.process(ref)
    assert edits() == 1  # a verdict changed: at once
    add(store, ref, gates=[gate("Fail", 99.1)])
    d.process(ref)
    assert edits() == 1
    clock.advance(0.5)
    d.process(ref)
    assert edits() == 2  # the interval has passed: the latest value is shown
    assert "99.1" in str(slack.roots()[0].blocks)


def test_every_message_carries_its_dedup_key_in_metadata(
    slack: SlackStub, store: InMemoryNotificationStore
) -> None:
    ref = store.put(Kind.ROLLOUT_PLAN, plan_object(
        "checkout", NS, notifications={"slack": SLACK},
        outbox=[outbox_entry("1.1", "RunStarted"), outbox_entry("1.2", "StepAdvanced")]))
    dispatcher(store, slack).process(ref)
    metas = [m.metadata for m in slack.messages()]
    assert [m["event_type"] for m in metas if m] == ["rolloutctl"] * 3
    assert [m["event_payload"]["key"] for m in metas if m][1:] == ["1.1", "1.2"]


def test_a_new_run_starts_a_new_thread_and_late_messages_keep_to_their_run(
    slack: SlackStub, store: InMemoryNotificationStore
) -> None:
    ref = store.put(Kind.ROLLOUT_PLAN, plan_object(
        "checkout", NS, notifications={"slack": SLACK}, run=1,
        outbox=[outbox_entry("1.1", "RunStarted", run=1)]))
    d = dispatcher(store, slack)
    d.process(ref)
    add(store, ref, outbox_entry("1.2", "Superseded", run=1),
        outbox_entry("2.1", "RunStarted", run=2), run=2, revision="b2")
    d.process(ref)
    add(store, ref, outbox_entry("2.2", "StepAdvanced", run=2))
    d.process(ref)

    roots = slack.roots("#deploys")
    assert [r.key for r in roots] == ["root.uid-checkout.run-1", "root.uid-checkout.run-2"]
    assert keys_in_order(slack, roots[0].ts) == ["1.1", "1.2"]
    assert keys_in_order(slack, roots[1].ts) == ["2.1", "2.2"]
    assert store.get(ref)["status"]["notifications"]["slack"]["threadTs"] == roots[1].ts


def test_a_restarted_controller_keeps_posting_into_the_same_thread(
    slack: SlackStub, store: InMemoryNotificationStore
) -> None:
    ref = store.put(Kind.ROLLOUT_PLAN, plan_object(
        "checkout", NS, notifications={"slack": SLACK},
        outbox=[outbox_entry("1.1", "RunStarted"), outbox_entry("1.2", "StepAdvanced")]))
    with dispatcher(store, slack) as first:
        first.submit("RolloutPlan", NS, "checkout")
        assert first.wait_idle(10)
    # The process is gone; a new one (new clients, new caches) takes over.
    add(store, ref, outbox_entry("1.3", "StepAdvanced"), outbox_entry("1.4", "Paused"))
    with dispatcher(store, slack) as second:
        second.submit("RolloutPlan", NS, "checkout")
        assert second.wait_idle(10)

    roots = slack.roots("#deploys")
    assert len(roots) == 1
    assert keys_in_order(slack, roots[0].ts) == ["1.1", "1.2", "1.3", "1.4"]


def test_a_crash_between_posting_and_recording_does_not_post_twice(
    slack: SlackStub, store: InMemoryNotificationStore
) -> None:
    clock = FakeClock(T0)
    ref = store.put(Kind.ROLLOUT_PLAN, plan_object(
        "checkout", NS, notifications={"slack": SLACK},
        outbox=[outbox_entry("1.1", "RunStarted", at=clock.now()),
                outbox_entry("1.2", "StepAdvanced", at=clock.now())]))
    writes = 0

    def api_down_after_the_claim(_: ObjectRef) -> None:
        nonlocal writes
        writes += 1
        if writes > 1:
            raise Transient("write: ConnectionRefusedError")

    store.before_write = api_down_after_the_claim
    crashed = dispatcher(store, slack, clock, write_attempts=2, claim_ttl=60)
    assert crashed.process(ref) == 60  # retried once the claim has expired
    assert len(slack.messages()) == 3  # root + 2 replies went out; status says nothing
    state = store.get(ref)["status"]["notifications"]
    assert "slack" not in state and [e["attempts"] for e in state["outbox"]] == [1, 1]

    store.before_write = None
    survivor = dispatcher(store, slack, clock, claim_ttl=60)
    calls = len(slack.calls())
    assert survivor.process(ref) == 60  # still claimed: left alone until the claim expires
    assert len(slack.calls()) == calls
    clock.advance(61)
    survivor.process(ref)

    assert len(slack.messages()) == 3
    assert [c.method for c in slack.calls()][-3:] == [
        "conversations.history", "conversations.replies", "chat.update"]
    state = store.get(ref)["status"]["notifications"]
    assert state["sent"] == ["1.1", "1.2"] and state["outbox"] == []
    assert state["slack"]["threadTs"] == slack.roots()[0].ts


def test_two_replicas_working_the_same_objects_post_each_message_once(
    slack: SlackStub, store: InMemoryNotificationStore
) -> None:
    refs = [store.put(Kind.ROLLOUT_PLAN, plan_object(
        f"svc-{i}", NS, notifications={"slack": SLACK},
        outbox=[outbox_entry(f"1.{j}", "StepAdvanced") for j in range(1, 4)]))
        for i in range(4)]
    a, b = dispatcher(store, slack, workers=2), dispatcher(store, slack, workers=2)
    # The first two writes to the first object wait for each other: both replicas have read
    # it before either writes, so they do race (without a sleep to make it likely).
    both_read = threading.Barrier(2, timeout=10)
    arrivals = itertools.count()

    def hold_first_claims(ref: ObjectRef) -> None:
        if ref == refs[0] and next(arrivals) < 2:
            both_read.wait()

    store.before_write = hold_first_claims
    a.start(), b.start()
    try:
        def submit_all() -> None:
            for ref in refs:
                a.submit("RolloutPlan", NS, ref.name)
                b.submit("RolloutPlan", NS, ref.name)

        def engine() -> None:  # keeps appending while both replicas deliver
            for n in range(4, 12):
                for ref in refs:
                    add(store, ref, outbox_entry(f"1.{n}", "StepAdvanced"))
                submit_all()

        t = threading.Thread(target=engine)
        t.start()
        for _ in range(20):
            submit_all()
        t.join()
        for _ in range(50):  # until drained: each round waits for both replicas' passes
            if not any(store.get(r)["status"]["notifications"]["outbox"] for r in refs):
                break
            submit_all()
            assert a.wait_idle(10) and b.wait_idle(10)
        assert a.wait_idle(10) and b.wait_idle(10)
    finally:
        a.stop(), b.stop()

    roots = slack.roots("#deploys")
    assert len(roots) == 4
    for root in roots:
        assert keys_in_order(slack, root.ts) == [f"1.{j}" for j in range(1, 12)]
    assert store.conflicts > 0  # they did race; the resourceVersion guard decided


def test_rollbacks_are_broadcast_and_copied_to_the_critical_channel_with_evidence(
    slack: SlackStub, store: InMemoryNotificationStore
) -> None:
    evidence = [{"name": "api_availability", "verdict": "Fail", "reason": "FastBurn",
                 "value": 96.2, "objective": 99.9, "burnRate": 38.0, "samples": 2400,
                 "query": 'sum(rate(http_requests_total{code=~"5.."}[5m]))'}]
    ref = store.put(Kind.ROLLOUT_PLAN, plan_object(
        "checkout", NS, notifications={"slack": SLACK},
        outbox=[outbox_entry("1.1", "RunStarted"),
                outbox_entry("1.2", "RollbackStarted", title="Rolling back: fast burn",
                             evidence=evidence),
                outbox_entry("1.3", "RolledBack")]))
    dispatcher(store, slack).process(ref)

    thread = slack.replies(slack.roots("#deploys")[0].ts)
    assert [(m.key, m.reply_broadcast) for m in thread] == [
        ("1.1", False), ("1.2", True), ("1.3", True)]
    oncall = slack.messages("#oncall")
    assert [m.key for m in oncall] == ["1.2", "1.3"]
    shown = oncall[0].text + str(oncall[0].blocks)
    for fact in ("shop/checkout", "Rolling back: fast burn", "api_availability", "FastBurn",
                 "96.2", "99.9", "38", "2400", "prod-eu1", "7f9c2ab"):
        assert fact in shown


def test_drill_messages_are_clearly_marked(
    slack: SlackStub, store: InMemoryNotificationStore
) -> None:
    ref = store.put(Kind.ROLLOUT_PLAN, plan_object(
        "checkout", NS, notifications={"slack": SLACK},
        outbox=[outbox_entry("1.1", "DrillStarted", drill=True),
                # As the engine titles it: marked, and naming the plan.
                outbox_entry("1.2", "RollbackStarted", drill=True,
                             title="[DRILL] shop/checkout: Rolling back"),
                outbox_entry("1.3", "StepAdvanced")]))
    dispatcher(store, slack).process(ref)
    thread = slack.replies(slack.roots()[0].ts)
    drills = [m for m in thread if m.key in ("1.1", "1.2")]
    for m in drills:
        assert m.text.startswith("[DRILL] ")
        assert any("DRILL" in e["text"] for b in m.blocks if b["type"] == "context"
                   for e in b["elements"])
    normal = next(m for m in thread if m.key == "1.3")
    assert "DRILL" not in normal.text + str(normal.blocks)
    assert [m.text for m in drills] == ["[DRILL] DrillStarted", "[DRILL] Rolling back"]
    assert slack.messages("#oncall")[0].text == "[DRILL] shop/checkout: Rolling back [prod-eu1]"


def test_incoming_webhook_mode_posts_plainly_without_threads_or_updates(
    slack: SlackStub, store: InMemoryNotificationStore
) -> None:
    store.put_secret(NS, "hook", {"url": slack.webhook_url()})
    ref = store.put(Kind.ROLLOUT_PLAN, plan_object(
        "checkout", NS,
        notifications={"slack": {"channel": "#deploys",
                                 "webhookSecretRef": {"name": "hook", "key": "url"}}},
        outbox=[outbox_entry("1.1", "RunStarted"), outbox_entry("1.2", "StepAdvanced")]))
    d = dispatcher(store, slack)
    d.process(ref)
    add(store, ref, canaryWeight=50)
    d.process(ref)

    posts = slack.webhook_posts()
    assert [p.body["text"] for p in posts] == [
        "shop/checkout: RunStarted [prod-eu1]", "shop/checkout: StepAdvanced [prod-eu1]"]
    assert all(p.body["blocks"] for p in posts)
    assert slack.calls() == []  # no Web API: no root, no update, no lookup
    state = store.get(ref)["status"]["notifications"]
    assert state["sent"] == ["1.1", "1.2"] and "slack" not in state


def test_a_freeze_is_a_thread_of_its_own_on_the_policy(
    slack: SlackStub, store: InMemoryNotificationStore
) -> None:
    ref = store.put(Kind.SLO_POLICY, policy_object(
        "platform", NS, notifications={"slack": SLACK}, frozen=True, budget_remaining=8.2,
        outbox=[outbox_entry("f.1", "FreezeStarted", run=None,
                             title="Releases frozen: api_availability budget at 8.2%")]))
    d = dispatcher(store, slack)
    d.process(ref)
    add(store, ref, outbox_entry("f.2", "OverrideActivated", run=None))
    d.process(ref)
    add(store, ref, outbox_entry("f.3", "FreezeLifted", run=None), frozen=False,
        budgetRemaining=16.0)
    d.process(ref)

    roots = slack.roots("#deploys")
    assert len(roots) == 1 and "Error budget" in str(roots[0].blocks)
    assert keys_in_order(slack, roots[0].ts) == ["f.1", "f.2", "f.3"]
    assert "releases open" in roots[0].text and "16.0%" in roots[0].text
    assert "releases frozen, budget remaining 8.2%" in roots[0].updates[0]["text"]
    assert [m.key for m in slack.messages("#oncall")] == ["f.1"]
    assert "slack" not in store.get(ref)["status"]["notifications"]  # next freeze: new thread


def test_a_retried_alarm_is_not_mistaken_for_another_plans_alarm_with_the_same_key(
    slack: SlackStub, store: InMemoryNotificationStore
) -> None:
    """Keys (run.seq) are unique per plan only. Two plans share #deploys and #oncall; plan
    B's rollback alarm is retried after a crash that came before it was posted (attempts 1:
    it may have been posted, so Slack is searched first) while plan A's alarm with the same
    key is already in the channels: B's must still be posted, once."""
    clock = FakeClock(T0)
    a = store.put(Kind.ROLLOUT_PLAN, plan_object(
        "checkout", NS, notifications={"slack": SLACK},
        outbox=[outbox_entry("2.3", "RolledBack", run=2, at=clock.now())], run=2))
    dispatcher(store, slack, clock).process(a)
    assert [m.key for m in slack.messages("#oncall")] == ["2.3"]

    claimed_then_crashed = {**outbox_entry("2.3", "RolledBack", run=2, at=clock.now()),
                            "attempts": 1}
    b = store.put(Kind.ROLLOUT_PLAN, plan_object(
        "payments", NS, notifications={"slack": SLACK}, outbox=[claimed_then_crashed], run=2))
    dispatcher(store, slack, clock).process(b)

    def owners(channel: str) -> list[str]:
        return sorted(str(((m.metadata or {}).get("event_payload") or {}).get("object"))
                      .rsplit("/", 1)[-1] for m in slack.messages(channel) if m.key == "2.3")

    assert owners("#oncall") == ["checkout", "payments"]
    assert owners("#deploys") == ["checkout", "payments"]
    state = store.get(b)["status"]["notifications"]
    assert state["outbox"] == [] and state["sent"] == ["2.3"]
