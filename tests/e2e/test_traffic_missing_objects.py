"""A missing route, backend, Ingress or Deployment is a RouterError with a CamelCase reason
and a message naming the object and the fix; never another exception, never a crash."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from controller.adapters.traffic import IstioRouter, router_for
from controller.api.plan import RolloutPlan
from controller.ports import RouterError, TrafficRouter
from tests.harness.fixtures import TestCluster

from .test_traffic_harness import (
    CANARY,
    STABLE,
    VIRTUALSERVICES,
    GatewayAPI,
    Istio,
    Kube,
    Nginx,
    Replicas,
)

pytestmark = pytest.mark.cluster


@pytest.fixture
def kube(cluster: TestCluster, namespace: str) -> Iterator[Kube]:
    api = cluster.api_client()
    yield Kube(api, namespace)
    api.close()  # type: ignore[no-untyped-call]


def router(kube: Kube, traffic: dict[str, Any]) -> TrafficRouter:
    return router_for(kube.create_plan(traffic), kube.api)


def assert_reported(r: TrafficRouter, reason: str, *names: str,
                    calls: tuple[str, ...] = ("apply", "verify")) -> None:
    """Every call in CALLS raises RouterError(REASON) naming NAMES; observe() reports it."""
    actions: dict[str, Callable[[], object]] = {
        "apply": lambda: r.apply(10), "verify": lambda: r.verify(10), "restore": r.restore}
    for call in calls:
        with pytest.raises(RouterError) as err:
            actions[call]()
        assert err.value.reason == reason, (call, err.value.message)
        for name in names:
            assert name in err.value.message, (call, err.value.message)
    observed = r.observe()
    assert (observed.weight, observed.reason) == (None, reason)
    for name in names:
        assert name in observed.message


# ------------------------------------------------------------------ Gateway API


def test_a_missing_httproute(kube: Kube) -> None:
    r = router(kube, GatewayAPI.traffic)
    assert_reported(r, "RouteNotFound", f"HTTPRoute {kube.ns}/checkout",
                    "spec.traffic.gatewayAPI.httpRoute",
                    calls=("apply", "verify", "restore"))


def test_an_httproute_without_the_canary_backend(kube: Kube) -> None:
    kube.create_custom(("gateway.networking.k8s.io", "v1", "httproutes"),
                       GatewayAPI.route(canary_backend=False))
    r = router(kube, GatewayAPI.traffic)
    assert_reported(r, "BackendNotFound", f"HTTPRoute {kube.ns}/checkout", CANARY,
                    f"{{name: {CANARY}, port: <port>, weight: 0}}")


# ------------------------------------------------------------------ Istio


def test_a_missing_virtualservice(kube: Kube) -> None:
    r = router(kube, Istio.traffic)
    assert_reported(r, "RouteNotFound", f"VirtualService {kube.ns}/checkout",
                    calls=("apply", "verify", "restore"))


def test_a_virtualservice_without_the_named_http_route(kube: Kube) -> None:
    kube.create_custom(VIRTUALSERVICES, Istio.virtual_service())
    traffic = {"istio": {**Istio.traffic["istio"], "route": "no-such-route"}}
    r = router(kube, traffic)
    assert_reported(r, "RouteNotFound", f"VirtualService {kube.ns}/checkout",
                    "'no-such-route'", "'admin', 'primary'")


def test_a_virtualservice_without_the_canary_destination(kube: Kube) -> None:
    kube.create_custom(VIRTUALSERVICES, Istio.virtual_service(canary_destination=False))
    r = router(kube, Istio.traffic)
    assert_reported(r, "BackendNotFound", f"VirtualService {kube.ns}/checkout",
                    f"canary host {CANARY}.shop.svc.cluster.local")


def test_an_api_version_the_server_does_not_serve(kube: Kube) -> None:
    class FutureIstio(IstioRouter):
        version = "v9"

    kube.create_custom(VIRTUALSERVICES, Istio.virtual_service())
    plan = kube.create_plan(Istio.traffic)
    assert plan.spec.traffic.istio is not None
    r = FutureIstio(kube.api, kube.ns, plan.spec.traffic.istio)
    assert_reported(r, "ApiNotServed", "networking.istio.io/v9 VirtualService", "CRD")


# ------------------------------------------------------------------ NGINX


def test_a_missing_primary_ingress(kube: Kube) -> None:
    r = router(kube, Nginx.traffic)
    with pytest.raises(RouterError) as err:
        r.apply(10)
    assert err.value.reason == "IngressNotFound"
    assert f"Ingress {kube.ns}/web" in err.value.message
    assert "spec.traffic.nginx.ingress" in err.value.message
    # no canary Ingress was made, so all traffic is on the primary: weight 0
    assert r.observe().weight == 0
    assert r.verify(0)
    r.restore()


def test_a_primary_ingress_that_does_not_route_to_the_stable_service(kube: Kube) -> None:
    kube.create_ingress(Nginx.ingress(stable_backend=False))
    r = router(kube, Nginx.traffic)
    with pytest.raises(RouterError) as err:
        r.apply(10)
    assert err.value.reason == "BackendNotFound"
    assert f"Ingress {kube.ns}/web" in err.value.message
    assert f"Service {STABLE}" in err.value.message
    assert kube.get_ingress("web-canary") is None


def test_an_ingress_named_like_the_canary_but_not_ours_is_left_alone(kube: Kube) -> None:
    kube.create_ingress(Nginx.ingress())
    theirs = Nginx.ingress()
    theirs["metadata"]["name"] = "web-canary"
    kube.create_ingress(theirs)
    before = kube.get_ingress("web-canary")
    assert before is not None
    r = router(kube, Nginx.traffic)
    for call in (lambda: r.apply(10), r.restore):
        with pytest.raises(RouterError) as err:
            call()
        assert err.value.reason == "IngressNotOwned"
        assert f"Ingress {kube.ns}/web-canary" in err.value.message
    after = kube.get_ingress("web-canary")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert r.observe().reason == "IngressNotOwned"


# ------------------------------------------------------------------ replica ratio


def test_a_missing_canary_deployment(kube: Kube) -> None:
    kube.create_deployment(STABLE, 2)
    r = router(kube, Replicas.traffic)
    assert_reported(r, "DeploymentNotFound", f"Deployment {kube.ns}/{CANARY}",
                    "spec.target.canary.name")
    r.restore()  # a canary that does not exist serves nothing: restored already


def test_a_missing_stable_deployment(kube: Kube) -> None:
    kube.create_deployment(CANARY, 0)
    r = router(kube, Replicas.traffic)
    assert_reported(r, "DeploymentNotFound", f"Deployment {kube.ns}/{STABLE}",
                    "spec.target.stable.name")
    r.restore()  # rollback needs only the canary
    assert r.apply(0) == 0


def test_a_namespace_that_does_not_exist(cluster: TestCluster) -> None:
    """Nothing there at all: each router says what is missing (a kubernetes ApiException
    escaping would fail the test, as pytest.raises catches only RouterError)."""
    api = cluster.api_client()
    try:
        for traffic in (GatewayAPI.traffic, Istio.traffic, Nginx.traffic, Replicas.traffic):
            plan = RolloutPlan.model_validate({
                "metadata": {"name": "p", "namespace": "no-such-namespace",
                             "uid": "00000000-0000-4000-8000-00000000000a"},
                "spec": {"target": {"stable": {"name": STABLE}, "canary": {"name": CANARY}},
                         "traffic": traffic},
            })
            with pytest.raises(RouterError) as err:
                router_for(plan, api).apply(10)
            assert err.value.reason.endswith("NotFound"), err.value.message
            assert "no-such-namespace/" in err.value.message
    finally:
        api.close()  # type: ignore[no-untyped-call]
