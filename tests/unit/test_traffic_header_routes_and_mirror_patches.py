"""What the routers write for header routes, mirrors and readiness, decided before any
call; and the plans validation refuses, naming the field."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import ApiClient, Configuration

from controller.adapters.traffic import GatewayAPIRouter, IstioRouter
from controller.adapters.traffic.matching import cookie_regex
from controller.adapters.traffic.nginx import match_annotations
from controller.api.plan import GatewayAPIRoute, IstioRoute, RouteMatch
from controller.api.validation import check_plan
from tests.harness import builders as b

HEADER = RouteMatch(header="X-Canary", exact="always")
COOKIE = RouteMatch(cookie="canary", exact="yes")


@pytest.fixture
def api() -> Iterator[ApiClient]:
    client = ApiClient(Configuration(host="https://127.0.0.1:9"))  # never called
    yield client
    client.close()  # type: ignore[no-untyped-call]


def http_route() -> dict[str, Any]:
    backends = [{"name": "web", "port": 80, "weight": 100},
                {"name": "web-canary", "port": 80, "weight": 0}]
    return {
        "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "7",
                     "generation": 3},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "rules": [
                {"name": "api", "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                 "timeouts": {"request": "5s"}, "backendRefs": copy.deepcopy(backends)},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
                 "backendRefs": [{"name": "web", "port": 80}]},
                {"backendRefs": copy.deepcopy(backends)},
            ]},
    }


def gateway(api: ApiClient, *matches: RouteMatch) -> GatewayAPIRouter:
    return GatewayAPIRouter(api, "shop", GatewayAPIRoute(
        http_route="web", stable_backend="web", canary_backend="web-canary"), matches=matches)


def test_every_weighted_rule_gets_a_header_rule_ahead_of_it_and_a_mirror(api: ApiClient
                                                                         ) -> None:
    router = gateway(api, HEADER, COOKIE)
    obj = http_route()
    rules = router.rebuild(obj, 10, 50, True)
    names = [r.get("name") for r in rules]
    assert names == ["rolloutctl-canary-0", "api", None, "rolloutctl-canary-1", None]
    first = rules[0]
    assert first["backendRefs"] == [{"name": "web-canary", "port": 80, "weight": 1}]
    assert first["timeouts"] == {"request": "5s"}  # the weighted rule's settings, copied
    assert first["matches"] == [
        {"path": {"type": "PathPrefix", "value": "/api"},
         "headers": [{"type": "Exact", "name": "X-Canary", "value": "always"}]},
        {"path": {"type": "PathPrefix", "value": "/api"},
         "headers": [{"type": "RegularExpression", "name": "Cookie",
                      "value": cookie_regex(COOKIE)}]},
    ]
    assert rules[1]["backendRefs"][0]["weight"] == 90 and rules[1]["backendRefs"][1][
        "weight"] == 10
    assert rules[1]["filters"] == [{"type": "RequestMirror", "requestMirror": {
        "backendRef": {"name": "web-canary", "port": 80}, "percent": 50}}]
    assert rules[2] == http_route()["spec"]["rules"][1]  # a stable-only rule: untouched
    obj["spec"]["rules"] = rules
    assert router.structure(obj) == (50, True)
    assert [s.current for s in router.locate(obj)] == [90, 10, 90, 10]
    back = router.rebuild(obj, 0, 0, False)
    want = http_route()["spec"]["rules"]
    assert back == want  # removing them gives the user's rules back


def test_mirror_at_100_percent_needs_no_percent_field(api: ApiClient) -> None:
    router = gateway(api)
    obj = http_route()
    obj["spec"]["rules"] = router.rebuild(obj, 0, 100, False)
    assert "percent" not in obj["spec"]["rules"][0]["filters"][0]["requestMirror"]
    assert router.structure(obj) == (100, False)


def parents(*conditions: tuple[str, str, int]) -> list[dict[str, Any]]:
    return [{"parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                           "name": "gw"}, "controllerName": "example.com/gw",
             "conditions": [{"type": t, "status": s, "observedGeneration": g,
                             "reason": "Accepted" if s == "True" else "NotAllowedByListeners",
                             "message": "listener http does not allow this namespace"
                             if s != "True" else ""} for t, s, g in conditions]}]


def test_gateway_readiness_needs_both_conditions_at_the_new_generation(api: ApiClient) -> None:
    router = gateway(api)
    obj = http_route()
    assert router.readiness(obj).ready is False  # no parent reported yet
    obj["status"] = {"parents": parents(("Accepted", "True", 2), ("ResolvedRefs", "True", 2))}
    late = router.readiness(obj)
    assert late.ready is False and not late.rejected and "generation 3" in late.message
    obj["status"] = {"parents": parents(("Accepted", "True", 3), ("ResolvedRefs", "True", 3))}
    assert router.readiness(obj).ready is True
    obj["status"] = {"parents": parents(("Accepted", "False", 3), ("ResolvedRefs", "True", 3))}
    refused = router.readiness(obj)
    assert refused.ready is False and refused.rejected
    assert "listener http does not allow this namespace" in refused.message
    del obj["spec"]["parentRefs"]
    assert router.readiness(obj).ready is None  # attached to nothing: nothing to wait for


def virtual_service() -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "5",
                     "generation": 2},
        "spec": {"hosts": ["web"], "http": [
            {"name": "health", "match": [{"uri": {"exact": "/healthz"}}],
             "route": [{"destination": {"host": "web"}}]},
            {"name": "primary", "retries": {"attempts": 2},
             "route": [{"destination": {"host": "web", "port": {"number": 80}}, "weight": 100},
                       {"destination": {"host": "web-canary", "port": {"number": 80}},
                        "weight": 0}]},
        ]},
    }


def test_istio_header_route_ahead_of_the_named_route_and_mirror(api: ApiClient) -> None:
    router = IstioRouter(api, "shop", IstioRoute(virtual_service="web", route="primary",
                                                 stable_host="web", canary_host="web-canary"),
                         matches=[RouteMatch(header="X-Canary", prefix="al"), COOKIE])
    obj = virtual_service()
    http = router.rebuild(obj, 25, 10, True)
    assert [h["name"] for h in http] == ["health", "primary-rolloutctl-canary", "primary"]
    added = http[1]
    assert added["route"] == [{"destination": {"host": "web-canary", "port": {"number": 80}},
                               "weight": 100}]
    assert added["retries"] == {"attempts": 2}
    assert added["match"] == [{"headers": {"x-canary": {"prefix": "al"}}},
                              {"headers": {"cookie": {"regex": cookie_regex(COOKIE)}}}]
    assert http[2]["mirror"] == {"host": "web-canary", "port": {"number": 80}}
    assert http[2]["mirrorPercentage"] == {"value": 10.0}
    obj["spec"]["http"] = http
    assert router.structure(obj) == (10, True)
    assert router.rebuild(obj, 0, 0, False) == virtual_service()["spec"]["http"]
    assert router.readiness(obj).ready is None  # no status.observedGeneration: Istio's default
    obj["status"] = {"observedGeneration": "1"}
    assert router.readiness(obj).ready is False
    obj["status"] = {"observedGeneration": 2}
    assert router.readiness(obj).ready is True


def test_the_cookie_expression_matches_only_that_cookie() -> None:
    pattern = re.compile(cookie_regex(COOKIE))
    assert pattern.match("canary=yes")
    assert pattern.match("a=1; canary=yes; b=2")
    assert not pattern.match("canary=yesno")
    assert not pattern.match("notcanary=yes")
    assert not pattern.match("canary=no")


def test_nginx_annotations() -> None:
    assert match_annotations([RouteMatch(header="X-Canary", regex="^al.*"),
                              RouteMatch(cookie="canary", exact="always")]) == {
        "nginx.ingress.kubernetes.io/canary-by-header": "X-Canary",
        "nginx.ingress.kubernetes.io/canary-by-header-pattern": "^al.*",
        "nginx.ingress.kubernetes.io/canary-by-cookie": "canary",
    }


@pytest.mark.parametrize(("router", "steps", "match", "path", "fragment"), [
    ({"replicas": {}}, None, [{"header": "X-Canary", "exact": "1"}], "spec.traffic.match",
     "replicas router cannot route by header"),
    ({"replicas": {}}, [{"mirror": 20, "hold": "1m"}, {"weight": 100, "hold": "1m"}], [],
     "spec.steps[0].mirror", "replicas router cannot mirror"),
    ({"nginx": {"ingress": "web", "canaryService": "web-canary"}},
     [{"mirror": 20, "hold": "1m"}, {"weight": 100, "hold": "1m"}], [],
     "spec.steps[0].mirror", "nginx router cannot mirror"),
    ({"nginx": {"ingress": "web", "canaryService": "web-canary"}}, None,
     [{"cookie": "canary", "exact": "yes"}], "spec.traffic.match[0]", "'always'"),
    ({"nginx": {"ingress": "web", "canaryService": "web-canary"}}, None,
     [{"header": "X-Canary", "prefix": "a"}], "spec.traffic.match[0].prefix", "no prefix"),
    (None, [{"weight": 10, "hold": "1m"}, {"mirror": 20, "hold": "1m"},
            {"weight": 100, "hold": "1m"}], [], "spec.steps[1].mirror",
     "mirror steps come before every weighted step"),
    (None, [{"weight": 10, "mirror": 20, "hold": "1m"}, {"weight": 100, "hold": "1m"}], [],
     "spec.steps[0]", "set exactly one of weight or mirror"),
])
def test_plans_the_router_cannot_express_are_refused_naming_the_field(
        router: dict[str, Any] | None, steps: list[dict[str, Any]] | None,
        match: list[dict[str, Any]], path: str, fragment: str) -> None:
    doc = b.plan_doc(router=router)
    if steps is not None:
        doc["spec"]["steps"] = steps
    if match:
        doc["spec"]["traffic"]["match"] = match
    _, problems = check_plan(doc)
    assert any(p.path == path and fragment in p.message for p in problems), problems


def test_header_rules_that_are_not_the_plans_are_rewritten_or_removed(api: ApiClient) -> None:
    old = gateway(api, RouteMatch(header="X-Old", exact="1"))
    obj = http_route()
    obj["spec"]["rules"] = old.rebuild(obj, 10, 0, True)
    new = gateway(api, HEADER)
    assert new.structure(obj) == (0, None)  # there, but not the plan's: never "done"
    assert new.structure({"spec": {"rules": new.rebuild(obj, 0, 0, False)}}) == (0, False)
    assert new.structure({"spec": {"rules": new.rebuild(obj, 10, 0, True)}}) == (0, True)
    assert gateway(api).structure(obj) == (0, None)  # the plan dropped spec.traffic.match


def test_istio_without_a_route_name_shifts_every_http_route_listing_both_hosts(
        api: ApiClient) -> None:
    router = IstioRouter(api, "shop", IstioRoute(virtual_service="web", stable_host="web",
                                                 canary_host="web-canary"), matches=[HEADER])
    obj = virtual_service()
    second = copy.deepcopy(obj["spec"]["http"][1])
    del second["name"]
    second["match"] = [{"uri": {"prefix": "/v2"}}]
    obj["spec"]["http"].append(second)
    assert [s.path for s in router.locate(obj)] == [
        "/spec/http/1/route/0/weight", "/spec/http/1/route/1/weight",
        "/spec/http/2/route/0/weight", "/spec/http/2/route/1/weight"]
    http = router.rebuild(obj, 10, 20, True)
    assert [h.get("name") for h in http] == [
        "health", "primary-rolloutctl-canary", "primary", "rolloutctl-canary-1", None]
    obj["spec"]["http"] = http
    assert router.structure(obj) == (20, True)
    assert {s.current for s in router.locate(obj) if s.track.value == "canary"} == {10}
