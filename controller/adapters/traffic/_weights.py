"""Routers whose weights are integer fields inside one custom object (HTTPRoute,
VirtualService): find the weight fields, read them, and rewrite only them.

A provider says where the stable and canary weights of its object are (``locate``); this
module turns that into an observation, a read-back check, and a JSON patch
(RFC 6902) whose first operation tests ``/metadata/resourceVersion`` and whose other
operations set exactly those weight fields. See ``gateway_api.py`` for why a guarded JSON
patch rather than server-side apply.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes.client import ApiClient, CustomObjectsApi

from controller.adapters.traffic._kube import (
    JSON_PATCH,
    REQUEST_TIMEOUT,
    ObjectRef,
    Reason,
    check_weight,
    kube_errors,
)
from controller.engine.measurements import Track
from controller.ports import RouterError, RouterObservation


@dataclass(frozen=True, slots=True)
class WeightSlot:
    """One weight field: where it is (a JSON pointer), whose it is, what it holds now.

    Slots of the same ``group`` (an HTTPRoute rule, a VirtualService http route) split one
    stream of requests between them.
    """

    path: str
    track: Track
    group: str
    current: int | None
    default: int  # what the API takes an absent weight to mean

    @property
    def effective(self) -> int:
        return self.default if self.current is None else self.current

    def wanted(self, weight: int) -> int:
        return weight if self.track is Track.CANARY else 100 - weight


def canary_share(slots: Sequence[WeightSlot]) -> int | None:
    """Canary percent of one group's traffic, or None when every weight there is 0."""
    canary = sum(s.effective for s in slots if s.track is Track.CANARY)
    stable = sum(s.effective for s in slots if s.track is Track.STABLE)
    if canary + stable == 0:
        return None
    return round(100 * canary / (canary + stable))


def observation_of(slots: Sequence[WeightSlot], ref: ObjectRef) -> RouterObservation:
    groups: dict[str, list[WeightSlot]] = {}
    for slot in slots:
        groups.setdefault(slot.group, []).append(slot)
    shares = {group: canary_share(members) for group, members in groups.items()}
    zero = [g for g, share in shares.items() if share is None]
    if zero:
        return RouterObservation(
            weight=None,
            reason=Reason.ZERO_WEIGHTS,
            message=f"{ref}: every stable and canary weight is 0 in {', '.join(zero)}",
        )
    known = {g: s for g, s in shares.items() if s is not None}
    if len(set(known.values())) > 1:
        listing = ", ".join(f"{g}: {s}%" for g, s in known.items())
        return RouterObservation(
            weight=max(known.values()),
            reason=Reason.INCONSISTENT_WEIGHTS,
            message=f"{ref} sends different canary shares ({listing}); reporting the largest",
        )
    return RouterObservation(weight=next(iter(known.values())), reason=Reason.OBSERVED)


