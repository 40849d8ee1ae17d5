"""Istio router: canary weight as destination weights of a VirtualService http route.

Plan::

    traffic:
      istio: {virtualService: checkout, route: primary,
              stableHost: checkout.shop.svc.cluster.local,
              canaryHost: checkout-canary.shop.svc.cluster.local}

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
MATCH_ROUTE_SUFFIX = "-rolloutctl-canary"  # name of the http route the router adds


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
        self.match_name = route.route + MATCH_ROUTE_SUFFIX

    list_path = "/spec/http"

    def _index(self, http: list[dict[str, Any]]) -> int | None:
        return next((i for i, h in enumerate(http) if h.get("name") == self.route.route), None)

    def _canary_destination(self, route: dict[str, Any]) -> dict[str, Any]:
        for d in as_list(route.get("route")):
            dest = as_dict(as_dict(d).get("destination"))
            if dest.get("host") == self.route.canary_host:
                return dest
        return {"host": self.route.canary_host}

    def structure(self, obj: dict[str, Any]) -> tuple[int, bool | None]:
        http = [as_dict(h) for h in as_list(as_dict(obj.get("spec")).get("http"))]
        index = self._index(http)
        if index is None:
            return 0, False
        route = http[index]
        mirror = 0
        if as_dict(route.get("mirror")).get("host") == self.route.canary_host:
            value = as_dict(route.get("mirrorPercentage")).get("value")
            mirror = 100 if not isinstance(value, (int, float)) else round(value)
        if not any(h.get("name") == self.match_name for h in http):
            return mirror, False
        correct = bool(self.headers) and index > 0 and self._match_route_ok(http[index - 1])
        return mirror, True if correct else None  # None: there, but not the plan's

    def _match_route_ok(self, route: dict[str, Any]) -> bool:
        if route.get("name") != self.match_name:
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
                if as_dict(h).get("name") != self.match_name]
        out: list[Any] = []
        for route in http:
            if route.get("name") != self.route.route:
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
                extra = {k: copy.deepcopy(v) for k, v in route.items()
                         if k not in ("name", "match", "route", "mirror", "mirrorPercentage",
                                      "mirrors")}
                out.append({
                    "name": self.match_name,
                    "match": [{**copy.deepcopy(as_dict(m)), "headers": {
                        **copy.deepcopy(as_dict(as_dict(m).get("headers"))), name: dict(value)}}
                        for m in (as_list(route.get("match")) or [{}])
                        for name, value in self.headers],
                    "route": [{"destination": copy.deepcopy(canary), "weight": 100}],
                    **extra,
                })
            out.append(route)
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

    def locate(self, obj: dict[str, Any]) -> list[WeightSlot]:
        route = self.route
        http = [as_dict(h) for h in as_list(as_dict(obj.get("spec")).get("http"))]
        index = next((i for i, h in enumerate(http) if h.get("name") == route.route), None)
        if index is None:
            names = ", ".join(repr(h["name"]) for h in http if h.get("name")) or "none"
            raise RouterError(
                Reason.ROUTE_NOT_FOUND,
                f"{self.ref} has no http route named {route.route!r} (named routes: {names}): "
                "set spec.http[].name on the route to shift, or fix spec.traffic.istio.route",
            )
        destinations = [as_dict(d) for d in as_list(http[index].get("route"))]
        slots = [
            WeightSlot(
                path=f"/spec/http/{index}/route/{j}/weight",
                track=track,
                group=f"http route {route.route!r}",
                current=as_weight(d.get("weight")),
                default=WEIGHT_DEFAULT,
            )
            for j, d in enumerate(destinations)
            for track, host in ((Track.STABLE, route.stable_host),
                                (Track.CANARY, route.canary_host))
            if as_dict(d.get("destination")).get("host") == host
        ]
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
