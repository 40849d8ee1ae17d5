"""Scale: many concurrent RolloutPlans on one controller replica.

    python -m bench.scale [--plans 100,1000] [--interval 60s] [--duration 10m] [--runs 3]

For each size N a fresh local control plane is started (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kwok with enough fake nodes for 2N pods), with a
live Prometheus scraping every 15 s one exporter that serves all N services' request
counters and latency histograms (``tests.harness.scale_world``). N RolloutPlans (the
default plan's three gates, one SLOPolicy per namespace of 100 plans) each get their own
stable and canary Deployments and HTTPRoute. The controller is the real ``rolloutctl run``
process with its defaults (4 workers, resync 10 m, leader election on: one replica holds
the Lease, as the Helm chart runs it), watching all namespaces.

Every canary then gets a new pod template, the releases spread over one analysis interval
(independent teams), and the benchmark waits until every plan sits at its first step (10 %,
24 h hold) with its gates measured. Then RUNS consecutive windows of DURATION each measure:

- queue latency p99 of the ``plans`` work queue (``rolloutctl_workqueue_queue_duration_
  seconds``, the window's delta of the histogram, interpolated like histogram_quantile) and
  the share of keys that waited 1 s or less;
- the controller's CPU (Δ(utime+stime)/Δwall from /proc/PID/stat, in cores) and RSS
  (VmRSS sampled every 2 s: the window's maximum and its value at the end);
- Prometheus queries per minute (``rolloutctl_prometheus_queries_total``; Prometheus's own
  ``prometheus_http_requests_total{handler="/api/v1/query"}`` as a cross-check);
- API requests per minute: the API server's ``apiserver_request_total`` (resource
  requests) over the window minus the rate measured for 60 s with every Deployment ready
  and the controller not yet started (kube-controller-manager, the scheduler and kwok do
  nothing in steady state that the controller causes);
- the control plane's and Prometheus's CPU over the same window.

``--fast-intervals default,0`` measures each size's windows once per value of ``rolloutctl run
--fast-interval`` (0: the fast path off), restarting only the controller between them (same
cluster, plans and Prometheus; 2 minutes of warm-up), and prints the queries/min ratio.

Prints each window, then the medians per size next to the goals (1,000 plans at 60 s:
queue p99 <= 1 s, CPU <= 0.5 core, RSS <= 300 MiB), the machine and its load.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.machine import describe
from controller.api.types import parse_duration
from tests.harness import cluster as cluster_mod
from tests.harness.egress import LOCAL_EGRESS
from tests.harness.fixtures import crd_files, install_crds
from tests.harness.prometheus import PrometheusServer
from tests.harness.scale_world import (
    PlanSummary,
    ProcessSampler,
    ScaleWorld,
    SyntheticExporter,
    Window,
    WindowFigures,
    measure_baseline,
    start_controller,
)

GOAL_QUEUE_P99 = 1.0
GOAL_CPU = 0.5
GOAL_RSS_MIB = 300.0
PODS_PER_NODE = 100  # kwok nodes allow 110


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


@dataclass
class SizeResult:
    plans: int
    windows: list[WindowFigures]
    summary: PlanSummary
    setup_seconds: float
    objects_ready_seconds: float
    all_analysed_seconds: float
    fast: str = ""  # the controller's --fast-interval in these windows ("": its default)

    @property
    def label(self) -> str:
        if not self.fast:
            return f"{self.plans:,} plans"
        if self.fast == "default":
            return f"{self.plans:,}, fast default"
        return f"{self.plans:,}, fast {'off' if fast_off(self.fast) else self.fast + ' s'}"

    def median(self, get: Callable[[WindowFigures], float]) -> float:
        values = [get(w) for w in self.windows if not math.isnan(get(w))]
        return statistics.median(values) if values else math.nan


def run_size(plans: int, args: argparse.Namespace, work: Path) -> list[SizeResult]:
    interval = parse_duration(args.interval)
    started = time.monotonic()
    cdir = work / f"cluster-{plans}"
    nodes = max(2, math.ceil(2 * plans / PODS_PER_NODE))
    log(f"{plans} plans: starting the control plane ({nodes} kwok nodes) in {cdir}")
    cl = cluster_mod.start_cluster(cdir, nodes=nodes)
    api = cl.api_client()
    exporter: SyntheticExporter | None = None
    prometheus: PrometheusServer | None = None
    controller = None
    sampler: ProcessSampler | None = None
    try:
        install_crds(api, crd_files()[0])
        from kubernetes import client

        client.CoreV1Api(api).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name="rolloutctl-system")),
            _request_timeout=30)
        namespaces = ScaleWorld.namespaces_for(plans)
        exporter = SyntheticExporter(ScaleWorld.service_names(plans)).start()
        prometheus = PrometheusServer(work / f"prometheus-{plans}", targets=[exporter.address],
                                      scrape_interval="15s").start()
        prometheus.wait_for_targets_up(timeout=60)
        log(f"Prometheus {prometheus.url} scrapes {exporter.series} synthetic series every 15 s")
        world = ScaleWorld(api, plans, prometheus.url, namespaces, interval=args.interval,
                           progress=log)
        world.create()
        world.wait_stable_ready()
        objects_ready = time.monotonic() - started
        log(f"{plans} plans, {2 * plans} Deployments, {plans} HTTPRoutes created and stable "
            f"ready in {objects_ready:.0f} s; measuring the API server's baseline for 60 s")
        baseline = measure_baseline(cl, 60.0)
        modes = args.fast_intervals or [""]

        def extra(mode: str) -> list[str]:
            # the policies' Prometheus is on 127.0.0.1, like the API server: allowed here
            # as the sandbox allows it (the egress policy refuses it by default)
            flag = mode not in ("", "default")
            return ["--egress-allow", LOCAL_EGRESS, *args.controller_arg,
                    *(["--fast-interval", mode] if flag else [])]

        controller = start_controller(
            cl.kubeconfig, work / f"controller-{plans}", extra=extra(modes[0]),
            profile=args.profile / f"controller-{plans}.pstat" if args.profile else None)
        controller.wait_ready(timeout=600)
        log(f"controller pid {controller.pid} ready (metrics on :{controller.metrics_port}); "
            f"releasing every canary over {interval:g} s")
        world.release("v2", spread_seconds=interval)
        summary = world.wait_all_analysed(timeout=max(900.0, 2.0 * plans))
        all_analysed = time.monotonic() - started
        log(f"all analysed ({summary.describe()}); warming up for {interval:g} s")
        time.sleep(interval)
        results: list[SizeResult] = []
        for m, mode in enumerate(modes):
            if m > 0:
                # the same cluster, plans and Prometheus; only the controller is new
                controller.kill(signal.SIGTERM)
                controller = start_controller(
                    cl.kubeconfig, work / f"controller-{plans}-{m}", extra=extra(mode),
                    identity=f"scale-{m}")
                controller.wait_ready(timeout=600)
                warm = max(interval, 120.0)  # its start-up pass over every plan first
                log(f"controller pid {controller.pid} (--fast-interval {mode}) ready; "
                    f"warming up for {warm:g} s")
                time.sleep(warm)
            pids = {"controller": controller.pid, **cl.pids}
            if prometheus.pid is not None:
                pids["prometheus"] = prometheus.pid
            if sampler is not None:
                sampler.stop()
            sampler = ProcessSampler(pids)
            windows: list[WindowFigures] = []
            for n in range(args.runs):
                if not controller.alive():
                    raise RuntimeError(f"the controller exited:\n{controller.log_tail()}")
                window = Window(controller, cl, prometheus.url, sampler, baseline)
                window.start()
                time.sleep(parse_duration(args.duration))
                figures = window.finish()
                windows.append(figures)
                summary = world.summary()
                if mode:
                    print(f"  --fast-interval {mode}:", flush=True)
                print_window(plans, n + 1, figures, summary)
            results.append(SizeResult(plans, windows, summary, time.monotonic() - started,
                                      objects_ready, all_analysed, mode))
        return results
    finally:
        if sampler is not None:
            sampler.stop()
        if controller is not None:
            controller.kill(signal.SIGTERM)
        if prometheus is not None:
            prometheus.stop()
        if exporter is not None:
            exporter.stop()
        api.close()  # type: ignore[no-untyped-call]
        cluster_mod.stop_cluster(cdir)
        if not args.keep:
            shutil.rmtree(cdir, ignore_errors=True)


def fast_off(mode: str) -> bool:
    """A --fast-intervals value that turns the fast path off ("0", "0.0")."""
    try:
        return float(mode) == 0
    except ValueError:
        return False  # "" or "default": the controller's default, on


def seconds(value: float) -> str:
    """A latency; beyond the histogram's largest bucket (60 s) only a floor is known."""
    return "> 60 s" if math.isinf(value) else f"{value:.3f} s"


