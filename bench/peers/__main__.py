"""rolloutctl side by side with Argo Rollouts and Flagger: restore times, false rollbacks, cost.

    python -m bench.peers [--runs 3] [--faults 1.0,0.05] [--systems rolloutctl,argo,flagger]
                          [--spike-runs N] [--low-traffic-rps 0.5] [--outage-minutes 10]
                          [--scale 10,100] [--quick] [--cluster DIR]

One local control plane (``tests.harness.cluster``), one live Prometheus scraping
every demo service (1 s scrape interval), and per system its own namespace, its own pair
of demo services (stable and canary, the sandbox's ``DemoApp``, labelled
``service=checkout[-argo|-flagger]``) and its own traffic (50 requests a second, split by
what that system sets in the API server). The three controllers run at the same time, each
started by PID with the admin identity, each talking to the API server and to Prometheus
through its own counting proxy (``bench/peers/proxy.py``: requests per system):

- rolloutctl: ``rolloutctl run`` with a RolloutPlan and SLOPolicy as
  ``python -m bench.rollback_latency --default-plan`` uses them (analysis every 60 s,
  window 5 m, the platform policy's 99.9 % availability and burn-rate alerts, the fast
  path at its default: the scrape interval Prometheus reports, 1 s here). Restored: the
  HTTPRoute's canary weight is 0.
- Argo Rollouts (``rollouts-controller``): ``bench/peers/argo-rollout.yaml`` and
  ``argo-analysis-template.yaml`` (replica-based canary, background analysis every minute,
  documented failureLimit/consecutiveErrorLimit defaults). Restored: the canary ReplicaSet
  is scaled to 0 replicas.
- Flagger (``flagger -mesh-provider gatewayapi:v1``): ``bench/peers/flagger-canary.yaml``
  and ``flagger-metric-templates.yaml`` (analysis every minute, threshold 5). Restored: the
  HTTPRoute Flagger drives has canary weight 0.

In order, in one invocation:

1. Time to restore (``--runs``, ``--faults``), the three systems in parallel threads: each
   run releases a new version, waits for the canary to carry 10 % of the traffic, lets it
   run healthy for ``--settle`` seconds (20 s) plus a random 0-60 s (``--spread``: the
   fault lands anywhere in the peers' 1-minute measurement cycle), then raises the canary's
   error rate to the fault (100 %, then 5 %) and measures fault -> restored, seen by polling
   the API server every 0.25 s. ``--spike-runs``: a 60 s spike of 3 % errors, rolled back?
2. Too little traffic to judge (``--low-traffic-rps``, 0.5: 3 requests a minute reach the
   canary at 10 %; 0 skips): holds of 1 m, a healthy canary, watched
   ``--low-traffic-watch`` seconds from the first step: promoted, rolled back or waiting?
3. A Prometheus outage mid-step (``--outage-minutes``, default 10; 0 skips), once for the
   three systems at the same time: every canary at its first step (holds of 1 h), then
   Prometheus is stopped by its PID (and the proxies in front of it stop listening:
   "connection refused"), started again after the outage on the same port and data
   directory, and watched ``--outage-after`` seconds more. Each state change is printed.
4. Cost at scale (``--scale 10,100``, cumulative; ``10,100,500`` took 38 minutes on 2
   cores: about 3,000 kwok pods): N more
   canaries per system in its namespace, at their first step (rolloutctl: plans with holds
   of 1 h; Argo: Rollouts of 1 replica; Flagger: Canaries held at 10 % by a
   confirm-traffic-increase webhook), then ``--scale-window`` seconds measured for the
   three at once: CPU (cores), peak RSS, API requests and Prometheus queries per minute
   (each system's, counted by its proxies), with the ratios rolloutctl / peer.

Prints every run and state change, the medians, the outcomes and the ratios.
``--quick``: one run, the 100 % fault only. The peers are built on demand by
``tools/build-peers.sh`` (a cold build takes long). Never run in CI.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import string
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bench.machine import describe, median
from bench.peers.proxy import CountingProxy
from tests.harness import cluster as cluster_mod
from tests.harness.demo_app import DemoApp
from tests.harness.fixtures import crd_files, install_crds
from tests.harness.prometheus import PrometheusServer
from tests.harness.scale_world import ProcessSampler, parse_samples, scrape, total
from tests.harness.stack import Stack, deployment, http_route, rollout_plan, slo_policy
from tests.harness.traffic import TrafficGenerator

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RPS = 50.0
POLL = 0.25
PLATFORM_ALERTS = [{"severity": "critical", "factor": 14.4, "long": "1h", "short": "5m"},
                   {"severity": "critical", "factor": 6, "long": "6h", "short": "30m"}]
BAD = ('sum(rate(http_requests_total{service="{{service}}",track="{{track}}",'
       'code=~"5.."}[{{window}}]))')
TOTAL = 'sum(rate(http_requests_total{service="{{service}}",track="{{track}}"}[{{window}}]))'


def render(name: str, **values: str) -> list[dict[str, Any]]:
    text = string.Template((HERE / name).read_text()).substitute(values)
    return [d for d in yaml.safe_load_all(text) if d]


def peers_dir() -> Path:
    return cluster_mod.bin_dir() / "peers"


def proc_usage(pid: int) -> tuple[float, int]:
    """CPU seconds (user+system) and peak RSS in bytes of PID."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        hwm = 0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
        return cpu, hwm
    except (OSError, IndexError, ValueError):
        return float("nan"), 0


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
             interval: float = POLL) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # not readable yet
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}"
                       + (f" (last error: {last})" if last else ""))


