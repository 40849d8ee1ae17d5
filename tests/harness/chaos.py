"""The reliability suite (issue 13): six fault scenarios run against the real controller.

Each scenario is a function ``(env, short) -> ScenarioResult`` that builds its own world on
the local control plane (namespaces, Deployments, HTTPRoutes, demo services, a live
Prometheus, a Slack stand-in), drives real ``rolloutctl run`` processes, injects its fault
and checks what a user would see: the plans' status, the route's weight, Events, Slack
messages, the controller's /healthz and /metrics. ``short`` selects the smaller sizes CI
runs; the checks are the same.

- ``sigkill_chaos``: random SIGKILLs of the controller across concurrent rollouts.
- ``leader_failover``: two replicas, several plans mid-run, the leader SIGKILLed.
- ``prometheus_outage``: Prometheus stopped mid-step, restarted on the same port and data.
- ``slack_down``: a bad canary's rollback timed with Slack healthy, failing (500) and
  rate-limiting (429); the messages are delivered once Slack recovers, each once.
- ``apiserver_restart``: kube-apiserver restarted mid-run.
- ``bad_input``: hypothesis-generated invalid plans and policies through validation and
  the API server, and template-injection attempts.

``bench/reliability.py`` runs them as one command; ``tests/e2e/test_reliability_suite.py``
runs the short variants. The invalid-document strategies (``invalid_plans``,
``invalid_policies``) are also used by ``tests/unit/test_bad_input_*.py``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import re
import signal
import subprocess
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from itertools import cycle
from pathlib import Path
from typing import Any, cast
from unittest import mock

from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from controller.api import templates
from controller.api.decisions import DECISIONS, DecisionType, Source
from controller.api.plan import Analysis, OnNoData
from controller.api.policy import SLOPolicy
from controller.api.types import DURATION_PATTERN, GROUP, LABEL_VALUE_PATTERN, PLURALS, VERSION
from controller.api.validation import (
    Problem,
    check_plan,
    check_plan_against_policy,
    check_policy,
    parse_policy,
)
from tests.harness import prometheus as prometheus_mod
from tests.harness.cluster import free_port, new_api_client, restart_apiserver
from tests.harness.demo_app import DemoApp
from tests.harness.egress import LOCAL_EGRESS
from tests.harness.prometheus import PrometheusServer
from tests.harness.routes import RouteWatch
from tests.harness.slack_stub import SlackStub
from tests.harness.stack import (
    ControllerProcess,
    Stack,
    rollout_plan,
    rolloutctl_binary,
    slo_policy,
)

STEPS = (10, 25, 50, 100)
TERMINAL = ("Succeeded", "RolledBack")
SLACK = {"channel": "#deploys", "criticalChannel": "#oncall",
         "tokenSecretRef": {"name": "slack", "key": "token"}}
#: decision types copied to criticalChannel (the decision table's alarms of a plan)
ALARMS = frozenset(t for t, info in DECISIONS.items() if info.alarm and info.source is Source.PLAN)
ROLLBACKS = (DecisionType.ROLLBACK_STARTED, DecisionType.ROLLED_BACK)


# ============================================================================ results


@dataclass
class ScenarioResult:
    """PASS/FAIL of one scenario, its figures (label -> text, in order) and its problems."""

    name: str
    figures: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.problems and not self.error

    def figure(self, label: str, value: object) -> None:
        self.figures[label] = value if isinstance(value, str) else _fmt(value)

    def expect(self, ok: bool, problem: str) -> bool:
        if not ok:
            self.problems.append(problem)
        return ok

    def report(self) -> str:
        lines = [f"{self.name}: {'PASS' if self.passed else 'FAIL'} ({self.seconds:.0f} s)"]
        lines += [f"  {k}: {v}" for k, v in self.figures.items()]
        lines += [f"  PROBLEM: {p}" for p in self.problems[:40]]
        if len(self.problems) > 40:
            lines.append(f"  ... and {len(self.problems) - 40} more problems")
        if self.error:
            lines.append(f"  ERROR: {self.error}")
        return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


# ============================================================================ the world


@dataclass
class Env:
    """Where the scenarios run: a kubeconfig (admin), a work directory and, for the API
    server restart, the ``tests.harness.cluster`` directory of the control plane."""

    kubeconfig: Path
    workdir: Path
    cluster_dir: Path | None = None

    def api(self) -> ApiClient:
        return new_api_client(self.kubeconfig)


def start_controller(env: Env, namespaces: Sequence[str], workdir: Path, identity: str, *,
                     leader_elect: bool = False, lease_namespace: str | None = None,
                     lease_name: str = "rolloutctl-reliability",
                     extra: Sequence[str] = ()) -> ControllerProcess:
    """A real ``rolloutctl run`` watching NAMESPACES (one ``--namespace`` each)."""
    port = free_port()
    log = workdir / f"{identity}.log"
    args = [rolloutctl_binary(), "run", "--kubeconfig", str(env.kubeconfig)]
    for ns in namespaces:
        args += ["--namespace", ns]
    args += ["--identity", identity, "--metrics-address", f"127.0.0.1:{port}",
             "--lease-namespace", lease_namespace or namespaces[0], "--lease-name", lease_name,
             "--leader-elect" if leader_elect else "--no-leader-elect",
             "--log-format", "json", "--egress-allow", LOCAL_EGRESS, *extra]
    workdir.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    return ControllerProcess(identity, process, log, port)


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode(errors="replace")
    except OSError as exc:
        return 0, str(exc)


def controller_metric(ctl: ControllerProcess, name: str, **labels: str) -> float | None:
    """The sum of samples NAME{LABELS} on the controller's /metrics (None: unreachable)."""
    from prometheus_client.parser import text_string_to_metric_families

    status, text = http_get(f"http://127.0.0.1:{ctl.metrics_port}/metrics")
    if status != 200:
        return None
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v
                                           for k, v in labels.items()):
                total += sample.value
    return total


def healthz(ctl: ControllerProcess) -> int:
    return http_get(f"http://127.0.0.1:{ctl.metrics_port}/healthz")[0]


class Fleet:
    """N rollout stacks, each in its own namespace with its own service (``NAME0``...):
    Deployments, an HTTPRoute, a stable and a canary demo service, traffic split by the
    route's weight, an SLOPolicy ``platform``; one Prometheus scraping every service;
    optionally one Slack stand-in (a ``slack`` Secret in each namespace). Controllers are
    started with :meth:`start_controller` and watch every namespace of the fleet."""

    def __init__(self, env: Env, name: str, size: int, *, rps: float = 50.0,
                 slack: bool = False) -> None:
        self.env = env
        self.name = name
        self.size = size
        self.rps = rps
        self.workdir = env.workdir / f"{name}-{uuid.uuid4().hex[:6]}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.api = env.api()
        self.core: Any = client.CoreV1Api(self.api)
        self.namespaces: list[str] = []
        self.stacks: list[Stack] = []
        self.apps: list[DemoApp] = []
        self.prometheus: PrometheusServer | None = None
        self.slack: SlackStub | None = SlackStub().start() if slack else None
        self.controllers: list[ControllerProcess] = []

    def start(self) -> Fleet:
        try:
            suffix = uuid.uuid4().hex[:5]
            for i in range(self.size):
                ns = f"rel-{self.name}-{i}-{suffix}"
                self.core.create_namespace({"metadata": {"name": ns}}, _request_timeout=30)
                self.namespaces.append(ns)
                stack = Stack(self.env.kubeconfig, self.env.api(), ns, self.workdir / ns,
                              service=f"{self.name}{i}", rps=self.rps)
                stack.stable_app = DemoApp(stack.service, "stable", seed=10 * i + 1).start()
                stack.canary_app = DemoApp(stack.service, "canary", seed=10 * i + 2).start()
                self.apps += [stack.stable_app, stack.canary_app]
                self.stacks.append(stack)
            self.prometheus = PrometheusServer(
                self.workdir / "prometheus",
                targets=[f"127.0.0.1:{a.port}" for a in self.apps], scrape_interval="1s",
            ).start()
            self.prometheus.wait_for_targets_up()
            for stack in self.stacks:
                stack.create_workloads()
                stack.start_traffic()
                if self.slack is not None:
                    stack.create_secret("slack", {"token": self.slack.token})
                stack.apply(slo_policy("platform", stack.service, self.prometheus.url))
        except BaseException:
            self.stop()
            raise
        return self

    def plan(self, stack: Stack, **kwargs: Any) -> dict[str, Any]:
        """The stack's RolloutPlan (``rollout_plan`` with Slack when the fleet has it)."""
        if self.slack is not None:
            kwargs.setdefault("notifications", {"slack": dict(SLACK)})
        return rollout_plan(stack.service, "platform", **kwargs)

    def start_controller(self, identity: str, **kwargs: Any) -> ControllerProcess:
        extra = list(kwargs.pop("extra", []))
        if self.slack is not None:
            extra += ["--slack-base-url", self.slack.api_url]
        ctl = start_controller(self.env, self.namespaces, self.workdir, identity,
                               extra=extra, **kwargs)
        self.controllers.append(ctl)
        return ctl

    def logs(self) -> str:
        return "\n".join(f"--- {c.identity}\n{c.log_tail(15)}" for c in self.controllers[-3:])

    def stop(self) -> None:
        for ctl in self.controllers:
            with contextlib.suppress(Exception):
                ctl.kill(signal.SIGTERM)
        for stack in self.stacks:
            with contextlib.suppress(Exception):
                stack.stop()
        if self.prometheus is not None:
            self.prometheus.stop()
        if self.slack is not None:
            self.slack.stop()
        for ns in self.namespaces:
            with contextlib.suppress(Exception):
                self.core.delete_namespace(ns, propagation_policy="Background",
                                           _request_timeout=30)


def status_of(stack: Stack) -> dict[str, Any]:
    """The plan's status, or {} while it cannot be read (e.g. the API server restarts)."""
    try:
        return stack.status()
    except Exception:
        return {}


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    """PREDICATE's first truthy value, or None after TIMEOUT (exceptions count as falsy)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            value = predicate()
            if value:
                return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def wall(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


# ============================================================================ run checks


@dataclass
class RunCheck:
    """What one run's decisions show, whatever crashed in between."""

    plan: str
    run: int
    expected: str
    outcome: str
    steps: list[int]
    skipped_steps: int = 0
    repeated_steps: int = 0
    skipped_gates: int = 0
    repeated_decisions: int = 0
    problems: list[str] = field(default_factory=list)


