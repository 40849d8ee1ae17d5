"""GitOps end to end: Git owns both Deployments and a re-applier (standing in for Argo CD
or Flux self-heal) server-side applies the "Git" manifests every second with its own field
manager and ``force=True``, while the real `rolloutctl run` releases on the local control
plane (kube-controller-manager, scheduler, kwok).

The model (README, "GitOps"): Git owns the stable Deployment except its pod template after
creation (Argo CD: ``ignoreDifferences`` on ``.spec.template`` with
``RespectIgnoreDifferences=true``; Flux: ``kustomize.toolkit.fluxcd.io/ssa: IfNotPresent``),
and the canary Deployment except ``spec.replicas`` (left out of Git). A release is a commit
of the canary's new template. The re-applier below does what Argo CD does with those
settings: the live template of the stable goes into the desired manifest before the apply.
"""

from __future__ import annotations

import copy
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.harness.fixtures import TestCluster
from tests.harness.stack import Stack, deployment, http_route, rollout_plan, rolloutctl_binary

pytestmark = [pytest.mark.cluster]

MANAGER = "argocd-controller"
APPLY = "application/apply-patch+yaml"


class GitOps:
    """The Git repository (one manifest per Deployment) and its self-healing re-applier."""

    def __init__(self, stack: Stack, interval: float = 1.0) -> None:
        self.stack = stack
        self.interval = interval
        stable = deployment(stack.service, "stable", "registry.local/checkout:v1", 2)
        canary = deployment(f"{stack.service}-canary", "canary", "registry.local/checkout:v1", 1)
        del canary["spec"]["replicas"]  # the controller scales the canary: not in Git
        self.git: dict[str, dict[str, Any]] = {stack.service: stable,
                                               f"{stack.service}-canary": canary}
        self.template_ignored = {stack.service}  # ignoreDifferences + RespectIgnoreDifferences
        self.applies = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def commit(self, name: str, image: str) -> None:
        with self._lock:
            doc = copy.deepcopy(self.git[name])
            doc["spec"]["template"]["spec"]["containers"][0]["image"] = image
            self.git[name] = doc

    def sync(self) -> None:
        with self._lock:
            git = copy.deepcopy(self.git)
        for name, desired in git.items():
            if name in self.template_ignored:
                try:
                    live = self.stack.deployment(name)
                    desired["spec"]["template"] = live["spec"]["template"]
                except ApiException as exc:
                    if exc.status != 404:
                        raise
            self.stack.apps.patch_namespaced_deployment(
                name, self.stack.namespace, desired, field_manager=MANAGER, force=True,
                _content_type=APPLY)
        self.applies += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sync()
            except ApiException as exc:
                self.errors.append(f"{exc.status} {exc.reason}")

    def __enter__(self) -> GitOps:
        self.sync()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.fixture
