"""The chart keeps literal values (Helm cannot import Python), and they are the controller's
own defaults (controller/constants.py): the Lease the CLI, the Manager, doctor and the chart
name, and the metrics port the chart's probes, Service and the controller use."""

from __future__ import annotations

import inspect
from pathlib import Path

import typer.main
import yaml
from test_chart_harness import CHART, RELEASE_NAMESPACE, container, env, one, render

from controller import constants
from controller.cli.main import app
from controller.runtime.manager import Manager


def defaults(command: str) -> dict[str, object]:
    cmd = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    return {p.name: p.default for p in cmd.params}


def test_the_lease_is_named_the_same_by_the_chart_the_cli_doctor_and_the_manager() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["leaderElection"]["leaseName"] == constants.LEASE_NAME
    assert defaults("run")["lease_name"] == constants.LEASE_NAME
    assert defaults("run")["lease_namespace"] == constants.LEASE_NAMESPACE
    assert defaults("doctor")["lease"] == constants.LEASE_NAME
    assert defaults("doctor")["controller_namespace"] == constants.LEASE_NAMESPACE
    manager = inspect.signature(Manager).parameters
    assert manager["lease_name"].default == constants.LEASE_NAME
    assert manager["lease_namespace"].default == constants.LEASE_NAMESPACE


def test_the_chart_serves_metrics_on_the_controllers_port(tmp_path: Path) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["metrics"]["service"]["port"] == constants.METRICS_PORT
    docs = render(tmp_path)
    c = container(docs)
    assert c["ports"][0]["containerPort"] == constants.METRICS_PORT
    assert env(docs)["ROLLOUTCTL_METRICS_ADDRESS"].endswith(f":{constants.METRICS_PORT}")
    assert defaults("run")["metrics_address"] == constants.METRICS_ADDRESS
    assert defaults("dashboard")["port"] == constants.DASHBOARD_PORT


def test_the_chart_names_the_service_account_doctor_checks(tmp_path: Path) -> None:
    account = one(render(tmp_path), "ServiceAccount")["metadata"]
    assert (account["name"], account["namespace"]) == (constants.SERVICE_ACCOUNT,
                                                       RELEASE_NAMESPACE)
