"""Invalid plans and policies are rejected with a message naming the field that is wrong.

Each document starts valid (the generators of valid documents are checked too, so the
mutation is what breaks it) and gets exactly one mutation: out-of-range or non-increasing
weights, bad durations, unknown fields, zero or two routers, missing fields, wrong types,
bad names, objectives out of range, short >= long windows, unknown template variables,
label injections... Validation must return problems, one of which names the broken field
(``spec.steps[2].weight``), and never raise. The reliability suite (``python -m
bench.reliability --only badinput``) runs 10,000 of them, and a sample through the API
server and the controller.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from controller.api.validation import check_plan, check_plan_against_policy, check_policy
from controller.api.validation import parse_policy as parse
from tests.harness.chaos import (
    CONTROL_POLICY,
    BadInput,
    invalid_plans,
    invalid_policies,
    names_field,
    valid_plans,
    valid_policies,
    validate,
)

POLICY = parse(CONTROL_POLICY)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_rejected_naming_the_field(bad: BadInput) -> None:
    problems = validate(bad, POLICY)
    assert problems, f"{bad.mutation} at {bad.path} was accepted: {bad.doc}"
    paths = [p.path for p in problems]
    assert names_field(paths, bad.path) == "exact", (
        f"{bad.mutation} at {bad.path}: the problems name {[str(p) for p in problems]}")
    assert all(p.path for p in problems), problems  # every problem names a field


@FAST
@given(valid_plans())
def test_the_plans_mutated_are_valid_to_begin_with(doc: dict[str, object]) -> None:
    plan, problems = check_plan(doc)
    assert plan is not None and problems == []
    assert check_plan_against_policy(plan, POLICY) == []


@FAST
@given(valid_policies())
def test_the_policies_mutated_are_valid_to_begin_with(doc: dict[str, object]) -> None:
    assert check_policy(doc)[1] == []


@FAST
@given(invalid_plans())
def test_an_invalid_plan_is_rejected_naming_the_field(bad: BadInput) -> None:
    assert_rejected_naming_the_field(bad)


@FAST
@given(invalid_policies())
def test_an_invalid_policy_is_rejected_naming_the_field(bad: BadInput) -> None:
    assert_rejected_naming_the_field(bad)


def test_messages_name_the_field_and_say_what_is_wrong() -> None:
    doc = {"apiVersion": "rolloutctl.dev/v1alpha1", "kind": "RolloutPlan",
           "metadata": {"name": "checkout"},
           "spec": {"target": {"stable": {"name": "checkout"},
                               "canary": {"name": "checkout-canary"}},
                    "traffic": {"gatewayAPI": {"httpRoute": "checkout",
                                               "stableBackend": "checkout",
                                               "canaryBackend": "checkout-canary"}},
                    "steps": [{"weight": 10, "hold": "5m"}, {"weight": 50, "hold": "5m"},
                              {"weight": 25, "hold": "5m"}, {"weight": 100, "hold": "5m"}]}}
    assert [str(p) for p in check_plan(doc)[1]] == [
        "spec.steps[2].weight: must be greater than the previous step's weight (50)"]
