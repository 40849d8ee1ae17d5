"""No cluster, an unreachable API server, bad arguments: one line naming the problem and
the fix, exit code 2, never a traceback. (Unknown plan and 403 need a real API server:
tests/e2e/test_cli_errors.py.)"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from controller.cli.main import app

runner = CliRunner()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def refused(tmp_path: Path) -> Path:
    """A kubeconfig whose API server refuses connections."""
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{closed_port()}",
                                               "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u",
                                               "namespace": "shop"}}],
    }))
    return path


def one_error_line(result: object) -> str:
    out = getattr(result, "output")  # noqa: B009
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    assert "Traceback" not in out
    assert lines[0].startswith("error: ")
    return str(lines[0])


COMMANDS = [
    ["get"], ["get", "checkout"], ["status", "checkout"], ["status", "checkout", "--watch"],
    ["promote", "checkout"], ["pause", "checkout"], ["resume", "checkout"],
    ["abort", "checkout"], ["retry", "checkout"], ["drill", "checkout"],
    ["drill", "checkout", "--dry-run"], ["freeze", "status"], ["budget"],
    ["freeze", "override", "platform", "--reason", "hotfix", "--expires", "1h"],
    ["report", "checkout"], ["doctor"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a))
def test_no_kubeconfig(args: list[str], tmp_path: Path,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    result = runner.invoke(app, [*args, "--kubeconfig", str(tmp_path / "missing")])
    assert result.exit_code == 2
    line = one_error_line(result)
    assert line == (f"error: no cluster to talk to: no kubeconfig at {tmp_path / 'missing'}; "
                    "pass --kubeconfig FILE or set KUBECONFIG")


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a))
def test_api_server_unreachable(args: list[str], refused: Path) -> None:
    result = runner.invoke(app, [*args, "--kubeconfig", str(refused)])
    assert result.exit_code == 2
    line = one_error_line(result)
    assert line.startswith("error: cannot reach the API server at https://127.0.0.1:")
    assert line.endswith("is the cluster running? Check --kubeconfig and --context "
                         "(kubectl cluster-info)")


@pytest.mark.parametrize(("args", "message"), [
    (["--reason", "", "--expires", "2h"],
     "error: --reason must say why the freeze is overridden (it is empty)"),
    (["--reason", "   ", "--expires", "2h"],
     "error: --reason must say why the freeze is overridden (it is empty)"),
    (["--reason", "hotfix"], "error: --expires is required: how long the override lasts, "
     "e.g. 2h"),
    (["--reason", "hotfix", "--expires", "0s"],
     "error: --expires must be a positive duration such as 2h (it is 0s)"),
    (["--reason", "hotfix", "--expires", "-2h"],
     "error: --expires: invalid duration '-2h': write a number and a unit (ms, s, m, h, d), "
     "for example 90s, 5m, 24h or 30d"),
    (["--reason", "hotfix", "--expires", "2h", "--allow", "Not_A_Name"],
     "error: invalid override (allow.0: String should match pattern "
     "'^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')"),
])
def test_freeze_override_refuses_bad_arguments_before_touching_a_cluster(
        args: list[str], message: str, tmp_path: Path) -> None:
    # the kubeconfig does not exist: the argument error must come first
    result = runner.invoke(app, ["freeze", "override", "platform", *args,
                                 "--kubeconfig", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert one_error_line(result) == message


@pytest.mark.parametrize(("args", "message"), [
    (["status", "checkout", "--timeout", "soon"], "error: --timeout: invalid duration 'soon'"),
    (["status", "checkout", "--timeout", "0s"], "error: --timeout must be longer than 0s"),
    (["drill", "checkout", "--max-duration", "0s"],
     "error: --max-duration must be longer than 0s"),
    (["promote", "checkout", "--wait", "--timeout", "x"], "error: --timeout: invalid duration"),
])
def test_bad_durations_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = runner.invoke(app, [*args, "--kubeconfig", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert one_error_line(result).startswith(message)


def test_the_installed_entry_points_print_one_line_too(tmp_path: Path) -> None:
    """As a user runs it: the console script, and `kubectl rolloutctl` (kubectl-rolloutctl)."""
    bindir = Path(sys.executable).parent
    for exe in ("rolloutctl", "kubectl-rolloutctl"):
        done = subprocess.run([str(bindir / exe), "status", "checkout", "--kubeconfig",
                               str(tmp_path / "missing")], capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 2
        assert done.stdout == ""
        assert done.stderr.splitlines() == [
            f"error: no cluster to talk to: no kubeconfig at {tmp_path / 'missing'}; pass "
            "--kubeconfig FILE or set KUBECONFIG"]
