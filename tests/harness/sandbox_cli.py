"""``scripts/sandbox up|down|status|demo``: a real progressive rollout on this machine.

A repository tool, not part of the rolloutctl package (``make demo`` runs ``demo``): the
sandbox itself is :mod:`tests.harness.sandbox`. Run as ``python -m tests.harness.sandbox_cli``
with the repository on ``PYTHONPATH`` (``scripts/sandbox`` does that).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

sandbox_app = typer.Typer(help="A local sandbox: control plane, Prometheus, demo services, "
                               "Slack stand-in and the controller, on this machine.",
                          no_args_is_help=True, add_completion=False,
                          pretty_exceptions_enable=False)

DirOption = Annotated[Path, typer.Option("--dir", help="Where the sandbox keeps its state")]
DEFAULT_DIR = Path(".sandbox")


def _say(text: str) -> None:
    from rich.console import Console

    Console(highlight=False, soft_wrap=True).print(text)


def _sandbox(directory: Path) -> Any:
    from tests.harness.sandbox import Sandbox

    return Sandbox(directory, progress=lambda m: _say(f"[dim]sandbox:[/dim] {m}"))


@sandbox_app.command()
def up(directory: DirOption = DEFAULT_DIR) -> None:
    """Start everything, apply the default policy and a sample plan; leave it running."""
    from tests.harness.sandbox import SandboxError

    try:
        state = _sandbox(directory).up()
    except SandboxError as exc:
        _say(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    _print_urls(state)


@sandbox_app.command()
def down(directory: DirOption = DEFAULT_DIR) -> None:
    """Stop exactly the processes `up` started (by PID)."""
    stopped = _sandbox(directory).down()
    _say("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@sandbox_app.command()
def status(directory: DirOption = DEFAULT_DIR) -> None:
    """Which sandbox processes run, and the sample plan's phase."""
    from tests.harness.sandbox import State, plan_status

    processes = _sandbox(directory).processes()
    if not processes:
        _say("no sandbox here; start one with `scripts/sandbox up`")
        raise typer.Exit(1)
    for name, alive in processes.items():
        _say(f"{'[green]running[/green]' if alive else '[red]stopped[/red]'}  {name}")
    state = State.load(directory.resolve())
    if state is not None and all(processes.values()):
        st = plan_status(state)
        _say(f"plan demo/checkout: {st.get('phase')} ({st.get('reason')}) step "
             f"{(st.get('currentStep') or 0) + 1}, canary weight {st.get('canaryWeight', 0)}%")
        _print_urls(state)
    if not all(processes.values()):
        raise typer.Exit(1)


def _print_urls(state: Any) -> None:
    if state.urls.get("dashboard"):
        _say(f"  dashboard      {state.urls['dashboard']}   (live; stays up until "
             "`scripts/sandbox down`)")
    _say(f"  kubeconfig     {state.kubeconfig}   (export KUBECONFIG=... to use rolloutctl)")
    _say(f"  Prometheus     {state.urls.get('prometheus')}")
    _say(f"  Slack page     {state.urls.get('slack-page')}")
    _say(f"  controller     {state.urls.get('controller')}/metrics")


# --------------------------------------------------------------------------- the stories


