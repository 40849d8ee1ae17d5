"""Someone edits the canary weight by hand mid-step: the router reports the edited weight,
and applying the desired weight puts it back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.fixtures import TestCluster

from .test_traffic_harness import CANARY, Nginx, Provider, Replicas, Setup, provider_params, set_up

pytestmark = pytest.mark.cluster

DESIRED = 25
# 75 % of the 4 stable replicas is 3 canary Pods, and 3 Pods read back as 75 %
HAND_EDITED = 75


@pytest.fixture(params=provider_params())
def setup(request: pytest.FixtureRequest, cluster: TestCluster,
          namespace: str) -> Iterator[Setup]:
    provider: Provider = request.param
    with set_up(cluster, namespace, provider) as setup:
        yield setup


def test_a_hand_edited_weight_is_observed_then_restored(setup: Setup) -> None:
    router = setup.router
    router.apply(DESIRED)
    setup.provider.hand_edit(setup.kube, HAND_EDITED)
    assert setup.weight() == HAND_EDITED

    observed = router.observe()
    assert observed.weight == HAND_EDITED
    assert not router.verify(DESIRED)

    router.apply(DESIRED)
    assert router.verify(DESIRED)
    assert setup.weight() == DESIRED
    assert router.observe().weight == DESIRED


def test_a_hand_scaled_canary_is_reported_as_edited_replicas(
    cluster: TestCluster, namespace: str,
) -> None:
    with set_up(cluster, namespace, Replicas()) as setup:
        setup.router.apply(DESIRED)  # 1 of 4
        setup.kube.scale_deployment(CANARY, 2)
        observed = setup.router.observe()
        assert (observed.weight, observed.reason) == (50, "ReplicasEdited")
        assert f"Deployment {namespace}/{CANARY}" in observed.message
        assert "rolloutctl.dev/weight=25" in observed.message
        setup.router.apply(DESIRED)
        assert setup.kube.get_deployment(CANARY)["spec"]["replicas"] == 1


def test_a_deleted_canary_ingress_reads_as_weight_0_and_is_recreated(
    cluster: TestCluster, namespace: str,
) -> None:
    provider = Nginx()
    with set_up(cluster, namespace, provider) as setup:
        setup.router.apply(DESIRED)
        setup.kube.delete_ingress(provider.canary_name)
        assert setup.router.observe().weight == 0
        assert not setup.router.verify(DESIRED)
        setup.router.apply(DESIRED)
        assert setup.weight() == DESIRED
