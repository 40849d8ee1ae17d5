"""The work queue behaves like client-go's: dedup, one worker per key, delays, backoff."""

from __future__ import annotations

import os
import threading
from collections import Counter as Tally

import pytest
from prometheus_client import CollectorRegistry

from controller.runtime.workqueue import ExponentialBackoff, WorkQueue
from tests.harness.fakes import FakeClock


def drain(queue: WorkQueue) -> list[str]:
    """Every key available now, each marked done."""
    keys = []
    while (key := queue.get(timeout=0)) is not None:
        keys.append(key)
        queue.done(key)
    return keys


def test_a_key_added_many_times_before_a_get_is_handed_out_once() -> None:
    queue = WorkQueue("plans")
    for _ in range(5):
        queue.add("shop/checkout")
    queue.add("shop/cart")
    queue.add("shop/checkout")

    assert len(queue) == 2
    assert drain(queue) == ["shop/checkout", "shop/cart"]
    assert queue.get(timeout=0) is None


def test_a_key_added_while_processing_waits_and_comes_back_after_done() -> None:
    queue = WorkQueue("plans")
    queue.add("shop/checkout")
    key = queue.get(timeout=0)
    assert key == "shop/checkout"

    queue.add("shop/checkout")  # an event arrives while the worker is busy with it
    queue.add("shop/checkout")
    assert queue.get(timeout=0) is None, "a key being processed must not go to a 2nd worker"

    queue.done(key)
    assert queue.get(timeout=0) == "shop/checkout", "the re-add is processed after done"
    queue.done("shop/checkout")
    assert queue.get(timeout=0) is None, "and only once"


def test_no_key_is_ever_processed_by_two_worker_threads_at_once() -> None:
    queue = WorkQueue("plans")
    keys = [f"ns/plan-{i}" for i in range(5)]
    in_flight: set[str] = set()
    overlaps: list[str] = []
    processed: Tally[str] = Tally()
    lock = threading.Condition()
    stop = threading.Event()
    # Each reconcile lasts while the producer adds every key twice more (no sleeping: the
    # worker waits for the producer's rounds), so keys are re-added while being processed.
    rounds = [0]
    produced = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            key = queue.get(timeout=0.05)
            if key is None:
                continue
            with lock:
                if key in in_flight:
                    overlaps.append(key)
                in_flight.add(key)
                seen = rounds[0]
                lock.wait_for(lambda s=seen: rounds[0] >= s + 2 or produced.is_set(), 30)
                in_flight.discard(key)
                processed[key] += 1
            queue.done(key)
            with lock:
                lock.notify_all()

    workers = [threading.Thread(target=worker) for _ in range(8)]
    for t in workers:
        t.start()
    for _ in range(300):
        for key in keys:
            queue.add(key)
        with lock:
            rounds[0] += 1
            lock.notify_all()
        os.sched_yield()  # let the workers take keys between rounds
    with lock:  # wait for the state: everything added was processed
        produced.set()
        lock.notify_all()
        drained = lock.wait_for(lambda: not len(queue) and not queue.processing(), 30)
    stop.set()
    for t in workers:
        t.join()

    assert drained, "the workers did not drain the queue"
    assert overlaps == []
    assert set(processed) == set(keys)
    # dedup: far fewer reconciles than adds (1500), at least one per key
    assert sum(processed.values()) < 1500


def test_add_after_hands_out_keys_in_due_order_and_not_before() -> None:
    clock = FakeClock()
    queue = WorkQueue("plans", clock=clock)
    queue.add_after("ns/late", 30)
    queue.add_after("ns/early", 10)
    queue.add_after("ns/middle", 20)

    assert drain(queue) == []
    clock.advance(9.9)
    assert drain(queue) == []
    clock.advance(0.1)
    assert drain(queue) == ["ns/early"]
    clock.advance(20)
    assert drain(queue) == ["ns/middle", "ns/late"]


def test_an_earlier_add_after_wins_over_a_later_one_for_the_same_key() -> None:
    clock = FakeClock()
    queue = WorkQueue("plans", clock=clock)
    queue.add_after("ns/a", 60)
    queue.add_after("ns/a", 5)  # earlier: replaces the 60 s wait
    queue.add_after("ns/a", 30)  # later: ignored

    clock.advance(5)
    assert drain(queue) == ["ns/a"]
    clock.advance(100)
    assert drain(queue) == [], "the superseded delays do not fire again"


def test_add_after_wakes_a_blocked_getter_when_due() -> None:
    clock = FakeClock()
    queue = WorkQueue("plans", clock=clock, wait=clock.wait)
    started = clock.monotonic()
    queue.add_after("ns/a", 0.2)
    key = queue.get(timeout=5)
    waited = clock.monotonic() - started
    assert key == "ns/a"
    assert 0.19 <= waited < 1.0  # it waited until the key was due, not for its timeout


def test_backoff_doubles_per_failure_from_a_tenth_of_a_second_up_to_five_minutes() -> None:
    backoff = ExponentialBackoff()
    assert [backoff.delay(n) for n in range(5)] == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert backoff.delay(11) == 204.8
    assert backoff.delay(12) == 300.0
    assert backoff.delay(1000) == 300.0


def becomes_due_after(queue: WorkQueue, clock: FakeClock, key: str, seconds: float) -> bool:
    """True when KEY is not handed out 10 ms before SECONDS from now, and is at SECONDS."""
    start = clock.monotonic()
    clock.advance_to(start + seconds - 0.01)
    early = drain(queue)
    clock.advance_to(start + seconds)
    return early == [] and drain(queue) == [key]


