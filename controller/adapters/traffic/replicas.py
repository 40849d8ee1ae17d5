"""Replica-ratio router (no mesh): the canary's share of ready Pods approximates its weight.

Plan::

    target: {stable: {name: checkout}, canary: {name: checkout-canary}}
    traffic:
      replicas: {totalReplicas: 10}     # optional; default: the stable Deployment's replicas

For a Service that selects the Pods of both Deployments, each ready Pod gets about the same
share of requests. At weight ``w`` the canary Deployment is scaled to
``ceil(total * w / 100)`` replicas while the stable Deployment stays as it is (full), so the
canary's real share is ``canary / (stable + canary)``: at 10 % of 10 replicas, 1 canary Pod
next to 10 stable ones gets ~9 %; at 100 % the canary runs as many Pods as stable and gets
~50 % (promotion then copies the canary template to stable). ``apply`` returns that share
(rounded, from the replica counts it set); ``observe().achieved`` is the share measured from
the ready replicas of both Deployments now.

What it touches: the canary Deployment only: its ``scale`` subresource (replicas) and the
annotation ``rolloutctl.dev/weight`` recording the weight it was set for. It reads the stable
Deployment (for its replicas and readiness) and never writes it; it never touches the pod
template, Services or HPAs (an HPA on the canary Deployment would fight the router: do not
attach one during a rollout).

Drift: when the canary's replicas no longer match what the annotation's weight needs (someone
scaled it by hand), ``observe()`` reports the weight those replicas imply (the largest weight
that gives that many replicas) with reason ``ReplicasEdited``, and ``apply`` scales it back.

Concurrency: the two writes are merge patches that name only the router's own fields (the
annotation; ``spec.replicas`` through ``scale``), with no resourceVersion guard: the
Deployment controller rewrites the status (and so the resourceVersion) many times while
Pods start, so a guard would fail on most writes without anybody touching the router's
fields. A concurrent change to any other field is therefore kept, and a concurrent scale of
the canary is last-writer-wins: if it lands after the router's write, ``observe()`` shows it
as drift on the next reconcile, which scales back. No ``Conflict`` comes from this router.
"""

from __future__ import annotations

from typing import Any

from kubernetes.client import ApiClient, AppsV1Api

from controller.adapters.traffic._kube import (
    MERGE_PATCH,
    REQUEST_TIMEOUT,
    ObjectRef,
    Reason,
    check_weight,
    kube_errors,
    response_json,
)
from controller.adapters.traffic._weights import as_dict, as_weight
from controller.api.plan import ReplicaRoute, Target
from controller.ports import RouterError, RouterObservation

WEIGHT_ANNOTATION = "rolloutctl.dev/weight"


# ------------------------------------------------------------------------ the arithmetic


