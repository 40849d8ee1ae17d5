"""The NGINX canary Ingress lives and dies with its plan and follows the primary Ingress."""

from __future__ import annotations

import pytest

from tests.harness.fixtures import TestCluster

from .test_traffic_harness import CANARY, Nginx, eventually, set_up

pytestmark = pytest.mark.cluster


def test_deleting_the_plan_garbage_collects_the_canary_ingress(
    cluster: TestCluster, namespace: str,
) -> None:
    provider = Nginx()
    with set_up(cluster, namespace, provider) as setup:
        setup.router.apply(10)
        assert setup.kube.get_ingress(provider.canary_name) is not None
        setup.kube.delete_custom(("rolloutctl.dev", "v1alpha1", "rolloutplans"), "checkout")

        def gone() -> None:
            assert setup.kube.get_ingress(provider.canary_name) is None

        eventually(gone, timeout=60)
        assert setup.kube.get_ingress("web") is not None, "the primary is not the plan's"


def test_a_change_to_the_primary_routing_is_followed_on_the_next_apply(
    cluster: TestCluster, namespace: str,
) -> None:
    provider = Nginx()
    with set_up(cluster, namespace, provider) as setup:
        setup.router.apply(10)
        setup.kube.patch_ingress("web", {"spec": {"rules": [
            {"host": "shop.example.com", "http": {"paths": [
                {"path": "/v2", "pathType": "Prefix", "backend": {
                    "service": {"name": "checkout", "port": {"number": 9090}}}}]}}]}})
        setup.router.apply(10)
        canary = setup.kube.get_ingress(provider.canary_name)
        assert canary is not None
        assert canary["spec"]["rules"] == [
            {"host": "shop.example.com", "http": {"paths": [
                {"path": "/v2", "pathType": "Prefix", "backend": {
                    "service": {"name": CANARY, "port": {"number": 9090}}}}]}}]
