"""The README's first command (`make demo`, i.e. `scripts/sandbox demo`): the sandbox demo
runs its three stories and stops cleanly."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.harness import cluster as cluster_mod

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.slow]


def test_the_demo_tells_three_stories_and_stops_everything(tmp_path: Path) -> None:
    try:
        for name in cluster_mod.BINARIES:
            cluster_mod.find_binary(name)
    except cluster_mod.ClusterError as exc:
        from tests.harness.fixtures import unavailable

        unavailable(str(exc))
    directory = tmp_path / "sandbox"
    script = str(REPO / "scripts" / "sandbox")
    result = subprocess.run([script, "demo", "--dir", str(directory)],
                            capture_output=True, text=True, timeout=1200, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    for line in ("✔ healthy release: Succeeded", "✔ bad release: RolledBack",
                 "✔ drill: Succeeded", "✔ run after the drill: Succeeded"):
        assert line in out, out[-4000:]
    assert "slack #oncall" in out  # the rollback reached the critical channel
    assert re.search(r"dashboard +http://127\.0\.0\.1:\d+/", out), out[-4000:]
    # a tester's header reaches the canary at the 10 % step, none of it lands on stable
    tester = re.search(r"X-Canary: always at the 10 % step: (\d+) request\(s\) on the "
                       r"canary, (\d+) on stable", out)
    assert tester and int(tester.group(1)) > 0 and int(tester.group(2)) == 0, out[-4000:]
    # everything it started is gone
    state = json.loads((directory / "state.json").read_text())
    assert state["pids"] == {}
    cluster_pids = directory / "cluster" / "pids"
    assert not cluster_pids.exists() or not any(
        cluster_mod.pid_alive(p) for p in json.loads(cluster_pids.read_text()).values())