@dataclass
class System:
    """One controller under test, in its own namespace with its own demo services."""

    name: str
    label: str  # the demo apps' `service` label
    api: client.ApiClient
    kubeconfig: Path
    namespace: str
    workdir: Path
    prometheus_url: str
    stable_app: DemoApp = field(init=False)
    canary_app: DemoApp = field(init=False)
    traffic: TrafficGenerator | None = None
    process: subprocess.Popen[bytes] | None = None
    version: str = ""
    first_step_timeout: float = 180.0
    restore_timeout: float = 900.0
    # Every release of a system reuses the same canary demo service (same labels): a query
    # over the last minute would still see the previous run's fault. The peers' queries use
    # a 1-minute window, so their next release waits that long; rolloutctl clips its windows
    # to the step's age and needs no wait.
    cooldown: float = 0.0
    spikes: list[float | None] = field(default_factory=list)
    # the kubeconfig the controller uses: through its counting proxy to the API server
    ctl_kubeconfig: Path | None = None
    api_proxy: CountingProxy | None = None
    prom_proxy: CountingProxy | None = None
    weight_override: int | None = None  # the traffic's split, when a scenario pins it
    rps: float = RPS
    scenarios: dict[str, str] = field(default_factory=dict)  # scenario -> what it did
    scale_names: list[str] = field(default_factory=list)
    cost: dict[int, dict[str, float]] = field(default_factory=dict)
    results: dict[float, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cpu_start: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        self.core: Any = client.CoreV1Api(self.api)
        self.apps: Any = client.AppsV1Api(self.api)
        self.custom: Any = client.CustomObjectsApi(self.api)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.stable_app = DemoApp(self.label, "stable", seed=1).start()
        self.canary_app = DemoApp(self.label, "canary", seed=2).start()
        namespace: Any = {"metadata": {"name": self.namespace}}
        self.core.create_namespace(namespace)

    @property
    def targets(self) -> list[str]:
        return [f"127.0.0.1:{self.stable_app.port}", f"127.0.0.1:{self.canary_app.port}"]

    def spawn(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = self.workdir / f"{self.name}.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True,
                                            env={**os.environ, **(env or {})})

    def log_tail(self, lines: int = 25) -> str:
        return cluster_mod.log_tail(self.workdir / f"{self.name}.log", lines)

    def start_traffic(self) -> None:
        self.traffic = TrafficGenerator(self.stable_app.url, self.canary_app.url,
                                        self.traffic_weight, rps=self.rps).start()

    def traffic_weight(self) -> int | None:
        return self.weight_override if self.weight_override is not None else self.weight()

    def set_rps(self, rps: float) -> None:
        """Restart the traffic at RPS requests a second (split as before)."""
        if self.traffic is not None:
            self.traffic.stop()
        self.rps = rps
        self.start_traffic()

    # -- per system ----------------------------------------------------------------------
    def setup(self) -> None:
        raise NotImplementedError

    def weight(self) -> int | None:
        raise NotImplementedError

    def release(self, version: str) -> None:
        raise NotImplementedError

    def at_first_step(self) -> bool:
        raise NotImplementedError

    def restored(self) -> bool:
        raise NotImplementedError

    def describe_restore(self) -> str:
        return ""

    def state(self) -> str:
        """What the system shows now, in its own words (phase, weight...)."""
        raise NotImplementedError

    def promoted(self) -> bool:
        raise NotImplementedError

    def set_hold(self, hold: str) -> None:
        """The pause at each step (Flagger has none: it moves every analysis interval)."""

    def verdict(self) -> str:
        if self.restored():
            return "rolled back"
        if self.promoted():
            return "promoted"
        return f"waiting at {self.weight()} %"

    # -- cost at scale: N more canaries in the system's namespace, at their first step --
    def scale_create(self, names: list[str]) -> None:
        raise NotImplementedError

    def scale_release(self, name: str) -> None:
        raise NotImplementedError

    def scale_at_first_step(self) -> int:
        raise NotImplementedError

    def scale_ready(self) -> set[str]:
        """The scale canaries that can be released (their controller took them in)."""
        return set(self.scale_names)

    # -- the runs ------------------------------------------------------------------------
    def run(self, faults: list[float], runs: int, settle: float, spread: float) -> None:
        # The fault lands anywhere in the peers' 1-minute measurement cycle: a fixed settle
        # would always put it at the same distance from Argo's next measurement.
        rng = random.Random(7)
        n = 0
        for fault in faults:
            for _ in range(runs):
                n += 1
                self.canary_app.configure(error_rate=0.0)
                self.version = f"v{n + 1}"
                self.release(self.version)
                wait_for(self.at_first_step, self.first_step_timeout,
                         f"{self.name}: canary {self.version} at its first step")
                time.sleep(settle + rng.uniform(0, spread))
                start = time.time()
                self.canary_app.configure(error_rate=fault)
                wait_for(self.restored, self.restore_timeout,
                         f"{self.name}: canary {self.version} restored")
                took = time.time() - start
                self.results.setdefault(fault, []).append(took)
                print(f"{self.name:10s} fault {100 * fault:5.1f} % run {n}: restored in "
                      f"{took:6.1f} s  {self.describe_restore()}", flush=True)
                self.canary_app.configure(error_rate=0.0)
                time.sleep(self.cooldown)

    def spike(self, runs: int, settle: float, spread: float, rate: float, length: float,
              watch: float) -> None:
        """False rollbacks: a short error spike on a canary otherwise healthy. Each run
        releases, waits for the first step, raises the error rate to RATE for LENGTH
        seconds, then watches WATCH seconds more: did the system restore?"""
        for n in range(runs):
            self.canary_app.configure(error_rate=0.0)
            self.version = f"s{n + 1}"
            self.release(self.version)
            wait_for(self.at_first_step, self.first_step_timeout,
                     f"{self.name}: canary {self.version} at its first step")
            time.sleep(settle + random.Random(n).uniform(0, spread))
            start = time.time()
            self.canary_app.configure(error_rate=rate)
            rolled_back: float | None = None
            while time.time() - start < length + watch:
                if time.time() - start >= length:
                    self.canary_app.configure(error_rate=0.0)
                if self.restored():
                    rolled_back = time.time() - start
                    break
                time.sleep(POLL)
            self.canary_app.configure(error_rate=0.0)
            self.spikes.append(rolled_back)
            what = (f"rolled back after {rolled_back:.1f} s {self.describe_restore()}"
                    if rolled_back is not None else f"kept the canary ({watch:.0f} s after)")
            print(f"{self.name:10s} spike {100 * rate:g} % for {length:.0f} s, run {n + 1}: "
                  f"{what}", flush=True)
            time.sleep(self.cooldown)

    def usage(self) -> tuple[float, int]:
        assert self.process is not None
        return proc_usage(self.process.pid)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(15)
        if self.traffic is not None:
            self.traffic.stop()
        self.stable_app.stop()
        self.canary_app.stop()


class Rolloutctl(System):
    def setup(self) -> None:
        self.stack = Stack(self.kubeconfig, self.api, self.namespace, self.workdir / "stack",
                           service=self.label, rps=RPS)
        self.stack.stable_app, self.stack.canary_app = self.stable_app, self.canary_app
        self.stack.create_workloads()
        self.start_traffic()
        slo = {"name": "api_availability", "objective": 99.9, "window": "30d",
               "sli": {"ratio": {"bad": BAD, "total": TOTAL}},
               "burnRateAlerts": PLATFORM_ALERTS}
        self.stack.apply(slo_policy("platform", self.label, self.prometheus_url,
                                    extra={"slos": [slo]}))
        self.stack.apply(self.plan(self.label, "1h"))
        ctl = self.stack.start_controller("bench-peers", kubeconfig=self.ctl_kubeconfig)
        self.process = ctl.process
        ctl.wait_ready()

    def plan(self, name: str, hold: str) -> dict[str, Any]:
        return rollout_plan(name, "platform", hold=hold, interval="60s", window="5m",
                            rollback_after="5m", min_samples=20, service=self.label)

    def weight(self) -> int | None:
        return self.stack.route_weight()

    def release(self, version: str) -> None:
        self.run_before = self.stack.status().get("run", 0)
        self.stack.release(version)

    def at_first_step(self) -> bool:
        status = self.stack.status()
        return bool(status.get("run") == self.run_before + 1
                    and status.get("canaryWeight") == 10 and self.stack.route_weight() == 10)

    def restored(self) -> bool:
        return self.stack.route_weight() == 0 and self.stack.status().get("phase") not in (
            "Promoting", "Succeeded")

    def promoted(self) -> bool:
        return self.stack.status().get("phase") in ("Promoting", "Succeeded")

    def set_hold(self, hold: str) -> None:
        steps = self.plan(self.label, hold)["spec"]["steps"]
        self.custom.patch_namespaced_custom_object(
            "rolloutctl.dev", "v1alpha1", self.namespace, "rolloutplans", self.label,
            {"spec": {"steps": steps}})

    def last_decision(self) -> dict[str, Any]:
        decisions = self.stack.status().get("decisions") or []
        return dict(decisions[-1]) if decisions else {}

    def state(self) -> str:
        status = self.stack.status()
        last = self.last_decision()
        return (f"phase={status.get('phase')} weight={self.stack.route_weight()} "
                f"last decision={last.get('type')}/{last.get('reason')}: "
                f"{str(last.get('message', ''))[:90]}")

    def describe_restore(self) -> str:
        decisions = self.stack.status().get("decisions") or []
        last: dict[str, Any] = next(
            (d for d in reversed(decisions) if d.get("type") == "RollbackStarted"), {})
        return f"({last.get('reason', '?')}: {str(last.get('message', ''))[:80]})"

    def scale_create(self, names: list[str]) -> None:
        def one(name: str) -> None:
            self.apps.create_namespaced_deployment(
                self.namespace, deployment(name, "stable", "registry.local/app:v1", 1))
            self.apps.create_namespaced_deployment(
                self.namespace, deployment(f"{name}-canary", "canary", "registry.local/app:v1",
                                           0))
            self.custom.create_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", self.namespace, "httproutes",
                http_route(name))
            self.custom.create_namespaced_custom_object(
                "rolloutctl.dev", "v1alpha1", self.namespace, "rolloutplans",
                self.plan(name, "1h"))
        parallel(one, names)

    def scale_release(self, name: str) -> None:
        patch = {"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "registry.local/app:v2"}]}}}}
        self.apps.patch_namespaced_deployment(
            f"{name}-canary", self.namespace, patch,
            _content_type="application/strategic-merge-patch+json")

    def scale_at_first_step(self) -> int:
        items = self.custom.list_namespaced_custom_object(
            "rolloutctl.dev", "v1alpha1", self.namespace, "rolloutplans")["items"]
        names = set(self.scale_names)
        return sum(1 for p in items if p["metadata"]["name"] in names
                   and (p.get("status") or {}).get("canaryWeight") == 10
                   and (p.get("status") or {}).get("phase") in ("Progressing", "Holding"))

    def scale_ready(self) -> set[str]:
        items = self.custom.list_namespaced_custom_object(
            "rolloutctl.dev", "v1alpha1", self.namespace, "rolloutplans")["items"]
        return {p["metadata"]["name"] for p in items if (p.get("status") or {}).get("phase")}

    def stop(self) -> None:
        self.stack.stop()  # the controller, traffic and demo apps; Prometheus is not its own
        self.process = None
        super().stop()


ARGO = ("argoproj.io", "v1alpha1")


class Argo(System):
    def setup(self) -> None:
        self.cooldown = 70.0
        ns = self.namespace
        for doc in render("argo-analysis-template.yaml", SERVICE=self.label,
                          PROMETHEUS_URL=self.prometheus_url):
            self.custom.create_namespaced_custom_object(*ARGO, ns, "analysistemplates", doc)
        rollout = render("argo-rollout.yaml", IMAGE="registry.local/checkout:v1", HOLD="1h")[0]
        self.custom.create_namespaced_custom_object(*ARGO, ns, "rollouts", rollout)
        self.spawn([str(peers_dir() / "rollouts-controller"), "--kubeconfig",
                    str(self.ctl_kubeconfig or self.kubeconfig), "--namespace", ns, "--namespaced",
                    "--leader-elect=false", "--loglevel", "info",
                    "--metricsPort", str(cluster_mod.free_port()),
                    "--healthzPort", str(cluster_mod.free_port())],
                   env={"POD_NAMESPACE": ns})
        wait_for(lambda: self.rollout().get("status", {}).get("phase") == "Healthy", 180,
                 "argo: the first Rollout revision Healthy")
        self.start_traffic()

    def rollout(self) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            *ARGO, self.namespace, "rollouts", "checkout")
        return obj

    def replica_sets(self) -> dict[str, dict[str, Any]]:
        items = self.apps.list_namespaced_replica_set(self.namespace).items
        out = {}
        for rs in items:
            h = (rs.metadata.labels or {}).get("rollouts-pod-template-hash")
            if h:
                out[h] = {"spec": rs.spec.replicas or 0,
                          "ready": (rs.status.ready_replicas or 0) if rs.status else 0}
        return out

    def canary_hash(self) -> str | None:
        status = self.rollout().get("status", {})
        current, stable = status.get("currentPodHash"), status.get("stableRS")
        return current if current and current != stable else None

    def weight(self) -> int | None:
        status = self.rollout().get("status", {})
        sets = self.replica_sets()
        stable = sets.get(status.get("stableRS", ""), {}).get("ready", 0)
        current = status.get("currentPodHash")
        canary = sets.get(current, {}).get("ready", 0) if current != status.get("stableRS") \
            else 0
        total = stable + canary
        return round(100 * canary / total) if total else None

    def release(self, version: str) -> None:
        patch = {"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": f"registry.local/checkout:{version}",
             "ports": [{"containerPort": 8080}]}]}}}}
        self.previous = self.rollout().get("status", {}).get("currentPodHash")
        self.custom.patch_namespaced_custom_object(*ARGO, self.namespace, "rollouts",
                                                   "checkout", patch)
        self.hash: str | None = None

    def at_first_step(self) -> bool:
        self.hash = self.canary_hash()
        if self.hash is None or self.hash == self.previous:  # not the release before
            self.hash = None
            return False
        status = self.rollout().get("status", {})
        return bool(status.get("currentStepIndex", 0) >= 1 and not status.get("abort")
                    and self.replica_sets().get(self.hash, {}).get("ready", 0) >= 1
                    and self.weight() == 10)

    def restored(self) -> bool:
        assert self.hash is not None
        return bool(self.replica_sets().get(self.hash, {}).get("spec", 1) == 0)

    def describe_restore(self) -> str:
        status = self.rollout().get("status", {})
        return f"(abort={status.get('abort')}: {str(status.get('message', ''))[:80]})"

    def promoted(self) -> bool:
        status = self.rollout().get("status", {})
        return bool(self.hash and status.get("stableRS") == self.hash
                    and not status.get("abort"))

    def set_hold(self, hold: str) -> None:
        steps = render("argo-rollout.yaml", IMAGE="x", HOLD=hold)[0]["spec"]["strategy"][
            "canary"]["steps"]
        self.custom.patch_namespaced_custom_object(
            *ARGO, self.namespace, "rollouts", "checkout",
            {"spec": {"strategy": {"canary": {"steps": steps}}}})

    def state(self) -> str:
        status = self.rollout().get("status", {})
        return (f"phase={status.get('phase')} step={status.get('currentStepIndex')} "
                f"abort={status.get('abort')} weight={self.weight()} "
                f"message={str(status.get('message', ''))[:90]}")

    def scale_create(self, names: list[str]) -> None:
        def one(name: str) -> None:
            doc = render("argo-rollout.yaml", IMAGE="registry.local/app:v1", HOLD="1h")[0]
            doc["metadata"]["name"] = name
            doc["spec"]["replicas"] = 1
            doc["spec"]["selector"]["matchLabels"] = {"app": name}
            doc["spec"]["template"]["metadata"]["labels"] = {"app": name}
            self.custom.create_namespaced_custom_object(*ARGO, self.namespace, "rollouts",
                                                        doc)
        parallel(one, names)

    def scale_ready(self) -> set[str]:
        items = self.custom.list_namespaced_custom_object(*ARGO, self.namespace,
                                                          "rollouts")["items"]
        return {r["metadata"]["name"] for r in items
                if (r.get("status") or {}).get("phase") == "Healthy"}

    def scale_release(self, name: str) -> None:
        patch = {"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "registry.local/app:v2",
             "ports": [{"containerPort": 8080}]}]}}}}
        self.custom.patch_namespaced_custom_object(*ARGO, self.namespace, "rollouts", name,
                                                   patch)

    def scale_at_first_step(self) -> int:
        items = self.custom.list_namespaced_custom_object(*ARGO, self.namespace,
                                                          "rollouts")["items"]
        names = set(self.scale_names)
        n = 0
        for r in items:
            status = r.get("status") or {}
            n += (r["metadata"]["name"] in names and (status.get("currentStepIndex") or 0) >= 1
                  and status.get("currentPodHash") != status.get("stableRS")
                  and not status.get("abort"))
        return n


