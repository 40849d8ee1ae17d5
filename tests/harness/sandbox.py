"""The sandbox: a real progressive rollout on this machine, behind ``scripts/sandbox``.

``up`` starts, under one directory (default ``.sandbox``): the local control plane (etcd,
kube-apiserver, controller-manager, scheduler, kwok), two demo services playing stable and
canary, Prometheus scraping them, a traffic generator splitting requests by the HTTPRoute's
weight, a Slack stand-in with a page showing the messages, and the controller
(``rolloutctl run``), scraped by Prometheus too, and the dashboard (``rolloutctl dashboard``
on a free loopback port). It applies the default SLOPolicy and a sample plan (from
``policies/``, with holds of tens of seconds). ``down`` stops exactly the PIDs it started.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.harness import REPO, python_env
from tests.harness import cluster as cluster_mod
from tests.harness.egress import LOCAL_EGRESS
from tests.harness.prometheus import PrometheusServer
from tests.harness.stack import deployment, http_route
from tests.harness.traffic import TESTER_HEADER

NAMESPACE = "demo"
SERVICE = "checkout"
SLACK_TOKEN = "xoxb-sandbox-not-a-real-token"
Progress = Callable[[str], None]


class SandboxError(RuntimeError):
    pass


def sandbox_policy(prometheus_url: str) -> dict[str, Any]:
    """policies/platform-slos.yaml, pointed at the sandbox's service and Prometheus."""
    doc: dict[str, Any] = yaml.safe_load((REPO / "policies" / "platform-slos.yaml").read_text())
    doc["metadata"]["namespace"] = NAMESPACE
    spec = doc["spec"]
    spec["service"] = SERVICE
    spec["prometheus"] = {"url": prometheus_url, "timeout": "5s"}
    spec["evaluationInterval"] = "10s"
    spec["notifications"] = {"slack": {
        "channel": "#deploys", "criticalChannel": "#oncall",
        "tokenSecretRef": {"name": "rolloutctl-slack", "key": "token"}}}
    return doc


def sandbox_plan() -> dict[str, Any]:
    """policies/default-plan.yaml with holds of tens of seconds instead of hours."""
    doc: dict[str, Any] = yaml.safe_load((REPO / "policies" / "default-plan.yaml").read_text())
    doc["metadata"]["namespace"] = NAMESPACE
    spec = doc["spec"]
    spec["target"]["canary"]["replicas"] = 1
    spec["steps"] = [{"weight": w, "hold": "15s"} for w in (10, 25, 50, 100)]
    # Testers reach the canary by header from the first step (the traffic generator sends
    # a share of its requests with it, and the route's header rule takes them there).
    spec["traffic"]["match"] = [{"header": TESTER_HEADER[0], "exact": TESTER_HEADER[1]}]
    spec["analysis"] = {"interval": "5s", "window": "30s", "rollbackAfter": "15s",
                        "minSamples": 30, "onNoData": "hold", "noDataTimeout": "2m"}
    return doc


