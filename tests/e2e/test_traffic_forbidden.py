"""A controller without the RBAC rights a router needs gets RouterError("Forbidden") naming
the verb and the object, never a kubernetes exception."""

from __future__ import annotations

import pytest

from controller.adapters.traffic import router_for
from controller.ports import RouterError
from tests.harness.cluster import RBAC_USER
from tests.harness.fixtures import TestCluster

from .test_traffic_harness import Kube, Provider, provider_params

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize("provider", provider_params())
def test_missing_rights_are_reported_as_forbidden(
    provider: Provider, cluster: TestCluster, namespace: str,
) -> None:
    admin = cluster.api_client()
    powerless = cluster.api_client(RBAC_USER)  # no RoleBinding in this namespace
    try:
        kube = Kube(admin, namespace)
        provider.create(kube)
        plan = kube.create_plan(provider.traffic)
        router = router_for(plan, powerless)
        with pytest.raises(RouterError) as err:
            router.apply(10)
        assert err.value.reason == "Forbidden"
        assert "rolloutctl may not read" in err.value.message
        assert f"in namespace {namespace}" in err.value.message
        observed = router.observe()
        assert (observed.weight, observed.reason) == (None, "Forbidden")
    finally:
        powerless.close()  # type: ignore[no-untyped-call]
        admin.close()  # type: ignore[no-untyped-call]