FLAGGER = ("flagger.app", "v1beta1")


class Flagger(System):
    gate_url: str = ""

    def setup(self) -> None:
        self.first_step_timeout, self.cooldown = 600.0, 70.0
        ns = self.namespace
        self.apps.create_namespaced_deployment(
            ns, deployment("checkout", "stable", "registry.local/checkout:v1", 2))
        for doc in render("flagger-metric-templates.yaml", SERVICE=self.label,
                          PROMETHEUS_URL=self.prometheus_url):
            self.custom.create_namespaced_custom_object(*FLAGGER, ns, "metrictemplates", doc)
        canary = render("flagger-canary.yaml", NAMESPACE=ns)[0]
        self.custom.create_namespaced_custom_object(*FLAGGER, ns, "canaries", canary)
        self.spawn([str(peers_dir() / "flagger"), "-kubeconfig",
                    str(self.ctl_kubeconfig or self.kubeconfig),
                    "-namespace", ns, "-mesh-provider", "gatewayapi:v1",
                    "-metrics-server", self.prometheus_url, "-log-level", "info",
                    "-port", str(cluster_mod.free_port())])
        wait_for(lambda: self.canary().get("status", {}).get("phase") == "Initialized", 300,
                 "flagger: the Canary Initialized")
        self.start_traffic()

    def canary(self) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            *FLAGGER, self.namespace, "canaries", "checkout")
        return obj

    def weight(self) -> int | None:
        try:
            route = self.custom.get_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", self.namespace, "httproutes", "checkout")
        except ApiException:
            return None
        for rule in route["spec"].get("rules", []):
            for ref in rule.get("backendRefs", []):
                if ref["name"] == "checkout-canary":
                    return int(ref.get("weight", 1))
        return None

    def release(self, version: str) -> None:
        self.previous = self.canary().get("status", {}).get("lastAppliedSpec")
        patch = {"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": f"registry.local/checkout:{version}"}]}}}}
        self.apps.patch_namespaced_deployment("checkout", self.namespace, patch)

    def at_first_step(self) -> bool:
        status = self.canary().get("status", {})
        # lastAppliedSpec changes when Flagger takes the new revision in (a release during a
        # run would otherwise be taken for the run before it)
        return bool(status.get("phase") == "Progressing" and status.get("canaryWeight") == 10
                    and status.get("lastAppliedSpec") != self.previous and self.weight() == 10)

    def restored(self) -> bool:
        # weight 0 also ends a promotion (Finalising, Succeeded): not a rollback
        return self.weight() == 0 and self.canary().get("status", {}).get("phase") not in (
            "Promoting", "Finalising", "Succeeded")

    def describe_restore(self) -> str:
        status = self.canary().get("status", {})
        return (f"(phase={status.get('phase')}, failedChecks={status.get('failedChecks')})")

    def promoted(self) -> bool:
        return self.canary().get("status", {}).get("phase") in (
            "Promoting", "Finalising", "Succeeded")

    def state(self) -> str:
        status = self.canary().get("status", {})
        return (f"phase={status.get('phase')} weight={status.get('canaryWeight')} "
                f"failedChecks={status.get('failedChecks')}")

    def scale_create(self, names: list[str]) -> None:
        def one(name: str) -> None:
            self.apps.create_namespaced_deployment(
                self.namespace, deployment(name, "stable", "registry.local/app:v1", 1))
            doc = render("flagger-canary.yaml", NAMESPACE=self.namespace)[0]
            doc["metadata"]["name"] = name
            doc["spec"]["targetRef"]["name"] = name
            # Flagger has no pause at a step: a confirm-traffic-increase webhook (its manual
            # gating) keeps the canary at 10 % while its analysis runs every interval
            doc["spec"]["analysis"]["webhooks"] = [{
                "name": "hold-at-first-step", "type": "confirm-traffic-increase",
                "url": self.gate_url, "timeout": "15s"}]
            self.custom.create_namespaced_custom_object(*FLAGGER, self.namespace, "canaries",
                                                        doc)
        parallel(one, names)

    def scale_release(self, name: str) -> None:
        patch = {"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "registry.local/app:v2"}]}}}}
        self.apps.patch_namespaced_deployment(name, self.namespace, patch)

    def scale_ready(self) -> set[str]:
        items = self.custom.list_namespaced_custom_object(*FLAGGER, self.namespace,
                                                          "canaries")["items"]
        return {c["metadata"]["name"] for c in items
                if (c.get("status") or {}).get("phase") == "Initialized"}

    def scale_at_first_step(self) -> int:
        items = self.custom.list_namespaced_custom_object(*FLAGGER, self.namespace,
                                                          "canaries")["items"]
        names = set(self.scale_names)
        return sum(1 for c in items if c["metadata"]["name"] in names
                   and (c.get("status") or {}).get("phase") == "Progressing"
                   and ((c.get("status") or {}).get("canaryWeight") or 0) >= 10)


SYSTEMS: dict[str, tuple[type[System], str]] = {
    "rolloutctl": (Rolloutctl, "checkout"),
    "argo": (Argo, "checkout-argo"),
    "flagger": (Flagger, "checkout-flagger"),
}


def parallel(fn: Callable[[Any], None], items: list[Any], threads: int = 8) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fn, items))