@dataclass
class State:
    dir: Path
    pids: dict[str, int]
    urls: dict[str, str]

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "cluster" / "kubeconfig"

    def save(self) -> None:
        (self.dir / "state.json").write_text(json.dumps(
            {"pids": self.pids, "urls": self.urls}, indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> State | None:
        try:
            data = json.loads((directory / "state.json").read_text())
        except (OSError, ValueError):
            return None
        return cls(directory, dict(data.get("pids", {})), dict(data.get("urls", {})))


class Sandbox:
    def __init__(self, directory: Path, progress: Progress = print) -> None:
        self.dir = directory.resolve()
        self.progress = progress

    # -- starting ------------------------------------------------------------------------

    def up(self) -> State:
        existing = State.load(self.dir)
        if existing is not None and self.healthy(existing):
            self.progress(f"the sandbox in {self.dir} is already up")
            return existing
        if existing is not None:
            self.down()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        self.ensure_binaries()
        state = State(self.dir, {}, {})
        try:
            self._up(state)
        except BaseException:
            state.save()
            self.down()
            raise
        state.save()
        return state

    def ensure_binaries(self) -> None:
        try:
            for name in cluster_mod.BINARIES:
                cluster_mod.find_binary(name)
            return
        except cluster_mod.ClusterError:
            pass
        script = REPO / "tools" / "build-control-plane.sh"
        if not script.exists():
            raise SandboxError("the local control plane is not built and tools/ is missing; "
                               "run the sandbox from a clone of the rolloutctl repository")
        self.progress("building the local control plane from Go modules (first run only: "
                      "15-30 minutes on 2 cores; later runs take seconds)")
        result = subprocess.run([str(script)], check=False)
        if result.returncode != 0:
            raise SandboxError(f"{script} failed with exit code {result.returncode}")

    def _spawn(self, state: State, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.dir / "logs" / f"{name}.log").open("ab")
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True,
                                   cwd=self.dir, env=python_env())
        state.pids[name] = process.pid
        state.save()
        return process

    def _port_file(self, name: str) -> Path:
        path = self.dir / f"{name}.port"
        path.unlink(missing_ok=True)
        return path

    def _read_port_file(self, path: Path, process: subprocess.Popen[bytes],
                        timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists() and path.read_text().strip():
                return path.read_text().strip()
            if process.poll() is not None:
                raise SandboxError(f"{path.stem} exited: see {self.dir}/logs/{path.stem}.log")
            time.sleep(0.05)
        raise SandboxError(f"{path.stem} did not start within {timeout}s")

    def _up(self, state: State) -> None:
        started = time.monotonic()
        self.progress("starting the local control plane (etcd, kube-apiserver, "
                      "controller-manager, scheduler, kwok)")
        cl = cluster_mod.start_cluster(self.dir / "cluster")
        state.pids["cluster"] = -1  # stopped through cluster down
        api = cl.api_client()
        from tests.harness.fixtures import crd_files, install_crds

        install_crds(api, crd_files()[0])
        core: Any = client.CoreV1Api(api)
        try:
            core.create_namespace({"metadata": {"name": NAMESPACE}})
        except ApiException as exc:
            if exc.status != 409:
                raise

        self.progress("starting the demo services (stable and canary)")
        ports = {}
        for track in ("stable", "canary"):
            port_file = self._port_file(f"app-{track}")
            proc = self._spawn(state, f"app-{track}", [
                sys.executable, "-m", "tests.harness.demo_app", "--service", SERVICE,
                "--track", track, "--port-file", str(port_file)])
            ports[track] = self._read_port_file(port_file, proc)
            state.urls[track] = f"http://127.0.0.1:{ports[track]}"

        self.progress("starting Prometheus (scraping both services every second)")
        # A fresh sandbox starts with fresh history: an earlier demo's injected errors
        # would otherwise count against this one's error budget.
        shutil.rmtree(self.dir / "prometheus", ignore_errors=True)
        prometheus = PrometheusServer(
            self.dir / "prometheus", targets=[f"127.0.0.1:{p}" for p in ports.values()],
            scrape_interval="1s").start()
        assert prometheus.pid is not None
        state.pids["prometheus"] = prometheus.pid
        state.urls["prometheus"] = prometheus.url
        state.save()

        self.progress("starting the Slack stand-in")
        port_file = self._port_file("slack")
        proc = self._spawn(state, "slack", [
            sys.executable, "-m", "tests.harness.slack_sandbox", "--port-file",
            str(port_file), "--token", SLACK_TOKEN])
        slack = json.loads(self._read_port_file(port_file, proc))
        state.urls["slack-api"] = slack["api"]
        state.urls["slack-page"] = slack["page"]

        self.progress("creating the Deployments, the HTTPRoute and the Slack token Secret")
        apps: Any = client.AppsV1Api(api)
        custom: Any = client.CustomObjectsApi(api)
        _create(lambda: apps.create_namespaced_deployment(
            NAMESPACE, deployment(SERVICE, "stable", "registry.local/checkout:v1", 2)))
        _create(lambda: apps.create_namespaced_deployment(
            NAMESPACE, deployment(f"{SERVICE}-canary", "canary", "registry.local/checkout:v1",
                                  0)))
        _create(lambda: custom.create_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", NAMESPACE, "httproutes",
            http_route(SERVICE, gateway="demo-gateway")))
        _create(lambda: core.create_namespaced_secret(NAMESPACE, {
            "metadata": {"name": "rolloutctl-slack"}, "stringData": {"token": SLACK_TOKEN}}))

        self.progress("starting the traffic generator (50 requests/s, split by the route; it "
                      "also accepts the route as the demo Gateway would)")
        self._spawn(state, "traffic", [
            sys.executable, "-m", "tests.harness.traffic", "--kubeconfig",
            str(state.kubeconfig), "--namespace", NAMESPACE, "--route", SERVICE,
            "--stable-url", state.urls["stable"], "--canary-url", state.urls["canary"],
            "--stats-file", str(self.dir / "traffic.json")])

        self.progress("applying the default SLOPolicy and the sample RolloutPlan")
        _create(lambda: custom.create_namespaced_custom_object(
            "rolloutctl.dev", "v1alpha1", NAMESPACE, "slopolicies",
            sandbox_policy(prometheus.url)))
        _create(lambda: custom.create_namespaced_custom_object(
            "rolloutctl.dev", "v1alpha1", NAMESPACE, "rolloutplans", sandbox_plan()))

        self.progress("starting the controller (rolloutctl run)")
        metrics_port = cluster_mod.free_port()
        rolloutctl = str(Path(sys.executable).with_name("rolloutctl"))
        self._spawn(state, "controller", [
            rolloutctl, "run", "--kubeconfig", str(state.kubeconfig), "--namespace", NAMESPACE,
            "--no-leader-elect", "--metrics-address", f"127.0.0.1:{metrics_port}",
            "--slack-base-url", state.urls["slack-api"], "--cluster-name", "sandbox",
            "--log-format", "text", "--identity", "sandbox-controller",
            "--egress-allow", LOCAL_EGRESS])
        state.urls["controller"] = f"http://127.0.0.1:{metrics_port}"
        state.save()
        self._wait(lambda: _http_ok(f"{state.urls['controller']}/readyz"), 60,
                   "the controller to be ready")
        # Prometheus also scrapes the controller: the dashboard charts its series
        prometheus.set_targets([*(f"127.0.0.1:{p}" for p in ports.values()),
                                f"127.0.0.1:{metrics_port}"])

        self.progress("starting the dashboard (rolloutctl dashboard, read-only, as admin)")
        dashboard_port = cluster_mod.free_port()
        self._spawn(state, "dashboard", [
            rolloutctl, "dashboard", "--kubeconfig", str(state.kubeconfig), "--no-browser",
            "--port", str(dashboard_port), "--prometheus-url", prometheus.url])
        state.urls["dashboard"] = f"http://127.0.0.1:{dashboard_port}/"
        state.save()
        self._wait(lambda: _http_ok(f"{state.urls['dashboard']}healthz"), 60,
                   "the dashboard to answer")
        self.progress(f"sandbox up in {time.monotonic() - started:.0f}s")

    def _wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.2)
        raise SandboxError(f"timed out waiting for {what}; logs in {self.dir}/logs")

    # -- state ---------------------------------------------------------------------------

    def healthy(self, state: State) -> bool:
        cl = cluster_mod.load_cluster(self.dir / "cluster")
        alive = all(cluster_mod.pid_alive(p) for n, p in state.pids.items() if p > 0)
        return bool(cl is not None and cl.is_alive() and alive)

    def processes(self) -> dict[str, bool]:
        state = State.load(self.dir)
        if state is None:
            return {}
        out = {n: cluster_mod.pid_alive(p) for n, p in state.pids.items() if p > 0}
        cl = cluster_mod.load_cluster(self.dir / "cluster")
        if cl is not None:
            out.update({f"cluster/{n}": cluster_mod.pid_alive(p) for n, p in cl.pids.items()})
        return out

    def down(self) -> list[str]:
        """Stop exactly what ``up`` started, by PID; returns the names stopped."""
        state = State.load(self.dir)
        stopped = []
        if state is not None:
            order = ["dashboard", "controller", "traffic", "slack", "prometheus",
                     "app-canary", "app-stable"]
            pids = {n: state.pids[n] for n in reversed(order)
                    if state.pids.get(n, -1) > 0}
            cluster_mod.stop_pids(pids, str(self.dir), timeout=10.0)
            stopped = list(pids)
            state.pids = {}
            state.save()
        if (self.dir / "cluster").exists():
            cluster_mod.stop_cluster(self.dir / "cluster")
            stopped.append("cluster")
        return stopped


