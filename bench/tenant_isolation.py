"""Tenant isolation: a tenant whose Prometheus and probe drip their answers does not slow
another tenant's rollback.

    python -m bench.tenant_isolation [--runs 5] [--tenant-a-plans 6] [--cluster DIR]

On the local control plane, one real ``rolloutctl run`` (default workers) watches two
namespaces. Tenant B has a real canary and stable service, a live Prometheus and an
SLOPolicy with a fast-burn alert; each run releases a canary, waits for its first step,
makes every canary request fail and measures fault -> canary weight 0 on the HTTPRoute
(seen by a watch). Phase 1 measures B alone. Phase 2 adds tenant A: an SLOPolicy whose
``spec.prometheus.url`` and the plans' probe gates point at a server that sends one byte
every 0.5 s (``--tenant-a-plans`` plans in a run, Prometheus timeout 10 s), and measures B
again. Prints each run, the medians and their ratio (goal: with A <= 1.2 x without A).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from kubernetes import client

from bench.machine import describe, median
from bench.rollback_latency import _bad, _total
from tests.harness import cluster as cluster_mod
from tests.harness.drip import DrippingServer
from tests.harness.fixtures import crd_files, install_crds
from tests.harness.routes import RouteWatch
from tests.harness.stack import Stack, rollout_plan, slo_policy

INTERVAL = "1s"
WINDOW = 5


def b_policy(stack: Stack) -> dict[str, Any]:
    assert stack.prometheus is not None
    return slo_policy("platform", stack.service, stack.prometheus.url, extra={
        "slos": [{"name": "api_availability", "objective": 99, "window": "1h",
                  "sli": {"ratio": {"bad": _bad(), "total": _total()}},
                  "burnRateAlerts": [{"severity": "critical", "factor": 14.4,
                                      "long": f"{WINDOW * 6}s", "short": f"{WINDOW}s"}]}]})


def a_policy(url: str) -> dict[str, Any]:
    doc = slo_policy("platform", "tenant-a", url, extra={"evaluationInterval": "2s"})
    doc["spec"]["prometheus"]["timeout"] = "10s"
    return doc


def a_plan(name: str, url: str) -> dict[str, Any]:
    return rollout_plan(name, "platform", hold="1h", interval=INTERVAL, window="10s",
                        rollback_after="10m", gates=[
                            {"slo": "api_availability"},
                            {"probe": {"url": f"{url}/health", "interval": "1s",
                                       "timeout": "10s"}}])


def measure_b(stack: Stack, routes: RouteWatch, runs: int, label: str) -> list[float]:
    assert stack.canary_app is not None
    seconds: list[float] = []
    for n in range(runs):
        stack.canary_app.configure(error_rate=0.0)
        run_before = stack.status().get("run", 0)
        stack.release(f"{label}{n + 2}")
        stack.wait_for(lambda rb=run_before: stack.status().get("run") == rb + 1
                       and stack.status().get("canaryWeight") == 10
                       and stack.route_weight() == 10, 180, "the first step")
        time.sleep(WINDOW + 1)  # healthy evaluations first
        fault = time.time()
        stack.canary_app.configure(error_rate=1.0)
        stack.wait_for(lambda: stack.status().get("phase") == "RolledBack", 180, "the rollback")
        zero = routes.wait_zero_after(fault)
        assert zero is not None
        decision = next(d for d in reversed(stack.status()["decisions"])
                        if d["type"] == "RollbackStarted")
        decided = datetime.fromisoformat(decision["at"].replace("Z", "+00:00")).timestamp()
        seconds.append(zero - fault)
        print(f"{label} run {n + 1:2d}: fault -> weight 0 {zero - fault:6.2f} s "
              f"(decided after {decided - fault:5.2f} s, {decision['reason']})", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="B's rollbacks per phase")
    parser.add_argument("--tenant-a-plans", type=int, default=6)
    parser.add_argument("--cluster", help="an existing `tests.harness.cluster` dir")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="isolation-bench-"))
    own = args.cluster is None
    cdir = Path(args.cluster) if args.cluster else work / "cluster"
    print(f"starting the local control plane in {cdir} ...", flush=True)
    cl = cluster_mod.load_cluster(cdir) or cluster_mod.start_cluster(cdir)
    api = cl.api_client()
    install_crds(api, crd_files()[0])
    stamp = int(time.time())
    ns_b, ns_a = f"tenant-b-{stamp}", f"tenant-a-{stamp}"
    for ns in (ns_b, ns_a):
        client.CoreV1Api(api).create_namespace({"metadata": {"name": ns}})
    b = Stack(cl.kubeconfig, api, ns_b, work / "b", rps=100)
    tenants_a = [Stack(cl.kubeconfig, api, ns_a, work / f"a{i}", service=f"svc-{i}")
                 for i in range(args.tenant_a_plans)]
    drip = DrippingServer(pause=0.5)
    alone: list[float] = []
    beside_a: list[float] = []
    try:
        b.start_services()
        b.create_workloads()
        b.start_traffic()
        b.apply(b_policy(b))
        b.apply(rollout_plan(b.service, "platform", hold="1h", interval=INTERVAL,
                             window=f"{WINDOW}s", rollback_after="10m", min_samples=5))
        ctl = b.start_controller("bench", extra=["--namespace", ns_a])
        ctl.wait_ready()
        routes = RouteWatch(api, ns_b, b.service).start()
        alone = measure_b(b, routes, args.runs, "without A")

        print(f"tenant A: {args.tenant_a_plans} plans and a policy against {drip.url} "
              "(one byte every 0.5 s)", flush=True)
        for i, a in enumerate(tenants_a):
            a.create_workloads(stable_replicas=1)
            if i == 0:
                a.apply(a_policy(drip.url))
            a.apply(a_plan(a.service, drip.url))
        for a in tenants_a:
            a.release("v2")
        for a in tenants_a:
            a.wait_for(lambda s=a: (s.status().get("run") or 0) >= 1, 120, "tenant A's run")
        b.wait_for(lambda: drip.connections >= args.tenant_a_plans, 60,
                   "tenant A's calls to the dripping server")
        beside_a = measure_b(b, routes, args.runs, "with A")
        routes.stop()
    finally:
        drip.stop()
        b.stop()
        for a in tenants_a:
            a.stop()
        if own:
            cl.stop()
    print(f"machine: {describe()}")
    print(f"tenant B fast-burn rollback (fault -> weight 0), {args.runs} runs per phase, "
          f"analysis interval {INTERVAL}")
    ratio = median(beside_a) / median(alone)
    print(f"  without tenant A: median {median(alone):.2f} s")
    print(f"  with tenant A ({args.tenant_a_plans} plans dripping): median "
          f"{median(beside_a):.2f} s")
    print(f"  ratio {ratio:.2f} (goal <= 1.20: {'met' if ratio <= 1.2 else 'NOT met'})")


if __name__ == "__main__":
    main()
