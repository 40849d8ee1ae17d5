"""pytest plugin: a real control plane and real Prometheus for the tests.

Loaded with ``pytest_plugins = ["tests.harness.fixtures"]`` in tests/conftest.py.

Fixtures:

* ``cluster`` (session): etcd + kube-apiserver + controller-manager + scheduler + kwok
  started once per session in a temp dir (see ``tests.harness.cluster``), or the
  cluster of ``$ROLLOUTCTL_TEST_KUBECONFIG`` when set. The project's CRDs
  (``manifests/crds/*.yaml``), the Gateway API HTTPRoute CRD and the Istio VirtualService
  CRD are installed and Established. Gives a :class:`TestCluster`.
* ``namespace`` (function): a fresh namespace, deleted afterwards; yields its name.
* ``prometheus_backfilled`` (function): factory ``(series) -> RunningPrometheus``.
* ``prometheus_live`` (function): factory ``(targets) -> RunningPrometheus``.

A missing binary or a failed start skips the test locally, and fails it when ``CI=true``.
Mark tests with ``@pytest.mark.cluster`` / ``@pytest.mark.prometheus``.

``ROLLOUTCTL_TEST_KUBECONFIG``: when it names the ``kubeconfig`` written by
``python -m tests.harness.cluster up DIR``, the token users of DIR/tokens.json are
available too; for any other cluster only the admin kubeconfig is (``kubeconfig_for``
skips). Nothing is stopped at the end in that case; CRDs installed stay installed.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

import pytest
import yaml

from tests.harness import cluster as cluster_mod
from tests.harness.prometheus import PrometheusError, PrometheusServer, Series

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

KUBECONFIG_ENV = "ROLLOUTCTL_TEST_KUBECONFIG"
PROJECT_CRD_DIR = cluster_mod.REPO_DIR / "manifests" / "crds"
PROVIDER_CRDS = (
    "gateway.networking.k8s.io_httproutes.yaml",
    "virtualservices.networking.istio.io.yaml",
)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it when running in CI (a missing component is a failure)."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing component fails the run)", pytrace=False)
    pytest.skip(reason)


def pytest_configure(config: pytest.Config) -> None:
    for marker in (
        "cluster: needs the local kube-apiserver + etcd (tools/build-control-plane.sh)",
        "prometheus: needs Debian's prometheus and promtool",
        "slow: slow end-to-end test",
    ):
        config.addinivalue_line("markers", marker)


# --------------------------------------------------------------------------- cluster


@dataclass
class TestCluster:
    """What the ``cluster`` fixture gives a test."""

    __test__ = False  # not a test class

    kubeconfig: Path
    tokens: dict[str, str] = field(default_factory=dict)
    local: cluster_mod.Cluster | None = None
    installed_crds: list[str] = field(default_factory=list)

    def api_client(self, user: str = cluster_mod.ADMIN_USER) -> ApiClient:
        """A ``kubernetes.client.ApiClient`` as USER (admin by default)."""
        return cluster_mod.new_api_client(self.kubeconfig_for(user))

    def kubeconfig_for(self, user: str) -> Path:
        """A kubeconfig for token user USER (``admin``, ``rbac-user``, the controller's)."""
        if user == cluster_mod.ADMIN_USER:
            return self.kubeconfig
        if self.local is None:
            unavailable(f"token user {user!r} needs a cluster started by tests.harness")
        return self.local.kubeconfig_for(user)


def _crd_documents(path: Path) -> list[dict[str, Any]]:
    with open(path) as f:
        return [
            d
            for d in yaml.safe_load_all(f)
            if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"
        ]


def install_crds(api: ApiClient, paths: Iterable[Path], timeout: float = 60.0) -> list[str]:
    """Create (or replace) the CRDs in PATHS and wait until each is Established."""
    from kubernetes import client

    ext = client.ApiextensionsV1Api(api)
    names: list[str] = []
    for path in paths:
        for doc in _crd_documents(path):
            name = doc["metadata"]["name"]
            try:
                ext.create_custom_resource_definition(body=cast(Any, doc), _request_timeout=30)
            except client.ApiException as e:
                if e.status != 409:
                    raise
                current = _read_crd(ext, name)
                doc["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                ext.replace_custom_resource_definition(
                    name, body=cast(Any, doc), _request_timeout=30
                )
            names.append(name)
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            conditions = _read_crd(ext, name).get("status", {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not Established after {timeout:.0f} s")
            time.sleep(0.2)
    return names


def _read_crd(ext: Any, name: str) -> dict[str, Any]:
    # Raw JSON: the generated models of the client choke on some CRD fields.
    resp = ext.read_custom_resource_definition(name, _preload_content=False, _request_timeout=30)
    return dict(json.loads(resp.data))


def crd_files() -> tuple[list[Path], list[str]]:
    """The CRD files to install, and notes about what is missing."""
    notes: list[str] = []
    project = sorted(PROJECT_CRD_DIR.glob("*.yaml")) if PROJECT_CRD_DIR.is_dir() else []
    if not project:
        notes.append(f"no project CRDs in {PROJECT_CRD_DIR}: installed none from there")
    providers = [cluster_mod.crd_dir() / f for f in PROVIDER_CRDS]
    missing = [p for p in providers if not p.is_file()]
    if missing:
        unavailable(f"missing {', '.join(map(str, missing))}: run tools/build-control-plane.sh")
    return [*project, *providers], notes


@pytest.fixture(scope="session")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[TestCluster]:
    """The session's Kubernetes control plane (started once, stopped at the end)."""
    external = os.environ.get(KUBECONFIG_ENV)
    started: cluster_mod.Cluster | None = None
    if external:
        kubeconfig = Path(external).resolve()
        if not kubeconfig.is_file():
            unavailable(f"{KUBECONFIG_ENV}={external} does not exist")
        local = cluster_mod.load_cluster(kubeconfig.parent)
        handle = TestCluster(
            kubeconfig=kubeconfig, tokens=dict(local.tokens) if local else {}, local=local
        )
    else:
        directory = tmp_path_factory.mktemp("cluster", numbered=True)
        try:
            started = cluster_mod.start_cluster(directory, workloads=True)
        except cluster_mod.ClusterError as e:
            unavailable(f"cannot start the local control plane: {e}")
        atexit.register(cluster_mod.stop_cluster, directory)
        handle = TestCluster(
            kubeconfig=started.kubeconfig, tokens=dict(started.tokens), local=started
        )

    try:
        files, notes = crd_files()
        for note in notes:
            request.config.stash.setdefault(_NOTES, []).append(note)
            print(f"\n[tests.harness.fixtures] {note}")
        api = handle.api_client()
        try:
            handle.installed_crds = install_crds(api, files)
        finally:
            api.close()  # type: ignore[no-untyped-call]
        yield handle
    finally:
        if started is not None:
            cluster_mod.stop_cluster(started.dir)


_NOTES = pytest.StashKey[list[str]]()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for note in terminalreporter.config.stash.get(_NOTES, []):
        terminalreporter.write_line(f"tests.harness.fixtures: {note}")


def _namespace_name(node_name: str) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", node_name.lower()).strip("-")[:40].strip("-") or "test"
    return f"t-{base}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def namespace(cluster: TestCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test; deleted (in the background) afterwards."""
    from kubernetes import client

    name = _namespace_name(request.node.name)
    api = cluster.api_client()
    core = client.CoreV1Api(api)
    core.create_namespace(
        body=client.V1Namespace(metadata=client.V1ObjectMeta(name=name)),
        _request_timeout=30,
    )
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name, propagation_policy="Background", _request_timeout=30)
        finally:
            api.close()  # type: ignore[no-untyped-call]


# --------------------------------------------------------------------------- prometheus


class RunningPrometheus(str):
    """The base URL of a running Prometheus (a ``str``), carrying its server object."""

    server: PrometheusServer

    def __new__(cls, server: PrometheusServer) -> RunningPrometheus:
        obj = super().__new__(cls, server.url)
        obj.server = server
        return obj

    @property
    def url(self) -> str:
        return str.__str__(self)

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        return self.server.query(expr, at)

    def query_value(self, expr: str, at: float | None = None) -> float | None:
        return self.server.query_value(expr, at)

    def set_targets(self, targets: Sequence[str]) -> None:
        self.server.set_targets(targets)

    def wait_for_targets_up(self, timeout: float = 30.0) -> None:
        self.server.wait_for_targets_up(timeout)


BackfilledFactory = Callable[..., RunningPrometheus]
LiveFactory = Callable[..., RunningPrometheus]


@pytest.fixture
def prometheus_backfilled(tmp_path: Path) -> Iterator[BackfilledFactory]:
    """Factory: ``prometheus_backfilled(series, lookback_delta="5m") -> RunningPrometheus``.

    SERIES is an iterable of ``tests.harness.prometheus.Series`` (see ``counter`` and
    ``gauge`` there); timestamps are unix seconds.
    """
    servers: list[PrometheusServer] = []

    def start(series: Iterable[Series], lookback_delta: str = "5m") -> RunningPrometheus:
        from tests.harness.prometheus import backfill

        server = PrometheusServer(
            tmp_path / f"prometheus-backfilled-{len(servers)}", lookback_delta=lookback_delta
        )
        servers.append(server)
        try:
            backfill(series, server.data_dir, server.dir / "backfill.om.txt")
            server.start()
        except PrometheusError as e:
            unavailable(f"cannot start a backfilled Prometheus: {e}")
        return RunningPrometheus(server)

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def prometheus_live(tmp_path: Path) -> Iterator[LiveFactory]:
    """Factory: ``prometheus_live(targets, scrape_interval="1s") -> RunningPrometheus``.

    TARGETS are ``host:port`` strings scraped at ``/metrics``; ``.set_targets`` replaces them.
    """
    servers: list[PrometheusServer] = []

    def start(targets: Sequence[str], scrape_interval: str = "1s") -> RunningPrometheus:
        server = PrometheusServer(
            tmp_path / f"prometheus-live-{len(servers)}",
            targets=targets,
            scrape_interval=scrape_interval,
        )
        servers.append(server)
        try:
            server.start()
        except PrometheusError as e:
            unavailable(f"cannot start a live Prometheus: {e}")
        return RunningPrometheus(server)

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def stack(cluster: TestCluster, namespace: str, tmp_path: Path) -> Iterator[Any]:
    """The demo services with a live Prometheus scraping them, traffic running, the two
    Deployments, and the platform SLOPolicy applied in NAMESPACE: a ``tests.harness.
    stack.Stack`` ready for a plan and ``start_controller`` (stopped afterwards)."""
    from tests.harness.stack import Stack, slo_policy

    s = Stack(Path(cluster.kubeconfig), cluster.api_client(), namespace, tmp_path / "stack")
    try:
        s.start_services()
        s.create_workloads()
        s.start_traffic()
        assert s.prometheus is not None
        s.apply(slo_policy("platform", s.service, s.prometheus.url))
        yield s
    finally:
        s.stop()