def _create(call: Callable[[], object]) -> None:
    try:
        call()
    except ApiException as exc:
        if exc.status != 409:  # already there from an earlier `up`
            raise


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def api_for(state: State) -> client.ApiClient:
    return cluster_mod.new_api_client(state.kubeconfig)


def configure_canary(state: State, **config: float) -> None:
    """Change how the canary service behaves (error_rate, latency_ms)."""
    request = urllib.request.Request(
        f"{state.urls['canary']}/admin/config", data=json.dumps(config).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


def release(state: State, version: str) -> None:
    """A new canary pod template: the controller starts a run."""
    apps: Any = client.AppsV1Api(api_for(state))
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": f"registry.local/checkout:{version}"}]}}}}
    apps.patch_namespaced_deployment(f"{SERVICE}-canary", NAMESPACE, patch,
                                     _content_type="application/strategic-merge-patch+json")


def traffic_stats(state: State) -> dict[str, Any]:
    """The traffic generator's counts (see ``tests.harness.traffic``); {} before any."""
    try:
        data: dict[str, Any] = json.loads((state.dir / "traffic.json").read_text())
    except (OSError, ValueError):
        return {}
    return data


def plan_status(state: State) -> dict[str, Any]:
    custom: Any = client.CustomObjectsApi(api_for(state))
    obj = custom.get_namespaced_custom_object("rolloutctl.dev", "v1alpha1", NAMESPACE,
                                              "rolloutplans", SERVICE)
    return dict(obj.get("status") or {})


def policy_status(state: State) -> dict[str, Any]:
    custom: Any = client.CustomObjectsApi(api_for(state))
    obj = custom.get_namespaced_custom_object("rolloutctl.dev", "v1alpha1", NAMESPACE,
                                              "slopolicies", "platform")
    return dict(obj.get("status") or {})


def slack_messages(state: State) -> list[dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{state.urls['slack-page']}messages.json",
                                    timeout=2) as response:
            data: list[dict[str, Any]] = json.loads(response.read())
            return data
    except OSError:
        return []


def environment(state: State) -> dict[str, str]:
    """Environment for running `rolloutctl` against the sandbox."""
    return {**os.environ, "KUBECONFIG": str(state.kubeconfig)}
