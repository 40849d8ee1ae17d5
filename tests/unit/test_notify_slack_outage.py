"""A Slack outage never delays a rollback: ``submit`` returns in microseconds whatever Slack
does, failures are recorded and retried with backoff, and the messages arrive afterwards,
in order. Every send is bounded in time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
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
from controller.adapters.notify.memory import outbox_entry, plan_object
from tests.harness.slack_stub import SlackOutage, SlackStub

NS = "shop"
SLACK = {"channel": "#deploys", "tokenSecretRef": {"name": "slack", "key": "token"}}


@pytest.fixture
def slack() -> Iterator[SlackStub]:
    with SlackStub() as stub:
        yield stub


@pytest.fixture
def store(slack: SlackStub) -> InMemoryNotificationStore:
    s = InMemoryNotificationStore()
    s.put_secret(NS, "slack", {"token": slack.token})
    return s


def start(store: InMemoryNotificationStore, slack: SlackStub, registry: CollectorRegistry,
          **config: Any) -> Dispatcher:
    cfg = DispatcherConfig(slack_base_url=slack.api_url, **{
        "send_timeout": 2, "backoff_base": 0.5, "rate_limit_inline_wait": 1, **config})
    return Dispatcher(store, cfg, metrics=NotifyMetrics(registry)).start()


def rollback(store: InMemoryNotificationStore, ref: ObjectRef, seq: int) -> None:
    """The reconciler's status write for a rollback: weight 0, one outbox entry."""

    def change(st: dict[str, Any]) -> None:
        st.update(phase="RollingBack", canaryWeight=0)
        st["notifications"]["outbox"].append(outbox_entry(f"1.{seq}", "RollbackStarted"))

    store.update_status(ref, change)


def recorded_failure(store: InMemoryNotificationStore, ref: ObjectRef,
                     timeout: float = 10) -> dict[str, Any]:
    """status.notifications once a failed attempt has been recorded in it."""
    deadline = time.monotonic() + timeout
    while True:
        state: dict[str, Any] = store.get(ref)["status"]["notifications"]
        if state["outbox"] and state["outbox"][0].get("lastError"):
            return state
        assert time.monotonic() < deadline, "no failure recorded"
        time.sleep(0.02)


def submit_ns(d: Dispatcher, name: str) -> int:
    t0 = time.perf_counter_ns()
    d.submit("RolloutPlan", NS, name)
    return time.perf_counter_ns() - t0


def test_slack_answering_500_does_not_delay_a_rollback_and_the_messages_follow(
    slack: SlackStub, store: InMemoryNotificationStore
) -> None:
    registry = CollectorRegistry()
    ref = store.put(Kind.ROLLOUT_PLAN, plan_object(
        "checkout", NS, notifications={"slack": SLACK},
        outbox=[outbox_entry("1.1", "RunStarted")]))
    with start(store, slack, registry) as d:
        outage = SlackOutage(slack, status=500, seconds=2.0).__enter__()
        rollback(store, ref, 2)
        took = submit_ns(d, "checkout")
        # Let the first attempt fail, then look at what status says meanwhile.
        during = recorded_failure(store, ref)
        samples = [submit_ns(d, "checkout") for _ in range(2000)]  # during the outage
        assert slack.wait_for(lambda s: len(s.messages()) >= 3, timeout=15)
        assert d.wait_idle(10)

    print(f"\nsubmit() during a Slack 500 outage: first {took / 1000:.1f} µs, "
          f"median {statistics.median(samples) / 1000:.1f} µs, "
          f"max {max(samples) / 1000:.1f} µs over {len(samples)} calls")
    assert took < 1_000_000 and statistics.median(samples) < 100_000  # < 1 ms, < 100 µs
    assert [e["key"] for e in during["outbox"]] == ["1.1", "1.2"]
    first = during["outbox"][0]
    assert first["attempts"] >= 1 and "nextAttemptAt" in first
    assert "HTTP 500" in first["lastError"] and during["failures"] >= 1
    # After the outage: everything, in order, and no message before Slack came back.
    messages = slack.messages()
    assert [m.key for m in messages] == ["root.uid-checkout.run-1", "1.1", "1.2"]
    assert min(m.posted_at for m in messages) >= outage.started + 2.0
    assert max(m.posted_at for m in messages) < outage.started + 2.0 + 5.0
    after = store.get(ref)["status"]["notifications"]
    assert after["outbox"] == [] and after["sent"] == ["1.1", "1.2"]
    assert (registry.get_sample_value("rolloutctl_notifications_failed_total",
                                     {"channel": "slack", "reason": "ServerError"}) or 0) >= 1
    assert registry.get_sample_value("rolloutctl_notifications_sent_total",
                                     {"channel": "slack", "type": "RollbackStarted"}) == 1