def canary_replicas(total: int, weight: int) -> int:
    """Canary replicas for WEIGHT percent of TOTAL: ``ceil(total * weight / 100)``."""
    return -(-total * weight // 100)


def implied_weight(total: int, canary: int) -> int:
    """The largest weight in 0-100 whose ``canary_replicas`` is CANARY (exact whenever
    ``total <= 100``; otherwise the nearest weight below)."""
    if canary <= 0:
        return 0
    if total <= 0:
        return 100
    return min(100, 100 * canary // total)


def traffic_share(stable_ready: int, canary_ready: int) -> float | None:
    """Percent of requests the canary gets when each ready Pod gets the same share;
    None when no Pod is ready."""
    ready = stable_ready + canary_ready
    return None if ready <= 0 else 100 * canary_ready / ready


# ------------------------------------------------------------------------ the router


def _replicas(deployment: dict[str, Any]) -> int:
    value = as_weight(as_dict(deployment.get("spec")).get("replicas"))
    return 1 if value is None else value  # the API's default


def _ready(deployment: dict[str, Any]) -> int:
    return as_weight(as_dict(deployment.get("status")).get("readyReplicas")) or 0


def _annotated_weight(deployment: dict[str, Any]) -> int | None:
    text = as_dict(as_dict(deployment.get("metadata")).get("annotations")).get(
        WEIGHT_ANNOTATION
    )
    if isinstance(text, str) and text.isdigit() and 0 <= int(text) <= 100:
        return int(text)
    return None


class ReplicaRouter:
    """``TrafficRouter`` that scales the canary Deployment (see the module docstring)."""

    def __init__(self, api: ApiClient, namespace: str, target: Target, route: ReplicaRoute,
                 *, field_manager: str = "rolloutctl") -> None:
        self._apps = AppsV1Api(api)
        self._field_manager = field_manager
        self.total_replicas = route.total_replicas
        self.stable = ObjectRef("apps/v1", "Deployment", namespace, target.stable.name)
        self.canary = ObjectRef("apps/v1", "Deployment", namespace, target.canary.name)

    # --------------------------------------------------------------- TrafficRouter

    def observe(self) -> RouterObservation:
        try:
            canary = self._read(self.canary)
            stable = self._read(self.stable)
        except RouterError as err:
            return RouterObservation(weight=None, reason=err.reason, message=err.message)
        total = self._total(stable)
        have = _replicas(canary)
        achieved = traffic_share(_ready(stable), _ready(canary))
        annotated = _annotated_weight(canary)
        if annotated is not None and canary_replicas(total, annotated) == have:
            return RouterObservation(weight=annotated, achieved=achieved)
        if annotated is None and have == 0:
            return RouterObservation(weight=0, achieved=achieved)
        implied = implied_weight(total, have)
        said = ("has no " + WEIGHT_ANNOTATION + " annotation" if annotated is None else
                f"is annotated {WEIGHT_ANNOTATION}={annotated}, which needs "
                f"{canary_replicas(total, annotated)} of {total} replicas")
        return RouterObservation(
            weight=implied,
            achieved=achieved,
            reason=Reason.REPLICAS_EDITED,
            message=f"{self.canary} {said} but runs {have}: that is weight {implied}",
        )

    def apply(self, weight: int, *, mirror: int = 0, match: bool = False) -> int:
        check_weight(weight)
        if mirror or match:
            raise RouterError(Reason.INVALID_SPEC, "the replicas router cannot mirror or route "
                              "by header: remove spec.traffic.match and mirror steps")
        canary = self._read(self.canary)
        if weight == 0:
            self._set(canary, 0, 0)
            return 0
        stable = self._read(self.stable)
        want = canary_replicas(self._total(stable), weight)
        self._set(canary, weight, want)
        return round(traffic_share(_replicas(stable), want) or 0)

    def verify(self, weight: int, *, mirror: int = 0, match: bool = False) -> bool:
        check_weight(weight)
        if mirror or match:
            return False
        canary = self._read(self.canary)
        total = 0 if weight == 0 else self._total(self._read(self.stable))
        annotated = _annotated_weight(canary)
        if annotated is None and weight == 0:  # never routed: no annotation yet
            annotated = 0
        return annotated == weight and _replicas(canary) == canary_replicas(total, weight)

    def restore(self) -> None:
        """Canary scaled to 0 (annotated weight 0); reads only the canary Deployment, so a
        rollback never depends on the stable one. A missing canary Deployment serves no
        traffic: nothing to do."""
        try:
            canary = self._read(self.canary)
        except RouterError as err:
            if err.reason == Reason.DEPLOYMENT_NOT_FOUND:
                return
            raise
        self._set(canary, 0, 0)

    # --------------------------------------------------------------- helpers

    def _total(self, stable: dict[str, Any]) -> int:
        return self.total_replicas if self.total_replicas is not None else _replicas(stable)

    def _set(self, canary: dict[str, Any], weight: int, replicas: int) -> None:
        """Record WEIGHT, then scale to REPLICAS; each only when it differs."""
        if _annotated_weight(canary) != weight:
            self._patch_annotation(weight)
        if _replicas(canary) != replicas:
            self._scale(replicas)

    def _read(self, ref: ObjectRef) -> dict[str, Any]:
        role = "canary" if ref == self.canary else "stable"
        with kube_errors(ref, "read", not_found=Reason.DEPLOYMENT_NOT_FOUND,
                         fix=f"create it, or fix spec.target.{role}.name"):
            response = self._apps.read_namespaced_deployment(
                ref.name, ref.namespace, _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
        return response_json(response)

    def _patch_annotation(self, weight: int) -> None:
        body = {"metadata": {"annotations": {WEIGHT_ANNOTATION: str(weight)}}}
        with kube_errors(self.canary, "annotate", not_found=Reason.DEPLOYMENT_NOT_FOUND,
                         fix="create it, or fix spec.target.canary.name"):
            self._apps.patch_namespaced_deployment(
                self.canary.name, self.canary.namespace, body=body,
                field_manager=self._field_manager, _content_type=MERGE_PATCH,
                _preload_content=False, _request_timeout=REQUEST_TIMEOUT,
            )

    def _scale(self, replicas: int) -> None:
        body = {"spec": {"replicas": replicas}}
        with kube_errors(self.canary, "scale", not_found=Reason.DEPLOYMENT_NOT_FOUND,
                         fix="create it, or fix spec.target.canary.name"):
            self._apps.patch_namespaced_deployment_scale(
                self.canary.name, self.canary.namespace, body=body,
                field_manager=self._field_manager, _content_type=MERGE_PATCH,
                _preload_content=False, _request_timeout=REQUEST_TIMEOUT,
            )
