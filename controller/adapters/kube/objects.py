"""RolloutPlans and SLOPolicies on the API server: reads, status writes, and requests.

Status is written only through the ``/status`` subresource with the resourceVersion the
decision was based on: a concurrent writer gets the controller a 409, mapped to
``controller.errors.Conflict``. Raw dicts never leave this package except as the plain
``dict`` documents the API models parse.
"""

from __future__ import annotations

from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from controller.adapters.kube.client import REQUEST_TIMEOUT
from controller.api.types import GROUP, VERSION
from controller.errors import Conflict, NotFound, Permanent, Transient

PLURALS = {"RolloutPlan": "rolloutplans", "SLOPolicy": "slopolicies"}


def map_api_error(exc: Exception, what: str) -> Exception:
    """The taxonomy error for a Kubernetes client exception."""
    if isinstance(exc, ApiException):
        if exc.status == 409:
            return Conflict(f"{what}: the object changed since it was read", "Conflict")
        if exc.status == 404:
            return NotFound(f"{what}: not found", "NotFound")
        if exc.status in (401, 403):
            return Permanent(f"{what}: forbidden ({exc.status}); check the controller's RBAC",
                             "Forbidden")
        if exc.status == 422:
            return Permanent(f"{what}: rejected by the API server: {_reason(exc)}", "Invalid")
        return Transient(f"{what}: API server answered {exc.status}: {_reason(exc)}",
                         "ApiError")
    if isinstance(exc, HTTPError | OSError | TimeoutError):
        return Transient(f"{what}: cannot reach the API server: {type(exc).__name__}",
                         "ApiUnreachable")
    return exc


def _reason(exc: ApiException) -> str:
    import json

    try:
        body = json.loads(exc.body or "{}")
        return str(body.get("message") or exc.reason)
    except (ValueError, TypeError):
        return str(exc.reason)


class ObjectStore:
    """Get, list and write status of rolloutctl's custom objects."""

    def __init__(self, api: client.ApiClient) -> None:
        self.custom = client.CustomObjectsApi(api)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj = cast(dict[str, Any], self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURALS[kind], name,
                _request_timeout=REQUEST_TIMEOUT,
            ))
            return obj
        except (ApiException, HTTPError, OSError) as exc:
            if isinstance(exc, ApiException) and exc.status == 404:
                return None
            raise map_api_error(exc, f"get {kind} {namespace}/{name}") from None

    def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        try:
            if namespace:
                result = cast(dict[str, Any], self.custom.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURALS[kind], _request_timeout=REQUEST_TIMEOUT))
            else:
                result = cast(dict[str, Any], self.custom.list_cluster_custom_object(
                    GROUP, VERSION, PLURALS[kind], _request_timeout=REQUEST_TIMEOUT))
        except (ApiException, HTTPError, OSError) as exc:
            raise map_api_error(exc, f"list {PLURALS[kind]}") from None
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    def write_status(self, obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """Replace ``.status`` of ``obj`` as read (its resourceVersion is the precondition)."""
        meta = obj["metadata"]
        kind = obj["kind"]
        body = {
            "apiVersion": obj["apiVersion"],
            "kind": kind,
            "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                         "resourceVersion": meta["resourceVersion"]},
            "spec": obj.get("spec", {}),
            "status": status,
        }
        try:
            written = cast(dict[str, Any], self.custom.replace_namespaced_custom_object_status(
                GROUP, VERSION, meta["namespace"], PLURALS[kind], meta["name"], body,
                _request_timeout=REQUEST_TIMEOUT,
            ))
            return written
        except (ApiException, HTTPError, OSError) as exc:
            raise map_api_error(exc, f"write status of {kind} {meta['namespace']}/"
                                     f"{meta['name']}") from None

    def patch_spec(self, kind: str, namespace: str, name: str, patch: dict[str, Any],
                   resource_version: str | None = None) -> dict[str, Any]:
        """A JSON merge patch of ``spec`` (used by the CLI for requests, pause, overrides)."""
        body: dict[str, Any] = {"spec": patch}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            patched = cast(dict[str, Any], self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURALS[kind], name, body,
                _content_type="application/merge-patch+json",
                _request_timeout=REQUEST_TIMEOUT,
            ))
            return patched
        except (ApiException, HTTPError, OSError) as exc:
            raise map_api_error(exc, f"patch {kind} {namespace}/{name}") from None
