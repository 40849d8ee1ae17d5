"""Shared by the traffic-router end-to-end tests (no tests here): for each provider, the
objects a user would create, hand edits, and independent reads of what the objects say.

The reads here never go through the router under test: they are what ``kubectl get``
would show a user.
"""

from __future__ import annotations

import copy
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar

import pytest
from kubernetes import client

from controller.adapters.traffic import router_for
from controller.api.plan import RolloutPlan
from controller.ports import TrafficRouter
from tests.harness.fixtures import TestCluster

STABLE = "checkout"
CANARY = "checkout-canary"
TIMEOUT = 15
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"

T = TypeVar("T")


def eventually(fn: Callable[[], T], timeout: float = 90, interval: float = 0.3) -> T:
    """Call FN until it stops raising AssertionError (or TIMEOUT seconds pass)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


def without_volatile(obj: dict[str, Any]) -> dict[str, Any]:
    """OBJ without what the API server changes on every write."""
    out = copy.deepcopy(obj)
    meta = out.get("metadata", {})
    for key in ("resourceVersion", "managedFields", "generation"):
        meta.pop(key, None)
    out.pop("status", None)
    return out


class Kube:
    """Plain calls a user (or kubectl) would make, as raw JSON."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = api
        self.ns = namespace
        self.objects = client.CustomObjectsApi(api)
        self.networking = client.NetworkingV1Api(api)
        self.apps = client.AppsV1Api(api)

    # custom objects: (group, version, plural)
    def create_custom(self, gvp: tuple[str, str, str], body: dict[str, Any]) -> dict[str, Any]:
        g, v, p = gvp
        out: Any = self.objects.create_namespaced_custom_object(
            g, v, self.ns, p, body, _request_timeout=TIMEOUT)
        return dict(out)

    def get_custom(self, gvp: tuple[str, str, str], name: str) -> dict[str, Any]:
        g, v, p = gvp
        out: Any = self.objects.get_namespaced_custom_object(
            g, v, self.ns, p, name, _request_timeout=TIMEOUT)
        return dict(out)

    def patch_custom(self, gvp: tuple[str, str, str], name: str, body: Any,
                     content_type: str = MERGE_PATCH) -> None:
        g, v, p = gvp
        self.objects.patch_namespaced_custom_object(
            g, v, self.ns, p, name, body, field_manager="kubectl-edit",
            _content_type=content_type, _request_timeout=TIMEOUT)

    def delete_custom(self, gvp: tuple[str, str, str], name: str) -> None:
        g, v, p = gvp
        self.objects.delete_namespaced_custom_object(g, v, self.ns, p, name,
                                                     _request_timeout=TIMEOUT)

    # ingresses
    def create_ingress(self, body: dict[str, Any]) -> None:
        self.networking.create_namespaced_ingress(
            self.ns, client.V1Ingress.from_dict(body),  # type: ignore[arg-type]
            _content_type="application/json", _request_timeout=TIMEOUT)

    def get_ingress(self, name: str) -> dict[str, Any] | None:
        try:
            r: Any = self.networking.read_namespaced_ingress(
                name, self.ns, _preload_content=False, _request_timeout=TIMEOUT)
        except client.ApiException as e:
            if e.status == 404:
                return None
            raise
        return dict(json.loads(r.data))

    def patch_ingress(self, name: str, body: dict[str, Any]) -> None:
        self.networking.patch_namespaced_ingress(
            name, self.ns, body, field_manager="kubectl-edit", _content_type=MERGE_PATCH,
            _request_timeout=TIMEOUT)

    def delete_ingress(self, name: str) -> None:
        self.networking.delete_namespaced_ingress(name, self.ns, _request_timeout=TIMEOUT)

    # deployments
    def create_deployment(self, name: str, replicas: int,
                          labels: dict[str, str] | None = None) -> None:
        pod_labels = {"app": STABLE, "track": name}
        body = {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": labels or {},
                         "annotations": {"team": "payments"}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": pod_labels},
                "template": {"metadata": {"labels": pod_labels}, "spec": {"containers": [
                    {"name": "app", "image": f"registry.local/{name}:1"}]}},
            },
        }
        self.apps.create_namespaced_deployment(
            self.ns, client.V1Deployment.from_dict(body),  # type: ignore[arg-type]
            _content_type="application/json", _request_timeout=TIMEOUT)

    def get_deployment(self, name: str) -> dict[str, Any]:
        r: Any = self.apps.read_namespaced_deployment(
            name, self.ns, _preload_content=False, _request_timeout=TIMEOUT)
        return dict(json.loads(r.data))

    def patch_deployment(self, name: str, body: dict[str, Any]) -> None:
        self.apps.patch_namespaced_deployment(
            name, self.ns, body, field_manager="kubectl-edit", _content_type=MERGE_PATCH,
            _request_timeout=TIMEOUT)

    def scale_deployment(self, name: str, replicas: int) -> None:
        self.apps.patch_namespaced_deployment_scale(
            name, self.ns, {"spec": {"replicas": replicas}}, field_manager="kubectl-scale",
            _content_type=MERGE_PATCH, _request_timeout=TIMEOUT)

    def delete_deployment(self, name: str) -> None:
        self.apps.delete_namespaced_deployment(name, self.ns, _request_timeout=TIMEOUT)

    # the plan
    def create_plan(self, traffic: dict[str, Any]) -> RolloutPlan:
        body = {
            "apiVersion": "rolloutctl.dev/v1alpha1", "kind": "RolloutPlan",
            "metadata": {"name": "checkout"},
            "spec": {"target": {"stable": {"name": STABLE}, "canary": {"name": CANARY}},
                     "traffic": traffic},
        }
        stored = self.create_custom(("rolloutctl.dev", "v1alpha1", "rolloutplans"), body)
        return RolloutPlan.model_validate(stored)