class PinnedPrometheus(PrometheusServer):
    """A PrometheusServer that starts again on the port (and data directory) it had."""

    pinned = 0

    @property
    def port(self) -> int:
        return self._port

    @port.setter
    def port(self, value: int) -> None:
        self._port = self.pinned or value

    def restart_later(self) -> None:
        self.pinned = self.port


class FlaggerGate:
    """Flagger's confirm-traffic-increase webhook for the scale canaries: open (200) while a
    canary is at 0 %, closed (403) once it carries traffic, so it stays at its first step."""

    def __init__(self, api: client.ApiClient) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        custom: Any = client.CustomObjectsApi(api)
        self.calls = 0
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                import json

                gate.calls += 1
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length")
                                                      or 0)) or b"{}")
                code = 403
                try:
                    canary = custom.get_namespaced_custom_object(
                        *FLAGGER, body["namespace"], "canaries", body["name"])
                    code = 200 if not canary.get("status", {}).get("canaryWeight") else 403
                except (KeyError, ApiException):
                    pass
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def watch_states(s: System, scenario: str, seconds: float, t0: float) -> list[tuple[float, str]]:
    """Poll S's state every second for SECONDS; print and return each change (time since
    T0, state), and when it first showed a rollback or a promotion."""
    seen: list[tuple[float, str]] = []
    last = ""
    end = time.time() + seconds
    while time.time() < end:
        try:
            state = s.state()
            if s.restored():
                state = "ROLLED BACK " + state
            elif s.promoted():
                state = "PROMOTED " + state
        except Exception as exc:  # not readable for a moment: keep polling
            state = f"unreadable: {exc}"[:120]
        if state != last:
            t = time.time() - t0
            seen.append((t, state))
            print(f"{s.name:10s} {scenario} t={t:6.0f} s: {state}", flush=True)
            last = state
        time.sleep(1.0)
    return seen


