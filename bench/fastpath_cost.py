"""What the fast path costs for many plans: one round, measured against a real Prometheus.

    python -m bench.fastpath_cost [--plans 1000] [--rounds 30] [--scrape 15s]

Without a cluster: ``bench.scale``'s synthetic exporter (every plan's service, canary and
stable counters and latency histograms) scraped by a real Prometheus, and N plans as the
informer's cache holds them (``bench.scale``'s default plan and platform policy, one policy
per 100 plans), every one mid-run at its first step. The controller's own fast loop
(``runtime.fastpath.FastLoop`` with ``adapters.metrics.fastpath.measure_fast`` and a
``PrometheusSource``) then runs ROUNDS rounds back to back. Prints, per round: wall time,
the CPU of this process (the controller's side) and of Prometheus, and the Prometheus
requests; and what that means at a fast interval of 10 s and 1 s: cores and Prometheus
queries per minute, beside the analyses' one request per plan and ``analysis.interval``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from bench.machine import describe, load
from controller.adapters.metrics.fastpath import FastTarget, measure_fast
from controller.adapters.metrics.prometheus import PrometheusSource
from controller.api.types import parse_duration
from controller.clock import SystemClock
from controller.runtime.fastpath import FastBoard, FastLoop
from tests.harness.prometheus import PrometheusServer
from tests.harness.scale_world import (
    ProcessSampler,
    ScaleWorld,
    SyntheticExporter,
    plan_document,
    policy_document,
    total,
)


def cache(plans: int, prometheus_url: str) -> tuple[list[dict[str, Any]],
                                                    dict[str, dict[str, Any]]]:
    """The plans and policies as the informer's cache holds them."""
    now = datetime.now(UTC)
    started = (now - timedelta(minutes=10)).isoformat()
    objs, policies = [], {}
    names = ScaleWorld.service_names(plans)
    for i, name in enumerate(names):
        ns = f"scale-{i // 100:02d}"
        if i % 100 == 0:
            policy = policy_document(name, prometheus_url)
            policy["metadata"].update(namespace=ns, resourceVersion="1")
            policies[f"{ns}/platform"] = policy
        plan = plan_document(name)
        plan["metadata"].update(namespace=ns, uid=f"uid-{i}", generation=1,
                                resourceVersion=str(i + 2))
        plan["status"] = {"phase": "Progressing", "run": 1, "revision": "rev-2",
                          "currentStep": 0, "canaryWeight": 10, "runStartedAt": started,
                          "stepStartedAt": started, "lastAnalysisAt": now.isoformat(),
                          "gates": [], "decisions": [], "history": []}
        objs.append(plan)
    return objs, policies


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--plans", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--scrape", default="15s", help="Prometheus scrape interval")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fastpath-cost-"))
    print(f"machine: {describe()}; {load()}", flush=True)
    exporter = SyntheticExporter(ScaleWorld.service_names(args.plans)).start()
    prometheus = PrometheusServer(work / "prometheus", targets=[exporter.address],
                                  scrape_interval=args.scrape).start()
    try:
        prometheus.wait_for_targets_up(timeout=60)
        settle = 2.5 * parse_duration(args.scrape)  # rate() needs two samples
        print(f"Prometheus {prometheus.url} scrapes {exporter.series} series every "
              f"{args.scrape}; waiting {settle:g} s for two scrapes", flush=True)
        time.sleep(settle)
        objs, policies = cache(args.plans, prometheus.url)
        registry = CollectorRegistry()
        source = PrometheusSource(prometheus.url, registry=registry, trusted=True)
        queued: list[str] = []
        loop = FastLoop(
            plans=lambda: objs, policy_lookup=lambda ns, name: policies.get(f"{ns}/{name}"),
            measure=lambda ts, at: measure_fast(source, ts, at, 30.0), target=FastTarget,
            board=FastBoard(), enqueue=queued.append, clock=SystemClock(), interval=10.0)
        sampler = ProcessSampler({"prometheus": prometheus.pid} if prometheus.pid else {})
        rounds: list[tuple[float, float, float, float]] = []
        for n in range(args.rounds + 1):
            requests = total(_samples(registry), "rolloutctl_prometheus_queries_total")
            prom_cpu = sampler.cpu().get("prometheus", 0.0)
            wall, cpu = time.monotonic(), time.process_time()
            loop.tick()
            wall, cpu = time.monotonic() - wall, time.process_time() - cpu
            prom_cpu = sampler.cpu().get("prometheus", 0.0) - prom_cpu
            sent = total(_samples(registry), "rolloutctl_prometheus_queries_total") - requests
            if n == 0:
                print(f"first round (parses every plan's spec): wall {1000 * wall:.0f} ms, "
                      f"CPU {1000 * cpu:.0f} ms, {sent:.0f} Prometheus request(s)", flush=True)
                continue
            rounds.append((wall, cpu, prom_cpu, sent))
        sampler.stop()
        source.close()
        now = datetime.now(UTC)
        measured = [loop.board.take(f"{o['metadata']['namespace']}/{o['metadata']['name']}",
                                    now, 3600) for o in objs]
        ok = sum(1 for m in measured if m and all(g.recent is not None and g.recent.ok
                                                   for g in m))
        print(f"plans whose last round measured every SLO gate's recent window: {ok} of "
              f"{len(objs)}", flush=True)
        wall = statistics.median(r[0] for r in rounds)
        cpu = statistics.median(r[1] for r in rounds)
        prom = statistics.median(r[2] for r in rounds)
        sent = statistics.median(r[3] for r in rounds)
        print(f"{args.plans} plans, {len(rounds)} rounds (medians): wall {1000 * wall:.0f} ms, "
              f"controller CPU {1000 * cpu:.0f} ms, Prometheus CPU {1000 * prom:.0f} ms, "
              f"{sent:.0f} Prometheus request(s) per round; {len(queued)} plans queued "
              "(healthy: none)")
        analyses = args.plans  # one batched request per plan and analysis (60 s)
        for interval in (10.0, 1.0):
            print(f"  at a fast interval of {interval:g} s: controller {cpu / interval:.3f} "
                  f"cores, Prometheus {prom / interval:.3f} cores, {60 / interval * sent:.0f} "
                  f"queries/min beside the analyses' {analyses} a minute at 60 s "
                  f"({(analyses + 60 / interval * sent) / analyses:.3f}x)")
        print(f"machine at the end: {load()}")
    finally:
        prometheus.stop()
        exporter.stop()


def _samples(registry: CollectorRegistry) -> dict[Any, float]:
    from prometheus_client.exposition import generate_latest

    from tests.harness.scale_world import parse_samples

    return parse_samples(generate_latest(registry).decode())


if __name__ == "__main__":
    main()
