"""Every traffic router works as the chart's service account: each one's reads and writes
(HTTPRoute and VirtualService patches, the canary Ingress created, replaced and deleted,
the canary Deployment annotated and scaled) are granted by the chart's rules, per
namespace. The rollout test covers the Gateway API end to end; this covers the others."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.adapters.traffic import router_for
from tests.harness.cluster import CONTROLLER_USER
from tests.harness.fixtures import TestCluster

from .test_chart_harness import chart_rbac, eventually
from .test_traffic_harness import Kube, Provider, provider_params

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize("provider", provider_params())
def test_each_router_moves_traffic_with_the_charts_rights(
    provider: Provider, cluster: TestCluster, namespace: str, tmp_path: Path,
) -> None:
    admin = cluster.api_client()
    sa = cluster.api_client(CONTROLLER_USER)
    try:
        kube = Kube(admin, namespace)
        provider.create(kube)
        plan = kube.create_plan(provider.traffic)
        with chart_rbac(cluster, tmp_path, {"watchNamespaces": [namespace]}):
            router = router_for(plan, sa)

            def observed() -> None:  # the Role is in force
                seen = router.observe()
                assert (seen.weight, seen.reason) == (0, "Observed"), seen
            eventually(observed)

            for weight in (25, 50):  # nginx: the canary Ingress is created, then replaced
                router.apply(weight)
                assert provider.weight(kube) == weight
                assert router.verify(weight)
            assert router.observe().weight == 50
            router.restore()  # nginx: deleted
            assert provider.weight(kube) == 0
            assert router.observe().weight == 0
    finally:
        sa.close()  # type: ignore[no-untyped-call]
        admin.close()  # type: ignore[no-untyped-call]
