"""The release-freeze ValidatingAdmissionPolicy with a policy guarding several services, on
the real API server: while ``status.frozenServices`` names ``cart`` only, the Deployments of
cart (``status.frozenDeployments``) are held and checkout's are not; a Deployment outside
any plan counts for the service of its ``rolloutctl.dev/service`` label (default its
name). A status without ``frozenServices`` (one service) still holds every labelled
Deployment (tests/e2e/test_admission_release_freeze.py)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from .test_admission_release_freeze import MERGE, Freeze, T, deployment
from .test_admission_release_freeze import freeze as freeze  # the fixture
from .test_chart_harness import eventually

pytestmark = pytest.mark.cluster

TARGET = {"rolloutctl.dev/target": "true"}


def set_status(f: Freeze, status: dict[str, Any]) -> None:
    client.CustomObjectsApi(f.admin).patch_namespaced_custom_object_status(
        "rolloutctl.dev", "v1alpha1", f.namespace, "slopolicies", "platform",
        {"status": status}, _content_type=MERGE, _request_timeout=T)


def test_only_the_frozen_services_deployments_are_held(freeze: Freeze) -> None:
    for name, labels in (("cart", TARGET), ("cart-canary", TARGET),
                         ("checkout-api", {**TARGET, "rolloutctl.dev/service": "checkout"})):
        freeze.apps.create_namespaced_deployment(freeze.namespace, deployment(name, labels),
                                                 _request_timeout=T)
    set_status(freeze, {"frozen": True, "reason": "BudgetBelowThreshold",
                        "frozenServices": ["cart"],
                        "frozenDeployments": ["cart", "cart-canary"]})

    def checkout_open() -> None:
        assert freeze.release("checkout", "v2", dry_run=True) == (200, "")
    eventually(checkout_open, timeout=30)
    assert freeze.release("checkout", "v2") == (200, "")
    assert freeze.release("checkout-api", "v2") == (200, "")  # its service: checkout
    for name in ("cart", "cart-canary"):
        status, message = freeze.release(name, "v2")
        assert status == 403, (name, message)
        assert "frozen by SLOPolicy platform (BudgetBelowThreshold)" in message
    assert freeze.image("cart") == "v1"

    # checkout freezes (no plan lists its Deployments): by name, and by the service label
    set_status(freeze, {"frozenServices": ["checkout"], "frozenDeployments": []})

    def checkout_held() -> None:
        assert freeze.release("checkout", "v3", dry_run=True)[0] == 403
    eventually(checkout_held, timeout=30)
    assert freeze.release("checkout-api", "v3")[0] == 403
    assert freeze.release("cart", "v3") == (200, "")
    assert (freeze.image("checkout"), freeze.image("checkout-api"), freeze.image("cart")) == (
        "v2", "v2", "v3")
