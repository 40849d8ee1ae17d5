"""The replica-ratio router's arithmetic: weight -> canary replicas -> weight, and the
share of traffic the canary really gets."""

from __future__ import annotations

import math
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from controller.adapters.traffic.replicas import (
    canary_replicas,
    implied_weight,
    traffic_share,
)

totals = st.integers(min_value=1, max_value=10000)
small_totals = st.integers(min_value=1, max_value=100)
weights = st.integers(min_value=0, max_value=100)


@given(totals, weights)
def test_canary_replicas_is_the_ceiling_of_the_weighted_total(total: int, weight: int) -> None:
    assert canary_replicas(total, weight) == math.ceil(Fraction(total * weight, 100))


@given(totals)
def test_weight_zero_runs_no_canary_and_weight_100_runs_the_full_total(total: int) -> None:
    assert canary_replicas(total, 0) == 0
    assert canary_replicas(total, 100) == total


@given(totals, weights)
def test_any_positive_weight_runs_at_least_one_canary_and_never_more_than_total(
    total: int, weight: int
) -> None:
    replicas = canary_replicas(total, weight)
    assert (replicas >= 1) == (weight > 0)
    assert replicas <= total


@given(totals, weights, weights)
def test_more_weight_never_means_fewer_canary_replicas(total: int, a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert canary_replicas(total, low) <= canary_replicas(total, high)


@given(small_totals, st.data())
def test_a_hand_scaled_canary_reads_back_as_a_weight_that_gives_the_same_replicas(
    total: int, data: st.DataObject
) -> None:
    replicas = data.draw(st.integers(min_value=0, max_value=total))
    weight = implied_weight(total, replicas)
    assert 0 <= weight <= 100
    assert canary_replicas(total, weight) == replicas


@given(small_totals, weights)
def test_the_implied_weight_of_a_configured_weight_gives_back_its_replicas(
    total: int, weight: int
) -> None:
    replicas = canary_replicas(total, weight)
    implied = implied_weight(total, replicas)
    assert implied >= weight
    assert canary_replicas(total, implied) == replicas


def test_implied_weight_examples() -> None:
    assert implied_weight(4, 1) == 25
    assert implied_weight(3, 2) == 66
    assert implied_weight(10, 10) == 100
    assert implied_weight(4, 9) == 100  # more canary Pods than the total: capped
    assert implied_weight(4, 0) == 0


@given(st.integers(min_value=0, max_value=10000), st.integers(min_value=0, max_value=10000))
def test_traffic_share_is_the_canary_fraction_of_ready_pods(stable: int, canary: int) -> None:
    share = traffic_share(stable, canary)
    if stable + canary == 0:
        assert share is None
        return
    assert share is not None
    assert 0 <= share <= 100
    assert math.isclose(share, 100 * canary / (stable + canary))


def test_with_stable_kept_full_the_canary_gets_less_than_its_weight() -> None:
    # 10 stable replicas; weight 10 -> 1 canary Pod -> 1 of 11 ready Pods
    assert canary_replicas(10, 10) == 1
    assert traffic_share(10, 1) == 100 / 11
    # weight 100 -> as many canary as stable Pods -> half of the traffic
    assert traffic_share(10, canary_replicas(10, 100)) == 50
