"""What the routers would write, decided before any call: only weight fields, guarded by
the resourceVersion read; nothing when the weight is already there; the canary Ingress
clone routes only what went to stable."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import ApiClient, Configuration

from controller.adapters.traffic import GatewayAPIRouter, IstioRouter, NginxRouter, Owner
from controller.adapters.traffic._weights import weight_patch
from controller.api.plan import GatewayAPIRoute, IstioRoute, NginxRoute
from controller.ports import RouterError


@pytest.fixture
def api() -> Iterator[ApiClient]:
    client = ApiClient(Configuration(host="https://127.0.0.1:9"))  # never called
    yield client
    client.close()  # type: ignore[no-untyped-call]


def http_route() -> dict[str, Any]:
    return {
        "metadata": {"name": "checkout", "namespace": "shop", "resourceVersion": "41"},
        "spec": {"rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
             "backendRefs": [{"name": "checkout", "port": 80}]},
            {"name": "main",
             "backendRefs": [{"name": "checkout", "port": 80, "weight": 100},
                             {"name": "other", "port": 80, "weight": 7},
                             {"name": "checkout-canary", "port": 80}]},
            {"backendRefs": [{"name": "checkout", "namespace": "elsewhere", "port": 80},
                             {"name": "checkout-canary", "port": 80, "weight": 0}]},
        ]},
    }


def apply_ops(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 add/replace/test on simple paths (all a weight patch contains)."""
    out = copy.deepcopy(obj)
    for op in ops:
        *parents, last = op["path"].lstrip("/").split("/")
        node: Any = out
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if op["op"] == "test":
            assert node[last] == op["value"]
        else:
            assert op["op"] in ("add", "replace")
            assert (last in node) == (op["op"] == "replace")
            node[last] = op["value"]
    return out


def test_the_gateway_patch_sets_only_the_two_weights_of_rules_listing_both(
    api: ApiClient,
) -> None:
    router = GatewayAPIRouter(api, "shop", GatewayAPIRoute(
        http_route="checkout", stable_backend="checkout", canary_backend="checkout-canary"))
    route = http_route()
    ops = weight_patch("41", router.locate(route), 25)
    assert ops[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "41"}
    assert ops[1:] == [
        {"op": "replace", "path": "/spec/rules/1/backendRefs/0/weight", "value": 75},
        {"op": "add", "path": "/spec/rules/1/backendRefs/2/weight", "value": 25},
    ]
    after = apply_ops(route, ops)
    expected = http_route()
    expected["spec"]["rules"][1]["backendRefs"][0]["weight"] = 75
    expected["spec"]["rules"][1]["backendRefs"][2]["weight"] = 25
    assert after == expected
    # already there: nothing to write
    assert weight_patch("42", router.locate(after), 25) == []


def test_gateway_without_the_canary_next_to_stable_says_which_backend_to_add(
    api: ApiClient,
) -> None:
    router = GatewayAPIRouter(api, "shop", GatewayAPIRoute(
        http_route="checkout", stable_backend="checkout", canary_backend="missing"))
    with pytest.raises(RouterError) as err:
        router.locate(http_route())
    assert err.value.reason == "BackendNotFound"
    assert "HTTPRoute shop/checkout" in err.value.message
    assert "{name: missing, port: <port>, weight: 0}" in err.value.message


def test_gateway_without_the_stable_backend_names_both(api: ApiClient) -> None:
    router = GatewayAPIRouter(api, "shop", GatewayAPIRoute(
        http_route="checkout", stable_backend="nope", canary_backend="checkout-canary"))
    with pytest.raises(RouterError) as err:
        router.locate(http_route())
    assert err.value.reason == "BackendNotFound"
    assert "Service nope (stable)" in err.value.message


def test_the_istio_patch_sets_the_two_destinations_of_the_named_route(
    api: ApiClient,
) -> None:
    router = IstioRouter(api, "shop", IstioRoute(
        virtual_service="checkout", route="primary", stable_host="a", canary_host="b"))
    vs = {"metadata": {"resourceVersion": "7"}, "spec": {"http": [
        {"name": "other", "route": [{"destination": {"host": "a"}, "weight": 100}]},
        {"name": "primary", "route": [{"destination": {"host": "a"}, "weight": 100},
                                      {"destination": {"host": "b"}}]},
    ]}}
    ops = weight_patch("7", router.locate(vs), 10)
    assert ops[1:] == [
        {"op": "replace", "path": "/spec/http/1/route/0/weight", "value": 90},
        {"op": "add", "path": "/spec/http/1/route/1/weight", "value": 10},
    ]
    with pytest.raises(RouterError) as err:
        IstioRouter(api, "shop", IstioRoute(
            virtual_service="checkout", route="nope", stable_host="a", canary_host="b",
        )).locate(vs)
    assert err.value.reason == "RouteNotFound"
    assert "'other', 'primary'" in err.value.message


def test_the_canary_ingress_routes_only_what_went_to_stable(api: ApiClient) -> None:
    router = NginxRouter(api, "shop", NginxRoute(
        ingress="web", stable_service="checkout", canary_service="checkout-canary"),
        Owner("rolloutctl.dev/v1alpha1", "RolloutPlan", "checkout", "uid-1"))
    primary: dict[str, Any] = {
        "metadata": {"name": "web", "annotations": {"kubernetes.io/ingress.class": "nginx",
                                                     "nginx.ingress.kubernetes.io/x": "y"}},
        "spec": {"tls": [{"hosts": ["shop.example"], "secretName": "tls"}], "rules": [
            {"host": "shop.example", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {
                    "service": {"name": "checkout", "port": {"name": "http"}}}},
                {"path": "/img", "pathType": "Prefix", "backend": {
                    "service": {"name": "images", "port": {"number": 80}}}},
            ]}},
            {"host": "static.example", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {
                    "service": {"name": "images", "port": {"number": 80}}}}]}},
        ]},
    }
    canary = router.desired_canary(primary, 25)
    assert canary["metadata"] == {
        "name": "web-canary", "namespace": "shop",
        "labels": {"app.kubernetes.io/managed-by": "rolloutctl"},
        "annotations": {"nginx.ingress.kubernetes.io/canary": "true",
                        "nginx.ingress.kubernetes.io/canary-weight": "25",
                        "kubernetes.io/ingress.class": "nginx"},
        "ownerReferences": [{"apiVersion": "rolloutctl.dev/v1alpha1", "kind": "RolloutPlan",
                             "name": "checkout", "uid": "uid-1", "controller": True}],
    }
    assert canary["spec"] == {
        "tls": [{"hosts": ["shop.example"], "secretName": "tls"}],
        "rules": [{"host": "shop.example", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {
                "service": {"name": "checkout-canary", "port": {"name": "http"}}}}]}}],
    }
    assert primary["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == (
        "checkout"), "the primary is never modified"

    elsewhere = NginxRouter(api, "shop", NginxRoute(
        ingress="web", stable_service="absent", canary_service="checkout-canary"),
        Owner("rolloutctl.dev/v1alpha1", "RolloutPlan", "checkout", "uid-1"))
    with pytest.raises(RouterError) as err:
        elsewhere.desired_canary(primary, 25)
    assert err.value.reason == "BackendNotFound"
    assert "Ingress shop/web" in err.value.message and "Service absent" in err.value.message
