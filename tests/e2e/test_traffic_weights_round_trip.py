"""Each router moves the canary weight 0 -> 10 -> 25 -> 50 -> 100 -> 0 on the real API
server, and the objects show each weight when read back as a user would read them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.fixtures import TestCluster

from .test_traffic_harness import Provider, Setup, provider_params, set_up

pytestmark = pytest.mark.cluster

STEPS = (10, 25, 50, 100, 0)
# replica ratio: stable keeps its 4 replicas, the canary runs ceil(4 * w / 100): the share
# apply() reports is canary / (stable + canary)
REPLICA_SHARES = {10: 20, 25: 20, 50: 33, 100: 50, 0: 0}


@pytest.fixture(params=provider_params())
def setup(request: pytest.FixtureRequest, cluster: TestCluster,
          namespace: str) -> Iterator[Setup]:
    provider: Provider = request.param
    with set_up(cluster, namespace, provider) as setup:
        yield setup


def test_each_step_weight_is_applied_and_read_back(setup: Setup) -> None:
    router = setup.router
    assert setup.weight() == 0
    assert router.observe().weight == 0
    assert router.verify(0)
    for weight in STEPS:
        achieved = router.apply(weight)
        expected = REPLICA_SHARES[weight] if setup.provider.id == "replicas" else weight
        assert achieved == expected
        assert setup.weight() == weight, f"the object does not carry weight {weight}"
        assert router.verify(weight)
        assert not router.verify(weight - 1 if weight else 1)
        observed = router.observe()
        assert (observed.weight, observed.reason) == (weight, "Observed")


def test_applying_the_weight_it_already_has_writes_nothing(setup: Setup) -> None:
    for weight in (25, 0):
        setup.router.apply(weight)
        before = setup.provider.versions(setup.kube)
        assert setup.router.apply(weight) is not None
        assert setup.provider.versions(setup.kube) == before
    assert setup.weight() == 0


def test_restore_sends_all_traffic_to_stable(setup: Setup) -> None:
    setup.router.apply(50)
    setup.router.restore()
    assert setup.weight() == 0
    assert setup.router.verify(0)
    setup.router.restore()  # again: nothing left to do, no error
    assert setup.weight() == 0
