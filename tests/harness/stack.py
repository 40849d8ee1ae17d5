"""A whole rollout stack on the local control plane, for end-to-end tests, the sandbox and
the benchmarks: Deployments (kwok-ready), an HTTPRoute, two demo services playing stable and
canary, a live Prometheus scraping them, traffic split by the route's real weight, an
SLOPolicy and a RolloutPlan — and the controller itself, as real ``rolloutctl run``
processes started and killed by PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from controller.adapters.kube.objects import ObjectStore
from controller.adapters.traffic.gateway_api import GatewayAPIRouter
from controller.api.plan import GatewayAPIRoute
from tests.harness.demo_app import DemoApp
from tests.harness.egress import LOCAL_EGRESS
from tests.harness.prometheus import PrometheusServer
from tests.harness.routes import canary_weight
from tests.harness.traffic import TrafficGenerator

BAD = ('sum(rate(http_requests_total{service="{{service}}",track="{{track}}",code=~"5.."}'
       "[{{window}}]))")
TOTAL = 'sum(rate(http_requests_total{service="{{service}}",track="{{track}}"}[{{window}}]))'


def rolloutctl_binary() -> str:
    candidate = Path(sys.executable).with_name("rolloutctl")
    return str(candidate) if candidate.exists() else "rolloutctl"


def deployment(name: str, track: str, image: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name.removesuffix("-canary"), "track": track}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": image,
                                         "ports": [{"containerPort": 8080}]}]},
            },
        },
    }


def http_route(name: str, gateway: str | None = None) -> dict[str, Any]:
    """The demo HTTPRoute. With GATEWAY it is attached to that Gateway (parentRefs), and the
    controller then waits for the Gateway's status on each change: something must write it
    (``tests.harness.traffic.accept_route``: no Gateway controller runs here). Without,
    it is attached to nothing and nothing is waited for."""
    spec: dict[str, Any] = {"rules": [{"backendRefs": [
        {"name": name, "port": 8080, "weight": 100},
        {"name": f"{name}-canary", "port": 8080, "weight": 0},
    ]}]}
    if gateway is not None:
        spec = {"parentRefs": [{"name": gateway}], **spec}
    return {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": spec,
    }


def slo_policy(name: str, service: str, prometheus_url: str,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "service": service,
        "prometheus": {"url": prometheus_url, "timeout": "5s"},
        "evaluationInterval": "10s",
        "slos": [
            {"name": "api_availability", "objective": 99, "window": "1h",
             "sli": {"ratio": {"bad": BAD, "total": TOTAL}},
             "burnRateAlerts": [
                 {"severity": "critical", "factor": 14.4, "long": "5m", "short": "30s"}]},
            {"name": "request_latency", "objective": 90, "window": "1h",
             "sli": {"latency": {"histogram": "http_request_duration_seconds", "le": "0.2"}}},
        ],
    }
    spec.update(extra or {})
    return {"apiVersion": "rolloutctl.dev/v1alpha1", "kind": "SLOPolicy",
            "metadata": {"name": name}, "spec": spec}


def rollout_plan(name: str, policy: str, *, hold: str = "6s", interval: str = "2s",
                 window: str = "10s", rollback_after: str = "6s", min_samples: int = 20,
                 notifications: dict[str, Any] | None = None,
                 **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "target": {"stable": {"name": name}, "canary": {"name": f"{name}-canary",
                                                        "replicas": 1}},
        "traffic": {"gatewayAPI": {"httpRoute": name, "stableBackend": name,
                                   "canaryBackend": f"{name}-canary"}},
        "steps": [{"weight": w, "hold": hold} for w in (10, 25, 50, 100)],
        "sloPolicyRef": {"name": policy},
        "gates": [{"slo": "api_availability"}],
        "analysis": {"interval": interval, "window": window, "rollbackAfter": rollback_after,
                     "minSamples": min_samples, "noDataTimeout": "2m"},
    }
    if notifications:
        body["notifications"] = notifications
    body.update(spec)
    return {"apiVersion": "rolloutctl.dev/v1alpha1", "kind": "RolloutPlan",
            "metadata": {"name": name}, "spec": body}


@dataclass
class ControllerProcess:
    identity: str
    process: subprocess.Popen[bytes]
    log: Path
    metrics_port: int

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            os.kill(self.process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=15)

    def ready(self) -> bool:
        """/readyz answers 200: caches synced, leading or a healthy standby."""
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/readyz",
                                        timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready():
                return
            if not self.alive():
                raise RuntimeError(f"controller {self.identity} exited:\n{self.log_tail()}")
            time.sleep(0.05)
        raise TimeoutError(f"controller {self.identity} not ready after {timeout}s")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Stack:
    kubeconfig: Path
    api: ApiClient
    namespace: str
    workdir: Path
    service: str = "checkout"
    rps: float = 80.0
    controllers: list[ControllerProcess] = field(default_factory=list)
    stable_app: DemoApp | None = None
    canary_app: DemoApp | None = None
    prometheus: PrometheusServer | None = None
    traffic: TrafficGenerator | None = None

    def __post_init__(self) -> None:
        self.store = ObjectStore(self.api)
        # The harness passes plain dicts to the client (it accepts them at run time; its
        # type hints ask for V1 models): typed as Any on purpose.
        self.apps: Any = client.AppsV1Api(self.api)
        self.custom: Any = client.CustomObjectsApi(self.api)
        self.core: Any = client.CoreV1Api(self.api)
        self.raw: Any = self.api
        self.workdir.mkdir(parents=True, exist_ok=True)

    # -- the world -----------------------------------------------------------------------

    def start_services(self, scrape_interval: str = "1s") -> None:
        self.stable_app = DemoApp(self.service, "stable", seed=1).start()
        self.canary_app = DemoApp(self.service, "canary", seed=2).start()
        self.prometheus = PrometheusServer(
            self.workdir / "prometheus",
            targets=[f"127.0.0.1:{self.stable_app.port}", f"127.0.0.1:{self.canary_app.port}"],
            scrape_interval=scrape_interval,
        ).start()
        self.prometheus.wait_for_targets_up()

    def create_workloads(self, stable_replicas: int = 2) -> None:
        ns = self.namespace
        self.apps.create_namespaced_deployment(
            ns, deployment(self.service, "stable", "registry.local/checkout:v1", stable_replicas))
        self.apps.create_namespaced_deployment(
            ns, deployment(f"{self.service}-canary", "canary", "registry.local/checkout:v1", 0))
        self.custom.create_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", ns, "httproutes", http_route(self.service))
        self.wait_for(lambda: self.ready_replicas(self.service) == stable_replicas, 120,
                      "stable Deployment ready")

    def start_traffic(self) -> None:
        assert self.stable_app is not None and self.canary_app is not None
        router = GatewayAPIRouter(self.api, self.namespace, GatewayAPIRoute(
            http_route=self.service, stable_backend=self.service,
            canary_backend=f"{self.service}-canary"))
        self.traffic = TrafficGenerator(self.stable_app.url, self.canary_app.url,
                                        lambda: router.observe().weight, rps=self.rps).start()

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        kind = doc["kind"]
        plural = {"RolloutPlan": "rolloutplans", "SLOPolicy": "slopolicies"}[kind]
        obj: dict[str, Any] = self.custom.create_namespaced_custom_object(
            "rolloutctl.dev", "v1alpha1", self.namespace, plural, doc)
        return obj

    def create_secret(self, name: str, data: dict[str, str]) -> None:
        self.core.create_namespaced_secret(self.namespace, {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "stringData": data})

    def release(self, version: str) -> None:
        """A new canary pod template: the controller starts a run."""
        patch = {"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": f"registry.local/checkout:{version}"}]}}}}
        self.apps.patch_namespaced_deployment(
            f"{self.service}-canary", self.namespace, patch,
            _content_type="application/strategic-merge-patch+json")

    # -- reading -------------------------------------------------------------------------

    def plan(self, name: str | None = None) -> dict[str, Any]:
        obj = self.store.get("RolloutPlan", self.namespace, name or self.service)
        assert obj is not None
        return obj

    def status(self, name: str | None = None) -> dict[str, Any]:
        return dict(self.plan(name).get("status") or {})

    def policy_status(self, name: str = "platform") -> dict[str, Any]:
        obj = self.store.get("SLOPolicy", self.namespace, name)
        return dict((obj or {}).get("status") or {})

    def route_weight(self) -> int:
        route = self.custom.get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", self.namespace, "httproutes", self.service)
        return canary_weight(route, f"{self.service}-canary")

    def deployment(self, name: str) -> dict[str, Any]:
        d = self.apps.read_namespaced_deployment(name, self.namespace)
        data: dict[str, Any] = self.raw.sanitize_for_serialization(d)
        return data

    def ready_replicas(self, name: str) -> int:
        try:
            return int((self.deployment(name).get("status") or {}).get("readyReplicas") or 0)
        except ApiException:
            return 0

    def events(self) -> list[dict[str, Any]]:
        items = self.core.list_namespaced_event(self.namespace).items
        return [self.raw.sanitize_for_serialization(e) for e in items]

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str,
                 interval: float = 0.2) -> Any:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                value = predicate()
                if value:
                    return value
            except Exception as exc:  # the condition may not be readable yet
                last_error = exc
            time.sleep(interval)
        logs = "\n".join(f"--- {c.identity}\n{c.log_tail()}" for c in self.controllers)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}"
                           + (f" (last error: {last_error})" if last_error else "")
                           + f"\nstatus: {json.dumps(self.safe_status(), default=str)[:3000]}"
                           + f"\ncontroller logs:\n{logs}")

    def safe_status(self) -> dict[str, Any]:
        try:
            return self.status()
        except Exception:
            return {}

    # -- the controller ------------------------------------------------------------------

    def start_controller(self, identity: str = "controller-0", *, leader_elect: bool = False,
                         extra: list[str] | None = None,
                         env: dict[str, str] | None = None,
                         kubeconfig: Path | None = None,
                         lease_namespace: str | None = None) -> ControllerProcess:
        """``rolloutctl run`` watching the stack's namespace, as the admin of the stack's
        kubeconfig unless KUBECONFIG names another identity (e.g. the chart's service
        account); the Lease lives in the stack's namespace unless LEASE_NAMESPACE is given."""
        from tests.harness.cluster import free_port

        port = free_port()
        log = self.workdir / f"{identity}.log"
        args = [
            rolloutctl_binary(), "run",
            "--kubeconfig", str(kubeconfig or self.kubeconfig),
            "--namespace", self.namespace,
            "--identity", identity,
            "--metrics-address", f"127.0.0.1:{port}",
            "--lease-namespace", lease_namespace or self.namespace,
            "--leader-elect" if leader_elect else "--no-leader-elect",
            "--log-format", "json",
            "--egress-allow", LOCAL_EGRESS,
            *(extra or []),
        ]
        with log.open("ab") as out:
            process = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, **(env or {})})
        controller = ControllerProcess(identity, process, log, port)
        self.controllers.append(controller)
        return controller

    def stop(self) -> None:
        for c in self.controllers:
            c.kill(signal.SIGTERM)
        if self.traffic is not None:
            self.traffic.stop()
        for app in (self.stable_app, self.canary_app):
            if app is not None:
                app.stop()
        if self.prometheus is not None:
            self.prometheus.stop()