def weight_patch(resource_version: str, slots: Sequence[WeightSlot],
                 weight: int) -> list[dict[str, Any]]:
    """The JSON patch setting WEIGHT, or ``[]`` when the object already carries it."""
    ops: list[dict[str, Any]] = [
        {"op": "replace" if slot.current is not None else "add",
         "path": slot.path, "value": slot.wanted(weight)}
        for slot in slots
        if slot.current != slot.wanted(weight)
    ]
    if not ops:
        return []
    return [{"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
            *ops]


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether the route's parents accepted what it says now (see RouterObservation)."""

    ready: bool | None = None
    rejected: bool = False
    message: str = ""


class WeightedObjectRouter(ABC):
    """A ``TrafficRouter`` over the weight fields of one namespaced custom object, plus the
    structure a provider adds around them (header routes, a mirror)."""

    group: str
    version: str
    plural: str
    kind: str
    list_path: str  # the JSON pointer of the list rebuilt when the structure changes

    def __init__(self, api: ApiClient, namespace: str, name: str, *,
                 field_manager: str = "rolloutctl") -> None:
        self._objects = CustomObjectsApi(api)
        self._field_manager = field_manager
        self.ref = ObjectRef(f"{self.group}/{self.version}", self.kind, namespace, name)

    # --------------------------------------------------------------- provider specifics

    @abstractmethod
    def locate(self, obj: dict[str, Any]) -> list[WeightSlot]:
        """The stable and canary weight slots of OBJ; raises RouterError (RouteNotFound,
        BackendNotFound) with the fix when they are not there."""

    @property
    @abstractmethod
    def not_found_fix(self) -> str:
        """What to do when the object itself does not exist."""

    @abstractmethod
    def structure(self, obj: dict[str, Any]) -> tuple[int, bool | None]:
        """The percent of requests OBJ mirrors to the canary, and whether its header routes
        to the canary are in place: True (as the plan wants them), False (none), None
        (there, but not what the plan says: never what anyone wants, so rewritten)."""

    @abstractmethod
    def rebuild(self, obj: dict[str, Any], weight: int, mirror: int,
                match: bool) -> list[Any]:
        """The list at ``list_path`` carrying WEIGHT, MIRROR and MATCH, everything else as
        in OBJ (a new list)."""

    @abstractmethod
    def readiness(self, obj: dict[str, Any]) -> Readiness:
        """What the object's status says about its parents accepting it."""

    # --------------------------------------------------------------- TrafficRouter

    def observe(self) -> RouterObservation:
        try:
            obj = self._read()
            slots = self.locate(obj)
        except RouterError as err:
            return RouterObservation(weight=None, reason=err.reason, message=err.message)
        seen = observation_of(slots, self.ref)
        mirror, match = self.structure(obj)
        ready = self.readiness(obj)
        return RouterObservation(weight=seen.weight, reason=seen.reason, message=seen.message,
                                 mirror=mirror, match=match, ready=ready.ready,
                                 rejected=ready.rejected, ready_message=ready.message)

    def apply(self, weight: int, *, mirror: int = 0, match: bool = False) -> int:
        check_weight(weight)
        obj = self._read()
        slots = self.locate(obj)
        version = obj["metadata"]["resourceVersion"]
        if self.structure(obj) == (mirror, match):
            patch = weight_patch(version, slots, weight)
        else:
            patch = [{"op": "test", "path": "/metadata/resourceVersion", "value": version},
                     {"op": "replace", "path": self.list_path,
                      "value": self.rebuild(obj, weight, mirror, match)}]
        if patch:
            self._patch(patch)
        return weight

    def verify(self, weight: int, *, mirror: int = 0, match: bool = False) -> bool:
        check_weight(weight)
        obj = self._read()
        return (all(s.current == s.wanted(weight) for s in self.locate(obj))
                and self.structure(obj) == (mirror, match))

    def restore(self) -> None:
        self.apply(0)

    # --------------------------------------------------------------- API calls

    def _read(self) -> dict[str, Any]:
        with kube_errors(self.ref, "read", not_found=Reason.ROUTE_NOT_FOUND,
                         fix=self.not_found_fix):
            obj = self._objects.get_namespaced_custom_object(
                self.group, self.version, self.ref.namespace, self.plural, self.ref.name,
                _request_timeout=REQUEST_TIMEOUT,
            )
        if not isinstance(obj, dict):
            raise RouterError(Reason.API_ERROR, f"reading {self.ref} returned no object")
        return obj

    def _patch(self, patch: list[dict[str, Any]]) -> None:
        with kube_errors(self.ref, "patch the weights of", not_found=Reason.ROUTE_NOT_FOUND,
                         fix=self.not_found_fix):
            self._objects.patch_namespaced_custom_object(
                self.group, self.version, self.ref.namespace, self.plural, self.ref.name,
                body=patch,
                field_manager=self._field_manager,
                _content_type=JSON_PATCH,
                _request_timeout=REQUEST_TIMEOUT,
            )


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_weight(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
