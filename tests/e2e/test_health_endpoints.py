"""/healthz, /readyz and /metrics of a running manager, as a kubelet and Prometheus see them."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from controller.constants import LEASE_NAME
from controller.runtime.manager import Manager
from tests.harness.builders import plan_doc
from tests.harness.fixtures import TestCluster

pytestmark = pytest.mark.cluster

LEASE = "rolloutctl-leader"


class Idle:
    def reconcile(self, key: str) -> float | None:
        return None


def get(url: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body) for s in family.samples
    }


@pytest.fixture
def make_manager(cluster: TestCluster, namespace: str) -> Iterator[Callable[..., Manager]]:
    made: list[tuple[Manager, client.ApiClient]] = []

    def make(identity: str, api: client.ApiClient | None = None, **kwargs: object) -> Manager:
        api = api or cluster.api_client()
        manager = Manager(api, CollectorRegistry(), namespaces=[namespace], identity=identity,
                          lease_namespace=namespace, lease_name=LEASE, bind="127.0.0.1:0",
                          **kwargs)  # type: ignore[arg-type]
        manager.add_plans_controller(Idle())
        manager.add_policies_controller(Idle())
        made.append((manager, api))
        return manager

    yield make
    for manager, api in made:
        manager.stop()
        api.close()  # type: ignore[no-untyped-call]


def test_a_leader_is_live_ready_and_exports_its_metrics(
    make_manager: Callable[..., Manager], cluster: TestCluster, namespace: str
) -> None:
    leader = make_manager("leader")
    leader.start()
    url = leader.http_url
    assert url is not None and url.startswith("http://127.0.0.1:")
    assert eventually(lambda: get(url + "/readyz")[0] == 200)
    status, ctype, body = get(url + "/readyz")
    assert body == "ok (leader leader)\n"
    assert ctype.startswith("text/plain")
    assert get(url + "/healthz")[:3:2] == (200, "ok\n")

    api = cluster.api_client()
    try:
        doc = plan_doc("checkout", namespace)
        doc["metadata"] = {"name": "checkout", "namespace": namespace}
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            "rolloutctl.dev", "v1alpha1", namespace, "rolloutplans", doc, _request_timeout=10)
    finally:
        api.close()  # type: ignore[no-untyped-call]

    def reconciled() -> bool:
        metrics = samples(get(url + "/metrics")[2])
        key = ("rolloutctl_reconcile_total", (("controller", "plans"), ("result", "success")))
        return metrics.get(key, 0) >= 1

    assert eventually(reconciled)
    status, ctype, body = get(url + "/metrics")
    assert status == 200
    assert ctype.startswith("text/plain; version=")
    metrics = samples(body)
    assert metrics[("rolloutctl_leader", ())] == 1.0
    assert metrics[("rolloutctl_workqueue_depth", (("name", "plans"),))] == 0.0
    assert metrics[("rolloutctl_workqueue_depth", (("name", "policies"),))] == 0.0
    assert metrics[("rolloutctl_workqueue_adds_total", (("name", "plans"),))] >= 1
    assert metrics[("rolloutctl_workqueue_queue_duration_seconds_count",
                    (("name", "plans"),))] >= 1
    assert ("rolloutctl_reconcile_seconds_count", (("controller", "plans"),)) in metrics
    assert get(url + "/nothing")[0] == 404


def test_a_standby_is_ready_but_does_not_act(make_manager: Callable[..., Manager]) -> None:
    leader, standby = make_manager("first"), make_manager("second")
    leader.start()
    assert eventually(leader.leading)
    standby.start()
    url = standby.http_url
    assert url is not None
    assert eventually(lambda: get(url + "/readyz")[0] == 200)
    assert eventually(lambda: get(url + "/readyz")[2] == "ok (standby; leader first)\n")
    assert samples(get(url + "/metrics")[2])[("rolloutctl_leader", ())] == 0.0


def test_unreachable_api_server_means_live_but_not_ready(
    make_manager: Callable[..., Manager],
) -> None:
    conf = client.Configuration()
    conf.host = "https://127.0.0.1:9"  # nothing listens there
    manager = make_manager("lonely", api=client.ApiClient(conf))
    manager.start()
    url = manager.http_url
    assert url is not None
    time.sleep(1.0)
    status, _, body = get(url + "/readyz")
    assert status == 503
    assert body.startswith("caches not synced: Informer(rolloutplans.rolloutctl.dev, ")
    assert get(url + "/healthz")[:3:2] == (200, "ok\n"), "alive: restarting would not help"


def test_a_dead_thread_fails_liveness_and_stop_closes_the_server(
    make_manager: Callable[..., Manager],
) -> None:
    manager = make_manager("fragile", leader_election=False)
    manager.start()
    url = manager.http_url
    assert url is not None
    assert eventually(lambda: get(url + "/readyz") == (200, "text/plain; charset=utf-8",
                                                        "ok (leader election off)\n"))
    manager.informer("deployments").stop()  # as if its thread had died
    status, _, body = get(url + "/healthz")
    assert status == 503
    assert body.startswith("not running: Informer(deployments.apps, ")

    started = time.monotonic()
    manager.stop()
    assert time.monotonic() - started < 3.0
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/healthz", timeout=2)


def test_a_lease_in_a_missing_namespace_makes_the_replica_unready_with_the_reason(
    cluster: TestCluster, namespace: str
) -> None:
    api = cluster.api_client()
    manager = Manager(api, CollectorRegistry(), namespaces=[namespace], identity="misplaced",
                      lease_namespace="no-such-namespace", bind="127.0.0.1:0")
    manager.add_plans_controller(Idle())
    manager.start()
    try:
        url = manager.http_url
        assert url is not None
        expected = (503, "leader election: cannot create Lease "
                         f"no-such-namespace/{LEASE_NAME}: namespace not found\n")
        assert eventually(lambda: get(url + "/readyz")[::2] == expected)
        answers = set()
        until = time.monotonic() + 2.5  # more than one retry period: no flapping to ready
        while time.monotonic() < until:
            answers.add(get(url + "/readyz")[::2])
            time.sleep(0.05)
        assert answers == {expected}
    finally:
        manager.stop()
        api.close()  # type: ignore[no-untyped-call]
