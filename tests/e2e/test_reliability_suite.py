"""The reliability suite of issue 13, short variants, as CI runs it.

Each test runs one scenario of ``tests.harness.chaos`` (the functions behind
``python -m bench.reliability --short``) against the session's control plane, with real
``rolloutctl run`` processes, a live Prometheus and the Slack stand-in, and fails with the
scenario's figures and problems. The full variant (50 kills, a 10-minute Prometheus
outage, 10,000 invalid documents...) is ``python -m bench.reliability``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.chaos import Env, run_scenario
from tests.harness.fixtures import TestCluster, unavailable
from tests.harness.prometheus import PrometheusMissing, find_tool

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.slow,
              pytest.mark.timeout(1200)]


@pytest.fixture
def env(cluster: TestCluster, tmp_path: Path) -> Env:
    try:
        find_tool("prometheus")
    except PrometheusMissing as exc:
        unavailable(str(exc))
    return Env(Path(cluster.kubeconfig), tmp_path,
               cluster.local.dir if cluster.local is not None else None)


def passes(name: str, env: Env) -> None:
    result = run_scenario(name, env, short=True)
    print("\n" + result.report())
    assert result.passed, result.report()


def test_sigkill_chaos_skips_repeats_and_duplicates_nothing(env: Env) -> None:
    """12 SIGKILLs across 3 concurrent plans (healthy and bad canaries, Slack on): every run
    ends as expected with no skipped or repeated step, no step advanced without its gate,
    every Slack message delivered exactly once."""
    passes("sigkill", env)


def test_leader_failover_under_load_takes_over_within_the_lease(env: Env) -> None:
    """The leader of two replicas is SIGKILLed with 3 plans mid-run: the standby takes over
    within lease duration + retry period (17 s), every run completes with no double action,
    and only the Lease holder's identity appears on Events."""
    passes("failover", env)


def test_prometheus_outage_holds_and_resumes(env: Env) -> None:
    """Prometheus stopped for 2 minutes mid-step under the default onNoData/noDataTimeout:
    Holding (PrometheusError) throughout, no promotion, no rollback, the weight unmoved;
    after a restart on the same port and data the run resumes and succeeds."""
    passes("prometheus", env)


def test_slack_down_leaves_rollback_timing_unchanged(env: Env) -> None:
    """Fault -> canary weight 0 with Slack healthy, answering 500 and rate-limiting (2 runs
    each): the medians agree within one analysis interval + 25 %, and every message is
    delivered once Slack recovers, each exactly once."""
    passes("slack", env)


def test_apiserver_restart_resumes_within_ten_seconds(env: Env) -> None:
    """kube-apiserver restarted mid-run: the controller (same process) reconciles and
    writes status again within 10 s of the API server being ready; the run succeeds with
    no skipped step."""
    if env.cluster_dir is None:
        unavailable("restarting the API server needs the local control plane")
    passes("apiserver", env)


def test_bad_input_is_rejected_naming_the_field(env: Env) -> None:
    """500 hypothesis-generated invalid plans and policies: validation rejects each naming
    the field; 100 of them through the API server are refused naming the field or marked
    Invalid by the controller naming it; the controller stays healthy; label injections
    never reach Prometheus's query log."""
    passes("badinput", env)
