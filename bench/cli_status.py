"""Wall time of `rolloutctl status PLAN` as a user runs it (goal: median < 1 s).

    python -m bench.cli_status [--runs 15] [--kubeconfig FILE] [--keep DIR]

Without --kubeconfig a small local control plane is started (etcd + kube-apiserver from
``tools/build-control-plane.sh``, no workloads) in a temporary directory and stopped at the
end. A RolloutPlan mid-run (step 2/4 at 25 %, a gate, decisions: a status the real
reconciler produced) and its SLOPolicy are created in a fresh namespace; then the installed
``rolloutctl`` console script is run as a subprocess RUNS times (after one warm-up run),
each timed from fork to exit. ``rolloutctl version`` is timed too: the floor every command
pays (interpreter start and the CLI's own imports).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.machine import describe, median, percentile

GOAL_SECONDS = 1.0


def create_objects(kubeconfig: Path) -> str:
    """A namespace holding the plan (with its mid-run status) and its policy; its name."""
    from kubernetes import client

    from controller.testing.cluster import new_api_client
    from controller.testing.midrun import create_mid_run_plan

    namespace = f"bench-cli-{uuid.uuid4().hex[:6]}"
    api = new_api_client(kubeconfig)
    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)), _request_timeout=30)
    create_mid_run_plan(api, namespace)
    api.close()  # type: ignore[no-untyped-call]
    return namespace


def time_runs(argv: list[str], runs: int, expect: str) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system) seconds of each run."""
    subprocess.run(argv, capture_output=True, check=False, timeout=60)  # warm the page cache
    wall, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
        wall.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode != 0 or expect not in done.stdout:
            raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}"
                             f"{done.stderr}")
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--kubeconfig", type=Path, help="use this cluster (CRDs installed)")
    parser.add_argument("--keep", type=Path, help="start the control plane in DIR, keep it")
    args = parser.parse_args()
    if args.runs < 10:
        parser.error("--runs must be at least 10")

    from controller.testing import cluster as cluster_mod

    started: Path | None = None
    kubeconfig = args.kubeconfig
    if kubeconfig is None:
        directory = args.keep or Path(tempfile.mkdtemp(prefix="bench-cli-"))
        cluster = cluster_mod.start_cluster(directory, workloads=False)
        started = None if args.keep else cluster.dir
        kubeconfig = cluster.kubeconfig
        from controller.testing.fixtures import PROJECT_CRD_DIR, install_crds

        api = cluster_mod.new_api_client(kubeconfig)
        install_crds(api, sorted(PROJECT_CRD_DIR.glob("*.yaml")))
        api.close()  # type: ignore[no-untyped-call]
    try:
        namespace = create_objects(kubeconfig)
        exe = str(Path(sys.executable).with_name("rolloutctl"))
        status, status_cpu = time_runs([exe, "status", "checkout", "-n", namespace,
                                        "--kubeconfig", str(kubeconfig)], args.runs,
                                       "phase Progressing")
        floor, floor_cpu = time_runs([exe, "version"], args.runs, "rolloutctl")
    finally:
        if started is not None:
            cluster_mod.stop_cluster(started)
            shutil.rmtree(started, ignore_errors=True)
    print(f"machine: {describe()}; load average {os.getloadavg()[0]:.2f} (other work on the "
          "machine slows every run)")
    print(f"command: rolloutctl status checkout -n {namespace} (a plan mid-run, 1 gate, "
          f"{args.runs} runs after a warm-up)")
    print("runs (s): " + ", ".join(f"{t:.3f}" for t in status))
    print(f"status median: {median(status):.3f} s, p90: {percentile(status, 90):.3f} s "
          f"(goal < {GOAL_SECONDS:g} s): {'ok' if median(status) < GOAL_SECONDS else 'MISSED'}")
    print(f"status CPU (user+sys) median: {median(status_cpu):.3f} s")
    print(f"version median: {median(floor):.3f} s, p90: {percentile(floor, 90):.3f} s, CPU "
          f"{median(floor_cpu):.3f} s (interpreter start + the CLI's own imports)")


if __name__ == "__main__":
    main()
