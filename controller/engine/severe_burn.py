"""A fast burn too severe to be noise acts at its first evaluation.

The episode rule (``verdicts``: a critical alert's short window and the recent window both
above the alert's factor) normally waits for a second evaluation in a row, so that one odd
answer never rolls a canary back. That costs one fast interval. It is skipped when the
recent window shows a burn that no healthy canary produces:

- the recent window's bad ratio is at least ``SEVERE_MULTIPLE`` times the alert's threshold
  (4 x 14.4 x 0.1 % = 5.76 % of requests for a 99.9 % objective), or half of all requests
  where that would be more than half (loose objectives);
- and at least ``SEVERE_MIN_BAD`` requests failed in it.

The short window must still burn above the factor with ``minSamples`` events (the episode's
own condition): the budget is being spent at the alert's rate, not only now.

Why this is safe. The second evaluation re-reads windows that overlap the first almost
entirely (one fast interval of a 10-30 s recent window and a minutes-long short window): the
failures the first saw are still there, so it confirms a burst as surely as the first saw
it. What it filters is an answer that does not survive one more interval, not chance; a
burn of 4x the threshold made of real failed requests is no such answer. Chance is bounded
by the counts, as it is for the confirmed rule: a canary that meets a 99.9 % objective
fails the 2 requests that make up 5.76 % of at most 34 with a probability under 6e-4 (mean
0.034), and the short window must burn above the factor with ``minSamples`` events too (a
5-minute window at 5 requests a second: 22 failures where 1.5 are expected). One failed
request is never severe. A single 60-second spike of 3 % errors (30x: about 2x the factor)
is never severe; 5 % errors (50x) keep the second evaluation. ``SEVERE_MIN_BAD`` is 2, not
more, because a canary at the first step of a small service sees 1-4 requests a second
(the sandbox's does): waiting for more failures is waiting for traffic, the very delay
this rule removes.
"""

from __future__ import annotations

from controller.engine import budget
from controller.engine.measurements import Measurement

#: times the alert's threshold (factor x budget) the recent window's bad ratio must reach
SEVERE_MULTIPLE = 4.0
#: ... or this bad ratio, whichever is lower (a 95 % objective's 14.4x is 72 %)
SEVERE_MAX_RATIO = 0.5
#: failed requests the recent window must hold (one failed request is never severe)
SEVERE_MIN_BAD = 2.0


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
