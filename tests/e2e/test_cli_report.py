"""`rolloutctl report` on a plan the real controller took through a run with a drill: the
Markdown lists the weights, the gate values measured on live Prometheus, the decisions, the
budget the policy measured and the drill; the HTML draws the weights as an inline SVG."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.fixtures import TestCluster
from tests.harness.stack import Stack

from .test_cli_harness import explain, plan_at_25, rolloutctl, running_stack

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.slow]


@pytest.fixture
def stack(cluster: TestCluster, namespace: str, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(cluster, namespace, tmp_path / "stack") as s:
        yield s


def section(text: str, title: str) -> str:
    return text.split(f"## {title}")[1].split("\n## ")[0]


def test_report_of_a_run_with_a_drill(stack: Stack) -> None:
    plan_at_25(stack)
    done = rolloutctl(stack, "drill", "checkout", "--restore")
    assert done.returncode == 0, explain(stack, done)
    stack.wait_for(lambda: stack.status()["gates"][0].get("evaluatedAt"), 60,
                   "the gates measured again after the drill")
    done = rolloutctl(stack, "promote", "checkout", "--full", "--wait")
    assert done.returncode == 0, explain(stack, done)
    stack.wait_for(lambda: stack.status()["phase"] == "Succeeded", 90, "Succeeded")
    stack.wait_for(lambda: (stack.policy_status().get("slos") or [{}])[0].get(
        "budgetRemaining") is not None, 60, "the policy's budget")
    status = stack.status()
    drill = status["drills"][-1]

    md = rolloutctl(stack, "report", "checkout")
    assert md.returncode == 0, explain(stack, md)
    text = md.stdout
    assert text.startswith(f"# Rollout report: {stack.namespace}/checkout")
    assert "- **phase**: Succeeded" in text
    weights = re.findall(r"\| (\d+)% \|", section(text, "Timeline of the canary weight"))
    expected = [str(d["weight"]) for d in status["decisions"]] + ["0"]
    assert weights == expected and "25" in weights and weights[-1] == "0"
    gates = section(text, "Timeline of the gate values")
    evaluated = [(g, g.get("evaluatedAt") or r["endedAt"]) for r in status["history"]
                 for g in r["evidence"] if g.get("value") is not None]
    evaluated += [(g, g["evaluatedAt"]) for g in status["gates"] if g.get("evaluatedAt")]
    assert evaluated, json.dumps({"gates": status["gates"], "history": status["history"]})
    for g, when in evaluated:  # each value the status holds, at its time, vs the objective
        at = f"{when[:10]} {when[11:19]}Z"
        assert f"| api_availability | {at} | {g['value']:g} | 99 | {g['verdict']} |" in gates
    decisions = section(text, "Decisions")
    for kind in ("RunStarted", "StepAdvanced", "DrillStarted", "DrillCompleted",
                 "PromotedFull", "Succeeded"):
        assert f"| {kind} |" in decisions, kind
    runs = section(text, "Runs")
    assert "| 1 |" in runs and "| Succeeded |" in runs
    budget = section(text, "Error budget used")
    left = stack.policy_status()["slos"][0]["budgetRemaining"]
    assert re.search(r"\| api_availability \| 99% \| 1h \| -?\d+\.\d\d% \| -?\d+\.\d\d% \|",
                     budget), (budget, left)
    drills = section(text, "Drills")
    assert f"| {drill['id']} | admin |" in drills and "| mid-run | Succeeded |" in drills

    html = rolloutctl(stack, "report", "checkout", "-o", "html")
    assert html.returncode == 0, explain(stack, html)
    assert html.stdout.startswith("<!DOCTYPE html>") and "<script" not in html.stdout
    svg = ET.fromstring(re.search(r"<svg .*?</svg>", html.stdout, re.S).group(0))  # type: ignore[union-attr]
    path = svg.find("{http://www.w3.org/2000/svg}path")
    assert path is not None
    ys = [float(v) for v in re.findall(r"V([\d.]+)", path.attrib["d"])]
    assert [str(round(100 * (1 - (y - 20) / 200))) for y in ys] == expected[1:]
