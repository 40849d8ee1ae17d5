"""`rolloutctl report --policy` against a real Prometheus holding a week of backfilled history
and the real API server holding the policy and its plan (their status as the controller
keeps it): the compliance, budget and burn figures a user reads agree with the history's
ground truth, freezes and release figures come from status, and `--send`/`--mail-to` deliver
the report to a real SMTP server (aiosmtpd) through the policy's e-mail settings."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.harness.fixtures import BackfilledFactory, TestCluster
from tests.harness.smtp_stub import SmtpServer
from tests.harness.stack import BAD, TOTAL, rolloutctl_binary
from tests.harness.traces import Trace, TrackShape, between

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus]

HOUR, DAY = 3600, 86400
UNTIL = 1_764_000_000 + 8 * DAY
SINCE = UNTIL - 7 * DAY
START = UNTIL - 8 * DAY  # a day of history before the report's period
SPIKE = UNTIL - 5 * DAY  # 5 % errors for two hours, on an hour boundary of the buckets
BASE_ERRORS = 0.0005  # half the 99.9 % budget otherwise


def iso(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def trace() -> Trace:
    shape = TrackShape(rate=20, error_ratio=between(SPIKE - START, SPIKE - START + 2 * HOUR,
                                                    0.05, BASE_ERRORS))
    return Trace("checkout", START, 8 * DAY, {"stable": shape}, step=300, seed=3)


def policy(url: str, smtp_port: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "service": "checkout",
        "prometheus": {"url": url, "timeout": "10s"},
        "slos": [
            {"name": "api_availability", "objective": 99.9, "window": "30d",
             "sli": {"ratio": {"bad": BAD, "total": TOTAL}}},
            {"name": "auth_latency", "objective": 95, "window": "7d",
             "sli": {"latency": {"histogram": "http_request_duration_seconds", "le": "0.2"}}},
        ],
        "errorBudgetPolicy": {"freezeReleases": {"slo": "api_availability"}},
    }
    if smtp_port is not None:
        spec["notifications"] = {"email": {
            "to": ["sre@example.com"], "from": "rolloutctl@example.com",
            "smtp": {"host": "127.0.0.1", "port": smtp_port, "tls": "none"}}}
    return {"apiVersion": "rolloutctl.dev/v1alpha1", "kind": "SLOPolicy",
            "metadata": {"name": "platform"}, "spec": spec}


POLICY_STATUS = {
    "frozen": False,
    "overrides": [{"id": "hotfix-1", "by": "alice", "reason": "INC-7 fix",
                   "until": iso(SPIKE + 4 * HOUR), "active": False}],
    "freezes": [{"since": iso(SPIKE + 600), "until": iso(SPIKE + 3 * HOUR),
                 "reason": "FastBurn", "reasons": ["FastBurn", "BudgetBelowThreshold"],
                 "message": "api_availability burns 50.0x", "budgetRemaining": -8.5,
                 "overrides": ["hotfix-1"]}],
}


def plan() -> dict[str, Any]:
    return {"apiVersion": "rolloutctl.dev/v1alpha1", "kind": "RolloutPlan",
            "metadata": {"name": "checkout"},
            "spec": {"target": {"stable": {"name": "checkout"},
                                "canary": {"name": "checkout-canary"}},
                     "traffic": {"replicas": {}}, "sloPolicyRef": {"name": "platform"},
                     "gates": [{"slo": "api_availability"}]}}


def failing(at: float) -> list[dict[str, Any]]:
    return [{"name": "api_availability", "kind": "slo", "verdict": "Fail",
             "failingSince": iso(at)}]


PLAN_STATUS = {
    "history": [
        {"run": 1, "outcome": "Succeeded", "reason": "Promoted", "endedAt": iso(SINCE + DAY)},
        {"run": 2, "outcome": "RolledBack", "reason": "FastBurn", "endedAt": iso(SPIKE + 60),
         "weightZeroAt": iso(SPIKE + 40), "evidence": failing(SPIKE + 25)},
        {"run": 3, "outcome": "Succeeded", "reason": "Promoted", "endedAt": iso(SPIKE + DAY)},
        {"run": 4, "outcome": "Succeeded", "reason": "Promoted", "endedAt": iso(SPIKE + 2 * DAY)},
    ],
    "drills": [{"id": "weekly-drill", "requestedAt": iso(SPIKE + 3 * DAY),
                "outcome": "Succeeded", "canaryWeightZeroAt": iso(SPIKE + 3 * DAY + 2)}],
}


@dataclass
class World:
    kubeconfig: Path
    namespace: str
    trace: Trace
    url: str

    def report(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [rolloutctl_binary(), "report", "--policy", "platform", "--since", "7d",
             "--until", str(UNTIL), "--kubeconfig", str(self.kubeconfig),
             "-n", self.namespace, *args],
            capture_output=True, text=True, timeout=120)


def create(cluster: TestCluster, namespace: str, url: str, smtp_port: int | None) -> None:
    custom: Any = client.CustomObjectsApi(cluster.api_client())
    for plural, doc, status in (("slopolicies", policy(url, smtp_port), POLICY_STATUS),
                                ("rolloutplans", plan(), PLAN_STATUS)):
        custom.create_namespaced_custom_object("rolloutctl.dev", "v1alpha1", namespace,
                                               plural, doc)
        custom.patch_namespaced_custom_object_status(
            "rolloutctl.dev", "v1alpha1", namespace, plural, doc["metadata"]["name"],
            {"status": status}, _content_type="application/merge-patch+json")


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def world(cluster: TestCluster, namespace: str, smtp: SmtpServer,
          prometheus_backfilled: BackfilledFactory) -> World:
    t = trace()
    url = str(prometheus_backfilled(t.series()))
    create(cluster, namespace, url, smtp.port)
    return World(Path(cluster.kubeconfig), namespace, t, url)


def test_compliance_budget_and_burn_figures_match_the_history(world: World) -> None:
    result = world.report("-o", "json")
    assert result.returncode == 0, result.stderr
    [report] = json.loads(result.stdout)["policies"]
    assert report["errors"] == []
    assert report["since"] == iso(SINCE) and report["until"] == iso(UNTIL)
    api, latency = report["slos"]

    truth = world.trace.truth("stable", SINCE, UNTIL)
    assert api["total"] == pytest.approx(truth.requests, rel=0.01)
    assert api["bad"] == pytest.approx(truth.errors, rel=0.02)
    compliance = 100 * (1 - truth.errors / truth.requests)  # about 99.89 %: missed
    assert api["compliance"] == pytest.approx(compliance, abs=0.002)
    assert api["met"] is False and compliance < 99.9
    assert api["budgetSpent"] == pytest.approx(
        100 * truth.error_ratio / 0.001, rel=0.02)  # about 110 % of the week's budget
    # budget left now over the 30-day window: all the history there is (8 days)
    whole = world.trace.truth("stable", START - 1, UNTIL)
    assert api["budgetLeftNow"] == pytest.approx(
        100 * (1 - whole.error_ratio / 0.001), abs=1.0)
    # the two spike hours burn at about 50x; nothing else comes close
    spike = sorted(api["worstBurnPeriods"][:2], key=lambda p: p["start"])
    assert [p["start"] for p in spike] == [iso(SPIKE), iso(SPIKE + HOUR)]
    assert all(p["burnRate"] == pytest.approx(50, rel=0.15) for p in spike)
    assert all(p["burnRate"] < 10 for p in api["worstBurnPeriods"][2:])
    assert latency["worstBurnPeriods"] == []  # 0.4x: within its budget all week

    assert latency["compliance"] == pytest.approx(
        100 * (1 - truth.slow_ratio(0.2)), abs=0.01)  # 98 % under 200 ms
    assert latency["met"] is True
    assert report["complianceRate"] == 50.0

    [freeze] = report["freezes"]
    assert freeze["seconds"] == pytest.approx(3 * HOUR - 600)
    assert freeze["overrides"] == ["hotfix-1 by alice: INC-7 fix"]
    releases = report["releases"]
    assert (releases["succeeded"], releases["rolledBack"]) == (3, 1)
    assert releases["changeFailureRate"] == pytest.approx(25.0)
    assert releases["medianRestoreSeconds"] == pytest.approx(15.0)
    assert releases["drills"][0]["secondsToRestore"] == pytest.approx(2.0)

    # the Markdown a person reads states the same numbers
    md = world.report("-o", "md")
    assert md.returncode == 0, md.stderr
    assert (f"| api_availability | 99.9% | {api['compliance']:.3f}% | NO | "
            f"{api['bad']:,.0f} / {api['total']:,.0f} | {api['budgetSpent']:.1f}% | "
            f"{api['budgetLeftNow']:.1f}% |") in md.stdout
    assert "- **change-failure rate**: 25.0%" in md.stdout
    assert "FastBurn, BudgetBelowThreshold: api_availability burns 50.0x" in md.stdout
    html = world.report("-o", "html")
    assert html.returncode == 0 and html.stdout.count("<svg") == 3  # compliance + 2 SLOs


def test_the_report_is_mailed_through_the_policys_smtp_settings(world: World,
                                                                smtp: SmtpServer) -> None:
    sent = world.report("--send")
    assert sent.returncode == 0, sent.stderr
    assert "sent the SLO report of" in sent.stdout and "to 1 recipient(s)" in sent.stdout
    assert smtp.wait_for(1)
    mail = smtp.messages[0]
    assert mail.rcpt_tos == ("sre@example.com",)
    message = mail.message
    assert message["Subject"] == (f"[rolloutctl] SLO compliance report (7d): "
                                  f"{world.namespace}/platform")
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert f"# SLO compliance report: {world.namespace}/platform" in text.get_content()
    assert "<svg" in html.get_content() and "Worst burn periods" in html.get_content()

    listed = world.report("--mail-to", "a@example.com, b@example.com")
    assert listed.returncode == 0, listed.stderr
    assert smtp.wait_for(2)
    assert smtp.messages[1].rcpt_tos == ("a@example.com", "b@example.com")


def test_bad_input_names_the_option_and_sends_nothing(cluster: TestCluster, namespace: str,
                                                      smtp: SmtpServer) -> None:
    create(cluster, namespace, "http://127.0.0.1:9", smtp.port)  # refused before any query
    world = World(Path(cluster.kubeconfig), namespace, trace(), "http://127.0.0.1:9")
    bad = world.report("--mail-to", "not-an-address")
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: --mail-to: not-an-address is not an e-mail address")
    wrong = world.report("--since", "a week")
    assert wrong.returncode == 2 and "error: --since:" in wrong.stderr
    assert smtp.messages == []


def test_prometheus_down_still_reports_freezes_and_releases_and_exits_1(
        cluster: TestCluster, namespace: str) -> None:
    create(cluster, namespace, "http://127.0.0.1:9", None)  # nothing listens there
    world = World(Path(cluster.kubeconfig), namespace, trace(), "http://127.0.0.1:9")
    result = world.report("-o", "md")
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: cannot reach Prometheus at http://127.0.0.1:9 "
                                     "(ConnectionError): check the URL (--prometheus)")
    out = result.stdout
    assert "- **error**: cannot reach Prometheus at http://127.0.0.1:9" in out
    assert "| api_availability | 99.9% | - | - | not measured |" in out
    assert "hotfix-1 by alice: INC-7 fix" in out  # the freeze, from status
    assert "- **change-failure rate**: 25.0%" in out
