"""Bounds: intervals and holds of 1 s or more, a maximum for every duration (no overflow),
``prometheus.timeout`` at most 60 s, and a cap on every list and string of the CRDs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.api.validation import check_plan, check_policy
from tests.harness import builders as b

ROOT = Path(__file__).resolve().parents[2]

Mutate = Callable[[dict[str, Any]], None]


def problems_of_plan(mutate: Mutate) -> list[str]:
    doc = b.plan_doc()
    mutate(doc)
    plan, problems = check_plan(doc)
    assert plan is None or problems
    return [str(p) for p in problems]


def problems_of_policy(mutate: Mutate) -> list[str]:
    doc = b.policy_doc()
    mutate(doc)
    policy, problems = check_policy(doc)
    assert policy is None or problems
    return [str(p) for p in problems]


def one(problems: list[str], path: str, fragment: str) -> None:
    assert any(p.startswith(f"{path}: ") and fragment in p for p in problems), problems


@pytest.mark.parametrize(("mutate", "path"), [
    (lambda d: d["spec"]["steps"].__setitem__(0, {"weight": 10, "hold": "1ms"}),
     "spec.steps[0].hold"),
    (lambda d: d["spec"]["analysis"].__setitem__("interval", "500ms"),
     "spec.analysis.interval"),
    (lambda d: d["spec"].__setitem__("gates", [
        {"probe": {"url": "http://checkout-canary/health", "interval": "10ms"}}]),
     "spec.gates[0].probe.interval"),
])
def test_an_interval_or_hold_under_a_second_is_refused(mutate: Mutate, path: str) -> None:
    one(problems_of_plan(mutate), path, "is too short: at least 1s")


def test_a_probe_sli_interval_under_a_second_is_refused() -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["spec"]["slos"][0]["sli"] = {"probe": {"url": "http://x/health", "interval": "1ms"}}

    problems = problems_of_policy(mutate)
    assert any("probe.interval" in p and "at least 1s" in p for p in problems), problems


def test_one_second_and_a_thousand_milliseconds_are_accepted() -> None:
    doc = b.plan_doc()
    doc["spec"]["steps"][0]["hold"] = "1000ms"
    doc["spec"]["analysis"]["interval"] = "1s"
    plan, problems = check_plan(doc)
    assert plan is not None and not problems


def test_a_huge_duration_is_a_message_not_an_overflow() -> None:
    problems = problems_of_plan(
        lambda d: d["spec"]["analysis"].__setitem__("noDataTimeout", "99999999999d"))
    one(problems, "spec.analysis.noDataTimeout", "too long: at most 400d")
    problems = problems_of_plan(
        lambda d: d["spec"]["steps"].__setitem__(0, {"weight": 10, "hold": "9" * 40 + "s"}))
    one(problems, "spec.steps[0].hold", "longer than 32 characters")


def test_prometheus_timeout_is_at_most_a_minute() -> None:
    problems = problems_of_policy(
        lambda d: d["spec"].__setitem__("prometheus", {"url": "http://p:9090", "timeout": "61s"}))
    one(problems, "spec.prometheus.timeout", "too long: at most 1m")
    doc = b.policy_doc()
    doc["spec"]["prometheus"] = {"url": "http://p:9090", "timeout": "60s"}
    policy, problems = check_policy(doc)
    assert policy is not None and not problems


def test_lists_are_capped() -> None:
    email = {"to": [f"a{i}@example.com" for i in range(51)], "from": "r@example.com",
             "smtp": {"host": "smtp.example.com", "port": 587}}
    problems = problems_of_plan(lambda d: d["spec"].__setitem__("notifications",
                                                                {"email": email}))
    assert any("email.to" in p and "at most 50" in p for p in problems), problems

    def alerts(d: dict[str, Any]) -> None:
        d["spec"]["slos"][0]["burnRateAlerts"] = [
            {"long": "1h", "short": "5m", "factor": 14.4, "severity": "page"}] * 9

    problems = problems_of_policy(alerts)
    assert any("burnRateAlerts" in p and "at most 8" in p for p in problems), problems

    def overrides(d: dict[str, Any]) -> None:
        d["spec"]["overrides"] = [{"allow": [f"p{i}" for i in range(101)], "reason": "x",
                                   "expires": "2030-01-01T00:00:00Z"}]

    problems = problems_of_policy(overrides)
    assert any("allow" in p and "at most 100" in p for p in problems), problems


def _unbounded(schema: dict[str, Any], path: str) -> Iterator[str]:
    kind = schema.get("type")
    if kind == "array" and "maxItems" not in schema:
        yield f"{path}: no maxItems"
    if schema.get("x-kubernetes-int-or-string") and "maxLength" not in schema:
        yield f"{path}: no maxLength"
    if kind == "string" and not ({"maxLength", "enum", "format"} & schema.keys()):
        yield f"{path}: no maxLength"
    for name, sub in (schema.get("properties") or {}).items():
        yield from _unbounded(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _unbounded(schema["items"], f"{path}[]")


@pytest.mark.parametrize("crd", ["rolloutplans", "slopolicies"])
def test_every_list_and_string_of_a_spec_has_a_cap_in_the_crd(crd: str) -> None:
    doc = yaml.safe_load((ROOT / f"manifests/crds/{crd}.rolloutctl.dev.yaml").read_text())
    found = []
    for version in doc["spec"]["versions"]:
        spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        found += list(_unbounded(spec, "spec"))
    assert found == []
