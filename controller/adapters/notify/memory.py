"""An in-memory NotificationStore with the API server's concurrency rules.

Objects are kept raw (as the API server returns them), every write bumps the
resourceVersion, a write carrying a stale resourceVersion is a Conflict, and status is
patched with JSON merge patch semantics, so the dispatcher's conflict handling is exercised
by unit tests exactly as against the real server.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from controller.adapters.notify.errors import SecretUnavailable
from controller.adapters.notify.redact import redact, remember_secret
from controller.adapters.notify.store import state_patch
from controller.adapters.notify.subject import Kind, ObjectRef, Subject, subject_from_object
from controller.api.notifications import (
    Notifications,
    NotificationState,
    OutgoingMessage,
    SecretKeyRef,
    Severity,
)
from controller.api.plan import ReplicaRoute, RolloutPlanSpec, Target, Traffic, WorkloadRef
from controller.api.types import API_VERSION
from controller.errors import Conflict, NotFound, Transient


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@dataclass(frozen=True)
class RecordedEvent:
    ref: ObjectRef
    reason: str
    message: str


class InMemoryNotificationStore:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._objects: dict[ObjectRef, dict[str, Any]] = {}
        self._secrets: dict[tuple[str, str], dict[str, str]] = {}
        self._rv = 0
        self.events: list[RecordedEvent] = []
        self.writes = 0
        self.conflicts = 0
        self.secret_reads = 0
        #: called (outside the lock) before each write_state; may change the object
        self.before_write: Callable[[ObjectRef], None] | None = None
        self._failing_writes = 0

    # ------------------------------------------------------------------ test controls

    def put(self, kind: Kind, obj: dict[str, Any]) -> ObjectRef:
        """Create or replace an object (as the reconciler would write it)."""
        with self._lock:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            meta.setdefault("namespace", "default")
            meta.setdefault("uid", f"uid-{meta['name']}")
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            ref = ObjectRef(kind, meta["namespace"], meta["name"])
            self._objects[ref] = obj
            return ref

    def update_status(self, ref: ObjectRef, change: Callable[[dict[str, Any]], object]) -> None:
        """Change an object's status in place (the engine appending to the outbox)."""
        with self._lock:
            obj = self._objects[ref]
            change(obj.setdefault("status", {}))
            self._rv += 1
            obj["metadata"]["resourceVersion"] = str(self._rv)

    def get(self, ref: ObjectRef) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._objects[ref])

    def delete(self, ref: ObjectRef) -> None:
        with self._lock:
            self._objects.pop(ref, None)

    def put_secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        with self._lock:
            self._secrets[(namespace, name)] = dict(data)

    def fail_writes(self, count: int) -> None:
        """The next COUNT writes fail as if the API server were unreachable."""
        with self._lock:
            self._failing_writes = count

    # ------------------------------------------------------------------ the Protocol

    def read(self, ref: ObjectRef) -> Subject:
        with self._lock:
            obj = self._objects.get(ref)
            if obj is None:
                raise NotFound(f"{ref} not found")
            return subject_from_object(ref.kind, copy.deepcopy(obj))

    def write_state(self, subject: Subject, state: NotificationState) -> Subject:
        if self.before_write is not None:
            self.before_write(subject.ref)
        with self._lock:
            if self._failing_writes > 0:
                self._failing_writes -= 1
                raise Transient(f"write {subject.ref}: ConnectionRefusedError")
            obj = self._objects.get(subject.ref)
            if obj is None:
                raise NotFound(f"{subject.ref} not found")
            if obj["metadata"]["resourceVersion"] != subject.resource_version:
                self.conflicts += 1
                raise Conflict(f"write {subject.ref}: the object changed (409)")
            status = obj.setdefault("status", {})
            status["notifications"] = merge_patch(
                status.get("notifications"), state_patch(state)
            )
            self._rv += 1
            obj["metadata"]["resourceVersion"] = str(self._rv)
            self.writes += 1
            return subject_from_object(subject.ref.kind, copy.deepcopy(obj))

    def read_secret(self, namespace: str, ref: SecretKeyRef) -> str:
        with self._lock:
            self.secret_reads += 1
            data = self._secrets.get((namespace, ref.name))
        if data is None:
            raise SecretUnavailable(f"Secret {namespace}/{ref.name} not found")
        value = data.get(ref.key)
        if value is None:
            raise SecretUnavailable(f"Secret {namespace}/{ref.name} has no key {ref.key!r}")
        remember_secret(value)
        return value

    def record_event(self, subject: Subject, reason: str, message: str) -> None:
        with self._lock:
            self.events.append(RecordedEvent(subject.ref, reason, redact(message)))


