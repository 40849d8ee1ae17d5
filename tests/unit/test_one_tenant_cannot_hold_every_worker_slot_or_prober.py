"""Shared resources are bounded per namespace: workers of the work queue, rollout slots and
probers; probers are reaped with their plan; series go with their plan, gate or policy;
the health server caps its connections."""

from __future__ import annotations

import select
import socket
import threading
import time
import urllib.request

from prometheus_client import CollectorRegistry, generate_latest

from controller.adapters.metrics.probe import ProbeRegistry, ProbeSpec
from controller.api.plan import RolloutPlanStatus
from controller.api.policy import SLOPolicyStatus
from controller.reconciler import Slots
from controller.runtime.http import HealthServer
from controller.runtime.workqueue import WorkQueue
from controller.telemetry import Telemetry

#: real seconds a test waits for a state before it fails (never a sleep)
DEADLINE = 30.0


def until_closed(sockets: list[socket.socket], count: int) -> list[socket.socket]:
    """Wait until COUNT of SOCKETS were closed by the server (they read end-of-file); those."""
    deadline = time.monotonic() + DEADLINE
    closed: list[socket.socket] = []
    while len(closed) < count:
        assert time.monotonic() < deadline, f"only {len(closed)} of {count} were closed"
        readable, _, _ = select.select([s for s in sockets if s not in closed], [], [],
                                       max(0.0, deadline - time.monotonic()))
        for s in readable:
            assert s.recv(1) == b"", "an idle client got an answer"
            closed.append(s)
    return closed


def test_a_namespace_at_its_worker_bound_lets_another_namespace_go_first() -> None:
    q = WorkQueue("plans", max_per_namespace=1)
    for key in ("a/1", "a/2", "b/1"):
        q.add(key)
    assert q.get(timeout=0) == "a/1"
    assert q.get(timeout=0) == "b/1"  # a/2 waits: namespace a holds its one worker
    assert q.get(timeout=0) is None
    q.done("a/1")
    assert q.get(timeout=0) == "a/2"


def test_without_a_bound_the_queue_is_fifo() -> None:
    q = WorkQueue("plans")
    for key in ("a/1", "a/2", "b/1"):
        q.add(key)
    assert [q.get(timeout=0) for _ in range(3)] == ["a/1", "a/2", "b/1"]


def test_a_blocked_getter_wakes_when_its_namespace_frees_a_worker() -> None:
    q = WorkQueue("plans", max_per_namespace=1)
    q.add("a/1")
    q.add("a/2")
    assert q.get(timeout=0) == "a/1"
    got: list[str | None] = []
    t = threading.Thread(target=lambda: got.append(q.get(timeout=10)))
    t.start()
    q.done("a/1")
    t.join(10)
    assert got == ["a/2"]


def test_rollout_slots_per_namespace() -> None:
    slots = Slots(None, per_namespace=2)
    for key in ("a/1", "a/2"):
        assert slots.available(key)
        slots.update(key, True)
    assert not slots.available("a/3")
    assert slots.available("b/1")
    slots.update("a/1", False)
    assert slots.available("a/3")


def test_probers_are_reaped_with_their_plan_and_capped_per_namespace() -> None:
    registry = ProbeRegistry(max_per_namespace=2)
    one, two, three = (ProbeSpec(f"http://127.0.0.1:9/{i}", interval_seconds=3600)
                       for i in range(3))
    try:
        registry.for_owner("a/p", [one, two]).ensure(one)
        registry.ensure(two)
        registry.for_owner("a/q", [three])
        m = registry.measure(three, 60, _now())
        assert m.status.value == "error" and "--max-probes-per-namespace" in m.message
        assert three not in registry.specs()
        # the plan changes: its other probe stops at once
        registry.for_owner("a/p", [one])
        assert registry.specs() == [one]
        # the plan is deleted: the next reap stops its prober
        registry.reap(set())
        assert registry.specs() == []
    finally:
        registry.stop_all()


def _now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_series_of_a_deleted_plan_a_removed_gate_and_a_deleted_policy_go_away() -> None:
    registry = CollectorRegistry()
    t = Telemetry(registry)
    status = RolloutPlanStatus.model_validate({"phase": "Progressing", "gates": [
        {"name": "errors", "kind": "slo", "verdict": "Pass", "value": 0.1},
        {"name": "latency", "kind": "slo", "verdict": "Pass", "value": 0.2}]})
    t.plan("shop", "checkout", status)
    text = generate_latest(registry).decode()
    assert 'gate="latency"' in text
    t.plan("shop", "checkout", status.model_copy(update={"gates": status.gates[:1]}))
    text = generate_latest(registry).decode()
    assert 'gate="latency"' not in text and 'gate="errors"' in text
    t.forget_plan("shop", "checkout")
    assert 'plan="checkout"' not in generate_latest(registry).decode()

    t.policy("shop", "platform", SLOPolicyStatus.model_validate(
        {"frozen": False, "slos": [{"name": "availability", "budgetRemaining": 50}]}))
    assert 'policy="platform"' in generate_latest(registry).decode()
    t.forget_policy("shop", "platform")
    assert 'policy="platform"' not in generate_latest(registry).decode()


def test_idle_connections_beyond_the_cap_get_no_thread_and_are_dropped() -> None:
    server = HealthServer(CollectorRegistry(), liveness=lambda: (True, "ok"),
                          readiness=lambda: (True, "ok"), address=("127.0.0.1", 0),
                          max_connections=4, connection_timeout=1.0)
    server.start()
    before = threading.active_count()
    idle = [socket.create_connection(server.address) for _ in range(60)]
    try:
        # the cap's four idle clients have a thread each; the others were closed at once
        refused = until_closed(idle, 56)
        assert server._server.refused >= 56  # type: ignore[attr-defined]
        assert threading.active_count() <= before + 4
        # the idle ones are dropped after the per-connection timeout; health answers again
        until_closed([s for s in idle if s not in refused], 4)

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"{server.url}/healthz", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        # a dropped client's slot is freed just after its socket closes: ask until it is
        deadline = time.monotonic() + DEADLINE
        while not healthy():
            assert time.monotonic() < deadline, "health never answered again"
    finally:
        for s in idle:
            s.close()
        server.stop()


def test_notification_workers_are_bounded_per_namespace_too() -> None:
    """Notifications run on the runtime's work queue; their keys start with the namespace."""
    from controller.adapters.notify import Kind, ObjectRef
    from controller.runtime.workqueue import WorkQueue

    q = WorkQueue("notifications", max_per_namespace=1)
    a1, a2, b1 = (ObjectRef(Kind.ROLLOUT_PLAN, ns, n).key
                  for ns, n in (("a", "1"), ("a", "2"), ("b", "1")))
    for key in (a1, a2, b1):
        q.add(key)
    assert q.get(0) == a1
    assert q.get(0) == b1  # a/2 waits for a's worker
    q.done(a1)
    assert q.get(0) == a2
