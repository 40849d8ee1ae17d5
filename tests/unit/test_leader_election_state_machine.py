"""The Lease elector's state machine, on a fake Lease store and a fake monotonic clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from controller.adapters.kube.lease import LeaseRecord
from controller.errors import Conflict, Permanent, Transient
from controller.runtime.leader import ElectionTimings, LeaderElector
from tests.harness.fakes import FakeClock


class FakeLeaseStore:
    """One Lease with resourceVersion preconditions; can be made unreachable."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.version = 0
        self.unreachable: set[str] = set()  # identities whose calls fail (a partition)
        self.caller = ""
        self.writes = 0

    def _check(self) -> None:
        if self.caller in self.unreachable:
            raise Transient("connection refused", "ApiUnreachable")

    def _store(self, record: LeaseRecord) -> LeaseRecord:
        self.version += 1
        self.writes += 1
        self.record = record.with_version(str(self.version))
        return self.record

    def get(self) -> LeaseRecord | None:
        self._check()
        return self.record

    def create(self, record: LeaseRecord) -> LeaseRecord:
        self._check()
        if self.record is not None:
            raise Conflict("exists")
        return self._store(record)

    def update(self, record: LeaseRecord) -> LeaseRecord:
        self._check()
        if self.record is None or record.resource_version != self.record.resource_version:
            raise Conflict("stale")
        return self._store(record)

    def wait_for_change(self, resource_version: str, timeout: float) -> bool:
        return False

    def cancel_wait(self) -> None:
        pass


class StoreView:
    """The shared store as seen by one elector (so a partition can cut one replica off)."""

    def __init__(self, store: FakeLeaseStore, identity: str) -> None:
        self.store = store
        self.identity = identity

    def __getattr__(self, name: str) -> object:
        self.store.caller = self.identity
        return getattr(self.store, name)


class Replica:
    def __init__(self, store: FakeLeaseStore, clock: FakeClock, identity: str) -> None:
        self.events: list[str] = []
        self.elector = LeaderElector(
            StoreView(store, identity),  # type: ignore[arg-type]
            identity,
            clock=clock,
            on_started_leading=lambda: self.events.append("started"),
            on_stopped_leading=lambda: self.events.append("stopped"),
            on_new_leader=lambda who: self.events.append(f"leader={who}"),
        )

    def step(self) -> float:
        return self.elector.step()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2030, 1, 1, tzinfo=UTC), monotonic=500.0)


@pytest.fixture
def store() -> FakeLeaseStore:
    return FakeLeaseStore()