def stack(cluster: TestCluster, namespace: str, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(Path(cluster.kubeconfig), cluster.api_client(), namespace, tmp_path / "stack")
    try:
        yield s
    finally:
        s.stop()


def image(stack: Stack, name: str) -> str:
    return str(stack.deployment(name)["spec"]["template"]["spec"]["containers"][0]["image"])


def wait_run(stack: Stack, run: int, phase: str) -> dict[str, Any]:
    status: dict[str, Any] = stack.wait_for(
        lambda: stack.status().get("run") == run and stack.status().get("phase") == phase
        and stack.status(), 120, f"run {run} {phase}")
    return status


def steady(stack: Stack, gitops: GitOps, seconds: float, **expected: Any) -> None:
    """For SECONDS (several re-applies), nothing moves: no run starts, the stable keeps its
    image, all traffic stays on stable and the canary at 0."""
    before = gitops.applies
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = stack.status()
        seen = {"run": status.get("run"), "phase": status.get("phase"),
                "stable": image(stack, stack.service), "weight": stack.route_weight(),
                "canary_replicas": stack.deployment(f"{stack.service}-canary")["spec"][
                    "replicas"]}
        assert seen == {**seen, **expected}, (seen, expected)
        time.sleep(0.3)
    assert gitops.applies >= before + 2, "the re-applier did not run"
    assert not gitops.errors, gitops.errors


def begin(stack: Stack) -> None:
    """The route, the plan and the controller, once the re-applier created the Deployments."""
    ns, name = stack.namespace, stack.service
    stack.custom.create_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", ns, "httproutes", http_route(name))
    stack.wait_for(lambda: stack.ready_replicas(name) == 2, 120, "stable ready")
    plan = rollout_plan(name, "unused", interval="1s")
    spec = plan["spec"]
    del spec["sloPolicyRef"]
    del spec["target"]["canary"]["replicas"]
    spec["gates"] = []
    spec["steps"] = [{"weight": w, "hold": "2s"} for w in (50, 100)]
    spec["analysis"] = {"interval": "1s"}
    stack.apply(plan)
    stack.start_controller()
    stack.wait_for(lambda: stack.status().get("reason") == "NoNewRevision", 60,
                   "nothing to roll out at first")


def test_without_respect_ignore_differences_the_reapplier_undoes_the_promotion(
    stack: Stack,
) -> None:
    """The control: the same re-applier applying the stable's template from Git (no
    RespectIgnoreDifferences) puts the old version back on stable after the release."""
    with GitOps(stack) as gitops:
        gitops.template_ignored = set()
        begin(stack)
        gitops.commit(f"{stack.service}-canary", "registry.local/checkout:v2")
        wait_run(stack, 1, "Succeeded")
        stack.wait_for(lambda: image(stack, stack.service).endswith(":v1"), 15,
                       "the re-applier to put v1 back on stable")


def test_git_releases_and_rollbacks_stay_where_the_controller_put_them(stack: Stack) -> None:
    ns, name, canary = stack.namespace, stack.service, f"{stack.service}-canary"
    with GitOps(stack) as gitops:
        begin(stack)

        # 1. a release committed to Git: promoted, and it stays promoted
        gitops.commit(canary, "registry.local/checkout:v2")
        wait_run(stack, 1, "Succeeded")
        steady(stack, gitops, 5, run=1, phase="Succeeded", stable="registry.local/checkout:v2",
               weight=0, canary_replicas=0)

        # 2. a bad release, rolled back by the controller: no new run while Git still says v3
        gitops.commit(canary, "registry.local/checkout:v3")
        stack.wait_for(lambda: stack.status().get("run") == 2 and stack.route_weight() == 50,
                       60, "run 2 at 50 %")
        subprocess.run([rolloutctl_binary(), "abort", name, "-n", ns, "--kubeconfig",
                        str(stack.kubeconfig), "--reason", "bad release"], check=True,
                       capture_output=True, timeout=60)
        wait_run(stack, 2, "RolledBack")
        steady(stack, gitops, 5, run=2, phase="RolledBack", stable="registry.local/checkout:v2",
               weight=0, canary_replicas=0)

        # 3. Git reverts the canary to what stable runs: nothing new, no run
        gitops.commit(canary, "registry.local/checkout:v2")
        stack.wait_for(lambda: image(stack, canary).endswith(":v2"), 30, "the revert applied")
        steady(stack, gitops, 4, run=2, phase="RolledBack",
               stable="registry.local/checkout:v2", weight=0, canary_replicas=0)

        # 4. rolling back to the old version through Git: a run that ends on v1 at 100 %
        gitops.commit(canary, "registry.local/checkout:v1")
        wait_run(stack, 3, "Succeeded")
        steady(stack, gitops, 5, run=3, phase="Succeeded", stable="registry.local/checkout:v1",
               weight=0, canary_replicas=0)
        assert stack.ready_replicas(name) == 2  # Git's replicas for stable, all serving

    # the re-applier really owned what Git declares, and the controller only what it must
    managers = {e["manager"] for e in stack.deployment(canary)["metadata"]["managedFields"]}
    assert MANAGER in managers
    runs = [h["outcome"] for h in stack.status()["history"]]
    assert runs == ["Succeeded", "RolledBack", "Succeeded"], runs
