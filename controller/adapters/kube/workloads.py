"""The stable and canary Deployments: their revision and readiness, scaling, promotion.

A Deployment's *revision* is a hash of its pod template's ``spec`` and ``annotations``
(labels excluded: stable and canary pods differ in their labels by design, and the
``kubectl.kubernetes.io/restartedAt`` annotation is ignored). After promotion
(``copyToStable``) stable and canary have the same revision.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from controller.adapters.kube.client import REQUEST_TIMEOUT
from controller.adapters.kube.objects import map_api_error
from controller.engine.observation import MISSING, WorkloadState

log = logging.getLogger(__name__)

IGNORED_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/restartedAt"})
# Waiting reasons every starting container goes through: they explain nothing yet.
STARTING = frozenset({"ContainerCreating", "PodInitializing"})
HPA_TTL = 15.0  # seconds an HPA listing of a namespace is reused

# namespace, name -> the Deployment as a dict (camelCase), or None when it does not exist
DeploymentGetter = Callable[[str, str], dict[str, Any] | None]


def template_revision(deployment: dict[str, Any]) -> str:
    template = deployment.get("spec", {}).get("template", {})
    annotations = {
        k: v for k, v in (template.get("metadata", {}).get("annotations") or {}).items()
        if k not in IGNORED_ANNOTATIONS
    }
    text = json.dumps({"spec": template.get("spec", {}), "annotations": annotations},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def workload_state(deployment: dict[str, Any] | None,
                   revision: str | None = None) -> WorkloadState:
    """What the engine needs of a Deployment; REVISION when already known (it is
    ``template_revision`` of the model form of the same Deployment)."""
    if deployment is None:
        return MISSING
    spec = deployment.get("spec", {})
    status = deployment.get("status", {}) or {}
    meta = deployment.get("metadata", {})
    replicas = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    return WorkloadState(
        exists=True,
        revision=revision if revision is not None else template_revision(deployment),
        replicas=replicas,
        ready_replicas=int(status.get("readyReplicas") or 0),
        updated_replicas=int(status.get("updatedReplicas") or 0),
        up_to_date=int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0),
    )


def not_ready_reason(deployment: dict[str, Any],
                     pods: list[dict[str, Any]]) -> tuple[str, str]:
    """Why a Deployment's pods are not ready, as a kubelet, the scheduler or the Deployment
    controller reported it: the first container waiting for a reason other than starting
    (ImagePullBackOff, CrashLoopBackOff, CreateContainerConfigError...), else a container
    that terminated with an error, else an unschedulable pod, else the Deployment's own
    conditions (a ReplicaFailure such as an exceeded quota, ProgressDeadlineExceeded)."""
    found: list[tuple[int, str, str]] = []
    for pod in pods:
        status = pod.get("status") or {}
        for cs in (status.get("initContainerStatuses") or []) + (
                status.get("containerStatuses") or []):
            state = cs.get("state") or {}
            waiting = state.get("waiting") or {}
            if waiting.get("reason") and waiting["reason"] not in STARTING:
                found.append((0, waiting["reason"], waiting.get("message") or ""))
            terminated = state.get("terminated") or (cs.get("lastState") or {}).get(
                "terminated") or {}
            if terminated.get("reason") and terminated.get("exitCode", 0) != 0:
                found.append((1, terminated["reason"],
                              f"container {cs.get('name', '?')} exited with "
                              f"{terminated.get('exitCode')}"))
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                found.append((2, cond.get("reason") or "Unschedulable",
                              cond.get("message") or ""))
    for cond in (deployment.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            found.append((3, cond.get("reason") or "ReplicaFailure", cond.get("message") or ""))
        if (cond.get("type") == "Progressing" and cond.get("status") == "False"
                and cond.get("reason")):
            found.append((4, cond["reason"], cond.get("message") or ""))
    if not found:
        return "", ""
    _, reason, message = min(found, key=lambda f: f[0])
    return reason, message[:300]


class Workloads:
    """Reads and writes of the plan's Deployments.

    ``observe`` reads the Deployment fresh every pass as raw JSON. The revision is hashed
    from the pod template as the client's ``V1Deployment`` model gives it back (what every
    revision in a plan's status was computed from, so upgrading the controller never makes
    a running canary look new), but building that model costs more than the read itself: it
    is built once per ``(uid, generation)`` — the generation moves with every change of the
    spec, so of the template — and the revision is remembered.
    """

    REVISIONS_KEPT = 20000  # two per plan; the oldest are forgotten beyond that

    def __init__(self, api: client.ApiClient, getter: DeploymentGetter | None = None) -> None:
        self.api = api
        self.apps = client.AppsV1Api(api)
        self._getter = getter
        self.core = client.CoreV1Api(api)
        self.autoscaling = client.AutoscalingV2Api(api)
        self._revisions: dict[tuple[str, int], str] = {}
        self._hpas: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        if self._getter is not None:
            return self._getter(namespace, name)
        return self.read(namespace, name)

    def read(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A fresh read from the API server (not the cache), as the client's model gives it
        back (``sanitize_for_serialization`` of a ``V1Deployment``)."""
        raw = self._read(namespace, name)
        return None if raw is None else self._as_model_dict(raw)

    def _read(self, namespace: str, name: str) -> bytes | None:
        try:
            response = self.apps.read_namespaced_deployment(
                name, namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
        except (ApiException, HTTPError, OSError) as exc:
            if isinstance(exc, ApiException) and exc.status == 404:
                return None
            raise map_api_error(exc, f"read Deployment {namespace}/{name}") from None
        data: bytes = response.data  # type: ignore[attr-defined]  # the raw HTTP response
        return data

    def _as_model_dict(self, raw: bytes) -> dict[str, Any]:
        model = self.api.deserialize(raw.decode("utf-8"), "V1Deployment", "application/json")
        data: dict[str, Any] = self.api.sanitize_for_serialization(  # type: ignore[no-untyped-call]
            model)
        return data

    def observe(self, namespace: str, name: str) -> WorkloadState:
        if self._getter is not None:
            cached = self._getter(namespace, name)
            return self._explained(namespace, name, cached, workload_state(cached))
        raw = self._read(namespace, name)
        if raw is None:
            return MISSING
        doc: dict[str, Any] = json.loads(raw)
        return self._explained(namespace, name, doc, self._observed(raw, doc))

    def _explained(self, namespace: str, name: str, doc: dict[str, Any] | None,
                   state: WorkloadState) -> WorkloadState:
        """The state with what the engine needs beyond the Deployment itself: whether an
        HPA owns its replicas, and why its pods are not ready (read only while they are
        not)."""
        if doc is None or not state.exists:
            return state
        extra: dict[str, Any] = {"autoscaled": name in self.autoscaled(namespace)}
        if not state.ready and state.replicas > 0:
            extra["not_ready_reason"], extra["not_ready_message"] = not_ready_reason(
                doc, self._pods(namespace, doc))
        return dataclasses.replace(state, **extra)

    def _pods(self, namespace: str, doc: dict[str, Any]) -> list[dict[str, Any]]:
        labels = ((doc.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if not labels:
            return []
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        try:
            response = self.core.list_namespaced_pod(
                namespace, label_selector=selector, limit=50, _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT)
        except (ApiException, HTTPError, OSError) as exc:
            log.debug("listing pods of %s/%s: %s", namespace, selector, exc)
            return []  # the reason is a nicety: never fail a pass for it
        data: bytes = response.data  # type: ignore[attr-defined]  # the raw HTTP response
        items: list[dict[str, Any]] = json.loads(data).get("items") or []
        return items

    def autoscaled(self, namespace: str) -> frozenset[str]:
        """Names of the Deployments an autoscaling/v2 HPA targets in NAMESPACE (a listing
        reused for HPA_TTL seconds; empty when HPAs cannot be listed)."""
        now = time.monotonic()
        with self._lock:
            cached = self._hpas.get(namespace)
        if cached is not None and now - cached[0] < HPA_TTL:
            return cached[1]
        try:
            response = self.autoscaling.list_namespaced_horizontal_pod_autoscaler(
                namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
            data: bytes = response.data  # type: ignore[attr-defined]  # the raw response
            items = json.loads(data).get("items") or []
            names = frozenset(
                ref.get("name", "") for ref in
                ((i.get("spec") or {}).get("scaleTargetRef") or {} for i in items)
                if ref.get("kind") == "Deployment")
        except (ApiException, HTTPError, OSError) as exc:
            if cached is None:
                log.warning("cannot list HorizontalPodAutoscalers in %s (%s): treating its "
                            "Deployments as not autoscaled", namespace,
                            getattr(exc, "reason", exc))
            names = cached[1] if cached is not None else frozenset()
        with self._lock:
            self._hpas[namespace] = (now, names)
        return names

    def _observed(self, raw: bytes, doc: dict[str, Any]) -> WorkloadState:
        meta = doc.get("metadata") or {}
        key = (str(meta.get("uid") or ""), int(meta.get("generation") or 0))
        with self._lock:
            revision = self._revisions.get(key) if key[0] else None
        if revision is None:
            revision = template_revision(self._as_model_dict(raw))
            with self._lock:
                if len(self._revisions) >= self.REVISIONS_KEPT:
                    self._revisions.pop(next(iter(self._revisions)))
                self._revisions[key] = revision
        return workload_state(doc, revision)

    def scale(self, namespace: str, name: str, replicas: int) -> None:
        try:
            self.apps.patch_namespaced_deployment_scale(
                name, namespace, {"spec": {"replicas": replicas}},
                field_manager="rolloutctl",
                _content_type="application/merge-patch+json",
                _request_timeout=REQUEST_TIMEOUT,
            )
        except (ApiException, HTTPError, OSError) as exc:
            raise map_api_error(exc, f"scale Deployment {namespace}/{name}") from None

    def promote(self, namespace: str, stable: str, canary: str) -> None:
        """Stable takes the canary's pod template (spec and annotations; its labels stay)."""
        source = self.read(namespace, canary)
        target = self.read(namespace, stable)
        if source is None or target is None:
            missing = canary if source is None else stable
            raise map_api_error(ApiException(status=404), f"Deployment {namespace}/{missing}")
        template = source["spec"]["template"]
        annotations = {
            k: v for k, v in (template.get("metadata", {}).get("annotations") or {}).items()
            if k not in IGNORED_ANNOTATIONS
        }
        kept = {
            k: v for k, v in (target["spec"]["template"].get("metadata", {}).get("annotations")
                              or {}).items() if k in IGNORED_ANNOTATIONS
        }
        patch = [
            {"op": "test", "path": "/metadata/resourceVersion",
             "value": target["metadata"]["resourceVersion"]},
            {"op": "replace", "path": "/spec/template/spec", "value": template["spec"]},
            {"op": "add", "path": "/spec/template/metadata/annotations",
             "value": {**annotations, **kept}},
        ]
        try:
            self.apps.patch_namespaced_deployment(
                stable, namespace, patch, field_manager="rolloutctl",
                _content_type="application/json-patch+json",
                _request_timeout=REQUEST_TIMEOUT,
            )
        except (ApiException, HTTPError, OSError) as exc:
            raise map_api_error(exc, f"promote Deployment {namespace}/{stable}") from None