# --------------------------------------------------------------------------- providers


class Provider(ABC):
    """One traffic provider as a user sets it up."""

    id: ClassVar[str]
    traffic: ClassVar[dict[str, Any]]
    #: the object apply() writes: what a concurrent writer races with
    written_kind: ClassVar[str]
    #: are its writes guarded by the resourceVersion read (a race gives Conflict)?
    guarded: ClassVar[bool] = True

    @abstractmethod
    def create(self, kube: Kube) -> None:
        """The user's objects, all traffic on stable."""

    @abstractmethod
    def weight(self, kube: Kube) -> int | None:
        """The canary weight the objects carry, read as a user would."""

    @abstractmethod
    def unrelated(self, kube: Kube) -> dict[str, Any]:
        """Everything the user wrote that the router must leave alone (weights removed)."""

    @abstractmethod
    def hand_edit(self, kube: Kube, weight: int) -> None:
        """Someone sets the canary weight by hand."""

    @abstractmethod
    def versions(self, kube: Kube) -> list[str | None]:
        """resourceVersions of the objects the router writes (None: absent)."""

    @abstractmethod
    def concurrent_write(self, kube: Kube) -> None:
        """Someone changes the object the router writes (not its weights)."""

    @abstractmethod
    def concurrent_write_seen(self, kube: Kube) -> bool:
        """Is that change still there?"""


HTTPROUTES = ("gateway.networking.k8s.io", "v1", "httproutes")
VIRTUALSERVICES = ("networking.istio.io", "v1", "virtualservices")


