"""Two electors on one real Lease: one leader, prompt handover, never two leaders."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import pytest
from kubernetes import client

from controller.adapters.kube.lease import KubeLeaseStore
from controller.runtime.leader import ElectionTimings, LeaderElector
from tests.harness.fixtures import TestCluster

pytestmark = pytest.mark.cluster

LEASE = "rolloutctl-leader"


class MakeCandidate(Protocol):
    def __call__(self, identity: str, timings: ElectionTimings | None = None) -> Candidate: ...


@dataclass
class Candidate:
    elector: LeaderElector
    api: client.ApiClient
    events: list[str] = field(default_factory=list)


@pytest.fixture
def candidates(cluster: TestCluster, namespace: str) -> Iterator[MakeCandidate]:
    made: list[Candidate] = []

    def make(identity: str, timings: ElectionTimings | None = None) -> Candidate:
        api = cluster.api_client()  # one client (connection pool) per replica
        events: list[str] = []
        elector = LeaderElector(
            KubeLeaseStore(api, namespace, LEASE), identity, timings,
            on_started_leading=lambda: events.append("started"),
            on_stopped_leading=lambda: events.append("stopped"),
            on_new_leader=lambda who: events.append(f"leader={who}"),
        )
        candidate = Candidate(elector, api, events)
        made.append(candidate)
        return candidate

    yield make
    for c in made:
        c.elector.abandon(timeout=5)
        c.api.close()  # type: ignore[no-untyped-call]


class Sampler:
    """Samples is_leader() of every candidate every 50 ms in a thread."""

    def __init__(self, candidates: list[Candidate]) -> None:
        self.candidates = candidates
        self.samples: list[tuple[float, tuple[bool, ...]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(
                (time.monotonic(), tuple(c.elector.is_leader() for c in self.candidates)))
            self._stop.wait(0.05)

    def both_leading(self) -> list[float]:
        return [t for t, s in self.samples if sum(s) > 1]

    def first_time(self, index: int, after: float) -> float | None:
        return next((t for t, s in self.samples if t >= after and s[index]), None)

    def last_time(self, index: int) -> float | None:
        return next((t for t, s in reversed(self.samples) if s[index]), None)


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def lease_holder(cluster: TestCluster, namespace: str) -> str:
    api = cluster.api_client()
    try:
        lease = client.CoordinationV1Api(api).read_namespaced_lease(
            LEASE, namespace, _request_timeout=10)
        return str(lease.spec.holder_identity or "") if lease.spec else ""
    finally:
        api.close()  # type: ignore[no-untyped-call]


def start_pair(candidates: MakeCandidate) -> tuple[Candidate, Candidate]:
    a, b = candidates("replica-a"), candidates("replica-b")
    a.elector.start()
    assert wait_for(a.elector.is_leader, 10), "the first candidate creates the Lease and leads"
    b.elector.start()
    assert wait_for(lambda: b.elector.leader() == "replica-a", 10)
    return a, b


def test_exactly_one_of_two_candidates_leads(
    candidates: MakeCandidate, cluster: TestCluster, namespace: str
) -> None:
    a, b = start_pair(candidates)
    with Sampler([a, b]) as sampler:
        time.sleep(5)  # two and a half renewals
    assert all(s == (True, False) for _, s in sampler.samples), "a leads throughout"
    assert len(sampler.samples) >= 80
    assert lease_holder(cluster, namespace) == "replica-a"
    assert a.events == ["leader=replica-a", "started"]
    assert b.events == ["leader=replica-a"]
    assert b.elector.is_healthy(), "the standby can reach the Lease"


def test_stopping_the_leader_releases_the_lease_and_the_standby_takes_over_within_a_second(
    candidates: MakeCandidate, cluster: TestCluster, namespace: str
) -> None:
    a, b = start_pair(candidates)
    with Sampler([a, b]) as sampler:
        time.sleep(0.3)
        stopping = time.monotonic()
        a.elector.stop()
        stopped = time.monotonic()
        assert wait_for(b.elector.is_leader, 5)
        time.sleep(0.3)
    took_over = sampler.first_time(1, stopping)
    assert took_over is not None
    print(f"release: stop() took {stopped - stopping:.3f} s, "
          f"handover {took_over - stopping:.3f} s after stop() was called")
    assert took_over - stopping < 1.0
    assert sampler.both_leading() == []
    assert a.events[-1] == "stopped"
    assert lease_holder(cluster, namespace) == "replica-b"


@pytest.mark.slow
def test_a_killed_leader_is_replaced_within_the_lease_duration_and_never_overlaps(
    candidates: MakeCandidate, cluster: TestCluster, namespace: str
) -> None:
    a, b = start_pair(candidates)  # the defaults: 15 s lease, 10 s deadline, 2 s retry
    with Sampler([a, b]) as sampler:
        time.sleep(0.5)
        killed = time.monotonic()
        a.elector.abandon()  # no more renewals and no release: a crash, as others see it
        assert wait_for(b.elector.is_leader, 25)
        time.sleep(0.3)
    a_stopped = sampler.last_time(0)
    b_started = sampler.first_time(1, killed)
    assert a_stopped is not None and b_started is not None
    print(f"kill: the old leader stopped acting {a_stopped - killed:.2f} s after the kill, "
          f"the standby led {b_started - killed:.2f} s after it")
    assert a_stopped - killed <= 10.1, "the dead leader's is_leader() ends at the renew deadline"
    assert b_started - killed <= 15.2, "taken over within the lease duration"
    assert b_started - a_stopped >= 4.5, "with the 5 s margin between deadline and duration"
    assert sampler.both_leading() == []
    assert lease_holder(cluster, namespace) == "replica-b"


def test_short_timings_hand_over_after_a_crash_too(
    candidates: MakeCandidate, cluster: TestCluster, namespace: str
) -> None:
    timings = ElectionTimings(lease_duration=3, renew_deadline=2, retry_period=0.5)
    a, b = candidates("fast-a", timings), candidates("fast-b", timings)
    a.elector.start()
    assert wait_for(a.elector.is_leader, 10)
    b.elector.start()
    assert wait_for(lambda: b.elector.leader() == "fast-a", 10)
    with Sampler([a, b]) as sampler:
        killed = time.monotonic()
        a.elector.abandon()
        assert wait_for(b.elector.is_leader, 10)
        time.sleep(0.2)  # let the sampler see it
    b_started = sampler.first_time(1, killed)
    assert b_started is not None and b_started - killed <= 3.2
    assert sampler.both_leading() == []