def check_run(plan: str, run: int, decisions: list[dict[str, Any]], expected: str,
              outcome: str, first_seq: int, gates: Sequence[str] = ("api_availability",),
              steps: Sequence[int] = STEPS) -> RunCheck:
    """DECISIONS are the run's, oldest first (every decision with a seq >= FIRST_SEQ)."""
    types = [d["type"] for d in decisions]
    advanced = [int(d["weight"]) for d in decisions if d["type"] == DecisionType.STEP_ADVANCED]
    check = RunCheck(plan, run, expected, outcome, advanced)
    p = check.problems
    seqs = [int(d["seq"]) for d in decisions]
    check.repeated_decisions = len(seqs) - len(set(seqs))
    if seqs != sorted(set(seqs)):
        p.append(f"{plan} run {run}: decision sequence repeated or out of order: {seqs}")
    if not seqs or seqs[0] != first_seq or types[0] != DecisionType.RUN_STARTED:
        p.append(f"{plan} run {run}: the run's first decision is not RunStarted at seq "
                 f"{first_seq} (decisions lost?): {list(zip(seqs, types, strict=True))[:3]}")
    if types.count(DecisionType.RUN_STARTED) != 1:
        p.append(f"{plan} run {run}: {types.count('RunStarted')} RunStarted decisions")
    if outcome != expected:
        p.append(f"{plan} run {run}: ended {outcome}, expected {expected}")
    check.repeated_steps = len(advanced) - len(set(advanced))
    wanted = list(steps) if outcome == "Succeeded" else list(steps)[:len(advanced)]
    check.skipped_steps = len([w for w in wanted if w not in advanced])
    if advanced != wanted:
        p.append(f"{plan} run {run}: steps {advanced}, expected {wanted}")
    if outcome == "Succeeded":
        if (types.count(DecisionType.PROMOTING) != 1
                or types.count(DecisionType.SUCCEEDED) != 1):
            p.append(f"{plan} run {run}: Promoting x{types.count('Promoting')}, "
                     f"Succeeded x{types.count('Succeeded')}")
    elif outcome == "RolledBack" and (DecisionType.SUCCEEDED in types
                                      or types.count(DecisionType.ROLLED_BACK) != 1):
        p.append(f"{plan} run {run}: RolledBack x{types.count('RolledBack')}: {types}")
    for d in decisions:
        if d["type"] == DecisionType.STEP_ADVANCED and int(d["weight"]) > steps[0]:
            missing = [g for g in gates if f"{g} Pass" not in d.get("message", "")]
            if missing:
                check.skipped_gates += len(missing)
                p.append(f"{plan} run {run}: advanced to {d['weight']}% without "
                         f"{', '.join(missing)} passing: {d.get('message')}")
    return check


def slack_keys(slack: SlackStub) -> Counter[tuple[str, str, str]]:
    """(channel, object, dedup key) -> number of messages posted with it."""
    out: Counter[tuple[str, str, str]] = Counter()
    for m in slack.messages():
        payload = (m.metadata or {}).get("event_payload") or {}
        key, obj = payload.get("key"), payload.get("object")
        if isinstance(key, str):
            out[(m.channel, str(obj), key)] += 1
    return out


def slack_delivery(slack: SlackStub, namespace: str, name: str, run: int,
                   decisions: list[dict[str, Any]],
                   missed: list[str] | None = None) -> tuple[int, int]:
    """(undelivered, duplicated) messages of one run: each decision once in #deploys, each
    alarm once more in #oncall. Each undelivered one is described in MISSED."""
    counts = slack_keys(slack)
    obj = f"RolloutPlan/{namespace}/{name}"
    deploys, oncall = slack.channel_id("deploys"), slack.channel_id("oncall")
    missing = duplicated = 0
    for d in decisions:
        key = f"{run}.{d['seq']}"
        wanted = [deploys] + ([oncall] if d["type"] in ALARMS else [])
        for channel in wanted:
            n = counts[(channel, obj, key)]
            missing += n == 0
            duplicated += max(0, n - 1)
            if n == 0 and missed is not None:
                missed.append(f"{obj} {key} {d['type']} ({d.get('reason', '')}) in "
                              f"#{'oncall' if channel == oncall else 'deploys'}")
    return missing, duplicated


def is_idle(stack: Stack) -> bool:
    return stack.status().get("reason") == "NoNewRevision"


def at_first_step(stack: Stack, run: int) -> bool:
    st = stack.status()
    return bool(st.get("run") == run and st.get("canaryWeight") == STEPS[0]
                and stack.route_weight() == STEPS[0])


def rolled_back(stack: Stack, run: int) -> bool:
    st = stack.status()
    return bool(st.get("run") == run and st.get("phase") == "RolledBack")


def delivered(slack: SlackStub, stack: Stack, run: int, decisions: list[dict[str, Any]]
              ) -> bool:
    """The plan's outbox is empty and every decision of RUN reached Slack."""
    return outboxes_empty([stack]) and slack_delivery(
        slack, stack.namespace, stack.service, run, decisions)[0] == 0


def outboxes_empty(stacks: Sequence[Stack]) -> bool:
    for stack in stacks:
        st = stack.status()
        if (st.get("notifications") or {}).get("outbox"):
            return False
    return True


class RunTracker:
    """One plan's sequence of runs: releases the next version when the previous run has
    ended, and checks each ended run."""

    def __init__(self, stack: Stack, kinds: Sequence[str], timeout: float = 300.0) -> None:
        self.stack = stack
        self.kinds = cycle(kinds)
        self.timeout = timeout
        self.version = 1
        self.current: dict[str, Any] | None = None
        self.checks: list[RunCheck] = []
        self.decisions: dict[int, list[dict[str, Any]]] = {}
        self.problems: list[str] = []
        self.stuck = 0  # runs that never ended

    @property
    def in_run(self) -> bool:
        return self.current is not None

    def start(self) -> None:
        kind = next(self.kinds)
        st = self.stack.status()
        assert self.stack.canary_app is not None
        self.stack.canary_app.configure(error_rate=0.4 if kind == "bad" else 0.0)
        self.version += 1
        self.current = {"run": int(st.get("run") or 0) + 1, "seq": int(st.get("seq") or 0),
                        "expected": "RolledBack" if kind == "bad" else "Succeeded",
                        "started": time.monotonic()}
        self.stack.release(f"v{self.version}")

    def poll(self, start_next: bool) -> None:
        if self.current is not None:
            st = status_of(self.stack)
            cur = self.current
            if st.get("run") == cur["run"] and st.get("phase") in TERMINAL:
                decisions = [d for d in st.get("decisions") or [] if d["seq"] > cur["seq"]]
                check = check_run(self.stack.service, cur["run"], decisions, cur["expected"],
                                  str(st["phase"]), cur["seq"] + 1)
                last = (st.get("history") or [{}])[-1]
                if last.get("run") != cur["run"] or last.get("outcome") != st["phase"]:
                    check.problems.append(f"{self.stack.service} run {cur['run']}: history "
                                          f"ends with {last.get('run')} {last.get('outcome')}")
                self.checks.append(check)
                self.decisions[cur["run"]] = decisions
                self.current = None
            elif st and int(st.get("run") or 0) > cur["run"]:
                self.problems.append(f"{self.stack.service}: run {st.get('run')} started "
                                     f"while run {cur['run']} was awaited")
                self.current = None
            elif time.monotonic() - cur["started"] > self.timeout:
                self.stuck += 1
                self.problems.append(
                    f"{self.stack.service} run {cur['run']} did not end in {self.timeout:.0f}"
                    f" s: {st.get('phase')} {st.get('reason')} {st.get('message')}; "
                    + evidence(self.stack, st, f"run{cur['run']}"))
                self.current = None
        if self.current is None and start_next:
            self.start()


def evidence(stack: Stack, st: dict[str, Any], label: str) -> str:
    """Save the plan's status (and the route's weight) next to the logs; a short summary."""
    path = stack.workdir / f"{stack.service}-{label}-status.json"
    with contextlib.suppress(Exception):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"routeWeight": stack.route_weight(), "status": st},
                                   indent=2, default=str))
    last = [f"{d['seq']} {d['type']} {d['reason']} ({d.get('weight')}%)"
            for d in (st.get("decisions") or [])[-5:]]
    gates = [f"{g['name']} {g.get('verdict')} {g.get('reason')}" for g in st.get("gates") or []]
    return f"last decisions {last}; gates {gates}; status saved in {path}"


def add_run_figures(result: ScenarioResult, checks: list[RunCheck]) -> None:
    outcomes = Counter(c.outcome for c in checks)
    result.figure("runs", f"{len(checks)} ({', '.join(f'{n} {o}' for o, n in outcomes.items())})")
    as_expected = sum(c.outcome == c.expected for c in checks)
    result.figure("runs ending as expected", f"{as_expected}/{len(checks)}")
    result.figure("skipped steps", sum(c.skipped_steps for c in checks))
    result.figure("repeated steps", sum(c.repeated_steps for c in checks))
    result.figure("skipped gates", sum(c.skipped_gates for c in checks))
    result.figure("repeated decisions", sum(c.repeated_decisions for c in checks))
    for c in checks:
        result.problems.extend(c.problems)


# ============================================================================ 1. SIGKILL


def sigkill_chaos(env: Env, short: bool = False, seed: int = 20261127) -> ScenarioResult:
    """At least 50 (short: 12) SIGKILLs of the controller, each a random 0-2.5 s after it is
    ready, while several plans run concurrently (healthy and bad canaries, Slack on)."""
    result = ScenarioResult("SIGKILL chaos")
    target = 12 if short else 50
    size = 3 if short else 4
    fleet = Fleet(env, "chaos", size, slack=True).start()
    try:
        for stack in fleet.stacks:
            stack.apply(fleet.plan(stack, hold="5s", interval="1s", window="8s",
                                   rollback_after="4s", min_samples=15))
        ctl = fleet.start_controller("c0")
        for stack in fleet.stacks:
            if wait_until(partial(is_idle, stack), 90) is None:
                raise TimeoutError(f"{stack.service} never idle\n{fleet.logs()}")
        rng = random.Random(seed)
        patterns = (["ok", "bad", "ok"], ["bad", "ok", "ok"], ["ok", "ok", "bad"])
        trackers = [RunTracker(s, patterns[i % len(patterns)], timeout=360)
                    for i, s in enumerate(fleet.stacks)]
        kills = mid_run = 0
        ready_after: list[float] = []
        while kills < target:
            started = time.monotonic()
            ctl.wait_ready(120)
            ready_after.append(time.monotonic() - started)
            kill_at = time.monotonic() + rng.uniform(0.0, 2.5)
            while True:
                for t in trackers:
                    t.poll(start_next=True)
                left = kill_at - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(0.1, left))
            mid_run += any(t.in_run for t in trackers)
            ctl.kill(signal.SIGKILL)
            kills += 1
            ctl = fleet.start_controller(f"c{kills}")
        ctl.wait_ready(120)
        deadline = time.monotonic() + 400
        while any(t.in_run for t in trackers) and time.monotonic() < deadline:
            for t in trackers:
                t.poll(start_next=False)
            time.sleep(0.2)
        checks = [c for t in trackers for c in t.checks]
        for t in trackers:
            result.problems.extend(t.problems)
            if t.in_run:
                result.problems.append(f"{t.stack.service}: a run never ended\n{fleet.logs()}")
        result.figure("controller SIGKILLs", f"{kills} ({mid_run} with a run in progress)")
        result.figure("concurrent plans", size)
        result.figure("restart to ready, median", f"{median(ready_after):.1f} s")
        add_run_figures(result, checks)
        result.figure("runs that never ended", sum(t.stuck for t in trackers))
        result.expect(kills >= target, f"only {kills} kills")
        result.expect({c.outcome for c in checks} >= {"Succeeded", "RolledBack"},
                      "the runs did not include both a success and a rollback")
        result.expect(all(t.checks for t in trackers), "a plan completed no run")
        # Slack: every decision of every run delivered, each exactly once
        assert fleet.slack is not None
        ended = time.monotonic()
        drained = wait_until(lambda: outboxes_empty(fleet.stacks), 300, 1.0)
        result.expect(drained is not None, "Slack outboxes not drained after 300 s")
        result.figure("Slack outboxes drained", f"{time.monotonic() - ended:.0f} s after the "
                                                "last run ended")
        missing = duplicated = 0
        missed: list[str] = []
        for t in trackers:
            for run, decisions in t.decisions.items():
                m, d = slack_delivery(fleet.slack, t.stack.namespace, t.stack.service, run,
                                      decisions, missed)
                missing, duplicated = missing + m, duplicated + d
        total_dups = sum(n - 1 for n in slack_keys(fleet.slack).values() if n > 1)
        result.figure("Slack messages", len(fleet.slack.messages()))
        result.figure("duplicate Slack messages", total_dups)
        result.figure("undelivered Slack messages", missing)
        result.expect(total_dups == 0 and duplicated == 0,
                      f"{total_dups} duplicate Slack messages")
        result.expect(missing == 0, f"{missing} decisions never reached Slack: "
                      + "; ".join(missed[:10]))
        if missing or duplicated or total_dups:  # the evidence, for whoever investigates
            record = [{"channel": m.channel, "ts": m.ts, "thread_ts": m.thread_ts,
                       "metadata": m.metadata} for m in fleet.slack.messages()]
            statuses = {t.stack.service: t.stack.status() for t in trackers}
            (fleet.workdir / "slack-messages.json").write_text(json.dumps(record, indent=1))
            (fleet.workdir / "plan-statuses.json").write_text(
                json.dumps(statuses, indent=1, default=str))
    finally:
        fleet.stop()
    return result


