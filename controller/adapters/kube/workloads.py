"""The stable and canary Deployments: their revision and readiness, scaling, promotion.

A Deployment's *revision* is a hash of its pod template's ``spec`` and ``annotations``
(labels excluded: stable and canary pods differ in their labels by design, and the
``kubectl.kubernetes.io/restartedAt`` annotation is ignored). After promotion
(``copyToStable``) stable and canary have the same revision.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from controller.adapters.kube.client import REQUEST_TIMEOUT
from controller.adapters.kube.objects import map_api_error
from controller.engine.observation import MISSING, WorkloadState

IGNORED_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/restartedAt"})

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
        self._revisions: dict[tuple[str, int], str] = {}
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
            return workload_state(self._getter(namespace, name))
        raw = self._read(namespace, name)
        if raw is None:
            return MISSING
        doc: dict[str, Any] = json.loads(raw)
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