class Story:
    def __init__(self, state: Any) -> None:
        self.state = state
        self.last: tuple[Any, ...] = ()
        self.slack_seen = 0

    def narrate(self, st: dict[str, Any]) -> None:
        gates = ", ".join(f"{g['name']} {g.get('verdict')}" for g in st.get("gates", [])
                          if g.get("evaluatedAt"))
        key = (st.get("phase"), st.get("reason"), st.get("currentStep"), st.get("canaryWeight"))
        if key != self.last:
            step = st.get("currentStep")
            where = f"step {step + 1}/4, " if step is not None else ""
            _say(f"  {time.strftime('%H:%M:%S')}  [bold]{st.get('phase')}[/bold] "
                 f"({st.get('reason')}) {where}canary weight {st.get('canaryWeight', 0)}%"
                 + (f"  [dim]gates: {gates}[/dim]" if gates else ""))
            self.last = key
        self.slack()

    def slack(self) -> None:
        from tests.harness.sandbox import slack_messages

        messages = slack_messages(self.state)
        for m in messages[self.slack_seen:]:
            where = "  ↳" if m["thread_ts"] else "  ▪"
            _say(f"  [magenta]slack {m['channel']}[/magenta]{where} {m['text'][:110]}")
        self.slack_seen = len(messages)

    def follow(self, until: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        from tests.harness.sandbox import plan_status

        deadline = time.monotonic() + timeout
        while True:
            st = plan_status(self.state)
            self.narrate(st)
            if until(st):
                return st
            if time.monotonic() > deadline:
                raise TimeoutError(f"the plan is {st.get('phase')} ({st.get('reason')}: "
                                   f"{st.get('message')})")
            time.sleep(0.5)


def _rolloutctl(state: Any, *args: str) -> int:
    from tests.harness.sandbox import NAMESPACE

    command = [str(Path(sys.executable).with_name("rolloutctl")), *args,
               "--kubeconfig", str(state.kubeconfig), "-n", NAMESPACE]
    _say(f"  [cyan]$ rolloutctl {' '.join(args)}[/cyan]")
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in (result.stdout + result.stderr).rstrip().splitlines():
        _say(f"    {line}")
    return result.returncode


@sandbox_app.command()
def demo(directory: DirOption = DEFAULT_DIR,
         keep: Annotated[bool, typer.Option(help="Leave the sandbox running afterwards")] = False,
         ) -> None:
    """Run three stories on the sandbox: a healthy release, a bad one rolled back by itself,
    and a rollback drill. Exits 0 when each ends as expected."""
    from tests.harness import sandbox as sb

    started = time.monotonic()
    box = _sandbox(directory)
    try:
        state = box.up()
    except sb.SandboxError as exc:
        _say(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    _print_urls(state)
    outcomes: list[tuple[str, str, str]] = []
    try:
        story = Story(state)
        _say("\nWaiting for the SLOPolicy's first budget evaluation (new runs never start "
             "on an unknown budget) ...")
        deadline = time.monotonic() + 120
        while True:
            pst = sb.policy_status(state)
            if pst.get("evaluatedAt") and pst.get("budgetRemaining") is not None:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the policy was not evaluated: {pst.get('message')}")
            time.sleep(1)
        _say(f"  api_availability budget: {pst['budgetRemaining']:.1f}% left, "
             f"frozen: {pst.get('frozen')}")

        _say("\n[bold]Story 1: a healthy release[/bold] — the canary gets v2 and goes "
             "10 → 25 → 50 → 100 %, judged by the platform SLOs at each step.")
        run = sb.plan_status(state).get("run", 0)
        sb.release(state, "v2")
        story.follow(lambda s: s.get("run") == run + 1 and s.get("canaryWeight") == 10
                     and s.get("reason") == "HoldingStep", 120)
        time.sleep(1.5)  # the generator re-reads the route a few times a second
        before = sb.traffic_stats(state).get("tester", {})
        time.sleep(3)
        now = sb.traffic_stats(state).get("tester", {})
        hits = {k: now.get(k, 0) - before.get(k, 0) for k in ("canary", "stable")}
        _say(f"  a tester sending X-Canary: always at the 10 % step: {hits['canary']} "
             f"request(s) on the canary, {hits['stable']} on stable (header route)")
        st = story.follow(lambda s: s.get("run") == run + 1 and s.get("phase") in (
            "Succeeded", "RolledBack"), 300)
        outcomes.append(("healthy release", "Succeeded", st.get("phase", "?")))

        _say("\n[bold]Story 2: a bad release[/bold] — v3 starts well; at the 25 % step its "
             "error rate is raised to 30 %.")
        run = st.get("run", 0)
        sb.configure_canary(state, error_rate=0.0)
        sb.release(state, "v3")
        story.follow(lambda s: s.get("run") == run + 1 and (s.get("currentStep") or 0) >= 1
                     and s.get("canaryWeight") == 25, 240)
        _say("  [red]injecting errors: 30 % of canary requests now fail[/red]")
        sb.configure_canary(state, error_rate=0.3)
        st = story.follow(lambda s: s.get("phase") in ("RolledBack", "Succeeded"), 240)
        outcomes.append(("bad release", "RolledBack", st.get("phase", "?")))
        evidence = next((g for g in st.get("history", [{}])[-1].get("evidence", [])
                         if g.get("verdict") == "Fail"), None)
        if evidence:
            _say(f"  evidence: {evidence['name']} {evidence.get('message', '')}")
        sb.configure_canary(state, error_rate=0.0)

        _say("\n[bold]Story 3: a rollback drill[/bold] — v4 starts; at the 25 % step "
             "`rolloutctl drill --restore` rolls it back for real, times it, and restores it.")
        time.sleep(12)  # one policy evaluation: the bad release may have spent the budget
        pst = sb.policy_status(state)
        if pst.get("frozen"):
            _say(f"  the bad release spent the error budget: releases are frozen "
                 f"({pst.get('reason')}, {pst.get('budgetRemaining') or 0:.0f}% left). "
                 "Break-glass for the drill:")
            _rolloutctl(state, "freeze", "override", "platform", "--reason",
                        "sandbox: rehearse a rollback", "--expires", "15m", "--allow",
                        "checkout")
        run = st.get("run", 0)
        sb.release(state, "v4")
        story.follow(lambda s: s.get("run") == run + 1 and (s.get("currentStep") or 0) >= 1
                     and s.get("canaryWeight") == 25, 240)
        code = _rolloutctl(state, "drill", "checkout", "--restore", "--max-duration", "60s")
        st = story.follow(lambda s: s.get("phase") in ("Succeeded", "RolledBack"), 300)
        drills = st.get("drills", [])
        drill_outcome = drills[-1].get("outcome", "?") if drills else "none"
        outcomes.append(("drill", "Succeeded", drill_outcome if code == 0 else "Failed"))
        outcomes.append(("run after the drill", "Succeeded", st.get("phase", "?")))
        story.slack()
    except (TimeoutError, OSError) as exc:
        _say(f"[red]the demo stopped: {exc}[/red]")
        outcomes.append(("demo", "completed", "stopped"))
    finally:
        if not keep:
            _say("\nStopping the sandbox (by the PIDs it started) ...")
            box.down()
    _say("\n[bold]Outcomes[/bold]")
    ok = True
    for name, expected, got in outcomes:
        good = expected == got
        ok = ok and good
        _say(f"  {'[green]✔[/green]' if good else '[red]✘[/red]'} {name}: {got}"
             + ("" if good else f" (expected {expected})"))
    _say(f"demo finished in {time.monotonic() - started:.0f}s")
    if not ok:
        raise typer.Exit(1)


if __name__ == "__main__":
    sandbox_app(prog_name="scripts/sandbox")