# ============================================================================ 2. failover


def lease_holder(api: ApiClient, namespace: str, name: str) -> str:
    return lease_record(api, namespace, name)[0]


def lease_record(api: ApiClient, namespace: str, name: str) -> tuple[str, float | None]:
    """The Lease's holder and its acquireTime (unix seconds, written by the holder)."""
    lease = client.CoordinationV1Api(api).read_namespaced_lease(name, namespace,
                                                                _request_timeout=5)
    if lease.spec is None:
        return "", None
    acquired = lease.spec.acquire_time
    return (str(lease.spec.holder_identity or ""),
            acquired.timestamp() if acquired is not None else None)


LEASE_DURATION, RETRY_PERIOD = 15.0, 2.0


def leader_failover(env: Env, short: bool = False) -> ScenarioResult:
    """Two replicas with leader election, several plans mid-run; SIGKILL the leader."""
    result = ScenarioResult("Leader failover under load")
    size = 3 if short else 6
    fleet = Fleet(env, "failover", size, slack=True, rps=40.0).start()
    lease_ns = fleet.namespaces[0]
    try:
        for stack in fleet.stacks:
            stack.apply(fleet.plan(stack, hold="10s", interval="1s", window="8s",
                                   rollback_after="4s", min_samples=15))
        replicas = {c.identity: c for c in (
            fleet.start_controller("replica-a", leader_elect=True, lease_namespace=lease_ns),
            fleet.start_controller("replica-b", leader_elect=True, lease_namespace=lease_ns))}
        holder = wait_until(lambda: lease_holder(fleet.api, lease_ns,
                                                 "rolloutctl-reliability"), 90)
        if not holder:
            raise TimeoutError(f"no leader\n{fleet.logs()}")
        for stack in fleet.stacks:
            wait_until(partial(is_idle, stack), 90)
            stack.release("v2")
        mid = wait_until(lambda: all((s.status().get("currentStep") or 0) >= 1
                                     and s.status().get("phase") == "Progressing"
                                     for s in fleet.stacks), 180)
        if mid is None:
            raise TimeoutError(f"the plans did not reach step 2\n{fleet.logs()}")
        in_flight = sum(1 for s in fleet.stacks
                        if (st := s.status()).get("phase") not in (*TERMINAL, "Pending")
                        and st.get("currentStep") is not None)
        killed_wall, killed = time.time(), time.monotonic()
        replicas[holder].kill(signal.SIGKILL)
        new = wait_until(lambda: (h := lease_holder(fleet.api, lease_ns,
                                                    "rolloutctl-reliability")) != holder and h,
                         60, 0.05)
        takeover = time.monotonic() - killed
        # the new leader's own record of when it acquired the Lease (this poll sees it later)
        acquired = lease_record(fleet.api, lease_ns, "rolloutctl-reliability")[1]
        takeover_wall = acquired if acquired is not None else killed_wall + takeover
        result.figure("plans mid-run at the kill", f"{in_flight}/{size}")
        result.figure("takeover after SIGKILL", f"{takeover:.1f} s (bound: lease 15 s + "
                                                f"retry 2 s = 17 s)")
        if not result.expect(bool(new) and new in replicas,
                             f"no takeover within 60 s\n{fleet.logs()}"):
            return result
        result.expect(takeover <= LEASE_DURATION + RETRY_PERIOD,
                      f"takeover took {takeover:.1f} s > {LEASE_DURATION + RETRY_PERIOD:.0f} s")
        done = wait_until(lambda: all(s.status().get("phase") in TERMINAL
                                      for s in fleet.stacks), 300, 0.5)
        result.expect(done is not None, f"not every run ended\n{fleet.logs()}")
        checks: list[RunCheck] = []
        first_after: list[float] = []
        wrong_actor = 0
        event_count = decision_count = 0
        for stack in fleet.stacks:
            st = stack.status()
            decisions = [d for d in st.get("decisions") or [] if d["seq"] > 0]
            first = next((i for i, d in enumerate(decisions)
                          if d["type"] == DecisionType.RUN_STARTED), 0)
            run_decisions = decisions[first:]
            checks.append(check_run(stack.service, int(st.get("run") or 0), run_decisions,
                                    "Succeeded", str(st.get("phase")),
                                    int(run_decisions[0]["seq"]) if run_decisions else 1))
            after = [wall(d["at"]) for d in run_decisions if wall(d["at"]) > killed_wall]
            if after:
                first_after.append(min(after) - killed_wall)
            decision_count += len(run_decisions)
            for e in stack.events():
                if e["involvedObject"]["kind"] != "RolloutPlan":
                    continue
                event_count += 1
                at = wall(e["firstTimestamp"])
                who = e.get("reportingInstance")
                ok = ((who == holder and at <= killed_wall)
                      or (who == new and at >= int(takeover_wall)))  # Events: whole seconds
                if not ok:
                    wrong_actor += 1
                    result.problems.append(f"{stack.service}: Event {e['reason']} at "
                                           f"{e['firstTimestamp']} from {who}")
        add_run_figures(result, checks)
        result.figure("new leader's first decision per plan, after the SIGKILL",
                      f"median {median(first_after):.1f} s, max {max(first_after):.1f} s"
                      if first_after else "none")
        result.figure("Events from a replica not holding the Lease",
                      f"{wrong_actor} of {event_count} (decisions: {decision_count})")
        assert fleet.slack is not None
        wait_until(lambda: outboxes_empty(fleet.stacks), 240, 1.0)
        dups = sum(n - 1 for n in slack_keys(fleet.slack).values() if n > 1)
        result.figure("duplicate Slack messages", dups)
        result.expect(dups == 0, f"{dups} duplicate Slack messages")
    finally:
        fleet.stop()
    return result


# ============================================================================ 3. Prometheus


def restart_prometheus(server: PrometheusServer) -> None:
    """Start a stopped PrometheusServer again on its old port and data directory.

    ``PrometheusServer.start`` picks a fresh port; here it is handed the old one."""
    port = server.port
    with mock.patch.object(prometheus_mod, "free_port", lambda: port):
        server.start()


def prometheus_outage(env: Env, short: bool = False) -> ScenarioResult:
    """Prometheus stopped for 10 minutes (short: 2) mid-step under the default no-data
    policy: no promotion, no rollback, Holding (PrometheusError); it resumes afterwards."""
    result = ScenarioResult("Prometheus stopped mid-step")
    outage = 120.0 if short else 600.0
    default = Analysis()
    result.expect(default.on_no_data == OnNoData.HOLD, "the default onNoData is not hold")
    result.expect(outage < default.no_data_timeout.seconds,
                  f"the outage must be shorter than noDataTimeout ({default.no_data_timeout})")
    fleet = Fleet(env, "promdown", 1).start()
    stack = fleet.stacks[0]
    assert fleet.prometheus is not None
    try:
        doc = fleet.plan(stack, hold="20s", interval="2s", window="10s", rollback_after="6s",
                         min_samples=20)
        for key in ("onNoData", "noDataTimeout"):  # the defaults: hold, 15m
            doc["spec"]["analysis"].pop(key, None)
        stack.apply(doc)
        ctl = fleet.start_controller("c0")
        ctl.wait_ready(90)
        wait_until(lambda: stack.status().get("reason") == "NoNewRevision", 90)
        stack.release("v2")
        mid = wait_until(lambda: (st := stack.status()).get("currentStep") == 1
                         and st.get("lastAnalysisAt") and st.get("stepStartedAt")
                         and wall(st["lastAnalysisAt"]) > wall(st["stepStartedAt"]), 180)
        if mid is None:
            raise TimeoutError(f"the run did not reach step 2\n{fleet.logs()}")
        before = stack.status()
        weight = stack.route_weight()
        fleet.prometheus.stop()
        stopped = time.monotonic()
        first_holding: float | None = None
        polls = holding_polls = 0
        weights: set[int] = set()
        seen: set[tuple[str, str]] = set()
        while time.monotonic() - stopped < outage:
            st = status_of(stack)
            if st:
                seen.add((str(st.get("phase")), str(st.get("reason"))))
                holding = st.get("phase") == "Holding" and st.get("reason") == "PrometheusError"
                if holding and first_holding is None:
                    first_holding = time.monotonic() - stopped
                if first_holding is not None:
                    polls += 1
                    holding_polls += holding
            with contextlib.suppress(Exception):
                weights.add(stack.route_weight())
            time.sleep(1.0)
        during = [d for d in stack.status().get("decisions") or [] if d["seq"] > before["seq"]]
        promotions = [d for d in during if d["type"] in (
            DecisionType.STEP_ADVANCED, DecisionType.PROMOTING, DecisionType.SUCCEEDED)]
        rollbacks = [d for d in during if d["type"] in ROLLBACKS]
        restart_prometheus(fleet.prometheus)
        back = time.monotonic()
        resumed = wait_until(lambda: any(d["type"] == DecisionType.STEP_ADVANCED
                                         and d["seq"] > before["seq"]
                                         for d in stack.status().get("decisions") or []), 180)
        resumed_after = time.monotonic() - back if resumed else None
        done = wait_until(lambda: stack.status().get("phase") in TERMINAL, 240)
        st = stack.status()
        result.figure("outage", f"{outage:.0f} s (noDataTimeout {default.no_data_timeout}, "
                                f"onNoData {default.on_no_data.value})")
        result.figure("Holding (PrometheusError) after",
                      f"{first_holding:.1f} s" if first_holding is not None else "never")
        result.figure("polls Holding (PrometheusError) from then on",
                      f"{holding_polls}/{polls}")
        result.figure("promotions / rollbacks during the outage",
                      f"{len(promotions)} / {len(rollbacks)}")
        result.figure("canary weight during the outage", sorted(weights))
        result.figure("first step advance after Prometheus is back",
                      f"{resumed_after:.1f} s" if resumed_after is not None else "never")
        result.figure("outcome", str(st.get("phase")))
        result.expect(first_holding is not None, f"never Holding/PrometheusError: {seen}")
        result.expect(polls > 0 and holding_polls == polls,
                      f"left Holding during the outage: {seen}")
        result.expect(not promotions, f"promoted during the outage: {promotions}")
        result.expect(not rollbacks, f"rolled back during the outage: {rollbacks}")
        result.expect(weights == {weight}, f"canary weight moved: {weights} (was {weight})")
        result.expect(resumed_after is not None, "never advanced after Prometheus came back")
        result.expect(done is not None and st.get("phase") == "Succeeded",
                      f"ended {st.get('phase')} {st.get('reason')}")
        decisions = [d for d in st.get("decisions") or [] if d["seq"] > 0]
        first = next((i for i, d in enumerate(decisions)
                      if d["type"] == DecisionType.RUN_STARTED), 0)
        check = check_run(stack.service, int(st.get("run") or 0), decisions[first:],
                          "Succeeded", str(st.get("phase")),
                          int(decisions[first]["seq"]) if decisions else 1)
        result.problems.extend(check.problems)
    finally:
        fleet.stop()
    return result


