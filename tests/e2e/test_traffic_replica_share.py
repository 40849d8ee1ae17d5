"""The replica router reports the share of traffic the canary really gets: its ready Pods
over all ready Pods, with the stable Deployment kept full (Pods made Ready by kwok)."""

from __future__ import annotations

import math

import pytest

from controller.adapters.traffic import router_for
from controller.ports import TrafficRouter
from tests.harness.fixtures import TestCluster

from .test_traffic_harness import CANARY, STABLE, Kube, Replicas, eventually, set_up

pytestmark = pytest.mark.cluster


def wait_for_share(router: TrafficRouter, kube: Kube, canary: int, stable: int) -> None:
    def share() -> None:
        assert kube.get_deployment(CANARY).get("status", {}).get("readyReplicas", 0) == canary
        assert kube.get_deployment(STABLE).get("status", {}).get("readyReplicas", 0) == stable
        achieved = router.observe().achieved
        assert achieved is not None
        assert math.isclose(achieved, 100 * canary / (canary + stable))

    eventually(share, timeout=120)


def test_the_achieved_share_follows_the_ready_pods(cluster: TestCluster, namespace: str) -> None:
    with set_up(cluster, namespace, Replicas()) as setup:
        router, kube = setup.router, setup.kube
        wait_for_share(router, kube, canary=0, stable=4)
        assert router.observe().achieved == 0

        assert router.apply(50) == 33  # 2 canary Pods next to 4 stable ones
        wait_for_share(router, kube, canary=2, stable=4)

        assert router.apply(100) == 50  # as many canary Pods as stable ones
        wait_for_share(router, kube, canary=4, stable=4)
        assert kube.get_deployment(STABLE)["spec"]["replicas"] == 4, "stable stays full"

        router.restore()
        wait_for_share(router, kube, canary=0, stable=4)
        assert router.observe().weight == 0


def test_total_replicas_from_the_plan_sizes_the_canary(
    cluster: TestCluster, namespace: str,
) -> None:
    api = cluster.api_client()
    try:
        kube = Kube(api, namespace)
        kube.create_deployment(STABLE, 4)
        kube.create_deployment(CANARY, 0)
        router = router_for(kube.create_plan({"replicas": {"totalReplicas": 10}}), api)
        assert router.apply(25) == round(100 * 3 / 7)  # ceil(10 * 25 / 100) = 3 canary Pods
        assert kube.get_deployment(CANARY)["spec"]["replicas"] == 3
        assert kube.get_deployment(CANARY)["metadata"]["annotations"][
            "rolloutctl.dev/weight"] == "25"
        wait_for_share(router, kube, canary=3, stable=4)
        observed = router.observe()
        assert (observed.weight, observed.reason) == (25, "Observed")
    finally:
        api.close()  # type: ignore[no-untyped-call]