def test_rate_limited_adds_wait_longer_each_time_until_forgotten() -> None:
    clock = FakeClock()
    queue = WorkQueue("plans", clock=clock)
    for expected in (0.1, 0.2, 0.4, 0.8):
        queue.add_rate_limited("ns/a")
        assert becomes_due_after(queue, clock, "ns/a", expected)
    assert queue.num_requeues("ns/a") == 4
    assert queue.num_requeues("ns/b") == 0

    queue.forget("ns/a")
    assert queue.num_requeues("ns/a") == 0
    queue.add_rate_limited("ns/a")
    assert becomes_due_after(queue, clock, "ns/a", 0.1), "backoff starts over after forget"


def test_rate_limited_backoff_grows_to_five_minutes_and_stays_there() -> None:
    clock = FakeClock()
    queue = WorkQueue("plans", clock=clock)
    for failures in range(16):  # from the 13th failure on, the wait is the 5-minute cap
        queue.add_rate_limited("ns/a")
        expected = min(300.0, 0.1 * 2**failures)
        assert becomes_due_after(queue, clock, "ns/a", expected), f"failure {failures + 1}"
    assert queue.num_requeues("ns/a") == 16


def test_shutdown_unblocks_every_waiting_getter() -> None:
    clock = FakeClock()
    queue = WorkQueue("plans", clock=clock, wait=clock.wait)
    results: list[str | None] = []

    def getter() -> None:
        results.append(queue.get())

    threads = [threading.Thread(target=getter) for _ in range(3)]
    for t in threads:
        t.start()
    assert clock.until_blocked(3), "the getters did not block"
    queue.shutdown()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    assert results == [None, None, None]
    queue.add("ns/a")
    assert queue.get(timeout=0) is None, "a shut-down queue hands out nothing"


def test_get_with_a_timeout_returns_none_when_nothing_arrives() -> None:
    clock = FakeClock()
    queue = WorkQueue("plans", clock=clock, wait=clock.wait)
    started = clock.monotonic()
    assert queue.get(timeout=0.1) is None
    assert 0.09 <= clock.monotonic() - started < 0.5


def test_queue_latency_is_the_time_from_add_to_get() -> None:
    clock = FakeClock()
    seen: list[tuple[str, float]] = []
    registry = CollectorRegistry()
    queue = WorkQueue(
        "plans", registry, clock=clock, on_latency=lambda k, s: seen.append((k, s))
    )
    queue.add("ns/a")
    clock.advance(0.25)
    queue.add("ns/a")  # a duplicate does not reset the time the key has waited
    clock.advance(0.5)
    assert queue.get(timeout=0) == "ns/a"
    clock.advance(2.0)
    queue.done("ns/a")

    assert queue.latencies() == [0.75]
    assert seen == [("ns/a", 0.75)]

    def sample(name: str) -> float | None:
        return registry.get_sample_value(name, {"name": "plans"})

    assert sample("rolloutctl_workqueue_queue_duration_seconds_sum") == 0.75
    assert sample("rolloutctl_workqueue_queue_duration_seconds_count") == 1
    assert sample("rolloutctl_workqueue_work_duration_seconds_sum") == 2.0
    assert sample("rolloutctl_workqueue_adds_total") == 1  # the duplicate was not added


def test_depth_adds_and_retries_are_exported_per_queue_name() -> None:
    registry = CollectorRegistry()
    plans = WorkQueue("plans", registry)
    policies = WorkQueue("policies", registry)  # same registry: the families are shared
    plans.add("ns/a")
    plans.add("ns/b")
    policies.add("ns/p")
    plans.add_rate_limited("ns/c")

    def sample(name: str, queue: str) -> float | None:
        return registry.get_sample_value(name, {"name": queue})

    assert sample("rolloutctl_workqueue_depth", "plans") == 2
    assert sample("rolloutctl_workqueue_depth", "policies") == 1
    assert sample("rolloutctl_workqueue_adds_total", "plans") == 2
    assert sample("rolloutctl_workqueue_retries_total", "plans") == 1
    assert sample("rolloutctl_workqueue_retries_total", "policies") == 0
    assert plans.get(timeout=0) == "ns/a"
    assert sample("rolloutctl_workqueue_depth", "plans") == 1


@pytest.mark.parametrize("delay", [0, -1])
def test_add_after_without_a_delay_is_an_add(delay: float) -> None:
    queue = WorkQueue("plans")
    queue.add_after("ns/a", delay)
    assert queue.get(timeout=0) == "ns/a"


def test_a_resync_queues_only_keys_nobody_has_scheduled() -> None:
    """A resync re-delivers every object; a key already queued, in progress or waiting for
    its requeue is not queued again (1,000 plans would otherwise all be queued at once in
    front of the due ones), and a key with nothing scheduled is."""
    clock = FakeClock()
    q = WorkQueue("resync", clock=clock, wait=clock.wait)
    q.add("queued")
    q.add("busy")
    assert q.get(timeout=1) == "queued"
    q.add("queued-again")
    q.add_after("waiting", 60)
    # "queued" is in progress now; "queued-again" is queued; "waiting" waits 60 s
    assert q.add_unless_scheduled("queued") is False
    assert q.add_unless_scheduled("queued-again") is False
    assert q.add_unless_scheduled("waiting") is False
    assert q.add_unless_scheduled("forgotten") is True
    q.done("queued")
    handed = [q.get(timeout=1) for _ in range(3)]
    assert handed == ["busy", "queued-again", "forgotten"]
    assert q.get(timeout=0.05) is None  # nothing was queued twice; "waiting" still waits
    assert q.waiting() == 1
