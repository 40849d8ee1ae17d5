"""Informers against the real API server: list, watch, 410 relist, backoff, stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from kubernetes import client

from controller.adapters.kube.watch import (
    DEPLOYMENTS,
    ROLLOUT_PLANS,
    Backoff,
    Informer,
    Resource,
)
from tests.harness.builders import plan_doc
from tests.harness.fixtures import TestCluster

pytestmark = pytest.mark.cluster

GROUP, VERSION = "rolloutctl.dev", "v1alpha1"


def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


class Recorder:
    """Handlers that record (event, name) pairs of the objects in NAMESPACE."""

    def __init__(self, informer: Informer, namespace: str) -> None:
        self.namespace = namespace
        self.events: list[tuple[str, str]] = []
        self.objects: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        informer.add_handlers(self._on("add"), self._on("update"), self._on("delete"))

    def _on(self, what: str) -> Callable[[dict[str, Any]], None]:
        def handler(obj: dict[str, Any]) -> None:
            if obj["metadata"]["namespace"] != self.namespace:
                return  # other tests' objects (an all-namespaces informer sees them)
            with self._lock:
                self.events.append((what, obj["metadata"]["name"]))
                self.objects.append(obj)
        return handler

    def seen(self, what: str, name: str) -> bool:
        with self._lock:
            return (what, name) in self.events

    def since(self, n: int) -> list[tuple[str, str]]:
        with self._lock:
            return self.events[n:]


@pytest.fixture
def api(cluster: TestCluster) -> Iterator[client.ApiClient]:
    api = cluster.api_client()
    yield api
    api.close()  # type: ignore[no-untyped-call]


def create_plan(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    doc = plan_doc(name, namespace)
    doc["metadata"] = {"name": name, "namespace": namespace}
    created = client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "rolloutplans", doc, _request_timeout=10)
    return cast(dict[str, Any], created)


def patch_plan(api: client.ApiClient, namespace: str, name: str, patch: dict[str, Any]) -> None:
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "rolloutplans", name, patch,
        _content_type="application/merge-patch+json", _request_timeout=10)


def delete_plan(api: client.ApiClient, namespace: str, name: str) -> None:
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, "rolloutplans", name, _request_timeout=10)


def server_plans(api: client.ApiClient, namespace: str) -> dict[str, str]:
    listed: Any = client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "rolloutplans", _request_timeout=10)
    return {f"{namespace}/{o['metadata']['name']}": o["metadata"]["resourceVersion"]
            for o in listed["items"]}


def cached(informer: Informer, namespace: str) -> dict[str, str]:
    return {f"{namespace}/{o['metadata']['name']}": o["metadata"]["resourceVersion"]
            for o in informer.cache.objects() if o["metadata"]["namespace"] == namespace}


def deployment(name: str, replicas: int = 1) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "app", "image": "app:1"}]}}},
    }


def test_plans_are_listed_then_watched_and_the_cache_matches_the_server(
    api: client.ApiClient, namespace: str
) -> None:
    create_plan(api, namespace, "existing")
    informer = Informer(api, ROLLOUT_PLANS)  # all namespaces, as the controller runs
    recorder = Recorder(informer, namespace)
    informer.start()
    try:
        assert informer.wait_for_sync(10)
        assert recorder.seen("add", "existing"), "the initial list delivers adds"
        assert informer.stats["lists"] == 1

        create_plan(api, namespace, "checkout")
        patch_plan(api, namespace, "existing", {"spec": {"steps": [{"weight": 50, "hold": "1m"},
                                                                   {"weight": 100, "hold": "1m"}]}})
        delete_plan(api, namespace, "checkout")

        assert eventually(lambda: recorder.seen("delete", "checkout"))
        assert recorder.events == [("add", "existing"), ("add", "checkout"), ("update", "existing"),
                        ("delete", "checkout")]
        assert eventually(lambda: cached(informer, namespace) == server_plans(api, namespace))
        obj = informer.cache.get(f"{namespace}/existing")
        assert obj is not None
        assert obj["kind"] == "RolloutPlan"
        assert [s["weight"] for s in obj["spec"]["steps"]] == [50, 100]
        assert informer.stats["lists"] == 1, "no relist was needed"
    finally:
        informer.stop()


def test_deployments_in_the_watched_namespaces_arrive_as_camel_case_dicts(
    api: client.ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(api)
    informer = Informer(api, DEPLOYMENTS, [namespace])
    recorder = Recorder(informer, namespace)
    informer.start()
    try:
        assert informer.wait_for_sync(10)
        apps.create_namespaced_deployment(namespace, cast(Any, deployment("checkout")),
                                          _request_timeout=10)
        apps.patch_namespaced_deployment(
            "checkout", namespace, {"spec": {"replicas": 3}},
            _content_type="application/merge-patch+json", _request_timeout=10)
        assert eventually(lambda: (informer.cache.get(f"{namespace}/checkout") or {})
                          .get("spec", {}).get("replicas") == 3)
        obj = informer.cache.get(f"{namespace}/checkout")
        assert isinstance(obj, dict)
        assert obj["apiVersion"] == "apps/v1"
        assert obj["kind"] == "Deployment"
        assert "matchLabels" in obj["spec"]["selector"], "camelCase keys, as on the wire"
        assert "resourceVersion" in obj["metadata"]

        apps.delete_namespaced_deployment("checkout", namespace, _request_timeout=10)
        assert eventually(lambda: recorder.seen("delete", "checkout"))
        assert f"{namespace}/checkout" not in informer.cache
        assert recorder.events[0] == ("add", "checkout")
        assert ("update", "checkout") in recorder.events
    finally:
        informer.stop()


class StaleResumeInformer(Informer):
    """Once told to, its next watch waits for the test, then resumes from resourceVersion
    "1": the API server answers 410 Expired, as it does after a compaction or a restart."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hold = threading.Event()
        self.held = threading.Event()
        self.release = threading.Event()

    def _watch(self, namespace: str | None, version: str) -> tuple[str, bool]:
        if self.hold.is_set():
            self.hold.clear()
            self.held.set()
            self.release.wait(30)
            version = "1"
        return super()._watch(namespace, version)