def print_window(plans: int, n: int, w: WindowFigures, summary: PlanSummary) -> None:
    cp = ", ".join(f"{k} {v:.2f}" for k, v in sorted(w.control_plane_cores.items()))
    api = ", ".join(f"{k} {v:.0f}" for k, v in w.api_breakdown.items())
    q = ", ".join(f"{k} {v:.0f}" for k, v in sorted(w.prometheus_queries_by_status.items()))
    print(f"  {plans} plans, window {n} ({w.seconds:.0f} s, load {w.load[0]:.2f}): "
          f"queue p99 {seconds(w.queue_p99)} (p50 {seconds(w.queue_p50)}, "
          f"{100 * w.queue_within_1s:.2f} % of {w.queue_keys} keys <= 1 s); "
          f"{w.reconciles_per_min:.0f} reconciles/min (p50 {1000 * w.reconcile_p50:.0f} ms); "
          f"CPU {w.cpu_cores:.3f} cores; RSS max {w.rss_max_mib:.0f} MiB, end "
          f"{w.rss_end_mib:.0f} MiB", flush=True)
    print(f"    Prometheus queries/min {w.prometheus_queries_per_min:.0f} ({q}; Prometheus "
          f"served {w.prometheus_served_per_min:.0f}); API requests/min "
          f"{w.api_requests_per_min:.0f} ({api})", flush=True)
    print(f"    other processes' CPU (cores): {cp}", flush=True)
    print(f"    plans: {summary.describe()}", flush=True)


