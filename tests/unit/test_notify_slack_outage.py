"""A Slack outage never delays a rollback: ``submit`` waits on no I/O whatever Slack does,
failures are recorded and retried with backoff, and the messages arrive afterwards, in
order. Every send is bounded in time.

The dispatcher runs on the runtime's work queue with the one FakeClock: the tests take keys
with ``work_once`` and move the clock; Slack's outage ends when the test says so. (The
microsecond figures of ``submit`` are printed, not asserted: timing goals live in bench/.)
"""

from __future__ import annotations

import statistics
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
from controller.adapters.notify.memory import outbox_entry, plan_object
from controller.runtime.workqueue import WorkQueue
from tests.harness.fakes import FakeClock
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


def make(store: InMemoryNotificationStore, slack: SlackStub, registry: CollectorRegistry,
         clock: FakeClock, **config: Any) -> Dispatcher:
    cfg = DispatcherConfig(slack_base_url=slack.api_url, **{
        "send_timeout": 2, "backoff_base": 0.5, "rate_limit_inline_wait": 1, **config})
    queue = WorkQueue("notifications", clock=clock.monotonic, max_keys=cfg.queue_size)
    return Dispatcher(store, cfg, clock=clock, metrics=NotifyMetrics(registry), queue=queue)


def run_until_drained(d: Dispatcher, clock: FakeClock, limit: float = 60) -> float:
    """Work every due key, moving the clock in 0.1 s ticks when none is due, until nothing
    is queued or waiting; returns the seconds the clock moved."""
    moved = 0.0
    while d.pending():
        if not d.work_once():
            assert moved < limit, "never drained"
            clock.advance(0.1)
            moved += 0.1
    return moved


def rollback(store: InMemoryNotificationStore, ref: ObjectRef, seq: int) -> None:
    """The reconciler's status write for a rollback: weight 0, one outbox entry."""

    def change(st: dict[str, Any]) -> None:
        st.update(phase="RollingBack", canaryWeight=0)
        st["notifications"]["outbox"].append(outbox_entry(f"1.{seq}", "RollbackStarted"))

    store.update_status(ref, change)


def recorded_failure(store: InMemoryNotificationStore, ref: ObjectRef) -> dict[str, Any]:
    """status.notifications, which must show a failed attempt."""
    state: dict[str, Any] = store.get(ref)["status"]["notifications"]
    assert state["outbox"] and state["outbox"][0].get("lastError"), "no failure recorded"
    return state


def io_so_far(store: InMemoryNotificationStore, slack: SlackStub) -> tuple[int, int]:
    return store.writes, len(slack.calls())


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
    clock = FakeClock(datetime.now(UTC))
    d = make(store, slack, registry, clock)
    outage = SlackOutage(slack, status=500).__enter__()  # until the test ends it
    rollback(store, ref, 2)
    took = submit_ns(d, "checkout")
    assert d.work_once()  # the first attempt fails
    during = recorded_failure(store, ref)
    io = io_so_far(store, slack)
    samples = [submit_ns(d, "checkout") for _ in range(2000)]  # during the outage
    assert io_so_far(store, slack) == io  # submit waited on nothing: no call, no write
    assert d.work_once()  # a submitted pass before the backoff: nothing sent
    assert not slack.messages()
    outage.__exit__()
    back = time.monotonic()
    waited = run_until_drained(d, clock)

    print(f"\nsubmit() during a Slack 500 outage: first {took / 1000:.1f} µs, "
          f"median {statistics.median(samples) / 1000:.1f} µs, "
          f"max {max(samples) / 1000:.1f} µs over {len(samples)} calls")
    assert [e["key"] for e in during["outbox"]] == ["1.1", "1.2"]
    first = during["outbox"][0]
    assert first["attempts"] >= 1 and "nextAttemptAt" in first
    assert "HTTP 500" in first["lastError"] and during["failures"] >= 1
    # After the outage: everything, in order, and no message before Slack came back.
    messages = slack.messages()
    assert [m.key for m in messages] == ["root.uid-checkout.run-1", "1.1", "1.2"]
    assert min(m.posted_at for m in messages) >= back
    assert waited < 5.0  # within the backoff after Slack came back
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
    clock = FakeClock(datetime.now(UTC))
    d = make(store, slack, registry, clock, workers=1)
    rollback(store, ref, 2)
    took = submit_ns(d, "checkout")
    assert d.work_once()
    during = recorded_failure(store, ref)
    # The one worker is free again at once: it did not sleep through Retry-After; the
    # key waits for it on the clock.
    assert not d.work_once() and d.pending() == 1
    slack.heal()  # Slack would answer now, but Retry-After asked for 5 s
    clock.advance(4.9)
    assert not d.work_once()
    early = [c for c in slack.calls() if c.status == 200]
    clock.advance(0.1)
    assert d.work_once() and run_until_drained(d, clock) == 0

    print(f"\nsubmit() during a rate limit: {took / 1000:.1f} µs")
    assert "rate limited" in during["outbox"][0]["lastError"]
    calls = slack.calls()
    assert [c.status for c in calls if c.status == 429]  # Slack did say 429
    assert early == []  # nothing went through before Retry-After had passed
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
    print(f"\na hanging Slack cut off after {took:.1f} s")  # one timed-out call, not 20 s
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
    d = make(store, slack, registry, FakeClock(datetime.now(UTC)), workers=1, queue_size=2)
    accepted = [d.submit("RolloutPlan", NS, "p0")]
    assert d.queue.get(0) == f"{NS}/RolloutPlan/p0"  # the one worker took p0 (and is stuck)
    accepted += [d.submit("RolloutPlan", NS, f"p{i}") for i in (1, 2)]
    io = io_so_far(store, slack)
    times = [submit_ns(d, f"x{i}") for i in range(500)]
    assert accepted == [True, True, True]  # p0 is with the worker, p1 and p2 fill the queue
    # Nothing in submit waits on I/O (printed: the rare outlier is the GIL's switch interval).
    assert io_so_far(store, slack) == io
    print(f"\nsubmit() with the queue full: median {statistics.median(times) / 1000:.1f} µs, "
          f"p99 {statistics.quantiles(times, n=100)[98] / 1000:.1f} µs")
    assert (registry.get_sample_value("rolloutctl_notifications_dropped_total",
                                     {"reason": "QueueFull"}) or 0) >= 490
