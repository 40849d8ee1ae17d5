"""What ``kubectl get httproute NAME -w`` shows, for tests and benchmarks that time a
rollback or check which weights a route went through.

A watch sees every write, however briefly a weight lasted, where a poll can miss a weight
the controller held for a few milliseconds. This one resumes each reconnect from the last
resourceVersion it saw (no gap between two watch requests), relists when the API server
says that version is too old, and ``sync()`` waits until it has seen the route's latest
version, so a caller never concludes from a watch that is behind.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from kubernetes import client, watch
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

GROUP = ("gateway.networking.k8s.io", "v1")


def canary_weight(route: dict[str, Any], canary: str) -> int:
    """The weight of the backend CANARY in an HTTPRoute (1 when unset, as Gateway API says)."""
    for ref in route["spec"]["rules"][0]["backendRefs"]:
        if ref["name"] == canary:
            return int(ref.get("weight", 1))
    raise LookupError(f"HTTPRoute {route['metadata']['name']}: no backend {canary} in its "
                      "first rule")


class RouteWatch:
    """Each change of the canary backend's weight on one HTTPRoute, with the wall-clock time
    the watch saw it. Use it as a context manager (the exit waits for the latest version) or
    call ``start()``/``stop()``."""

    def __init__(self, api: ApiClient, namespace: str, name: str,
                 canary: str | None = None) -> None:
        self.namespace, self.name = namespace, name
        self.canary = canary or f"{name}-canary"
        self.changes: list[tuple[float, int]] = []
        self._custom: Any = client.CustomObjectsApi(api)
        self._version = 0
        self._stop = threading.Event()
        self._seen = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"route-watch-{name}")

    @property
    def seen(self) -> list[int]:
        """The weights in the order the route held them."""
        return [weight for _, weight in self.changes]

    def zero_after(self, t: float) -> float | None:
        """When the canary weight was first seen at 0 at or after wall-clock time T."""
        return next((at for at, weight in self.changes if at >= t and weight == 0), None)

    def wait_zero_after(self, t: float, timeout: float = 15.0) -> float | None:
        """``zero_after(t)`` once the watch has seen every write made up to now, or, if the
        weight is not 0 yet, once it becomes 0 (None after TIMEOUT seconds)."""
        deadline = time.monotonic() + timeout
        self.sync(timeout)
        with self._seen:
            while self.zero_after(t) is None and time.monotonic() < deadline:
                self._seen.wait(min(0.5, max(0.0, deadline - time.monotonic())))
        return self.zero_after(t)

    def start(self) -> RouteWatch:
        self._record(self._get())
        self._thread.start()
        return self

    def sync(self, timeout: float = 15.0) -> None:
        """Wait until the watch has seen the version of the route the API server holds now;
        TimeoutError when it has not within TIMEOUT seconds."""
        latest = int(self._get()["metadata"]["resourceVersion"])
        deadline = time.monotonic() + timeout
        with self._seen:
            while self._version < latest:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"the watch of HTTPRoute {self.namespace}/{self.name} "
                                       f"is at version {self._version}, the API server at "
                                       f"{latest}")
                self._seen.wait(min(left, 0.5))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=20)

    def __enter__(self) -> RouteWatch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        try:
            self.sync()
        finally:
            self.stop()

    def _get(self) -> dict[str, Any]:
        route: dict[str, Any] = self._custom.get_namespaced_custom_object(
            *GROUP, self.namespace, "httproutes", self.name)
        return route

    def _record(self, route: dict[str, Any], at: float | None = None) -> None:
        weight = canary_weight(route, self.canary)
        version = int(route["metadata"]["resourceVersion"])
        with self._seen:
            if version > self._version:
                if not self.changes or self.changes[-1][1] != weight:
                    self.changes.append((time.time() if at is None else at, weight))
                self._version = version
            self._seen.notify_all()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                # short requests: a connection that went quiet is replaced within seconds
                for event in watch.Watch().stream(  # type: ignore[no-untyped-call]
                        self._custom.list_namespaced_custom_object, *GROUP, self.namespace,
                        "httproutes", field_selector=f"metadata.name={self.name}",
                        resource_version=str(self._version), timeout_seconds=5,
                        _request_timeout=15):
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._record(event["object"], time.time())
                    if self._stop.is_set():
                        return
            except ApiException as e:  # the client raises an ERROR event as ApiException
                if e.status == 410:  # our version is too old: relist
                    self._record(self._get())
                else:
                    self._stop.wait(0.05)
            except Exception:  # a transient watch error: watch again from the last version
                self._stop.wait(0.05)
