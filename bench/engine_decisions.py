"""Decisions per second of the pure engine (goal: >= 20,000/s on this machine).

    python -m bench.engine_decisions [--runs 7] [--seconds 2]

Each run replays a mix of observations taken from whole rollouts in virtual time (healthy
steps, failing gates, rollbacks, promotions), calling ``decide`` as fast as it goes.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import timedelta

from bench.machine import describe, median
from controller.engine import decide
from controller.engine.observation import Observation
from tests.harness import builders as b
from tests.harness.world import World


def corpus() -> list[Observation]:
    """Observations captured from rollouts: healthy, a sustained failure and a fast burn."""
    observations: list[Observation] = []
    scripts = {
        "healthy": lambda t, w, g: b.ratio(0.0001, 2000),
        "failing": lambda t, w, g: b.ratio(0.01 if t > 90 else 0.0, 2000),
        "burning": lambda t, w, g: b.gate_measurement(
            g, b.ratio(1.0 if t > 70 else 0.0, 2000), burn=1.0 if t > 70 else None),
    }
    for name, script in scripts.items():
        world = World(b.plan(name=name), b.policy(), b.T0, script=script)  # type: ignore[arg-type]
        now = b.T0
        for _ in range(120):
            obs = world.observe(now)
            observations.append(obs)
            step = world.tick(now)
            now += timedelta(seconds=min(max(step.decision.requeue_after or 5, 0.5), 10))
    return observations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    observations = corpus()
    rates = []
    cpu_rates = []
    for _ in range(args.runs):
        count = 0
        start, cpu = time.perf_counter(), time.process_time()
        while time.perf_counter() - start < args.seconds:
            for obs in observations:
                decide(obs)
            count += len(observations)
        rates.append(count / (time.perf_counter() - start))
        cpu_rates.append(count / (time.process_time() - cpu))
    print(f"machine: {describe()}, load average {os.getloadavg()[0]:.2f}")
    print(f"corpus: {len(observations)} observations from 3 rollouts")
    print("runs (decisions per wall second): " + ", ".join(f"{r:,.0f}" for r in rates))
    print("runs (decisions per CPU second):  " + ", ".join(f"{r:,.0f}" for r in cpu_rates))
    print(f"median: {median(rates):,.0f} decisions/s wall, {median(cpu_rates):,.0f} per CPU "
          "second (goal >= 20,000; the CPU figure is what one core does, whatever else the "
          "machine runs)")


if __name__ == "__main__":
    main()