class GatewayAPI(Provider):
    id = "gatewayAPI"
    traffic: ClassVar[dict[str, Any]] = {
        "gatewayAPI": {"httpRoute": "checkout", "stableBackend": STABLE,
                       "canaryBackend": CANARY}}
    written_kind = "HTTPRoute"

    @staticmethod
    def route(*, canary_backend: bool = True) -> dict[str, Any]:
        shifting = [{"name": STABLE, "port": 8080, "weight": 100}]
        if canary_backend:
            shifting.append({"name": CANARY, "port": 8080, "weight": 0})
        return {
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "checkout", "labels": {"app": "checkout", "team": "payments"},
                         "annotations": {"argocd.argoproj.io/tracking-id": "shop:checkout"}},
            "spec": {
                "parentRefs": [{"name": "public", "sectionName": "https"}],
                "hostnames": ["shop.example.com"],
                "rules": [
                    {"name": "admin",
                     "matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
                     "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
                         "add": [{"name": "x-admin", "value": "1"}]}}],
                     "backendRefs": [{"name": STABLE, "port": 8080}]},
                    {"name": "main",
                     "matches": [{"path": {"type": "PathPrefix", "value": "/"},
                                  "headers": [{"name": "x-env", "value": "prod"}]}],
                     "timeouts": {"request": "10s"},
                     "backendRefs": shifting},
                    {"name": "images",
                     "matches": [{"path": {"type": "PathPrefix", "value": "/img"}}],
                     "backendRefs": [{"name": "images", "port": 80, "weight": 3}]},
                ],
            },
        }

    def create(self, kube: Kube) -> None:
        kube.create_custom(HTTPROUTES, self.route())

    def weight(self, kube: Kube) -> int | None:
        refs = kube.get_custom(HTTPROUTES, "checkout")["spec"]["rules"][1]["backendRefs"]
        weights = {r["name"]: r["weight"] for r in refs}
        assert weights[STABLE] + weights[CANARY] == 100, weights
        return int(weights[CANARY])

    def unrelated(self, kube: Kube) -> dict[str, Any]:
        route = without_volatile(kube.get_custom(HTTPROUTES, "checkout"))
        for ref in route["spec"]["rules"][1]["backendRefs"]:
            ref.pop("weight")
        return route

    def hand_edit(self, kube: Kube, weight: int) -> None:
        kube.patch_custom(HTTPROUTES, "checkout", [
            {"op": "replace", "path": "/spec/rules/1/backendRefs/0/weight", "value": 100 - weight},
            {"op": "replace", "path": "/spec/rules/1/backendRefs/1/weight", "value": weight},
        ], JSON_PATCH)

    def versions(self, kube: Kube) -> list[str | None]:
        return [kube.get_custom(HTTPROUTES, "checkout")["metadata"]["resourceVersion"]]

    def concurrent_write(self, kube: Kube) -> None:
        kube.patch_custom(HTTPROUTES, "checkout", {"metadata": {"labels": {"synced": "yes"}}})

    def concurrent_write_seen(self, kube: Kube) -> bool:
        labels = kube.get_custom(HTTPROUTES, "checkout")["metadata"]["labels"]
        return bool(labels.get("synced") == "yes")