def print_table(results: list[SizeResult], args: argparse.Namespace) -> None:
    print()
    print(f"machine: {describe()}")
    print(f"analysis interval {args.interval}; medians of {args.runs} windows of "
          f"{args.duration} each; controller: rolloutctl run, 4 workers, leader election on")
    head = f"{'':34}" + "".join(f"{r.label:>18}" for r in results) + "   goal (1,000)"
    print(head)
    rows: list[tuple[str, Callable[[WindowFigures], float], str, str]] = [
        ("queue latency p99 (s)", lambda w: w.queue_p99, "{:.3f}", f"<= {GOAL_QUEUE_P99:g} s"),
        ("keys waiting <= 1 s (%)", lambda w: 100 * w.queue_within_1s, "{:.2f}", ""),
        ("controller CPU (cores)", lambda w: w.cpu_cores, "{:.3f}", f"<= {GOAL_CPU:g}"),
        ("controller RSS max (MiB)", lambda w: w.rss_max_mib, "{:.0f}", f"<= {GOAL_RSS_MIB:g}"),
        ("controller RSS at end (MiB)", lambda w: w.rss_end_mib, "{:.0f}", ""),
        ("reconciles / min", lambda w: w.reconciles_per_min, "{:.0f}", ""),
        ("Prometheus queries / min", lambda w: w.prometheus_queries_per_min, "{:.0f}", ""),
        ("API requests / min", lambda w: w.api_requests_per_min, "{:.0f}", ""),
        ("kube-apiserver CPU (cores)",
         lambda w: w.control_plane_cores.get("kube-apiserver", math.nan), "{:.3f}", ""),
        ("etcd CPU (cores)", lambda w: w.control_plane_cores.get("etcd", math.nan),
         "{:.3f}", ""),
        ("Prometheus CPU (cores)", lambda w: w.control_plane_cores.get("prometheus", math.nan),
         "{:.3f}", ""),
        ("load average (1 min)", lambda w: w.load[0], "{:.2f}", ""),
    ]
    for label, get, fmt, goal in rows:
        cells = "".join(f"{_cell(fmt, r.median(get)):>18}" for r in results)
        print(f"{label:34}{cells}   {goal}")
    interval = parse_duration(args.interval)
    for r in results:
        due = r.plans * 60 / interval
        done = r.median(lambda w: w.reconciles_per_min)
        if done < 0.9 * due:
            print(f"SATURATED at {r.plans:,} plans: {done:.0f} reconciles/min for "
                  f"{due:.0f} analyses due per minute; the controller falls behind (its CPU "
                  "figure is then what it managed to get, not what the load needs)")
    on = [r for r in results if r.fast and not fast_off(r.fast)]
    off = [r for r in results if fast_off(r.fast)]
    for a in on:
        b = next((r for r in off if r.plans == a.plans), None)
        if b is None:
            continue
        qa, qb = (r.median(lambda w: w.prometheus_queries_per_min) for r in (a, b))
        ca, cb = (r.median(lambda w: w.cpu_cores) for r in (a, b))
        print(f"{a.plans:,} plans, fast path {a.fast} against off (same run): Prometheus "
              f"queries/min {qa:.0f} / {qb:.0f} = {qa / qb:.2f}x (goal <= 2x); controller CPU "
              f"{ca:.3f} / {cb:.3f} cores")
    judged = next((r for r in results if r.plans == 1000 and not fast_off(r.fast)),
                  results[-1])
    saturated = judged.median(lambda w: w.reconciles_per_min) < 0.9 * judged.plans * 60 / (
        parse_duration(args.interval))
    ok = {
        "queue p99": judged.median(lambda w: w.queue_p99) <= GOAL_QUEUE_P99,
        "CPU": judged.median(lambda w: w.cpu_cores) <= GOAL_CPU and not saturated,
        "RSS": judged.median(lambda w: w.rss_max_mib) <= GOAL_RSS_MIB,
    }
    verdicts = ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in ok.items())
    print(f"goals at {judged.plans:,} plans: {verdicts}")
    for r in results:
        print(f"{r.plans} plans: objects ready after {r.objects_ready_seconds:.0f} s, every plan "
              f"analysed after {r.all_analysed_seconds:.0f} s; at the end: "
              f"{r.summary.describe()}")


