"""The README's install path is a test: the two shell blocks of "Install in a cluster" (the
install, and "Your first release") run as they are written, on the local control plane.

What differs from a real cluster, and only that: the namespace is the test's own (for
``shop``), the Slack token is the stand-in's (for ``xoxb-...``), and — there being no
kubelet to run the image — the controller is this checkout's ``rolloutctl run`` with the
chart's ServiceAccount identity (bound only by the roles ``helm install`` created), the
local Prometheus as its ``--prometheus-url`` and the Slack stand-in as its Slack. Behind
the Deployments of the two services (``checkout`` and ``cart``) run demo services scraped
by that Prometheus, with traffic split by the HTTPRoutes' real weights.

Then: both runs succeed; a bad canary of ``cart`` rolls back and its budget falls below the
threshold, which freezes ``cart`` only (``checkout`` releases again); ``cart``'s plan, made
to name no policy and then another policy, still waits while the namespace's platform
policy is frozen for it; the freeze is announced in Slack; ``rolloutctl doctor`` exits 0.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes.client import ApiClient, AppsV1Api, CustomObjectsApi

from controller.adapters.traffic.gateway_api import GatewayAPIRouter
from controller.api.plan import GatewayAPIRoute
from tests.harness.cluster import CONTROLLER_USER, REPO_DIR, bin_dir, free_port
from tests.harness.demo_app import DemoApp
from tests.harness.fixtures import TestCluster
from tests.harness.prometheus import PrometheusServer
from tests.harness.slack_stub import SlackStub
from tests.harness.stack import (
    ControllerProcess,
    deployment,
    http_route,
    rolloutctl_binary,
)
from tests.harness.traffic import TrafficGenerator

from .test_chart_harness import CONTROLLER_NAMESPACE, eventually, tool

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.slow]

README = REPO_DIR / "README.md"
SERVICES = ("checkout", "cart")
T = 30


def readme_blocks() -> tuple[str, str]:
    """The install block (the first `sh` block of "Install in a cluster") and the block of
    "Your first release"."""
    text = README.read_text()
    install = text[text.index("## Install in a cluster"):]
    first = install[install.index("### Your first release"):]
    blocks = [re.search(r"```sh\n(.*?)```", part, re.DOTALL) for part in (install, first)]
    assert all(blocks), "README: no sh block in Install in a cluster / Your first release"
    return cast(re.Match[str], blocks[0]).group(1), cast(re.Match[str], blocks[1]).group(1)


class Services:
    """The two services behind the Deployments: demo apps (stable and canary), their
    traffic, and one Prometheus scraping them all."""

    def __init__(self, api: ApiClient, namespace: str, workdir: Path) -> None:
        self.api, self.namespace = api, namespace
        self.apps: dict[tuple[str, str], DemoApp] = {}
        for i, service in enumerate(SERVICES):
            for track in ("stable", "canary"):
                self.apps[(service, track)] = DemoApp(service, track, seed=i * 2 + 1).start()
        self.prometheus = PrometheusServer(
            workdir / "prometheus", targets=[f"127.0.0.1:{a.port}" for a in self.apps.values()],
            scrape_interval="1s").start()
        self.prometheus.wait_for_targets_up()
        self.traffic: list[TrafficGenerator] = []

    def create(self) -> None:
        """What the team deployed before installing rolloutctl: per service a stable and a
        canary Deployment (container ``app``) and an HTTPRoute."""
        apps: Any = AppsV1Api(self.api)
        custom: Any = CustomObjectsApi(self.api)
        for service in SERVICES:
            for doc in (deployment(service, "stable", f"registry.example.com/{service}:v1", 1),
                        deployment(f"{service}-canary", "canary",
                                   f"registry.example.com/{service}:v1", 0)):
                apps.create_namespaced_deployment(self.namespace, doc, _request_timeout=T)
            custom.create_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", self.namespace, "httproutes",
                http_route(service), _request_timeout=T)
            router = GatewayAPIRouter(self.api, self.namespace, GatewayAPIRoute(
                http_route=service, stable_backend=service, canary_backend=f"{service}-canary"))
            self.traffic.append(TrafficGenerator(
                self.apps[(service, "stable")].url, self.apps[(service, "canary")].url,
                lambda r=router: r.observe().weight, rps=60, path="/api/auth/login",
                seed=len(self.traffic) + 1).start())

    def stop(self) -> None:
        for t in self.traffic:
            t.stop()
        for app in self.apps.values():
            app.stop()
        self.prometheus.stop()


@pytest.fixture
def services(cluster: TestCluster, namespace: str, tmp_path: Path) -> Iterator[Services]:
    s = Services(cluster.api_client(), namespace, tmp_path)
    try:
        s.create()
        yield s
    finally:
        s.stop()


def shell(script: str, env: dict[str, str], timeout: float = 600
          ) -> subprocess.CompletedProcess[str]:
    """SCRIPT in bash (stopping at the first failing command), from the repository root."""
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=REPO_DIR, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def plan_status(api: ApiClient, namespace: str, name: str) -> dict[str, Any]:
    obj: Any = CustomObjectsApi(api).get_namespaced_custom_object(
        "rolloutctl.dev", "v1alpha1", namespace, "rolloutplans", name, _request_timeout=T)
    return dict(obj.get("status") or {})


def policy_status(api: ApiClient, namespace: str) -> dict[str, Any]:
    obj: Any = CustomObjectsApi(api).get_namespaced_custom_object(
        "rolloutctl.dev", "v1alpha1", namespace, "slopolicies", "platform", _request_timeout=T)
    return dict(obj.get("status") or {})


def services_of(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["service"]: s for s in status.get("services") or []}


def test_the_readme_install_path(cluster: TestCluster, namespace: str, services: Services,
                                 tmp_path: Path) -> None:
    install, release = readme_blocks()
    api = cluster.api_client()
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "COLUMNS": "200",
           "PATH": os.pathsep.join([str(bin_dir()), str(Path(sys.executable).parent),
                                    os.environ.get("PATH", "")])}
    tool("helm")
    tool("kubectl")

    def ours(script: str, token: str) -> str:
        return re.sub(r"\bshop\b", namespace, script).replace("xoxb-...", token)

    with ExitStack() as cleanup, SlackStub() as slack:
        env["ROLLOUTCTL_SLACK_BASE_URL"] = slack.api_url  # for `rolloutctl doctor`
        done = shell(ours(install, slack.token), env)
        cleanup.callback(lambda: shell(
            f"helm uninstall rolloutctl --namespace {CONTROLLER_NAMESPACE} --wait", env))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "successfully rolled out" in done.stdout, done.stdout

        controller = start_controller(cluster, namespace, services, slack, tmp_path)
        cleanup.callback(controller.kill, signal.SIGTERM)
        controller.wait_ready(90)

        # "Your first release", as written: both runs succeed, budgets and freeze per
        # service are shown, the doctor finds the install healthy (exit 0)
        done = shell(ours(release, slack.token), env)
        out = done.stdout + done.stderr
        assert done.returncode == 0, out + "\n" + controller.log_tail()
        for service in SERVICES:
            st = plan_status(api, namespace, service)
            assert st["phase"] == "Succeeded", (service, st.get("message"))
            assert [d["weight"] for d in st["decisions"] if d["type"] == "StepAdvanced"] == [
                10, 25, 50, 100]
            gates = {g["name"] for g in st["history"][-1]["evidence"]}
            assert {"api_availability", "auth_latency", "error_rate",
                    "workflow_success_rate"} <= gates, gates
        assert re.search(r"service checkout\b", out) and re.search(r"service cart\b", out), out
        assert "healthy:" in out and "0 failure(s)" in out, out

        # a bad canary of cart: rolled back at once (fast burn), and the errors it served
        # take cart's budget below the freeze threshold: cart freezes, checkout does not
        services.apps[("cart", "canary")].configure(error_rate=1.0)
        done = shell(ours("kubectl -n shop set image deployment/cart-canary "
                          "app=registry.example.com/cart:v3", slack.token), env)
        assert done.returncode == 0, done.stderr
        eventually(lambda: _phase(api, namespace, "cart", "RolledBack"), timeout=120)
        services.apps[("cart", "canary")].configure(error_rate=0.0)

        def cart_frozen() -> None:
            st = policy_status(api, namespace)
            by = services_of(st)
            assert by["cart"]["frozen"] and by["cart"]["reason"] == "BudgetBelowThreshold", by
            assert not by["checkout"]["frozen"], by
            assert st["frozenServices"] == ["cart"]
            assert st["frozenDeployments"] == ["cart", "cart-canary"]
        eventually(cart_frozen, timeout=150, interval=1)
        frozen = shell(ours("rolloutctl freeze status -n shop", slack.token), env)
        assert frozen.returncode == 0, frozen.stderr
        lines = {line.split()[0]: line for line in frozen.stdout.splitlines()
                 if line.strip().startswith(("cart", "checkout"))}
        assert "FROZEN" in lines["cart"] and "BudgetBelowThreshold" in lines["cart"], lines
        assert "open" in lines["checkout"], lines

        # checkout releases again; cart's new release waits in Frozen
        done = shell(ours("for service in checkout cart; do\n  kubectl -n shop set image "
                          "deployment/$service-canary app=registry.example.com/$service:v4\n"
                          "done", slack.token), env)
        assert done.returncode == 0, done.stderr
        eventually(lambda: _phase(api, namespace, "cart", "Frozen"), timeout=60)
        eventually(lambda: _phase(api, namespace, "checkout", "Succeeded", run=2),
                   timeout=180, interval=1)
        assert plan_status(api, namespace, "cart")["reason"] == "BudgetBelowThreshold"

        # the platform policy holds cart whatever its plan names: no policy at all, then
        # a team's own policy (without a freeze)
        custom: Any = CustomObjectsApi(api)
        custom.patch_namespaced_custom_object(
            "rolloutctl.dev", "v1alpha1", namespace, "rolloutplans", "cart",
            [{"op": "remove", "path": "/spec/sloPolicyRef"},
             {"op": "replace", "path": "/spec/gates", "value": []}],
            _content_type="application/json-patch+json", _request_timeout=T)
        _still_frozen(api, namespace)
        team = {"apiVersion": "rolloutctl.dev/v1alpha1", "kind": "SLOPolicy",
                "metadata": {"name": "cart-team"},
                "spec": {"slos": [{"name": "api_availability", "objective": 99,
                                   "sli": {"ratio": {
                                       "bad": 'sum(rate(http_requests_total{service='
                                              '"{{service}}",code=~"5.."}[{{window}}]))',
                                       "total": 'sum(rate(http_requests_total{service='
                                                '"{{service}}"}[{{window}}]))'}}}]}}
        custom.create_namespaced_custom_object("rolloutctl.dev", "v1alpha1", namespace,
                                               "slopolicies", team, _request_timeout=T)
        custom.patch_namespaced_custom_object(
            "rolloutctl.dev", "v1alpha1", namespace, "rolloutplans", "cart",
            {"spec": {"sloPolicyRef": {"name": "cart-team"}}},
            _content_type="application/merge-patch+json", _request_timeout=T)
        _still_frozen(api, namespace)
        assert services.traffic[1].weight == 0

        # the freeze was announced in the shipped policy's Slack channels, naming cart
        def announced() -> None:
            monitoring = [m.text for m in slack.messages("monitoring")]
            assert any("cart" in t and "frozen" in t.lower() for t in monitoring), monitoring
            assert any("cart" in m.text for m in slack.messages("oncall"))
        eventually(announced, timeout=60, interval=1)


def _phase(api: ApiClient, namespace: str, plan: str, phase: str, run: int | None = None
           ) -> None:
    st = plan_status(api, namespace, plan)
    assert st.get("phase") == phase, (plan, st.get("phase"), st.get("reason"),
                                      st.get("message"))
    if run is not None:
        assert st.get("run") == run, st.get("run")


def _still_frozen(api: ApiClient, namespace: str) -> None:
    """cart's plan, changed, is looked at again and stays Frozen by the platform policy."""
    def seen() -> None:
        raw: Any = CustomObjectsApi(api).get_namespaced_custom_object(
            "rolloutctl.dev", "v1alpha1", namespace, "rolloutplans", "cart", _request_timeout=T)
        st = raw.get("status") or {}
        assert st.get("observedGeneration") == raw["metadata"]["generation"], st
        assert st.get("phase") == "Frozen", (st.get("phase"), st.get("message"))
        assert "SLOPolicy platform" in st.get("message", ""), st.get("message")
    eventually(seen, timeout=60)


def start_controller(cluster: TestCluster, namespace: str, services: Services,
                     slack: SlackStub, tmp_path: Path) -> ControllerProcess:
    """`rolloutctl run` as the chart's ServiceAccount, on the chart's Lease."""
    port = free_port()
    log = tmp_path / "controller.log"
    args = [rolloutctl_binary(), "run",
            "--kubeconfig", str(cluster.kubeconfig_for(CONTROLLER_USER)),
            "--namespace", namespace, "--identity", "rolloutctl-0",
            "--lease-namespace", CONTROLLER_NAMESPACE, "--lease-name", "rolloutctl-controller",
            "--metrics-address", f"127.0.0.1:{port}", "--log-format", "text",
            "--prometheus-url", services.prometheus.url, "--slack-base-url", slack.api_url]
    with log.open("ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    return ControllerProcess("rolloutctl-0", process, log, port)
