"""The reconciler's pass with one-layer fakes: observe, decide, act, write once, announce."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from controller.adapters.traffic.registry import NullRouter
from controller.api.plan import RolloutPlan
from controller.engine.measurements import GateMeasurement
from controller.errors import Conflict
from controller.reconciler import PlanReconciler, PolicyReconciler, Slots
from controller.telemetry import Telemetry
from tests.harness import builders as b
from tests.harness.fakes import FakeClock, FakeWorkloads, MemoryStore, RecordingEvents

KEY = "shop/checkout"


class Harness:
    def __init__(self, bad: float = 0.0, **plan_kwargs: Any) -> None:
        self.clock = FakeClock(b.T0)
        self.store = MemoryStore()
        self.store.put(b.plan_doc(**plan_kwargs))
        policy = b.policy_doc()
        policy["status"] = {"evaluatedAt": "2026-11-27T11:59:00Z", "frozen": False}
        self.store.put(policy)
        self.workloads = FakeWorkloads()
        self.workloads.set("shop", "checkout", b.workload("rev-stable"))
        self.workloads.set("shop", "checkout-canary", b.workload("rev-new", replicas=0))
        self.router = NullRouter()
        self.bad = bad
        self.events = RecordingEvents()
        self.submitted: list[tuple[str, str, str]] = []
        self.leader = True
        self.rec = PlanReconciler(
            store=self.store, workloads=self.workloads, router_for=lambda p: self.router,
            measure_gates=self.measure, policy_lookup=lambda ns, n: self.store.get(
                "SLOPolicy", ns, n),
            clock=self.clock, telemetry=Telemetry(CollectorRegistry()), events=self.events,
            submit=lambda *k: self.submitted.append(k), slots=Slots(None),
            leading=lambda: self.leader,
        )

    def measure(self, plan: RolloutPlan, *_: Any) -> list[GateMeasurement]:
        return [b.gate_measurement(g.name, b.ratio(self.bad, 1000)) for g in plan.spec.gates]

    def status(self) -> dict[str, Any]:
        obj = self.store.get("RolloutPlan", "shop", "checkout")
        assert obj is not None
        return obj["status"]

    def run(self, seconds: float) -> None:
        end = self.clock.now().timestamp() + seconds
        while self.clock.now().timestamp() < end:
            requeue = self.rec.reconcile(KEY)
            self.clock.advance(min(max(requeue or 5.0, 0.1), 5.0))


def test_a_healthy_rollout_goes_through_every_step_and_is_promoted() -> None:
    h = Harness()
    h.run(300)
    st = h.status()
    assert st["phase"] == "Succeeded"
    assert [d["weight"] for d in st["decisions"] if d["type"] == "StepAdvanced"] == [
        10, 25, 50, 100]
    assert ("promote", "checkout", "checkout-canary") in h.workloads.calls
    assert h.router.weight == 0 and h.workloads.observe("shop", "checkout-canary").replicas == 0
    # one Event per decision, in order, and the dispatcher was handed the outbox
    assert [e[2] for e in h.events.events][:3] == ["RunStarted", "StepAdvanced", "StepAdvanced"]
    assert h.submitted and h.submitted[0] == ("RolloutPlan", "shop", "checkout")


def test_a_bad_canary_is_rolled_back_with_evidence() -> None:
    h = Harness(bad=0.05)
    h.run(200)
    st = h.status()
    assert st["phase"] == "RolledBack" and st["reason"] == "SustainedViolation"
    evidence = st["history"][-1]["evidence"][0]
    assert evidence["verdict"] == "Fail" and evidence["value"] == 95.0
    assert h.router.weight == 0
    assert any(e[2] == "RolledBack" for e in h.events.events)


def test_status_is_written_once_per_pass_and_not_at_all_when_unchanged() -> None:
    h = Harness()
    h.rec.reconcile(KEY)  # run starts, canary scaled up
    assert h.store.writes == 1
    h.rec.reconcile(KEY)  # canary ready: first step
    assert h.store.writes == 2
    h.rec.reconcile(KEY)  # nothing new: same status, no write
    assert h.store.writes == 2


def test_a_dispatcher_write_in_between_is_kept_not_clobbered() -> None:
    h = Harness()
    h.rec.reconcile(KEY)  # run started, outbox has entries
    original = h.store.write_status

    def dispatcher_writes_first(obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        h.store.write_status = original  # type: ignore[method-assign]
        current = h.store.get("RolloutPlan", "shop", "checkout")
        assert current is not None
        theirs = dict(current["status"])
        notes = dict(theirs["notifications"])
        notes["sent"] = [m["key"] for m in notes["outbox"]]
        notes["outbox"] = []
        theirs["notifications"] = notes
        original(current, theirs)
        return original(obj, status)  # our write now carries a stale resourceVersion

    h.store.write_status = dispatcher_writes_first  # type: ignore[method-assign]
    h.clock.advance(10)
    h.workloads.set("shop", "checkout-canary", b.workload("rev-new"))
    h.rec.reconcile(KEY)
    notes = h.status()["notifications"]
    assert notes["sent"], "the dispatcher's progress was lost"
    assert all(m["key"] not in notes["sent"] for m in notes["outbox"])


def test_a_replica_that_lost_the_lease_acts_on_nothing() -> None:
    h = Harness()
    h.leader = False
    h.rec.reconcile(KEY)
    assert h.workloads.calls == [] and h.store.writes == 0


def test_invalid_spec_is_reported_and_nothing_moves() -> None:
    h = Harness(gates=[{"slo": "nope"}])
    h.rec.reconcile(KEY)
    st = h.status()
    assert st["phase"] == "Invalid"
    assert "spec.gates[0].slo: SLO 'nope' is not in SLOPolicy 'platform'" in st["message"]
    assert h.workloads.calls == []


def test_conflict_on_spec_change_is_retried_by_the_queue() -> None:
    h = Harness()
    original = h.store.write_status

    def spec_changes_first(obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        h.store.update_spec("RolloutPlan", "shop", "checkout", paused=True)
        return original(obj, status)

    h.store.write_status = spec_changes_first  # type: ignore[method-assign]
    try:
        h.rec.reconcile(KEY)
    except Conflict:
        pass
    else:
        raise AssertionError("a spec change during the pass must raise Conflict")


class FakeSource:
    def __init__(self, bad: float, total: float) -> None:
        self.bad, self.total = bad, total

    def measure_budget(self, slo: Any, ctx: Any, window: float) -> Any:
        return b.ratio(self.bad / self.total, self.total)

    def measure(self, slo: Any, track: Any, window: float, ctx: Any) -> Any:
        return b.ratio(self.bad / self.total, 1000)


def test_policy_freezes_below_threshold_and_plans_then_wait() -> None:
    h = Harness()
    policy = PolicyReconciler(store=h.store, metrics_for=lambda p: FakeSource(920, 1_000_000),
                              clock=h.clock, telemetry=Telemetry(CollectorRegistry()))
    policy.reconcile("shop/platform")
    pol = h.store.get("SLOPolicy", "shop", "platform")
    assert pol is not None
    assert pol["status"]["frozen"] is True
    assert pol["status"]["reason"] == "BudgetBelowThreshold"
    assert pol["status"]["budgetRemaining"] == 8.0
    h.rec.reconcile(KEY)
    st = h.status()
    assert st["phase"] == "Frozen" and "8.0%" in st["message"]
    assert h.router.weight == 0


def test_runs_beyond_max_concurrent_rollouts_wait_in_pending() -> None:
    h = Harness()
    h.store.put(b.plan_doc(name="payments"))
    h.workloads.set("shop", "payments", b.workload("rev-stable"))
    h.workloads.set("shop", "payments-canary", b.workload("rev-new", replicas=0))
    h.rec.slots = Slots(1)
    h.rec.reconcile(KEY)  # checkout takes the only slot
    h.rec.reconcile("shop/payments")
    payments = h.store.get("RolloutPlan", "shop", "payments")
    assert payments is not None
    assert payments["status"]["phase"] == "Pending"
    assert payments["status"]["reason"] == "WaitingForSlot"
    h.run(300)  # checkout finishes and frees the slot
    h.rec.reconcile("shop/payments")
    payments = h.store.get("RolloutPlan", "shop", "payments")
    assert payments is not None and payments["status"]["phase"] == "Progressing"
