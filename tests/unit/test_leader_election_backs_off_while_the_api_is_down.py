"""A replica whose Lease has expired (as it observes it) while the API server is down
retries every retry period, not in a tight loop.

Found by the reliability suite (``python -m bench.reliability --only apiserver``): during a
20 s kube-apiserver restart the controller, having stepped down at the renew deadline, read
the Lease ~100 times a second (each read three connection attempts) from the moment the
lease expired until the API server was back: ``_next_wait`` aimed at the expiry, which was
already past, so every wait was 10 ms.
"""

from __future__ import annotations

from datetime import UTC, datetime

from controller.adapters.kube.lease import LeaseRecord
from controller.errors import Transient
from controller.runtime.leader import ElectionTimings, LeaderElector
from tests.harness.fakes import FakeClock

T0 = datetime(2030, 1, 1, tzinfo=UTC)


class Store:
    """A Lease held by ANOTHER replica, until the API server goes away."""

    def __init__(self) -> None:
        self.down = False
        self.reads = 0
        self.record = LeaseRecord("other", 15, None, None, 0).with_version("7")

    def get(self) -> LeaseRecord | None:
        self.reads += 1
        if self.down:
            raise Transient("connection refused", "ApiUnreachable")
        return self.record

    def create(self, record: LeaseRecord) -> LeaseRecord:
        raise AssertionError("not expected")

    def update(self, record: LeaseRecord) -> LeaseRecord:
        raise Transient("connection refused", "ApiUnreachable")

    def wait_for_change(self, resource_version: str, timeout: float) -> bool:
        return False

    def cancel_wait(self) -> None:
        pass


def test_a_standby_retries_every_retry_period_while_the_api_server_is_down() -> None:
    clock, store = FakeClock(T0, monotonic=100.0), Store()
    elector = LeaderElector(store, "me", ElectionTimings(), clock=clock)
    assert elector.step() == 2.0  # a healthy standby, lease fresh
    clock.advance(14.0)
    wait = elector.step()
    assert 0.9 < wait <= 1.02  # looks again right when the holder's lease expires
    store.down = True
    clock.advance(16.0)  # expired, and the API server is gone
    waits = [elector.step() for _ in range(5)]
    assert waits == [2.0] * 5
    assert not elector.is_leader()


def test_a_standby_still_takes_an_expired_lease_at_once_when_the_api_answers() -> None:
    clock, store = FakeClock(T0, monotonic=100.0), Store()
    elector = LeaderElector(store, "me", ElectionTimings(), clock=clock)
    elector.step()
    clock.advance(14.5)
    assert elector.step() <= 0.52  # wakes at the expiry, not a retry period later
