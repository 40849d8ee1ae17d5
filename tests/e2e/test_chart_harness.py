"""Shared by the chart, RBAC and admission end-to-end tests (no tests here): the chart
rendered by the real ``helm template``, applied by the real ``kubectl`` to the test cluster,
and calls made as the chart's service account.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.harness.cluster import REPO_DIR, bin_dir
from tests.harness.fixtures import TestCluster, unavailable

CHART = REPO_DIR / "helm" / "rolloutctl"
KUBE_VERSION = "1.34.4"
RELEASE = "rolloutctl"
#: the chart's service account, as the test cluster's token user
CONTROLLER_NAMESPACE = "rolloutctl-system"
__all__ = [
    "CHART", "CONTROLLER_NAMESPACE", "RBAC_KINDS", "REPO_DIR", "apply", "chart", "chart_rbac",
    "delete", "documents", "ensure_namespace", "eventually", "http_get", "kubectl", "run",
    "status_of",
    "tool",
]
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")

T = TypeVar("T")


def tool(name: str) -> str:
    path = bin_dir() / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        unavailable(f"{path} is missing: run tools/build-control-plane.sh")
    return str(path)


def run(argv: list[str], stdin: str | None = None, timeout: float = 120
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout,
                          cwd=REPO_DIR)


def chart(tmp_path: Path, values: dict[str, Any] | None = None, *,
          namespace: str = CONTROLLER_NAMESPACE, release: str = RELEASE) -> str:
    """``helm template`` of the chart with VALUES: the YAML text."""
    args = [tool("helm"), "template", release, str(CHART), "--namespace", namespace,
            "--kube-version", KUBE_VERSION]
    if values:
        path = tmp_path / f"values-{time.monotonic_ns()}.json"
        path.write_text(json.dumps(values))
        args += ["--values", str(path)]
    result = run(args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def documents(text: str, kinds: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(text) if d]
    return [d for d in docs if kinds is None or d["kind"] in kinds]


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None
            ) -> subprocess.CompletedProcess[str]:
    return run([tool("kubectl"), "--kubeconfig", str(kubeconfig), *args], stdin)


def apply(cluster: TestCluster, docs: list[dict[str, Any]], *extra: str) -> str:
    """``kubectl apply --server-side`` as admin; returns what kubectl printed."""
    text = yaml.safe_dump_all(docs)
    result = kubectl(cluster.kubeconfig, "apply", "--server-side", "--field-manager",
                     "rolloutctl-tests", "-f", "-", *extra, stdin=text)
    assert result.returncode == 0, f"kubectl apply failed:\n{result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def delete(cluster: TestCluster, docs: list[dict[str, Any]]) -> None:
    kubectl(cluster.kubeconfig, "delete", "--ignore-not-found", "--wait=false", "-f", "-",
            stdin=yaml.safe_dump_all(docs))


def ensure_namespace(api: client.ApiClient, name: str) -> None:
    core = client.CoreV1Api(api)
    try:
        core.create_namespace({"apiVersion": "v1", "kind": "Namespace",  # type: ignore[arg-type]
                               "metadata": {"name": name}}, _request_timeout=30)
    except ApiException as exc:
        if exc.status != 409:
            raise


@contextlib.contextmanager
def chart_rbac(cluster: TestCluster, tmp_path: Path, values: dict[str, Any]
               ) -> Iterator[list[dict[str, Any]]]:
    """The chart's ServiceAccount, roles and bindings (rendered with VALUES, release
    ``rolloutctl`` in ``rolloutctl-system``) applied for real; removed afterwards."""
    admin = cluster.api_client()
    try:
        ensure_namespace(admin, CONTROLLER_NAMESPACE)
    finally:
        admin.close()  # type: ignore[no-untyped-call]
    docs = documents(chart(tmp_path, values), RBAC_KINDS)
    apply(cluster, docs)
    try:
        yield docs
    finally:
        delete(cluster, docs)


def status_of(call: Callable[[], Any]) -> int:
    """The HTTP status of one API call: 200 when it succeeds, else the server's code."""
    try:
        call()
    except ApiException as exc:
        return int(exc.status or 0)
    return 200


def http_get(url: str) -> tuple[int, str]:
    """GET URL: (status, body stripped); (0, why) when nothing answers yet."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status), response.read().decode().strip()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode().strip()
    except OSError as exc:
        return 0, str(exc)


def eventually(check: Callable[[], T], timeout: float = 30, interval: float = 0.2) -> T:
    """CHECK until it stops raising AssertionError (RBAC and admission policies reach the
    API server's caches a moment after they are written)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)
