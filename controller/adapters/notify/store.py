"""Reading objects and Secrets, and recording delivery state, through the Kubernetes API.

``NotificationStore`` is the seam the dispatcher is written against; ``KubeNotificationStore``
is the real thing (CustomObjectsApi and CoreV1Api of the ``kubernetes`` client, explicit
content types and timeouts on every call) and ``memory.InMemoryNotificationStore`` the
stand-in for unit tests.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from controller.adapters.kube.client import REQUEST_TIMEOUT
from controller.adapters.notify.errors import SecretUnavailable
from controller.adapters.notify.redact import redact, redacting_logger, remember_secret
from controller.adapters.notify.subject import Kind, ObjectRef, Subject, subject_from_object
from controller.api.notifications import NotificationState, SecretKeyRef
from controller.api.types import GROUP, VERSION
from controller.errors import Conflict, ControllerError, NotFound, Transient
from controller.ports import NotificationStore

log = redacting_logger("controller.adapters.notify")

MERGE_PATCH = "application/merge-patch+json"
EVENT_COMPONENT = "rolloutctl-notifier"


def state_patch(state: NotificationState) -> dict[str, Any]:
    """status.notifications as a JSON merge patch value: fields that are now empty are
    sent as null (deleted), lists are replaced whole and carry no nulls."""

    def strip(node: Any, in_list: bool) -> Any:
        if isinstance(node, dict):
            return {
                k: strip(v, in_list)
                for k, v in node.items()
                if not (in_list and v is None)
            }
        if isinstance(node, list):
            return [strip(v, True) for v in node if v is not None]
        return node

    raw = state.model_dump(mode="json", by_alias=True, exclude_none=False)
    return dict(strip(raw, False))


class KubeNotificationStore:
    """NotificationStore over a ``kubernetes.client.ApiClient``."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        timeout: tuple[float, float] = REQUEST_TIMEOUT,
        reporting_instance: str = "",
    ) -> None:
        self._custom = client.CustomObjectsApi(api)
        self._core = client.CoreV1Api(api)
        self._timeout = timeout
        self._instance = reporting_instance

    def read(self, ref: ObjectRef) -> Subject:
        try:
            obj = self._custom.get_namespaced_custom_object(
                GROUP, VERSION, ref.namespace, ref.kind.plural, ref.name,
                _request_timeout=self._timeout,
            )
        except ApiException as exc:
            raise _store_error(exc, f"read {ref}") from None
        except (HTTPError, OSError) as exc:
            raise Transient(f"read {ref}: {type(exc).__name__}") from None
        return subject_from_object(ref.kind, _as_dict(obj))

    def write_state(self, subject: Subject, state: NotificationState) -> Subject:
        ref = subject.ref
        body = {
            "metadata": {"resourceVersion": subject.resource_version},
            "status": {"notifications": state_patch(state)},
        }
        try:
            obj = self._custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, ref.namespace, ref.kind.plural, ref.name, body,
                _content_type=MERGE_PATCH,
                _request_timeout=self._timeout,
            )
        except ApiException as exc:
            raise _store_error(exc, f"write status.notifications of {ref}") from None
        except (HTTPError, OSError) as exc:
            raise Transient(f"write {ref}: {type(exc).__name__}") from None
        return subject_from_object(ref.kind, _as_dict(obj))

    def read_secret(self, namespace: str, ref: SecretKeyRef) -> str:
        where = f"Secret {namespace}/{ref.name}"
        try:
            # Raw JSON: no V1Secret object (and its repr) holding the value.
            resp = self._core.read_namespaced_secret(
                ref.name, namespace, _preload_content=False, _request_timeout=self._timeout
            )
            data = json.loads(cast(bytes, resp.data)).get("data") or {}
        except ApiException as exc:
            if exc.status == 404:
                raise SecretUnavailable(f"{where} not found") from None
            if exc.status == 403:
                raise SecretUnavailable(f"not allowed to read {where}") from None
            raise Transient(f"read {where}: HTTP {exc.status}") from None
        except (HTTPError, OSError, ValueError) as exc:
            raise Transient(f"read {where}: {type(exc).__name__}") from None
        encoded = data.get(ref.key)
        if not isinstance(encoded, str):
            raise SecretUnavailable(f"{where} has no key {ref.key!r}")
        try:
            value = base64.b64decode(encoded, validate=True).decode("utf-8").strip()
        except (binascii.Error, UnicodeDecodeError):
            raise SecretUnavailable(f"{where} key {ref.key!r} is not UTF-8 text") from None
        if not value:
            raise SecretUnavailable(f"{where} key {ref.key!r} is empty")
        remember_secret(value)
        return value

    def record_event(self, subject: Subject, reason: str, message: str) -> None:
        ref = subject.ref
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": str(ref.kind),
                "name": ref.name,
                "namespace": ref.namespace,
                "uid": subject.uid,
            },
            "reason": reason,
            "message": redact(message)[:1024],
            "type": "Warning",
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": EVENT_COMPONENT},
            "reportingComponent": f"rolloutctl.dev/{EVENT_COMPONENT}",
            "reportingInstance": self._instance,
        }
        try:
            self._core.create_namespaced_event(
                ref.namespace, cast(Any, body), _request_timeout=self._timeout
            )
        except (ApiException, HTTPError, OSError) as exc:
            log.warning("could not record Event %s on %s: %s", reason, ref, type(exc).__name__)


def _as_dict(obj: object) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise Transient(f"unexpected answer from the API server: {type(obj).__name__}")
    return obj


def _store_error(exc: ApiException, what: str) -> ControllerError:
    if exc.status == 409:
        return Conflict(f"{what}: the object changed (409)")
    if exc.status == 404:
        return NotFound(f"{what}: not found")
    return Transient(f"{what}: HTTP {exc.status} {exc.reason or ''}".strip())


__all__ = [
    "Kind",
    "KubeNotificationStore",
    "NotificationStore",
    "state_patch",
]
