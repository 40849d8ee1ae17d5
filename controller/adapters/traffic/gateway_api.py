"""Gateway API router: canary weight as backendRef weights of an HTTPRoute.

Plan::

    traffic:
      gatewayAPI: {httpRoute: checkout, stableBackend: checkout, canaryBackend: checkout-canary}

What it touches: ``HTTPRoute`` (``gateway.networking.k8s.io/v1``) ``httpRoute`` in the plan's
namespace; in every rule whose ``backendRefs`` list **both** the stable and the canary
Service, the ``weight`` of those two backendRefs becomes ``100 - w`` and ``w``. Nothing else:
not matches, filters, timeouts, other backendRefs, other rules, labels or annotations.

A backendRef matches a backend by ``name`` when it points at a core ``Service`` (``group``
empty, ``kind`` Service: the defaults) in the route's own namespace.

What the user must do: list both Services in the rules that should shift, for example::

    rules:
      - backendRefs:
          - {name: checkout, port: 8080, weight: 100}
          - {name: checkout-canary, port: 8080, weight: 0}

The router never adds or removes a backendRef. A rule listing only the stable Service is
left alone (traffic it matches stays on stable: useful for paths that must not shift). When
no rule lists both, ``apply`` raises ``RouterError("BackendNotFound")`` naming the Service
to add.

GitOps: ``rules`` and ``backendRefs`` are *atomic* lists in the HTTPRoute schema, so
server-side apply could only claim the whole ``rules`` list, taking it away from the GitOps
tool that owns the route (and every later sync would conflict over it). The router
therefore writes a JSON patch (``application/json-patch+json``, field manager
``rolloutctl``) whose first operation tests ``/metadata/resourceVersion`` and whose other
operations set only the weight fields it found. A concurrent writer between the read and
the write makes the test fail: the API server answers 422 (or 409), reported as
``RouterError("Conflict")`` and nothing is written; the caller re-reads and retries on its
next reconcile. (A Gateway controller writing the route's status in that instant changes the
resourceVersion too: same Conflict, same retry; the window is one read-to-write round trip.)
A GitOps tool that syncs the route will see the weights as drift: tell it to
ignore them (Argo CD ``ignoreDifferences`` with
``jqPathExpressions: [".spec.rules[].backendRefs[].weight"]``), or the sync and the
controller will fight over them (the controller restores its weight at every reconcile).
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
from controller.api.plan import GatewayAPIRoute
from controller.engine.measurements import Track
from controller.ports import RouterError

WEIGHT_DEFAULT = 1  # the HTTPRoute schema's default for an absent backendRef weight


class GatewayAPIRouter(WeightedObjectRouter):
    group = "gateway.networking.k8s.io"
    version = "v1"
    plural = "httproutes"
    kind = "HTTPRoute"

    def __init__(self, api: ApiClient, namespace: str, route: GatewayAPIRoute, *,
                 field_manager: str = "rolloutctl") -> None:
        super().__init__(api, namespace, route.http_route, field_manager=field_manager)
        self.route = route

    @property
    def not_found_fix(self) -> str:
        return (f"create it, or set spec.traffic.gatewayAPI.httpRoute to the HTTPRoute that "
                f"routes to Service {self.route.stable_backend}")

    def _is_service(self, ref: dict[str, Any], name: str) -> bool:
        return (
            ref.get("name") == name
            and ref.get("group", "") in ("", "core")
            and ref.get("kind", "Service") == "Service"
            and ref.get("namespace", self.ref.namespace) == self.ref.namespace
        )

    def locate(self, obj: dict[str, Any]) -> list[WeightSlot]:
        stable, canary = self.route.stable_backend, self.route.canary_backend
        slots: list[WeightSlot] = []
        stable_only: list[int] = []
        for i, rule in enumerate(as_list(as_dict(obj.get("spec")).get("rules"))):
            refs = [as_dict(r) for r in as_list(as_dict(rule).get("backendRefs"))]
            found = [
                (j, track)
                for j, ref in enumerate(refs)
                for track, name in ((Track.STABLE, stable), (Track.CANARY, canary))
                if self._is_service(ref, name)
            ]
            tracks = {track for _, track in found}
            if tracks == {Track.STABLE}:
                stable_only.append(i)
            if tracks != {Track.STABLE, Track.CANARY}:
                continue
            group = f"rule {i}" + (f" ({rule['name']})" if as_dict(rule).get("name") else "")
            slots.extend(
                WeightSlot(
                    path=f"/spec/rules/{i}/backendRefs/{j}/weight",
                    track=track,
                    group=group,
                    current=as_weight(refs[j].get("weight")),
                    default=WEIGHT_DEFAULT,
                )
                for j, track in found
            )
        if slots:
            return slots
        if stable_only:
            rules = ", ".join(str(i) for i in stable_only)
            raise RouterError(
                Reason.BACKEND_NOT_FOUND,
                f"{self.ref} has no backendRef to the canary Service {canary} next to the "
                f"stable Service {stable} (rules {rules} list only the stable one): add "
                f"{{name: {canary}, port: <port>, weight: 0}} to the backendRefs of the rules "
                "that should shift traffic",
            )
        raise RouterError(
            Reason.BACKEND_NOT_FOUND,
            f"{self.ref} has no rule whose backendRefs list both Service {stable} (stable) "
            f"and Service {canary} (canary): list both in the rules that should shift "
            "traffic, or fix spec.traffic.gatewayAPI.stableBackend / canaryBackend",
        )
