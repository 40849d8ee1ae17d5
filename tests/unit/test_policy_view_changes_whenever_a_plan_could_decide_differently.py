"""An SLOPolicy update wakes its plans only when what they read of it changed.

Every evaluation of a policy rewrites its status (the time, every SLO's budget and burn
rates, the budget figure in its message), and each of those writes used to queue every plan
of the policy: at 1,000 plans, 1,000 extra passes a minute in bursts of a policy's plans.
``plan_facing_state`` is what a plan's pass reads of its policy (``freeze_input``); the
manager queues the plans only when it changed. The contract, checked over every
combination of a small domain: two policy states with the same plan-facing state give
every plan the same freeze input at every time (so skipping the update loses nothing), and
the figures an evaluation rewrites do not change it (so skipping happens).
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.api.policy import SLOPolicy
from controller.engine.freeze import freeze_input, plan_facing_state
from controller.reconciler import policy_view
from tests.harness.builders import T0, policy_doc

TIMES = [None, T0, T0 + timedelta(minutes=1)]
NOWS = [T0 - timedelta(minutes=1), T0 + timedelta(seconds=30), T0 + timedelta(minutes=2)]
PLANS = ["checkout", "payments"]

statuses = st.fixed_dictionaries({
    "evaluatedAt": st.sampled_from(TIMES),
    "frozen": st.booleans(),
    "reason": st.sampled_from(["", "BudgetBelowThreshold", "BudgetUnknown"]),
    "message": st.sampled_from(["", "7.0% of the budget left", "70.0% of the budget left"]),
    "budgetRemaining": st.sampled_from([None, 7.0, 70.0]),
    "frozenSince": st.sampled_from(TIMES),
    "seq": st.integers(0, 2),
    "freezeAnnounced": st.booleans(),
    "overrides": st.lists(st.fixed_dictionaries({
        "id": st.sampled_from(["o1", "o2"]),
        "reason": st.just("incident fix"),
        "until": st.sampled_from(TIMES[1:]),
        "allow": st.sampled_from([[], ["checkout"]]),
        "active": st.booleans(),
    }), max_size=1),
})


def policy(status: dict[str, Any], generation: int = 1,
           spec_overrides: list[dict[str, Any]] | None = None) -> SLOPolicy:
    doc = policy_doc()
    doc["metadata"]["generation"] = generation
    if spec_overrides:
        doc["spec"]["overrides"] = spec_overrides
    doc["status"] = {k: (v.isoformat() if hasattr(v, "isoformat") else v)
                     for k, v in status.items() if v is not None and k != "overrides"}
    doc["status"]["overrides"] = [{**o, "until": o["until"].isoformat()}
                                  for o in status.get("overrides", [])]
    return SLOPolicy.model_validate(doc)


@settings(max_examples=400, deadline=None)
@given(statuses, statuses)
def test_equal_plan_facing_states_give_every_plan_the_same_freeze_input(
    a: dict[str, Any], b: dict[str, Any]
) -> None:
    pa, pb = policy(a), policy(b)
    if plan_facing_state(pa) != plan_facing_state(pb):
        return
    for plan, now in itertools.product(PLANS, NOWS):
        assert freeze_input(pa, plan, now) == freeze_input(pb, plan, now), (a, b, plan, now)


@settings(max_examples=200, deadline=None)
@given(statuses, st.sampled_from([3.0, 55.5, None]), st.integers(3, 9))
def test_an_evaluation_rewriting_only_its_figures_leaves_the_state_unfrozen_alike(
    a: dict[str, Any], budget: float | None, seq: int
) -> None:
    if a["frozen"]:
        return
    rewritten = {**a, "budgetRemaining": budget, "message": f"{budget}% of the budget left",
                 "seq": seq, "evaluatedAt": None if a["evaluatedAt"] is None else
                 T0 + timedelta(minutes=seq)}
    assert plan_facing_state(policy(a)) == plan_facing_state(policy(rewritten))


def test_what_plans_must_see_changes_the_state() -> None:
    base = {"evaluatedAt": T0, "frozen": False, "budgetRemaining": 70.0}
    state = plan_facing_state(policy(base))
    frozen = {**base, "frozen": True, "reason": "BudgetBelowThreshold", "budgetRemaining": 7.0}
    assert plan_facing_state(policy(frozen)) != state
    assert plan_facing_state(policy({**frozen, "budgetRemaining": 6.0})) != plan_facing_state(
        policy(frozen))  # a frozen plan shows the budget figure
    assert plan_facing_state(policy({**base, "evaluatedAt": None})) != state
    assert plan_facing_state(policy(base, generation=2)) != state  # the spec changed
    override = {"id": "o1", "reason": "r", "until": T0 + timedelta(hours=1), "allow": []}
    assert plan_facing_state(policy({**base, "overrides": [override]})) != state


def test_the_managers_view_of_a_document_is_the_plan_facing_state() -> None:
    doc = policy_doc()
    doc["status"] = {"evaluatedAt": T0.isoformat(), "frozen": False, "budgetRemaining": 70.0}
    assert policy_view(doc) == plan_facing_state(SLOPolicy.model_validate(doc))
    broken = {**doc, "spec": {"slos": "not a list"}}
    assert policy_view(broken) != policy_view(broken)  # unparseable: always news
