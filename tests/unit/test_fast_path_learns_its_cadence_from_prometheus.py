"""Without ``--fast-interval`` the fast path runs at the scrape interval Prometheus reports
for its targets (clamped to 1-10 s; 10 s until known), just after the scrapes land; an
explicit ``--fast-interval`` wins. No sleeps: a FakeClock and fake sources."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controller.adapters.metrics.fastpath import (
    Cadence,
    ScrapeIntervals,
    best_phase,
    fast_interval_from,
    typical_scrape_interval,
)
from controller.runtime.fastpath import FastBoard, FastLoop
from tests.harness.fakes import FakeClock


class Source:
    def __init__(self, url: str, timing: list[tuple[float, float | None]] | None) -> None:
        self.url = url
        self.timing = timing
        self.asked = 0

    def scrape_timing(self) -> list[tuple[float, float | None]] | None:
        self.asked += 1
        return self.timing


def test_the_most_common_interval_of_a_server_and_the_largest_over_servers() -> None:
    assert typical_scrape_interval([15, 15, 30, 60]) == 15
    assert typical_scrape_interval([5, 30]) == 5  # a tie: the smaller
    assert typical_scrape_interval([]) is None
    assert fast_interval_from([1.0]) == 1.0
    # a tenant's Prometheus can slow the fast path down to the default, never speed it up
    assert fast_interval_from([1.0, 5.0]) == 5.0
    assert fast_interval_from([30.0]) == 10.0  # clamped: a 30 s scrape is checked every 10 s
    assert fast_interval_from([0.2]) == 1.0
    assert fast_interval_from([None]) == 10.0 and fast_interval_from([]) == 10.0


def test_each_server_is_asked_once_then_every_ten_minutes() -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    fast = Source("http://a", [(1.0, 100.2), (1.0, 200.2), (60.0, 300.0)])
    learn = ScrapeIntervals(lambda: [fast], clock.monotonic)
    cadence = learn()
    assert cadence == Cadence(1.0, pytest.approx(0.3))  # just after the scrapes (+0.1 s)
    learn()
    assert fast.asked == 1
    clock.advance(600)
    learn()
    assert fast.asked == 2
    # nothing queried yet: nothing learned
    assert ScrapeIntervals(lambda: [], clock.monotonic)() is None
    # a server that does not say (an error, an old version): the default, at any phase
    assert ScrapeIntervals(lambda: [Source("http://b", None)], clock.monotonic)() == Cadence(
        10.0, None)


def test_the_phase_that_waits_least_for_every_target() -> None:
    assert best_phase([7.25], 1.0) == pytest.approx(0.35)
    # two targets 0.2 s apart: just after the later one, so neither waits a whole interval
    assert best_phase([0.2, 0.4], 1.0) == pytest.approx(0.5)
    assert best_phase([9.95], 1.0) == pytest.approx(0.05)  # wraps around


def loop(clock: FakeClock, learned: Cadence | None, interval: float = 10.0,
         fixed: bool = False) -> tuple[FastLoop, list[float]]:
    told: list[float] = []
    return FastLoop(plans=list, policy_lookup=lambda ns, name: None,
                    measure=lambda targets, at: {}, target=lambda *a: None, board=FastBoard(),
                    enqueue=lambda key: None, clock=clock, interval=interval,
                    learn=lambda: learned, on_interval=told.append,
                    fixed_interval=fixed), told


def test_the_loop_takes_the_learned_interval_and_runs_on_its_phase() -> None:
    clock = FakeClock(datetime.fromtimestamp(1000.0, UTC))
    fl, told = loop(clock, Cadence(1.0, 0.3))
    fl.relearn()
    assert (fl.interval, fl.phase, told) == (1.0, 0.3, [1.0])
    # a round started at 1000.0 and took 0.05 s: the next at 1001.3, not 1000.3 (too soon)
    clock.advance(0.05)
    assert fl.delay_to_phase(1000.0) == pytest.approx(1.25)
    clock.advance(0.5)
    assert fl.delay_to_phase(1000.5) == pytest.approx(0.75)


def test_an_explicit_fast_interval_wins_and_takes_the_phase_only_when_it_is_the_scrape_interval(
) -> None:
    clock = FakeClock(datetime.fromtimestamp(1000.0, UTC))
    fl, told = loop(clock, Cadence(1.0, 0.3), interval=1.0, fixed=True)
    fl.relearn()
    assert (fl.interval, fl.phase, told) == (1.0, 0.3, [])
    fl, told = loop(clock, Cadence(1.0, 0.3), interval=5.0, fixed=True)
    fl.relearn()
    assert (fl.interval, fl.phase, told) == (5.0, None, [])
    assert fl.delay_to_phase(1000.0) is None  # at its own interval, any phase


def test_nothing_learned_keeps_the_default() -> None:
    clock = FakeClock(datetime.fromtimestamp(1000.0, UTC))
    fl, told = loop(clock, None)
    fl.relearn()
    assert (fl.interval, fl.phase, told) == (10.0, None, [])