def test_a_long_rate_limit_reschedules_instead_of_holding_a_worker(
    slack: SlackStub, store: InMemoryNotificationStore
) -> None:
    registry = CollectorRegistry()
    ref = store.put(Kind.ROLLOUT_PLAN, plan_object(
        "checkout", NS, notifications={"slack": SLACK},
        outbox=[outbox_entry("1.1", "RunStarted")]))
    slack.rate_limit(5.0)
    started = time.monotonic()
    with start(store, slack, registry, workers=1) as d:
        rollback(store, ref, 2)
        took = submit_ns(d, "checkout")
        during = recorded_failure(store, ref)
        # The one worker is free again at once: it did not sleep through Retry-After.
        assert d.wait_idle(3) and time.monotonic() - started < 4.5
        assert slack.wait_for(lambda s: len(s.messages()) >= 3, timeout=15)
        assert d.wait_idle(10)

    assert took < 1_000_000
    assert "rate limited" in during["outbox"][0]["lastError"]
    calls = slack.calls()
    assert [c.status for c in calls if c.status == 429]  # Slack did say 429
    assert all(c.at - started >= 5.0 for c in calls if c.status == 200)
    assert [m.key for m in slack.messages()] == ["root.uid-checkout.run-1", "1.1", "1.2"]
    assert (registry.get_sample_value("rolloutctl_notifications_failed_total",
                                     {"channel": "slack", "reason": "RateLimited"}) or 0) >= 1


def test_a_short_rate_limit_is_waited_out_in_place_by_the_slack_client(
    slack: SlackStub, store: InMemoryNotificationStore
) -> None:
    ref = store.put(Kind.ROLLOUT_PLAN, plan_object(
        "checkout", NS, notifications={"slack": SLACK},
        outbox=[outbox_entry("1.1", "RunStarted")]))
    slack.rate_limit(1.0, methods={"chat.postMessage"})
    d = Dispatcher(store, DispatcherConfig(slack_base_url=slack.api_url,
                                           rate_limit_inline_wait=2),
                   metrics=NotifyMetrics(CollectorRegistry()))
    assert d.process(ref) is None  # done in one pass: slack_sdk retried after Retry-After
    posts = slack.calls("chat.postMessage")
    assert [c.status for c in posts][:2] == [429, 200]
    assert [m.key for m in slack.messages()] == ["root.uid-checkout.run-1", "1.1"]


def test_a_hanging_slack_is_cut_off_by_the_timeout(
    slack: SlackStub, store: InMemoryNotificationStore
) -> None:
    ref = store.put(Kind.ROLLOUT_PLAN, plan_object(
        "checkout", NS, notifications={"slack": SLACK},
        outbox=[outbox_entry("1.1", "RunStarted")]))
    slack.hang(20)
    d = Dispatcher(store, DispatcherConfig(slack_base_url=slack.api_url, send_timeout=1),
                   metrics=NotifyMetrics(CollectorRegistry()))
    t0 = time.monotonic()
    delay = d.process(ref)
    took = time.monotonic() - t0
    slack.heal()
    assert took < 4  # one timed-out call (auth.test), not 20 s
    entry = store.get(ref)["status"]["notifications"]["outbox"][0]
    assert "timed out" in entry["lastError"] and delay is not None and delay > 0


def test_submit_never_blocks_even_when_every_worker_is_stuck_and_the_queue_is_full(
    slack: SlackStub, store: InMemoryNotificationStore
) -> None:
    registry = CollectorRegistry()
    for i in range(3):
        store.put(Kind.ROLLOUT_PLAN, plan_object(
            f"p{i}", NS, notifications={"slack": SLACK},
            outbox=[outbox_entry("1.1", "RunStarted")]))
    slack.hang(3)
    with start(store, slack, registry, workers=1, queue_size=2, send_timeout=5) as d:
        accepted = [d.submit("RolloutPlan", NS, "p0")]
        deadline = time.monotonic() + 5
        while d.pending() and time.monotonic() < deadline:
            time.sleep(0.01)  # until the one worker has taken p0 (and is stuck on Slack)
        accepted += [d.submit("RolloutPlan", NS, f"p{i}") for i in (1, 2)]
        times = [submit_ns(d, f"x{i}") for i in range(500)]
        slack.heal()
    assert accepted == [True, True, True]  # p0 is with the worker, p1 and p2 fill the queue
    # Nothing in submit waits on I/O; the rare outlier is the GIL's 5 ms switch interval.
    assert statistics.median(times) < 100_000
    assert statistics.quantiles(times, n=100)[98] < 1_000_000 and max(times) < 50_000_000
    assert (registry.get_sample_value("rolloutctl_notifications_dropped_total",
                                     {"reason": "QueueFull"}) or 0) >= 490
