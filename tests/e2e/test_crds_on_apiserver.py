"""The RolloutPlan CRD on the real API server: round trip, schema, status subresource."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.harness.builders import plan_doc
from tests.harness.fixtures import TestCluster

pytestmark = pytest.mark.cluster

GROUP, VERSION, PLURAL = "rolloutctl.dev", "v1alpha1", "rolloutplans"


@pytest.fixture
def plans(cluster: TestCluster) -> Iterator[client.CustomObjectsApi]:
    if "rolloutplans.rolloutctl.dev" not in cluster.installed_crds:
        pytest.fail("the RolloutPlan CRD (manifests/crds) was not installed")
    api = cluster.api_client()
    yield client.CustomObjectsApi(api)
    api.close()  # type: ignore[no-untyped-call]


def a_plan(namespace: str, name: str = "checkout") -> dict[str, Any]:
    doc = plan_doc(name=name, namespace=namespace)
    doc["metadata"] = {"name": name, "namespace": namespace}
    return doc


def test_a_valid_plan_is_created_and_read_back(
    plans: client.CustomObjectsApi, namespace: str
) -> None:
    doc = a_plan(namespace)
    plans.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, doc)
    got: Any = plans.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "checkout")
    assert got["spec"]["steps"] == doc["spec"]["steps"]
    assert got["spec"]["traffic"] == doc["spec"]["traffic"]
    assert got["metadata"]["generation"] == 1


def test_the_schema_rejects_weight_150_and_names_the_field(
    plans: client.CustomObjectsApi, namespace: str
) -> None:
    doc = a_plan(namespace, "too-heavy")
    doc["spec"]["steps"] = [{"weight": 10, "hold": "1m"}, {"weight": 150, "hold": "1m"}]
    with pytest.raises(client.ApiException) as err:
        plans.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, doc)
    assert err.value.status == 422
    assert "spec.steps[1].weight" in str(err.value.body)


@pytest.mark.parametrize(("field", "value", "refused"), [
    ("hold", "500ms", True), ("hold", "0s", True), ("hold", "0d", True),
    ("hold", "1s", False), ("hold", "1m30s", False), ("hold", "1d", False),
    ("interval", "999ms", True), ("interval", "1000ms", False),
])
def test_the_schema_refuses_intervals_and_holds_under_a_second(
    plans: client.CustomObjectsApi, namespace: str, field: str, value: str, refused: bool
) -> None:
    doc = a_plan(namespace, f"{field}-{value}".replace("m", "mi").lower())
    if field == "hold":
        doc["spec"]["steps"][0]["hold"] = value
        where = "spec.steps[0].hold"
    else:
        doc["spec"]["analysis"]["interval"] = value
        where = "spec.analysis.interval"
    if not refused:
        plans.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, doc)
        return
    with pytest.raises(client.ApiException) as err:
        plans.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, doc)
    assert err.value.status == 422
    assert where in str(err.value.body) and "must be at least 1s" in str(err.value.body)


def test_status_is_written_only_through_the_subresource_with_a_fresh_resource_version(
    plans: client.CustomObjectsApi, namespace: str
) -> None:
    doc = a_plan(namespace)
    doc["status"] = {"phase": "Succeeded"}
    created: Any = plans.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, doc)
    assert "status" not in created or created["status"].get("phase") != "Succeeded"

    # A write to the main resource does not change status.
    main = copy.deepcopy(created)
    main["status"] = {"phase": "Succeeded"}
    after_main: Any = plans.replace_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "checkout", main
    )
    assert (after_main.get("status") or {}).get("phase") != "Succeeded"

    # Through /status it does, and it does not bump the generation.
    fresh = copy.deepcopy(after_main)
    fresh["status"] = {"phase": "Progressing", "currentStep": 0, "canaryWeight": 10}
    written: Any = plans.replace_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "checkout", fresh
    )
    assert written["status"]["phase"] == "Progressing"
    assert written["metadata"]["generation"] == after_main["metadata"]["generation"]

    # A second writer holding the older resourceVersion gets 409 Conflict.
    stale = copy.deepcopy(after_main)
    stale["status"] = {"phase": "RollingBack"}
    with pytest.raises(client.ApiException) as err:
        plans.replace_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, "checkout", stale
        )
    assert err.value.status == 409
    current: Any = plans.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "checkout")
    assert current["status"]["phase"] == "Progressing"
