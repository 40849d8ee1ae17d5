"""The SRE Workbook's worked numbers ("Alerting on SLOs") hold in our budget arithmetic."""

from __future__ import annotations

import pytest

from controller.engine import budget

HOUR = 3600.0
DAY = 86400.0


def test_burn_rate_is_error_ratio_over_the_budget() -> None:
    assert budget.burn_rate(0.001, 99.9) == pytest.approx(1.0)
    assert budget.burn_rate(0.0144, 99.9) == pytest.approx(14.4)


def test_14_4x_over_1h_at_99_9_spends_2_percent_of_a_30_day_budget() -> None:
    assert budget.budget_consumed(14.4, HOUR, 30 * DAY) == pytest.approx(0.02)


def test_6x_over_6h_spends_5_percent_and_1x_over_3d_spends_10_percent() -> None:
    assert budget.budget_consumed(6, 6 * HOUR, 30 * DAY) == pytest.approx(0.05)
    assert budget.budget_consumed(1, 3 * DAY, 30 * DAY) == pytest.approx(0.10)


def test_factors_scale_with_the_slo_window() -> None:
    # The factors policies/platform-slos.yaml documents for 7-day SLOs.
    assert budget.factor_for(0.02, HOUR, 7 * DAY) == pytest.approx(3.36)
    assert budget.factor_for(0.05, 6 * HOUR, 7 * DAY) == pytest.approx(1.4)
    assert budget.factor_for(0.02, HOUR, 30 * DAY) == pytest.approx(14.4)


def test_detection_time_formula() -> None:
    # Workbook: a 100 % outage at 99.9 % fires the 14.4x/1h alert after
    # (1 - 0.999) / 1.0 * 1h * 14.4 = 0.0144 h = 51.84 s.
    assert budget.detection_seconds(14.4, 1.0, 99.9, HOUR) == pytest.approx(51.84)
    # A 1.44 % error ratio takes the whole hour; below that the alert never fires.
    assert budget.detection_seconds(14.4, 0.0144, 99.9, HOUR) == pytest.approx(HOUR)
    assert budget.detection_seconds(14.4, 0.01, 99.9, HOUR) is None


def test_multi_window_alert_needs_both_windows() -> None:
    assert budget.alert_fires(20, 15, 14.4)
    assert not budget.alert_fires(20, 2, 14.4)  # recovered: the short window clears it
    assert not budget.alert_fires(2, 20, 14.4)  # a spike too short for the long window
    assert not budget.alert_fires(None, 20, 14.4)


def test_budget_remaining_is_a_ratio_of_sums() -> None:
    # 1,000,000 requests in 30 days with 900 errors at 99.9 %: 90 % of the budget spent.
    assert budget.budget_remaining(900, 1_000_000, 99.9) == pytest.approx(0.10)
    assert budget.budget_remaining(2000, 1_000_000, 99.9) == pytest.approx(-1.0)
    assert budget.budget_remaining(0, 0, 99.9) is None


def test_average_of_ratios_would_be_wrong() -> None:
    # Two days: a quiet day with 10 % errors on 100 requests, a busy one with none on 99,900.
    days = [(10, 100), (0, 99_900)]
    sums = budget.budget_remaining(sum(d[0] for d in days), sum(d[1] for d in days), 99.9)
    averaged = 1 - (sum(bad / total for bad, total in days) / 2) / 0.001
    assert sums == pytest.approx(0.9)
    assert averaged < -40  # the naive average would call the budget blown fifty times over


def test_exhaustion_time() -> None:
    assert budget.exhaustion_seconds(14.4, 30 * DAY) == pytest.approx(50 * HOUR)
