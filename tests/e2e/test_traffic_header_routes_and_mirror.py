"""Header routes, mirrors and ready routes on the real API server with the routers' real
CRDs (Gateway API standard AND experimental channel, Istio), as the chart's service
account: every weighted rule gets its header rule ahead of it and its mirror, the user's
other rules and fields are kept, removing them gives the route back, the parents' status is
read at the route's generation, and a concurrent writer is a Conflict that writes nothing.

No Gateway controller runs here: the test writes the route's status as one would
(``tests.harness.traffic.accept_route``).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from controller.adapters.traffic import router_for
from controller.api.plan import RolloutPlan
from controller.ports import RouterError, TrafficRouter
from tests.harness import cluster as cluster_mod
from tests.harness.cluster import CONTROLLER_USER
from tests.harness.fixtures import TestCluster, install_crds, unavailable
from tests.harness.traffic import accept_route

from .test_chart_harness import chart_rbac
from .test_traffic_harness import (
    CANARY,
    HTTPROUTES,
    STABLE,
    VIRTUALSERVICES,
    Kube,
    eventually,
    without_volatile,
)

pytestmark = pytest.mark.cluster

MATCH = [{"header": "X-Canary", "exact": "always"}, {"cookie": "canary", "regex": "yes|1"}]
HTTPROUTE_CRD = "gateway.networking.k8s.io_httproutes.yaml"


def gateway_api_version() -> str:
    script = (cluster_mod.REPO_DIR / "tools" / "build-control-plane.sh").read_text()
    found = re.search(r'^GATEWAY_API_VERSION="(v[^"]+)"', script, re.M)
    assert found, "GATEWAY_API_VERSION not found in tools/build-control-plane.sh"
    return found.group(1)


def experimental_httproute_crd() -> Path:
    """The experimental channel's HTTPRoute CRD, from the Go module cache (the same module
    version the build script takes the standard one from; no rebuild of anything)."""
    go = shutil.which("go")
    if go is None:
        unavailable("no go on PATH: cannot fetch the experimental Gateway API CRDs")
    module = f"sigs.k8s.io/gateway-api@{gateway_api_version()}"
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run([go, "mod", "download", "-json", module], cwd=tmp,
                                capture_output=True, text=True, timeout=300, check=False,
                                env={**_go_env(), "GOFLAGS": "-mod=mod"})
    if result.returncode != 0:
        unavailable(f"go mod download {module} failed: {result.stderr.strip()[:300]}")
    path = Path(json.loads(result.stdout)["Dir"]) / "config/crd/experimental" / HTTPROUTE_CRD
    if not path.is_file():
        unavailable(f"{path} is missing from the module")
    return path


def _go_env() -> dict[str, str]:
    import os

    return {**os.environ, "GOTOOLCHAIN": "local", "GOWORK": "off"}


@pytest.fixture(params=["standard", "experimental"])
def channel(request: pytest.FixtureRequest, cluster: TestCluster) -> Iterator[str]:
    """The HTTPRoute CRD of that channel installed; the standard one put back after."""
    if request.param == "standard":
        yield "standard"
        return
    api = cluster.api_client()
    try:
        install_crds(api, [experimental_httproute_crd()])
        yield "experimental"
    finally:
        install_crds(api, [cluster_mod.crd_dir() / HTTPROUTE_CRD])
        api.close()  # type: ignore[no-untyped-call]


def route(channel: str) -> dict[str, Any]:
    """Two rules that shift (each listing both Services), a stable-only rule, a rule to
    another backend; experimental fields where the channel has them."""
    def shifting() -> list[dict[str, Any]]:
        return [{"name": STABLE, "port": 8080, "weight": 100},
                {"name": CANARY, "port": 8080, "weight": 0}]
    main: dict[str, Any] = {
        "name": "main",
        "matches": [{"path": {"type": "PathPrefix", "value": "/"},
                     "headers": [{"name": "x-env", "value": "prod"}]}],
        "timeouts": {"request": "10s"}, "backendRefs": shifting()}
    if channel == "experimental":
        main["retry"] = {"attempts": 2, "codes": [503]}
    return {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "checkout", "labels": {"team": "payments"}},
        "spec": {
            "parentRefs": [{"name": "public", "sectionName": "https"}],
            "hostnames": ["shop.example.com"],
            "rules": [
                {"name": "admin",
                 "matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
                 "backendRefs": [{"name": STABLE, "port": 8080}]},
                main,
                {"name": "api",
                 "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                 "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
                     "add": [{"name": "x-api", "value": "1"}]}}],
                 "backendRefs": shifting()},
                {"name": "images",
                 "matches": [{"path": {"type": "PathPrefix", "value": "/img"}}],
                 "backendRefs": [{"name": "images", "port": 80, "weight": 3}]},
            ],
        },
    }


def create_plan(kube: Kube, traffic: dict[str, Any]) -> RolloutPlan:
    body = {
        "apiVersion": "rolloutctl.dev/v1alpha1", "kind": "RolloutPlan",
        "metadata": {"name": "checkout"},
        "spec": {"target": {"stable": {"name": STABLE}, "canary": {"name": CANARY}},
                 "traffic": {**traffic, "match": MATCH},
                 "steps": [{"mirror": 50, "hold": "1m"}, {"weight": 10, "hold": "1m"},
                           {"weight": 100, "hold": "1m"}]},
    }
    stored = kube.create_custom(("rolloutctl.dev", "v1alpha1", "rolloutplans"), body)
    return RolloutPlan.model_validate(stored)


def weights_removed(obj: dict[str, Any], rules_key: str, refs_key: str) -> dict[str, Any]:
    out = without_volatile(obj)
    for rule in out["spec"][rules_key]:
        for ref in rule.get(refs_key) or []:
            ref.pop("weight", None)
    return out


@contextmanager
def as_the_chart(cluster: TestCluster, tmp_path: Path, namespace: str,
                 plan: RolloutPlan) -> Iterator[TrafficRouter]:
    sa = cluster.api_client(CONTROLLER_USER)
    try:
        with chart_rbac(cluster, tmp_path, {"watchNamespaces": [namespace]}):
            router = router_for(plan, sa)
            eventually(lambda: _assert(router.observe().weight == 0))  # the Role is in force
            yield router
    finally:
        sa.close()  # type: ignore[no-untyped-call]


def _assert(ok: bool) -> None:
    assert ok


def race_after_first_read(router: TrafficRouter, monkeypatch: pytest.MonkeyPatch,
                          write: Callable[[], None]) -> None:
    original: Callable[..., Any] = router._read  # type: ignore[attr-defined]
    raced = False

    def read_then_someone_writes(*args: Any) -> Any:
        nonlocal raced
        obj = original(*args)
        if not raced:
            raced = True
            write()
        return obj

    monkeypatch.setattr(router, "_read", read_then_someone_writes)


def test_gateway_api_header_routes_mirror_and_parents_as_the_charts_identity(
    channel: str, cluster: TestCluster, namespace: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = cluster.api_client()
    try:
        kube = Kube(admin, namespace)
        kube.create_custom(HTTPROUTES, route(channel))
        before = weights_removed(kube.get_custom(HTTPROUTES, "checkout"), "rules",
                                 "backendRefs")
        if channel == "experimental":
            assert before["spec"]["rules"][1]["retry"]["attempts"] == 2  # served, not pruned
        plan = create_plan(kube, {"gatewayAPI": {
            "httpRoute": "checkout", "stableBackend": STABLE, "canaryBackend": CANARY}})
        with as_the_chart(cluster, tmp_path, namespace, plan) as router:
            # a mirror step: weight 0, half the requests copied, testers to the canary
            router.apply(0, mirror=50, match=True)
            assert router.verify(0, mirror=50, match=True)
            got = kube.get_custom(HTTPROUTES, "checkout")
            names = [r.get("name") for r in got["spec"]["rules"]]
            assert names == ["admin", "rolloutctl-canary-0", "main", "rolloutctl-canary-1",
                             "api", "images"]
            for i in (2, 4):  # every weighted rule mirrors, with the served percent field
                mirrors = [f for f in got["spec"]["rules"][i]["filters"]
                           if f["type"] == "RequestMirror"]
                assert mirrors[0]["requestMirror"]["percent"] == 50
                assert mirrors[0]["requestMirror"]["backendRef"]["name"] == CANARY
            header_rule = got["spec"]["rules"][1]
            assert [r["name"] for r in header_rule["backendRefs"]] == [CANARY]
            assert {h["name"] for m in header_rule["matches"] for h in m["headers"]} == {
                "x-env", "X-Canary", "Cookie"}
            if channel == "experimental":
                assert header_rule["retry"]["attempts"] == 2
            seen = router.observe()
            assert (seen.weight, seen.mirror, seen.match) == (0, 50, True)
            assert seen.ready is False and "has not reported" in seen.ready_message

            # the Gateway accepts this generation: ready
            accept_route(kube.objects, namespace, "checkout")
            assert router.observe().ready is True

            # the first weighted step: the mirror goes, the weights move in both rules
            router.apply(10, match=True)
            got = kube.get_custom(HTTPROUTES, "checkout")
            for i in (2, 4):
                rule = got["spec"]["rules"][i]
                assert [r["weight"] for r in rule["backendRefs"]] == [90, 10]
                assert all(f["type"] != "RequestMirror" for f in rule.get("filters", []))
            seen = router.observe()
            assert (seen.weight, seen.mirror, seen.match) == (10, 0, True)
            assert seen.ready is False  # a new generation: the old acceptance is not enough
            assert "generation" in seen.ready_message

            # a parent refusing it is reported with its own words
            kube.objects.patch_namespaced_custom_object_status(
                *HTTPROUTES[:2], namespace, HTTPROUTES[2], "checkout", {"status": {"parents": [{
                    "parentRef": {"name": "public", "sectionName": "https"},
                    "controllerName": "example.com/gateway",
                    "conditions": [
                        {"type": "Accepted", "status": "False", "reason": "NotAllowedByListeners",
                         "message": "listener https allows no routes from this namespace",
                         "observedGeneration": got["metadata"]["generation"],
                         "lastTransitionTime": "2026-12-06T00:00:00Z"},
                        {"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs",
                         "message": "", "observedGeneration": got["metadata"]["generation"],
                         "lastTransitionTime": "2026-12-06T00:00:00Z"}]}]}},
                _content_type="application/merge-patch+json")
            seen = router.observe()
            assert seen.ready is False and seen.rejected
            assert "listener https allows no routes from this namespace" in seen.ready_message

            # a concurrent writer while the structure changes: Conflict, nothing written
            def someone_writes() -> None:
                kube.patch_custom(HTTPROUTES, "checkout", {"metadata": {"labels": {
                    "synced": "yes"}}})
            race_after_first_read(router, monkeypatch, someone_writes)
            untouched = kube.get_custom(HTTPROUTES, "checkout")
            with pytest.raises(RouterError) as err:
                router.apply(0)
            assert err.value.reason == "Conflict"
            after = kube.get_custom(HTTPROUTES, "checkout")
            assert after["metadata"]["labels"]["synced"] == "yes"
            assert [r.get("name") for r in after["spec"]["rules"]][1] == "rolloutctl-canary-0"
            # only the other writer's label landed: the spec (and so its generation) is as
            # it was (resourceVersions are cluster-wide: other objects move them too)
            assert after["spec"] == untouched["spec"]
            assert after["metadata"]["generation"] == untouched["metadata"]["generation"]
            monkeypatch.undo()

            # rollback: everything the router added is gone, the user's route is back
            router.restore()
            assert router.verify(0)
            got = kube.get_custom(HTTPROUTES, "checkout")
            restored = weights_removed(got, "rules", "backendRefs")
            restored["metadata"]["labels"].pop("synced")
            assert restored == before
            assert [[r["weight"] for r in got["spec"]["rules"][i]["backendRefs"]]
                    for i in (1, 2)] == [[100, 0], [100, 0]]
    finally:
        admin.close()  # type: ignore[no-untyped-call]


def virtual_service() -> dict[str, Any]:
    stable = f"{STABLE}.shop.svc.cluster.local"
    canary = f"{CANARY}.shop.svc.cluster.local"
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "checkout", "labels": {"app": "checkout"}},
        "spec": {
            "hosts": ["shop.example.com"],
            "gateways": ["istio-system/public"],
            "http": [
                {"name": "admin", "match": [{"uri": {"prefix": "/admin"}}],
                 "route": [{"destination": {"host": stable}}]},
                {"name": "primary",
                 "match": [{"uri": {"prefix": "/"}}],
                 "retries": {"attempts": 3, "perTryTimeout": "2s"},
                 "timeout": "10s",
                 "route": [
                     {"destination": {"host": stable, "port": {"number": 8080}}, "weight": 100},
                     {"destination": {"host": canary, "port": {"number": 8080}}, "weight": 0}]},
            ],
        },
    }


def test_istio_header_route_mirror_and_observed_generation_as_the_charts_identity(
    cluster: TestCluster, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = cluster.api_client()
    canary = f"{CANARY}.shop.svc.cluster.local"
    try:
        kube = Kube(admin, namespace)
        kube.create_custom(VIRTUALSERVICES, virtual_service())
        before = weights_removed(kube.get_custom(VIRTUALSERVICES, "checkout"), "http", "route")
        plan = create_plan(kube, {"istio": {
            "virtualService": "checkout", "route": "primary",
            "stableHost": f"{STABLE}.shop.svc.cluster.local", "canaryHost": canary}})
        with as_the_chart(cluster, tmp_path, namespace, plan) as router:
            assert router.observe().ready is None  # no status: Istio reports nothing here
            router.apply(0, mirror=50, match=True)
            assert router.verify(0, mirror=50, match=True)
            got = kube.get_custom(VIRTUALSERVICES, "checkout")
            http = got["spec"]["http"]
            assert [h["name"] for h in http] == ["admin", "primary-rolloutctl-canary", "primary"]
            assert http[2]["mirror"] == {"host": canary, "port": {"number": 8080}}
            assert http[2]["mirrorPercentage"] == {"value": 50}
            assert http[1]["route"] == [{"destination": {"host": canary,
                                                         "port": {"number": 8080}},
                                         "weight": 100}]
            assert http[1]["match"][0]["headers"]["x-canary"] == {"exact": "always"}
            assert http[1]["match"][0]["uri"] == {"prefix": "/"}
            assert http[1]["retries"] == {"attempts": 3, "perTryTimeout": "2s"}

            # Istio with status reporting on: ready once it has seen this generation
            generation = got["metadata"]["generation"]
            kube.objects.patch_namespaced_custom_object_status(
                *VIRTUALSERVICES[:2], namespace, VIRTUALSERVICES[2], "checkout",
                {"status": {"observedGeneration": str(generation - 1)}},
                _content_type="application/merge-patch+json")
            seen = router.observe()
            assert (seen.weight, seen.mirror, seen.match, seen.ready) == (0, 50, True, False)
            kube.objects.patch_namespaced_custom_object_status(
                *VIRTUALSERVICES[:2], namespace, VIRTUALSERVICES[2], "checkout",
                {"status": {"observedGeneration": generation}},
                _content_type="application/merge-patch+json")
            assert router.observe().ready is True

            router.apply(10, match=True)
            http = kube.get_custom(VIRTUALSERVICES, "checkout")["spec"]["http"]
            assert "mirror" not in http[2] and [d["weight"] for d in http[2]["route"]] == [
                90, 10]
            assert router.observe().ready is False

            def someone_writes() -> None:
                kube.patch_custom(VIRTUALSERVICES, "checkout", {"metadata": {"labels": {
                    "synced": "yes"}}})
            race_after_first_read(router, monkeypatch, someone_writes)
            with pytest.raises(RouterError) as err:
                router.apply(0)
            assert err.value.reason == "Conflict"
            assert kube.get_custom(VIRTUALSERVICES, "checkout")["spec"]["http"][1][
                "name"] == "primary-rolloutctl-canary"
            monkeypatch.undo()

            router.restore()
            restored = weights_removed(kube.get_custom(VIRTUALSERVICES, "checkout"), "http",
                                       "route")
            restored["metadata"]["labels"].pop("synced")
            assert restored == before
    finally:
        admin.close()  # type: ignore[no-untyped-call]


def test_nginx_header_and_cookie_annotations_as_the_charts_identity(
    cluster: TestCluster, namespace: str, tmp_path: Path,
) -> None:
    admin = cluster.api_client()
    try:
        kube = Kube(admin, namespace)
        kube.create_ingress({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "checkout"},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": "shop.example.com",
                     "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
                         "service": {"name": STABLE, "port": {"number": 8080}}}}]}}]}})
        body = {
            "apiVersion": "rolloutctl.dev/v1alpha1", "kind": "RolloutPlan",
            "metadata": {"name": "checkout"},
            "spec": {"target": {"stable": {"name": STABLE}, "canary": {"name": CANARY}},
                     "traffic": {"nginx": {"ingress": "checkout", "canaryService": CANARY},
                                 "match": [{"header": "X-Canary", "regex": "^al.*"},
                                           {"cookie": "canary", "exact": "always"}]}},
        }
        plan = RolloutPlan.model_validate(
            kube.create_custom(("rolloutctl.dev", "v1alpha1", "rolloutplans"), body))
        with as_the_chart(cluster, tmp_path, namespace, plan) as router:
            router.apply(10, match=True)
            assert router.verify(10, match=True)
            canary = kube.get_ingress("checkout-canary")
            assert canary is not None
            annotations = canary["metadata"]["annotations"]
            prefix = "nginx.ingress.kubernetes.io/"
            assert annotations[prefix + "canary-by-header"] == "X-Canary"
            assert annotations[prefix + "canary-by-header-pattern"] == "^al.*"
            assert annotations[prefix + "canary-by-cookie"] == "canary"
            assert router.observe().match is True
            with pytest.raises(RouterError):
                router.apply(0, mirror=20)
            router.restore()
            assert kube.get_ingress("checkout-canary") is None
    finally:
        admin.close()  # type: ignore[no-untyped-call]


def test_the_api_server_refuses_what_the_schema_forbids(cluster: TestCluster,
                                                        namespace: str) -> None:
    admin = cluster.api_client()
    try:
        kube = Kube(admin, namespace)
        body = {
            "apiVersion": "rolloutctl.dev/v1alpha1", "kind": "RolloutPlan",
            "metadata": {"name": "bad"},
            "spec": {"target": {"stable": {"name": STABLE}, "canary": {"name": CANARY}},
                     "traffic": {"gatewayAPI": {"httpRoute": "checkout",
                                                "stableBackend": STABLE,
                                                "canaryBackend": CANARY},
                                 "match": [{"header": "X-Canary", "exact": "1",
                                            "regex": "2"}]},
                     "steps": [{"weight": 10, "hold": "1m"}, {"mirror": 50, "hold": "1m"},
                               {"weight": 100, "hold": "1m"}]},
        }
        with pytest.raises(client.ApiException) as err:
            kube.create_custom(("rolloutctl.dev", "v1alpha1", "rolloutplans"),
                               copy.deepcopy(body))
        text = str(err.value.body)
        assert "set exactly one of exact, prefix or regex" in text
        assert "mirror steps come before every weighted step" in text
    finally:
        admin.close()  # type: ignore[no-untyped-call]