def _cell(fmt: str, value: float) -> str:
    return "> 60" if math.isinf(value) else fmt.format(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--plans", default="100,1000", help="sizes, comma-separated")
    parser.add_argument("--interval", default="60s", help="analysis.interval of every plan")
    parser.add_argument("--duration", default="10m", help="length of one measurement window")
    parser.add_argument("--runs", type=int, default=3, help="measurement windows per size")
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a "
                        "temporary directory, removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the clusters' directories")
    parser.add_argument("--controller-arg", action="append", default=[],
                        help="an extra argument for rolloutctl run (repeatable)")
    parser.add_argument("--fast-intervals", type=lambda t: [v.strip() for v in t.split(",")],
                        default=None, help="comma-separated rolloutctl run --fast-interval "
                        "values (0: off; default: no flag, the controller learns it), each "
                        "measured in turn with a new controller on the same cluster and plans, "
                        "e.g. default,0")
    parser.add_argument("--profile", type=Path, help="run the controller under yappi and "
                        "write its profile to this directory (CPU figures are then inflated)")
    args = parser.parse_args(argv)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.plans.split(",") if s.strip()]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    log(f"machine: {describe()}; load average {os.getloadavg()[0]:.2f}; work in {work}")
    results: list[SizeResult] = []
    try:
        for n in sizes:
            results.extend(run_size(n, args, work))
    finally:
        if results:
            print_table(results, args)
        if args.workdir is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