def test_after_a_410_the_informer_relists_and_delivers_what_changed_meanwhile(
    api: client.ApiClient, namespace: str
) -> None:
    for name in ("kept", "changed", "removed"):
        create_plan(api, namespace, name)
    informer = StaleResumeInformer(api, ROLLOUT_PLANS, [namespace], watch_timeout_seconds=1)
    recorder = Recorder(informer, namespace)
    informer.start()
    try:
        assert informer.wait_for_sync(10)
        informer.hold.set()  # the running watch ends within 1 s; the next one is held
        assert informer.held.wait(10)
        before = len(recorder.events)
        # changes the informer cannot see: no watch is open
        create_plan(api, namespace, "added")
        patch_plan(api, namespace, "changed", {"metadata": {"labels": {"touched": "yes"}}})
        delete_plan(api, namespace, "removed")
        informer.release.set()

        assert eventually(lambda: cached(informer, namespace) == server_plans(api, namespace))
        assert eventually(lambda: len(recorder.since(before)) >= 3)
        time.sleep(0.3)  # nothing more should come
        assert sorted(recorder.since(before)) == [
            ("add", "added"), ("delete", "removed"), ("update", "changed")
        ], "the relist emits exactly the difference (no update for the unchanged plan)"
        assert informer.stats["expired"] == 1
        assert informer.stats["lists"] == 2
        changed = informer.cache.get(f"{namespace}/changed")
        assert changed is not None and changed["metadata"]["labels"] == {"touched": "yes"}

        create_plan(api, namespace, "after")  # and it watches again afterwards
        assert eventually(lambda: recorder.seen("add", "after"))
    finally:
        informer.release.set()
        informer.stop()


def test_a_failing_list_backs_off_instead_of_spinning(api: client.ApiClient) -> None:
    missing = Resource(GROUP, VERSION, "doesnotexists", "DoesNotExist")  # 404 on list
    informer = Informer(api, missing, backoff=Backoff(base=0.5, cap=30, jitter=0.5))
    informer.start()
    try:
        time.sleep(3.2)
        errors = informer.stats["errors"]
        assert not informer.has_synced()
        assert informer.is_alive(), "errors do not end the informer"
        # attempts at 0, ~0.5-0.75, ~1.5-2.25, ~3.5-5.25 s: three or four in 3.2 s
        assert 2 <= errors <= 4, errors
    finally:
        informer.stop()


def test_stop_closes_an_open_watch_at_once(api: client.ApiClient, namespace: str) -> None:
    informer = Informer(api, ROLLOUT_PLANS, [namespace], watch_timeout_seconds=300)
    informer.start()
    assert informer.wait_for_sync(10)
    assert eventually(lambda: informer.stats["watches"] == 1)
    time.sleep(0.2)  # the watch is open and idle
    started = time.monotonic()
    informer.stop()
    assert time.monotonic() - started < 1.0
    assert not informer.is_alive()


def test_periodic_resync_redelivers_every_cached_object_as_an_update(
    api: client.ApiClient, namespace: str
) -> None:
    create_plan(api, namespace, "a")
    create_plan(api, namespace, "b")
    informer = Informer(api, ROLLOUT_PLANS, [namespace], resync_seconds=0.5)
    recorder = Recorder(informer, namespace)
    informer.start()
    try:
        assert informer.wait_for_sync(10)
        assert eventually(lambda: recorder.seen("update", "a") and recorder.seen("update", "b"),
                          timeout=3)
        assert informer.stats["lists"] == 1, "a resync re-delivers from the cache, no list"
    finally:
        informer.stop()


def test_a_silent_watch_is_reopened_from_where_it_was_without_a_relist(
    api: client.ApiClient, namespace: str
) -> None:
    informer = Informer(api, ROLLOUT_PLANS, [namespace], idle_timeout_seconds=1.0)
    recorder = Recorder(informer, namespace)
    informer.start()
    try:
        assert informer.wait_for_sync(10)
        time.sleep(3.5)  # nothing happens in the namespace: each watch times out after 1 s
        stats = informer.stats
        assert stats["watches"] >= 3
        assert (stats["lists"], stats["errors"], stats["expired"]) == (1, 0, 0)
        create_plan(api, namespace, "late")
        assert eventually(lambda: recorder.seen("add", "late"), timeout=5)
    finally:
        informer.stop()