def summarize(seen: list[tuple[float, str]], split: float | None = None) -> str:
    """The first rollback or promotion in SEEN (with its time), else the last state; with
    SPLIT, whether it happened before it (during the outage) or after."""
    for t, state in seen:
        for word, what in (("ROLLED BACK", "rolled back"), ("PROMOTED", "promoted")):
            if state.startswith(word):
                when = ""
                if split is not None:
                    when = " during the outage" if t < split else " after Prometheus was back"
                return f"{what} at t={t:.0f} s{when} ({state[len(word) + 1:][:110]})"
    return f"kept the canary, waiting (last: {seen[-1][1][:110] if seen else '?'})"


def first_step_all(systems: list[System], version: str) -> None:
    def one(s: System) -> None:
        s.canary_app.configure(error_rate=0.0)
        s.version = version
        s.release(version)
        wait_for(s.at_first_step, s.first_step_timeout,
                 f"{s.name}: canary {version} at its first step")
    threads = [threading.Thread(target=one, args=(s,)) for s in systems]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def low_traffic(systems: list[System], rps: float, seconds: float, hold: str) -> None:
    """A healthy canary with too little traffic to judge: the whole service at RPS (the
    canary gets RPS x its weight), steps held HOLD. What does each system do?"""
    print(f"== too little traffic: {rps:g} requests/s in all ({60 * rps * 0.1:g}/min to the "
          f"canary at 10 %), holds {hold}, watched {seconds:.0f} s from the first step",
          flush=True)
    for s in systems:
        s.set_hold(hold)
        s.set_rps(rps)

    def one(s: System) -> None:
        try:
            s.canary_app.configure(error_rate=0.0)
            s.version = "low1"
            s.release(s.version)
            t0 = time.time()
            wait_for(s.at_first_step, s.first_step_timeout,
                     f"{s.name}: canary {s.version} at its first step")
            print(f"{s.name:10s} low-traffic: first step after {time.time() - t0:.0f} s",
                  flush=True)
            seen = watch_states(s, "low-traffic", seconds, time.time())
            s.scenarios["low-traffic"] = summarize(seen)
        except Exception as exc:
            s.scenarios["low-traffic"] = f"FAILED: {exc}"[:300]
            traceback.print_exc()
    threads = [threading.Thread(target=one, args=(s,)) for s in systems]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in systems:
        s.set_rps(RPS)
        s.set_hold("1h")
    time.sleep(max(s.cooldown for s in systems))


