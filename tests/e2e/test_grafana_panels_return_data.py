"""Every query of every panel of the chart's Grafana dashboards returns data from a real
Prometheus scraping a real controller (`rolloutctl run`) after a short sandbox-like run:
a healthy release, a bad release rolled back, e-mail notifications delivered to aiosmtpd and
Slack notifications failing on a missing token Secret. Grafana's variables are substituted
as Grafana would ($namespace, $plan, $__range, $__rate_interval); range panels are asked with
query_range over the run, instant panels (stat, bargauge, table) with an instant query; the
dashboards' variables (label_values) list the run's namespace and plan."""

from __future__ import annotations

import json
import math
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.harness.smtp_stub import SmtpServer
from tests.harness.stack import Stack, rollout_plan

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus]

DASHBOARDS = sorted((Path(__file__).resolve().parents[2] / "helm" / "rolloutctl" / "files"
                     / "dashboards").glob("*.json"))
INSTANT = {"stat", "bargauge", "table"}


def substitute(expr: str, namespace: str, span: int) -> str:
    values = {"namespace": namespace, "plan": ".*", "__range": f"{span}s",
              "__rate_interval": "30s", "__interval": "5s", "datasource": "prometheus"}
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values[m.group(1)], expr)


def finite_values(result: list[dict[str, Any]]) -> list[float]:
    out = []
    for series in result:
        samples = series.get("values") or [series["value"]]
        out += [float(v) for _, v in samples if math.isfinite(float(v))]
    return out


def test_every_panel_query_returns_data_after_a_run(stack: Stack) -> None:
    assert stack.prometheus is not None and stack.canary_app is not None
    started = time.time()
    with SmtpServer() as smtp:
        stack.apply(rollout_plan(stack.service, "platform", hold="3s", notifications={
            "email": {"to": ["oncall@example.com"], "from": "rolloutctl@example.com",
                      "smtp": {"host": "127.0.0.1", "port": smtp.port, "tls": "none"}},
            "slack": {"channel": "#deploys",  # no such Secret: deliveries fail, counted
                      "tokenSecretRef": {"name": "missing-slack-token", "key": "token"}}}))
        controller = stack.start_controller(leader_elect=True)
        controller.wait_ready()
        stack.prometheus.set_targets([*stack.prometheus.targets,
                                      f"127.0.0.1:{controller.metrics_port}"])
        stack.prometheus.wait_for_targets_up()

        stack.release("v2")
        stack.wait_for(lambda: stack.status().get("phase") == "Succeeded", 120, "Succeeded")
        stack.canary_app.configure(error_rate=0.3)
        stack.release("v3")
        stack.wait_for(lambda: stack.status().get("phase") == "RolledBack", 120, "RolledBack")
        assert smtp.wait_for(1)

    def scraped() -> bool:
        """The rollback's series (created by the rollback, a moment ago) were in Prometheus
        one range step ago: a range query's last step and a rate over them see them, as a
        dashboard refreshed a few seconds later does."""
        assert stack.prometheus is not None
        ago = time.time() - 6
        return all(stack.prometheus.query(expr, at=ago) for expr in (
            f'rolloutctl_time_to_restore_seconds_count{{namespace="{stack.namespace}",'
            'kind="rollback"} > 0', "rolloutctl_rollbacks_total",
            'rolloutctl_notifications_sent_total{channel="email"}'))

    stack.wait_for(scraped, 30, "the rollback's metrics scraped", interval=0.5)
    now = time.time()
    span = int(now - started) + 60
    missing = []
    queried = 0
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = substitute(target["expr"], stack.namespace, span)
                if panel["type"] in INSTANT or target.get("instant"):
                    result = stack.prometheus.query(expr, at=now)
                else:
                    result = stack.prometheus.api("/api/v1/query_range", {
                        "query": expr, "start": str(started), "end": str(now),
                        "step": "5"})["result"]
                queried += 1
                if not finite_values(result):
                    missing.append(f"{path.name}: {panel['title']!r} {target['refId']}: {expr}"
                                   f" -> {result} / instant: {stack.prometheus.query(expr)}")
    assert queried >= 30
    for path in DASHBOARDS:  # the variables' label_values() queries list the run's namespace
        for variable in json.loads(path.read_text())["templating"]["list"]:
            found = re.fullmatch(r"label_values\((.+), (\w+)\)", variable.get("definition", ""))
            if found is None:
                continue
            selector = substitute(found.group(1), stack.namespace, span)
            values = stack.prometheus.api(f"/api/v1/label/{found.group(2)}/values",
                                          {"match[]": selector})
            wanted = stack.service if found.group(2) == "plan" else stack.namespace
            if wanted not in values:
                missing.append(f"{path.name}: variable {variable['name']}: {values}")
    if missing:  # what the controller serves, for the reader of the failure
        with urllib.request.urlopen(f"http://127.0.0.1:{controller.metrics_port}/metrics") as r:
            served = [line for line in r.read().decode().splitlines()
                      if "rollbacks" in line or "notifications_sent" in line]
        missing.append("served: " + "\n".join(served))
        missing.append("targets: " + json.dumps(stack.prometheus.api("/api/v1/targets")))
    assert not missing, "panel queries without data:\n" + "\n".join(missing)

    # and the figures are the run's: one release succeeded, one rolled back
    ns = stack.namespace
    runs = {r["metric"]["outcome"]: float(r["value"][1]) for r in stack.prometheus.query(
        f'rolloutctl_runs_total{{namespace="{ns}",plan="{stack.service}"}}')}
    assert runs["Succeeded"] == 1.0 and runs["RolledBack"] == 1.0
    assert sum(runs.values()) == 2.0  # no other outcome
    assert stack.prometheus.query_value(
        f'sum(rolloutctl_incident_active{{namespace="{ns}"}})') == 1.0
    restore = stack.prometheus.query_value(
        f'rolloutctl_time_to_restore_seconds_sum{{namespace="{ns}",kind="rollback"}}')
    assert restore is not None and 0 <= restore < 60