# ============================================================================ 4. Slack down


def slack_down(env: Env, short: bool = False) -> ScenarioResult:
    """A bad canary's rollback, timed from the fault to canary weight 0, with Slack healthy,
    answering 500 and rate-limiting (429); then every message is delivered, each once."""
    result = ScenarioResult("Slack down")
    per_mode = 2 if short else 5
    modes = ("healthy", "500", "429")
    fleet = Fleet(env, "slackdown", 1, slack=True, rps=60.0).start()
    stack = fleet.stacks[0]
    slack = fleet.slack
    assert slack is not None and stack.canary_app is not None
    routes: RouteWatch | None = None
    try:
        stack.apply(fleet.plan(stack, hold="1h", interval="1s", window="5s",
                               rollback_after="10m", min_samples=5))
        ctl = fleet.start_controller("c0")
        ctl.wait_ready(90)
        wait_until(lambda: stack.status().get("reason") == "NoNewRevision", 90)
        routes = RouteWatch(fleet.api, stack.namespace, stack.service).start()
        e2e: dict[str, list[float]] = {m: [] for m in modes}
        ctl_side: dict[str, list[float]] = {m: [] for m in modes}
        delivered_after: dict[str, list[float]] = {m: [] for m in modes}
        refused: dict[str, int] = {m: 0 for m in modes}
        version = 1
        for n in range(per_mode):
            for mode in modes[n % 3:] + modes[:n % 3]:
                version += 1
                stack.canary_app.configure(error_rate=0.0)
                st0 = stack.status()
                run, seq0 = int(st0.get("run") or 0) + 1, int(st0.get("seq") or 0)
                stack.release(f"v{version}")
                if wait_until(partial(at_first_step, stack, run), 120) is None:
                    raise TimeoutError(f"run {run} did not reach 10 %\n{fleet.logs()}")
                time.sleep(6.0)  # healthy evaluations first (window 5 s, interval 1 s)
                calls_before = len(slack.calls())
                fault = time.time()
                if mode == "500":
                    slack.fail(500)
                elif mode == "429":
                    slack.rate_limit(25.0)
                stack.canary_app.configure(error_rate=1.0)
                rolled = wait_until(partial(rolled_back, stack, run), 120)
                if rolled is None:
                    raise TimeoutError(f"run {run} did not roll back\n{fleet.logs()}")
                zero = routes.wait_zero_after(fault)
                st = stack.status()
                decision = next(d for d in reversed(st["decisions"])
                                if d["type"] == DecisionType.ROLLBACK_STARTED)
                if zero is None:
                    result.problems.append(f"{mode} run {run}: no weight 0 seen by the watch "
                                           f"(weights seen: {routes.seen[-5:]})")
                    slack.heal()
                    continue
                e2e[mode].append(zero - fault)
                ctl_side[mode].append(zero - wall(decision["at"]))
                if mode == "500":
                    time.sleep(3.0)  # Slack stays down a little after the rollback
                    slack.heal()
                    recovered = time.monotonic()
                elif mode == "429":
                    left = 25.0 - (time.time() - fault)
                    time.sleep(max(0.0, left))
                    recovered = time.monotonic()
                else:
                    recovered = time.monotonic()
                refused[mode] += sum(1 for c in slack.calls()[calls_before:]
                                     if c.status in (429, 500))
                decisions = [d for d in st["decisions"] if d["seq"] > seq0]
                drained = wait_until(partial(delivered, slack, stack, run, decisions), 240)
                if drained is None:
                    missing, _ = slack_delivery(slack, stack.namespace, stack.service, run,
                                                decisions)
                    result.problems.append(f"{mode} run {run}: {missing} messages not "
                                           "delivered 240 s after Slack recovered")
                else:
                    delivered_after[mode].append(time.monotonic() - recovered)
                _, dups = slack_delivery(slack, stack.namespace, stack.service, run, decisions)
                result.expect(dups == 0, f"{mode} run {run}: {dups} duplicate messages")
                slack.heal()
        healthy = median(e2e["healthy"])
        for mode in modes:
            label = {"healthy": "Slack healthy", "500": "Slack 500", "429": "Slack 429"}[mode]
            result.figure(f"fault -> weight 0, {label} (median of {len(e2e[mode])})",
                          f"{median(e2e[mode]):.2f} s (decision -> weight 0: "
                          f"{1000 * median(ctl_side[mode]):.0f} ms; runs: "
                          + ", ".join(f"{v:.2f}" for v in e2e[mode]) + ")")
        for mode in ("500", "429"):
            ratio = median(e2e[mode]) / healthy if healthy else float("nan")
            result.figure(f"ratio Slack {mode} / healthy", f"{ratio:.2f}")
            # unchanged: within one analysis interval (1 s) plus 25 %
            result.expect(median(e2e[mode]) <= healthy * 1.25 + 1.0,
                          f"rollback slower with Slack {mode}: {median(e2e[mode]):.2f} s vs "
                          f"{healthy:.2f} s")
            result.expect(refused[mode] > 0, f"Slack {mode}: the controller never met the "
                                             "fault (no refused call): the run proves nothing")
            result.figure(f"Slack {mode}: refused calls, delivery after recovery (median)",
                          f"{refused[mode]}, {median(delivered_after[mode]):.1f} s")
        total_dups = sum(n - 1 for n in slack_keys(slack).values() if n > 1)
        result.figure("duplicate Slack messages", total_dups)
        result.expect(total_dups == 0, f"{total_dups} duplicate Slack messages")
    finally:
        if routes is not None:
            routes.stop()
        fleet.stop()
    return result


# ============================================================================ 5. API server


class MetricsPoller:
    """Samples a controller metric every 0.1 s in the background: (monotonic, value)."""

    def __init__(self, ctl: ControllerProcess, name: str, **labels: str) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()

        def run() -> None:
            while not self._stop.is_set():
                value = controller_metric(ctl, name, **labels)
                if value is not None:
                    self.samples.append((time.monotonic(), value))
                self._stop.wait(0.1)

        self._thread = threading.Thread(target=run, daemon=True, name="metrics-poller")
        self._thread.start()

    def first_increase_after(self, t: float) -> float | None:
        before = [v for at, v in self.samples if at <= t]
        base = before[-1] if before else None
        for at, v in self.samples:
            if at > t and base is not None and v > base:
                return at
        return None

    def first_after(self, t: float, predicate: Callable[[float], bool]) -> float | None:
        return next((at for at, v in self.samples if at > t and predicate(v)), None)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


def apiserver_restart(env: Env, short: bool = False) -> ScenarioResult:
    """kube-apiserver stopped and started again (same flags and port) while a run is
    mid-step: the controller reconnects and resumes within 10 s; the run completes."""
    result = ScenarioResult("API server restarted mid-run")
    if env.cluster_dir is None:
        result.error = "needs a local control plane (tests.harness.cluster) to restart"
        return result
    fleet = Fleet(env, "apirestart", 1).start()
    stack = fleet.stacks[0]
    poller: MetricsPoller | None = None
    try:
        stack.apply(fleet.plan(stack, hold="15s", interval="1s", window="8s",
                               rollback_after="4s", min_samples=15))
        # as the chart runs it: leader election on (one replica here)
        ctl = fleet.start_controller("c0", leader_elect=True)
        ctl.wait_ready(90)
        wait_until(lambda: stack.status().get("reason") == "NoNewRevision", 90)
        stack.release("v2")
        mid = wait_until(lambda: (st := stack.status()).get("currentStep") == 1
                         and st.get("lastAnalysisAt") and st.get("stepStartedAt")
                         and wall(st["lastAnalysisAt"]) > wall(st["stepStartedAt"]), 180)
        if mid is None:
            raise TimeoutError(f"the run did not reach step 2\n{fleet.logs()}")
        poller = MetricsPoller(ctl, "rolloutctl_reconcile_total", controller="plans",
                               result="success")
        leading = MetricsPoller(ctl, "rolloutctl_leader")
        time.sleep(1.0)
        before = stack.status()
        pid = ctl.pid
        stopped = time.monotonic()
        restart_apiserver(env.cluster_dir)
        ready = time.monotonic()
        ready_wall = time.time()
        # the next status change made after the API server is back
        changed = wait_until(lambda: (st := stack.status()).get("lastAnalysisAt")
                             and st["lastAnalysisAt"] != before.get("lastAnalysisAt")
                             and wall(st["lastAnalysisAt"]) >= ready_wall - 0.5, 60, 0.05)
        status_after = time.monotonic() - ready if changed else None
        reconcile_at = wait_until(lambda: poller.first_increase_after(ready) if poller else None,
                                  60, 0.1)
        reconcile_after = reconcile_at - ready if reconcile_at else None
        done = wait_until(lambda: stack.status().get("phase") in TERMINAL, 240)
        st = stack.status()
        leading.stop()
        lost = leading.first_after(stopped, lambda v: v == 0)
        regained = leading.first_after(lost, lambda v: v == 1) if lost is not None else None
        result.figure("API server down (stop to /readyz)", f"{ready - stopped:.1f} s")
        result.figure("leadership", "kept" if lost is None else
                      f"lost {lost - stopped:.1f} s after the stop (renew deadline 10 s), "
                      + ("never regained" if regained is None
                         else f"regained {regained - ready:.2f} s after /readyz"
                         if regained >= ready
                         else f"regained {ready - regained:.2f} s before /readyz"))
        result.figure("ready -> next successful reconcile",
                      f"{reconcile_after:.2f} s" if reconcile_after is not None else "never")
        result.figure("ready -> next status change",
                      f"{status_after:.2f} s" if status_after is not None else "never")
        result.figure("controller process", "same PID, alive" if ctl.alive() and ctl.pid == pid
                      else "restarted or dead")
        result.figure("outcome", str(st.get("phase")))
        result.expect(reconcile_after is not None and reconcile_after <= 10.0,
                      f"no reconcile within 10 s of the API server being ready "
                      f"({reconcile_after})\n{ctl.log_tail(20)}")
        result.expect(status_after is not None and status_after <= 10.0,
                      f"no status change within 10 s of the API server being ready "
                      f"({status_after})\n{ctl.log_tail(20)}")
        result.expect(ctl.alive(), "the controller died")
        result.expect(done is not None and st.get("phase") == "Succeeded",
                      f"ended {st.get('phase')} {st.get('reason')}")
        decisions = [d for d in st.get("decisions") or [] if d["seq"] > 0]
        first = next((i for i, d in enumerate(decisions)
                      if d["type"] == DecisionType.RUN_STARTED), 0)
        check = check_run(stack.service, int(st.get("run") or 0), decisions[first:],
                          "Succeeded", str(st.get("phase")),
                          int(decisions[first]["seq"]) if decisions else 1)
        add_run_figures(result, [check])
    finally:
        if poller is not None:
            poller.stop()
        fleet.stop()
    return result


