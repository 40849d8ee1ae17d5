"""`rolloutctl validate`: one line per problem, naming the file, the field and the fix."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from controller.api.validation import check_plan, check_plan_against_policy, check_policy
from controller.cli.main import app
from tests.harness import builders as b

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def write(tmp_path: Path, name: str, doc: object) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_shipped_policies_are_valid() -> None:
    files = sorted(str(p) for p in (REPO / "policies").glob("*.yaml"))
    assert len(files) >= 2
    result = runner.invoke(app, ["validate", *files])
    assert result.exit_code == 0, result.output


def test_default_policy_has_the_eleven_platform_slos() -> None:
    doc = yaml.safe_load((REPO / "policies" / "platform-slos.yaml").read_text())
    names = [s["name"] for s in doc["spec"]["slos"]]
    assert names == [
        "api_availability", "auth_latency", "agent_selection_speed", "workflow_success_rate",
        "task_throughput", "database_query_performance", "error_rate", "git_hook_performance",
        "memory_usage", "cicd_success_rate", "bdd_test_pass_rate",
    ]
    freeze = doc["spec"]["errorBudgetPolicy"]["freezeReleases"]
    assert (freeze["slo"], freeze["whenRemainingBelow"], freeze["releaseAbove"]) == (
        "api_availability", "10%", "15%")


def test_out_of_order_weights_name_the_step(tmp_path: Path) -> None:
    doc = b.plan_doc(steps=[(10, "5m"), (50, "5m"), (25, "5m"), (100, "5m")])
    path = write(tmp_path, "plan.yaml", doc)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert (f"{path}: spec.steps[2].weight: must be greater than the previous step's "
            "weight (50)") in result.output.splitlines()


def test_two_routers_name_spec_traffic(tmp_path: Path) -> None:
    doc = b.plan_doc()
    doc["spec"]["traffic"]["istio"] = {"virtualService": "v", "route": "primary",
                                       "stableHost": "a", "canaryHost": "b"}
    path = write(tmp_path, "plan.yaml", doc)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert f"{path}: spec.traffic: set exactly one router" in result.output


def test_bad_duration_names_its_field(tmp_path: Path) -> None:
    doc = b.plan_doc()
    doc["spec"]["analysis"]["rollbackAfter"] = "5x"
    path = write(tmp_path, "plan.yaml", doc)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    line = result.output.splitlines()[0]
    assert line.startswith(f"{path}: spec.analysis.rollbackAfter: invalid duration '5x'")
    assert "90s, 5m, 24h or 30d" in line


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"),
    [
        (lambda d: d["spec"]["steps"].__setitem__(0, {"weight": 0, "hold": "1m"}),
         "spec.steps[0].weight", "set weight (1-100"),
        (lambda d: d["spec"]["steps"].__setitem__(-1, {"weight": 150, "hold": "1m"}),
         "spec.steps[3].weight", "less than or equal to 100"),
        (lambda d: d["spec"]["steps"].__setitem__(-1, {"weight": 90, "hold": "1m"}),
         "spec.steps[3].weight", "last step must send 100"),
        (lambda d: d["spec"]["steps"].__setitem__(1, {"weight": 25, "hold": "0s"}),
         "spec.steps[1].hold", "at least 1s"),
        (lambda d: d["spec"].__setitem__("traffic", {}), "spec.traffic", "found none"),
        (lambda d: d["spec"].__setitem__("colour", "blue"), "spec.colour", "unknown field"),
        (lambda d: d["spec"]["analysis"].__setitem__("onNoData", "panic"),
         "spec.analysis.onNoData", "'hold', 'pause', 'rollback'"),
        (lambda d: d["spec"]["gates"].append({"slo": "x", "probe": {"url": "http://a"}}),
         "spec.gates[1]", "exactly one of slo, canaryVsStable or probe"),
        (lambda d: d["spec"]["target"]["canary"].__setitem__("name", "Checkout_Canary"),
         "spec.target.canary.name", "lowercase name"),
        (lambda d: d["spec"].__setitem__("service", 'a"} or vector(1)'),
         "spec.service", "label value"),
    ],
)
def test_plan_problems_name_field_and_fix(mutate, path, fragment) -> None:  # type: ignore[no-untyped-def]
    doc = b.plan_doc()
    mutate(doc)
    _, problems = check_plan(doc)
    assert any(p.path == path and fragment in p.message for p in problems), problems


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"),
    [
        (lambda d: d["spec"]["slos"][0].__setitem__("objective", 100),
         "spec.slos[0].objective", "less than 100"),
        (lambda d: d["spec"]["slos"][0].__setitem__("objective", 0),
         "spec.slos[0].objective", "greater than 0"),
        (lambda d: d["spec"]["slos"][0]["burnRateAlerts"][0].__setitem__("short", "2h"),
         "spec.slos[0].burnRateAlerts[0].short", "shorter than long (1h)"),
        (lambda d: d["spec"]["slos"][0]["sli"]["ratio"].__setitem__(
            "bad", "sum(rate(x{pod=\"{{pod}}\"}[{{window}}]))"),
         "spec.slos[0].sli.ratio.bad", "unknown template variable {{pod}}"),
        (lambda d: d["spec"]["slos"][0]["sli"].__setitem__("gauge", {"query": "x", "max": 1}),
         "spec.slos[0].sli", "exactly one of ratio"),
        (lambda d: d["spec"]["slos"][1].pop("objective"),
         "spec.slos[1].objective", "required for a latency SLI"),
        (lambda d: d["spec"]["errorBudgetPolicy"]["freezeReleases"].__setitem__("slo", "nope"),
         "spec.errorBudgetPolicy.freezeReleases.slo", "not in spec.slos"),
        (lambda d: d["spec"]["errorBudgetPolicy"]["freezeReleases"].update(
            {"whenRemainingBelow": "20%", "releaseAbove": "15%"}),
         "spec.errorBudgetPolicy.freezeReleases.releaseAbove", "at least whenRemainingBelow"),
    ],
)
def test_policy_problems_name_field_and_fix(mutate, path, fragment) -> None:  # type: ignore[no-untyped-def]
    doc = copy.deepcopy(b.policy_doc())
    mutate(doc)
    _, problems = check_policy(doc)
    assert any(p.path == path and fragment in p.message for p in problems), problems


def test_gate_slo_must_exist_in_the_policy(tmp_path: Path) -> None:
    plan_doc = b.plan_doc(gates=[{"slo": "api_availability"}, {"slo": "checkout_speed"}])
    plan, problems = check_plan(plan_doc)
    assert plan is not None and not problems
    cross = check_plan_against_policy(plan, b.policy())
    assert [str(p) for p in cross] == [
        "spec.gates[1].slo: SLO 'checkout_speed' is not in SLOPolicy 'platform' "
        "(it has: api_availability, auth_latency, task_throughput)"]
    # The CLI checks plans against the policies given with them.
    files = [write(tmp_path, "plan.yaml", plan_doc), write(tmp_path, "pol.yaml", b.policy_doc())]
    result = runner.invoke(app, ["validate", *map(str, files)])
    assert result.exit_code == 1 and "spec.gates[1].slo" in result.output


def test_unreadable_and_foreign_documents(tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("spec: [unclosed\n")
    other = write(tmp_path, "cm.yaml", {"apiVersion": "v1", "kind": "ConfigMap"})
    result = runner.invoke(app, ["validate", str(bad_yaml), str(other), str(tmp_path / "no")])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any(line.startswith(f"{bad_yaml}: not valid YAML") for line in lines)
    assert f"{other}: apiVersion: must be rolloutctl.dev/v1alpha1 (it is 'v1')" in lines
    assert any("cannot read" in line for line in lines)


@pytest.mark.parametrize("value", ["shop\n", 'a"} or vector(1) #', "a b", "x" * 64, ""])
def test_template_values_that_could_inject_are_refused(value: str) -> None:
    from controller.api import templates

    if value == "":
        assert templates.render("{{service}}", {"service": value}) == ""
        return
    with pytest.raises(templates.TemplateError):
        templates.render('up{service="{{service}}"}', {"service": value})
    with pytest.raises(templates.TemplateError):
        templates.render("rate(x[{{window}}])", {"window": "5m\n"})


def test_a_null_field_is_dropped_as_the_api_server_does() -> None:
    doc = b.plan_doc()
    doc["spec"]["paused"] = None
    doc["spec"]["analysis"]["window"] = None
    plan, problems = check_plan(doc)
    assert problems == [] and plan is not None
    assert plan.spec.paused is False and plan.spec.analysis.window.text == "5m"
