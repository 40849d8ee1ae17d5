"""A fast burn too severe to be noise acts at its first evaluation.

The episode rule (``verdicts``: a critical alert's short window and the recent window both
above the alert's factor) normally waits for a second evaluation in a row, so that one odd
answer never rolls a canary back. That costs one fast interval. It is skipped when the
recent window shows a burn that no healthy canary produces, however the answer came about:

- the recent window's bad ratio is at least ``SEVERE_MULTIPLE`` times the alert's threshold
  (4 x 14.4 x 0.1 % = 5.76 % of requests for a 99.9 % objective), or half of all requests
  where that would be more than half (loose objectives);
- and at least ``SEVERE_MIN_BAD`` requests failed in it.

The short window must still burn above the factor with ``minSamples`` events (the episode's
own condition): the budget is being spent at the alert's rate, not only now. A canary that
meets its objective (0.1 % errors at 99.9 %) fails 5 of the at most 86 requests that would
make 5 failures 5.76 % with a probability under 4e-8 (Poisson, mean 0.086); with more
requests it needs proportionally more failures, which is rarer still. A single 60-second
spike of 3 % errors (30x, about 2x the 14.4x factor) is never severe; 5 % errors (50x) keep
the second evaluation; a canary failing every request is severe as soon as the recent
window holds a little over half a second of it (at the 10 s recent window of a 1 s fast
interval), about 3 seconds at the default 30 s.
"""

from __future__ import annotations

from controller.engine import budget
from controller.engine.measurements import Measurement

#: times the alert's threshold (factor x budget) the recent window's bad ratio must reach
SEVERE_MULTIPLE = 4.0
#: ... or this bad ratio, whichever is lower (a 95 % objective's 14.4x is 72 %)
SEVERE_MAX_RATIO = 0.5
#: failed requests the recent window must hold
SEVERE_MIN_BAD = 5.0


def severe_ratio(factor: float, objective_percent: float) -> float:
    """The recent window's bad ratio at and above which a burn is severe."""
    threshold = factor * budget.budget_fraction(objective_percent)
    return min(SEVERE_MULTIPLE * threshold, SEVERE_MAX_RATIO)


def is_severe(recent: Measurement | None, factor: float, objective_percent: float) -> bool:
    """Does the recent window burn so fast that the episode may act at once?"""
    if recent is None or not recent.ok or recent.value is None:
        return False
    bad = recent.numerator if recent.numerator is not None else (
        recent.value * (recent.samples or 0.0))
    return (bad >= SEVERE_MIN_BAD
            and recent.value >= severe_ratio(factor, objective_percent))
