"""RolloutPlans and SLOPolicies on the API server: reads, status writes, and requests.

Status is written only through the ``/status`` subresource with the resourceVersion the
decision was based on: a concurrent writer gets the controller a 409, mapped to
``controller.errors.Conflict``. Raw dicts never leave this package except as the plain
``dict`` documents the API models parse.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from controller.adapters.kube.client import REQUEST_TIMEOUT, kubeconfig_exists
from controller.api.types import GROUP, PLURALS, VERSION, object_path
from controller.errors import Conflict, NotFound, Permanent, Transient


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
    verify = _certificate_failure(exc)
    if verify is not None:
        # Transient: the controller keeps retrying (a CA being rotated heals by itself)
        return Transient(f"{what}: the API server's certificate was refused ({verify}); check "
                         "certificate-authority and tls-server-name in the kubeconfig",
                         "CertificateRefused")
    if isinstance(exc, HTTPError | OSError | TimeoutError):
        return Transient(f"{what}: cannot reach the API server: {type(exc).__name__}",
                         "ApiUnreachable")
    return exc


def _certificate_failure(exc: BaseException) -> str | None:
    """What TLS said when it refused the server's certificate (urllib3 wraps the
    ``ssl.SSLCertVerificationError`` in ``SSLError`` inside ``MaxRetryError``), else None."""
    import ssl

    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLCertVerificationError):
            return str(seen.verify_message or seen.reason or "verify failed").rstrip(".")
        inner = getattr(seen, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((a for a in seen.args if isinstance(a, BaseException)),
                         seen.__cause__ or seen.__context__)
        seen = inner
    return None


def _reason(exc: ApiException) -> str:
    import json

    try:
        body = json.loads(exc.body or "{}")
        return str(body.get("message") or exc.reason)
    except (ValueError, TypeError):
        return str(exc.reason)


class ObjectStore:
    """Get, list and write status of rolloutctl's custom objects.

    It remembers the resourceVersion each of its status writes produced, so that the watch
    event echoing a write back can be told apart from a change by someone else
    (:meth:`is_own_write`).
    """

    #: status writes per object whose watch events may still be on their way
    WRITES_REMEMBERED = 8
    #: how long a watch event waits for this object's writes under way (else: not ours)
    ECHO_WAIT_SECONDS = 5.0

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self._custom: client.CustomObjectsApi | None = None
        self._written: dict[tuple[str, str, str], list[str]] = {}
        #: status writes under way per object: their echo may arrive before their response
        self._writing: dict[tuple[str, str, str], int] = {}
        self._written_lock = threading.Condition()

    @property
    def custom(self) -> client.CustomObjectsApi:
        """Built on first use: its module and class take a third of a second to set up,
        which every CLI command that only reads would pay for nothing."""
        if self._custom is None:
            self._custom = client.CustomObjectsApi(self.api)
        return self._custom

    def _get_json(self, path: str, query: list[tuple[str, str]] | None = None) -> Any:
        """A GET through the ApiClient (auth, TLS, errors as ApiException) returning JSON."""
        request = self.api.param_serialize(
            method="GET", resource_path=path, query_params=query or [],
            header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
        response = self.api.call_api(*request, _request_timeout=REQUEST_TIMEOUT)
        response.read()  # type: ignore[no-untyped-call]
        return self.api.response_deserialize(
            response_data=response, response_types_map={"200": "object"}).data

    def is_own_write(self, obj: dict[str, Any]) -> bool:
        """True, once, for the object exactly as one of this store's status writes left it
        (its resourceVersion): the watch event of that write, which tells the writer nothing
        new. Any other event of the object — someone else's write, a resync — answers
        False."""
        meta = obj.get("metadata") or {}
        key = (str(obj.get("kind")), str(meta.get("namespace")), str(meta.get("name")))
        version = meta.get("resourceVersion")
        with self._written_lock:
            # the watch can deliver a write's echo before the write's response is read:
            # wait (briefly, bounded) until this object's writes under way have reported
            self._written_lock.wait_for(lambda: not self._writing.get(key),
                                        timeout=self.ECHO_WAIT_SECONDS)
            versions = self._written.get(key)
            if version is None or not versions or version not in versions:
                return False
            # events arrive in order: the echoes of earlier writes are past too
            del versions[:versions.index(version) + 1]
            if not versions:
                del self._written[key]
            return True

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj = cast(dict[str, Any], self._get_json(object_path(kind, namespace, name)))
            return obj
        except (ApiException, HTTPError, OSError) as exc:
            if isinstance(exc, ApiException) and exc.status == 404:
                return None
            raise map_api_error(exc, f"get {kind} {namespace}/{name}") from None

    def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        try:
            where = f"namespaces/{namespace}/" if namespace else ""
            result = cast(dict[str, Any], self._get_json(
                f"/apis/{GROUP}/{VERSION}/{where}{PLURALS[kind]}"))
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
        key = (kind, meta["namespace"], meta["name"])
        with self._written_lock:
            self._writing[key] = self._writing.get(key, 0) + 1
        version = None
        try:
            written = cast(dict[str, Any], self.custom.replace_namespaced_custom_object_status(
                GROUP, VERSION, meta["namespace"], PLURALS[kind], meta["name"], body,
                _request_timeout=REQUEST_TIMEOUT,
            ))
            version = (written.get("metadata") or {}).get("resourceVersion")
            return written
        except (ApiException, HTTPError, OSError) as exc:
            raise map_api_error(exc, f"write status of {kind} {meta['namespace']}/"
                                     f"{meta['name']}") from None
        finally:
            with self._written_lock:
                if version is not None:
                    versions = self._written.setdefault(key, [])
                    versions.append(str(version))
                    del versions[:-self.WRITES_REMEMBERED]
                self._writing[key] -= 1
                if not self._writing[key]:
                    del self._writing[key]
                self._written_lock.notify_all()

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


# ----------------------------------------------------------------------------- for the CLI
#
# Small reads the operator's CLI needs besides the custom objects. Each returns plain data
# (str, dict, bool, a frozen dataclass); ``kubernetes`` stays inside this package.


def kubeconfig_context(kubeconfig: str | None, context: str | None) -> tuple[str | None,
                                                                             str | None]:
    """The namespace and user name of the kubeconfig context the CLI will use (None when
    unset, or when there is no kubeconfig: in-cluster the namespace is the pod's own)."""
    import os

    from kubernetes import config as kube_config
    from kubernetes.config.config_exception import ConfigException

    path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    if not kubeconfig_exists(path):
        sa_namespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
        if os.path.exists(sa_namespace):
            with open(sa_namespace, encoding="utf-8") as f:
                return f.read().strip() or None, None
        return None, None
    try:
        contexts, active = kube_config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=path)
    except (ConfigException, OSError, ValueError):
        return None, None
    chosen = active
    if context is not None:
        chosen = next((c for c in contexts or [] if c.get("name") == context), None)
    ctx = (chosen or {}).get("context") or {}
    return ctx.get("namespace") or None, ctx.get("user") or None


