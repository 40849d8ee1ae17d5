"""Time to restore: how fast a failing canary loses its traffic.

    python -m bench.rollback_latency [--runs 20] [--interval 1s] [--cluster DIR]

On the local control plane, with a live Prometheus scraping a real canary and stable
service and traffic split by the HTTPRoute's weight, each run releases a new canary, waits
for it to take its first step, then makes every canary request fail. Two figures per run:

- controller: from the evaluation that saw the failure (the rollback decision's pass, which
  includes its Prometheus queries) to the moment the HTTPRoute carries canary weight 0 in
  the API server (seen by a watch);
- end to end: from the start of the fault to canary weight 0.

Prints the runs, the median and the p99 of each, and the machine. The controller is the
real ``rolloutctl run`` process.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from kubernetes import client, watch

from bench.machine import describe, median, percentile
from controller.testing import cluster as cluster_mod
from controller.testing.fixtures import crd_files, install_crds
from controller.testing.stack import Stack, rollout_plan, slo_policy


class RouteWatch:
    """Wall-clock times at which the canary's weight on the HTTPRoute changed."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str) -> None:
        self.api, self.namespace, self.name = api, namespace, name
        self.changes: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        custom = client.CustomObjectsApi(self.api)
        while not self._stop.is_set():
            w = watch.Watch()
            try:
                for event in w.stream(custom.list_namespaced_custom_object,
                                      "gateway.networking.k8s.io", "v1", self.namespace,
                                      "httproutes", field_selector=f"metadata.name={self.name}",
                                      timeout_seconds=60, _request_timeout=70):
                    seen = time.time()
                    obj: dict[str, Any] = event["object"]
                    refs = obj["spec"]["rules"][0]["backendRefs"]
                    weight = int(next(r.get("weight", 1) for r in refs
                                      if r["name"].endswith("-canary")))
                    if not self.changes or self.changes[-1][1] != weight:
                        self.changes.append((seen, weight))
                    if self._stop.is_set():
                        break
            except Exception:
                time.sleep(0.2)
            finally:
                w.stop()

    def zero_after(self, t: float) -> float | None:
        return next((at for at, weight in self.changes if at >= t and weight == 0), None)

    def stop(self) -> None:
        self._stop.set()


def parse_seconds(text: str) -> float:
    from controller.api.types import parse_duration

    return parse_duration(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--interval", default="1s", help="analysis.interval of the plan")
    parser.add_argument("--cluster", help="an existing `controller.testing.cluster` dir")
    args = parser.parse_args()
    interval = parse_seconds(args.interval)
    work = Path(tempfile.mkdtemp(prefix="rollback-bench-"))
    own = args.cluster is None
    cdir = Path(args.cluster) if args.cluster else work / "cluster"
    print(f"starting the local control plane in {cdir} ...", flush=True)
    cl = cluster_mod.load_cluster(cdir) or cluster_mod.start_cluster(cdir)
    api = cl.api_client()
    install_crds(api, crd_files()[0])
    namespace = f"bench-{int(time.time())}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
    stack = Stack(cl.kubeconfig, api, namespace, work / "stack", rps=100)
    controller_side: list[float] = []
    end_to_end: list[float] = []
    try:
        stack.start_services()
        stack.create_workloads()
        stack.start_traffic()
        assert stack.prometheus is not None and stack.canary_app is not None
        window = max(5.0, 5 * interval)
        stack.apply(slo_policy("platform", stack.service, stack.prometheus.url, extra={
            "slos": [{"name": "api_availability", "objective": 99, "window": "1h",
                      "sli": {"ratio": {"bad": _bad(), "total": _total()}},
                      "burnRateAlerts": [{"severity": "critical", "factor": 14.4,
                                          "long": f"{int(window * 6)}s",
                                          "short": f"{int(window)}s"}]}]}))
        stack.apply(rollout_plan(stack.service, "platform", hold="1h", interval=args.interval,
                                 window=f"{int(window)}s", rollback_after="10m",
                                 min_samples=5))
        ctl = stack.start_controller("bench")
        ctl.wait_ready()
        routes = RouteWatch(api, namespace, stack.service)
        for n in range(args.runs):
            stack.canary_app.configure(error_rate=0.0)
            run_before = stack.status().get("run", 0)
            stack.release(f"v{n + 2}")
            stack.wait_for(lambda rb=run_before: stack.status().get("run") == rb + 1
                           and stack.status().get("canaryWeight") == 10
                           and stack.route_weight() == 10, 120, "the first step")
            time.sleep(window + interval)  # healthy evaluations first
            fault = time.time()
            stack.canary_app.configure(error_rate=1.0)
            stack.wait_for(lambda: stack.status().get("phase") == "RolledBack", 120,
                           "the rollback")
            status = stack.status()
            decision = next(d for d in reversed(status["decisions"])
                            if d["type"] == "RollbackStarted")
            decided = datetime.fromisoformat(decision["at"].replace("Z", "+00:00")).timestamp()
            zero = routes.zero_after(fault)
            if zero is None:
                stack.wait_for(lambda f=fault: routes.zero_after(f) is not None, 10, "the watch")
                zero = routes.zero_after(fault)
            assert zero is not None
            controller_side.append(zero - decided)
            end_to_end.append(zero - fault)
            print(f"run {n + 1:2d}: controller {1000 * (zero - decided):7.1f} ms   "
                  f"end to end {zero - fault:6.2f} s   ({decision['reason']})", flush=True)
        routes.stop()
    finally:
        stack.stop()
        if own:
            cl.stop()
    print(f"machine: {describe()}")
    print(f"runs: {len(controller_side)}, analysis interval {args.interval}")
    print(f"controller (failing evaluation -> weight 0 in the API server): "
          f"p50 {1000 * median(controller_side):.0f} ms, "
          f"p99 {1000 * percentile(controller_side, 99):.0f} ms (goal p99 <= 1000 ms)")
    print(f"end to end (fault -> weight 0): p50 {median(end_to_end):.2f} s, "
          f"p99 {percentile(end_to_end, 99):.2f} s")


def _bad() -> str:
    return ('sum(rate(http_requests_total{service="{{service}}",track="{{track}}",'
            'code=~"5.."}[{{window}}]))')


def _total() -> str:
    return 'sum(rate(http_requests_total{service="{{service}}",track="{{track}}"}[{{window}}]))'


if __name__ == "__main__":
    main()
