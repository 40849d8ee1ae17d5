"""The composition root (controller/app.py) is what `rolloutctl run` runs: its Config has
the command's settings with the same defaults, and a bad setting is refused before anything
is built, naming the flag."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from controller.app import Config, ConfigError
from controller.cli.main import app

#: Config field -> `rolloutctl run` parameter, where the names differ
RENAMED = {"namespaces": "namespace", "resync_seconds": "resync"}
#: `rolloutctl run` parameters that are the process's, not the controller's
PROCESS_ONLY = {"log_format", "log_level"}


def run_defaults() -> dict[str, object]:
    cmd = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    return {p.name: p.default for p in cmd.params if p.name is not None}


def test_config_has_every_run_setting_with_the_same_default() -> None:
    cli = run_defaults()
    fields = {f.name: f.default for f in dataclasses.fields(Config)}
    assert {RENAMED.get(name, name) for name in fields} == set(cli) - PROCESS_ONLY
    for name, default in fields.items():
        flag = cli[RENAMED.get(name, name)]
        assert default == (tuple(flag) if isinstance(flag, list | tuple) else flag) or (
            name == "namespaces" and flag is None and default == ()), name


def test_the_default_worker_share_of_one_namespace_is_all_workers_but_one() -> None:
    assert Config(workers=4).workers_per_namespace() == 3
    assert Config(workers=1).workers_per_namespace() is None
    assert Config(workers=4, max_workers_per_namespace=4).workers_per_namespace() == 4
    assert Config().first_fast_interval() == 10.0  # until learned from Prometheus
    assert Config(fast_interval=0).first_fast_interval() == 0.0
    assert Config(fast_interval=2).first_fast_interval() == 2.0


@pytest.mark.parametrize(("config", "option"), [
    (Config(workers=0), "--workers"),
    (Config(max_concurrent_rollouts=0), "--max-concurrent-rollouts"),
    (Config(fast_interval=-1), "--fast-interval"),
    (Config(egress_allow="not a host/99"), "--egress-allow"),
    (Config(metrics_address="127.0.0.1:http"), "--metrics-address"),
    (Config(metrics_address="127.0.0.1:99999"), "--metrics-address"),
])
def test_a_bad_setting_names_its_flag(config: Config, option: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.check()
    assert caught.value.option == option


def test_run_refuses_a_bad_egress_list_before_touching_a_cluster() -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # `run` configures the process's logging
    try:
        result = CliRunner().invoke(app, ["run", "--kubeconfig", "/nonexistent",
                                          "--egress-allow", "not a host/99"])
    finally:
        root.handlers[:], root.level = handlers, level
    assert result.exit_code == 2
    assert "--egress-allow" in result.output


def test_run_without_a_cluster_says_so_in_one_line() -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = CliRunner().invoke(app, ["run", "--kubeconfig", "/nonexistent/kubeconfig"])
    finally:
        root.handlers[:], root.level = handlers, level
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and len(result.output.splitlines()) == 1


KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: not-a-secret}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
"""


@pytest.mark.parametrize("fast_interval", [0.0, 10.0])
def test_build_wires_both_controllers_and_stops_without_having_started(
    fast_interval: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from controller.adapters import egress
    from controller.app import build

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    # build() sets the process's egress policy: keep it to this test
    monkeypatch.setenv(egress.ALLOW_ENV, os.environ.get(egress.ALLOW_ENV, ""))
    monkeypatch.setattr(egress, "_api_server", set(egress._api_server))
    built = build(Config(kubeconfig=str(kubeconfig), identity="pod-a", workers=3,
                         leader_elect=False, metrics_address=None,
                         fast_interval=fast_interval))
    assert built.identity == built.manager.identity == "pod-a"
    assert built.manager.max_workers_per_namespace == 2  # all workers but one
    assert built.manager.queue("plans") is not None
    assert built.manager.queue("policies") is not None
    assert (built.fast_loop is not None) == (fast_interval > 0)
    assert built.plan_reconciler.leading() and built.policy_reconciler.leading()
    built.stop()
    built.stop()  # idempotent
