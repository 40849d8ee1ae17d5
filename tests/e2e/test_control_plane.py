"""The local control plane is a real Kubernetes: version, workloads, CRDs, RBAC."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client

from tests.harness import python_env
from tests.harness.cluster import (
    CONTROLLER_USER,
    RBAC_USER,
    REPO_DIR,
    BinariesMissing,
    find_binary,
    pid_alive,
)
from tests.harness.fixtures import TestCluster, unavailable

pytestmark = pytest.mark.cluster

T = TypeVar("T")


def eventually(fn: Callable[[], T], timeout: float = 60, interval: float = 0.5) -> T:
    """Call FN until it stops raising AssertionError (or the timeout passes)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


@pytest.fixture(scope="module")
def admin(cluster: TestCluster) -> Iterator[client.ApiClient]:
    api = cluster.api_client()
    yield api
    api.close()  # type: ignore[no-untyped-call]


def test_apiserver_reports_the_pinned_version(
    cluster: TestCluster, admin: client.ApiClient
) -> None:
    info = client.VersionApi(admin).get_code(_request_timeout=10)
    if cluster.local is not None:
        assert info.git_version == pinned("K8S_VERSION")
        assert (info.major, info.minor) == ("1", pinned("K8S_VERSION").split(".")[1])
    assert info.git_version != "v0.0.0"


def test_deployment_with_three_replicas_becomes_ready(
    admin: client.ApiClient, namespace: str
) -> None:
    labels = {"app": "web"}
    deployment: Any = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "example.invalid/web:1"}]},
            },
        },
    }
    apps = client.AppsV1Api(admin)
    apps.create_namespaced_deployment(namespace, deployment, _request_timeout=10)

    def ready() -> int:
        d = apps.read_namespaced_deployment_status("web", namespace, _request_timeout=10)
        ready = d.status.ready_replicas if d.status else None
        assert ready == 3, f"readyReplicas={ready}"
        return ready

    assert eventually(ready, timeout=90) == 3
    pods = client.CoreV1Api(admin).list_namespaced_pod(namespace, _request_timeout=10).items
    assert len(pods) == 3
    nodes = [p.spec.node_name if p.spec else None for p in pods]
    assert all(n and n.startswith("kwok-node-") for n in nodes), nodes


def _served_version(admin: client.ApiClient, crd: str, preferred: list[str]) -> str:
    obj: Any = client.ApiextensionsV1Api(admin).read_custom_resource_definition(
        crd, _preload_content=False, _request_timeout=10
    )
    served = {v["name"] for v in json.loads(obj.data)["spec"]["versions"] if v["served"]}
    for version in preferred:
        if version in served:
            return version
    raise AssertionError(f"{crd} serves none of {preferred}: {served}")


def test_httproute_with_weights_round_trips(admin: client.ApiClient, namespace: str) -> None:
    objects = client.CustomObjectsApi(admin)
    route: Any = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "checkout"},
        "spec": {
            "parentRefs": [{"name": "gateway"}],
            "rules": [
                {
                    "backendRefs": [
                        {"name": "checkout", "port": 80, "weight": 90},
                        {"name": "checkout-canary", "port": 80, "weight": 10},
                    ]
                }
            ],
        },
    }
    objects.create_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", namespace, "httproutes", route, _request_timeout=10
    )
    got: Any = objects.get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", namespace, "httproutes", "checkout", _request_timeout=10
    )
    weights = {b["name"]: b["weight"] for b in got["spec"]["rules"][0]["backendRefs"]}
    assert weights == {"checkout": 90, "checkout-canary": 10}

    # The CRD's schema is enforced: a negative weight is rejected by the API server.
    route["metadata"]["name"] = "invalid"
    route["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1
    with pytest.raises(client.ApiException) as err:
        objects.create_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", namespace, "httproutes", route, _request_timeout=10
        )
    assert err.value.status == 422
    assert "weight" in str(err.value.body)


def test_virtualservice_with_weights_round_trips(admin: client.ApiClient, namespace: str) -> None:
    crd = "virtualservices.networking.istio.io"
    version = _served_version(admin, crd, ["v1", "v1beta1", "v1alpha3"])
    objects = client.CustomObjectsApi(admin)
    vs: Any = {
        "apiVersion": f"networking.istio.io/{version}",
        "kind": "VirtualService",
        "metadata": {"name": "checkout"},
        "spec": {
            "hosts": ["checkout"],
            "http": [
                {
                    "name": "http-primary",
                    "route": [
                        {"destination": {"host": "checkout"}, "weight": 75},
                        {"destination": {"host": "checkout-canary"}, "weight": 25},
                    ],
                }
            ],
        },
    }
    objects.create_namespaced_custom_object(
        "networking.istio.io", version, namespace, "virtualservices", vs, _request_timeout=10
    )
    got: Any = objects.get_namespaced_custom_object(
        "networking.istio.io",
        version,
        namespace,
        "virtualservices",
        "checkout",
        _request_timeout=10,
    )
    routes = got["spec"]["http"][0]["route"]
    assert [(r["destination"]["host"], r["weight"]) for r in routes] == [
        ("checkout", 75),
        ("checkout-canary", 25),
    ]


