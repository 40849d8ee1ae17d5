"""The dashboard measured in headless chromium: first paint of the Overview with 200 plans
(goal < 1 s) and how long a change takes to be visible (goal < 3 s).

    python -m bench.dashboard [--plans 200] [--runs 7] [--kubeconfig FILE]

Without --kubeconfig a small local control plane (etcd + kube-apiserver, no workloads) is
started in a temporary directory and stopped at the end. PLANS RolloutPlans with a mid-run
status (the one the real reconciler writes: step 2/4 at 25 %, a gate, decisions) and their
SLOPolicy are created in a fresh namespace; ``rolloutctl dashboard`` runs as a subprocess
and Debian's chromium (driven by Playwright) opens it:

- **first paint**: a fresh tab loads the Overview, RUNS times; the figure is the browser's
  own ``first-contentful-paint`` (from navigation start), and ``load`` beside it.
- **change visible**: a plan's status is written (phase flipped between RolledBack and
  Progressing) and a MutationObserver in the page stamps the moment its row shows the new
  phase; latency = that stamp - the time just before the write (same machine clock).
  The dashboard polls every second and reads the cluster at most once a second, so the
  expected latency is about 1-2 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.machine import describe, median

FIRST_PAINT_GOAL_S = 1.0
CHANGE_GOAL_S = 3.0

OBSERVE = """([selector, phase]) => {
  window.__seen = null;
  const mark = () => {
    const row = document.querySelector(selector);
    if (row && row.dataset.phase === phase && window.__seen === null) {
      window.__seen = performance.timeOrigin + performance.now();
    }
  };
  if (window.__observer) { window.__observer.disconnect(); }
  window.__observer = new MutationObserver(mark);
  window.__observer.observe(document.getElementById('main'),
                            {childList: true, subtree: true, attributes: true});
  mark();
}"""


def create_plans(kubeconfig: Path, count: int) -> str:
    from kubernetes import client

    from controller.adapters.kube.objects import ObjectStore
    from controller.api.types import GROUP, PLURALS, VERSION
    from tests.harness.cluster import new_api_client
    from tests.harness.midrun import mid_run_status

    namespace = f"bench-dash-{uuid.uuid4().hex[:6]}"
    api = new_api_client(kubeconfig)
    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)), _request_timeout=30)
    plan, policy, status = mid_run_status(namespace)
    custom = client.CustomObjectsApi(api)
    store = ObjectStore(api)
    body = {k: v for k, v in policy.items() if k != "status"}
    body["metadata"] = {"name": policy["metadata"]["name"]}
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS["SLOPolicy"],
                                           body, _request_timeout=30)
    for i in range(count):
        body = {k: v for k, v in plan.items() if k != "status"}
        body["metadata"] = {"name": f"plan-{i:03d}"}
        created = custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURALS["RolloutPlan"], body, _request_timeout=30)
        store.write_status(created, status)
    api.close()  # type: ignore[no-untyped-call]
    return namespace


def flip(kubeconfig: Path, namespace: str, name: str, phase: str) -> None:
    from controller.adapters.kube.objects import ObjectStore
    from tests.harness.cluster import new_api_client

    api = new_api_client(kubeconfig)
    try:
        store = ObjectStore(api)
        raw = store.get("RolloutPlan", namespace, name)
        assert raw is not None
        store.write_status(raw, {**raw["status"], "phase": phase,
                                 "canaryWeight": 0 if phase == "RolledBack" else 25})
    finally:
        api.close()  # type: ignore[no-untyped-call]


def measure(kubeconfig: Path, namespace: str, plans: int, runs: int,
            profile: Path) -> dict[str, list[float]]:
    from tests.harness.browser import chromium, start_dashboard

    dashboard = start_dashboard(kubeconfig, "-n", namespace)
    out: dict[str, list[float]] = {"fcp": [], "load": [], "html": [], "change": []}
    try:
        with chromium(profile) as browser:
            warm = browser.new_page()  # the first read of the cluster; not measured
            warm.goto(dashboard.url)
            warm.close()
            for _ in range(runs):
                page = browser.new_page()
                page.goto(dashboard.url, wait_until="load")
                rows = page.locator("tr.plan").count()
                assert rows == plans, f"{rows} rows, expected {plans}"
                timing: Any = page.evaluate("""() => {
                    const nav = performance.getEntriesByType('navigation')[0];
                    const fcp = performance.getEntriesByName('first-contentful-paint')[0];
                    return [fcp ? fcp.startTime : null, nav.loadEventEnd, nav.responseEnd];
                }""")
                if timing[0] is not None:  # a tab may report no paint entry (rare)
                    out["fcp"].append(timing[0] / 1000)
                out["load"].append(timing[1] / 1000)
                out["html"].append(timing[2] / 1000)
                page.close()
            page = browser.new_page()
            page.goto(dashboard.url)
            for i in range(runs):
                name = f"plan-{(i * 37) % plans:03d}"
                phase = "RolledBack" if i % 2 == 0 else "Progressing"
                current = page.locator(f'tr[data-plan="{namespace}/{name}"]').get_attribute(
                    "data-phase")
                if current == phase:
                    phase = "Progressing" if phase == "RolledBack" else "RolledBack"
                page.evaluate(OBSERVE, [f'tr[data-plan="{namespace}/{name}"]', phase])
                before = time.time() * 1000
                flip(kubeconfig, namespace, name, phase)
                seen = None
                deadline = time.monotonic() + 30
                while seen is None and time.monotonic() < deadline:
                    time.sleep(0.02)  # the page stamps the moment itself: polling adds nothing
                    seen = page.evaluate("() => window.__seen")
                assert seen is not None, f"{name} did not show {phase} within 30 s"
                out["change"].append((seen - before) / 1000)
    finally:
        dashboard.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=200)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--kubeconfig", type=Path, help="use this cluster (CRDs installed)")
    args = parser.parse_args()

    from tests.harness import cluster as cluster_mod

    started = None
    scratch = Path(tempfile.mkdtemp(prefix="bench-dash-"))
    kubeconfig = args.kubeconfig
    try:
        if kubeconfig is None:
            cluster = cluster_mod.start_cluster(scratch / "cluster", workloads=False)
            started = cluster.dir
            kubeconfig = cluster.kubeconfig
            from tests.harness.fixtures import PROJECT_CRD_DIR, install_crds

            api = cluster_mod.new_api_client(kubeconfig)
            install_crds(api, sorted(PROJECT_CRD_DIR.glob("*.yaml")))
            api.close()  # type: ignore[no-untyped-call]
        namespace = create_plans(kubeconfig, args.plans)
        result = measure(kubeconfig, namespace, args.plans, args.runs, scratch / "profile")
    finally:
        if started is not None:
            cluster_mod.stop_cluster(started)
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"machine: {describe()}; load average {os.getloadavg()[0]:.2f}")
    print(f"overview with {args.plans} plans, {args.runs} fresh tabs:")
    print(f"  first contentful paint median {median(result['fcp']):.3f} s "
          f"(goal < {FIRST_PAINT_GOAL_S:g} s; {len(result['fcp'])} tabs reported a paint: "
          + ", ".join(f"{v:.3f}" for v in result["fcp"]) + ")")
    print(f"  whole page received median {median(result['html']):.3f} s, load event median "
          f"{median(result['load']):.3f} s")
    print(f"change visible in the browser median {median(result['change']):.3f} s "
          f"(goal < {CHANGE_GOAL_S:g} s; all: "
          + ", ".join(f"{v:.2f}" for v in result["change"]) + ")")


if __name__ == "__main__":
    main()
