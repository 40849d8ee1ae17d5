"""The controller's RBAC: the one table of the API calls it makes, nothing more.

The Helm chart grants these rules (``helm/rolloutctl/templates/_helpers.tpl``,
``rolloutctl.rules``, and ``leader-election-rbac.yaml``: Helm cannot read Python, so it
keeps literal YAML, and ``tests/unit/test_chart_rbac_rules.py`` asserts the rendered chart
grants exactly this table); ``rolloutctl doctor`` checks the controller's ServiceAccount
against it. The calls are those of ``controller/adapters``: the informers, ObjectStore, the
notify store, Workloads, the traffic routers, EventRecorder and KubeLeaseStore; the
end-to-end tests (``tests/e2e/test_rbac_*.py``) prove on the real API server that these
rules are enough for a rollout.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from controller.api.plan import RouterKind
from controller.api.types import GROUP

__all__ = ["LEASE_BY_NAME", "LEASE_CREATE", "NAMESPACED", "SECRETS", "Rule", "namespaced"]


@dataclass(frozen=True, slots=True)
class Rule:
    """VERBS on RESOURCE (``plural`` or ``plural/subresource``) of API GROUP ("" = core)."""

    group: str
    resource: str
    verbs: tuple[str, ...]
    # only plans with this router need it (the chart's trafficRouters.<router> switches it)
    router: RouterKind | None = None

    @property
    def plural(self) -> str:
        return self.resource.split("/", 1)[0]

    @property
    def subresource(self) -> str | None:
        return self.resource.split("/", 1)[1] if "/" in self.resource else None


_PLANS = GROUP

#: in each watched namespace (a ClusterRole when every namespace is watched)
NAMESPACED: tuple[Rule, ...] = (
    # RolloutPlans and SLOPolicies: informers (list, watch) and fresh reads (get)
    Rule(_PLANS, "rolloutplans", ("get", "list", "watch")),
    Rule(_PLANS, "slopolicies", ("get", "list", "watch")),
    # their status: the reconcilers' whole-status writes (update), delivery state (patch)
    Rule(_PLANS, "rolloutplans/status", ("update", "patch")),
    Rule(_PLANS, "slopolicies/status", ("update", "patch")),
    # the stable and canary Deployments: informer, fresh reads, promotion, the replica
    # router's weight annotation; scaling the canary
    Rule("apps", "deployments", ("get", "list", "watch", "patch")),
    Rule("apps", "deployments/scale", ("patch",)),
    # why a Deployment is not ready: its pods, listed only while it is not
    Rule("", "pods", ("list",)),
    # the controller never writes replicas an HPA owns
    Rule("autoscaling", "horizontalpodautoscalers", ("list",)),
    # Events on plans and policies
    Rule("", "events", ("create",)),
    # the routers: read the route, patch its weights (NGINX: its own canary Ingress)
    Rule("gateway.networking.k8s.io", "httproutes", ("get", "patch"), RouterKind.GATEWAY_API),
    Rule("networking.istio.io", "virtualservices", ("get", "patch"), RouterKind.ISTIO),
    Rule("networking.k8s.io", "ingresses", ("get", "create", "update", "delete"),
         RouterKind.NGINX),
)

#: the Slack, SMTP and incident Secrets, by name only (the chart's notifications.secretNames)
SECRETS = Rule("", "secrets", ("get",))

#: the leader-election Lease, in the controller's namespace: create cannot be limited by
#: name; then read, watch and renew it by name
LEASE_CREATE = Rule("coordination.k8s.io", "leases", ("create",))
LEASE_BY_NAME = Rule("coordination.k8s.io", "leases", ("get", "watch", "patch"))


def namespaced(routers: Iterable[RouterKind] | None = None) -> list[Rule]:
    """The rules of a watched namespace whose plans use ROUTERS (None: every router)."""
    wanted = None if routers is None else set(routers)
    return [r for r in NAMESPACED
            if r.router is None or wanted is None or r.router in wanted]
