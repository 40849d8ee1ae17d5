"""`rolloutctl report` refuses bad options with one line naming the option and the fix,
before it reads the cluster (exit 2)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from controller.cli.main import app


@pytest.mark.parametrize(("args", "message"), [
    ([], "error: name a plan (`rolloutctl report PLAN`) or a policy"),
    (["--policy", "a", "--all-policies"], "error: give --policy POLICY or --all-policies"),
    (["p", "--policy", "a"], "error: give either PLAN (a run report) or --policy"),
    (["--policy", "a", "--since", "5s"], "error: --since: 5s is too short"),
    (["--policy", "a", "--since", "week"], "error: --since: invalid duration 'week'"),
    (["--policy", "a", "--until", "yesterday"], "error: --until: 'yesterday' is neither"),
    (["--policy", "a", "--mail-to", "x, b@example.com"],
     "error: --mail-to: x is not an e-mail address"),
    (["p", "-o", "json"], "error: --mail-to, --send and -o json are for SLO reports"),
])
def test_bad_options_are_one_line_naming_the_option(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["report", *args, "--kubeconfig", "/nonexistent"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.output