def _bind(admin: client.ApiClient, namespace: str, subject: dict[str, str]) -> None:
    rbac = client.RbacAuthorizationV1Api(admin)
    role: Any = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "configmap-reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
    }
    binding: Any = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "configmap-reader"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "configmap-reader",
        },
        "subjects": [subject],
    }
    rbac.create_namespaced_role(namespace, role, _request_timeout=10)
    rbac.create_namespaced_role_binding(namespace, binding, _request_timeout=10)


def _status_of(call: Callable[[], object]) -> int:
    try:
        call()
    except client.ApiException as e:
        return int(e.status)
    return 200


@pytest.fixture
def other_namespace(admin: client.ApiClient) -> Iterator[str]:
    name = f"t-other-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(admin)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name, _request_timeout=10)


def test_rbac_denies_what_a_narrow_role_does_not_grant(
    cluster: TestCluster, admin: client.ApiClient, namespace: str, other_namespace: str
) -> None:
    _bind(
        admin,
        namespace,
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": RBAC_USER},
    )
    user = cluster.api_client(RBAC_USER)
    try:
        core = client.CoreV1Api(user)

        def can_list() -> None:
            assert _status_of(lambda: core.list_namespaced_config_map(namespace)) == 200

        eventually(can_list, timeout=30)
        secret = client.V1Secret(metadata=client.V1ObjectMeta(name="s"), string_data={"k": "v"})
        assert _status_of(lambda: core.create_namespaced_secret(namespace, secret)) == 403
        assert _status_of(lambda: core.list_namespaced_config_map(other_namespace)) == 403
        assert _status_of(lambda: core.list_namespaced_secret(namespace)) == 403
    finally:
        user.close()  # type: ignore[no-untyped-call]


def test_controller_token_user_acts_as_the_rolloutctl_service_account(
    cluster: TestCluster, admin: client.ApiClient, namespace: str
) -> None:
    # A RoleBinding to the ServiceAccount (as the Helm chart writes it) applies to the token.
    _bind(
        admin,
        namespace,
        {"kind": "ServiceAccount", "name": "rolloutctl", "namespace": "rolloutctl-system"},
    )
    user = cluster.api_client(CONTROLLER_USER)
    try:
        core = client.CoreV1Api(user)
        eventually(
            lambda: _assert_equal(
                _status_of(lambda: core.list_namespaced_config_map(namespace)), 200
            ),
            timeout=30,
        )
        assert _status_of(lambda: core.list_namespaced_pod(namespace)) == 403
    finally:
        user.close()  # type: ignore[no-untyped-call]


def _assert_equal(a: object, b: object) -> None:
    assert a == b, f"{a!r} != {b!r}"


def pinned(name: str) -> str:
    script = (REPO_DIR / "tools" / "build-control-plane.sh").read_text()
    match = re.search(rf'^{name}="(v[0-9.]+)"', script, re.MULTILINE)
    assert match, f"{name} not found in tools/build-control-plane.sh"
    return match.group(1)


def _version_output(argv: list[str]) -> str:
    try:
        binary = find_binary(argv[0])
    except BinariesMissing as e:
        missing = str(e)
    else:
        missing = ""
    if missing:
        unavailable(missing)
    result = subprocess.run(
        [str(binary), *argv[1:]], capture_output=True, text=True, timeout=30, check=True
    )
    return result.stdout + result.stderr


@pytest.mark.parametrize(
    ("argv", "pin", "template"),
    [
        (["kube-apiserver", "--version"], "K8S_VERSION", "Kubernetes {v}"),
        (["kubectl", "version", "--client"], "K8S_VERSION", "Client Version: {v}"),
        (["etcd", "--version"], "ETCD_VERSION", "etcd Version: {v_}"),
        (["kwok", "--version"], "KWOK_VERSION", "kwok version {v}"),
        (["helm", "version", "--short"], "HELM_VERSION", "{v}"),
    ],
)
def test_built_binaries_report_the_pinned_versions(
    argv: list[str], pin: str, template: str
) -> None:
    version = pinned(pin)
    want = template.format(v=version, v_=version.removeprefix("v"))
    assert want in _version_output(argv)


@pytest.mark.slow
def test_cli_up_and_down_leave_no_process_behind(tmp_path: Path) -> None:
    directory = tmp_path / "cp"
    python = sys.executable
    up = subprocess.run(
        [python, "-m", "tests.harness.cluster", "up", str(directory), "--no-workloads"],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    if up.returncode != 0:
        unavailable(f"cluster up failed: {up.stderr or up.stdout}")
    pids = json.loads((directory / "pids").read_text())
    assert set(pids) == {"etcd", "kube-apiserver"}
    assert (directory / "kubeconfig").is_file()
    assert set(json.loads((directory / "tokens.json").read_text())) >= {"admin", RBAC_USER}

    again = subprocess.run(
        [python, "-m", "tests.harness.cluster", "up", str(directory), "--no-workloads"],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0 and "already running" in again.stdout
    assert json.loads((directory / "pids").read_text()) == pids

    down = subprocess.run(
        [python, "-m", "tests.harness.cluster", "down", str(directory)],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert down.returncode == 0, down.stderr
    assert not (directory / "pids").exists()
    assert [name for name, pid in pids.items() if pid_alive(pid)] == []
