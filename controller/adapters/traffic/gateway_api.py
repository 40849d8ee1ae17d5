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

Header routes (``spec.traffic.match``): ahead of each rule it shifts, a rule named
``rolloutctl-canary-<n>`` with that rule's matches plus each header match (Exact, or
RegularExpression: a prefix becomes ``^prefix.*``, a cookie an expression on the Cookie
header) and only the canary as backend; its other settings (timeouts, filters but a
mirror, experimental fields) are copied. Mirror steps: a ``RequestMirror`` filter to the
canary Service on each shifted rule (``percent`` below 100). When these change, the write
replaces ``/spec/rules`` as read, under the same resourceVersion test. Readiness: every
``parentRef`` must report ``Accepted`` and ``ResolvedRefs`` True at the route's generation;
a route with no parentRefs is attached to nothing and reports nothing to wait for.

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
from controller.adapters.traffic.matching import cookie_regex, prefix_regex
from controller.api.plan import GatewayAPIRoute, RouteMatch
from controller.engine.measurements import Track
from controller.ports import RouterError

WEIGHT_DEFAULT = 1  # the HTTPRoute schema's default for an absent backendRef weight
MATCH_RULE_PREFIX = "rolloutctl-canary-"  # names of the rules the router adds
GROUP = "gateway.networking.k8s.io"
READY_CONDITIONS = ("Accepted", "ResolvedRefs")


def header_match(match: RouteMatch) -> dict[str, str]:
    """One HTTPHeaderMatch for MATCH: Gateway API matches a header Exact or by
    RegularExpression; a prefix becomes an anchored expression, a cookie an expression on
    the Cookie header."""
    if match.cookie is not None:
        return {"type": "RegularExpression", "name": "Cookie", "value": cookie_regex(match)}
    assert match.header is not None
    if match.exact is not None:
        return {"type": "Exact", "name": match.header, "value": match.exact}
    if match.prefix is not None:
        return {"type": "RegularExpression", "name": match.header,
                "value": prefix_regex(match.prefix)}
    return {"type": "RegularExpression", "name": match.header, "value": match.regex or ""}


def _same_parent(a: dict[str, Any], b: dict[str, Any], namespace: str) -> bool:
    def key(ref: dict[str, Any]) -> tuple[Any, ...]:
        return (ref.get("group", GROUP) or GROUP, ref.get("kind", "Gateway"),
                ref.get("namespace") or namespace, ref.get("name"),
                ref.get("sectionName"), ref.get("port"))
    return key(a) == key(b)


def _parent_text(ref: dict[str, Any], namespace: str) -> str:
    where = ref.get("sectionName")
    return (f"{ref.get('kind', 'Gateway')} {ref.get('namespace') or namespace}/"
            f"{ref.get('name')}" + (f" (listener {where})" if where else ""))


