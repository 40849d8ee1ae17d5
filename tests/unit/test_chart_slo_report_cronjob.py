"""The chart's SLO report CronJob (``sloReport``): off by default; when on, one CronJob per
namespace running ``rolloutctl report`` as the controller's ServiceAccount with the
options the values ask for, under the same pod security as the controller; bad values are
refused naming the value. Rendered with the real ``helm template``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_chart_harness import by_kind, render, render_error


def report_container(cronjob: dict[str, Any]) -> dict[str, Any]:
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    return dict(c)


def test_off_by_default(tmp_path: Path) -> None:
    assert by_kind(render(tmp_path), "CronJob") == []


def test_a_weekly_report_per_namespace_to_the_policies_recipients(tmp_path: Path) -> None:
    docs = render(tmp_path, {"sloReport": {"enabled": True, "namespaces": ["shop", "payments"]},
                             "prometheusUrl": "http://prometheus.monitoring:9090"})
    jobs = by_kind(docs, "CronJob")
    assert [j["metadata"]["name"] for j in jobs] == [
        "rolloutctl-slo-report-shop", "rolloutctl-slo-report-payments"]
    job = jobs[0]
    assert job["metadata"]["namespace"] == "rolloutctl-system"
    assert job["spec"]["schedule"] == "0 7 * * 1" and "timeZone" not in job["spec"]
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "rolloutctl" and pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    c = report_container(job)
    assert c["command"] == ["rolloutctl"]
    assert c["args"] == ["report", "--namespace=shop", "--all-policies", "--since=7d",
                         "--send"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["ROLLOUTCTL_PROMETHEUS_URL"] == "http://prometheus.monitoring:9090"
    assert report_container(jobs[1])["args"][1] == "--namespace=payments"


def test_one_policy_monthly_to_a_list(tmp_path: Path) -> None:
    docs = render(tmp_path, {"sloReport": {
        "enabled": True, "namespaces": ["shop"], "policy": "platform", "since": "30d",
        "schedule": "0 6 1 * *", "timeZone": "Europe/Paris",
        "mailTo": ["sre@example.com", "cto@example.com"]}})
    (job,) = by_kind(docs, "CronJob")
    assert job["spec"]["schedule"] == "0 6 1 * *"
    assert job["spec"]["timeZone"] == "Europe/Paris"
    assert report_container(job)["args"] == [
        "report", "--namespace=shop", "--policy=platform", "--since=30d",
        "--mail-to=sre@example.com,cto@example.com"]


def test_bad_values_are_refused_naming_the_value(tmp_path: Path) -> None:
    assert "sloReport.enabled needs sloReport.namespaces" in render_error(
        tmp_path, {"sloReport": {"enabled": True}})
    error = render_error(tmp_path, {"sloReport": {"enabled": True, "namespaces": ["shop"],
                                                  "mailTo": ["not-an-address"]}})
    assert "sloReport" in error and "mailTo" in error
    error = render_error(tmp_path, {"sloReport": {"enabled": True, "namespaces": ["shop"],
                                                  "since": "a week"}})
    assert "since" in error
    error = render_error(tmp_path, {"watchNamespaces": ["payments"], "sloReport": {
        "enabled": True, "namespaces": ["shop"]}})
    assert "sloReport.namespaces: shop is not in watchNamespaces" in error
