"""A traffic generator that splits requests between stable and canary by the route's weight.

It stands in for the mesh or gateway: each request goes to the canary with probability
``weight / 100``, where the weight is read from the real route object (an HTTPRoute, a
VirtualService...) through a callable, refreshed a few times a second.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit


class _Client:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str) -> int:
        for _ in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
                self.conn.request("GET", path)
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
                 refresh_seconds: float = 0.25) -> None:
        self.stable = _Client(stable_url)
        self.canary = _Client(canary_url)
        self.weight_of = weight
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
            track = "canary" if self._random.random() * 100 < self.weight else "stable"
            status = (self.canary if track == "canary" else self.stable).get(self.path)
            self.sent[track] += 1
            if status != 200:
                self.failed[track] += 1
            next_send += interval
            delay = next_send - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            elif delay < -1:
                next_send = time.monotonic()  # fell behind: do not burst

    def start(self) -> TrafficGenerator:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="traffic")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def main() -> None:
    """Run the generator as a process, reading the weight from an HTTPRoute."""
    import argparse

    from controller.adapters.kube.client import ClusterConfig, api_client
    from controller.adapters.traffic.gateway_api import GatewayAPIRouter
    from controller.api.plan import GatewayAPIRoute

    parser = argparse.ArgumentParser(description="split demo traffic by an HTTPRoute's weight")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--route", required=True)
    parser.add_argument("--stable-url", required=True)
    parser.add_argument("--canary-url", required=True)
    parser.add_argument("--rps", type=float, default=50.0)
    parser.add_argument("--path", default="/api/auth/login")
    args = parser.parse_args()
    api = api_client(ClusterConfig(args.kubeconfig))
    router = GatewayAPIRouter(api, args.namespace, GatewayAPIRoute(
        http_route=args.route, stable_backend=args.route, canary_backend=f"{args.route}-canary"))
    generator = TrafficGenerator(args.stable_url, args.canary_url,
                                 lambda: router.observe().weight, rps=args.rps, path=args.path)
    generator.start()
    try:
        while True:
            time.sleep(10)
            print(f"sent {generator.sent} failed {generator.failed} weight {generator.weight}",
                  flush=True)
    except KeyboardInterrupt:
        generator.stop()


if __name__ == "__main__":
    main()
