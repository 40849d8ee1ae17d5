"""What every traffic router shares: the reasons it reports, raw-JSON calls to the API
server, and the one place where the client's exceptions become ``RouterError``.

Routers work on the objects as the API server serves them (plain dicts, camelCase keys),
read with ``_preload_content=False``: no generated ``V1*`` model is built, so fields the
client does not know (newer API versions, CRD fields) are never dropped on the way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from controller.adapters.kube.client import REQUEST_TIMEOUT
from controller.ports import RouterError

__all__ = [
    "JSON",
    "JSON_PATCH",
    "MERGE_PATCH",
    "REQUEST_TIMEOUT",
    "ObjectRef",
    "Reason",
    "check_weight",
    "kube_errors",
    "response_json",
]

JSON = "application/json"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"

_MAX_SERVER_MESSAGE = 300


class Reason(StrEnum):
    """CamelCase reasons of ``RouterError`` and ``RouterObservation``."""

    OBSERVED = "Observed"
    # the user's objects
    ROUTE_NOT_FOUND = "RouteNotFound"
    BACKEND_NOT_FOUND = "BackendNotFound"
    INGRESS_NOT_FOUND = "IngressNotFound"
    INGRESS_NOT_OWNED = "IngressNotOwned"
    DEPLOYMENT_NOT_FOUND = "DeploymentNotFound"
    API_NOT_SERVED = "ApiNotServed"
    INVALID_SPEC = "InvalidSpec"
    # what the objects say
    INCONSISTENT_WEIGHTS = "InconsistentWeights"
    ZERO_WEIGHTS = "ZeroWeights"
    INVALID_WEIGHT = "InvalidWeight"
    REPLICAS_EDITED = "ReplicasEdited"
    # the API server
    CONFLICT = "Conflict"
    FORBIDDEN = "Forbidden"
    INVALID = "Invalid"
    API_ERROR = "ApiError"


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """An object a router reads or writes, named the way a user would look for it."""

    api_version: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def check_weight(weight: int) -> None:
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        raise RouterError(
            Reason.INVALID_SPEC, f"canary weight must be an integer from 0 to 100, not {weight!r}"
        )


def response_json(response: Any) -> dict[str, Any]:
    """The body of a ``_preload_content=False`` response as a dict."""
    data = json.loads(response.data)
    if not isinstance(data, dict):
        raise RouterError(Reason.API_ERROR, "the API server answered with a non-object body")
    return data


def _server_status(exc: ApiException) -> dict[str, Any]:
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if not isinstance(body, str) or not body:
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        return {"message": body}
    return data if isinstance(data, dict) else {}


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= _MAX_SERVER_MESSAGE:
        return text
    return text[: _MAX_SERVER_MESSAGE - 3] + "..."


def is_not_found(exc: ApiException, ref: ObjectRef) -> bool:
    """True when the API server says the object REF does not exist (as opposed to its
    resource type not being served at all: a missing CRD also answers 404)."""
    if exc.status != 404:
        return False
    details = _server_status(exc).get("details") or {}
    return isinstance(details, dict) and details.get("name") == ref.name


def to_router_error(exc: ApiException, ref: ObjectRef, action: str, *,
                    not_found: Reason, fix: str) -> RouterError:
    """One mapping of the API server's answers to our taxonomy (STYLE.md habit 5)."""
    status = _server_status(exc)
    said = _shorten(str(status.get("message") or exc.reason or ""))
    code = exc.status
    if code == 404:
        if is_not_found(exc, ref):
            return RouterError(not_found, f"{ref} not found: {fix}" if fix else
                               f"{ref} not found")
        details = status.get("details")
        if isinstance(details, dict) and details.get("name"):  # e.g. the namespace
            return RouterError(not_found, f"cannot {action} {ref}: {said}")
        return RouterError(
            Reason.API_NOT_SERVED,
            f"the API server does not serve {ref.api_version} {ref.kind} (HTTP 404 while "
            f"trying to {action} {ref}): install the CRD that serves it, at a version that "
            f"serves {ref.api_version}",
        )
    if code == 409:
        return RouterError(
            Reason.CONFLICT,
            f"{ref} changed while rolloutctl tried to {action} it ({said}); "
            "the next reconcile re-reads it and tries again",
        )
    if code == 422:
        details = status.get("details")
        if not (isinstance(details, dict) and details.get("name")):
            # A JSON patch that does not apply: the API server answers 422 with a generic
            # message and empty details (a validation error names the object). Our patches
            # only test metadata.resourceVersion and set fields found at that version, so
            # the test failed: someone wrote in between.
            return RouterError(
                Reason.CONFLICT,
                f"{ref} changed between read and write while rolloutctl tried to {action} "
                "it; the next reconcile re-reads it and tries again",
            )
        return RouterError(Reason.INVALID, f"the API server rejected the {action} of {ref}: "
                                           f"{said}")
    if code in (401, 403):
        return RouterError(
            Reason.FORBIDDEN,
            f"rolloutctl may not {action} {ref} (HTTP {code}: {said}); grant its service "
            f"account that verb on {ref.kind} in namespace {ref.namespace}",
        )
    return RouterError(
        Reason.API_ERROR,
        f"the API server failed to {action} {ref} (HTTP {code}: {said}); retried on the "
        "next reconcile",
    )


@contextmanager
def kube_errors(ref: ObjectRef, action: str, *, not_found: Reason, fix: str) -> Iterator[None]:
    """Run one API call: ``ApiException`` and transport errors come out as ``RouterError``."""
    try:
        yield
    except ApiException as exc:
        raise to_router_error(exc, ref, action, not_found=not_found, fix=fix) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise RouterError(
            Reason.API_ERROR,
            f"cannot reach the API server to {action} {ref} ({type(exc).__name__}); "
            "retried on the next reconcile",
        ) from exc
