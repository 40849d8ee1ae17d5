"""Wire models of RolloutPlan and SLOPolicy, their validation and their CRDs."""

from controller.api.plan import RolloutPlan, RolloutPlanSpec, RolloutPlanStatus
from controller.api.policy import SLOPolicy, SLOPolicySpec, SLOPolicyStatus
from controller.api.types import API_VERSION, GROUP, VERSION, Duration, Percent
from controller.api.validation import InvalidSpec, Problem, parse_plan, parse_policy

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "Duration",
    "InvalidSpec",
    "Percent",
    "Problem",
    "RolloutPlan",
    "RolloutPlanSpec",
    "RolloutPlanStatus",
    "SLOPolicy",
    "SLOPolicySpec",
    "SLOPolicyStatus",
    "parse_plan",
    "parse_policy",
]