def test_the_first_candidate_creates_the_lease_and_leads(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    a = Replica(store, clock, "a")
    assert not a.elector.is_leader()
    a.step()
    assert a.elector.is_leader()
    assert a.events == ["leader=a", "started"]
    assert store.record is not None
    assert store.record.holder_identity == "a"
    assert store.record.lease_duration_seconds == 15
    assert store.record.renew_time == clock.now()
    assert a.elector.leader() == "a"


def test_the_leader_renews_every_retry_period_and_keeps_leading(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    a = Replica(store, clock, "a")
    a.step()
    acquired = store.record.acquire_time if store.record else None
    for _ in range(100):
        clock.advance(a.step())
        assert a.elector.is_leader()
    assert store.record is not None
    assert store.record.renew_time == clock.now() - timedelta(seconds=2)
    assert store.record.acquire_time == acquired, "renewals keep the acquire time"
    assert store.writes == 101
    assert a.events == ["leader=a", "started"], "no callbacks while nothing changes"


def test_a_standby_stays_out_while_the_leader_renews(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    a, b = Replica(store, clock, "a"), Replica(store, clock, "b")
    a.step()
    for _ in range(60):  # two minutes
        b.step()
        a.step()
        clock.advance(2)
        assert a.elector.is_leader()
        assert not b.elector.is_leader()
    assert b.events == ["leader=a"]
    assert b.elector.is_healthy(), "a standby that reaches the Lease is healthy (ready)"


def test_the_leader_gives_up_when_renewals_fail_for_the_renew_deadline(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    a = Replica(store, clock, "a")
    a.step()
    clock.advance(2)
    a.step()  # the last successful renewal, sent now
    last_renewal = clock.monotonic()
    store.unreachable.add("a")
    while clock.monotonic() - last_renewal < 9.5:
        clock.advance(0.5)
        a.step()
        assert a.elector.is_leader(), "failed renewals are retried until the deadline"
    clock.advance(0.5)  # exactly 10 s after the renewal was sent
    assert not a.elector.is_leader(), "is_leader turns False at the deadline by itself"
    assert "stopped" not in a.events
    a.step()
    assert a.events[-1] == "stopped"
    assert not a.elector.is_healthy(), "cut off from the API server: not ready"


def test_a_standby_takes_over_only_after_the_record_stayed_unchanged_for_the_lease_duration(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    a, b = Replica(store, clock, "a"), Replica(store, clock, "b")
    a.step()
    b.step()  # b observes a's record now
    observed = clock.monotonic()
    a_stopped_at = b_started_at = None
    # a dies: no more renewals. b keeps trying; both are sampled every 50 ms.
    next_b = 0.0
    while clock.monotonic() - observed < 30:
        clock.advance(0.05)
        if a_stopped_at is None and not a.elector.is_leader():
            a_stopped_at = clock.monotonic() - observed
        if clock.monotonic() >= next_b:
            next_b = clock.monotonic() + b.step()
        if b_started_at is None and b.elector.is_leader():
            b_started_at = clock.monotonic() - observed
        assert not (a.elector.is_leader() and b.elector.is_leader())
    assert a_stopped_at == pytest.approx(10.0, abs=0.06)
    assert b_started_at is not None
    assert 15.0 < b_started_at <= 15.1, "taken over as soon as the lease expired"
    assert store.record is not None
    assert store.record.holder_identity == "b"
    assert store.record.lease_transitions == 1
    assert b.events == ["leader=a", "leader=b", "started"]


def test_expiry_is_judged_on_the_local_clock_not_on_the_renew_time_written_in_the_lease(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    long_ago = clock.now() - timedelta(days=365)
    store.record = LeaseRecord("crashed", 15, long_ago, long_ago, 3, "1")
    store.version = 1
    b = Replica(store, clock, "b")
    b.step()
    assert not b.elector.is_leader(), "an old renewTime alone does not expire a lease"
    clock.advance(15)
    b.step()
    assert not b.elector.is_leader()
    clock.advance(0.01)
    b.step()
    assert b.elector.is_leader()
    assert store.record.lease_transitions == 4


def test_a_wall_clock_jump_does_not_end_leadership(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    a = Replica(store, clock, "a")
    a.step()
    clock.step_wall(3 * 3600)  # NTP step, or a VM resumed
    assert a.elector.is_leader()
    clock.advance(2)
    a.step()
    assert a.elector.is_leader()
    assert a.events == ["leader=a", "started"]


def test_release_on_stop_hands_the_lease_over_at_once(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    a, b = Replica(store, clock, "a"), Replica(store, clock, "b")
    a.step()
    b.step()
    a.elector.stop()  # never started a thread: steps down and releases right away
    assert not a.elector.is_leader()
    assert a.events[-1] == "stopped"
    assert store.record is not None
    assert store.record.holder_identity == ""
    assert store.record.lease_duration_seconds == 1

    clock.advance(0.1)
    b.step()
    assert b.elector.is_leader(), "a released lease is free: no waiting out the duration"
    assert store.record.holder_identity == "b"
    assert store.record.lease_transitions == 1


def test_of_two_candidates_writing_from_the_same_read_only_one_leads(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    long_ago = clock.now() - timedelta(days=1)
    store.record = LeaseRecord("", 1, long_ago, long_ago, 0, "1")
    store.version = 1
    a, b = Replica(store, clock, "a"), Replica(store, clock, "b")
    real_get = store.get
    snapshot = store.record
    store.get = lambda: snapshot if store.caller == "b" else real_get()  # type: ignore[method-assign]
    a.step()
    b.step()  # b read the same free record, but a wrote first
    assert a.elector.is_leader()
    assert not b.elector.is_leader()
    assert store.record.holder_identity == "a"


def test_the_leader_steps_down_at_once_when_someone_else_holds_the_lease(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    a = Replica(store, clock, "a")
    a.step()
    assert store.record is not None
    store.record = replace(store.record, holder_identity="intruder", resource_version="99")
    clock.advance(2)
    a.step()
    assert not a.elector.is_leader()
    assert a.events[-2:] == ["leader=intruder", "stopped"]


def test_a_partitioned_leader_stops_before_the_standby_starts(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    a, b = Replica(store, clock, "a"), Replica(store, clock, "b")
    a.step()
    b.step()
    store.unreachable.add("a")
    overlap = []
    next_a = next_b = clock.monotonic()
    for _ in range(1000):  # 50 s in 50 ms samples
        clock.advance(0.05)
        if clock.monotonic() >= next_a:
            next_a = clock.monotonic() + a.step()
        if clock.monotonic() >= next_b:
            next_b = clock.monotonic() + b.step()
        if a.elector.is_leader() and b.elector.is_leader():
            overlap.append(clock.monotonic())
    assert overlap == []
    assert b.elector.is_leader()
    assert "stopped" in a.events
    # the partition heals: a sees b holding the lease and stays a standby
    store.unreachable.clear()
    a.step()
    assert not a.elector.is_leader()
    assert a.elector.leader() == "b"


@pytest.mark.parametrize(
    ("lease", "renew", "retry"), [(10, 10, 2), (15, 2, 2), (15, 10, 0), (0.5, 0.4, 0.1)]
)
def test_inconsistent_timings_are_refused(lease: float, renew: float, retry: float) -> None:
    with pytest.raises(ValueError):
        ElectionTimings(lease, renew, retry)


def test_the_defaults_are_client_go_s() -> None:
    assert ElectionTimings() == ElectionTimings(15.0, 10.0, 2.0)


def test_a_candidate_that_cannot_create_the_lease_is_not_healthy_and_says_why(
    store: FakeLeaseStore, clock: FakeClock
) -> None:
    def refuse(record: LeaseRecord) -> LeaseRecord:
        raise Permanent("cannot create Lease nowhere/lease: namespace not found", "NotFound")

    store.create = refuse  # type: ignore[method-assign]
    a = Replica(store, clock, "a")
    a.step()
    assert not a.elector.is_leader()
    assert not a.elector.is_healthy(), "reading worked, but it can never lead: not ready"
    assert a.elector.problem() == "cannot create Lease nowhere/lease: namespace not found"


def test_losing_a_race_is_not_a_problem(store: FakeLeaseStore, clock: FakeClock) -> None:
    a, b = Replica(store, clock, "a"), Replica(store, clock, "b")
    a.step()
    b.step()
    assert b.elector.is_healthy()
    assert b.elector.problem() == ""
