"""Shared by the CLI's end-to-end tests (no tests here): a whole rollout stack on the local
control plane with the real controller process (`rolloutctl run`, leader election on a
Lease in the test's namespace), and `rolloutctl` run as a user runs it, as a subprocess.

Reads that check what the CLI did never go through the CLI: they are what kubectl shows.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.harness.fixtures import TestCluster
from tests.harness.routes import RouteWatch
from tests.harness.stack import Stack, rollout_plan, rolloutctl_binary, slo_policy

SERVICE = "checkout"
AT_25 = [{"weight": 10, "hold": "3s"}, {"weight": 25, "hold": "1h"},
         {"weight": 50, "hold": "1h"}, {"weight": 100, "hold": "1h"}]


@contextmanager
def running_stack(cluster: TestCluster, namespace: str, workdir: Path,
                  policy_extra: dict[str, Any] | None = None) -> Iterator[Stack]:
    """Demo services, live Prometheus, workloads, traffic, the SLOPolicy ``platform``."""
    s = Stack(Path(cluster.kubeconfig), cluster.api_client(), namespace, workdir)
    try:
        s.start_services()
        s.create_workloads()
        s.start_traffic()
        assert s.prometheus is not None
        s.apply(slo_policy("platform", s.service, s.prometheus.url, policy_extra))
        yield s
    finally:
        s.stop()


def start_controller(stack: Stack) -> None:
    """The real controller, electing itself leader on the Lease rolloutctl-controller in the
    test's namespace (so `doctor --controller-namespace NS` finds it)."""
    stack.start_controller(leader_elect=True, extra=["--lease-name", "rolloutctl-controller"])


def plan_at_25(stack: Stack, **spec: Any) -> None:
    """A plan whose run sits at step 2 (25 %), as the controller put it there."""
    stack.apply(rollout_plan(stack.service, "platform", steps=AT_25, **spec))
    start_controller(stack)
    stack.wait_for(lambda: stack.status().get("reason") == "NoNewRevision", 90,
                   "the plan to see nothing to roll out")
    stack.release("v2")
    stack.wait_for(lambda: stack.status().get("currentStep") == 1
                   and stack.status().get("phase") == "Progressing"
                   and stack.status().get("stepStartedAt") is not None, 120, "step 2 (25 %)")
    assert stack.route_weight() == 25


def rolloutctl(stack: Stack | None, *args: str, kubeconfig: Path | None = None,
               timeout: float = 180, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    """`rolloutctl ARGS --kubeconfig K -n NS` as a subprocess; stdout and stderr as text."""
    argv = [rolloutctl_binary(), *args]
    if stack is not None:
        argv += ["--kubeconfig", str(kubeconfig or stack.kubeconfig), "-n", stack.namespace]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "COLUMNS": "160", **(env or {})})


def explain(stack: Stack, done: subprocess.CompletedProcess[str]) -> str:
    """For an assertion message: what the CLI printed and the controller's last log lines."""
    logs = "\n".join(f"--- {c.identity}\n{c.log_tail(60)}" for c in stack.controllers)
    return (f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}\n"
            f"controller logs:\n{logs}")


def route_watch(stack: Stack) -> RouteWatch:
    """The stack's HTTPRoute, watched (what ``kubectl get httproute -w`` shows)."""
    return RouteWatch(stack.api, stack.namespace, stack.service)


def skip_without_rolloutctl() -> None:
    if not Path(rolloutctl_binary()).exists():
        pytest.skip("the rolloutctl console script is not installed in this venv")