# ============================================================================ 6. bad input

#: label values that try to break out of a PromQL matcher
INJECTIONS = (
    'a"} or vector(1) #', 'checkout"}', "checkout\nup", "a{b}", "{{service}}", 'x" or "y',
    "a=~\".*\"", "checkout) or on() vector(1", "checkout\\", "a}", "a or b", "a+b", "a/b",
    "a*1", "rate(x[5m])", "a\rb", "a\tb", "a,b=\"c\"", "a;drop", "é", "a\u0000b",
)
_DANGEROUS = "\"'{}()[]\\\n\r\t =~!,;#+-*/^%<>|&$`@ é"

_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-"
_TYPOS = ("weigth", "hodl", "intervall", "rollbackAftr", "stabel", "canray", "gatewayApi",
          "sloPolicy", "gate", "step", "Replicas", "minsamples", "onNodata", "extra", "x-foo",
          "objectives", "burnRateAlert", "Spec", "specs", "windows", "slo_name")


@dataclass(frozen=True)
class BadInput:
    """One invalid document, the field its one mutation broke, and how."""

    kind: str  # RolloutPlan or SLOPolicy
    doc: dict[str, Any]
    path: str  # the wire path a problem must name (or be inside)
    mutation: str
    injection: str | None = None  # the label value when the mutation is an injection


def _name(n: int) -> str:
    """A valid object name for N: lowercase letters, digits and '-', 2 to 14 characters."""
    letters, chars = "abcdefghijklmnopqrstuvwxyz", _NAME_CHARS
    out = letters[n % 26]
    n //= 26
    while n:
        out += chars[n % len(chars)]
        n //= len(chars)
    return out + "0"


def names() -> st.SearchStrategy[str]:
    return st.integers(0, 2**64).map(_name)


def durations(low: int = 1, high: int = 999, units: str = "smh") -> st.SearchStrategy[str]:
    return st.builds(lambda n, u: f"{n}{u}", st.integers(low, high), st.sampled_from(units))


def bad_durations() -> st.SearchStrategy[Any]:
    pattern = re.compile(DURATION_PATTERN)
    texts = st.text(alphabet="0123456789smhdMHy .-:PT", max_size=8).filter(
        lambda t: not pattern.fullmatch(t.strip()))
    return st.one_of(
        st.sampled_from(["5 minutes", "-5m", "5", "", "1.5h", "5M", "P1D", "1h 30m", "5mm",
                         "∞", "5min", "1w", "1y", "30 d", "m5"]),
        texts, st.integers(-10, 10_000), st.floats(allow_nan=False),
        st.lists(st.just("5m"), min_size=1, max_size=2),
    )


def bad_names() -> st.SearchStrategy[str]:
    inserted = st.builds(lambda n, c, i: n[:i % (len(n) + 1)] + c + n[i % (len(n) + 1):],
                         names(), st.sampled_from("A_ /:@#$%^&*()+=!?,;'\"\\\n\t{}[]<>~`|éZ中"),
                         st.integers(0, 20))
    return st.one_of(inserted, names().map(lambda n: "-" + n), names().map(lambda n: n + "-"),
                     st.just(""), st.just("a" * 254), names().map(str.upper).filter(
                         lambda n: n != n.lower()))


def injections() -> st.SearchStrategy[str]:
    """Label values a template must never take: known payloads, and safe values with a
    dangerous character inside."""
    generated = st.builds(lambda n, c, i: n[:i % (len(n) + 1)] + c + n[i % (len(n) + 1):],
                          names(), st.sampled_from(_DANGEROUS), st.integers(0, 20)).filter(
        lambda v: not templates.is_label_safe(v))
    return st.one_of(st.sampled_from(INJECTIONS), generated)


@st.composite
def valid_plans(draw: st.DrawFn) -> dict[str, Any]:
    service = draw(names())
    weights = sorted(draw(st.lists(st.integers(1, 99), max_size=5, unique=True))) + [100]
    steps = [{"weight": w, "hold": draw(durations())} for w in weights]
    gates: list[dict[str, Any]] = [{"slo": "api_availability"}]
    if draw(st.booleans()):
        gates.append({"slo": "request_latency"})
    if draw(st.booleans()):
        gates.append({"canaryVsStable": {"slo": "api_availability",
                                         "maxRatio": draw(st.integers(1, 5))}})
    analysis: dict[str, Any] = {}
    for key in ("interval", "window", "rollbackAfter", "noDataTimeout"):
        if draw(st.booleans()):
            analysis[key] = draw(durations())
    if draw(st.booleans()):
        analysis["minSamples"] = draw(st.integers(0, 10_000))
    if draw(st.booleans()):
        analysis["onNoData"] = draw(st.sampled_from(["hold", "pause", "rollback"]))
    canary: dict[str, Any] = {"name": f"{service}-canary"}
    if draw(st.booleans()):
        canary["replicas"] = draw(st.integers(1, 100))
    spec: dict[str, Any] = {
        "target": {"stable": {"name": service}, "canary": canary},
        "traffic": {"gatewayAPI": {"httpRoute": service, "stableBackend": service,
                                   "canaryBackend": f"{service}-canary"}},
        "steps": steps,
        "sloPolicyRef": {"name": "platform"},
        "gates": gates,
    }
    if analysis:
        spec["analysis"] = analysis
    if draw(st.booleans()):
        spec["service"] = draw(names())
    if draw(st.booleans()):
        spec["promotion"] = {"mode": draw(st.sampled_from(["auto", "manual"]))}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RolloutPlan",
            "metadata": {"name": draw(names())}, "spec": spec}


_ALERTS = (("5m", "30s"), ("30m", "1m"), ("1h", "5m"))


@st.composite
def valid_policies(draw: st.DrawFn) -> dict[str, Any]:
    service = draw(names())
    window = draw(st.sampled_from(["1h", "6h", "1d", "7d", "30d"]))
    bad = ('sum(rate(http_requests_total{service="{{service}}",track="{{track}}",'
           'code=~"5.."}[{{window}}]))')
    total = 'sum(rate(http_requests_total{service="{{service}}",track="{{track}}"}[{{window}}]))'
    alerts = [{"severity": "critical", "factor": draw(st.sampled_from([14.4, 6, 2.5])),
               "long": long, "short": short}
              for long, short in draw(st.lists(st.sampled_from(_ALERTS), max_size=2,
                                               unique=True))]
    slos: list[dict[str, Any]] = [
        {"name": "api_availability",
         "objective": draw(st.floats(50, 99.99).map(lambda x: round(x, 2))),
         "window": window, "sli": {"ratio": {"bad": bad, "total": total}},
         "burnRateAlerts": alerts},
        {"name": "request_latency", "objective": draw(st.sampled_from([90, 95, 99])),
         "window": window,
         "sli": {"latency": {"histogram": "http_request_duration_seconds",
                             "le": draw(st.sampled_from(["0.1", "0.2", "0.5", "1"]))}}},
    ]
    if draw(st.booleans()):
        slos.append({"name": "throughput", "sli": {"throughput": {
            "query": 'sum(rate(http_requests_total{service="{{service}}"}[{{window}}]))',
            "min": draw(st.integers(0, 100))}}})
    spec: dict[str, Any] = {"slos": slos}
    if draw(st.booleans()):
        spec["service"] = service
    if draw(st.booleans()):
        spec["prometheus"] = {"url": "http://127.0.0.1:9", "timeout": draw(durations(1, 30,
                                                                                      "s"))}
    if draw(st.booleans()):
        spec["evaluationInterval"] = draw(durations(10, 300, "s"))
    if draw(st.booleans()):
        spec["errorBudgetPolicy"] = {"freezeReleases": {
            "slo": "api_availability", "whenRemainingBelow": 10, "releaseAbove": 15}}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SLOPolicy",
            "metadata": {"name": draw(names())}, "spec": spec}


# --------------------------------------------------------------------- mutations

Path_ = tuple[str | int, ...]


def _get(doc: Any, path: Path_) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _set(doc: Any, path: Path_, value: Any) -> None:
    _get(doc, path[:-1])[path[-1]] = value


def _delete(doc: Any, path: Path_) -> None:
    del _get(doc, path[:-1])[path[-1]]


