"""A plan gets the router its spec.traffic names, or the null router when it names none."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import ApiClient, Configuration

from controller.adapters.traffic import (
    GatewayAPIRouter,
    IstioRouter,
    NginxRouter,
    NullRouter,
    ReplicaRouter,
    router_for,
)
from controller.api.plan import RolloutPlan
from controller.ports import RouterError, TrafficRouter

TRAFFIC: dict[str, dict[str, Any]] = {
    "gatewayAPI": {"httpRoute": "checkout", "stableBackend": "checkout",
                   "canaryBackend": "checkout-canary"},
    "istio": {"virtualService": "checkout", "route": "primary",
              "stableHost": "checkout", "canaryHost": "checkout-canary"},
    "nginx": {"ingress": "checkout", "canaryService": "checkout-canary"},
    "replicas": {"totalReplicas": 10},
}


def plan(traffic: dict[str, Any], uid: str | None = "6c1d6c1e-0000-4000-8000-000000000001",
         canary_weight: int = 0) -> RolloutPlan:
    metadata: dict[str, Any] = {"name": "checkout", "namespace": "shop"}
    if uid is not None:
        metadata["uid"] = uid
    return RolloutPlan.model_validate({
        "metadata": metadata,
        "spec": {"target": {"stable": {"name": "checkout"},
                            "canary": {"name": "checkout-canary"}},
                 "traffic": traffic},
        "status": {"canaryWeight": canary_weight},
    })


@pytest.fixture
def api() -> Iterator[ApiClient]:
    # never used to connect: building a router makes no call
    client = ApiClient(Configuration(host="https://127.0.0.1:9"))
    yield client
    client.close()  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(("kind", "router_type"), [
    ("gatewayAPI", GatewayAPIRouter),
    ("istio", IstioRouter),
    ("nginx", NginxRouter),
    ("replicas", ReplicaRouter),
])
def test_each_router_kind_gets_its_provider(kind: str, router_type: type,
                                            api: ApiClient) -> None:
    router: TrafficRouter = router_for(plan({kind: TRAFFIC[kind]}), api)
    assert isinstance(router, router_type)


def test_the_nginx_canary_ingress_is_owned_by_the_plan(api: ApiClient) -> None:
    router = router_for(plan({"nginx": TRAFFIC["nginx"]}), api)
    assert isinstance(router, NginxRouter)
    assert router.owner.reference() == {
        "apiVersion": "rolloutctl.dev/v1alpha1", "kind": "RolloutPlan", "name": "checkout",
        "uid": "6c1d6c1e-0000-4000-8000-000000000001", "controller": True,
    }
    assert router.canary.name == "checkout-canary"


def test_an_nginx_plan_without_a_uid_is_refused_with_the_reason(api: ApiClient) -> None:
    with pytest.raises(RouterError) as err:
        router_for(plan({"nginx": TRAFFIC["nginx"]}, uid=None), api)
    assert err.value.reason == "InvalidSpec"
    assert "metadata.uid" in err.value.message


def test_a_plan_naming_two_routers_is_refused(api: ApiClient) -> None:
    with pytest.raises(RouterError) as err:
        router_for(plan({"istio": TRAFFIC["istio"], "replicas": {}}), api)
    assert err.value.reason == "InvalidSpec"
    assert "istio, replicas" in err.value.message


def test_istio_stable_and_canary_on_one_host_is_refused(api: ApiClient) -> None:
    same = {**TRAFFIC["istio"], "canaryHost": "checkout"}
    with pytest.raises(RouterError) as err:
        router_for(plan({"istio": same}), api)
    assert err.value.reason == "InvalidSpec"


def test_without_a_router_the_null_router_keeps_the_weight_it_is_told(
    api: ApiClient,
) -> None:
    router = router_for(plan({}, canary_weight=25), api)
    assert isinstance(router, NullRouter)
    assert router.observe().weight == 25  # what the plan's status says was set
    assert router.apply(50) == 50
    assert router.observe().weight == 50
    assert router.verify(50)
    assert not router.verify(25)
    router.restore()
    assert router.observe().weight == 0
    assert router.verify(0)


@pytest.mark.parametrize("weight", [-1, 101])
def test_a_weight_outside_0_to_100_is_refused(weight: int, api: ApiClient) -> None:
    with pytest.raises(RouterError) as err:
        NullRouter().apply(weight)
    assert err.value.reason == "InvalidSpec"
    router = router_for(plan({"gatewayAPI": TRAFFIC["gatewayAPI"]}), api)
    with pytest.raises(RouterError):  # refused before any call to the (absent) server
        router.apply(weight)


def test_an_unreachable_api_server_is_a_router_error_not_a_urllib3_one(
    api: ApiClient,
) -> None:
    for kind in TRAFFIC:
        router = router_for(plan({kind: TRAFFIC[kind]}), api)
        with pytest.raises(RouterError) as err:
            router.apply(10)
        assert err.value.reason == "ApiError", kind
        assert "cannot reach the API server" in err.value.message
        observed = router.observe()
        assert observed.weight is None
        assert observed.reason == "ApiError"
