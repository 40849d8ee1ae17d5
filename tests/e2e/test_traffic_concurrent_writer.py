"""A concurrent writer between the router's read and its write: the router writes nothing
and raises RouterError("Conflict") (it does not retry by itself: the caller re-reads and
retries on its next reconcile, which then succeeds and keeps the other writer's change)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from controller.ports import RouterError
from controller.testing.fixtures import TestCluster

from .test_traffic_harness import Nginx, Provider, Setup, provider_params, set_up

pytestmark = pytest.mark.cluster

# the method each router reads the object it writes with
READS = {"gatewayAPI": "_read", "istio": "_read", "nginx": "_read_canary", "replicas": "_read"}


@pytest.fixture(params=provider_params())
def setup(request: pytest.FixtureRequest, cluster: TestCluster,
          namespace: str) -> Iterator[Setup]:
    provider: Provider = request.param
    with set_up(cluster, namespace, provider) as setup:
        yield setup


def race_after_first_read(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make someone else write the object right after the router's next read of it."""
    name = READS[setup.provider.id]
    original: Callable[..., Any] = getattr(setup.router, name)
    raced = False

    def read_then_someone_writes(*args: Any) -> Any:
        nonlocal raced
        obj = original(*args)
        if not raced:
            raced = True
            setup.provider.concurrent_write(setup.kube)
        return obj

    monkeypatch.setattr(setup.router, name, read_then_someone_writes)


def test_a_write_between_read_and_write_is_a_conflict_and_writes_nothing(
    setup: Setup, monkeypatch: pytest.MonkeyPatch,
) -> None:
    setup.router.apply(10)
    race_after_first_read(setup, monkeypatch)

    with pytest.raises(RouterError) as err:
        setup.router.apply(50)
    assert err.value.reason == "Conflict"
    assert setup.provider.written_kind in err.value.message
    assert setup.weight() == 10, "nothing was written"
    assert setup.provider.concurrent_write_seen(setup.kube)

    # the caller's retry (next reconcile) re-reads and succeeds, keeping the other change
    assert setup.router.apply(50) is not None
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