def outage(systems: list[System], prometheus: PinnedPrometheus, minutes: float,
           after: float, settle: float) -> None:
    """Prometheus stopped (by its PID) for MINUTES while every canary is mid-step, then
    started again on the same port and data directory; watched AFTER seconds more."""
    print(f"== Prometheus outage of {minutes:g} min mid-step, watched {after:.0f} s after",
          flush=True)
    first_step_all(systems, "out1")
    time.sleep(settle)
    seen: dict[str, list[tuple[float, str]]] = {}
    t0 = time.time()
    length = 60 * minutes

    def one(s: System) -> None:
        seen[s.name] = watch_states(s, "outage", length + after, t0)
    threads = [threading.Thread(target=one, args=(s,)) for s in systems]
    prometheus.restart_later()
    prometheus.stop()
    for s in systems:
        assert s.prom_proxy is not None
        s.prom_proxy.pause()
    print(f"Prometheus stopped (port {prometheus.port}) at t=0", flush=True)
    for t in threads:
        t.start()
    time.sleep(length)
    prometheus.start()
    for s in systems:
        assert s.prom_proxy is not None
        s.prom_proxy.resume()
    print(f"Prometheus started again on port {prometheus.port} at "
          f"t={time.time() - t0:.0f} s", flush=True)
    for t in threads:
        t.join()
    for s in systems:
        s.scenarios["outage"] = summarize(seen.get(s.name, []), split=length)
    time.sleep(max(s.cooldown for s in systems))


