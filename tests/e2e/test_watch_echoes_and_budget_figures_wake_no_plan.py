"""On the real API server: events that tell a plan nothing new do not queue it.

* The watch event of the controller's own status write (same resourceVersion) is not a
  reason for another pass; a status write by anyone else (the notification dispatcher, a
  user) is.
* An SLOPolicy evaluation that rewrites only its figures (time, budget, message while not
  frozen) does not wake the policy's plans; its first evaluation, a freeze, a spec change
  and its deletion do. The policy itself is still reconciled on each of its events.

Before these filters a steady controller ran three passes per plan and interval instead of
one (measured by ``bench.scale``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry

from controller.adapters.kube.objects import ObjectStore
from controller.reconciler import policy_view
from controller.runtime.manager import Manager
from tests.harness.builders import plan_doc, policy_doc
from tests.harness.fixtures import TestCluster

pytestmark = pytest.mark.cluster

GROUP, VERSION = "rolloutctl.dev", "v1alpha1"
QUIET = 1.5  # seconds without a reconcile that would have come within a fraction of one


class Counting:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def reconcile(self, key: str) -> float | None:
        self.calls.append(key)
        return None

    def count(self, key: str) -> int:
        return self.calls.count(key)


def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def world(cluster: TestCluster, namespace: str
          ) -> Iterator[tuple[Manager, Counting, Counting, ObjectStore, client.ApiClient]]:
    api = cluster.api_client()
    store = ObjectStore(api)
    manager = Manager(api, CollectorRegistry(), namespaces=[namespace], leader_election=False,
                      workers=2, bind=None)
    plans, policies = Counting(), Counting()
    manager.add_plans_controller(plans, is_own_write=store.is_own_write,
                                 policy_view=policy_view)
    manager.add_policies_controller(policies)
    manager.start()
    try:
        assert eventually(manager.has_synced)
        yield manager, plans, policies, store, api
    finally:
        manager.stop()
        api.close()  # type: ignore[no-untyped-call]


def create(api: client.ApiClient, namespace: str, plural: str, doc: dict[str, Any]) -> None:
    doc["metadata"] = {"name": doc["metadata"]["name"], "namespace": namespace}
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, doc, _request_timeout=10)


def settled(counter: Counting, key: str) -> int:
    """The count once no reconcile came for QUIET seconds."""
    while True:
        before = counter.count(key)
        time.sleep(QUIET)
        if counter.count(key) == before:
            return before


def test_the_echo_of_its_own_status_write_does_not_queue_the_plan_again(
    world: tuple[Manager, Counting, Counting, ObjectStore, client.ApiClient], namespace: str
) -> None:
    _, plans, _, store, api = world
    key = f"{namespace}/checkout"
    create(api, namespace, "rolloutplans", plan_doc("checkout", namespace))
    assert eventually(lambda: plans.count(key) >= 1)
    before = settled(plans, key)

    for generation in (1, 2, 3):  # the reconciler's writes, one per pass
        raw = store.get("RolloutPlan", namespace, "checkout")
        assert raw is not None
        store.write_status(raw, {"observedGeneration": generation, "phase": "Progressing"})
    time.sleep(QUIET)
    assert plans.count(key) == before

    other = ObjectStore(api)  # e.g. the notification dispatcher recording a delivery
    raw = other.get("RolloutPlan", namespace, "checkout")
    assert raw is not None
    other.write_status(raw, {**raw["status"], "phase": "Holding"})
    assert eventually(lambda: plans.count(key) == before + 1)


def test_budget_figures_rewritten_by_an_evaluation_do_not_wake_the_policys_plans(
    world: tuple[Manager, Counting, Counting, ObjectStore, client.ApiClient], namespace: str
) -> None:
    _, plans, policies, _, api = world
    plan_key, policy_key = f"{namespace}/checkout", f"{namespace}/platform"
    create(api, namespace, "slopolicies", policy_doc("platform", namespace))
    create(api, namespace, "rolloutplans", plan_doc("checkout", namespace))
    assert eventually(lambda: plans.count(plan_key) >= 1)
    writer = ObjectStore(api)  # the policy reconciler's writes (another store: no echo skip)
    at = datetime.now(UTC).replace(microsecond=0)

    def evaluation(minutes: int, budget: float, **extra: Any) -> None:
        raw = writer.get("SLOPolicy", namespace, "platform")
        assert raw is not None
        writer.write_status(raw, {
            "evaluatedAt": (at + timedelta(minutes=minutes)).isoformat(), "seq": minutes,
            "budgetRemaining": budget, "message": f"{budget:.1f}% of the budget left",
            "frozen": False, **extra})

    before = settled(plans, plan_key)
    evaluation(0, 70.0)  # the first evaluation: the budget becomes known
    assert eventually(lambda: plans.count(plan_key) == before + 1)

    before = settled(plans, plan_key)
    seen_by_policy = policies.count(policy_key)
    for minute, budget in ((1, 69.5), (2, 69.0), (3, 68.2)):
        evaluation(minute, budget)
    assert eventually(lambda: policies.count(policy_key) >= seen_by_policy + 3)
    time.sleep(QUIET)
    assert plans.count(plan_key) == before

    evaluation(4, 8.0, frozen=True, reason="BudgetBelowThreshold",
               frozenSince=(at + timedelta(minutes=4)).isoformat())
    assert eventually(lambda: plans.count(plan_key) == before + 1), "a freeze wakes them"

    before = settled(plans, plan_key)
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "slopolicies", "platform",
        {"spec": {"evaluationInterval": "30s"}},
        _content_type="application/merge-patch+json", _request_timeout=10)
    assert eventually(lambda: plans.count(plan_key) == before + 1), "a spec change does"

    before = settled(plans, plan_key)
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, "slopolicies", "platform", _request_timeout=10)
    assert eventually(lambda: plans.count(plan_key) == before + 1), "a deletion does"


class Scheduling(Counting):
    """A reconciler that asks to see "busy" again in a minute (as a plan mid-run does at its
    next analysis) and nothing more of "idle" (as a finished plan)."""

    def reconcile(self, key: str) -> float | None:
        super().reconcile(key)
        return 60.0 if key.endswith("/busy") else None


def test_a_resync_queues_only_the_plans_no_pass_has_scheduled(
    cluster: TestCluster, namespace: str
) -> None:
    api = cluster.api_client()
    plans = Scheduling()
    manager = Manager(api, CollectorRegistry(), namespaces=[namespace], leader_election=False,
                      workers=2, bind=None, resync_seconds=0.5)
    manager.add_plans_controller(plans)
    manager.start()
    try:
        assert eventually(manager.has_synced)
        for name in ("busy", "idle"):
            create(api, namespace, "rolloutplans", plan_doc(name, namespace))
        busy, idle = f"{namespace}/busy", f"{namespace}/idle"
        assert eventually(lambda: plans.count(busy) >= 1 and plans.count(idle) >= 1)
        time.sleep(3.0)  # six resyncs
        assert plans.count(busy) == 1, "its requeue in a minute covers it"
        assert plans.count(idle) >= 4, "nothing scheduled it: each resync queues it"
    finally:
        manager.stop()
        api.close()  # type: ignore[no-untyped-call]