class GatewayAPIRouter(WeightedObjectRouter):
    group = "gateway.networking.k8s.io"
    version = "v1"
    plural = "httproutes"
    kind = "HTTPRoute"

    list_path = "/spec/rules"

    def __init__(self, api: ApiClient, namespace: str, route: GatewayAPIRoute, *,
                 matches: Sequence[RouteMatch] = (),
                 field_manager: str = "rolloutctl") -> None:
        super().__init__(api, namespace, route.http_route, field_manager=field_manager)
        self.route = route
        self.headers = [header_match(m) for m in matches]

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

    def _weighted(self, rule: Any) -> bool:
        """Does RULE list both backends (and is it not one of the router's own rules)?"""
        rule = as_dict(rule)
        if str(rule.get("name", "")).startswith(MATCH_RULE_PREFIX):
            return False
        refs = [as_dict(r) for r in as_list(rule.get("backendRefs"))]
        return (any(self._is_service(r, self.route.stable_backend) for r in refs)
                and any(self._is_service(r, self.route.canary_backend) for r in refs))

    def _mirror_of(self, rule: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        """(percent, filter) of the rule's RequestMirror to the canary, if any."""
        for f in as_list(rule.get("filters")):
            f = as_dict(f)
            mirror = as_dict(f.get("requestMirror"))
            if f.get("type") != "RequestMirror" or not self._is_service(
                    as_dict(mirror.get("backendRef")), self.route.canary_backend):
                continue
            if as_weight(mirror.get("percent")) is not None:
                return int(mirror["percent"]), f
            fraction = as_dict(mirror.get("fraction"))
            if as_weight(fraction.get("numerator")) is not None:
                denominator = as_weight(fraction.get("denominator")) or 100
                return round(100 * fraction["numerator"] / denominator), f
            return 100, f
        return None

    def _match_rule_ok(self, candidate: Any) -> bool:
        """Is CANDIDATE a header-route rule sending exactly the plan's matches to the canary?"""
        rule = as_dict(candidate)
        if not str(rule.get("name", "")).startswith(MATCH_RULE_PREFIX):
            return False
        refs = [as_dict(r) for r in as_list(rule.get("backendRefs"))]
        if len(refs) != 1 or not self._is_service(refs[0], self.route.canary_backend):
            return False
        added = set()
        for m in as_list(rule.get("matches")):
            for h in as_list(as_dict(m).get("headers")):
                h = as_dict(h)
                added.add((h.get("type", "Exact"), h.get("name"), h.get("value")))
        wanted = {(h["type"], h["name"], h["value"]) for h in self.headers}
        return bool(wanted) and wanted <= added

    def structure(self, obj: dict[str, Any]) -> tuple[int, bool | None]:
        rules = as_list(as_dict(obj.get("spec")).get("rules"))
        weighted = [i for i, r in enumerate(rules) if self._weighted(r)]
        mirrors = {(self._mirror_of(as_dict(rules[i])) or (0, {}))[0] for i in weighted}
        mirror = max(mirrors) if mirrors else 0
        if len(mirrors) > 1:
            mirror = -1  # some rules mirror, others not: never what the plan wants
        ours = [r for r in rules if str(as_dict(r).get("name", "")).startswith(
            MATCH_RULE_PREFIX)]
        if not ours:
            return mirror, False
        correct = bool(self.headers) and len(ours) == len(weighted) and all(
            i > 0 and self._match_rule_ok(rules[i - 1]) for i in weighted)
        return mirror, True if correct else None  # None: there, but not the plan's

    def rebuild(self, obj: dict[str, Any], weight: int, mirror: int,
                match: bool) -> list[Any]:
        rules = [copy.deepcopy(r) for r in as_list(as_dict(obj.get("spec")).get("rules"))
                 if not str(as_dict(r).get("name", "")).startswith(MATCH_RULE_PREFIX)]
        out: list[Any] = []
        k = 0
        for rule in rules:
            if not self._weighted(rule):
                out.append(rule)
                continue
            canary_ref: dict[str, Any] = {}
            for ref in as_list(rule.get("backendRefs")):
                if self._is_service(as_dict(ref), self.route.stable_backend):
                    ref["weight"] = 100 - weight
                elif self._is_service(as_dict(ref), self.route.canary_backend):
                    ref["weight"] = weight
                    canary_ref = ref
            filters = [f for f in as_list(rule.get("filters"))
                       if not (self._mirror_of({"filters": [f]}))]
            if mirror:
                request_mirror: dict[str, Any] = {"backendRef": {
                    key: copy.deepcopy(canary_ref[key])
                    for key in ("group", "kind", "name", "namespace", "port")
                    if key in canary_ref}}
                if mirror < 100:
                    request_mirror["percent"] = mirror
                filters.append({"type": "RequestMirror", "requestMirror": request_mirror})
            if filters:
                rule["filters"] = filters
            else:
                rule.pop("filters", None)
            if match and self.headers:
                out.append(self._match_rule(rule, canary_ref, k))
            out.append(rule)
            k += 1
        return out

    def _match_rule(self, rule: dict[str, Any], canary_ref: dict[str, Any],
                    k: int) -> dict[str, Any]:
        """The rule ahead of weighted rule RULE: its matches, each with one of the plan's
        header matches added, all to the canary (its other settings copied; no mirror)."""
        extra = {key: copy.deepcopy(value) for key, value in rule.items()
                 if key not in ("name", "matches", "backendRefs", "filters")}
        filters = [copy.deepcopy(f) for f in as_list(rule.get("filters"))
                   if as_dict(f).get("type") != "RequestMirror"]
        matches = [
            {**copy.deepcopy(as_dict(m)),
             "headers": [*copy.deepcopy(as_list(as_dict(m).get("headers"))), dict(h)]}
            for m in (as_list(rule.get("matches")) or [{}])
            for h in self.headers
        ]
        ref = {key: copy.deepcopy(value) for key, value in canary_ref.items()
               if key != "weight"}
        return {"name": f"{MATCH_RULE_PREFIX}{k}", "matches": matches,
                **({"filters": filters} if filters else {}),
                "backendRefs": [{**ref, "weight": 1}], **extra}

    def readiness(self, obj: dict[str, Any]) -> Readiness:
        """Every parentRef must report Accepted and ResolvedRefs True at the route's
        generation. A route with no parentRefs is attached to nothing: no controller will
        ever report on it, so there is nothing to wait for (None)."""
        namespace = self.ref.namespace
        parents = [as_dict(p) for p in as_list(as_dict(obj.get("spec")).get("parentRefs"))]
        if not parents:
            return Readiness()
        generation = as_dict(obj.get("metadata")).get("generation")
        statuses = [as_dict(p) for p in as_list(as_dict(obj.get("status")).get("parents"))]
        waiting: list[str] = []
        refused: list[str] = []
        for parent in parents:
            name = _parent_text(parent, namespace)
            entries = [e for e in statuses
                       if _same_parent(as_dict(e.get("parentRef")), parent, namespace)]
            if not entries:
                waiting.append(f"{name} has not reported on {self.ref} yet")
                continue
            for entry in entries:
                conditions = {as_dict(c).get("type"): as_dict(c)
                              for c in as_list(entry.get("conditions"))}
                for type_ in READY_CONDITIONS:
                    c = conditions.get(type_)
                    if c is None or c.get("observedGeneration") != generation:
                        seen = None if c is None else c.get("observedGeneration")
                        waiting.append(f"{name} has not reported {type_} for generation "
                                       f"{generation} of {self.ref} (last: {seen})")
                    elif c.get("status") != "True":
                        refused.append(f"{name}: {type_}={c.get('status')} "
                                       f"({c.get('reason', '')}): {c.get('message', '')}")
        if refused:
            return Readiness(False, True, "; ".join(refused + waiting))
        if waiting:
            return Readiness(False, False, "; ".join(waiting))
        return Readiness(True)

    def apply(self, weight: int, *, mirror: int = 0, match: bool = False) -> int:
        done = super().apply(weight, mirror=mirror, match=match)
        if 0 < mirror < 100:
            have, _ = self.structure(self._read())
            if have == 100:
                raise RouterError(
                    "MirrorPercentNotSupported",
                    f"the API server dropped requestMirror.percent from {self.ref}: the "
                    "installed HTTPRoute CRD predates it (Gateway API v1.3); install newer "
                    "Gateway API CRDs, or use mirror: 100",
                )
        return done

    def locate(self, obj: dict[str, Any]) -> list[WeightSlot]:
        stable, canary = self.route.stable_backend, self.route.canary_backend
        slots: list[WeightSlot] = []
        stable_only: list[int] = []
        for i, rule in enumerate(as_list(as_dict(obj.get("spec")).get("rules"))):
            if str(as_dict(rule).get("name", "")).startswith(MATCH_RULE_PREFIX):
                continue  # the router's own header-route rule (only the canary)
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
