"""A policy whose freeze names an SLO with a malformed SLI (none or several kinds) gets a
problem at that SLI; validation does not raise.

Found by the reliability suite's bad-input scenario: ``check_policy`` raised ``ValueError:
SLI has no kind`` (from ``SLO.is_threshold``) for an SLO with ``sli: {}`` named by
``errorBudgetPolicy.freezeReleases.slo``; the controller's reconcile of that policy, and of
every plan referring to it, then failed with an unexpected error on every retry, and
``rolloutctl validate`` would have printed a traceback.
"""

from __future__ import annotations

from controller.api.validation import check_policy
from tests.harness.stack import slo_policy


def policy(sli: dict[str, object]) -> dict[str, object]:
    doc = slo_policy("platform", "checkout", "http://prometheus:9090")
    doc["spec"]["slos"][0]["sli"] = sli
    doc["spec"]["errorBudgetPolicy"] = {"freezeReleases": {"slo": "api_availability"}}
    return doc


def test_an_empty_sli_named_by_the_freeze_is_a_problem_not_an_exception() -> None:
    _, problems = check_policy(policy({}))
    assert [str(p) for p in problems] == [
        "spec.slos[0].sli: set exactly one of ratio, latency, throughput, gauge or probe"]


def test_two_sli_kinds_named_by_the_freeze_are_one_problem() -> None:
    _, problems = check_policy(policy({"ratio": {"bad": "a", "total": "b"},
                                       "throughput": {"query": "c", "min": 1}}))
    assert [p.path for p in problems] == ["spec.slos[0].sli"]
