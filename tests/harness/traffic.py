"""A traffic generator that splits requests between stable and canary by the route's weight.

It stands in for the mesh or gateway: each request goes to the canary with probability
``weight / 100``, where the weight is read from the real route object (an HTTPRoute, a
VirtualService...) through a callable, refreshed a few times a second. Given a ``routing``
callable (a router's ``observe``) it also honours the route's header routes (a share of
requests comes from a tester carrying the canary header: while the route has its header
rule, they all reach the canary) and its mirror (that percent of requests is also copied to
the canary, the copy's response discarded). ``accept_route`` plays the Gateway controller
that no one runs here: it writes the route's parent status (Accepted, ResolvedRefs) for the
route's current generation.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from controller.engine.observation import RouterObservation

GATEWAY_CONTROLLER = "rolloutctl.dev/sandbox-gateway"
TESTER_HEADER = ("X-Canary", "always")


def accept_route(custom: Any, namespace: str, name: str,
                 controller: str = GATEWAY_CONTROLLER) -> bool:
    """Write HTTPRoute NAME's status as a Gateway controller accepting it would: for each
    parentRef, Accepted and ResolvedRefs True at the route's generation. Returns whether it
    wrote (nothing when the status already says so). ``custom`` is a CustomObjectsApi."""
    route = custom.get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", namespace, "httproutes", name, _request_timeout=5)
    generation = route["metadata"].get("generation")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    parents = [{
        "parentRef": ref, "controllerName": controller,
        "conditions": [{"type": t, "status": "True", "reason": t, "message": "",
                        "observedGeneration": generation, "lastTransitionTime": now}
                       for t in ("Accepted", "ResolvedRefs")],
    } for ref in route.get("spec", {}).get("parentRefs") or []]
    have = [{**p, "conditions": [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                                 for c in p.get("conditions", [])]}
            for p in (route.get("status") or {}).get("parents") or []]
    want = [{**p, "conditions": [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                                 for c in p["conditions"]]} for p in parents]
    if have == want:
        return False
    custom.patch_namespaced_custom_object_status(
        "gateway.networking.k8s.io", "v1", namespace, "httproutes", name,
        {"metadata": {"resourceVersion": route["metadata"]["resourceVersion"]},
         "status": {"parents": parents}},
        _content_type="application/merge-patch+json", _request_timeout=5)
    return True


class _Client:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str, headers: dict[str, str] | None = None) -> int:
        for _ in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
                self.conn.request("GET", path, headers=headers or {})
                response = self.conn.getresponse()
                response.read()
                return response.status
            except (OSError, http.client.HTTPException):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
        return 0


class TrafficGenerator:
    def __init__(self, stable_url: str, canary_url: str, weight: Callable[[], int | None],
                 rps: float = 50.0, path: str = "/api/checkout", seed: int = 1,
                 refresh_seconds: float = 0.25,
                 routing: Callable[[], RouterObservation] | None = None,
                 tester_share: float = 0.0) -> None:
        self.stable = _Client(stable_url)
        self.canary = _Client(canary_url)
        self.mirror_client = _Client(canary_url)
        self.weight_of = weight
        self.routing = routing
        self.tester_share = tester_share  # fraction of requests carrying TESTER_HEADER
        self.mirror = 0
        self.match = False
        self.tester = {"stable": 0, "canary": 0}  # where the tester's requests went
        self.mirrored = 0
        self.rps = rps
        self.path = path
        self.refresh_seconds = refresh_seconds
        self._random = random.Random(seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.weight = 0
        self.sent = {"stable": 0, "canary": 0}
        self.failed = {"stable": 0, "canary": 0}

    def _refresh(self) -> None:
        try:
            if self.routing is not None:
                seen = self.routing()
                w: int | None = seen.weight
                if w is not None:
                    self.mirror, self.match = max(0, seen.mirror), seen.match is True
            else:
                w = self.weight_of()
        except Exception:  # the route may be missing or the API unreachable: keep the last
            return
        if w is not None:
            self.weight = max(0, min(100, w))

    def _loop(self) -> None:
        interval = 1.0 / self.rps
        next_refresh = 0.0
        next_send = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_refresh:
                self._refresh()
                next_refresh = now + self.refresh_seconds
            # no draw unless needed: the same seed splits as it did before testers existed
            tester = self.tester_share > 0 and self._random.random() < self.tester_share
            if tester and self.match:
                track = "canary"
            else:
                track = "canary" if self._random.random() * 100 < self.weight else "stable"
            headers = dict([TESTER_HEADER]) if tester else None
            status = (self.canary if track == "canary" else self.stable).get(self.path, headers)
            self.sent[track] += 1
            if tester:
                self.tester[track] += 1
            if status != 200:
                self.failed[track] += 1
            if track == "stable" and self.mirror and self._random.random() * 100 < self.mirror:
                self.mirror_client.get(self.path, headers)  # the copy: response discarded
                self.mirrored += 1
            next_send += interval
            delay = next_send - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            elif delay < -1:
                next_send = time.monotonic()  # fell behind: do not burst

    def stats(self) -> dict[str, Any]:
        return {"weight": self.weight, "mirror": self.mirror, "match": self.match,
                "sent": dict(self.sent), "failed": dict(self.failed),
                "tester": dict(self.tester), "mirrored": self.mirrored}

    def write_stats(self, path: str) -> None:
        import json
        import os

        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as out:
            json.dump(self.stats(), out)
        os.replace(tmp, path)

    def start(self) -> TrafficGenerator:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="traffic")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def main() -> None:
    """Run the generator as a process, reading the weight, mirror and header routes from an
    HTTPRoute, and accepting the route as its Gateway would."""
    import argparse

    from kubernetes.client import CustomObjectsApi

    from controller.adapters.kube.client import ClusterConfig, api_client
    from controller.adapters.traffic.gateway_api import GatewayAPIRouter
    from controller.api.plan import GatewayAPIRoute, RouteMatch

    parser = argparse.ArgumentParser(description="split demo traffic by an HTTPRoute's weight")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--route", required=True)
    parser.add_argument("--stable-url", required=True)
    parser.add_argument("--canary-url", required=True)
    parser.add_argument("--rps", type=float, default=50.0)
    parser.add_argument("--path", default="/api/auth/login")
    parser.add_argument("--stats-file", help="write the counts here as JSON every second")
    parser.add_argument("--tester-share", type=float, default=0.05,
                        help=f"fraction of requests carrying {TESTER_HEADER[0]}: "
                             f"{TESTER_HEADER[1]}")
    args = parser.parse_args()
    api = api_client(ClusterConfig(args.kubeconfig))
    router = GatewayAPIRouter(api, args.namespace, GatewayAPIRoute(
        http_route=args.route, stable_backend=args.route, canary_backend=f"{args.route}-canary"),
        matches=[RouteMatch(header=TESTER_HEADER[0], exact=TESTER_HEADER[1])])
    custom = CustomObjectsApi(api)

    def routing() -> RouterObservation:
        try:
            accept_route(custom, args.namespace, args.route)
        except Exception as exc:  # a conflict or a missing route: try again next refresh
            print(f"could not write the route's status: {type(exc).__name__}", flush=True)
        return router.observe()

    generator = TrafficGenerator(args.stable_url, args.canary_url,
                                 lambda: router.observe().weight, rps=args.rps, path=args.path,
                                 routing=routing, tester_share=args.tester_share)
    generator.start()
    try:
        while True:
            for _ in range(10):
                time.sleep(1)
                if args.stats_file:
                    generator.write_stats(args.stats_file)
            print(f"sent {generator.sent} failed {generator.failed} weight {generator.weight} "
                  f"mirror {generator.mirror} tester {generator.tester} "
                  f"mirrored {generator.mirrored}", flush=True)
    except KeyboardInterrupt:
        generator.stop()


if __name__ == "__main__":
    main()
