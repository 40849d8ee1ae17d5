"""The reliability suite of issue 13, as one command.

    python -m bench.reliability [--short] [--only NAME]... [--cluster DIR] [--workdir DIR]

Runs each scenario against the local control plane (started in a temporary directory and
stopped at the end, or an existing ``tests.harness.cluster`` directory with
``--cluster``) with the real ``rolloutctl run`` processes, a live Prometheus and a Slack
stand-in; prints each scenario's PASS/FAIL and its figures as it ends, then a Markdown
table of all of them and the machine; exits 1 if any scenario failed.

Scenarios (``--only`` takes these names; sizes full / ``--short``):

- ``sigkill``: >= 50 / 12 random SIGKILLs of the controller across 4 / 3 concurrent plans
- ``failover``: leader SIGKILLed with 6 / 3 plans mid-run on two replicas
- ``prometheus``: Prometheus stopped 10 / 2 minutes mid-step
- ``slack``: rollback timing with Slack healthy, 500 and 429 (5 / 2 runs each)
- ``apiserver``: kube-apiserver restarted mid-run
- ``badinput``: 10,000 / 500 invalid plans and policies; 1,000 / 100 through the API server
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import describe
from tests.harness.chaos import SCENARIOS, ScenarioResult, local_env, run_scenario


def table(results: list[ScenarioResult]) -> str:
    lines = ["| Scenario | Result | Figures |", "|---|---|---|"]
    for r in results:
        figures = "; ".join(f"{k}: {v}" for k, v in r.figures.items())
        if r.error:
            figures += ("; " if figures else "") + "error: " + r.error.splitlines()[0]
        lines.append(f"| {r.name} | {'PASS' if r.passed else 'FAIL'} | "
                     f"{figures.replace('|', '/')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the smaller sizes CI runs")
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS),
                        help="run only this scenario (repeatable)")
    parser.add_argument("--cluster", type=Path,
                        help="an existing `python -m tests.harness.cluster up DIR`")
    parser.add_argument("--workdir", type=Path, help="where logs and data go (default: a "
                                                     "new temporary directory)")
    args = parser.parse_args(argv)
    names = args.only or list(SCENARIOS)
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="reliability-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"reliability suite ({'short' if args.short else 'full'}): {', '.join(names)}")
    print(f"machine: {describe()}")
    print(f"work directory (logs): {workdir}", flush=True)
    results: list[ScenarioResult] = []
    with local_env(workdir, args.cluster.resolve() if args.cluster else None) as env:
        for name in names:
            print(f"\n== {name} ...", flush=True)
            result = run_scenario(name, env, args.short)
            results.append(result)
            print(result.report(), flush=True)
    print(f"\n{table(results)}\n")
    print(f"machine: {describe()}")
    failed = [r.name for r in results if not r.passed]
    print(f"{len(results) - len(failed)}/{len(results)} scenarios passed in "
          f"{time.monotonic() - started:.0f} s" + (f"; FAILED: {', '.join(failed)}"
                                                   if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