class Istio(Provider):
    id = "istio"
    traffic: ClassVar[dict[str, Any]] = {
        "istio": {"virtualService": "checkout", "route": "primary",
                  "stableHost": f"{STABLE}.shop.svc.cluster.local",
                  "canaryHost": f"{CANARY}.shop.svc.cluster.local"}}
    written_kind = "VirtualService"

    @staticmethod
    def virtual_service(*, canary_destination: bool = True) -> dict[str, Any]:
        stable = f"{STABLE}.shop.svc.cluster.local"
        canary = f"{CANARY}.shop.svc.cluster.local"
        primary = [{"destination": {"host": stable, "port": {"number": 8080}}, "weight": 100}]
        if canary_destination:
            primary.append({"destination": {"host": canary, "port": {"number": 8080}},
                            "weight": 0})
        return {
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "checkout", "labels": {"app": "checkout"},
                         "annotations": {"owner": "payments"}},
            "spec": {
                "hosts": ["shop.example.com"],
                "gateways": ["istio-system/public"],
                "http": [
                    {"name": "admin", "match": [{"uri": {"prefix": "/admin"}}],
                     "route": [{"destination": {"host": stable}}]},
                    {"name": "primary",
                     "match": [{"headers": {"x-env": {"exact": "prod"}}}],
                     "retries": {"attempts": 3, "perTryTimeout": "2s"},
                     "timeout": "10s",
                     "route": primary},
                ],
            },
        }

    def create(self, kube: Kube) -> None:
        kube.create_custom(VIRTUALSERVICES, self.virtual_service())

    def weight(self, kube: Kube) -> int | None:
        route = kube.get_custom(VIRTUALSERVICES, "checkout")["spec"]["http"][1]["route"]
        weights = [d["weight"] for d in route]
        assert sum(weights) == 100, weights
        return int(weights[1])

    def unrelated(self, kube: Kube) -> dict[str, Any]:
        vs = without_volatile(kube.get_custom(VIRTUALSERVICES, "checkout"))
        for destination in vs["spec"]["http"][1]["route"]:
            destination.pop("weight")
        return vs

    def hand_edit(self, kube: Kube, weight: int) -> None:
        kube.patch_custom(VIRTUALSERVICES, "checkout", [
            {"op": "replace", "path": "/spec/http/1/route/0/weight", "value": 100 - weight},
            {"op": "replace", "path": "/spec/http/1/route/1/weight", "value": weight},
        ], JSON_PATCH)

    def versions(self, kube: Kube) -> list[str | None]:
        return [kube.get_custom(VIRTUALSERVICES, "checkout")["metadata"]["resourceVersion"]]

    def concurrent_write(self, kube: Kube) -> None:
        kube.patch_custom(VIRTUALSERVICES, "checkout",
                          {"metadata": {"labels": {"synced": "yes"}}})

    def concurrent_write_seen(self, kube: Kube) -> bool:
        labels = kube.get_custom(VIRTUALSERVICES, "checkout")["metadata"]["labels"]
        return bool(labels.get("synced") == "yes")


class Nginx(Provider):
    id = "nginx"
    traffic: ClassVar[dict[str, Any]] = {
        "nginx": {"ingress": "web", "stableService": STABLE, "canaryService": CANARY}}
    written_kind = "Ingress"
    canary_name = "web-canary"

    @staticmethod
    def ingress(*, stable_backend: bool = True) -> dict[str, Any]:
        main = STABLE if stable_backend else "somebody-else"
        return {
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "labels": {"app": "checkout"},
                         "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "8m"}},
            "spec": {
                "ingressClassName": "nginx",
                "tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}],
                "rules": [{"host": "shop.example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {
                        "service": {"name": main, "port": {"number": 8080}}}},
                    {"path": "/img", "pathType": "Prefix", "backend": {
                        "service": {"name": "images", "port": {"name": "http"}}}},
                ]}}],
            },
        }

    def create(self, kube: Kube) -> None:
        kube.create_ingress(self.ingress())

    def weight(self, kube: Kube) -> int | None:
        canary = kube.get_ingress(self.canary_name)
        if canary is None:
            return 0
        annotations = canary["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/canary"] == "true"
        return int(annotations["nginx.ingress.kubernetes.io/canary-weight"])

    def unrelated(self, kube: Kube) -> dict[str, Any]:
        primary = kube.get_ingress("web")
        assert primary is not None
        return without_volatile(primary)

    def hand_edit(self, kube: Kube, weight: int) -> None:
        kube.patch_ingress(self.canary_name, {"metadata": {"annotations": {
            "nginx.ingress.kubernetes.io/canary-weight": str(weight)}}})

    def versions(self, kube: Kube) -> list[str | None]:
        canary = kube.get_ingress(self.canary_name)
        return [None if canary is None else canary["metadata"]["resourceVersion"]]

    def concurrent_write(self, kube: Kube) -> None:
        kube.patch_ingress(self.canary_name, {"metadata": {"labels": {"synced": "yes"}}})

    def concurrent_write_seen(self, kube: Kube) -> bool:
        canary = kube.get_ingress(self.canary_name)
        return canary is not None and canary["metadata"]["labels"].get("synced") == "yes"


