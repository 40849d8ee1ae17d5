"""Traffic routers: move requests between the stable and the canary workload.

One module per provider (``gateway_api``, ``istio``, ``nginx``, ``replicas``), a registry
(``router_for``) and a null router. Every router implements ``controller.ports.TrafficRouter``
and reports failures as ``controller.ports.RouterError`` with a CamelCase reason (see
``Reason``); no kubernetes exception leaves this package.
"""

from controller.adapters.traffic._kube import Reason
from controller.adapters.traffic.gateway_api import GatewayAPIRouter
from controller.adapters.traffic.istio import IstioRouter
from controller.adapters.traffic.nginx import NginxRouter, Owner
from controller.adapters.traffic.registry import FACTORIES, NullRouter, router_for
from controller.adapters.traffic.replicas import ReplicaRouter

__all__ = [
    "FACTORIES",
    "GatewayAPIRouter",
    "IstioRouter",
    "NginxRouter",
    "NullRouter",
    "Owner",
    "Reason",
    "ReplicaRouter",
    "router_for",
]
