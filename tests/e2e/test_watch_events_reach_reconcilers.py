"""The manager on the real API server: object events become keys, keys become reconciles,
and each reconcile result is handled as the contract says (requeue, conflict, backoff)."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry

from controller.errors import Conflict, Transient
from controller.runtime.manager import Manager
from tests.harness.builders import plan_doc, policy_doc
from tests.harness.fixtures import TestCluster

pytestmark = pytest.mark.cluster

GROUP, VERSION = "rolloutctl.dev", "v1alpha1"
Outcome = float | None | Exception


class Recording:
    """A reconciler that records its calls and plays scripted outcomes per key."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str]] = []
        self.script: dict[str, list[Outcome]] = {}
        self.active: set[str] = set()
        self.concurrent: list[str] = []
        self._lock = threading.Lock()

    def reconcile(self, key: str) -> float | None:
        with self._lock:
            self.calls.append((time.monotonic(), key))
            if key in self.active:
                self.concurrent.append(key)
            self.active.add(key)
            outcome = self.script.get(key, [None]).pop(0) if self.script.get(key) else None
        try:
            time.sleep(0.01)
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        finally:
            with self._lock:
                self.active.discard(key)

    def keys(self) -> list[str]:
        with self._lock:
            return [k for _, k in self.calls]

    def times(self, key: str) -> list[float]:
        with self._lock:
            return [t for t, k in self.calls if k == key]

    def count(self, key: str) -> int:
        return len(self.times(key))


def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def api(cluster: TestCluster) -> Iterator[client.ApiClient]:
    api = cluster.api_client()
    yield api
    api.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def running(
    cluster: TestCluster, namespace: str
) -> Iterator[tuple[Manager, Recording, Recording, CollectorRegistry]]:
    api = cluster.api_client()
    registry = CollectorRegistry()
    manager = Manager(api, registry, namespaces=[namespace], leader_election=False,
                      workers=2, bind=None)
    plans, policies = Recording(), Recording()
    manager.add_plans_controller(plans)
    manager.add_policies_controller(policies)
    manager.start()
    try:
        assert eventually(manager.has_synced)
        yield manager, plans, policies, registry
    finally:
        manager.stop()
        api.close()  # type: ignore[no-untyped-call]


def create(api: client.ApiClient, namespace: str, plural: str, doc: dict[str, Any]) -> None:
    doc["metadata"] = {"name": doc["metadata"]["name"], "namespace": namespace}
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, doc, _request_timeout=10)


def deployment(name: str) -> Any:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "app", "image": "app:1"}]}}},
    }


def merge(api: client.ApiClient, namespace: str, plural: str, name: str,
          patch: dict[str, Any]) -> None:
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, name, patch,
        _content_type="application/merge-patch+json", _request_timeout=10)


def test_plan_deployment_and_policy_events_reach_the_right_reconcilers(
    running: tuple[Manager, Recording, Recording, CollectorRegistry],
    api: client.ApiClient, namespace: str,
) -> None:
    manager, plans, policies, _ = running
    apps = client.AppsV1Api(api)
    plan_key, policy_key = f"{namespace}/checkout", f"{namespace}/platform"

    create(api, namespace, "rolloutplans", plan_doc("checkout", namespace))
    assert eventually(lambda: plans.count(plan_key) >= 1), "a new plan is reconciled"
    create(api, namespace, "slopolicies", policy_doc("platform", namespace))
    assert eventually(lambda: policies.count(policy_key) >= 1), "a new policy is reconciled"
    assert eventually(lambda: plans.count(plan_key) >= 2), "...and so are the plans using it"

    # a Deployment no plan refers to wakes no plan (nor do its status updates, which the
    # controller-manager writes as its pods come up)
    time.sleep(0.5)
    before_keys = len(plans.keys())
    apps.create_namespaced_deployment(namespace, deployment("unrelated"), _request_timeout=10)
    time.sleep(2.0)
    assert plans.keys()[before_keys:] == []

    # the plan's canary Deployment appears, then changes: the plan is reconciled each time
    before = plans.count(plan_key)
    apps.create_namespaced_deployment(namespace, deployment("checkout-canary"),
                                      _request_timeout=10)
    assert eventually(lambda: plans.count(plan_key) > before)
    before = plans.count(plan_key)
    apps.patch_namespaced_deployment(
        "checkout-canary", namespace, {"spec": {"replicas": 2}},
        _content_type="application/merge-patch+json", _request_timeout=10)
    assert eventually(lambda: plans.count(plan_key) > before)

    # the plan switches policy: the old policy no longer wakes it, the new one does
    merge(api, namespace, "rolloutplans", "checkout", {"spec": {"sloPolicyRef": {"name": "b"}}})
    assert eventually(lambda: manager.cache("rolloutplans").index_keys(
        "sloPolicy", f"{namespace}/b") == [plan_key])
    time.sleep(0.3)
    before = plans.count(plan_key)
    merge(api, namespace, "slopolicies", "platform", {"metadata": {"labels": {"x": "1"}}})
    assert eventually(lambda: policies.count(policy_key) >= 2)
    time.sleep(0.5)
    assert plans.count(plan_key) == before
    assert plans.concurrent == [] and policies.concurrent == []