class Replicas(Provider):
    id = "replicas"
    traffic: ClassVar[dict[str, Any]] = {"replicas": {}}
    written_kind = "Deployment"
    guarded = False
    stable_replicas = 4

    def create(self, kube: Kube) -> None:
        kube.create_deployment(STABLE, self.stable_replicas, {"app": "checkout"})
        kube.create_deployment(CANARY, 0, {"app": "checkout"})

    def weight(self, kube: Kube) -> int | None:
        """The weight recorded on the canary when its replicas agree with it
        (ceil(4 * w / 100)); else the weight its replicas stand for (floor(100 * r / 4),
        the documented reading of a hand-scaled canary)."""
        canary = kube.get_deployment(CANARY)
        annotated = canary["metadata"].get("annotations", {}).get("rolloutctl.dev/weight")
        replicas = int(canary["spec"]["replicas"])
        total = self.stable_replicas
        if annotated is not None and replicas == -(-total * int(annotated) // 100):
            return int(annotated)
        return min(100, 100 * replicas // total)

    def unrelated(self, kube: Kube) -> dict[str, Any]:
        canary = without_volatile(kube.get_deployment(CANARY))
        canary["spec"].pop("replicas")
        canary["metadata"]["annotations"].pop("rolloutctl.dev/weight", None)
        stable = without_volatile(kube.get_deployment(STABLE))
        for deployment in (canary, stable):  # written by the Deployment controller
            deployment["metadata"]["annotations"].pop("deployment.kubernetes.io/revision", None)
        return {"canary": canary, "stable": stable}

    def hand_edit(self, kube: Kube, weight: int) -> None:
        kube.scale_deployment(CANARY, -(-self.stable_replicas * weight // 100))

    def versions(self, kube: Kube) -> list[str | None]:
        """Once the Deployment controller is done with the canary's status (its own writes
        change the resourceVersion too)."""

        def settled() -> str:
            canary = kube.get_deployment(CANARY)
            status = canary.get("status", {})
            assert status.get("observedGeneration") == canary["metadata"]["generation"]
            assert status.get("readyReplicas", 0) == canary["spec"]["replicas"], status
            assert status.get("replicas", 0) == canary["spec"]["replicas"], status
            return str(canary["metadata"]["resourceVersion"])

        return [eventually(settled)]

    def concurrent_write(self, kube: Kube) -> None:
        kube.patch_deployment(CANARY, {"metadata": {"labels": {"synced": "yes"}}})

    def concurrent_write_seen(self, kube: Kube) -> bool:
        labels = kube.get_deployment(CANARY)["metadata"]["labels"]
        return bool(labels.get("synced") == "yes")


PROVIDERS: list[Provider] = [GatewayAPI(), Istio(), Nginx(), Replicas()]


def provider_params(*, guarded: bool | None = None) -> list[Any]:
    return [pytest.param(p, id=p.id) for p in PROVIDERS
            if guarded is None or p.guarded == guarded]


class Setup:
    """One provider set up in a fresh namespace, with the router the controller would use."""

    def __init__(self, provider: Provider, kube: Kube, plan: RolloutPlan,
                 router: TrafficRouter) -> None:
        self.provider = provider
        self.kube = kube
        self.plan = plan
        self.router = router

    def weight(self) -> int | None:
        return self.provider.weight(self.kube)


@contextmanager
def set_up(cluster: TestCluster, namespace: str, provider: Provider) -> Iterator[Setup]:
    """The provider's objects, a stored RolloutPlan and its router."""
    api = cluster.api_client()
    try:
        kube = Kube(api, namespace)
        provider.create(kube)
        plan = kube.create_plan(provider.traffic)
        yield Setup(provider, kube, plan, router_for(plan, api))
    finally:
        api.close()  # type: ignore[no-untyped-call]
