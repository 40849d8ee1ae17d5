"""What the user may see: RolloutPlans and SLOPolicies read with the user's own kubeconfig.

A cluster-wide list is tried first; when RBAC forbids it, each namespace is listed on its
own (the namespaces the user may list, else the ``--namespace`` ones, else the
kubeconfig context's) and a namespace whose list is forbidden is reported as "not
permitted", never as an error. Reads are shared by every browser tab: one read per
``max_age`` seconds at most.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from controller.api.plan import RolloutPlan
from controller.api.policy import SLOPolicy
from controller.errors import ControllerError, Permanent

KINDS = ("RolloutPlan", "SLOPolicy")


@dataclass(frozen=True)
class Snapshot:
    plans: list[RolloutPlan] = field(default_factory=list)
    policies: list[SLOPolicy] = field(default_factory=list)
    #: namespaces (or "all namespaces") whose lists RBAC forbids this user
    not_permitted: list[str] = field(default_factory=list)
    #: objects that did not parse, the API server being unreachable, ...
    problems: list[str] = field(default_factory=list)
    read_at: float = 0.0

    def plan(self, namespace: str, name: str) -> RolloutPlan | None:
        return next((p for p in self.plans if p.metadata.namespace == namespace
                     and p.metadata.name == name), None)

    def policy(self, namespace: str, name: str) -> SLOPolicy | None:
        return next((p for p in self.policies if p.metadata.namespace == namespace
                     and p.metadata.name == name), None)


Lister = Callable[[str, str | None], list[dict[str, Any]]]
NamespaceLister = Callable[[], list[str] | None]


def _forbidden(exc: Exception) -> bool:
    return isinstance(exc, Permanent) and exc.reason == "Forbidden"


Memo = dict[tuple[str, str, str], Any]


def read_snapshot(list_objects: Lister, list_namespaces: NamespaceLister,
                  namespaces: list[str], now: float, fallback: str | None = None,
                  memo: Memo | None = None) -> Snapshot:
    """Every plan and policy LIST_OBJECTS may list. NAMESPACES, when given, limits the
    view to them. A user who may neither list across namespaces nor list namespaces sees
    FALLBACK (the kubeconfig context's namespace). MEMO keeps the models parsed from
    earlier reads by (kind, uid, resourceVersion): an unchanged object is not parsed again."""
    raw: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
    not_permitted: list[str] = []
    problems: list[str] = []
    where: list[str | None] = list(namespaces) if namespaces else [None]
    for kind in KINDS:
        pending = list(where)
        while pending:
            ns = pending.pop(0)
            try:
                raw[kind].extend(list_objects(kind, ns))
            except ControllerError as exc:
                if not _forbidden(exc):
                    problems.append(str(exc))
                    continue
                if ns is None:  # no cluster-wide list: try namespace by namespace
                    visible = list_namespaces()
                    if visible is None:
                        _note(not_permitted, "listing namespaces")
                        visible = [fallback] if fallback else []
                    pending.extend(visible)
                    continue
                _note(not_permitted, ns)
    seen: Memo = {}

    def parse(kind: str, doc: dict[str, Any], model: Any) -> Any:
        meta = doc.get("metadata") or {}
        key = (kind, str(meta.get("uid")), str(meta.get("resourceVersion")))
        parsed = (memo or {}).get(key)
        if parsed is None:
            try:
                parsed = model.model_validate(doc)
            except ValidationError as exc:
                problems.append(_unreadable(doc, exc))
                return None
        seen[key] = parsed
        return parsed

    plans: list[RolloutPlan] = [p for d in raw["RolloutPlan"]
                                if (p := parse("RolloutPlan", d, RolloutPlan)) is not None]
    policies: list[SLOPolicy] = [p for d in raw["SLOPolicy"]
                                 if (p := parse("SLOPolicy", d, SLOPolicy)) is not None]
    if memo is not None:
        memo.clear()
        memo.update(seen)
    plans.sort(key=lambda p: (p.metadata.namespace or "", p.metadata.name))
    policies.sort(key=lambda p: (p.metadata.namespace or "", p.metadata.name))
    return Snapshot(plans, policies, not_permitted, problems, now)


def _note(into: list[str], what: str) -> None:
    if what not in into:
        into.append(what)


def _unreadable(doc: dict[str, Any], exc: ValidationError) -> str:
    meta = doc.get("metadata", {})
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return (f"{doc.get('kind')} {meta.get('namespace')}/{meta.get('name')} cannot be read "
            f"({where}: {first['msg']}); is this rolloutctl as new as the CRDs?")


class SnapshotCache:
    """One read per MAX_AGE seconds, shared by every request (reads are serialised)."""

    def __init__(self, read: Callable[[], Snapshot], max_age: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._current: Snapshot | None = None
        self._taken = 0.0

    def get(self) -> Snapshot:
        with self._lock:
            if self._current is None or self._clock() - self._taken >= self.max_age:
                self._current = self._read()
                self._taken = self._clock()
            return self._current