def _path(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


Mutation = Callable[[st.DrawFn, dict[str, Any]], tuple[Path_, str | None]]


def _index(draw: st.DrawFn, items: list[Any], low: int = 0) -> int:
    return int(draw(st.integers(low, len(items) - 1)))


def _plan_weight_out_of_range(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    i = _index(draw, d["spec"]["steps"])
    value = draw(st.one_of(st.integers(-1000, 0), st.integers(101, 10**6)))
    _set(d, ("spec", "steps", i, "weight"), value)
    return ("spec", "steps", i, "weight"), None


def _plan_not_increasing(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    steps = d["spec"]["steps"]
    if len(steps) < 2:
        steps.insert(0, {"weight": draw(st.integers(2, 99)), "hold": "5m"})
    i = _index(draw, steps, 1)
    steps[i]["weight"] = draw(st.integers(1, steps[i - 1]["weight"]))
    return ("spec", "steps", i, "weight"), None


def _plan_last_not_100(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    steps = d["spec"]["steps"]
    low = steps[-2]["weight"] + 1 if len(steps) > 1 else 1
    steps[-1]["weight"] = draw(st.integers(min(low, 99), 99))
    return ("spec", "steps", len(steps) - 1, "weight"), None


def _plan_bad_duration(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    i = _index(draw, d["spec"]["steps"])
    where = draw(st.sampled_from([("spec", "steps", i, "hold")] + [
        ("spec", "analysis", k) for k in ("interval", "window", "rollbackAfter",
                                          "noDataTimeout")]))
    d["spec"].setdefault("analysis", {})
    zero_ok = where[-1] != "rollbackAfter"  # a zero rollbackAfter is valid: at once
    value = draw(bad_durations() | (st.just("0s") if zero_ok else st.nothing()))
    _set(d, where, value)
    return where, None


def _object_paths(d: dict[str, Any]) -> list[Path_]:
    spec = d["spec"]
    paths: list[Path_] = [(), ("spec",)]
    for key, value in spec.items():
        if isinstance(value, dict):
            paths.append(("spec", key))
            paths += [("spec", key, k) for k, v in value.items() if isinstance(v, dict)]
        elif isinstance(value, list):
            paths += [("spec", key, i) for i, v in enumerate(value) if isinstance(v, dict)]
            for i, v in enumerate(value):
                if isinstance(v, dict):
                    paths += [("spec", key, i, k) for k, w in v.items() if isinstance(w, dict)]
                    if key == "slos" and isinstance(v.get("sli"), dict):
                        paths += [("spec", key, i, "sli", k) for k in v["sli"]]
    return paths


def _unknown_field(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    where = draw(st.sampled_from(_object_paths(d)))
    target = _get(d, where)
    key = draw(st.sampled_from(_TYPOS) | st.text(alphabet="qxz", min_size=2, max_size=6)
               .map(lambda s: "x" + s))
    if key in target:
        key = key + "x"
    target[key] = draw(st.sampled_from([1, "x", True, {"a": 1}, [1]]))
    return (*where, key), None


_ROUTERS = {"istio": {"virtualService": "vs", "route": "r", "stableHost": "a",
                      "canaryHost": "b"},
            "nginx": {"ingress": "ing", "canaryService": "c"}, "replicas": {}}


def _plan_routers(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    if draw(st.booleans()):
        d["spec"]["traffic"] = {}
    else:
        for name in draw(st.lists(st.sampled_from(sorted(_ROUTERS)), min_size=1,
                                  unique=True)):
            d["spec"]["traffic"][name] = copy.deepcopy(_ROUTERS[name])
    return ("spec", "traffic"), None


def _plan_missing(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    i = _index(draw, d["spec"]["steps"])
    where = draw(st.sampled_from([
        ("spec",), ("spec", "target"), ("spec", "traffic"), ("spec", "target", "stable"),
        ("spec", "target", "canary"), ("spec", "target", "stable", "name"),
        ("spec", "target", "canary", "name"), ("spec", "traffic", "gatewayAPI", "httpRoute"),
        ("spec", "traffic", "gatewayAPI", "stableBackend"),
        ("spec", "traffic", "gatewayAPI", "canaryBackend"), ("spec", "steps", i, "weight"),
        ("spec", "steps", i, "hold"), ("metadata", "name"), ("metadata",),
        ("spec", "sloPolicyRef", "name")]))
    _delete(d, where)
    return where, None


def _plan_wrong_type(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    i = _index(draw, d["spec"]["steps"])
    where, values = draw(st.sampled_from([
        (("spec", "steps", i, "weight"), ["ten", 1.5, [10], {"w": 10}, None]),
        (("spec", "steps"), [{"weight": 10}, "10,25,50,100", 100]),
        (("spec", "target"), ["checkout", ["checkout"], 1]),
        (("spec", "gates"), [{"slo": "api_availability"}, "api_availability"]),
        (("spec", "paused"), ["maybe", 2, [], {}]),
        (("spec", "analysis"), ["fast", [1]]),
        (("spec", "promotion", "mode"), ["automatic", 1, True]),
        (("spec", "analysis", "onNoData"), ["ignore", "HOLD", 0]),
        (("spec", "analysis", "minSamples"), ["many", 1.5, -1, [500]]),
        (("spec", "target", "canary", "replicas"), [0, -1, 10_001, "three", 1.5]),
        (("spec", "service"), [1, ["a"], {"a": 1}, ""]),
        (("spec", "sloPolicyRef"), ["platform", ["platform"]]),
    ]))
    d["spec"].setdefault("analysis", {})
    d["spec"].setdefault("promotion", {})
    _set(d, where, draw(st.sampled_from(cast(list[Any], values))))
    return where, None


def _plan_bad_name(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    where = draw(st.sampled_from([
        ("metadata", "name"), ("spec", "target", "stable", "name"),
        ("spec", "target", "canary", "name"), ("spec", "traffic", "gatewayAPI", "httpRoute"),
        ("spec", "traffic", "gatewayAPI", "stableBackend"),
        ("spec", "traffic", "gatewayAPI", "canaryBackend"), ("spec", "sloPolicyRef", "name")]))
    _set(d, where, draw(bad_names()))
    return where, None


def _plan_same_workloads(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    d["spec"]["target"]["canary"]["name"] = d["spec"]["target"]["stable"]["name"]
    return ("spec", "target", "canary", "name"), None


def _plan_injection(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    value = draw(injections())
    d["spec"]["service"] = value
    return ("spec", "service"), value


def _plan_gates(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    gates = d["spec"]["gates"]
    i = _index(draw, gates)
    how = draw(st.sampled_from(["two-kinds", "empty", "ratio", "name", "unknown-slo",
                                "duplicate", "probe-url"]))
    if how == "two-kinds":
        gates[i] = {"slo": "api_availability", "probe": {"url": "http://x"}}
        return ("spec", "gates", i), None
    if how == "empty":
        gates[i] = {}
        return ("spec", "gates", i), None
    if how == "ratio":
        gates[i] = {"canaryVsStable": {"slo": "api_availability",
                                       "maxRatio": draw(st.floats(-5, 0.99))}}
        return ("spec", "gates", i, "canaryVsStable", "maxRatio"), None
    if how == "name":
        gates[i] = {"slo": draw(bad_names())}
        return ("spec", "gates", i, "slo"), None
    if how == "unknown-slo":
        gates[i] = {"slo": draw(st.sampled_from(["no_such_slo", "availability", "latency"]))}
        return ("spec", "gates", i, "slo"), None
    if how == "duplicate":
        gates.append(copy.deepcopy(gates[i]))
        return ("spec", "gates", len(gates) - 1), None
    gates[i] = {"probe": {"url": draw(st.sampled_from(["ftp://x", "x", "", "//host/"]))}}
    return ("spec", "gates", i, "probe", "url"), None


def _plan_too_many_steps(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    n = draw(st.integers(21, 40))
    d["spec"]["steps"] = [{"weight": w, "hold": "1m"} for w in range(1, n)] + [
        {"weight": 100, "hold": "1m"}]
    return ("spec", "steps"), None


def _plan_empty_steps(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    d["spec"]["steps"] = []
    return ("spec", "steps"), None


def _plan_request_id(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    kind = draw(st.sampled_from(["promote", "resume", "abort", "retry", "drill"]))
    d["spec"]["requests"] = {kind: {"id": draw(bad_names().filter(
        lambda n: not re.fullmatch(r"[A-Za-z0-9][-A-Za-z0-9_.]*", n) or len(n) > 64))}}
    return ("spec", "requests", kind, "id"), None


PLAN_MUTATIONS: dict[str, Mutation] = {
    "weight out of range": _plan_weight_out_of_range,
    "weights not increasing": _plan_not_increasing,
    "last step not 100": _plan_last_not_100,
    "bad duration": _plan_bad_duration,
    "unknown field": _unknown_field,
    "not exactly one router": _plan_routers,
    "missing field": _plan_missing,
    "wrong type": _plan_wrong_type,
    "bad name": _plan_bad_name,
    "canary is stable": _plan_same_workloads,
    "label injection": _plan_injection,
    "bad gate": _plan_gates,
    "too many steps": _plan_too_many_steps,
    "no steps": _plan_empty_steps,
    "bad request id": _plan_request_id,
}


def _slo_index(draw: st.DrawFn, d: dict[str, Any], kinds: tuple[str, ...] = ()) -> int:
    slos = d["spec"]["slos"]
    choices = [i for i, s in enumerate(slos) if not kinds or set(s["sli"]) & set(kinds)]
    return int(draw(st.sampled_from(choices)))


def _ensure_alert(d: dict[str, Any]) -> int:
    alerts = d["spec"]["slos"][0].setdefault("burnRateAlerts", [])
    if not alerts:
        alerts.append({"severity": "critical", "factor": 14.4, "long": "5m", "short": "30s"})
    return 0


def _ensure_freeze(d: dict[str, Any]) -> dict[str, Any]:
    d["spec"].setdefault("errorBudgetPolicy", {}).setdefault("freezeReleases", {
        "slo": "api_availability", "whenRemainingBelow": 10, "releaseAbove": 15})
    freeze: dict[str, Any] = d["spec"]["errorBudgetPolicy"]["freezeReleases"]
    return freeze


def _policy_objective(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    i = _slo_index(draw, d, ("ratio", "latency"))
    value = draw(st.one_of(st.floats(-100, 0), st.floats(100, 10_000), st.sampled_from(
        ["high", "99.9%", [99]])))
    d["spec"]["slos"][i]["objective"] = value
    return ("spec", "slos", i, "objective"), None


def _policy_missing_objective(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    i = _slo_index(draw, d, ("ratio", "latency"))
    del d["spec"]["slos"][i]["objective"]
    return ("spec", "slos", i, "objective"), None


def _policy_short_long(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    j = _ensure_alert(d)
    alert = d["spec"]["slos"][0]["burnRateAlerts"][j]
    if draw(st.booleans()):
        not_shorter = {"5m": ["5m", "10m", "1h"], "30m": ["30m", "1h"], "1h": ["1h", "2h"]}
        alert["short"] = draw(st.sampled_from(not_shorter[alert["long"]]))
        return ("spec", "slos", 0, "burnRateAlerts", j, "short"), None
    window = d["spec"]["slos"][0]["window"]
    longer = {"1h": "2h", "6h": "7h", "1d": "2d", "7d": "8d", "30d": "31d"}[window]
    alert["long"] = longer
    return ("spec", "slos", 0, "burnRateAlerts", j, "long"), None


def _policy_template(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    var = draw(st.sampled_from(["job", "env", "cluster", "pod", "Service", "SERVICE", "svc",
                                "windows", "namespace2", "", "service | lower",
                                "track.name"]))
    i = _slo_index(draw, d, ("ratio", "latency"))
    sli = d["spec"]["slos"][i]["sli"]
    if "ratio" in sli:
        field_ = draw(st.sampled_from(["bad", "total"]))
        sli["ratio"][field_] = sli["ratio"][field_].replace(
            '{{service}}"', '{{service}}",x="{{' + var + '}}"')
        return ("spec", "slos", i, "sli", "ratio", field_), None
    sli["latency"]["selector"] = 'handler="{{' + var + '}}"'
    return ("spec", "slos", i, "sli", "latency", "selector"), None


def _policy_sli_kinds(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    i = _slo_index(draw, d)
    if draw(st.booleans()):
        d["spec"]["slos"][i]["sli"] = {}
    else:
        d["spec"]["slos"][i]["sli"]["gauge" if "throughput" in d["spec"]["slos"][i]["sli"]
                                    else "throughput"] = {"query": "up", "min": 1, "max": 2}
        d["spec"]["slos"][i]["sli"].get("throughput", {}).pop("max", None)
    return ("spec", "slos", i, "sli"), None


def _policy_slo_name(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    i = _slo_index(draw, d)
    if draw(st.booleans()):
        d["spec"]["slos"][i]["name"] = draw(st.one_of(
            st.sampled_from(["API-availability", "1abc", "a b", "", "Availability", "a-b"]),
            bad_names()))
        return ("spec", "slos", i, "name"), None
    d["spec"]["slos"][1]["name"] = d["spec"]["slos"][0]["name"]
    return ("spec", "slos", 1, "name"), None


def _policy_freeze(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    freeze = _ensure_freeze(d)
    at = ("spec", "errorBudgetPolicy", "freezeReleases")
    how = draw(st.sampled_from(["slo", "threshold", "release", "percent", "inflight"]))
    if how == "slo":
        freeze["slo"] = draw(st.sampled_from(["no_such_slo", "availability"]))
        return (*at, "slo"), None
    if how == "threshold":
        d["spec"]["slos"].append({"name": "queue_depth", "sli": {"gauge": {
            "query": "max(queue_depth)", "max": 100}}})
        freeze["slo"] = "queue_depth"
        return (*at, "slo"), None
    if how == "release":
        freeze["whenRemainingBelow"] = draw(st.integers(20, 100))
        freeze["releaseAbove"] = draw(st.integers(0, freeze["whenRemainingBelow"] - 1))
        return (*at, "releaseAbove"), None
    if how == "percent":
        key = draw(st.sampled_from(["whenRemainingBelow", "releaseAbove"]))
        freeze[key] = draw(st.sampled_from(["150%", -5, 101, "ten", "10 percent", True]))
        return (*at, key), None
    freeze["inFlight"] = draw(st.sampled_from(["pause", "Hold", "", 1]))
    return (*at, "inFlight"), None


def _policy_alert(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    j = _ensure_alert(d)
    at = ("spec", "slos", 0, "burnRateAlerts", j)
    if draw(st.booleans()):
        d["spec"]["slos"][0]["burnRateAlerts"][j]["factor"] = draw(
            st.one_of(st.floats(-100, 0), st.sampled_from(["fast", None])))
        return (*at, "factor"), None
    d["spec"]["slos"][0]["burnRateAlerts"][j]["severity"] = draw(
        st.sampled_from(["page", "CRITICAL", "info", ""]))
    return (*at, "severity"), None


def _policy_prometheus(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    d["spec"]["prometheus"] = {"url": "http://127.0.0.1:9"}
    if draw(st.booleans()):
        d["spec"]["prometheus"]["url"] = draw(st.sampled_from(
            ["prometheus:9090", "ftp://prom", "", "//prom:9090", "tcp://x"]))
        return ("spec", "prometheus", "url"), None
    d["spec"]["prometheus"]["timeout"] = draw(bad_durations())
    return ("spec", "prometheus", "timeout"), None


def _policy_injection(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    value = draw(injections())
    d["spec"]["service"] = value
    return ("spec", "service"), value


def _policy_duration(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    i = _slo_index(draw, d)
    where = draw(st.sampled_from([("spec", "evaluationInterval"),
                                  ("spec", "slos", i, "window")]))
    value = draw(bad_durations() | (st.just("0s") if where[-1] == "window" else st.nothing()))
    _set(d, where, value)
    return where, None


def _policy_sli_fields(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    how = draw(st.sampled_from(["gauge", "le", "histogram", "threshold-alerts", "query"]))
    slos = d["spec"]["slos"]
    if how == "gauge":
        slos.append({"name": "memory", "sli": {"gauge": {"query": "max(mem)"}}})
        return ("spec", "slos", len(slos) - 1, "sli", "gauge"), None
    if how == "le":
        slos[1]["sli"]["latency"]["le"] = draw(st.sampled_from(["0.2s", "fast", "", "1e", "-1",
                                                                 "+inf", ".5"]))
        return ("spec", "slos", 1, "sli", "latency", "le"), None
    if how == "histogram":
        slos[1]["sli"]["latency"]["histogram"] = draw(st.sampled_from(
            ["http-duration", "1abc", "", "a b", "a{b}"]))
        return ("spec", "slos", 1, "sli", "latency", "histogram"), None
    if how == "threshold-alerts":
        slos.append({"name": "rps", "sli": {"throughput": {"query": "sum(rate(x[5m]))",
                                                            "min": 1}},
                     "burnRateAlerts": [{"factor": 14.4, "long": "1h", "short": "5m"}]})
        return ("spec", "slos", len(slos) - 1, "burnRateAlerts"), None
    slos[0]["sli"]["ratio"]["bad"] = draw(st.sampled_from(["", "x" * 4097]))
    return ("spec", "slos", 0, "sli", "ratio", "bad"), None


def _policy_slos_shape(draw: st.DrawFn, d: dict[str, Any]) -> tuple[Path_, str | None]:
    how = draw(st.sampled_from(["empty", "missing", "missing-sli", "missing-name"]))
    if how == "empty":
        d["spec"]["slos"] = []
        return ("spec", "slos"), None
    if how == "missing":
        del d["spec"]["slos"]
        return ("spec", "slos"), None
    i = _slo_index(draw, d)
    key = "sli" if how == "missing-sli" else "name"
    del d["spec"]["slos"][i][key]
    return ("spec", "slos", i, key), None


POLICY_MUTATIONS: dict[str, Mutation] = {
    "objective out of range": _policy_objective,
    "missing objective": _policy_missing_objective,
    "short >= long window": _policy_short_long,
    "unknown template variable": _policy_template,
    "not exactly one SLI": _policy_sli_kinds,
    "bad SLO name": _policy_slo_name,
    "bad freeze": _policy_freeze,
    "bad burn-rate alert": _policy_alert,
    "bad prometheus": _policy_prometheus,
    "label injection": _policy_injection,
    "bad duration": _policy_duration,
    "bad SLI field": _policy_sli_fields,
    "bad slos": _policy_slos_shape,
    "unknown field": _unknown_field,
}


@st.composite
def invalid_plans(draw: st.DrawFn) -> BadInput:
    """A valid plan with exactly one mutation that makes it invalid."""
    doc = draw(valid_plans())
    name = draw(st.sampled_from(sorted(PLAN_MUTATIONS)))
    path, injection = PLAN_MUTATIONS[name](draw, doc)
    return BadInput("RolloutPlan", doc, _path(path), name, injection)


@st.composite
def invalid_policies(draw: st.DrawFn) -> BadInput:
    """A valid policy with exactly one mutation that makes it invalid."""
    doc = draw(valid_policies())
    name = draw(st.sampled_from(sorted(POLICY_MUTATIONS)))
    path, injection = POLICY_MUTATIONS[name](draw, doc)
    return BadInput("SLOPolicy", doc, _path(path), name, injection)


def generate(strategy: st.SearchStrategy[BadInput], count: int, seed: int) -> list[BadInput]:
    """COUNT examples of STRATEGY, drawn by hypothesis (generation phase only, seeded)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as seed_

    out: list[BadInput] = []

    @seed_(seed)
    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(bad: BadInput) -> None:
        out.append(bad)

    collect()
    return out


def generate_distinct(strategy: st.SearchStrategy[BadInput], count: int, seed: int
                      ) -> list[BadInput]:
    """COUNT distinct documents (hypothesis repeats small examples): batches with new seeds
    until there are enough."""
    out: dict[str, BadInput] = {}
    for round_ in range(20):
        for bad in generate(strategy, max(10, int((count - len(out)) * 1.2)),
                            seed + 7919 * round_):
            out.setdefault(json.dumps([bad.kind, bad.doc], sort_keys=True, default=str), bad)
        if len(out) >= count:
            break
    return list(out.values())[:count]


def injection_documents() -> list[BadInput]:
    """Every known payload of INJECTIONS as the ``service`` of a plan and of a policy."""
    out = []
    for value in INJECTIONS:
        plan = rollout_plan("checkout", "platform")
        plan["spec"]["service"] = value
        policy = slo_policy("platform", "checkout", "http://127.0.0.1:9")
        policy["spec"]["service"] = value
        out += [BadInput("RolloutPlan", plan, "spec.service", "label injection", value),
                BadInput("SLOPolicy", policy, "spec.service", "label injection", value)]
    return out


#: the policy the plans are checked against (and which exists in the bad-input namespace)
CONTROL_POLICY = slo_policy("platform", "checkout", "http://127.0.0.1:9")


def validate(bad: BadInput, policy: SLOPolicy) -> list[Problem]:
    """What the controller finds wrong with BAD: the checks of a reconcile pass."""
    if bad.kind == "SLOPolicy":
        return check_policy(bad.doc)[1]
    plan, problems = check_plan(bad.doc)
    if plan is not None and not problems:
        problems = check_plan_against_policy(plan, policy)
    return problems


def names_field(paths: Sequence[str], expected: str) -> str | None:
    """"exact" when a path is EXPECTED or inside it, "parent" when a path is a parent of
    it (below ``spec``), else None."""
    for p in paths:
        if p == expected or p.startswith(expected + ".") or p.startswith(expected + "["):
            return "exact"
    for p in paths:
        if p not in ("", "spec", "metadata") and (expected.startswith(p + ".")
                                                  or expected.startswith(p + "[")):
            return "parent"
    return None


class QueryLoggedPrometheus(PrometheusServer):
    """A PrometheusServer that logs every query it answers (``query_log_file``)."""

    @property
    def query_log(self) -> Path:
        return self.dir / "queries.log"

    def _write_config(self) -> None:
        super()._write_config()
        import yaml

        config = yaml.safe_load(self.config_file.read_text())
        config["global"]["query_log_file"] = str(self.query_log)
        self.config_file.write_text(yaml.safe_dump(config, sort_keys=False))

    def queries(self) -> list[str]:
        try:
            lines = self.query_log.read_text(errors="replace").splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            with contextlib.suppress(ValueError):
                out.append(str(json.loads(line).get("params", {}).get("query", "")))
        return out


_SERVICE_MATCHER = re.compile(r'service="((?:[^"\\]|\\.)*)"')


def _api_paths(exc: ApiException) -> tuple[list[str], str]:
    """The field paths an API server error names, and its message."""
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        return [], str(exc.body)
    message = str(body.get("message", ""))
    paths = [str(c.get("field", "")) for c in (body.get("details") or {}).get("causes") or []]
    paths += re.findall(r'unknown field "([^"]+)"', message)
    paths += re.findall(r"(?:^|[ :])((?:spec|metadata)(?:[.\[][\w\[\].-]*)?)(?=: )", message)
    return [p for p in paths if p], message


def bad_input(env: Env, short: bool = False, seed: int = 13) -> ScenarioResult:
    """10,000 (short: 500) hypothesis-generated invalid plans and policies through
    validation; 1,000 (short: 100) of them sampled through the API server and the running
    controller; template-injection attempts never reach Prometheus."""
    result = ScenarioResult("Bad input")
    count = 500 if short else 10_000
    sample_size = 100 if short else 1_000
    started = time.monotonic()
    docs = (generate_distinct(invalid_plans(), count // 2, seed)
            + generate_distinct(invalid_policies(), count - count // 2, seed + 1))
    docs += injection_documents()
    generated = time.monotonic() - started
    policy = parse_policy(CONTROL_POLICY)
    crashes: list[str] = []
    accepted: list[BadInput] = []
    not_field: list[BadInput] = []
    exact = parent = 0
    for bad in docs:
        try:
            problems = validate(bad, policy)
        except Exception as exc:
            crashes.append(f"{bad.mutation} at {bad.path}: {type(exc).__name__}: {exc}")
            continue
        if not problems:
            accepted.append(bad)
            continue
        how = names_field([p.path for p in problems], bad.path)
        if how is None:
            not_field.append(bad)
            result.problems.append(f"validation: {bad.kind} {bad.mutation} at {bad.path}: "
                                   f"problems name {[str(p) for p in problems][:3]}")
        exact += how == "exact"
        parent += how == "parent"
    distinct = len({json.dumps(b.doc, sort_keys=True, default=str) for b in docs})
    kinds = Counter(b.kind for b in docs)
    injected = sum(b.injection is not None for b in docs)
    result.figure("invalid documents", f"{len(docs)}, {distinct} distinct "
                                       f"({kinds['RolloutPlan']} plans, {kinds['SLOPolicy']} "
                                       f"policies; {injected} label injections; "
                                       f"generated by hypothesis in {generated:.0f} s)")
    result.figure("mutations", f"{len(PLAN_MUTATIONS)} plan, {len(POLICY_MUTATIONS)} policy")
    result.figure("validation: rejected", f"{len(docs) - len(accepted) - len(crashes)}"
                                          f"/{len(docs)}")
    result.figure("validation: message names the broken field",
                  f"{exact + parent}/{len(docs)} ({parent} name its parent)")
    result.figure("validation: crashes", len(crashes))
    result.expect(distinct >= count, f"only {distinct} distinct documents generated")
    result.problems += [f"validation crashed: {c}" for c in crashes[:20]]
    result.problems += [f"validation accepted: {b.kind} {b.mutation} at {b.path}: "
                        f"{json.dumps(b.doc, default=str)[:300]}" for b in accepted[:20]]
    api_server_path(env, result, docs, sample_size, seed)
    return result


def api_server_path(env: Env, result: ScenarioResult, docs: list[BadInput], size: int,
                    seed: int) -> None:
    """Create a sample of DOCS in a namespace (strict field validation, as kubectl does):
    each must be refused by the API server naming the field, or be created and then marked
    Invalid by the controller naming the field. The controller must stay healthy."""
    rng = random.Random(seed)
    injected = [b for b in docs if b.injection is not None]
    others = [b for b in docs if b.injection is None]
    k = min(len(injected), max(2 * len(INJECTIONS), size // 10))
    known = [b for b in injected if b.injection in INJECTIONS]  # every known payload
    rest = [b for b in injected if b.injection not in INJECTIONS]
    sample = known[:k] + rng.sample(rest, min(len(rest), k - len(known[:k])))
    sample += rng.sample(others, min(len(others), size - len(sample)))
    api = env.api()
    core: Any = client.CoreV1Api(api)
    custom: Any = client.CustomObjectsApi(api)
    workdir = env.workdir / f"badinput-{uuid.uuid4().hex[:6]}"
    workdir.mkdir(parents=True, exist_ok=True)
    ns = f"rel-badinput-{uuid.uuid4().hex[:5]}"
    prometheus = QueryLoggedPrometheus(workdir / "prometheus")
    ctl: ControllerProcess | None = None
    try:
        core.create_namespace({"metadata": {"name": ns}}, _request_timeout=30)
        prometheus.start()
        control = slo_policy("platform", "checkout", prometheus.url)
        control["spec"]["evaluationInterval"] = "5s"
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, "slopolicies", control,
                                               _request_timeout=30)
        ctl = start_controller(env, [ns], workdir, "badinput")
        ctl.wait_ready(90)
        refused = {"exact": 0, "parent": 0}
        created: dict[str, BadInput] = {}
        normalized: list[str] = []
        policy = parse_policy(CONTROL_POLICY)
        unexpected: list[str] = []
        health_failures = 0
        for n, bad in enumerate(sample):
            doc = copy.deepcopy(bad.doc)
            if isinstance(doc.get("metadata"), dict) and not bad.path.startswith("metadata"):
                doc["metadata"]["name"] = f"bad-{n:05d}"
            try:
                stored = custom.create_namespaced_custom_object(
                    GROUP, VERSION, ns, PLURALS[bad.kind], doc, field_validation="Strict",
                    _request_timeout=30)
            except ApiException as exc:
                paths, message = _api_paths(exc)
                how = names_field(paths, bad.path) if exc.status in (400, 422) else None
                if how is None:
                    unexpected.append(f"{bad.kind} {bad.mutation} at {bad.path}: HTTP "
                                      f"{exc.status}: {message[:300]}")
                else:
                    refused[how] += 1
                continue
            if not validate(replace(bad, doc=stored), policy):
                # the API server made it valid, e.g. dropped a null (Kubernetes treats a
                # null optional field as absent): the controller rightly runs it
                normalized.append(f"{bad.mutation} at {bad.path}")
            else:
                created[f"{bad.kind}/bad-{n:05d}"] = bad
            if n % 100 == 99 and (not ctl.alive() or healthz(ctl) != 200):
                health_failures += 1
        # every created document: marked invalid by the controller, naming the field
        pending = dict(created)
        flagged = {"exact": 0, "parent": 0}
        deadline = time.monotonic() + 180
        wrong: dict[str, str] = {}
        while pending and time.monotonic() < deadline:
            for key, bad in list(pending.items()):
                kind, name = key.split("/")
                obj = custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURALS[kind],
                                                          name, _request_timeout=30)
                st_ = obj.get("status") or {}
                invalid = (st_.get("phase") == "Invalid" if kind == "RolloutPlan"
                           else st_.get("reason") == "InvalidSpec")
                if not invalid:
                    continue
                paths = [m.split(": ", 1)[0] for m in str(st_.get("message", "")).split("; ")]
                how = names_field(paths, bad.path)
                if how is None:
                    wrong[key] = f"{bad.mutation} at {bad.path}: {st_.get('message')}"
                else:
                    flagged[how] += 1
                del pending[key]
            time.sleep(1.0)
        alive = ctl.alive()
        health = healthz(ctl)
        errors = controller_metric(ctl, "rolloutctl_reconcile_total", result="error")
        # template injection: refused by the template renderer too, and never queried
        payloads = sorted({b.injection for b in docs if b.injection is not None})
        rendered = 0
        for value in payloads:
            with contextlib.suppress(templates.TemplateError):
                templates.render('x{service="{{service}}"}', {"service": value})
                rendered += 1
        queried = wait_until(lambda: prometheus.queries(), 60, 1.0) or []
        leaked = [q for q in queried for v in payloads if v in q]
        unsafe = [v for q in queried for v in _SERVICE_MATCHER.findall(q)
                  if not re.fullmatch(LABEL_VALUE_PATTERN, v)]
        total = len(sample)
        result.figure("API server: documents sent", f"{total} (a sample of {len(docs)}; "
                                                    f"{k} label injections)")
        result.figure("API server: refused (schema, CEL, strict fields), naming the field",
                      f"{refused['exact'] + refused['parent']} ({refused['parent']} name "
                      "its parent)")
        result.figure("created, then Invalid by the controller naming the field",
                      f"{flagged['exact'] + flagged['parent']}/{len(created)}")
        result.figure("made valid by the API server (a null optional field dropped)",
                      f"{len(normalized)}" + (f" ({', '.join(sorted(set(normalized)))})"
                                              if normalized else ""))
        result.figure("controller", f"alive={alive}, /healthz {health}, reconcile errors "
                                    f"{errors if errors is None else int(errors)}, "
                                    f"health checks failed {health_failures}")
        result.figure("label injections refused", f"{len(payloads) - rendered}/{len(payloads)}"
                                                  " by the template renderer")
        result.figure("queries reaching Prometheus with an injected value",
                      f"{len(leaked)} of {len(queried)} logged queries")
        result.problems += [f"API server: {u}" for u in unexpected[:20]]
        result.expect(not unexpected, f"{len(unexpected)} documents neither refused naming "
                                      "the field nor created")
        result.problems += [f"controller: {key}: {w}" for key, w in list(wrong.items())[:20]]
        result.expect(not pending, f"{len(pending)} created documents never marked invalid: "
                                   f"{sorted(pending)[:5]}")
        result.expect(alive and health == 200 and health_failures == 0,
                      f"controller unhealthy: alive={alive} healthz={health}")
        result.expect(errors == 0, f"{errors} reconciles failed with an unexpected error:\n"
                                   f"{ctl.log_tail(20)}")
        result.expect(rendered == 0, f"{rendered} injected values were rendered")
        result.expect(bool(queried), "no query logged: the injection check proves nothing")
        result.expect(not leaked and not unsafe,
                      f"injected values reached Prometheus: {leaked[:3]} {unsafe[:3]}")
    finally:
        if ctl is not None:
            ctl.kill(signal.SIGTERM)
        prometheus.stop()
        with contextlib.suppress(Exception):
            core.delete_namespace(ns, propagation_policy="Background", _request_timeout=30)


# ============================================================================ the suite


SCENARIOS: dict[str, Callable[[Env, bool], ScenarioResult]] = {
    "sigkill": sigkill_chaos,
    "failover": leader_failover,
    "prometheus": prometheus_outage,
    "slack": slack_down,
    "apiserver": apiserver_restart,
    "badinput": bad_input,
}


def run_scenario(name: str, env: Env, short: bool) -> ScenarioResult:
    """Run one scenario; an exception is a FAIL with its message, never a crash."""
    started = time.monotonic()
    try:
        result = SCENARIOS[name](env, short)
    except Exception as exc:
        result = ScenarioResult(name)
        tail = "".join(traceback.format_exception(exc)[-3:])
        result.error = f"{type(exc).__name__}: {exc}\n{tail}"
    result.seconds = time.monotonic() - started
    return result


@contextlib.contextmanager
def local_env(workdir: Path, cluster_dir: Path | None = None) -> Iterator[Env]:
    """An Env on the control plane in CLUSTER_DIR (started there if needed, and then
    stopped at the end), with the project's CRDs installed."""
    from tests.harness import cluster as cluster_mod
    from tests.harness.fixtures import crd_files, install_crds

    own = cluster_dir is None
    cdir = cluster_dir or workdir / "cluster"
    existing = cluster_mod.load_cluster(cdir)
    cl = (existing if existing is not None and existing.is_alive() and existing.is_ready()
          else cluster_mod.start_cluster(cdir))
    try:
        api = cl.api_client()
        try:
            install_crds(api, crd_files()[0])
        finally:
            api.close()  # type: ignore[no-untyped-call]
        yield Env(cl.kubeconfig, workdir, cl.dir)
    finally:
        if own:
            cluster_mod.stop_cluster(cdir)


__all__ = [
    "INJECTIONS",
    "PLAN_MUTATIONS",
    "POLICY_MUTATIONS",
    "SCENARIOS",
    "BadInput",
    "Env",
    "Fleet",
    "ScenarioResult",
    "check_run",
    "generate",
    "invalid_plans",
    "invalid_policies",
    "local_env",
    "names_field",
    "run_scenario",
    "valid_plans",
    "valid_policies",
    "validate",
]