# ----------------------------------------------------------------------------- builders

_CRITICAL = frozenset({"RollbackStarted", "RolledBack", "Failed", "FreezeStarted"})
_WARNING = frozenset({"Holding", "Paused", "Frozen", "Invalid", "OverrideActivated",
                      "DriftCorrected"})


def outbox_entry(
    key: str,
    type: str,
    *,
    run: int | None = 1,
    title: str | None = None,
    text: str = "",
    drill: bool = False,
    step: int | None = None,
    weight: int | None = None,
    evidence: list[dict[str, Any]] | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """An outbox entry as the engine writes it (wire form)."""
    severity = "critical" if type in _CRITICAL else "warning" if type in _WARNING else "info"
    entry = OutgoingMessage(
        key=key, type=type, severity=Severity(severity), at=at or datetime.now(UTC),
        title=title or type, text=text, drill=drill, run=run, step=step, weight=weight,
        evidence=list(evidence or []),
    )
    return entry.to_wire()


def plan_object(
    name: str,
    namespace: str = "default",
    *,
    notifications: dict[str, Any] | None = None,
    run: int = 1,
    phase: str = "Progressing",
    step: int | None = 0,
    weight: int = 10,
    revision: str = "7f9c2ab",
    gates: list[dict[str, Any]] | None = None,
    outbox: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A valid RolloutPlan (replica-ratio router, default steps) with a status."""
    spec = RolloutPlanSpec(
        target=Target(stable=WorkloadRef(name=name), canary=WorkloadRef(name=f"{name}-canary")),
        traffic=Traffic(replicas=ReplicaRoute()),
        notifications=Notifications.model_validate(notifications) if notifications else None,
    )
    status: dict[str, Any] = {
        "phase": phase, "run": run, "revision": revision, "canaryWeight": weight,
        "gates": gates or [],
        "notifications": {"outbox": outbox or []},
    }
    if step is not None:
        status["currentStep"] = step
    return {
        "apiVersion": API_VERSION, "kind": "RolloutPlan",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec.to_wire(), "status": status,
    }


def policy_object(
    name: str,
    namespace: str = "default",
    *,
    notifications: dict[str, Any] | None = None,
    frozen: bool = False,
    budget_remaining: float | None = 50.0,
    freeze_notify: list[str] | None = None,
    open_incident: bool = True,
    outbox: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A valid SLOPolicy with one availability SLO, a freeze policy and a status."""
    freeze: dict[str, Any] = {"slo": "api_availability", "openIncident": open_incident}
    if freeze_notify is not None:
        freeze["notify"] = freeze_notify
    spec: dict[str, Any] = {
        "slos": [{
            "name": "api_availability", "objective": 99.9, "window": "30d",
            "sli": {"ratio": {
                "bad": 'sum(rate(http_requests_total{code=~"5.."}[{{window}}]))',
                "total": "sum(rate(http_requests_total[{{window}}]))",
            }},
        }],
        "errorBudgetPolicy": {"freezeReleases": freeze},
    }
    if notifications:
        spec["notifications"] = notifications
    status: dict[str, Any] = {
        "frozen": frozen,
        "slos": [{"name": "api_availability", "state": "Ok",
                  "budgetRemaining": budget_remaining}],
        "notifications": {"outbox": outbox or []},
    }
    if budget_remaining is not None:
        status["budgetRemaining"] = budget_remaining
    return {
        "apiVersion": API_VERSION, "kind": "SLOPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec, "status": status,
    }
