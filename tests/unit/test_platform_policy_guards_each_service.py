"""One platform SLOPolicy per namespace guards every service in it: each service has its own
budget and freeze (a freeze of checkout does not block cart), the policy's status lists each
service, and the namespace's platform policy (label ``rolloutctl.dev/platform: "true"``)
applies to every plan there, whatever the plan's ``sloPolicyRef`` names (or if none)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from controller.adapters.traffic.registry import NullRouter
from controller.api.policy import SLOPolicy
from controller.engine.freeze import SLOMeasurements, evaluate_services, freeze_input
from controller.engine.measurements import BurnRateMeasurement
from controller.reconciler import PlanReconciler, PolicyReconciler, Slots
from controller.telemetry import Telemetry
from tests.harness import builders as b
from tests.harness.fakes import FakeClock, FakeWorkloads, MemoryStore, RecordingEvents

REPO = Path(__file__).resolve().parents[2]
PLATFORM = {"rolloutctl.dev/platform": "true"}


def platform_doc(**spec: Any) -> dict[str, Any]:
    doc = b.policy_doc()
    doc["metadata"]["labels"] = dict(PLATFORM)
    doc["spec"].update(spec)
    return doc


def budget(bad: float, total: float = 1_000_000) -> SLOMeasurements:
    """api_availability (99.9 %): 920 bad of 1,000,000 leaves 8 % of the budget."""
    return SLOMeasurements("api_availability", b.ratio(bad / total, total))


def test_each_service_has_its_own_budget_and_freeze() -> None:
    policy = SLOPolicy.model_validate(platform_doc())
    decision = evaluate_services(policy, {
        "checkout": {"api_availability": budget(920)},   # 8 % left: below 10 %
        "cart": {"api_availability": budget(100)},       # 90 % left
    }, b.T0, {"checkout": ["checkout", "checkout-canary"], "cart": ["cart", "cart-canary"]})
    st = decision.status
    by = {s.service: s for s in st.services or []}
    assert sorted(by) == ["cart", "checkout"]
    assert by["checkout"].frozen and by["checkout"].reason == "BudgetBelowThreshold"
    assert by["checkout"].budget_remaining == 8.0
    assert not by["cart"].frozen and by["cart"].budget_remaining == 90.0
    assert next(s.name for s in by["cart"].slos) == "api_availability"
    # the summary the admission policy reads
    assert st.frozen and st.frozen_services == ["checkout"]
    assert st.frozen_deployments == ["checkout", "checkout-canary"]
    assert st.message.startswith("checkout: ")
    # one announcement, naming the service
    assert [e[1] for e in decision.events] == ["FreezeStarted"]
    assert "checkout" in decision.events[0][2]

    frozen = policy.model_copy(update={"status": st})
    checkout = freeze_input(frozen, "checkout", b.T0, "checkout")
    cart = freeze_input(frozen, "cart", b.T0, "cart")
    assert checkout is not None and checkout.blocks and "8.0%" in checkout.message
    assert cart is not None and not cart.frozen
    # a service the policy has not measured yet: an unknown budget, never a pass
    new = freeze_input(frozen, "search", b.T0, "search")
    assert new is not None and new.blocks and new.reason == "BudgetUnknown"


def test_a_policy_with_spec_service_guards_that_one_service_for_all_its_plans() -> None:
    policy = SLOPolicy.model_validate(platform_doc(service="checkout"))
    decision = evaluate_services(policy, {"checkout": {"api_availability": budget(920)}}, b.T0)
    frozen = policy.model_copy(update={"status": decision.status})
    # plans of another service name are still held by checkout's budget (as before)
    cart = freeze_input(frozen, "cart", b.T0, "cart")
    assert cart is not None and cart.blocks and decision.status.slos


def test_a_warning_burn_rate_alert_is_announced_once_per_episode() -> None:
    doc = platform_doc()
    doc["spec"]["slos"][0]["burnRateAlerts"] = [
        {"severity": "warning", "factor": 6, "long": "6h", "short": "30m"}]
    doc["spec"]["notifications"] = {"slack": {
        "channel": "#monitoring", "tokenSecretRef": {"name": "rolloutctl-slack", "key": "token"}}}
    policy = SLOPolicy.model_validate(doc)
    burning = SLOMeasurements("api_availability", b.ratio(100 / 1_000_000, 1_000_000), (
        BurnRateMeasurement(0, b.ratio(0.01), b.ratio(0.01), 6 * 3600, 1800),))
    first = evaluate_services(policy, {"cart": {"api_availability": burning}}, b.T0)
    assert [e[1] for e in first.events] == ["BurnRateWarning"]
    assert first.status.services and first.status.services[0].warnings_firing
    assert not first.status.frozen  # a warning never freezes
    entry = first.status.notifications.outbox[-1]
    assert entry.severity == "warning" and "api_availability" in entry.text
    again = evaluate_services(policy.model_copy(update={"status": first.status}),
                              {"cart": {"api_availability": burning}}, b.T0)
    assert again.events == ()


def key_of(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["namespace"]


class Namespace:
    """A namespace with a platform policy and three plans: checkout names it, cart names no
    policy, search names its own (a team's) policy."""

    def __init__(self) -> None:
        self.clock = FakeClock(b.T0)
        self.store = MemoryStore()
        self.store.put(platform_doc())
        team = b.policy_doc(name="search-team")  # a team's own policy, without a freeze
        team["spec"]["errorBudgetPolicy"] = {}
        self.store.put(team)
        self.store.put(b.plan_doc("checkout"))
        cart = b.plan_doc("cart")
        del cart["spec"]["sloPolicyRef"]
        cart["spec"]["gates"] = []
        self.store.put(cart)
        self.store.put(b.plan_doc("search", sloPolicyRef={"name": "search-team"}))
        self.workloads = FakeWorkloads()
        for name in ("checkout", "cart", "search"):
            self.workloads.set("shop", name, b.workload("rev-stable"))
            self.workloads.set("shop", f"{name}-canary", b.workload("rev-new", replicas=0))
        self.bad = {"checkout": 920.0, "cart": 100.0, "search": 920.0}
        telemetry = Telemetry(CollectorRegistry())
        self.policies = PolicyReconciler(
            store=self.store, metrics_for=lambda p: self, clock=self.clock,
            telemetry=telemetry, plans_in=lambda ns: self.list("RolloutPlan", ns))
        self.plans = PlanReconciler(
            store=self.store, workloads=self.workloads, router_for=lambda p: NullRouter(),
            measure_gates=lambda plan, *_: [
                b.gate_measurement(g.name, b.ratio(0, 1000)) for g in plan.spec.gates],
            policy_lookup=lambda ns, n: self.store.get("SLOPolicy", ns, n),
            clock=self.clock, telemetry=telemetry, events=RecordingEvents(),
            slots=Slots(None),
            platform_policies=lambda ns: [
                p for p in self.list("SLOPolicy", ns)
                if (p["metadata"].get("labels") or {}).get("rolloutctl.dev/platform") == "true"])

    def list(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        return [o for o in (self.store.get(*key) for key in sorted(self.store.objects))
                if o is not None and key_of(o) == (kind, namespace)]

    # the metrics source: each service's budget
    def measure_budget(self, slo: Any, ctx: Any, window: float) -> Any:
        return b.ratio(self.bad[ctx.service] / 1_000_000, 1_000_000)

    def measure(self, slo: Any, track: Any, window: float, ctx: Any) -> Any:
        return b.ratio(0.0, 1000)

    def plan_status(self, name: str) -> dict[str, Any]:
        obj = self.store.get("RolloutPlan", "shop", name)
        assert obj is not None
        return dict(obj.get("status") or {})

    def policy_status(self, name: str = "platform") -> dict[str, Any]:
        obj = self.store.get("SLOPolicy", "shop", name)
        assert obj is not None
        return dict(obj.get("status") or {})


def test_the_platform_policy_guards_every_plan_of_its_namespace() -> None:
    ns = Namespace()
    ns.policies.reconcile("shop/platform")
    st = ns.policy_status()
    # every plan of the namespace, whatever it names
    assert [s["service"] for s in st["services"]] == ["cart", "checkout", "search"]
    assert st["frozenServices"] == ["checkout", "search"]
    assert st["frozenDeployments"] == ["checkout", "checkout-canary", "search",
                                       "search-canary"]
    for name in ("checkout", "cart", "search"):
        ns.plans.reconcile(f"shop/{name}")
    # checkout names the platform policy, search names another one: both frozen by the
    # platform policy; cart, named by no policy, is open (its budget is fine)
    assert ns.plan_status("checkout")["phase"] == "Frozen"
    search = ns.plan_status("search")
    assert search["phase"] == "Frozen" and "platform" in search["message"]
    assert ns.plan_status("cart")["phase"] == "Progressing"

    # cart's budget falls: cart freezes too, checkout's recovery opens checkout only
    ns.bad = {"checkout": 10.0, "cart": 990.0, "search": 920.0}
    ns.clock.advance(61)
    ns.policies.reconcile("shop/platform")
    assert ns.policy_status()["frozenServices"] == ["cart", "search"]
    ns.plans.reconcile("shop/checkout")
    assert ns.plan_status("checkout")["phase"] == "Progressing"


def test_a_plan_naming_no_policy_waits_while_the_platform_policy_is_unknown_for_it() -> None:
    ns = Namespace()
    ns.plans.reconcile("shop/cart")  # the policy has not evaluated cart yet
    assert ns.plan_status("cart")["phase"] == "Frozen"
    assert ns.plan_status("cart")["reason"] == "BudgetUnknown"


def test_an_invalid_platform_policy_blocks_rather_than_lets_through() -> None:
    ns = Namespace()
    ns.policies.reconcile("shop/platform")
    bad = ns.store.get("SLOPolicy", "shop", "platform")
    assert bad is not None
    bad["spec"]["slos"] = []
    ns.store.put(bad)
    ns.plans.reconcile("shop/cart")
    st = ns.plan_status("cart")
    assert st["phase"] == "Frozen" and "invalid" in st["message"]


def test_the_shipped_files_match_the_platform_slo_report() -> None:
    doc = yaml.safe_load((REPO / "policies" / "platform-slos.yaml").read_text())
    policy = SLOPolicy.model_validate(doc)
    assert policy.is_platform and policy.spec.service is None
    availability = policy.spec.slo("api_availability")
    assert availability is not None
    six_hour = [a for a in availability.burn_rate_alerts if a.long.seconds == 6 * 3600]
    assert [a.severity.value for a in six_hour] == ["warning"]
    memory = policy.spec.slo("memory_usage")
    assert memory is not None and memory.sli.gauge is not None
    assert memory.sli.gauge.max == 80 and memory.sli.gauge.exclusive_max
    n = policy.spec.notifications
    assert n is not None and n.slack is not None and n.email is not None and n.incident
    assert n.slack.channel == "#monitoring" and n.slack.token_secret_ref is not None
    assert n.email.smtp.password_secret_ref is not None
    assert n.incident.routing_key_secret_ref.name == "rolloutctl-incident"
    plan = yaml.safe_load((REPO / "policies" / "default-plan.yaml").read_text())
    gates = [g.get("slo") for g in plan["spec"]["gates"]]
    assert {"api_availability", "auth_latency", "error_rate",
            "workflow_success_rate"} <= set(gates)
    error_rate = policy.spec.slo("error_rate")
    workflows = policy.spec.slo("workflow_success_rate")
    assert error_rate is not None and error_rate.objective == 99.9   # errors < 0.1 %
    assert workflows is not None and workflows.objective == 98       # success >= 98 %


def test_memory_at_exactly_80_percent_fails_the_gate() -> None:
    from controller.engine.measurements import Measurement, MeasurementStatus
    from controller.engine.verdicts import Verdict, judge

    doc = yaml.safe_load((REPO / "policies" / "platform-slos.yaml").read_text())
    slo = SLOPolicy.model_validate(doc).spec.slo("memory_usage")
    plan = b.plan(gates=[{"slo": "memory_usage"}])
    for value, verdict in ((80.0, Verdict.FAIL), (79.9, Verdict.PASS)):
        m = b.gate_measurement("memory_usage", Measurement(MeasurementStatus.OK, value, 1))
        got = judge(plan.spec.gates[0], slo, m, None, plan.spec.analysis, b.T0)
        assert got.verdict == verdict, (value, got.message)


def test_budget_and_freeze_status_show_each_service() -> None:
    from rich.console import Console

    from controller.cli import render

    policy = SLOPolicy.model_validate(platform_doc())
    decision = evaluate_services(policy, {
        "checkout": {"api_availability": budget(920)},
        "cart": {"api_availability": budget(100)},
    }, b.T0)
    policy = policy.model_copy(update={"status": decision.status})

    def text(renderable: Any) -> str:
        console = Console(width=200, record=True, color_system=None)
        console.print(renderable)
        return console.export_text()

    freeze = {line.split()[0]: line for line in text(render.freeze_view([policy], b.T0))
              .splitlines() if line.strip().startswith(("cart", "checkout"))}
    assert "FROZEN" in freeze["checkout"] and "BudgetBelowThreshold" in freeze["checkout"]
    assert "8.00%" in freeze["checkout"]
    assert "open" in freeze["cart"] and "90.00%" in freeze["cart"]
    budgets = text(render.budget_view([policy]))
    assert "service cart\n" in budgets and "service checkout (FROZEN)" in budgets
    assert budgets.count("api_availability") == 2
    # the run report of a cart plan shows cart's budget
    assert policy.for_service("cart").status.budget_remaining == 90.0
    assert not policy.for_service("cart").status.frozen


def test_doctor_judges_a_policy_without_prometheus_by_the_controllers_evaluation() -> None:
    from datetime import timedelta

    from controller.cli.doctor import FAIL, OK, WARN, measured_by_the_controller

    policy = SLOPolicy.model_validate(platform_doc())
    assert policy.spec.prometheus is None
    assert [c.level for c in measured_by_the_controller(policy, b.T0)] == [FAIL]
    measured = {s: {"api_availability": budget(100)} for s in ("cart", "checkout")}
    healthy = policy.model_copy(update={"status": evaluate_services(
        policy, measured, b.T0).status})
    (check,) = measured_by_the_controller(healthy, b.T0 + timedelta(seconds=30))
    # auth_latency has no measurement here: the controller says so, the doctor warns
    assert check.level == WARN and "auth_latency" in check.message
    doc = platform_doc()
    doc["spec"]["slos"] = doc["spec"]["slos"][:1]
    one = SLOPolicy.model_validate(doc)
    ok = one.model_copy(update={"status": evaluate_services(one, measured, b.T0).status})
    (check,) = measured_by_the_controller(ok, b.T0 + timedelta(seconds=30))
    assert check.level == OK and "cart, checkout" in check.message, check.message
    (check,) = measured_by_the_controller(ok, b.T0 + timedelta(minutes=10))
    assert check.level == WARN and "is the controller running" in check.message


def test_simulate_judges_the_freeze_on_the_plans_own_service() -> None:
    """`rolloutctl simulate` of a healthy canary with the unmodified shipped policy (no
    spec.service) measures the plan's service's budget, not one named after the policy."""
    from datetime import timedelta

    from controller.simulator import _FreezeClock

    doc = yaml.safe_load((REPO / "policies" / "platform-slos.yaml").read_text())
    policy = SLOPolicy.model_validate(doc)
    asked: list[str] = []

    class Source:
        def measure_budget(self, slo: Any, ctx: Any, window: float) -> Any:
            asked.append(ctx.service)
            return b.ratio(0.0, 1_000_000)

        def measure(self, slo: Any, track: Any, window: float, ctx: Any) -> Any:
            return b.ratio(0.0, 1000)

    clock = _FreezeClock(policy, Source(), b.T0, b.T0 + timedelta(hours=1),  # type: ignore[arg-type]
                         "checkout")
    got = clock.at(b.T0, "checkout")
    assert got is not None and not got.frozen, got
    assert set(asked) == {"checkout"}


def _per_service_policy(services: list[dict[str, Any]], frozen: bool) -> SLOPolicy:
    doc = platform_doc()
    doc["status"] = {"evaluatedAt": b.T0.isoformat(), "frozen": frozen,
                     "services": services}
    return SLOPolicy.model_validate(doc)


_service_entries = st.lists(st.fixed_dictionaries({
    "service": st.sampled_from(["checkout", "cart"]),
    "frozen": st.booleans(),
    "reason": st.sampled_from(["", "BudgetBelowThreshold"]),
    "message": st.sampled_from(["", "7.0% left", "70.0% left"]),
    "budgetRemaining": st.sampled_from([7.0, 70.0]),
}), max_size=2, unique_by=lambda s: s["service"])


@settings(max_examples=300, deadline=None)
@given(_service_entries, _service_entries, st.booleans(), st.booleans())
def test_equal_plan_facing_states_give_each_services_plans_the_same_freeze(
    a: list[dict[str, Any]], c: list[dict[str, Any]], fa: bool, fc: bool
) -> None:
    """What the manager compares (plan_facing_state) covers the per-service freeze: two
    states that compare equal give every plan of every service the same freeze input."""
    from controller.engine.freeze import plan_facing_state

    pa, pc = _per_service_policy(a, fa), _per_service_policy(c, fc)
    if plan_facing_state(pa) != plan_facing_state(pc):
        return
    for service in ("checkout", "cart", "search"):
        assert freeze_input(pa, "p", b.T0, service) == freeze_input(pc, "p", b.T0, service)
