"""When a policy freezes releases and when it lets them go again (``engine/freeze.py``):
below ``whenRemainingBelow`` it freezes, at ``releaseAbove`` or more it releases, in between
it keeps what it was (hysteresis); a critical burn on the stable service freezes whatever
the budget; an unknown budget never lets a run through.

Budgets are given in percent of the error budget left, turned into the bad and total counts
over the 30-day window that a Prometheus measurement carries (objective 99.9 %).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.api.policy import SLOPolicy
from controller.engine.freeze import SLOMeasurements, evaluate, freeze_input
from controller.engine.measurements import BurnRateMeasurement, Measurement, MeasurementStatus
from tests.harness import builders as b

FREEZE_SLO = "api_availability"  # 99.9 % over 30 d in builders.policy_doc
TOTAL = 10_000_000.0  # events in the window


def budget(remaining_percent: float) -> Measurement:
    """The 30-day counts that leave REMAINING_PERCENT of a 99.9 % budget."""
    bad = (1 - remaining_percent / 100) * 0.001 * TOTAL
    return Measurement(MeasurementStatus.OK, value=bad / TOTAL, samples=TOTAL, numerator=bad,
                       denominator=TOTAL, query="budget")


def measured(remaining: float | Measurement | None, *,
             burn: tuple[float, float] | None = None) -> dict[str, SLOMeasurements]:
    """This evaluation's measurements of the freeze SLO; BURN = (long, short) bad ratios of
    its first (critical, 14.4x over 1h and 5m) alert on the stable service."""
    m = budget(remaining) if isinstance(remaining, float | int) else remaining
    burns: tuple[BurnRateMeasurement, ...] = ()
    if burn is not None:
        long, short = burn
        burns = (BurnRateMeasurement(0, b.ratio(long, 50_000), b.ratio(short, 5_000),
                                     3600, 300),)
    return {FREEZE_SLO: SLOMeasurements(FREEZE_SLO, m, burns)}


def policy(below: float = 10, release: float = 15) -> SLOPolicy:
    doc = b.policy_doc()
    doc["spec"]["errorBudgetPolicy"]["freezeReleases"].update(
        {"whenRemainingBelow": below, "releaseAbove": release})
    return SLOPolicy.model_validate(doc)


def run(p: SLOPolicy, evaluations: list[dict[str, SLOMeasurements]],
        start: datetime = b.T0) -> SLOPolicy:
    """Evaluate P once per entry (60 s apart), each on the status the previous one wrote."""
    for i, m in enumerate(evaluations):
        p = p.model_copy(update={"status": evaluate(p, m, start + timedelta(minutes=i)).status})
    return p


def blocks_new_runs(p: SLOPolicy, at: datetime = b.T0) -> bool:
    fi = freeze_input(p, "checkout", at + timedelta(hours=1))
    assert fi is not None
    return fi.blocks


# -- thresholds ----------------------------------------------------------------------------


@pytest.mark.parametrize(("remaining", "frozen", "reason"), [
    (100.0, False, ""),
    (20.0, False, ""),
    (15.0, False, ""),
    (10.0, False, ""),           # not below 10 %
    (9.99, True, "BudgetBelowThreshold"),
    (8.0, True, "BudgetBelowThreshold"),
    (0.0, True, "BudgetBelowThreshold"),
    (-250.0, True, "BudgetBelowThreshold"),  # overspent: the budget goes negative
])
def test_an_open_policy_freezes_only_below_the_threshold(
    remaining: float, frozen: bool, reason: str,
) -> None:
    p = run(policy(), [measured(remaining)])
    assert p.status.frozen is frozen and p.status.reason == reason
    assert p.status.budget_remaining == pytest.approx(remaining)
    assert blocks_new_runs(p) is frozen


def test_the_status_shows_the_budget_figure_and_the_thresholds() -> None:
    p = run(policy(), [measured(8.0)])
    assert p.status.message == ("8.0% of the api_availability budget left (freeze below 10%, "
                                "release at 15%)")
    slo = next(s for s in p.status.slos if s.name == FREEZE_SLO)
    assert slo.state == "Ok" and slo.budget_remaining == pytest.approx(8.0)
    assert slo.message == "9200 bad of 10000000 events in 30d"  # 92 % of 10 000 spent
    frozen = next(c for c in p.status.conditions if c.type == "Frozen")
    assert (frozen.status, frozen.reason) == ("True", "BudgetBelowThreshold")
    fi = freeze_input(p, "checkout", b.T0)
    assert fi is not None and fi.budget_remaining == pytest.approx(8.0)


# -- hysteresis ----------------------------------------------------------------------------


@pytest.mark.parametrize(("then", "frozen"), [
    (9.0, True),
    (10.0, True),    # back at the threshold: still frozen
    (12.5, True),
    (14.99, True),
    (15.0, False),   # exactly releaseAbove: released
    (15.01, False),
    (60.0, False),
])
def test_a_frozen_policy_releases_at_release_above_or_more(then: float, frozen: bool) -> None:
    p = run(policy(), [measured(8.0), measured(then)])
    assert p.status.frozen is frozen
    assert blocks_new_runs(p) is frozen


def test_inside_the_band_a_frozen_policy_says_when_releases_resume() -> None:
    p = run(policy(), [measured(8.0), measured(12.0)])
    assert p.status.reason == "BudgetBelowThreshold"
    assert p.status.message == "12.0% of the api_availability budget left; releases resume at 15%"


@pytest.mark.parametrize(("then", "frozen"), [(12.0, False), (14.99, False), (9.99, True)])
def test_an_open_policy_inside_the_band_stays_open(then: float, frozen: bool) -> None:
    p = run(policy(), [measured(20.0), measured(then)])
    assert p.status.frozen is frozen


def test_equal_thresholds_have_no_band() -> None:
    p = run(policy(below=10, release=10), [measured(8.0), measured(10.0)])
    assert p.status.frozen is False


def test_frozen_since_is_kept_while_the_freeze_lasts_and_cleared_when_it_lifts() -> None:
    p = run(policy(), [measured(8.0), measured(9.0), measured(12.0)])
    assert p.status.frozen_since == b.T0
    p = run(p, [measured(16.0)], start=b.T0 + timedelta(minutes=3))
    assert p.status.frozen is False and p.status.frozen_since is None


# -- fast burn on stable -------------------------------------------------------------------


def test_a_critical_fast_burn_on_stable_freezes_even_with_budget_left() -> None:
    # 2 % errors = 20x the 0.1 % budget on both windows: the 14.4x alert fires.
    p = run(policy(), [measured(80.0, burn=(0.02, 0.02))])
    assert p.status.frozen and p.status.reason == "FastBurn"
    assert p.status.message == "api_availability burns 20.0x over 1h and 20.0x over 5m " \
                               "(critical at 14.4x)"
    assert blocks_new_runs(p)
    alert = next(s for s in p.status.slos if s.name == FREEZE_SLO).burn_rates[0]
    assert alert.firing and alert.long_rate == pytest.approx(20.0)


@pytest.mark.parametrize("burn", [(0.02, 0.01), (0.01, 0.02), (0.0144, 0.0144)])
def test_a_burn_over_one_window_only_or_at_the_factor_does_not_freeze(
    burn: tuple[float, float],
) -> None:
    p = run(policy(), [measured(80.0, burn=burn)])
    assert p.status.frozen is False


def test_when_the_fast_burn_stops_the_policy_opens_again() -> None:
    p = run(policy(), [measured(80.0, burn=(0.02, 0.02)), measured(80.0, burn=(0.02, 0.0))])
    assert p.status.frozen is False


def test_a_fast_burn_freeze_lasts_while_the_alert_fires_not_until_release_above() -> None:
    # The budget never went below 10 %: once the burn stops at 12 % releases open again.
    p = run(policy(), [measured(12.0, burn=(0.02, 0.02)), measured(12.0)])
    assert p.status.frozen is False and p.status.budget_freeze is False


def test_a_fast_burn_that_spends_the_budget_below_the_threshold_leaves_a_budget_freeze(
) -> None:
    p = run(policy(), [measured(12.0, burn=(0.02, 0.02)), measured(9.0, burn=(0.02, 0.02)),
                       measured(12.0)])
    assert p.status.frozen and p.status.reason == "BudgetBelowThreshold"
    assert p.status.message.endswith("releases resume at 15%")


def test_a_burn_rate_that_cannot_be_measured_is_not_a_fast_burn() -> None:
    gone = Measurement(MeasurementStatus.STALE, message="stopped")
    m = measured(80.0)
    m[FREEZE_SLO] = SLOMeasurements(FREEZE_SLO, budget(80.0),
                                    (BurnRateMeasurement(0, gone, gone, 3600, 300),))
    p = run(policy(), [m])
    assert p.status.frozen is False


# -- unknown budget ------------------------------------------------------------------------

UNKNOWN = [
    pytest.param(None, "NoData", id="not-measured"),
    pytest.param(Measurement(MeasurementStatus.NO_DATA, message="no traffic"), "NoData",
                 id="no-data"),
    pytest.param(Measurement(MeasurementStatus.ERROR, message="cannot reach prometheus"),
                 "PrometheusError", id="prometheus-down"),
    pytest.param(Measurement(MeasurementStatus.STALE, message="stopped"), "PrometheusError",
                 id="stale"),
    pytest.param(Measurement(MeasurementStatus.AMBIGUOUS, message="2 series"),
                 "PrometheusError", id="ambiguous"),
    pytest.param(Measurement(MeasurementStatus.OK, value=0.0, samples=0, numerator=0,
                             denominator=0), "NoData", id="zero-events"),
]


@pytest.mark.parametrize(("m", "slo_reason"), UNKNOWN)
@pytest.mark.parametrize("before", [None, 50.0, 12.0, 8.0])
def test_an_unknown_budget_never_lets_a_new_run_through(
    m: Measurement | None, slo_reason: str, before: float | None,
) -> None:
    history = [] if before is None else [measured(before)]
    unknown = {FREEZE_SLO: SLOMeasurements(FREEZE_SLO, m)} if m is not None else {}
    p = run(policy(), [*history, unknown])
    assert p.status.frozen and p.status.reason == "BudgetUnknown"
    assert p.status.budget_remaining is None
    slo = next(s for s in p.status.slos if s.name == FREEZE_SLO)
    assert (slo.state, slo.reason) == ("Unknown", slo_reason)
    assert blocks_new_runs(p)
    fi = freeze_input(p, "checkout", b.T0)
    assert fi is not None and fi.unknown  # in-flight runs hold, never roll back on it


def test_a_policy_never_evaluated_blocks_new_runs() -> None:
    fi = freeze_input(policy(), "checkout", b.T0)
    assert fi is not None and fi.blocks and fi.reason == "BudgetUnknown"
    assert fi.message == "the policy has not been evaluated yet"


def test_once_measurable_an_open_budget_opens_again() -> None:
    p = run(policy(), [{}, measured(50.0)])
    assert p.status.frozen is False and not blocks_new_runs(p)


def test_a_freeze_interrupted_by_an_unknown_budget_still_releases_only_at_release_above() -> None:
    # 8 % (frozen), 12 % (held by hysteresis), one failed evaluation, 12 % again: the budget
    # never reached releaseAbove, so releases must stay frozen.
    p = run(policy(), [measured(8.0), measured(12.0), {}])
    assert p.status.reason == "BudgetUnknown" and p.status.budget_freeze
    p = run(p, [measured(12.0)], start=b.T0 + timedelta(minutes=3))
    assert p.status.frozen and p.status.reason == "BudgetBelowThreshold"
    assert blocks_new_runs(p)
    p = run(p, [measured(15.0)], start=b.T0 + timedelta(minutes=4))
    assert p.status.frozen is False and p.status.budget_freeze is False


def test_an_unknown_budget_does_not_latch_an_open_policy_inside_the_band() -> None:
    p = run(policy(), [measured(12.0), {}, measured(12.0)])
    assert p.status.frozen is False and not blocks_new_runs(p)


def test_a_budget_freeze_written_before_the_latch_existed_is_still_held() -> None:
    p = run(policy(), [measured(8.0)])
    old_status = p.status.model_copy(update={"budget_freeze": False})  # an older controller
    p = run(p.model_copy(update={"status": old_status}), [measured(12.0)],
            start=b.T0 + timedelta(minutes=1))
    assert p.status.frozen and p.status.budget_freeze


def test_a_policy_without_a_freeze_rule_never_blocks() -> None:
    doc = b.policy_doc()
    del doc["spec"]["errorBudgetPolicy"]
    p = SLOPolicy.model_validate(doc)
    p = run(p, [measured(1.0)])
    assert p.status.frozen is False and freeze_input(p, "checkout", b.T0) is None


# -- the invariant, over any sequence of evaluations ---------------------------------------

EVALUATION = st.one_of(st.none(), st.floats(min_value=-50, max_value=100, allow_nan=False))


@settings(max_examples=300, deadline=None)
@given(st.lists(EVALUATION, min_size=1, max_size=12))
def test_no_run_starts_on_an_unknown_or_low_budget_and_the_band_keeps_the_last_state(
    sequence: list[float | None],
) -> None:
    p = policy()
    frozen_by_budget = False  # the hysteresis state a careful operator would keep
    for i, remaining in enumerate(sequence):
        p = run(p, [measured(remaining) if remaining is not None else {}],
                start=b.T0 + timedelta(minutes=i))
        blocks = blocks_new_runs(p, b.T0 + timedelta(minutes=i))
        if remaining is None:
            assert blocks and p.status.reason == "BudgetUnknown"
            continue
        if remaining < 10:
            frozen_by_budget = True
        elif remaining >= 15:
            frozen_by_budget = False
        assert blocks is frozen_by_budget, (sequence[: i + 1], p.status.reason)
