"""Shared by the CLI's end-to-end tests (no tests here): a whole rollout stack on the local
control plane with the real controller process (`rolloutctl run`, leader election on a
Lease in the test's namespace), and `rolloutctl` run as a user runs it, as a subprocess.

Reads that check what the CLI did never go through the CLI: they are what kubectl shows.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import watch

from tests.harness.fixtures import TestCluster
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


class RouteWatcher:
    """Watches the HTTPRoute (what ``kubectl get httproute -w`` shows) and remembers each
    change of the canary weight: every write reaches a watch, however briefly it lasted,
    where a poll could miss a weight the controller held for a few milliseconds."""

    GROUP = ("gateway.networking.k8s.io", "v1")

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.seen: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._version = ""

    def _get(self) -> dict[str, Any]:
        route: dict[str, Any] = self.stack.custom.get_namespaced_custom_object(
            *self.GROUP, self.stack.namespace, "httproutes", self.stack.service)
        return route

    def _record(self, route: dict[str, Any]) -> None:
        refs = route["spec"]["rules"][0]["backendRefs"]
        weight = int(next(r.get("weight", 1) for r in refs
                          if r["name"] == f"{self.stack.service}-canary"))
        if not self.seen or self.seen[-1] != weight:
            self.seen.append(weight)
        self._version = route["metadata"]["resourceVersion"]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for event in watch.Watch().stream(
                        self.stack.custom.list_namespaced_custom_object, *self.GROUP,
                        self.stack.namespace, "httproutes",
                        field_selector=f"metadata.name={self.stack.service}",
                        resource_version=self._version, timeout_seconds=1):
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._record(event["object"])
            except Exception:  # a transient watch error: watch again from the last version
                self._stop.wait(0.05)

    def __enter__(self) -> RouteWatcher:
        self._record(self._get())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # every write made before now reaches the watch: wait until it has seen the latest
        latest = self._get()["metadata"]["resourceVersion"]
        deadline = time.monotonic() + 10
        while self._version != latest and time.monotonic() < deadline:
            self._stop.wait(0.05)
        self._stop.set()
        self._thread.join(timeout=5)


def skip_without_rolloutctl() -> None:
    if not Path(rolloutctl_binary()).exists():
        pytest.skip("the rolloutctl console script is not installed in this venv")
