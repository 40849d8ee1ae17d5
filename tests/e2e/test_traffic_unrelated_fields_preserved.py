"""A router changes the canary weight and nothing else the user wrote: other rules,
matches, filters, timeouts, retries, other backends, labels, annotations, the stable
Deployment."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.fixtures import TestCluster

from .test_traffic_harness import (
    CANARY,
    HTTPROUTES,
    VIRTUALSERVICES,
    GatewayAPI,
    Istio,
    Nginx,
    Provider,
    Setup,
    provider_params,
    set_up,
)

pytestmark = pytest.mark.cluster


@pytest.fixture(params=provider_params())
def setup(request: pytest.FixtureRequest, cluster: TestCluster,
          namespace: str) -> Iterator[Setup]:
    provider: Provider = request.param
    with set_up(cluster, namespace, provider) as setup:
        yield setup


def test_everything_but_the_weights_is_left_as_the_user_wrote_it(setup: Setup) -> None:
    before = setup.provider.unrelated(setup.kube)
    for weight in (10, 25, 50, 100, 0):
        setup.router.apply(weight)
        assert setup.provider.unrelated(setup.kube) == before, f"after apply({weight})"


@pytest.mark.parametrize(("provider", "gvp"), [
    pytest.param(GatewayAPI(), HTTPROUTES, id="gatewayAPI"),
    pytest.param(Istio(), VIRTUALSERVICES, id="istio"),
])
def test_weights_are_written_under_the_rolloutctl_field_manager(
    provider: Provider, gvp: tuple[str, str, str], cluster: TestCluster, namespace: str,
) -> None:
    with set_up(cluster, namespace, provider) as setup:
        setup.router.apply(10)
        route = setup.kube.get_custom(gvp, "checkout")
        managers = {(m["manager"], m["operation"]) for m in route["metadata"]["managedFields"]}
        assert ("rolloutctl", "Update") in managers, managers


def test_the_canary_ingress_is_a_clone_of_the_primary_owned_by_the_plan(
    cluster: TestCluster, namespace: str,
) -> None:
    provider = Nginx()
    with set_up(cluster, namespace, provider) as setup:
        setup.router.apply(10)
        canary = setup.kube.get_ingress(provider.canary_name)
        assert canary is not None
        meta = canary["metadata"]
        assert meta["labels"] == {"app.kubernetes.io/managed-by": "rolloutctl"}
        assert meta["annotations"] == {"nginx.ingress.kubernetes.io/canary": "true",
                                       "nginx.ingress.kubernetes.io/canary-weight": "10"}
        assert meta["ownerReferences"] == [{
            "apiVersion": "rolloutctl.dev/v1alpha1", "kind": "RolloutPlan",
            "name": "checkout", "uid": setup.plan.metadata.uid, "controller": True}]
        assert canary["spec"] == {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}],
            "rules": [{"host": "shop.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {
                    "service": {"name": CANARY, "port": {"number": 8080}}}}]}}],
        }
        first_uid = meta["uid"]
        for weight in (25, 50, 100):
            setup.router.apply(weight)
            again = setup.kube.get_ingress(provider.canary_name)
            assert again is not None
            assert again["metadata"]["uid"] == first_uid, "updated in place, not recreated"
            assert again["spec"] == canary["spec"]
        setup.router.apply(0)
        assert setup.kube.get_ingress(provider.canary_name) is None


def test_labels_and_annotations_others_add_to_the_canary_ingress_are_kept(
    cluster: TestCluster, namespace: str,
) -> None:
    provider = Nginx()
    with set_up(cluster, namespace, provider) as setup:
        setup.router.apply(10)
        setup.kube.patch_ingress(provider.canary_name, {"metadata": {
            "labels": {"policy": "checked"},
            "annotations": {"webhook.example/seen": "yes",
                            "nginx.ingress.kubernetes.io/canary-by-header": "x-canary"}}})
        setup.router.apply(25)
        canary = setup.kube.get_ingress(provider.canary_name)
        assert canary is not None
        assert canary["metadata"]["labels"]["policy"] == "checked"
        annotations = canary["metadata"]["annotations"]
        assert annotations["webhook.example/seen"] == "yes"
        assert "nginx.ingress.kubernetes.io/canary-by-header" not in annotations, (
            "a routing annotation the router did not set is drift")
        assert annotations["nginx.ingress.kubernetes.io/canary-weight"] == "25"
