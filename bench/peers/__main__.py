"""rolloutctl side by side with Argo Rollouts and Flagger: time to restore.

    python -m bench.peers [--runs 3] [--faults 1.0,0.05] [--systems rolloutctl,argo,flagger]
                          [--quick] [--cluster DIR]

One local control plane (``tests.harness.cluster``), one live Prometheus scraping
every demo service (1 s scrape interval), and per system its own namespace, its own pair
of demo services (stable and canary, the sandbox's ``DemoApp``, labelled
``service=checkout[-argo|-flagger]``) and its own traffic (50 requests a second, split by
what that system sets in the API server). The three controllers run at the same time, each
started by PID with the admin kubeconfig:

- rolloutctl: ``rolloutctl run`` with a RolloutPlan and SLOPolicy as
  ``python -m bench.rollback_latency --default-plan`` uses them (analysis every 60 s,
  window 5 m, the platform policy's 99.9 % availability and burn-rate alerts, the fast
  path at its default 10 s). Restored: the HTTPRoute's canary weight is 0.
- Argo Rollouts (``rollouts-controller``): ``bench/peers/argo-rollout.yaml`` and
  ``argo-analysis-template.yaml`` (replica-based canary, background analysis every minute,
  documented failureLimit/consecutiveErrorLimit defaults). Restored: the canary ReplicaSet
  is scaled to 0 replicas.
- Flagger (``flagger -mesh-provider gatewayapi:v1``): ``bench/peers/flagger-canary.yaml``
  and ``flagger-metric-templates.yaml`` (analysis every minute, threshold 5). Restored: the
  HTTPRoute Flagger drives has canary weight 0.

Each run releases a new version, waits for the canary to carry 10 % of the traffic, lets it
run healthy for ``--settle`` seconds (20 s) plus a random 0-60 s (``--spread``: the fault
lands anywhere in the peers' 1-minute measurement cycle), then raises the canary's error rate to the
fault (100 %, then 5 %) and measures fault -> restored, seen by polling the API server
every 0.25 s. Prints every run, the median per system and fault, the ratio rolloutctl/peer,
and each controller's CPU (average cores over the whole invocation) and peak RSS with one
canary each. ``--quick``: one run, the 100 % fault only.

The peers are built on demand by ``tools/build-peers.sh`` (a cold build takes long).
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
from tests.harness import cluster as cluster_mod
from tests.harness.demo_app import DemoApp
from tests.harness.fixtures import crd_files, install_crds
from tests.harness.prometheus import PrometheusServer
from tests.harness.stack import Stack, deployment, rollout_plan, slo_policy
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
                                        self.weight, rps=RPS).start()

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
        self.stack.start_traffic()
        self.traffic = self.stack.traffic
        slo = {"name": "api_availability", "objective": 99.9, "window": "30d",
               "sli": {"ratio": {"bad": BAD, "total": TOTAL}},
               "burnRateAlerts": PLATFORM_ALERTS}
        self.stack.apply(slo_policy("platform", self.label, self.prometheus_url,
                                    extra={"slos": [slo]}))
        self.stack.apply(rollout_plan(self.label, "platform", hold="1h", interval="60s",
                                      window="5m", rollback_after="5m", min_samples=20))
        ctl = self.stack.start_controller("bench-peers")
        self.process = ctl.process
        ctl.wait_ready()

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
        return self.stack.route_weight() == 0

    def describe_restore(self) -> str:
        decisions = self.stack.status().get("decisions") or []
        last: dict[str, Any] = next(
            (d for d in reversed(decisions) if d.get("type") == "RollbackStarted"), {})
        return f"({last.get('reason', '?')}: {str(last.get('message', ''))[:80]})"

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
                    str(self.kubeconfig), "--namespace", ns, "--namespaced",
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
        self.custom.patch_namespaced_custom_object(*ARGO, self.namespace, "rollouts",
                                                   "checkout", patch)
        self.hash: str | None = None

    def at_first_step(self) -> bool:
        self.hash = self.canary_hash()
        if self.hash is None:
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


FLAGGER = ("flagger.app", "v1beta1")


class Flagger(System):
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
        self.spawn([str(peers_dir() / "flagger"), "-kubeconfig", str(self.kubeconfig),
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
        patch = {"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": f"registry.local/checkout:{version}"}]}}}}
        self.apps.patch_namespaced_deployment("checkout", self.namespace, patch)

    def at_first_step(self) -> bool:
        status = self.canary().get("status", {})
        return bool(status.get("phase") == "Progressing" and status.get("canaryWeight") == 10
                    and self.weight() == 10)

    def restored(self) -> bool:
        # weight 0 also ends a promotion (Finalising, Succeeded): not a rollback
        return self.weight() == 0 and self.canary().get("status", {}).get("phase") not in (
            "Promoting", "Finalising", "Succeeded")

    def describe_restore(self) -> str:
        status = self.canary().get("status", {})
        return (f"(phase={status.get('phase')}, failedChecks={status.get('failedChecks')})")


SYSTEMS: dict[str, tuple[type[System], str]] = {
    "rolloutctl": (Rolloutctl, "checkout"),
    "argo": (Argo, "checkout-argo"),
    "flagger": (Flagger, "checkout-flagger"),
}


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
    prometheus = PrometheusServer(work / "prometheus",
                                  targets=[t for s in systems for t in s.targets],
                                  scrape_interval="1s").start()
    failures: dict[str, str] = {}
    started = time.monotonic()
    try:
        prometheus.wait_for_targets_up()
        for s in systems:
            s.prometheus_url = prometheus.url
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
        usage = {}
        for s in systems:
            cpu, rss = s.usage()
            wall = time.monotonic() - s.cpu_start[0]
            usage[s.name] = ((cpu - s.cpu_start[1]) / wall, rss)
    finally:
        for s in systems:
            s.stop()
        prometheus.stop()
        if own:
            cl.stop()
    report(systems, faults, usage, failures, time.monotonic() - started)


def report(systems: list[System], faults: list[float], usage: dict[str, tuple[float, int]],
           failures: dict[str, str], took: float) -> None:
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
    for name, text in failures.items():
        print(f"{name} FAILED: {text}")


if __name__ == "__main__":
    main()
