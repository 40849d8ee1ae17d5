"""Error-budget arithmetic from the Google SRE Workbook, chapter "Alerting on SLOs".

- burn rate = error ratio / (1 - objective): 1.0 spends the budget exactly over the window.
- A multi-window alert fires only when the burn rate exceeds its factor over both the
  long and the short window.
- Budget remaining = 1 - (bad / total over the SLO window) / (1 - objective), computed
  from sums over the window (``increase()``), never an average of ratios.

Objectives are percentages (99.9), ratios are fractions (0.001).
"""

from __future__ import annotations

import math


def budget_fraction(objective_percent: float) -> float:
    """The error budget as a fraction of events: 99.9 -> 0.001."""
    if not 0 < objective_percent < 100:
        raise ValueError(f"objective must be in (0, 100), not {objective_percent}")
    return 1.0 - objective_percent / 100.0


def burn_rate(error_ratio: float, objective_percent: float) -> float:
    """How fast the budget is spent: 1.0 spends it exactly over the SLO window."""
    return error_ratio / budget_fraction(objective_percent)


def alert_fires(long_burn: float | None, short_burn: float | None, factor: float) -> bool:
    """The Workbook's multi-window rule: both windows must exceed the factor."""
    if long_burn is None or short_burn is None:
        return False
    return long_burn > factor and short_burn > factor


def budget_remaining(bad: float, total: float, objective_percent: float) -> float | None:
    """Share of the budget left over the window, as a fraction (may go below 0).

    ``bad`` and ``total`` are event counts summed over the whole SLO window. None when there
    was no traffic (the budget is unknown, not full).
    """
    if total <= 0 or math.isnan(total) or math.isnan(bad):
        return None
    return 1.0 - (bad / total) / budget_fraction(objective_percent)


def budget_consumed(factor: float, alert_window_seconds: float, slo_window_seconds: float) -> float:
    """Fraction of the SLO window's budget spent by burning at ``factor`` for the alert window.

    The Workbook: 14.4x over 1h of a 30-day SLO spends 14.4 * 1h / 720h = 2 % of the budget.
    """
    return factor * alert_window_seconds / slo_window_seconds


def factor_for(
    budget_spent: float, alert_window_seconds: float, slo_window_seconds: float
) -> float:
    """The burn-rate factor at which ``budget_spent`` of the budget goes within the window."""
    return budget_spent * slo_window_seconds / alert_window_seconds


def detection_seconds(
    factor: float, error_ratio: float, objective_percent: float, long_window_seconds: float
) -> float | None:
    """Time for a sudden, steady error ratio to fire an alert of ``factor`` on its long window.

    The Workbook's formula: detection time = (factor * (1 - objective) / error ratio) * long
    window. None when that error ratio never reaches the factor.
    """
    if error_ratio <= 0:
        return None
    threshold = factor * budget_fraction(objective_percent)
    if error_ratio < threshold:
        return None
    return threshold / error_ratio * long_window_seconds


def exhaustion_seconds(burn: float, slo_window_seconds: float) -> float | None:
    """Time until the whole budget is gone at a steady burn rate."""
    if burn <= 0:
        return None
    return slo_window_seconds / burn
