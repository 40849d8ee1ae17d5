"""Two managers on one Lease: only the leader reconciles; a stopped or SIGTERMed leader
hands over at once and never overlaps with its successor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry

from controller.adapters.kube.lease import KubeLeaseStore
from controller.runtime.leader import LeaderElector
from controller.runtime.manager import Manager
from tests.harness import python_env
from tests.harness.builders import plan_doc
from tests.harness.fixtures import TestCluster

pytestmark = pytest.mark.cluster

GROUP, VERSION = "rolloutctl.dev", "v1alpha1"
LEASE = "rolloutctl-leader"


class Journal:
    """Every reconcile of every replica: (replica, key, started, ended)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, float, float]] = []
        self.not_leading: list[str] = []  # reconciles called while not leading
        self._lock = threading.Lock()

    def reconciler(self, replica: str, leading: Callable[[], bool]) -> Any:
        journal = self

        class Reconciler:
            def reconcile(self, key: str) -> float | None:
                if not leading():
                    journal.not_leading.append(f"{replica} {key}")
                started = time.monotonic()
                time.sleep(0.05)  # a reconcile takes a while
                with journal._lock:
                    journal.entries.append((replica, key, started, time.monotonic()))
                return 0.2  # keep coming back, like a rollout in progress

        return Reconciler()

    def of(self, replica: str) -> list[tuple[str, str, float, float]]:
        with self._lock:
            return [e for e in self.entries if e[0] == replica]


def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def lease_holder(api: client.ApiClient, namespace: str) -> str | None:
    record = KubeLeaseStore(api, namespace, LEASE).get()
    return None if record is None else record.holder_identity


def create_plan(api: client.ApiClient, namespace: str, name: str) -> None:
    doc = plan_doc(name, namespace)
    doc["metadata"] = {"name": name, "namespace": namespace}
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "rolloutplans", doc, _request_timeout=10)


@pytest.fixture
def api(cluster: TestCluster) -> Iterator[client.ApiClient]:
    api = cluster.api_client()
    yield api
    api.close()  # type: ignore[no-untyped-call]


def test_only_the_leader_reconciles_and_a_stopped_leader_hands_over_without_overlap(
    cluster: TestCluster, api: client.ApiClient, namespace: str
) -> None:
    journal = Journal()
    managers: dict[str, Manager] = {}
    clients = []
    for replica in ("a", "b"):
        replica_api = cluster.api_client()
        clients.append(replica_api)
        m = Manager(replica_api, CollectorRegistry(), namespaces=[namespace], identity=replica,
                    lease_namespace=namespace, lease_name=LEASE, bind=None, workers=2)
        m.add_plans_controller(journal.reconciler(replica, m.leading))
        managers[replica] = m
    keys = {f"{namespace}/p{i}" for i in range(3)}
    try:
        managers["a"].start()
        assert eventually(managers["a"].leading)
        managers["b"].start()
        for i in range(3):
            create_plan(api, namespace, f"p{i}")
        assert eventually(lambda: {e[1] for e in journal.of("a")} == keys)
        time.sleep(1.0)
        assert journal.of("b") == [], "the standby never reconciles"
        assert managers["b"].cache("rolloutplans").keys() != [], "but keeps a warm cache"

        stopping = time.monotonic()
        managers["a"].stop()
        stopped = time.monotonic()
        assert eventually(lambda: {e[1] for e in journal.of("b")} == keys, timeout=5)
        first_b = min(e[2] for e in journal.of("b"))
        last_a = max(e[3] for e in journal.of("a"))
        print(f"stop() took {stopped - stopping:.2f} s; b's first reconcile "
              f"{first_b - stopping:.2f} s after stop() began")
        assert stopped - stopping < 3.0
        assert last_a <= stopping + 0.1, "a's in-flight reconciles end before stop() returns"
        assert first_b > last_a, "never two replicas reconciling"
        assert first_b - stopping < 1.5, "the released Lease is taken over at once"
        assert lease_holder(api, namespace) == "b"
        assert journal.not_leading == []
    finally:
        for m in managers.values():
            m.stop()
        for c in clients:
            c.close()  # type: ignore[no-untyped-call]


SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from prometheus_client import CollectorRegistry
    from controller.runtime.manager import Manager
    from tests.harness.cluster import new_api_client

    kubeconfig, namespace, identity = sys.argv[1:4]

    class Reconciler:
        def reconcile(self, key):
            return None

    manager = Manager(new_api_client(Path(kubeconfig)), CollectorRegistry(),
                      namespaces=[namespace], identity=identity, lease_namespace=namespace,
                      lease_name="rolloutctl-leader", bind="127.0.0.1:0")
    manager.add_plans_controller(Reconciler())
    manager.run()
    print("exited cleanly", flush=True)
""")


def test_sigterm_releases_the_lease_and_a_standby_leads_within_a_second_of_the_exit(
    cluster: TestCluster, api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    script = tmp_path / "replica.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(cluster.kubeconfig), namespace, "doomed"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=python_env(),
    )
    standby_api = cluster.api_client()
    standby = LeaderElector(KubeLeaseStore(standby_api, namespace, LEASE), "standby")
    try:
        assert eventually(lambda: lease_holder(api, namespace) == "doomed", timeout=30)
        standby.start()
        assert eventually(lambda: standby.leader() == "doomed")
        os.kill(proc.pid, signal.SIGTERM)
        signalled = time.monotonic()
        out, _ = proc.communicate(timeout=15)
        exited = time.monotonic()
        assert eventually(standby.is_leader, timeout=5)
        leading = time.monotonic()
        print(f"SIGTERM -> exit {exited - signalled:.2f} s; exit -> standby leads "
              f"{leading - exited:.2f} s")
        assert proc.returncode == 0, out
        assert "exited cleanly" in out
        assert exited - signalled < 5.0, "SIGTERM stops the manager within a few seconds"
        assert leading - exited < 1.0, "the Lease was released, not left to expire"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        standby.stop()
        standby_api.close()  # type: ignore[no-untyped-call]
