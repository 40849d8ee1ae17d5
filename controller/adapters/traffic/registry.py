"""Which router a plan gets: one factory per ``RouterKind``, and the null router.

``router_for(plan, api)`` is the only place that looks at which router a plan names; the
rest of the controller talks to the ``TrafficRouter`` it returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from kubernetes.client import ApiClient

from controller.adapters.traffic._kube import Reason, check_weight
from controller.adapters.traffic.gateway_api import GatewayAPIRouter
from controller.adapters.traffic.istio import IstioRouter
from controller.adapters.traffic.nginx import NginxRouter, Owner
from controller.adapters.traffic.replicas import ReplicaRouter
from controller.api.plan import RolloutPlan, RouterKind
from controller.ports import RouterError, RouterObservation, TrafficRouter


class NullRouter:
    """A router with nothing to route: the weight is whatever it was last told.

    For plans whose traffic is moved by something outside the controller, and for tests.
    Starts at ``weight`` (the registry passes the plan's ``status.canaryWeight``, so a
    restarted controller observes what it had set).
    """

    def __init__(self, weight: int = 0, mirror: int = 0, match: bool = False) -> None:
        check_weight(weight)
        self.weight = weight
        self.mirror = mirror
        self.match = match

    def observe(self) -> RouterObservation:
        return RouterObservation(weight=self.weight, mirror=self.mirror, match=self.match,
                                 message="no traffic router configured")

    def apply(self, weight: int, *, mirror: int = 0, match: bool = False) -> int:
        check_weight(weight)
        self.weight, self.mirror, self.match = weight, mirror, match
        return weight

    def verify(self, weight: int, *, mirror: int = 0, match: bool = False) -> bool:
        return (self.weight, self.mirror, self.match) == (weight, mirror, match)

    def restore(self) -> None:
        self.weight, self.mirror, self.match = 0, 0, False


Factory: TypeAlias = Callable[[RolloutPlan, ApiClient, str], TrafficRouter]


def _gateway_api(plan: RolloutPlan, api: ApiClient, field_manager: str) -> TrafficRouter:
    assert plan.spec.traffic.gateway_api is not None
    return GatewayAPIRouter(api, plan.metadata.namespace, plan.spec.traffic.gateway_api,
                            matches=plan.spec.traffic.match, field_manager=field_manager)


def _istio(plan: RolloutPlan, api: ApiClient, field_manager: str) -> TrafficRouter:
    assert plan.spec.traffic.istio is not None
    return IstioRouter(api, plan.metadata.namespace, plan.spec.traffic.istio,
                       matches=plan.spec.traffic.match, field_manager=field_manager)


def _nginx(plan: RolloutPlan, api: ApiClient, field_manager: str) -> TrafficRouter:
    assert plan.spec.traffic.nginx is not None
    if not plan.metadata.uid:
        raise RouterError(
            Reason.INVALID_SPEC,
            f"RolloutPlan {plan.key} has no metadata.uid: the nginx router owns the canary "
            "Ingress through the plan's uid, so pass the plan as read from the API server",
        )
    owner = Owner(api_version=plan.api_version, kind=plan.kind, name=plan.metadata.name,
                  uid=plan.metadata.uid)
    return NginxRouter(api, plan.metadata.namespace, plan.spec.traffic.nginx, owner,
                       matches=plan.spec.traffic.match, field_manager=field_manager)


def _replicas(plan: RolloutPlan, api: ApiClient, field_manager: str) -> TrafficRouter:
    assert plan.spec.traffic.replicas is not None
    return ReplicaRouter(api, plan.metadata.namespace, plan.spec.target,
                         plan.spec.traffic.replicas, field_manager=field_manager)


FACTORIES: dict[RouterKind, Factory] = {
    RouterKind.GATEWAY_API: _gateway_api,
    RouterKind.ISTIO: _istio,
    RouterKind.NGINX: _nginx,
    RouterKind.REPLICAS: _replicas,
}


def router_for(plan: RolloutPlan, api: ApiClient, *,
               field_manager: str = "rolloutctl") -> TrafficRouter:
    """The router named by ``plan.spec.traffic``; a ``NullRouter`` when it names none.

    Raises ``RouterError("InvalidSpec")`` when it names several (the CRD forbids that) or
    when the router cannot be built from the plan.
    """
    kinds = plan.spec.traffic.routers()
    if not kinds:
        st = plan.status
        return NullRouter(st.canary_weight, st.canary_mirror or 0,
                          bool(plan.spec.traffic.match)
                          and (st.canary_weight > 0 or bool(st.canary_mirror)))
    if len(kinds) > 1:
        raise RouterError(
            Reason.INVALID_SPEC,
            f"RolloutPlan {plan.key} names {len(kinds)} traffic routers "
            f"({', '.join(k.value for k in kinds)}): set exactly one in spec.traffic",
        )
    return FACTORIES[kinds[0]](plan, api, field_manager)
