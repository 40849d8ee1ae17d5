"""The dashboard's pages as the server sends them (no browser, no cluster): headline figures,
escaping of tenant-written text, read-only HTTP, the fragment the browser polls, and what
a user whose RBAC forbids some namespaces sees. The browser end of it is in
tests/e2e/test_dashboard_in_chromium.py."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from controller.adapters.metrics.series import Series, SeriesAnswer
from controller.api.plan import RolloutPlan
from controller.api.policy import SLOPolicy
from controller.dashboard.figures import Health, headline
from controller.dashboard.server import Dashboard, Sources, serve
from controller.dashboard.snapshot import Snapshot, SnapshotCache, read_snapshot
from controller.errors import Permanent
from tests.harness import builders as b
from tests.harness.midrun import mid_run_status

HOSTILE = '<img src=x onerror="alert(1)">'


def mid_run_plan(namespace: str = "shop", **status: Any) -> RolloutPlan:
    plan, _, written = mid_run_status(namespace)
    plan["status"] = {**written, **status}
    plan["metadata"]["creationTimestamp"] = "2026-11-27T11:00:00Z"
    return RolloutPlan.model_validate(plan)


def policy(**status: Any) -> SLOPolicy:
    doc = b.policy_doc()
    doc["status"] = {"evaluatedAt": "2026-11-27T11:59:00Z", **status}
    return SLOPolicy.model_validate(doc)


SLOS_OK = [{"name": "api_availability", "state": "Ok", "budgetRemaining": 80.0},
           {"name": "auth_latency", "state": "Ok", "budgetRemaining": 40.0}]


def test_headline_healthy_when_budgets_left_and_nothing_fails() -> None:
    head = headline([mid_run_plan()], [policy(slos=SLOS_OK)])
    assert (head.health, head.compliance, head.incidents) == (Health.HEALTHY, 100.0, [])


def test_headline_a_spent_budget_halves_compliance_and_a_freeze_is_an_incident() -> None:
    slos = [SLOS_OK[0], {"name": "auth_latency", "state": "Ok", "budgetRemaining": -3.0}]
    head = headline([mid_run_plan()], [policy(
        slos=slos, frozen=True, reason="BudgetExhausted", message="auth_latency spent")])
    assert head.health == Health.UNHEALTHY
    assert head.compliance == 50.0
    assert [(i.kind, i.name, i.reason) for i in head.incidents] == [
        ("freeze", "platform", "auth_latency spent")]


def test_headline_a_rollback_with_an_open_incident_counts_a_holding_plan_degrades() -> None:
    rolled = mid_run_plan(phase="RolledBack", canaryWeight=0, rollbackReason="GateFailed",
                          notifications={"incident": {"dedupKey": "k", "since":
                                                      "2026-11-27T12:05:00Z",
                                                      "triggerKey": "t"}})
    assert [i.kind for i in headline([rolled], [policy(slos=SLOS_OK)]).incidents] == [
        "rollback"]
    holding = mid_run_plan(phase="Holding")
    head = headline([holding], [policy(slos=SLOS_OK)])
    assert (head.health, head.incidents) == (Health.DEGRADED, [])


def _forbidden(what: str) -> Permanent:
    return Permanent(f"list {what}: forbidden (403)", "Forbidden")


def test_snapshot_skips_namespaces_rbac_forbids_and_says_so() -> None:
    visible = mid_run_plan("team-a").to_wire()

    def list_objects(kind: str, namespace: str | None) -> list[dict[str, Any]]:
        if namespace in (None, "team-b"):
            raise _forbidden(kind)
        return [visible] if kind == "RolloutPlan" else []

    snap = read_snapshot(list_objects, lambda: ["team-a", "team-b"], [], 0.0)
    assert [p.key for p in snap.plans] == ["team-a/checkout"]
    assert snap.not_permitted == ["team-b"]
    assert snap.problems == []
    # nor may the user list namespaces: the kubeconfig context's namespace is read
    snap = read_snapshot(list_objects, lambda: None, [], 0.0, fallback="team-a")
    assert [p.key for p in snap.plans] == ["team-a/checkout"]
    assert snap.not_permitted == ["listing namespaces"]


class FakeSeries:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def range(self, expr: str, start: float, end: float, step: float) -> SeriesAnswer:
        self.asked.append(expr)
        if "canary_weight" in expr:
            return SeriesAnswer([Series({}, [(start, 10.0), (start + 60, 25.0)])])
        return SeriesAnswer([])


@pytest.fixture
def served() -> Iterator[tuple[str, dict[str, Snapshot], FakeSeries]]:
    plan = mid_run_plan(message=HOSTILE)
    pol = policy(slos=SLOS_OK, frozen=True, reason="BudgetExhausted", message=HOSTILE,
                 frozenSince="2026-11-27T12:00:00Z")
    box = {"snap": Snapshot([plan], [pol], ["team-b"], [], 0.0)}
    series = FakeSeries()
    board = Dashboard(SnapshotCache(lambda: box["snap"], max_age=0.0),
                      Sources(for_url=lambda url: series, burns=lambda p, url: {},
                              url="http://prometheus.test:9090"), who="alice")
    server = serve(board, 0)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", box, series
    finally:
        server.shutdown()
        server.server_close()


def _get(url: str, **headers: str) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def test_overview_shows_plan_step_weight_gates_and_freeze_escaped(served: Any) -> None:
    base, _, _ = served
    status, html, headers = _get(base + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert 'data-plan="shop/checkout" data-phase="Progressing"' in html
    assert "<em>2/4</em>" in html and "25%</td>" in html
    assert "api_availability Pass" in html
    assert "FROZEN" in html and "BudgetExhausted" in html
    assert HOSTILE not in html and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert "not permitted" in html and "team-b" in html
    assert ">UNHEALTHY<" in html  # the freeze is an active incident


def test_plan_page_charts_the_weight_from_prometheus(served: Any) -> None:
    base, _, series = served
    status, html, _ = _get(base + "/plan/shop/checkout")
    assert status == 200
    assert 'class="chart weight"' in html and "from the plan" not in html
    assert any('namespace="shop",plan="checkout"' in q for q in series.asked)
    assert _get(base + "/plan/shop/nope")[0] == 404


def test_fragment_is_204_until_something_changes(served: Any) -> None:
    base, box, _ = served
    status, body, headers = _get(base + "/fragment/")
    assert status == 200 and headers["Content-Type"] == "application/json"
    version = json.loads(body)["version"]
    assert _get(f"{base}/fragment/?v={version}")[0] == 204
    rolled = mid_run_plan(phase="RolledBack", canaryWeight=0)
    box["snap"] = Snapshot([rolled], box["snap"].policies, [], [], time.time())
    status, body, _ = _get(f"{base}/fragment/?v={version}")
    assert status == 200 and 'data-phase="RolledBack"' in json.loads(body)["html"]


def test_read_only_and_loopback_only(served: Any) -> None:
    base, _, _ = served
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        request = urllib.request.Request(base + "/", data=b"x", method=method)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 405
    assert _get(base + "/", Host="evil.example:80")[0] == 403
    status, _, headers = _get(base + "/static/dashboard.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert _get(base + "/static/../server.py")[0] == 404


def test_snapshot_parses_an_unchanged_object_once() -> None:
    doc = mid_run_plan().to_wire()
    doc["metadata"].update(uid="u1", resourceVersion="7")
    memo: dict[Any, Any] = {}
    lister = lambda kind, ns: [doc] if kind == "RolloutPlan" else []  # noqa: E731
    first = read_snapshot(lister, lambda: [], [], 0.0, memo=memo).plans[0]
    assert read_snapshot(lister, lambda: [], [], 0.0, memo=memo).plans[0] is first
    doc["metadata"]["resourceVersion"] = "8"
    doc["status"]["phase"] = "RolledBack"
    changed = read_snapshot(lister, lambda: [], [], 0.0, memo=memo).plans[0]
    assert changed is not first and changed.status.phase == "RolledBack"
    assert len(memo) == 1
