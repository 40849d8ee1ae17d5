"""A concurrent writer between a router's read and its write.

Gateway API, Istio and NGINX guard their write with the resourceVersion they read: the
router writes nothing and raises RouterError("Conflict"); it does not retry by itself, the
caller re-reads and retries on its next reconcile, which succeeds and keeps the other
writer's change. The replica router writes merge patches naming only its own two fields,
unguarded (the Deployment controller's status writes would make a guard fail all the
time): the other writer's change is kept, and a concurrent scale is last-writer-wins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from controller.ports import RouterError
from tests.harness.fixtures import TestCluster

from .test_traffic_harness import CANARY, Nginx, Provider, Replicas, Setup, provider_params, set_up

pytestmark = pytest.mark.cluster

# the method each router reads the object it writes with
READS = {"gatewayAPI": "_read", "istio": "_read", "nginx": "_read_canary", "replicas": "_read"}


@pytest.fixture(params=provider_params(guarded=True))
def guarded(request: pytest.FixtureRequest, cluster: TestCluster,
            namespace: str) -> Iterator[Setup]:
    provider: Provider = request.param
    with set_up(cluster, namespace, provider) as setup:
        yield setup


def race_after_first_read(setup: Setup, monkeypatch: pytest.MonkeyPatch,
                          write: Callable[[], None] | None = None) -> None:
    """Make someone else write the object right after the router's next read of it."""
    name = READS[setup.provider.id]
    original: Callable[..., Any] = getattr(setup.router, name)
    raced = False

    def read_then_someone_writes(*args: Any) -> Any:
        nonlocal raced
        obj = original(*args)
        if not raced:
            raced = True
            (write or (lambda: setup.provider.concurrent_write(setup.kube)))()
        return obj

    monkeypatch.setattr(setup.router, name, read_then_someone_writes)


def test_a_write_between_read_and_write_is_a_conflict_and_writes_nothing(
    guarded: Setup, monkeypatch: pytest.MonkeyPatch,
) -> None:
    setup = guarded
    setup.router.apply(10)
    race_after_first_read(setup, monkeypatch)

    with pytest.raises(RouterError) as err:
        setup.router.apply(50)
    assert err.value.reason == "Conflict"
    assert setup.provider.written_kind in err.value.message
    assert setup.weight() == 10, "nothing was written"
    assert setup.provider.concurrent_write_seen(setup.kube)

    # the caller's retry (next reconcile) re-reads and succeeds, keeping the other change
    assert setup.router.apply(50) == 50
    assert setup.weight() == 50
    assert setup.provider.concurrent_write_seen(setup.kube)


def test_deleting_the_canary_ingress_races_safely(
    cluster: TestCluster, namespace: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = Nginx()
    with set_up(cluster, namespace, provider) as setup:
        setup.router.apply(10)
        race_after_first_read(setup, monkeypatch)
        with pytest.raises(RouterError) as err:
            setup.router.restore()
        assert err.value.reason == "Conflict"
        assert setup.weight() == 10, "the precondition kept the changed Ingress"
        setup.router.restore()
        assert setup.weight() == 0


def test_the_replica_router_writes_through_a_concurrent_change_and_keeps_it(
    cluster: TestCluster, namespace: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    with set_up(cluster, namespace, Replicas()) as setup:
        setup.router.apply(10)
        race_after_first_read(setup, monkeypatch)
        setup.router.apply(50)
        assert setup.weight() == 50
        assert setup.provider.concurrent_write_seen(setup.kube)


def test_a_concurrent_scale_of_the_canary_is_last_writer_wins_then_drift(
    cluster: TestCluster, namespace: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    with set_up(cluster, namespace, Replicas()) as setup:
        setup.router.apply(10)
        race_after_first_read(setup, monkeypatch,
                              lambda: setup.kube.scale_deployment(CANARY, 4))
        setup.router.apply(50)  # writes after the other scale: the router's 2 replicas win
        assert setup.kube.get_deployment(CANARY)["spec"]["replicas"] == 2
        assert setup.router.verify(50)
        setup.kube.scale_deployment(CANARY, 4)  # a scale after the router's write ...
        observed = setup.router.observe()  # ... is drift the next reconcile sees
        assert (observed.weight, observed.reason) == (100, "ReplicasEdited")