def add_nodes(cl: cluster_mod.Cluster, pods: int) -> None:
    """kwok Nodes (110 pods each) for PODS more pods."""
    status, body = cl.request("GET", "/api/v1/nodes")
    have = len(body.get("items", [])) if status == 200 else 0
    for i in range(have, have + -(-pods // 100)):
        status, body = cl.request("POST", "/api/v1/nodes", cluster_mod._node(f"kwok-node-{i}"))
        if status not in (201, 409):
            raise RuntimeError(f"creating Node kwok-node-{i}: HTTP {status}: {body}")


def widen_service_ips(cl: cluster_mod.Cluster) -> None:
    """One more ServiceCIDR (10.1.0.0/16): the local control plane's /24 holds ~250
    ClusterIPs, and Flagger makes three Services per Canary."""
    status, body = cl.request("POST", "/apis/networking.k8s.io/v1/servicecidrs", {
        "apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
        "metadata": {"name": "peers-scale"}, "spec": {"cidrs": ["10.1.0.0/16"]}})
    if status not in (201, 409):
        raise RuntimeError(f"creating the ServiceCIDR: HTTP {status}: {body}")


def counters(cl: cluster_mod.Cluster, prometheus: PrometheusServer) -> dict[str, float]:
    _, text = cl.request("GET", "/metrics")
    api = parse_samples(text, ["apiserver_request_total{"])
    prom = parse_samples(scrape(f"{prometheus.url}/metrics"),
                         ["prometheus_http_requests_total",
                          "prometheus_engine_query_duration_seconds_count"])
    return {
        "apiserver": total(api, "apiserver_request_total"),
        "prom_http": (total(prom, "prometheus_http_requests_total", handler="/api/v1/query")
                      + total(prom, "prometheus_http_requests_total",
                              handler="/api/v1/query_range")),
        "prom_engine": total(prom, "prometheus_engine_query_duration_seconds_count",
                             slice="inner_eval"),
    }


def scale(systems: list[System], sizes: list[int], window: float, timeout: float,
          cl: cluster_mod.Cluster, prometheus: PrometheusServer) -> dict[int, dict[str, float]]:
    """N canaries per system at their first step (cumulative over SIZES), then WINDOW
    seconds measured for the three at once: CPU, peak RSS, API requests and Prometheus
    queries per minute (each system's own, counted by its proxies)."""
    overall: dict[int, dict[str, float]] = {}
    for s in systems:  # the scale canaries' queries read the demo canary's series: 10 %
        s.weight_override = 10
    widen_service_ips(cl)
    for n in sizes:
        print(f"== cost at scale: {n} canaries per system at their first step", flush=True)
        add_nodes(cl, 2 * sum(max(0, n - len(s.scale_names)) for s in systems) + 20)
        released: dict[str, set[str]] = {s.name: set() for s in systems}

        def create(s: System, n: int = n) -> None:
            new = [f"s-{i:03d}" for i in range(len(s.scale_names), n)]
            s.scale_names.extend(new)
            s.scale_create(new)
        parallel(create, systems, threads=len(systems))
        started, last = time.monotonic(), 0.0
        while time.monotonic() - started < timeout:
            done = {}
            for s in systems:
                todo = sorted(s.scale_ready() - released[s.name])
                parallel(s.scale_release, todo)
                released[s.name].update(todo)
                done[s.name] = s.scale_at_first_step()
            if all(v >= n for v in done.values()):
                break
            if time.monotonic() - last > 30:
                last = time.monotonic()
                print(f"  {time.monotonic() - started:.0f} s: at the first step "
                      + ", ".join(f"{k} {v}/{n}" for k, v in done.items()), flush=True)
            time.sleep(5)
        print(f"  all at their first step after {time.monotonic() - started:.0f} s "
              "(or the timeout); measuring " f"{window:.0f} s", flush=True)
        sampler = ProcessSampler({s.name: s.process.pid for s in systems
                                  if s.process is not None}, every=2.0)
        cpu0 = sampler.cpu()
        api0 = {s.name: s.api_proxy.snapshot() for s in systems if s.api_proxy}
        prom0 = {s.name: s.prom_proxy.snapshot() for s in systems if s.prom_proxy}
        glob0, t0 = counters(cl, prometheus), time.monotonic()
        time.sleep(window)
        cpu1 = sampler.cpu()
        glob1, t1 = counters(cl, prometheus), time.monotonic()
        minutes = (t1 - t0) / 60
        sampler.stop()
        for s in systems:
            assert s.api_proxy is not None and s.prom_proxy is not None
            api = s.api_proxy.snapshot() - api0[s.name]
            prom = s.prom_proxy.snapshot() - prom0[s.name]
            s.cost[n] = {
                "cores": (cpu1.get(s.name, 0.0) - cpu0.get(s.name, 0.0)) / (t1 - t0),
                "rss_mib": sampler.rss_max.get(s.name, 0.0) / 2**20,
                "api_per_min": sum(api.values()) / minutes,
                "api_writes_per_min": sum(v for (k, _), v in api.items()
                                          if k not in ("GET", "WATCH")) / minutes,
                "prom_per_min": sum(v for (_, path), v in prom.items()
                                    if path.startswith("/api/v1/query")) / minutes,
                "at_first_step": float(s.scale_at_first_step()),
            }
            print(f"  {s.name:10s} " + ", ".join(f"{k} {v:.3f}" for k, v in s.cost[n].items()),
                  flush=True)
        overall[n] = {k: (glob1[k] - glob0[k]) / minutes for k in glob1}
        overall[n]["load1"] = os.getloadavg()[0]
        print(f"  all clients: {overall[n]}", flush=True)
    return overall


def versions() -> dict[str, str]:
    stamp = peers_dir() / "STAMP"
    line = stamp.read_text().splitlines()[0] if stamp.is_file() else ""
    out = dict(part.split("=", 1) for part in line.split() if "=" in part)
    out["rolloutctl"] = subprocess.run(
        [sys.executable, "-c", "import importlib.metadata as m; print(m.version('rolloutctl'))"],
        capture_output=True, text=True, check=False).stdout.strip() or "?"
    return out


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per system and fault")
    parser.add_argument("--faults", default="1.0,0.05",
                        help="canary error rates injected, comma-separated")
    parser.add_argument("--systems", default="rolloutctl,argo,flagger")
    parser.add_argument("--settle", type=float, default=20.0,
                        help="seconds at the first step, healthy, before the fault")
    parser.add_argument("--system-runs", default="",
                        help="runs for some systems, e.g. flagger=1 (Flagger's restore takes "
                             "its threshold x its interval, minutes per run)")
    parser.add_argument("--spike-runs", type=int, default=0,
                        help="false rollbacks: runs of a 60 s spike of 3 %% errors")
    parser.add_argument("--spike-watch", type=float, default=150.0,
                        help="seconds watched after the spike ends")
    parser.add_argument("--spread", type=float, default=60.0,
                        help="plus a random 0..SPREAD seconds (the peers' 1 m cycle)")
    parser.add_argument("--low-traffic-rps", type=float, default=0.5,
                        help="too little traffic to judge: the service's requests a second "
                             "(the canary gets 10 %% of them at its first step); 0: skip")
    parser.add_argument("--low-traffic-watch", type=float, default=420.0,
                        help="seconds watched from the first step (holds of 1 m)")
    parser.add_argument("--outage-minutes", type=float, default=10.0,
                        help="Prometheus outage mid-step, once per system at the same time; "
                             "0: skip")
    parser.add_argument("--outage-after", type=float, default=180.0,
                        help="seconds watched after Prometheus is back")
    parser.add_argument("--scale", default="10,100",
                        help="cost at scale: canaries per system, comma-separated, cumulative "
                             "(500 is heavy on 2 cores); empty: skip")
    parser.add_argument("--scale-window", type=float, default=180.0,
                        help="seconds measured at each scale, all systems at once")
    parser.add_argument("--scale-timeout", type=float, default=2700.0,
                        help="seconds to wait for the canaries to reach their first step "
                        "(500 more took 906 s on 2 cores)")
    parser.add_argument("--quick", action="store_true", help="one run, the 100 %% fault")
    parser.add_argument("--cluster", help="an existing `tests.harness.cluster` dir")
    parser.add_argument("--no-build", action="store_true",
                        help="do not call tools/build-peers.sh")
    args = parser.parse_args()
    # SIGTERM and SIGINT (even when started in the background) stop every process we started
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    faults = [1.0] if args.quick else [float(f) for f in args.faults.split(",")]
    runs = 1 if args.quick else args.runs
    per_system = {k.strip(): 1 if args.quick else int(v) for k, v in
                  (part.split("=", 1) for part in args.system_runs.split(",") if "=" in part)}
    sizes = [int(n) for n in args.scale.split(",") if n.strip()]
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in names if s not in SYSTEMS]
    if unknown:
        parser.error(f"--systems: unknown {', '.join(unknown)} (choose from "
                     f"{', '.join(SYSTEMS)})")
    if not args.no_build and set(names) - {"rolloutctl"}:
        subprocess.run([str(REPO / "tools" / "build-peers.sh")], check=True)

    work = Path(tempfile.mkdtemp(prefix="peers-bench-"))
    own = args.cluster is None
    cdir = Path(args.cluster) if args.cluster else work / "cluster"
    print(f"starting the local control plane in {cdir} ...", flush=True)
    cl = cluster_mod.load_cluster(cdir) or cluster_mod.start_cluster(cdir)
    api = cl.api_client()
    extra = [peers_dir() / "crds" / "argo-rollouts.yaml"] if "argo" in names else []
    extra += [peers_dir() / "crds" / "flagger.yaml"] if "flagger" in names else []
    install_crds(api, [*crd_files()[0], *extra])
    suffix = int(time.time())
    systems = [SYSTEMS[n][0](n, SYSTEMS[n][1], api, cl.kubeconfig, f"peers-{n}-{suffix}",
                             work / n, "") for n in names]
    gate = FlaggerGate(api) if sizes and "flagger" in names else None
    for s in systems:
        # every controller talks to the API server and to Prometheus through its own
        # counting proxy: requests per system, measured at the same time
        s.api_proxy = CountingProxy(f"{s.name}-api", cl.server,
                                    token=cl.tokens[cluster_mod.ADMIN_USER],
                                    ca_file=cl.ca_file).start()
        s.ctl_kubeconfig = s.api_proxy.kubeconfig(s.workdir / "kubeconfig-proxy")
        if isinstance(s, Flagger) and gate is not None:
            s.gate_url = gate.url
    prometheus = PinnedPrometheus(work / "prometheus",
                                  targets=[t for s in systems for t in s.targets],
                                  scrape_interval="1s")
    prometheus.start()
    failures: dict[str, str] = {}
    overall: dict[int, dict[str, float]] = {}
    usage: dict[str, tuple[float, int]] = {}
    started = time.monotonic()
    try:
        prometheus.wait_for_targets_up()
        for s in systems:
            s.prom_proxy = CountingProxy(f"{s.name}-prometheus", prometheus.url).start()
            s.prometheus_url = s.prom_proxy.url
            print(f"{s.name}: setting up in namespace {s.namespace}", flush=True)
            s.setup()
            s.cpu_start = (time.monotonic(), s.usage()[0])

        def go(s: System) -> None:
            try:
                s.run(faults, per_system.get(s.name, runs), args.settle, args.spread)
                s.spike(args.spike_runs, args.settle, args.spread, 0.03, 60.0,
                        args.spike_watch)
            except Exception as exc:
                failures[s.name] = f"{exc}\n{s.log_tail()}"
                traceback.print_exc()

        threads = [threading.Thread(target=go, args=(s,), daemon=True) for s in systems]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for s in systems:
            cpu, rss = s.usage()
            wall = time.monotonic() - s.cpu_start[0]
            usage[s.name] = ((cpu - s.cpu_start[1]) / wall, rss)
        phases: list[tuple[str, Callable[[], Any]]] = []
        if args.low_traffic_rps > 0:
            phases.append(("low-traffic", lambda: low_traffic(
                systems, args.low_traffic_rps, args.low_traffic_watch, "1m")))
        if args.outage_minutes > 0:
            phases.append(("outage", lambda: outage(
                systems, prometheus, args.outage_minutes, args.outage_after, 30.0)))
        if sizes:
            phases.append(("scale", lambda: overall.update(scale(
                systems, sizes, args.scale_window, args.scale_timeout, cl, prometheus))))
        for phase, fn in phases:
            try:
                fn()
            except Exception as exc:
                failures[phase] = f"{exc}"
                traceback.print_exc()
    except KeyboardInterrupt:
        print("interrupted: stopping, then the figures so far", flush=True)
    finally:
        for s in systems:
            s.stop()
            for proxy in (s.api_proxy, s.prom_proxy):
                if proxy is not None:
                    proxy.stop()
        if gate is not None:
            gate.stop()
        prometheus.stop()
        if own:
            cl.stop()
    report(systems, faults, usage, failures, time.monotonic() - started, overall, args)


def report(systems: list[System], faults: list[float], usage: dict[str, tuple[float, int]],
           failures: dict[str, str], took: float, overall: dict[int, dict[str, float]],
           args: argparse.Namespace) -> None:
    print()
    print(f"machine: {describe()}; load average now {os.getloadavg()[0]:.1f}; "
          f"{took / 60:.1f} min")
    v = versions()
    print(f"versions: rolloutctl {v.get('rolloutctl')}, Argo Rollouts "
          f"{v.get('argo-rollouts', '?')}, Flagger {v.get('flagger', '?')}")
    ours = next((s for s in systems if s.name == "rolloutctl"), None)
    for fault in faults:
        print(f"time to restore, canary error rate {100 * fault:g} % (fault -> canary weight 0 "
              "/ canary scaled to 0, seen in the API server):")
        for s in systems:
            values = s.results.get(fault, [])
            text = ", ".join(f"{x:.1f}" for x in values) or "no run"
            line = f"  {s.name:10s} median {median(values):7.1f} s   runs: {text}"
            if ours is not None and s is not ours and values and ours.results.get(fault):
                line += f"   rolloutctl/{s.name} {median(ours.results[fault]) / median(values):.2f}"
            print(line)
    if any(s.spikes for s in systems):
        print("false rollbacks: a 60 s spike of 3 % canary errors on a canary otherwise "
              "healthy (rolled back / runs):")
        for s in systems:
            back = [x for x in s.spikes if x is not None]
            print(f"  {s.name:10s} {len(back)} / {len(s.spikes)}"
                  + (f"   (after {', '.join(f'{x:.0f}' for x in back)} s)" if back else ""))
    print("controller cost with one canary each, over the whole invocation:")
    for s in systems:
        cpu, rss = usage.get(s.name, (float("nan"), 0))
        line = f"  {s.name:10s} CPU {cpu:.3f} cores   peak RSS {rss / 2**20:.0f} MiB"
        if ours is not None and s is not ours and s.name in usage and "rolloutctl" in usage:
            ocpu, orss = usage["rolloutctl"]
            line += (f"   rolloutctl/{s.name}: CPU {ocpu / cpu:.2f}, RSS {orss / rss:.2f}"
                     if cpu and rss else "")
        print(line)
    if any("low-traffic" in s.scenarios for s in systems):
        print(f"too little traffic to judge ({args.low_traffic_rps:g} requests/s in all, "
              f"{60 * args.low_traffic_rps * 0.1:g}/min to the canary at 10 %; holds 1 m; "
              f"watched {args.low_traffic_watch:.0f} s from the first step):")
        for s in systems:
            print(f"  {s.name:10s} {s.scenarios.get('low-traffic', 'not run')}")
    if any("outage" in s.scenarios for s in systems):
        print(f"Prometheus outage of {args.outage_minutes:g} min mid-step (t=0: stopped; "
              f"started again at t={60 * args.outage_minutes:.0f} s; watched "
              f"{args.outage_after:.0f} s more):")
        for s in systems:
            print(f"  {s.name:10s} {s.scenarios.get('outage', 'not run')}")
    if overall:
        print(f"cost at scale: canaries per system at their first step, "
              f"{args.scale_window:.0f} s measured for the three at once (each system's "
              "requests counted by its own proxy):")
        figures = [("cores", "CPU cores", "{:.3f}"), ("rss_mib", "peak RSS MiB", "{:.0f}"),
                   ("api_per_min", "API requests/min", "{:.0f}"),
                   ("api_writes_per_min", "  of which writes/min", "{:.0f}"),
                   ("prom_per_min", "Prometheus queries/min", "{:.0f}")]
        for n in sorted(overall):
            print(f"  {n} canaries (at the first step: " + ", ".join(
                f"{s.name} {s.cost.get(n, {}).get('at_first_step', 0):.0f}" for s in systems)
                + f"; load average {overall[n].get('load1', 0):.1f}):")
            for key, label, fmt in figures:
                cells = [fmt.format(s.cost.get(n, {}).get(key, float("nan")))
                         for s in systems]
                line = f"    {label:24s} " + "  ".join(f"{s.name} {c:>8s}" for s, c in
                                                     zip(systems, cells, strict=True))
                if ours is not None and ours.cost.get(n):
                    for s in systems:
                        if s is ours or not s.cost.get(n, {}).get(key):
                            continue
                        line += f"   rolloutctl/{s.name} {ours.cost[n][key] / s.cost[n][key]:.2f}"
                print(line)
            print(f"    all clients: API server {overall[n].get('apiserver', 0):.0f} requests/min, "
                  f"Prometheus served {overall[n].get('prom_http', 0):.0f} queries/min "
                  f"(engine {overall[n].get('prom_engine', 0):.0f})")
    for name, text in failures.items():
        print(f"{name} FAILED: {text}")


if __name__ == "__main__":
    main()