def test_results_requeue_retry_now_or_back_off_per_key(
    running: tuple[Manager, Recording, Recording, CollectorRegistry],
    api: client.ApiClient, namespace: str,
) -> None:
    manager, plans, _, registry = running
    key = f"{namespace}/checkout"
    plans.script[key] = [Conflict("stale"), Transient("timeout"), Transient("timeout"), 0.3,
                         None]
    create(api, namespace, "rolloutplans", plan_doc("checkout", namespace))
    assert eventually(lambda: plans.count(key) >= 5)
    time.sleep(0.6)
    times = plans.times(key)
    assert len(times) == 5, "after a None nothing more is scheduled"
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(times)]
    print("gaps between reconciles:", gaps)
    assert gaps[0] < 0.08, "Conflict: again at once"
    assert 0.1 <= gaps[1] < 0.2, "first Transient: 0.1 s backoff"
    assert 0.2 <= gaps[2] < 0.3, "second Transient: 0.2 s backoff"
    assert 0.3 <= gaps[3] < 0.4, "success returning 0.3: requeued after 0.3 s"
    assert manager.queue("plans").num_requeues(key) == 0, "success forgets the backoff"

    def total(result: str) -> float:
        return registry.get_sample_value(
            "rolloutctl_reconcile_total", {"controller": "plans", "result": result}) or 0.0

    assert (total("success"), total("conflict"), total("transient")) == (2.0, 1.0, 2.0)
    assert registry.get_sample_value(
        "rolloutctl_reconcile_seconds_count", {"controller": "plans"}) == 5.0


def test_an_unexpected_error_is_logged_without_its_message_and_retried(
    running: tuple[Manager, Recording, Recording, CollectorRegistry],
    api: client.ApiClient, namespace: str, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    _, plans, _, registry = running
    key = f"{namespace}/checkout"
    secret = "xoxb-123456789012-SECRET-TOKEN"
    plans.script[key] = [RuntimeError(f"server said: token={secret}"), None]
    create(api, namespace, "rolloutplans", plan_doc("checkout", namespace))
    assert eventually(lambda: plans.count(key) >= 2)
    times = plans.times(key)
    assert times[1] - times[0] >= 0.1, "retried after the backoff"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "reconcile failed with RuntimeError" in logged
    assert "test_watch_events_reach_reconcilers.py" in logged, "where it failed is kept"
    assert secret not in logged
    assert registry.get_sample_value(
        "rolloutctl_reconcile_total", {"controller": "plans", "result": "error"}) == 1.0


def test_a_burst_of_events_for_one_plan_is_never_reconciled_twice_at_once(
    running: tuple[Manager, Recording, Recording, CollectorRegistry],
    api: client.ApiClient, namespace: str,
) -> None:
    _, plans, _, _ = running
    key = f"{namespace}/checkout"
    create(api, namespace, "rolloutplans", plan_doc("checkout", namespace))
    for i in range(20):
        merge(api, namespace, "rolloutplans", "checkout", {"metadata": {"labels": {"i": str(i)}}})
    assert eventually(lambda: manager_cache_label(running[0], key) == "19")
    time.sleep(0.5)
    assert plans.concurrent == []
    assert 1 <= plans.count(key) <= 21


def manager_cache_label(manager: Manager, key: str) -> str | None:
    obj = manager.cache("rolloutplans").get(key)
    labels = cast(dict[str, str], (obj or {}).get("metadata", {}).get("labels") or {})
    return labels.get("i")


def test_a_change_on_the_server_reaches_its_reconciler_within_a_fraction_of_a_second(
    cluster: TestCluster, api: client.ApiClient, namespace: str
) -> None:
    manager_api = cluster.api_client()
    manager = Manager(manager_api, CollectorRegistry(), namespaces=[namespace],
                      leader_election=False, bind=None)
    seen: dict[str, float] = {}

    class ReadsTheCache:
        def reconcile(self, key: str) -> float | None:
            value = manager_cache_label(manager, key)
            if value is not None:
                seen.setdefault(value, time.monotonic())
            return None

    queue = manager.add_plans_controller(ReadsTheCache())
    manager.start()
    try:
        assert eventually(manager.has_synced)
        create(api, namespace, "rolloutplans", plan_doc("checkout", namespace))
        sent: dict[str, float] = {}
        for i in range(40):
            sent[str(i)] = time.monotonic()
            merge(api, namespace, "rolloutplans", "checkout",
                  {"metadata": {"labels": {"i": str(i)}}})
            time.sleep(0.1)
        assert eventually(lambda: "39" in seen)
        latencies = sorted(seen[i] - sent[i] for i in sent if i in seen)
        median = latencies[len(latencies) // 2]
        p99 = latencies[min(len(latencies) - 1, round(0.99 * len(latencies)))]
        in_queue = sorted(queue.latencies())
        print(f"server write -> reconcile: n={len(latencies)} median {median * 1000:.1f} ms "
              f"p99 {p99 * 1000:.1f} ms; in queue: median "
              f"{in_queue[len(in_queue) // 2] * 1000:.2f} ms max {in_queue[-1] * 1000:.2f} ms")
        assert len(latencies) >= 38, "nearly every change is seen on its own"
        assert median < 0.1
        assert p99 < 0.5
    finally:
        manager.stop()
        manager_api.close()  # type: ignore[no-untyped-call]