def server_url(api: client.ApiClient) -> str:
    """The API server's address this client talks to."""
    return str(api.configuration.host)


def _post_raw(api: client.ApiClient, call: Any, body: dict[str, Any], what: str
              ) -> dict[str, Any]:
    import json

    try:
        response = call(body, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
    except (ApiException, HTTPError, OSError) as exc:
        raise map_api_error(exc, what) from None
    return cast(dict[str, Any], json.loads(response.data))


def whoami(api: client.ApiClient) -> str | None:
    """The user name the API server knows this client as (a SelfSubjectReview), or None
    when the server does not answer it (older than 1.28, or forbidden)."""
    try:
        review = _post_raw(
            api, client.AuthenticationV1Api(api).create_self_subject_review,
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
            "create SelfSubjectReview")
    except (Permanent, NotFound):
        return None
    name = review.get("status", {}).get("userInfo", {}).get("username")
    return str(name) if name else None


@dataclass(frozen=True)
class Access:
    """One access check: may SUBJECT VERB RESOURCE (in NAMESPACE)?"""

    verb: str
    resource: str
    group: str = ""
    namespace: str | None = None
    subresource: str | None = None
    name: str | None = None  # one object, for rules with resourceNames

    def attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {"verb": self.verb, "resource": self.resource,
                                 "group": self.group}
        if self.namespace:
            attrs["namespace"] = self.namespace
        if self.subresource:
            attrs["subresource"] = self.subresource
        if self.name:
            attrs["name"] = self.name
        return attrs

    def __str__(self) -> str:
        what = self.resource + (f"/{self.subresource}" if self.subresource else "")
        what += f".{self.group}" if self.group else ""
        what += f" {self.name}" if self.name else ""
        return f"{self.verb} {what}" + (f" in {self.namespace}" if self.namespace else "")


def can_i(api: client.ApiClient, access: Access) -> bool:
    """A SelfSubjectAccessReview: may this client's user do ACCESS?"""
    review = _post_raw(
        api, client.AuthorizationV1Api(api).create_self_subject_access_review,
        {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
         "spec": {"resourceAttributes": access.attributes()}},
        f"check access ({access})")
    return bool(review.get("status", {}).get("allowed"))


def can_user(api: client.ApiClient, user: str, groups: list[str], access: Access) -> bool:
    """A SubjectAccessReview: may USER (in GROUPS) do ACCESS? Needs ``create
    subjectaccessreviews`` (``Permanent`` when forbidden)."""
    review = _post_raw(
        api, client.AuthorizationV1Api(api).create_subject_access_review,
        {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
         "spec": {"user": user, "groups": groups, "resourceAttributes": access.attributes()}},
        f"check access of {user} ({access})")
    return bool(review.get("status", {}).get("allowed"))


def read_crd(api: client.ApiClient, name: str) -> dict[str, Any] | None:
    """A CustomResourceDefinition as served (raw JSON), or None when it is not installed."""
    import json

    try:
        response: Any = client.ApiextensionsV1Api(api).read_custom_resource_definition(
            name, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
    except (ApiException, HTTPError, OSError) as exc:
        if isinstance(exc, ApiException) and exc.status == 404:
            return None
        raise map_api_error(exc, f"read CustomResourceDefinition {name}") from None
    return cast(dict[str, Any], json.loads(response.data))


@dataclass(frozen=True)
class LeaseInfo:
    """Who holds a Lease and when they last renewed it (None: never)."""

    holder: str
    renew_time: datetime | None
    duration_seconds: int


def read_lease(api: client.ApiClient, namespace: str, name: str) -> LeaseInfo | None:
    """A ``coordination.k8s.io/v1`` Lease's holder and renewTime, or None when absent."""
    import json

    try:
        response: Any = client.CoordinationV1Api(api).read_namespaced_lease(
            name, namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
    except (ApiException, HTTPError, OSError) as exc:
        if isinstance(exc, ApiException) and exc.status == 404:
            return None
        raise map_api_error(exc, f"read Lease {namespace}/{name}") from None
    spec = json.loads(response.data).get("spec") or {}
    renew = spec.get("renewTime")
    return LeaseInfo(
        holder=str(spec.get("holderIdentity") or ""),
        renew_time=datetime.fromisoformat(renew) if renew else None,
        duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
    )
