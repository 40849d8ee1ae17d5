"""Istio router: canary weight as destination weights of a VirtualService http route.

Plan::

    traffic:
      istio: {virtualService: checkout, route: primary,
              stableHost: checkout.shop.svc.cluster.local,
              canaryHost: checkout-canary.shop.svc.cluster.local}

Without ``route``, every http route whose destinations list both hosts is shifted (the
header routes are then named ``rolloutctl-canary-<n>`` ahead of unnamed ones).

Header routes (``spec.traffic.match``): an http route ``<route>-rolloutctl-canary`` ahead of
each shifted one, with its matches plus each header match (a cookie: a regex on the
``cookie`` header), to the canary only. Mirror steps: ``mirror`` (the canary destination)
and ``mirrorPercentage`` on each shifted route. The write then replaces ``/spec/http`` as
read, under the same resourceVersion test. Readiness: ``status.observedGeneration`` where
Istio writes it (``PILOT_ENABLE_STATUS``), else nothing to wait for.

What it touches: ``VirtualService`` (``networking.istio.io/v1``, the version Istio's CRD
stores since Istio 1.22) ``virtualService`` in the plan's namespace; in the entry of
``spec.http`` whose ``name`` is ``route``, the ``weight`` of every destination whose
``destination.host`` is ``stableHost`` becomes ``100 - w`` and of every destination whose
host is ``canaryHost`` becomes ``w``. Nothing else: not other http routes, matches,
retries, timeouts, tcp/tls routes, labels or annotations.

What the user must do: name the http route, and list both hosts in it (the router never
adds or removes a destination); hosts are compared as written, so write them the same way
in the plan and in the VirtualService. Stable and canary must be different hosts (a
subset-based split is not supported yet). A missing VirtualService or route gives
``RouterError("RouteNotFound")``, a missing destination ``RouterError("BackendNotFound")``.

GitOps: ``http`` and ``route`` are plain lists, so server-side apply would take ownership
of whole lists from the GitOps tool. As for the Gateway API router, the write is a JSON
patch (field manager ``rolloutctl``) that tests ``/metadata/resourceVersion`` first and
then sets only the weights: a concurrent writer makes it fail with
``RouterError("Conflict")`` and nothing is written. Tell the GitOps tool to ignore
``.spec.http[].route[].weight`` (Argo CD ``ignoreDifferences``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from kubernetes.client import ApiClient

from controller.adapters.traffic._kube import Reason
from controller.adapters.traffic._weights import (
    Readiness,
    WeightedObjectRouter,
    WeightSlot,
    as_dict,
    as_list,
    as_weight,
)
from controller.adapters.traffic.matching import cookie_regex
from controller.api.plan import IstioRoute, RouteMatch
from controller.engine.measurements import Track
from controller.ports import RouterError

WEIGHT_DEFAULT = 0  # proto3: an absent weight is 0
MATCH_ROUTE_SUFFIX = "-rolloutctl-canary"  # names of the http routes the router adds
MATCH_ROUTE_PREFIX = "rolloutctl-canary-"  # (ahead of an unnamed http route)


def header_match(match: RouteMatch) -> tuple[str, dict[str, str]]:
    """(header name, StringMatch) for MATCH; a cookie is a regex on the cookie header."""
    if match.cookie is not None:
        return "cookie", {"regex": cookie_regex(match)}
    assert match.header is not None
    name = match.header.lower()  # Istio requires lowercase header names
    if match.exact is not None:
        return name, {"exact": match.exact}
    if match.prefix is not None:
        return name, {"prefix": match.prefix}
    return name, {"regex": match.regex or ""}


class IstioRouter(WeightedObjectRouter):
    group = "networking.istio.io"
    version = "v1"
    plural = "virtualservices"
    kind = "VirtualService"

    def __init__(self, api: ApiClient, namespace: str, route: IstioRoute, *,
                 matches: Sequence[RouteMatch] = (),
                 field_manager: str = "rolloutctl") -> None:
        if route.stable_host == route.canary_host:
            raise RouterError(
                Reason.INVALID_SPEC,
                f"spec.traffic.istio: stableHost and canaryHost are both {route.stable_host!r};"
                " give the canary its own Service host",
            )
        super().__init__(api, namespace, route.virtual_service, field_manager=field_manager)
        self.route = route
        self.headers = [header_match(m) for m in matches]

    list_path = "/spec/http"

    # --------------------------------------------------------------- which http routes

    @staticmethod
    def _is_ours(entry: Any) -> bool:
        name = str(as_dict(entry).get("name", ""))
        return name.endswith(MATCH_ROUTE_SUFFIX) or name.startswith(MATCH_ROUTE_PREFIX)

    def _hosts(self, entry: dict[str, Any]) -> set[Any]:
        return {as_dict(as_dict(d).get("destination")).get("host")
                for d in as_list(entry.get("route"))}

    def _weighted(self, entry: Any) -> bool:
        """Is ENTRY an http route the plan shifts: the named one, or (no ``route`` in the
        plan) any listing both hosts; never one the router added."""
        entry = as_dict(entry)
        if self._is_ours(entry):
            return False
        if self.route.route is not None:
            return bool(entry.get("name") == self.route.route)
        return {self.route.stable_host, self.route.canary_host} <= self._hosts(entry)

    def _match_name(self, entry: dict[str, Any], k: int) -> str:
        name = entry.get("name")
        return f"{name}{MATCH_ROUTE_SUFFIX}" if name else f"{MATCH_ROUTE_PREFIX}{k}"

    def _canary_destination(self, route: dict[str, Any]) -> dict[str, Any]:
        for d in as_list(route.get("route")):
            dest = as_dict(as_dict(d).get("destination"))
            if dest.get("host") == self.route.canary_host:
                return dest
        return {"host": self.route.canary_host}

    def _mirror_of(self, entry: dict[str, Any]) -> int:
        if as_dict(entry.get("mirror")).get("host") != self.route.canary_host:
            return 0
        value = as_dict(entry.get("mirrorPercentage")).get("value")
        return 100 if not isinstance(value, (int, float)) else round(value)

    def structure(self, obj: dict[str, Any]) -> tuple[int, bool | None]:
        http = [as_dict(h) for h in as_list(as_dict(obj.get("spec")).get("http"))]
        weighted = [i for i, h in enumerate(http) if self._weighted(h)]
        mirrors = {self._mirror_of(http[i]) for i in weighted}
        mirror = -1 if len(mirrors) > 1 else max(mirrors) if mirrors else 0
        ours = [h for h in http if self._is_ours(h)]
        if not ours:
            return mirror, False
        correct = bool(self.headers) and len(ours) == len(weighted) and all(
            i > 0 and self._match_route_ok(http[i - 1], self._match_name(http[i], k))
            for k, i in enumerate(weighted))
        return mirror, True if correct else None  # None: there, but not the plan's

    def _match_route_ok(self, route: dict[str, Any], name: str) -> bool:
        if route.get("name") != name:
            return False
        dests = [as_dict(as_dict(d).get("destination")).get("host")
                 for d in as_list(route.get("route"))]
        if dests != [self.route.canary_host]:
            return False
        found = {(name, tuple(sorted(as_dict(value).items())))
                 for m in as_list(route.get("match"))
                 for name, value in as_dict(as_dict(m).get("headers")).items()}
        wanted = {(name, tuple(sorted(value.items()))) for name, value in self.headers}
        return wanted <= found

    def rebuild(self, obj: dict[str, Any], weight: int, mirror: int,
                match: bool) -> list[Any]:
        http = [copy.deepcopy(as_dict(h)) for h in as_list(as_dict(obj.get("spec")).get("http"))
                if not self._is_ours(h)]
        out: list[Any] = []
        k = 0
        for route in http:
            if not self._weighted(route):
                out.append(route)
                continue
            for d in as_list(route.get("route")):
                host = as_dict(as_dict(d).get("destination")).get("host")
                if host == self.route.stable_host:
                    d["weight"] = 100 - weight
                elif host == self.route.canary_host:
                    d["weight"] = weight
            canary = self._canary_destination(route)
            if as_dict(route.get("mirror")).get("host") == self.route.canary_host:
                route.pop("mirror", None)
                route.pop("mirrorPercentage", None)
            if mirror:
                route["mirror"] = copy.deepcopy(canary)
                route["mirrorPercentage"] = {"value": float(mirror)}
            if match and self.headers:
                extra = {key: copy.deepcopy(v) for key, v in route.items()
                         if key not in ("name", "match", "route", "mirror", "mirrorPercentage",
                                        "mirrors")}
                out.append({
                    "name": self._match_name(route, k),
                    "match": [{**copy.deepcopy(as_dict(m)), "headers": {
                        **copy.deepcopy(as_dict(as_dict(m).get("headers"))), name: dict(value)}}
                        for m in (as_list(route.get("match")) or [{}])
                        for name, value in self.headers],
                    "route": [{"destination": copy.deepcopy(canary), "weight": 100}],
                    **extra,
                })
            out.append(route)
            k += 1
        return out

    def readiness(self, obj: dict[str, Any]) -> Readiness:
        """Istio writes ``status.observedGeneration`` only where status reporting is on
        (``PILOT_ENABLE_STATUS``): without it there is nothing to wait for."""
        seen = as_dict(obj.get("status")).get("observedGeneration")
        if seen is None:
            return Readiness()
        generation = as_dict(obj.get("metadata")).get("generation")
        try:
            current = int(seen) >= int(generation or 0)
        except (TypeError, ValueError):
            return Readiness()
        if current:
            return Readiness(True)
        return Readiness(False, False, f"Istio has processed generation {seen} of {self.ref}, "
                                       f"not generation {generation} yet")

    @property
    def not_found_fix(self) -> str:
        return (f"create it, or set spec.traffic.istio.virtualService to the VirtualService "
                f"that routes to {self.route.stable_host}")

    def _slots(self, http: list[dict[str, Any]], index: int) -> list[WeightSlot]:
        route = self.route
        name = http[index].get("name")
        return [
            WeightSlot(
                path=f"/spec/http/{index}/route/{j}/weight",
                track=track,
                group=f"http route {name!r}" if name else f"http route {index}",
                current=as_weight(d.get("weight")),
                default=WEIGHT_DEFAULT,
            )
            for j, d in enumerate(as_dict(d) for d in as_list(http[index].get("route")))
            for track, host in ((Track.STABLE, route.stable_host),
                                (Track.CANARY, route.canary_host))
            if as_dict(d.get("destination")).get("host") == host
        ]

    def locate(self, obj: dict[str, Any]) -> list[WeightSlot]:
        route = self.route
        http = [as_dict(h) for h in as_list(as_dict(obj.get("spec")).get("http"))]
        if route.route is None:  # every http route listing both hosts
            slots = [s for i, h in enumerate(http) if self._weighted(h)
                     for s in self._slots(http, i)]
            if not slots:
                raise RouterError(
                    Reason.BACKEND_NOT_FOUND,
                    f"{self.ref} has no http route whose destinations list both "
                    f"{route.stable_host} (stable) and {route.canary_host} (canary): list both "
                    "(canary with weight 0), or fix spec.traffic.istio.stableHost / canaryHost",
                )
            return slots
        index = next((i for i, h in enumerate(http) if h.get("name") == route.route), None)
        if index is None:
            names = ", ".join(repr(h["name"]) for h in http if h.get("name")) or "none"
            raise RouterError(
                Reason.ROUTE_NOT_FOUND,
                f"{self.ref} has no http route named {route.route!r} (named routes: {names}): "
                "set spec.http[].name on the route to shift, or fix spec.traffic.istio.route",
            )
        slots = self._slots(http, index)
        missing = [
            f"{track.value} host {host}"
            for track, host in ((Track.STABLE, route.stable_host),
                                (Track.CANARY, route.canary_host))
            if not any(s.track is track for s in slots)
        ]
        if missing:
            raise RouterError(
                Reason.BACKEND_NOT_FOUND,
                f"{self.ref} http route {route.route!r} has no destination for "
                f"{' and '.join(missing)}: list both hosts in its route "
                "(canary with weight 0), or fix spec.traffic.istio.stableHost / canaryHost",
            )
        return slots
