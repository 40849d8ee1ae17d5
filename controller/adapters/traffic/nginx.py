"""NGINX Ingress router: a canary Ingress, owned by the plan, carries the canary weight.

Plan::

    traffic:
      nginx: {ingress: checkout, canaryService: checkout-canary, stableService: checkout}

What it touches: it creates, updates and deletes one Ingress, ``<ingress>-canary``
(``networking.k8s.io/v1``) in the plan's namespace, and nothing else. The primary Ingress
``<ingress>`` is only read, never written, so GitOps keeps owning it untouched.

The canary Ingress is a clone of the primary's routing: the same ``ingressClassName`` (and
legacy ``kubernetes.io/ingress.class`` annotation), ``tls``, hosts and paths, keeping only
the paths (and the default backend) whose backend is the Service ``stableService`` (every
Service backend when ``stableService`` is not set), each pointing at ``canaryService`` on
the same port instead. It carries ``nginx.ingress.kubernetes.io/canary: "true"``,
``nginx.ingress.kubernetes.io/canary-weight: "<w>"``, the label
``app.kubernetes.io/managed-by: rolloutctl`` and an ownerReference to the RolloutPlan
(``controller: true``; no ``blockOwnerDeletion``, so the controller needs no rights on the
plan's finalizers), so deleting the plan garbage-collects it.

The canary Ingress belongs to the controller: ``apply`` rewrites its spec and its
``nginx.ingress.kubernetes.io/*`` annotations to the clone of the current primary at the
current weight (a hand edit of its weight, rules or canary-by-header settings is drift, and
is undone), and when the primary's routing changes the clone follows on the next ``apply``.
Other labels, annotations and ownerReferences added to it (by a webhook, a policy engine)
are kept. A canary Service must serve the same port (number or name) as the stable one.
``apply(0)`` and ``restore()`` delete it (no canary Ingress means weight 0); an Ingress of
that name the plan does not own is never changed or deleted: ``RouterError("IngressNotOwned")``.

Concurrency: the update is a PUT carrying the resourceVersion read, and the delete has
uid and resourceVersion preconditions, so a concurrent writer gives
``RouterError("Conflict")`` and nothing is written; the caller retries on its next reconcile.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes.client import (
    ApiClient,
    NetworkingV1Api,
    V1DeleteOptions,
    V1Ingress,
    V1Preconditions,
)
from kubernetes.client.exceptions import ApiException

from controller.adapters.traffic._kube import (
    JSON,
    REQUEST_TIMEOUT,
    ObjectRef,
    Reason,
    check_weight,
    is_not_found,
    kube_errors,
    response_json,
)
from controller.adapters.traffic._weights import as_dict, as_list
from controller.api.plan import NginxRoute, RouteMatch
from controller.ports import RouterError, RouterObservation

API_VERSION = "networking.k8s.io/v1"
CANARY_ANNOTATION = "nginx.ingress.kubernetes.io/canary"
WEIGHT_ANNOTATION = "nginx.ingress.kubernetes.io/canary-weight"
CLASS_ANNOTATION = "kubernetes.io/ingress.class"
BY_HEADER = "nginx.ingress.kubernetes.io/canary-by-header"
BY_HEADER_VALUE = "nginx.ingress.kubernetes.io/canary-by-header-value"
BY_HEADER_PATTERN = "nginx.ingress.kubernetes.io/canary-by-header-pattern"
BY_COOKIE = "nginx.ingress.kubernetes.io/canary-by-cookie"
MATCH_ANNOTATIONS = (BY_HEADER, BY_HEADER_VALUE, BY_HEADER_PATTERN, BY_COOKIE)
NGINX_ANNOTATION_PREFIX = "nginx.ingress.kubernetes.io/"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "rolloutctl"
CANARY_SUFFIX = "-canary"


@dataclass(frozen=True, slots=True)
class Owner:
    """The RolloutPlan that owns what a router creates (for its ownerReference)."""

    api_version: str
    kind: str
    name: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {"apiVersion": self.api_version, "kind": self.kind, "name": self.name,
                "uid": self.uid, "controller": True}


def match_annotations(matches: Sequence[RouteMatch]) -> dict[str, str]:
    """ingress-nginx's canary-by-* annotations for MATCHES (validation allows one header,
    exact or regex, and one cookie whose value is 'always')."""
    out: dict[str, str] = {}
    for m in matches:
        if m.header is not None:
            out[BY_HEADER] = m.header
            if m.exact is not None:
                out[BY_HEADER_VALUE] = m.exact
            elif m.regex is not None:
                out[BY_HEADER_PATTERN] = m.regex
            else:
                raise RouterError(Reason.INVALID_SPEC, "ingress-nginx has no prefix header "
                                  "match: fix spec.traffic.match")
        elif m.cookie is not None:
            out[BY_COOKIE] = m.cookie
    return out


def _ingress(obj: dict[str, Any]) -> V1Ingress:
    ingress = V1Ingress.from_dict(obj)
    if ingress is None:  # from_dict answers None for None only
        raise ValueError("no Ingress to send")
    return ingress


class NginxRouter:
    """``TrafficRouter`` for ingress-nginx canaries (see the module docstring)."""

    def __init__(self, api: ApiClient, namespace: str, route: NginxRoute, owner: Owner, *,
                 matches: Sequence[RouteMatch] = (),
                 field_manager: str = "rolloutctl") -> None:
        self._networking = NetworkingV1Api(api)
        self.match_annotations = match_annotations(matches)
        self._field_manager = field_manager
        self.route = route
        self.owner = owner
        self.primary = ObjectRef(API_VERSION, "Ingress", namespace, route.ingress)
        self.canary = ObjectRef(API_VERSION, "Ingress", namespace,
                                route.ingress + CANARY_SUFFIX)

    # --------------------------------------------------------------- TrafficRouter

    def observe(self) -> RouterObservation:
        try:
            current = self._read_canary()
        except RouterError as err:
            return RouterObservation(weight=None, reason=err.reason, message=err.message)
        if current is None:
            return RouterObservation(
                weight=0, message=f"no {self.canary}: all traffic goes to {self.primary}"
            )
        weight = self._weight_of(current)
        if not self._owns(current):
            return RouterObservation(weight=weight, reason=Reason.INGRESS_NOT_OWNED,
                                     message=self._not_owned_message())
        if weight is None:
            annotations = as_dict(as_dict(current.get("metadata")).get("annotations"))
            return RouterObservation(
                weight=None,
                reason=Reason.INVALID_WEIGHT,
                message=(f"{self.canary} has {CANARY_ANNOTATION}="
                         f"{annotations.get(CANARY_ANNOTATION)!r} and {WEIGHT_ANNOTATION}="
                         f"{annotations.get(WEIGHT_ANNOTATION)!r}; expected 'true' and 0-100"),
            )
        return RouterObservation(weight=weight, match=self._match_of(current))

    def _match_of(self, ingress: dict[str, Any]) -> bool | None:
        annotations = as_dict(as_dict(ingress.get("metadata")).get("annotations"))
        have = {k: v for k, v in annotations.items() if k in MATCH_ANNOTATIONS}
        if not have:
            return False
        return True if have == self.match_annotations else None

    def apply(self, weight: int, *, mirror: int = 0, match: bool = False) -> int:
        check_weight(weight)
        if mirror:
            raise RouterError(Reason.INVALID_SPEC, "ingress-nginx cannot mirror requests: "
                              "remove the mirror step, or use gatewayAPI or istio")
        if weight == 0:
            self.restore()
            return 0
        desired = self.desired_canary(self._read_primary(), weight, match=match)
        current = self._read_canary()
        if current is None:
            self._create(desired)
            return weight
        if not self._owns(current):
            raise RouterError(Reason.INGRESS_NOT_OWNED, self._not_owned_message())
        update = self._update_of(current, desired)
        if update is not None:
            self._replace(update)
        return weight

    def verify(self, weight: int, *, mirror: int = 0, match: bool = False) -> bool:
        check_weight(weight)
        current = self._read_canary()
        if current is None:
            return weight == 0 and not mirror
        return (self._owns(current) and self._weight_of(current) == weight and weight != 0
                and not mirror and self._match_of(current) == (match and bool(
                    self.match_annotations)))

    def restore(self) -> None:
        current = self._read_canary()
        if current is None:
            return
        if not self._owns(current):
            raise RouterError(Reason.INGRESS_NOT_OWNED, self._not_owned_message())
        metadata = current["metadata"]
        with kube_errors(self.canary, "delete", not_found=Reason.INGRESS_NOT_FOUND, fix=""):
            try:
                self._networking.delete_namespaced_ingress(
                    self.canary.name, self.canary.namespace,
                    body=V1DeleteOptions(preconditions=V1Preconditions(
                        uid=metadata["uid"], resource_version=metadata["resourceVersion"])),
                    _content_type=JSON, _request_timeout=REQUEST_TIMEOUT,
                )
            except ApiException as exc:
                if not is_not_found(exc, self.canary):
                    raise

    # --------------------------------------------------------------- the clone

    def desired_canary(self, primary: dict[str, Any], weight: int, *,
                       match: bool = False) -> dict[str, Any]:
        """The canary Ingress for PRIMARY at WEIGHT, with the header/cookie annotations when
        MATCH (a new dict)."""
        spec = as_dict(primary.get("spec"))
        canary_spec: dict[str, Any] = {}
        if "ingressClassName" in spec:
            canary_spec["ingressClassName"] = spec["ingressClassName"]
        default = self._swap(spec.get("defaultBackend"))
        if default is not None:
            canary_spec["defaultBackend"] = default
        rules = []
        for rule in as_list(spec.get("rules")):
            rule = as_dict(rule)
            paths = []
            for path in as_list(as_dict(rule.get("http")).get("paths")):
                backend = self._swap(as_dict(path).get("backend"))
                if backend is not None:
                    paths.append({**copy.deepcopy(path), "backend": backend})
            if paths:
                rules.append({**copy.deepcopy(rule), "http": {"paths": paths}})
        if rules:
            canary_spec["rules"] = rules
        if "defaultBackend" not in canary_spec and not rules:
            which = (f"Service {self.route.stable_service}" if self.route.stable_service
                     else "a Service")
            raise RouterError(
                Reason.BACKEND_NOT_FOUND,
                f"{self.primary} has no backend pointing at {which}, so there is nothing to "
                "split: fix spec.traffic.nginx.stableService, or route the primary Ingress "
                "to the stable Service",
            )
        if "tls" in spec:
            canary_spec["tls"] = copy.deepcopy(spec["tls"])
        annotations = {CANARY_ANNOTATION: "true", WEIGHT_ANNOTATION: str(weight)}
        if match:
            annotations.update(self.match_annotations)
        primary_annotations = as_dict(as_dict(primary.get("metadata")).get("annotations"))
        if CLASS_ANNOTATION in primary_annotations:
            annotations[CLASS_ANNOTATION] = primary_annotations[CLASS_ANNOTATION]
        return {
            "apiVersion": API_VERSION,
            "kind": "Ingress",
            "metadata": {
                "name": self.canary.name,
                "namespace": self.canary.namespace,
                "labels": {MANAGED_BY_LABEL: MANAGED_BY},
                "annotations": annotations,
                "ownerReferences": [self.owner.reference()],
            },
            "spec": canary_spec,
        }

    def _swap(self, backend: Any) -> dict[str, Any] | None:
        """BACKEND pointed at the canary Service, or None when it is not a stable one."""
        service = as_dict(as_dict(backend).get("service"))
        if not service or (self.route.stable_service is not None
                           and service.get("name") != self.route.stable_service):
            return None
        swapped = copy.deepcopy(as_dict(backend))
        swapped["service"]["name"] = self.route.canary_service
        return swapped

    # --------------------------------------------------------------- helpers

    def _owns(self, ingress: dict[str, Any]) -> bool:
        refs = as_list(as_dict(ingress.get("metadata")).get("ownerReferences"))
        return any(as_dict(r).get("uid") == self.owner.uid for r in refs)

    def _not_owned_message(self) -> str:
        return (f"{self.canary} exists but is not owned by {self.owner.kind} "
                f"{self.canary.namespace}/{self.owner.name}: rolloutctl will not change or "
                "delete it; delete or rename it so the controller can manage the canary")

    @staticmethod
    def _weight_of(ingress: dict[str, Any]) -> int | None:
        annotations = as_dict(as_dict(ingress.get("metadata")).get("annotations"))
        if annotations.get(CANARY_ANNOTATION) != "true":
            return None
        text = annotations.get(WEIGHT_ANNOTATION)
        if not isinstance(text, str) or not text.strip().isdigit():
            return None
        weight = int(text)
        return weight if 0 <= weight <= 100 else None

    def _update_of(self, current: dict[str, Any],
                   desired: dict[str, Any]) -> dict[str, Any] | None:
        """What to write over CURRENT to make it DESIRED, or None when it already is.

        Labels, annotations and ownerReferences that others added are kept (a mutating
        webhook or a policy engine must not make the router rewrite the object at every
        reconcile), except ``nginx.ingress.kubernetes.io/*`` annotations: they change the
        routing, so only the router's own stay."""
        have = as_dict(current.get("metadata"))
        want = desired["metadata"]
        labels = {**as_dict(have.get("labels")), **want["labels"]}
        annotations = {
            key: value for key, value in as_dict(have.get("annotations")).items()
            if not key.startswith(NGINX_ANNOTATION_PREFIX) and key != CLASS_ANNOTATION
        }
        annotations.update(want["annotations"])
        owners = [r for r in as_list(have.get("ownerReferences"))
                  if as_dict(r).get("uid") != self.owner.uid]
        owners.extend(want["ownerReferences"])
        if (current.get("spec") == desired["spec"] and have.get("labels") == labels
                and have.get("annotations") == annotations
                and have.get("ownerReferences") == owners):
            return None
        update = copy.deepcopy(desired)
        update["metadata"].update(labels=labels, annotations=annotations,
                                  ownerReferences=owners,
                                  resourceVersion=have["resourceVersion"])
        return update

    # --------------------------------------------------------------- API calls

    def _read_primary(self) -> dict[str, Any]:
        with kube_errors(
            self.primary, "read", not_found=Reason.INGRESS_NOT_FOUND,
            fix="create it, or set spec.traffic.nginx.ingress to the Ingress that routes to "
                "the stable Service",
        ):
            response = self._networking.read_namespaced_ingress(
                self.primary.name, self.primary.namespace,
                _preload_content=False, _request_timeout=REQUEST_TIMEOUT,
            )
        return response_json(response)

    def _read_canary(self) -> dict[str, Any] | None:
        with kube_errors(self.canary, "read", not_found=Reason.INGRESS_NOT_FOUND, fix=""):
            try:
                response = self._networking.read_namespaced_ingress(
                    self.canary.name, self.canary.namespace,
                    _preload_content=False, _request_timeout=REQUEST_TIMEOUT,
                )
            except ApiException as exc:
                if is_not_found(exc, self.canary):
                    return None
                raise
        return response_json(response)

    def _create(self, desired: dict[str, Any]) -> None:
        with kube_errors(self.canary, "create", not_found=Reason.INGRESS_NOT_FOUND,
                         fix=f"create namespace {self.canary.namespace}"):
            self._networking.create_namespaced_ingress(
                self.canary.namespace, body=_ingress(desired),
                field_manager=self._field_manager, _content_type=JSON,
                _request_timeout=REQUEST_TIMEOUT,
            )

    def _replace(self, desired: dict[str, Any]) -> None:
        with kube_errors(self.canary, "update", not_found=Reason.INGRESS_NOT_FOUND,
                         fix="it was deleted meanwhile; the next reconcile creates it again"):
            self._networking.replace_namespaced_ingress(
                self.canary.name, self.canary.namespace, body=_ingress(desired),
                field_manager=self._field_manager, _content_type=JSON,
                _request_timeout=REQUEST_TIMEOUT,
            )
