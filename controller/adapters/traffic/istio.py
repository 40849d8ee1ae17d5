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

from typing import Any

from kubernetes.client import ApiClient

from controller.adapters.traffic._kube import Reason
from controller.adapters.traffic._weights import (
    WeightedObjectRouter,
    WeightSlot,
    as_dict,
    as_list,
    as_weight,
)
from controller.api.plan import IstioRoute
from controller.engine.measurements import Track
from controller.ports import RouterError

WEIGHT_DEFAULT = 0  # proto3: an absent weight is 0


class IstioRouter(WeightedObjectRouter):
    group = "networking.istio.io"
    version = "v1"
    plural = "virtualservices"
    kind = "VirtualService"

    def __init__(self, api: ApiClient, namespace: str, route: IstioRoute, *,
                 field_manager: str = "rolloutctl") -> None:
        if route.stable_host == route.canary_host:
            raise RouterError(
                Reason.INVALID_SPEC,
                f"spec.traffic.istio: stableHost and canaryHost are both {route.stable_host!r};"
                " give the canary its own Service host",
            )
        super().__init__(api, namespace, route.virtual_service, field_manager=field_manager)
        self.route = route

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
