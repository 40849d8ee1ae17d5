"""A ``coordination.k8s.io/v1`` Lease as a leader-election record store.

Reads are raw JSON; writes are JSON merge patches carrying ``metadata.resourceVersion`` as
a precondition, so two replicas writing from the same read cannot both succeed (the loser
gets a 409, raised as :class:`controller.errors.Conflict`). Labels and annotations others
put on the Lease are kept. Times are written as MicroTime (wall clock, UTC) for other
replicas and tools to read; the elector itself judges expiry on its own monotonic clock.

Errors are mapped once, here: 409 -> ``Conflict``, 404 on a write -> ``Conflict`` (the Lease
went away: re-read), 401/403 -> ``Permanent``, anything else (5xx, timeouts, connection
errors) -> ``Transient``. No message quotes the server's answer.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError, ReadTimeoutError

from controller.errors import Conflict, Permanent, Transient
from controller.ports import LeaseRecord

__all__ = ["KubeLeaseStore", "LeaseRecord", "format_micro_time", "parse_micro_time"]

#: (connect, read) seconds: a lease call must end well within the renew deadline.
LEASE_REQUEST_TIMEOUT = (2.0, 4.0)
_MERGE_PATCH = "application/merge-patch+json"


def format_micro_time(moment: datetime) -> str:
    """``metav1.MicroTime``: RFC 3339 in UTC with microseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_micro_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


class KubeLeaseStore:
    """Get, create and update one Lease (``namespace/name``)."""

    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        name: str,
        request_timeout: tuple[float, float] = LEASE_REQUEST_TIMEOUT,
    ) -> None:
        self._api = client.CoordinationV1Api(api_client)
        self.namespace = namespace
        self.name = name
        self._timeout = request_timeout
        self._watch_lock = threading.Lock()
        self._watch: Any = None
        self._stopped: Any = None
        self._cancelled = False

    def __repr__(self) -> str:
        return f"KubeLeaseStore({self.namespace}/{self.name})"

    def get(self) -> LeaseRecord | None:
        """The record, or None when the Lease does not exist."""
        try:
            with self._errors("read"):
                response = self._api.read_namespaced_lease(
                    self.name, self.namespace,
                    _preload_content=False, _request_timeout=self._timeout,
                )
        except _Missing:
            return None
        return _record(_json(response))

    def create(self, record: LeaseRecord) -> LeaseRecord:
        """Create the Lease holding RECORD; ``Conflict`` when it exists already."""
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": _spec(record),
        }
        try:
            with self._errors("create"):
                response = self._api.create_namespaced_lease(
                    self.namespace, cast(Any, body),
                    _preload_content=False, _request_timeout=self._timeout,
                )
        except _Missing:  # the namespace does not exist
            raise Permanent(
                f"cannot create Lease {self.namespace}/{self.name}: namespace not found",
                "LeaseNamespaceNotFound",
            ) from None
        return _record(_json(response))

    def update(self, record: LeaseRecord) -> LeaseRecord:
        """Write RECORD if the Lease is still at ``record.resource_version``, else ``Conflict``."""
        if not record.resource_version:
            raise ValueError("update needs the resourceVersion the record was read at")
        body = {
            "metadata": {"resourceVersion": record.resource_version},
            "spec": _spec(record),
        }
        try:
            with self._errors("update"):
                response = self._api.patch_namespaced_lease(
                    self.name, self.namespace, body,
                    _content_type=_MERGE_PATCH,
                    _preload_content=False, _request_timeout=self._timeout,
                )
        except _Missing:
            raise Conflict(
                f"Lease {self.namespace}/{self.name} was deleted", "LeaseGone"
            ) from None
        return _record(_json(response))

    def wait_for_change(self, resource_version: str, timeout: float) -> bool:
        """Watch the Lease from RESOURCE_VERSION: True as soon as it changes (or the version
        is too old to watch from), False after TIMEOUT seconds without a change or when
        :meth:`cancel_wait` is called."""
        stream = watch.Watch(return_type=object)  # type: ignore[no-untyped-call]
        with self._watch_lock:
            if self._cancelled:
                self._cancelled = False
                return False
            self._watch = stream
        try:
            for event in stream.stream(  # type: ignore[no-untyped-call]
                self._api.list_namespaced_lease, self.namespace,
                field_selector=f"metadata.name={self.name}",
                resource_version=resource_version,
                timeout_seconds=max(1, math.ceil(timeout)),
                # the read timeout ends the wait on time; the server ends it too
                _request_timeout=(self._timeout[0], timeout),
            ):
                if event.get("type") in ("ADDED", "MODIFIED", "DELETED", "ERROR"):
                    return True  # an ERROR (410 Gone...) also means: read it again
            return False
        except ReadTimeoutError:
            return False
        except (ApiException, HTTPError, OSError) as exc:
            with self._watch_lock:
                if self._stopped is stream:  # cancel_wait shut its socket down
                    return False
            mapped = _map_error(exc, f"watch Lease {self.namespace}/{self.name}")
            if isinstance(mapped, _Missing | Conflict):
                return True  # gone, or too old a version: read it again
            raise mapped from None
        finally:
            with self._watch_lock:
                self._watch = self._stopped = None
                self._cancelled = False

    def cancel_wait(self) -> None:
        """End a :meth:`wait_for_change` in progress (from another thread), or the next."""
        with self._watch_lock:
            if self._watch is not None:
                self._stopped = self._watch
                self._watch.stop()
            else:
                self._cancelled = True

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except (ApiException, HTTPError, OSError) as exc:
            raise _map_error(exc, f"{action} Lease {self.namespace}/{self.name}") from None


def _map_error(exc: Exception, what: str) -> Exception:
    """The taxonomy error for a client exception (no message quotes the server)."""
    if isinstance(exc, ApiException):
        status = exc.status or 0
        if status == 404:
            return _Missing()
        if status == 409:
            return Conflict(f"{what}: someone else wrote it first", "LeaseConflict")
        if status == 410:
            return Conflict(f"{what}: resourceVersion too old", "Expired")
        if status in (401, 403):
            return Permanent(f"{what}: forbidden ({status}); check RBAC for leases",
                             "Forbidden")
        return Transient(f"{what}: API server answered {status}", "ApiError")
    return Transient(f"{what}: {type(exc).__name__}", "ApiUnreachable")


class _Missing(Exception):
    """404 from the API server (turned into None or a taxonomy error by the caller)."""


def _json(response: Any) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(response.data)
    except (ValueError, TypeError):
        raise Transient("the API server's answer about a Lease is not JSON",
                        "ApiError") from None
    return data


def _spec(record: LeaseRecord) -> dict[str, Any]:
    return {
        # null removes the field (a merge patch): a released Lease has no holder
        "holderIdentity": record.holder_identity or None,
        "leaseDurationSeconds": record.lease_duration_seconds,
        "acquireTime": format_micro_time(record.acquire_time) if record.acquire_time else None,
        "renewTime": format_micro_time(record.renew_time) if record.renew_time else None,
        "leaseTransitions": record.lease_transitions,
    }


def _record(lease: dict[str, Any]) -> LeaseRecord:
    spec = lease.get("spec") or {}
    return LeaseRecord(
        holder_identity=str(spec.get("holderIdentity") or ""),
        lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=parse_micro_time(spec.get("acquireTime")),
        renew_time=parse_micro_time(spec.get("renewTime")),
        lease_transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=str((lease.get("metadata") or {}).get("resourceVersion") or ""),
    )
