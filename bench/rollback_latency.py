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

``--default-plan`` judges the canary as the default plan does (``analysis.interval`` 60 s,
window 5 m, rollbackAfter 5 m, the platform policy's api_availability: 99.9 %, critical
alerts 14.4x over 1h/5m and 6x over 6h/30m; ``minSamples`` 20 because the sandbox's canary
sees 2-4 requests a second at its first step; the fault 20 s into the step, once the
windows hold that many) and measures fault -> weight 0 twice: with the
fast path on (``--fast-interval``, default 1 s: the sandbox's scrape interval) and off
(``--fast-interval 0``), printing both and their ratio. ``--ceiling 20%`` adds
``analysis.errorRatioCeiling`` to the plan.
"""

from __future__ import annotations

import argparse
import random
import signal
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from kubernetes import client

from bench.machine import describe, load, median, percentile
from tests.harness import cluster as cluster_mod
from tests.harness.fixtures import crd_files, install_crds
from tests.harness.routes import RouteWatch
from tests.harness.stack import Stack, rollout_plan, slo_policy


def parse_seconds(text: str) -> float:
    from controller.api.types import parse_duration

    return parse_duration(text)


PLATFORM_ALERTS = [{"severity": "critical", "factor": 14.4, "long": "1h", "short": "5m"},
                   {"severity": "critical", "factor": 6, "long": "6h", "short": "30m"}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--interval", default="1s", help="analysis.interval of the plan")
    parser.add_argument("--cluster", help="an existing `tests.harness.cluster` dir")
    parser.add_argument("--default-plan", action="store_true",
                        help="the default plan's analysis (60 s), fast path on and off")
    parser.add_argument("--fast-interval", default="1",
                        help="rolloutctl run --fast-interval (seconds; 0: off)")
    parser.add_argument("--runs-off", type=int, default=None,
                        help="runs with the fast path off (--default-plan; default --runs)")
    parser.add_argument("--ceiling", default=None, help="analysis.errorRatioCeiling")
    parser.add_argument("--settle", type=float, default=None,
                        help="seconds at the first step before the fault")
    args = parser.parse_args()
    if args.default_plan:
        args.interval = "60s"
    interval = parse_seconds(args.interval)
    work = Path(tempfile.mkdtemp(prefix="rollback-bench-"))
    own = args.cluster is None
    cdir = Path(args.cluster) if args.cluster else work / "cluster"
    print(f"starting the local control plane in {cdir} ... ({load()})", flush=True)
    cl = cluster_mod.load_cluster(cdir) or cluster_mod.start_cluster(cdir)
    api = cl.api_client()
    install_crds(api, crd_files()[0])
    namespace = f"bench-{int(time.time())}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
    stack = Stack(cl.kubeconfig, api, namespace, work / "stack", rps=100)
    figures: dict[str, tuple[list[float], list[float]]] = {}
    stage_figures: dict[str, dict[str, list[float]]] = {}
    modes = [("fast path on", args.fast_interval, args.runs)]
    if args.default_plan:
        modes.append(("fast path off", "0",
                      args.runs if args.runs_off is None else args.runs_off))
    try:
        stack.start_services()
        stack.create_workloads()
        stack.start_traffic()
        assert stack.prometheus is not None and stack.canary_app is not None
        window = max(5.0, 5 * interval)
        if args.default_plan:
            slo = {"name": "api_availability", "objective": 99.9, "window": "30d",
                   "sli": {"ratio": {"bad": _bad(), "total": _total()}},
                   "burnRateAlerts": PLATFORM_ALERTS}
            plan = rollout_plan(stack.service, "platform", hold="1h", interval="60s",
                                window="5m", rollback_after="5m", min_samples=20)
        else:
            slo = {"name": "api_availability", "objective": 99, "window": "1h",
                   "sli": {"ratio": {"bad": _bad(), "total": _total()}},
                   "burnRateAlerts": [{"severity": "critical", "factor": 14.4,
                                       "long": f"{int(window * 6)}s",
                                       "short": f"{int(window)}s"}]}
            plan = rollout_plan(stack.service, "platform", hold="1h", interval=args.interval,
                                window=f"{int(window)}s", rollback_after="10m", min_samples=5)
        if args.ceiling:
            plan["spec"]["analysis"]["errorRatioCeiling"] = args.ceiling
        settle = args.settle if args.settle is not None else (
            20.0 if args.default_plan else window + interval)
        stack.apply(slo_policy("platform", stack.service, stack.prometheus.url,
                               extra={"slos": [slo]}))
        stack.apply(plan)
        routes = RouteWatch(api, namespace, stack.service).start()
        for mode, fast_interval, runs in modes:
            controller_side, end_to_end = figures.setdefault(mode, ([], []))
            ctl = stack.start_controller(f"bench-{len(figures)}",
                                         extra=["--fast-interval", fast_interval])
            ctl.wait_ready()
            print(f"{mode} (--fast-interval {fast_interval}): {runs} runs", flush=True)
            # With analyses alone the fault must land anywhere in the interval: a fixed
            # settle would always put it at the same distance from the next analysis.
            rng = random.Random(7)
            spread = interval if fast_interval in ("0", "0.0") else 0.0
            run_mode(stack, routes, runs,
                     lambda r=rng, w=spread: settle + r.uniform(0, w),  # type: ignore[misc]
                     controller_side, end_to_end,
                     offset=sum(len(v[1]) for v in figures.values()), log=ctl.log,
                     stages=stage_figures.setdefault(mode, {}))
            ctl.kill(signal.SIGTERM)
            ctl.process.wait(30)
        routes.stop()
    finally:
        stack.stop()
        if own:
            cl.stop()
    print(f"machine: {describe()}; {load()}")
    print(f"analysis interval {args.interval}; fault: every canary request fails"
          + (f"; errorRatioCeiling {args.ceiling}" if args.ceiling else ""))
    for mode, (controller_side, end_to_end) in figures.items():
        if not end_to_end:
            continue
        print(f"{mode}: runs {len(end_to_end)}; controller (failing evaluation -> weight 0 "
              f"in the API server): p50 {1000 * median(controller_side):.0f} ms, "
              f"p99 {1000 * percentile(controller_side, 99):.0f} ms; end to end (fault -> "
              f"weight 0): p50 {median(end_to_end):.2f} s, "
              f"p99 {percentile(end_to_end, 99):.2f} s")
        split = stage_figures.get(mode) or {}
        if split:
            print("  fault -> " + "; ".join(
                f"{name}: p50 {median(split[name]):.2f} s, p99 {percentile(split[name], 99):.2f} s"
                for name in STAGES if split.get(name)))
        seen = split.get("sample -> weight 0", [])
        if seen:
            print(f"  first failing sample in Prometheus -> weight 0 (what the controller and the "
                  f"scrape cadence add, not the wait for a canary request to fail): p50 "
                  f"{median(seen):.2f} s, p99 {percentile(seen, 99):.2f} s")
    on, off = figures.get("fast path on"), figures.get("fast path off")
    if on and off and on[1] and off[1]:
        print(f"fast path on / off, end to end: p50 {median(on[1]) / median(off[1]):.3f}, "
              f"p99 {percentile(on[1], 99) / percentile(off[1], 99):.3f} "
              f"(goal: p99 on <= 2 scrape intervals + 1 s = 3 s)")


STAGES = ("sample", "measured", "first pass", "decided", "weight 0")


def first_failing_sample(prometheus_url: str, service: str, fault: float) -> float | None:
    """The timestamp of the first scrape after FAULT in which the canary's 5xx counter
    grew (or appeared): when Prometheus first held the failure."""
    import json
    import urllib.parse
    import urllib.request

    expr = f'http_requests_total{{service="{service}",track="canary",code=~"5.."}}[60s]'
    query = urllib.parse.urlencode({"query": expr, "time": f"{fault + 30:.3f}"})
    try:
        with urllib.request.urlopen(f"{prometheus_url}/api/v1/query?{query}",
                                    timeout=10) as r:
            result = json.load(r)["data"]["result"]
    except (OSError, ValueError, KeyError):
        return None
    first: float | None = None
    for series in result:
        before: float | None = None
        for ts, value in series.get("values") or ():
            t, v = float(ts), float(value)
            grew = v > before if before is not None else t >= fault
            if t >= fault and grew:
                first = t if first is None else min(first, t)
                break
            before = v
    return first


def fast_measured_after(log: Path | None, key: str, after: float) -> float | None:
    """The measurement time of the first fast-path round after AFTER that queued KEY
    (from the controller's log line "fast path: KEY needs a pass (measured at ...)")."""
    import json

    if log is None:
        return None
    marker = f"fast path: {key} needs a pass (measured at "
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        if marker not in line:
            continue
        try:
            msg = json.loads(line)["msg"]
        except (ValueError, KeyError):
            continue
        at = datetime.fromisoformat(msg.split(marker, 1)[1].split(",", 1)[0]).timestamp()
        if at >= after:
            return at
    return None


def _ts(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def run_mode(stack: Stack, routes: RouteWatch, runs: int, settle: Callable[[], float],
             controller_side: list[float], end_to_end: list[float], offset: int = 0,
             log: Path | None = None, stages: dict[str, list[float]] | None = None) -> None:
    """STAGES: seconds from the fault to each stage of each run, when known:
    the first failing sample in Prometheus, the fast round that measured it and queued the
    plan, the first pass that saw the episode (the gate's burningSince), the rollback
    decision, the HTTPRoute at weight 0."""
    assert stack.canary_app is not None
    if runs:
        for n in range(runs):
            stack.canary_app.configure(error_rate=0.0)
            run_before = stack.status().get("run", 0)
            stack.release(f"v{offset + n + 2}")
            stack.wait_for(lambda rb=run_before: stack.status().get("run") == rb + 1
                           and stack.status().get("canaryWeight") == 10
                           and stack.route_weight() == 10, 120, "the first step")
            time.sleep(settle())  # healthy evaluations first
            fault = time.time()
            stack.canary_app.configure(error_rate=1.0)
            stack.wait_for(lambda: stack.status().get("phase") == "RolledBack", 120,
                           "the rollback")
            status = stack.status()
            decision = next(d for d in reversed(status["decisions"])
                            if d["type"] == "RollbackStarted")
            decided = datetime.fromisoformat(decision["at"].replace("Z", "+00:00")).timestamp()
            zero = routes.wait_zero_after(fault)
            assert zero is not None, f"no weight 0 seen by the watch: {routes.seen[-5:]}"
            controller_side.append(zero - decided)
            end_to_end.append(zero - fault)
            key = f"{stack.namespace}/{stack.service}"
            sample = (first_failing_sample(stack.prometheus.url, stack.service, fault)
                      if stack.prometheus is not None else None)
            burning = [_ts(g.get("burningSince")) for g in status.get("gates") or ()]
            first_pass = min((b for b in burning if b is not None and b >= fault),
                             default=None)
            at: dict[str, float | None] = {
                "sample": sample, "measured": fast_measured_after(log, key, fault),
                "first pass": first_pass, "decided": decided, "weight 0": zero}
            after = {name: t - fault for name, t in at.items() if t is not None}
            split = "  ".join(f"{name} +{after[name]:.2f}" for name in STAGES if name in after)
            if stages is not None:
                for name, seconds in after.items():
                    stages.setdefault(name, []).append(seconds)
                if sample is not None:
                    stages.setdefault("sample -> weight 0", []).append(zero - sample)
            print(f"run {n + 1:2d}: controller {1000 * (zero - decided):7.1f} ms   "
                  f"end to end {zero - fault:6.2f} s   ({decision['reason']}: "
                  f"{decision['message'][:90]})\n        fault -> {split}", flush=True)


def _bad() -> str:
    return ('sum(rate(http_requests_total{service="{{service}}",track="{{track}}",'
            'code=~"5.."}[{{window}}]))')


def _total() -> str:
    return 'sum(rate(http_requests_total{service="{{service}}",track="{{track}}"}[{{window}}]))'


if __name__ == "__main__":
    main()
