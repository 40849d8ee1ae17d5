"""Many RolloutPlans mid-run on the local control plane, and what it costs the controller.

The world of the scale benchmark (``python -m bench.scale``) and of its smoke test:

* N plans spread over namespaces of ``per_namespace`` plans, each plan with its own stable
  and canary Deployments (1 replica each once the run started; kwok makes them ready), its
  own HTTPRoute and the gates of the default plan (``policies/default-plan.yaml``:
  ``api_availability``, ``auth_latency`` and ``canaryVsStable``) on one SLOPolicy per
  namespace shaped like ``policies/platform-slos.yaml`` (availability 99.9 % over 30 days
  with the Workbook's two critical burn-rate alerts, login latency 95 % under 200 ms over 7
  days, the release freeze below 10 % budget);
* a **live** Prometheus scraping one small exporter (:class:`SyntheticExporter`) that
  serves every service's request counters and latency histograms for both tracks, as a
  fleet of instrumented services would: the series grow in real time, so every gate
  evaluation at "now" finds fresh data over all its windows (5 m up to 6 h, clipped to the
  run) and the budget over 30 days. Backfilled TSDB blocks (``traces.py``) would have to
  cover the whole benchmark ahead of time (22 series per service, hours of samples) and
  hold samples in the future; a live scrape has neither problem;
* runs started by giving each canary a new pod template (``release``), spread over one
  analysis interval as independent teams would release, with holds of 24 h: every plan
  sits at its first step (10 %) and is analysed every ``analysis.interval``;
* the real controller, ``rolloutctl run``, as a process (:class:`ControllerProcess`).

Measurement helpers read what a user of the controller can read: its ``/metrics`` (work
queue histogram, Prometheus query counter), ``/proc/PID`` (CPU time, RSS), the API
server's ``/metrics`` (``apiserver_request_total``) and Prometheus's own counters.
"""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import python_env
from tests.harness.cluster import Cluster, free_port
from tests.harness.routes import canary_weight
from tests.harness.stack import ControllerProcess, deployment, http_route, rolloutctl_binary
from tests.harness.traces import DEFAULT_BUCKETS, DEFAULT_LATENCY

__all__ = [
    "ApiRequests",
    "ControllerProcess",
    "Histogram",
    "ProcessSampler",
    "ScaleWorld",
    "SyntheticExporter",
    "TrafficShape",
    "Window",
    "WindowFigures",
    "apiserver_requests",
    "histogram_quantile",
    "plan_document",
    "policy_document",
    "scrape",
    "start_controller",
]

GROUP, VERSION = "rolloutctl.dev", "v1alpha1"
LOGIN = "/api/auth/login"

BAD = ('sum(rate(http_requests_total{service="{{service}}",track="{{track}}",code=~"5.."}'
       "[{{window}}]))")
TOTAL = 'sum(rate(http_requests_total{service="{{service}}",track="{{track}}"}[{{window}}]))'


# --------------------------------------------------------------------------- Prometheus data


@dataclass(frozen=True)
class TrafficShape:
    """Requests per second per track, one error ratio, and the latency distribution.

    Healthy on purpose: the error ratio burns 0.3x of a 99.9 % budget and 98 % of requests
    are under 200 ms, on both tracks alike, so every gate passes and no plan rolls back.
    """

    stable_rps: float = 90.0
    canary_rps: float = 10.0
    error_ratio: float = 0.0003
    latency: Mapping[float, float] = field(default_factory=lambda: dict(DEFAULT_LATENCY))
    buckets: Sequence[float] = DEFAULT_BUCKETS
    mean_seconds: float = 0.08


class _ServicesCollector:
    """Cumulative counters of every service at the moment of the scrape (floats, so rates
    are smooth and canary and stable have exactly the same error ratio)."""

    def __init__(self, services: Sequence[str], shape: TrafficShape, start: float) -> None:
        self.services = list(services)
        self.shape = shape
        self.start = start
        shares = []
        for le in shape.buckets:
            shares.append(next((s for b, s in sorted(shape.latency.items()) if b >= le), 1.0))
        self._shares = shares

    def collect(self) -> Iterator[Metric]:
        t = max(0.0, time.time() - self.start)
        shape = self.shape
        requests = CounterMetricFamily("http_requests", "Requests by service, track and code.",
                                       labels=["service", "track", "code"])
        latency = HistogramMetricFamily(
            "http_request_duration_seconds", "Request latency.",
            labels=["service", "track", "handler"])
        for service in self.services:
            for track, rps in (("stable", shape.stable_rps), ("canary", shape.canary_rps)):
                total = rps * t
                errors = total * shape.error_ratio
                requests.add_metric([service, track, "200"], total - errors)
                requests.add_metric([service, track, "500"], errors)
                buckets = [(repr(float(le)), total * share)
                           for le, share in zip(shape.buckets, self._shares, strict=True)]
                buckets.append(("+Inf", total))
                latency.add_metric([service, track, LOGIN], buckets,
                                   total * shape.mean_seconds)
        yield requests
        yield latency


class SyntheticExporter:
    """One HTTP ``/metrics`` serving every service's series (``prometheus_client``)."""

    def __init__(self, services: Sequence[str], shape: TrafficShape | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = _ServicesCollector(services, shape or TrafficShape(), time.time())
        self.registry.register(self.collector)
        self.port = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def series(self) -> int:
        return len(self.collector.services) * 2 * (2 + len(self.collector.shape.buckets) + 3)

    def start(self) -> SyntheticExporter:
        self.port = free_port()
        self._server, self._thread = start_http_server(self.port, addr="127.0.0.1",
                                                       registry=self.registry)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


# --------------------------------------------------------------------------- documents


def policy_document(service: str, prometheus_url: str, name: str = "platform"
                    ) -> dict[str, Any]:
    """An SLOPolicy shaped like ``policies/platform-slos.yaml`` (the two SLOs the default
    plan gates on, and the release freeze) measuring SERVICE's budget."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "SLOPolicy",
        "metadata": {"name": name},
        "spec": {
            "service": service,
            "prometheus": {"url": prometheus_url, "timeout": "10s"},
            "evaluationInterval": "60s",
            "slos": [
                {"name": "api_availability", "objective": 99.9, "window": "30d",
                 "sli": {"ratio": {"bad": BAD, "total": TOTAL}},
                 "burnRateAlerts": [
                     {"severity": "critical", "factor": 14.4, "long": "1h", "short": "5m"},
                     {"severity": "critical", "factor": 6, "long": "6h", "short": "30m"}]},
                {"name": "auth_latency", "objective": 95, "window": "7d",
                 "sli": {"latency": {"histogram": "http_request_duration_seconds",
                                     "le": "0.2", "selector": f'handler="{LOGIN}"'}},
                 "burnRateAlerts": [
                     {"severity": "critical", "factor": 3.36, "long": "1h", "short": "5m"},
                     {"severity": "warning", "factor": 1.4, "long": "6h", "short": "30m"}]},
            ],
            "errorBudgetPolicy": {"freezeReleases": {
                "slo": "api_availability", "whenRemainingBelow": "10%",
                "releaseAbove": "15%", "inFlight": "hold"}},
        },
    }


def plan_document(name: str, policy: str = "platform", *, interval: str = "60s",
                  window: str = "5m", hold: str = "24h") -> dict[str, Any]:
    """The default plan (``policies/default-plan.yaml``) for Deployments NAME and
    NAME-canary and HTTPRoute NAME, without notifications."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "RolloutPlan",
        "metadata": {"name": name},
        "spec": {
            "target": {"stable": {"name": name},
                       "canary": {"name": f"{name}-canary", "replicas": 1}},
            "traffic": {"gatewayAPI": {"httpRoute": name, "stableBackend": name,
                                       "canaryBackend": f"{name}-canary"}},
            "steps": [{"weight": w, "hold": hold} for w in (10, 25, 50, 100)],
            "sloPolicyRef": {"name": policy},
            "gates": [{"slo": "api_availability"}, {"slo": "auth_latency"},
                      {"canaryVsStable": {"slo": "api_availability", "maxRatio": 2}}],
            "analysis": {"interval": interval, "window": window, "rollbackAfter": "5m",
                         "minSamples": 500, "onNoData": "hold", "noDataTimeout": "15m"},
        },
    }


# --------------------------------------------------------------------------- the world


@dataclass
class ScaleWorld:
    """N plans with their Deployments, HTTPRoutes and policies, in their namespaces."""

    api: client.ApiClient
    plans: int
    prometheus_url: str
    namespaces: list[str]
    per_namespace: int = 100
    interval: str = "60s"
    window: str = "5m"
    hold: str = "24h"
    threads: int = 8
    progress: Callable[[str], None] = print

    def __post_init__(self) -> None:
        if self.plans > len(self.namespaces) * self.per_namespace:
            raise ValueError(f"{self.plans} plans do not fit in {len(self.namespaces)} "
                             f"namespaces of {self.per_namespace}")
        self.apps: Any = client.AppsV1Api(self.api)
        self.custom: Any = client.CustomObjectsApi(self.api)
        self.core: Any = client.CoreV1Api(self.api)

    @staticmethod
    def namespaces_for(plans: int, per_namespace: int = 100, prefix: str = "scale") -> list[str]:
        return [f"{prefix}-{i:02d}" for i in range(max(1, math.ceil(plans / per_namespace)))]

    @staticmethod
    def service_names(plans: int) -> list[str]:
        return [f"svc-{i:04d}" for i in range(plans)]

    def placement(self) -> list[tuple[str, str]]:
        """(namespace, plan name) of every plan."""
        names = self.service_names(self.plans)
        return [(self.namespaces[i // self.per_namespace], name) for i, name in enumerate(names)]

    def by_namespace(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for ns, name in self.placement():
            out.setdefault(ns, []).append(name)
        return out

    # -- creating ------------------------------------------------------------------------

    def create(self, *, create_namespaces: bool = True) -> None:
        """Namespaces, one SLOPolicy per namespace, and per plan: stable and canary
        Deployments (stable 1 replica, canary 0), the HTTPRoute and the RolloutPlan."""
        for ns, names in self.by_namespace().items():
            if create_namespaces:
                self._create(self.core.create_namespace, {"metadata": {"name": ns}},
                             _request_timeout=30)
            self._create(self.custom.create_namespaced_custom_object, GROUP, VERSION, ns,
                         "slopolicies", policy_document(names[0], self.prometheus_url),
                         _request_timeout=30)
        self._parallel(self._create_plan, self.placement(), "plans created")

    def _create_plan(self, where: tuple[str, str]) -> None:
        ns, name = where
        image = "registry.local/app:v1"
        self._create(self.apps.create_namespaced_deployment, ns,
                     deployment(name, "stable", image, 1), _request_timeout=30)
        self._create(self.apps.create_namespaced_deployment, ns,
                     deployment(f"{name}-canary", "canary", image, 0), _request_timeout=30)
        self._create(self.custom.create_namespaced_custom_object,
                     "gateway.networking.k8s.io", "v1", ns, "httproutes", http_route(name),
                     _request_timeout=30)
        self._create(self.custom.create_namespaced_custom_object, GROUP, VERSION, ns,
                     "rolloutplans",
                     plan_document(name, interval=self.interval, window=self.window,
                                   hold=self.hold),
                     _request_timeout=30)

    @staticmethod
    def _create(call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        try:
            call(*args, **kwargs)
        except ApiException as exc:
            if exc.status != 409:  # already there (a rerun in the same namespaces)
                raise

    def _parallel(self, fn: Callable[[Any], None], items: Sequence[Any], what: str) -> None:
        done = 0
        started = time.monotonic()
        with ThreadPoolExecutor(self.threads) as pool:
            for _ in pool.map(fn, items):
                done += 1
                if done % 200 == 0 or done == len(items):
                    self.progress(f"  {done}/{len(items)} {what} "
                                  f"({time.monotonic() - started:.0f} s)")

    # -- reading -------------------------------------------------------------------------

    def list_plans(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for ns in self.by_namespace():
            out.extend(self.custom.list_namespaced_custom_object(
                GROUP, VERSION, ns, "rolloutplans", _request_timeout=60)["items"])
        return out

    def ready_stable(self) -> int:
        """Stable Deployments with their replica ready."""
        ready = 0
        for ns in self.by_namespace():
            body = self.apps.list_namespaced_deployment(
                ns, label_selector="track=stable", _preload_content=False,
                _request_timeout=60)
            import json

            for d in json.loads(body.data)["items"]:
                ready += int((d.get("status") or {}).get("readyReplicas") or 0) >= 1
        return ready

    def route_weights(self) -> dict[str, int]:
        """Canary weight on each plan's HTTPRoute, by ``namespace/name``."""
        out: dict[str, int] = {}
        for ns in self.by_namespace():
            routes = self.custom.list_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", ns, "httproutes", _request_timeout=60)
            for r in routes["items"]:
                name = r["metadata"]["name"]
                out[f"{ns}/{name}"] = canary_weight(r, f"{name}-canary")
        return out

    def summary(self) -> PlanSummary:
        return PlanSummary.of(self.list_plans())

    # -- waiting -------------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str,
                 every: float = 3.0, report: Callable[[], str] | None = None) -> None:
        deadline = time.monotonic() + timeout
        last = 0.0
        while time.monotonic() < deadline:
            if predicate():
                return
            if report is not None and time.monotonic() - last >= 30:
                last = time.monotonic()
                self.progress(f"  waiting for {what}: {report()}")
            time.sleep(every)
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}"
                           + (f": {report()}" if report else ""))

    def wait_stable_ready(self, timeout: float = 1800.0) -> None:
        self.wait_for(lambda: self.ready_stable() >= self.plans, timeout,
                      "stable Deployments ready",
                      report=lambda: f"{self.ready_stable()}/{self.plans} ready")

    # -- releasing -----------------------------------------------------------------------

    def release(self, version: str = "v2", spread_seconds: float = 0.0) -> None:
        """A new pod template on every canary (a run starts), spread evenly over
        SPREAD_SECONDS in plan order."""
        placement = self.placement()
        started = time.monotonic()
        gap = spread_seconds / max(1, len(placement))
        patch = {"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": f"registry.local/app:{version}"}]}}}}
        for i, (ns, name) in enumerate(placement):
            delay = started + i * gap - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.apps.patch_namespaced_deployment(
                f"{name}-canary", ns, patch,
                _content_type="application/strategic-merge-patch+json", _request_timeout=30)
        self.progress(f"  {len(placement)} canaries released in "
                      f"{time.monotonic() - started:.0f} s")

    def wait_all_analysed(self, timeout: float = 1800.0) -> PlanSummary:
        """Every plan at its first step with the canary at 10 % and its gates measured."""
        summary = PlanSummary()

        def check() -> bool:
            nonlocal summary
            summary = self.summary()
            return summary.analysed_at_step >= self.plans

        self.wait_for(check, timeout, "every plan analysed at its first step", every=5.0,
                      report=lambda: summary.describe())
        return summary


@dataclass
class PlanSummary:
    """Phases, steps and gate verdicts over the plans, as ``kubectl get rp`` would show."""

    total: int = 0
    phases: dict[str, int] = field(default_factory=dict)
    analysed_at_step: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    last_analysis: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, plans: Iterable[dict[str, Any]]) -> PlanSummary:
        from datetime import datetime

        s = cls()
        for p in plans:
            st = p.get("status") or {}
            s.total += 1
            phase = st.get("phase") or "None"
            s.phases[phase] = s.phases.get(phase, 0) + 1
            if (st.get("currentStep") == 0 and st.get("canaryWeight") == 10
                    and st.get("lastAnalysisAt") and st.get("gates")):
                s.analysed_at_step += 1
            for g in st.get("gates") or []:
                v = g.get("verdict", "?")
                s.verdicts[v] = s.verdicts.get(v, 0) + 1
            if st.get("lastAnalysisAt"):
                s.last_analysis.append(datetime.fromisoformat(
                    st["lastAnalysisAt"].replace("Z", "+00:00")).timestamp())
        return s

    def describe(self) -> str:
        phases = ", ".join(f"{k} {v}" for k, v in sorted(self.phases.items()))
        verdicts = ", ".join(f"{k} {v}" for k, v in sorted(self.verdicts.items()))
        return (f"{self.total} plans ({phases}); {self.analysed_at_step} analysed at step 1; "
                f"gate verdicts: {verdicts or 'none'}")


# --------------------------------------------------------------------------- the controller


def start_controller(kubeconfig: Path, workdir: Path, *, namespaces: Sequence[str] = (),
                     leader_elect: bool = True, lease_namespace: str = "rolloutctl-system",
                     identity: str = "scale-0", extra: Sequence[str] = (),
                     env: Mapping[str, str] | None = None,
                     profile: Path | None = None) -> ControllerProcess:
    """``rolloutctl run`` as a process with its defaults (4 workers, resync 10 m), watching
    NAMESPACES (default: all), logging JSON at info to ``WORKDIR/IDENTITY.log``.

    With PROFILE the same command runs under yappi (every thread, CPU clock; see
    :func:`profiled_run`): its CPU figures are then inflated by the profiler."""
    port = free_port()
    log = workdir / f"{identity}.log"
    command = [rolloutctl_binary(), "run"]
    if profile is not None:
        command = [sys.executable, "-m", "tests.harness.scale_world", "profile",
                   str(profile), "run"]
    args = [*command, "--kubeconfig", str(kubeconfig),
            "--identity", identity, "--metrics-address", f"127.0.0.1:{port}",
            "--lease-namespace", lease_namespace,
            "--leader-elect" if leader_elect else "--no-leader-elect", "--log-format", "json"]
    for ns in namespaces:
        args += ["--namespace", ns]
    args += list(extra)
    workdir.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True,
                                   env=python_env({**os.environ, **(env or {})}))
    return ControllerProcess(identity, process, log, port)


# --------------------------------------------------------------------------- measuring


Sample = tuple[str, tuple[tuple[str, str], ...]]


def parse_samples(text: str, names: Sequence[str] | None = None) -> dict[Sample, float]:
    """Samples of a Prometheus text exposition: (name, sorted labels) -> value. With NAMES,
    only lines starting with one of them are parsed (the API server's page is 2 MB)."""
    if names is not None:
        text = "\n".join(line for line in text.splitlines()
                         if line.startswith(tuple(names))) + "\n"
    out: dict[Sample, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def scrape(url: str, timeout: float = 10.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return str(r.read().decode())


def total(samples: Mapping[Sample, float], metric: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == metric and want <= set(ls))


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts (upper bound -> count) of one histogram."""

    buckets: tuple[tuple[float, float], ...]

    @classmethod
    def of(cls, samples: Mapping[Sample, float], metric: str, **labels: str) -> Histogram:
        want = set(labels.items())
        found: dict[float, float] = {}
        for (n, ls), v in samples.items():
            if n != f"{metric}_bucket" or not want <= set(ls):
                continue
            le = dict(ls)["le"]
            found[float(le)] = found.get(float(le), 0.0) + v
        return cls(tuple(sorted(found.items())))

    def __sub__(self, other: Histogram) -> Histogram:
        before = dict(other.buckets)
        return Histogram(tuple((le, c - before.get(le, 0.0)) for le, c in self.buckets))

    @property
    def count(self) -> float:
        return self.buckets[-1][1] if self.buckets else 0.0

    def share_within(self, seconds: float) -> float:
        """The share of observations at or under SECONDS (a bucket bound)."""
        if not self.count:
            return math.nan
        return next((c for le, c in self.buckets if le >= seconds), self.count) / self.count


def histogram_quantile(q: float, h: Histogram) -> float:
    """Prometheus's ``histogram_quantile``: linear interpolation inside the bucket that
    holds the q-th observation (the lower bound of the first bucket is 0). In the ``+Inf``
    bucket the answer is ``inf`` (Prometheus answers the highest finite bound: a floor)."""
    if not h.count:
        return math.nan
    rank = q * h.count
    lower_bound, lower_count = 0.0, 0.0
    for le, c in h.buckets:
        if c >= rank:
            if math.isinf(le):
                return math.inf
            if c == lower_count:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / (c - lower_count)
        lower_bound, lower_count = le, c
    return h.buckets[-1][0]


ApiRequests = dict[tuple[str, str, str], float]  # (verb, resource, subresource) -> count

#: what ``rolloutctl run`` reads or writes (with a Gateway API router)
CONTROLLER_RESOURCES = frozenset(
    {"rolloutplans", "slopolicies", "deployments", "httproutes", "events", "leases", "pods",
     "horizontalpodautoscalers"})


def apiserver_requests(cluster: Cluster) -> ApiRequests:
    """``apiserver_request_total`` by verb, resource and subresource, for the resources the
    controller uses (:data:`CONTROLLER_RESOURCES`; /metrics, /healthz, discovery and the
    other components' own resources are not counted)."""
    status, text = cluster.request("GET", "/metrics")
    if status != 200 or not isinstance(text, str):
        raise RuntimeError(f"the API server's /metrics answered {status}")
    out: ApiRequests = {}
    for (_, ls), v in parse_samples(text, ["apiserver_request_total{"]).items():
        labels = dict(ls)
        if labels.get("resource") not in CONTROLLER_RESOURCES:
            continue
        key = (labels["verb"], labels["resource"], labels.get("subresource", ""))
        out[key] = out.get(key, 0.0) + v
    return out


def subtract(after: ApiRequests, before: ApiRequests) -> ApiRequests:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}


class ProcessSampler:
    """CPU time and RSS of processes from ``/proc/PID`` (RSS sampled every ``every`` s)."""

    TICKS = os.sysconf("SC_CLK_TCK")

    def __init__(self, pids: Mapping[str, int], every: float = 2.0) -> None:
        self.pids = dict(pids)
        self.every = every
        self.rss_max: dict[str, float] = dict.fromkeys(self.pids, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")
        self._thread.start()

    @classmethod
    def cpu_seconds(cls, pid: int) -> float:
        """utime + stime of PID (all its threads), in seconds."""
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / cls.TICKS

    @staticmethod
    def rss_bytes(pid: int) -> float:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return float(line.split()[1]) * 1024
        return math.nan

    def cpu(self) -> dict[str, float]:
        out = {}
        for name, pid in self.pids.items():
            with contextlib.suppress(OSError, ValueError, IndexError):
                out[name] = self.cpu_seconds(pid)
        return out

    def reset_max(self) -> None:
        self.rss_max = dict.fromkeys(self.pids, 0.0)
        self._sample()

    def _sample(self) -> None:
        for name, pid in self.pids.items():
            with contextlib.suppress(OSError, ValueError):
                self.rss_max[name] = max(self.rss_max.get(name, 0.0), self.rss_bytes(pid))

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def stop(self) -> None:
        self._stop.set()


@dataclass(frozen=True)
class Snapshot:
    at: float
    cpu: dict[str, float]
    controller: dict[Sample, float]
    api: ApiRequests
    prometheus: dict[Sample, float]


@dataclass(frozen=True)
class WindowFigures:
    """What one measurement window measured (rates per minute, CPU in cores)."""

    seconds: float
    queue_p99: float
    queue_p50: float
    queue_within_1s: float
    queue_keys: int
    reconciles_per_min: float
    reconcile_p50: float
    cpu_cores: float
    rss_max_mib: float
    rss_end_mib: float
    prometheus_queries_per_min: float
    prometheus_queries_by_status: dict[str, float]
    prometheus_served_per_min: float
    api_requests_per_min: float
    api_breakdown: dict[str, float]
    control_plane_cores: dict[str, float]
    load: tuple[float, float, float]


@dataclass
class Window:
    """Figures over a window: ``start()``, wait, ``finish()``.

    ``baseline`` is the API server's request rate per (verb, resource, subresource) with
    the controller stopped (requests per second; e.g. kwok renewing its nodes' Leases); it
    is subtracted from the window's, so what remains is the controller's:
    kube-controller-manager, the scheduler and kwok are idle once every Deployment is
    ready, and nothing the controller does in steady state makes them act."""

    controller: ControllerProcess
    cluster: Cluster
    prometheus_url: str
    sampler: ProcessSampler
    baseline: dict[tuple[str, str, str], float] = field(default_factory=dict)
    first: Snapshot | None = None

    def snapshot(self) -> Snapshot:
        metrics = f"http://127.0.0.1:{self.controller.metrics_port}/metrics"
        return Snapshot(
            at=time.monotonic(),
            cpu=self.sampler.cpu(),
            controller=parse_samples(scrape(metrics)),
            api=apiserver_requests(self.cluster),
            prometheus=parse_samples(scrape(f"{self.prometheus_url}/metrics"),
                                     ["prometheus_http_requests_total"]),
        )

    def start(self) -> None:
        self.sampler.reset_max()
        self.first = self.snapshot()

    def finish(self) -> WindowFigures:
        assert self.first is not None
        a, b = self.first, self.snapshot()
        seconds = b.at - a.at
        minutes = seconds / 60
        queue = (Histogram.of(b.controller, "rolloutctl_workqueue_queue_duration_seconds",
                              name="plans")
                 - Histogram.of(a.controller, "rolloutctl_workqueue_queue_duration_seconds",
                                name="plans"))
        work = (Histogram.of(b.controller, "rolloutctl_reconcile_seconds", controller="plans")
                - Histogram.of(a.controller, "rolloutctl_reconcile_seconds",
                               controller="plans"))
        statuses = sorted({dict(ls)["status"] for (n, ls) in b.controller
                           if n == "rolloutctl_prometheus_queries_total"})
        by_status = {s: (total(b.controller, "rolloutctl_prometheus_queries_total", status=s)
                         - total(a.controller, "rolloutctl_prometheus_queries_total",
                                 status=s)) / minutes for s in statuses}
        served = (total(b.prometheus, "prometheus_http_requests_total", handler="/api/v1/query")
                  - total(a.prometheus, "prometheus_http_requests_total",
                          handler="/api/v1/query"))
        delta = subtract(b.api, a.api)
        per_min = {k: max(0.0, v / minutes - self.baseline.get(k, 0.0) * 60)
                   for k, v in delta.items()}
        breakdown = {" ".join(p for p in k if p): v for k, v in
                     sorted(per_min.items(), key=lambda kv: -kv[1]) if v >= 1.0}
        cores = {name: (b.cpu[name] - a.cpu[name]) / seconds
                 for name in b.cpu if name in a.cpu}
        ctl = "controller"
        return WindowFigures(
            seconds=seconds,
            queue_p99=histogram_quantile(0.99, queue),
            queue_p50=histogram_quantile(0.5, queue),
            queue_within_1s=queue.share_within(1.0),
            queue_keys=int(queue.count),
            reconciles_per_min=work.count / minutes,
            reconcile_p50=histogram_quantile(0.5, work),
            cpu_cores=cores.get(ctl, math.nan),
            rss_max_mib=self.sampler.rss_max.get(ctl, math.nan) / 2**20,
            rss_end_mib=ProcessSampler.rss_bytes(self.controller.pid) / 2**20,
            prometheus_queries_per_min=sum(by_status.values()),
            prometheus_queries_by_status=by_status,
            prometheus_served_per_min=served / minutes,
            api_requests_per_min=sum(per_min.values()),
            api_breakdown=breakdown,
            control_plane_cores={k: v for k, v in cores.items() if k != ctl},
            load=os.getloadavg(),
        )


def measure_baseline(cluster: Cluster, seconds: float) -> dict[tuple[str, str, str], float]:
    """API requests per second by (verb, resource, subresource) over SECONDS, for
    subtraction (take it with the controller stopped)."""
    before = apiserver_requests(cluster)
    started = time.monotonic()
    time.sleep(seconds)
    after = apiserver_requests(cluster)
    elapsed = time.monotonic() - started
    return {k: v / elapsed for k, v in subtract(after, before).items()}


# --------------------------------------------------------------------------- profiling


def profiled_run(out: Path, argv: Sequence[str]) -> None:
    """Run ``rolloutctl ARGV`` in this process under yappi (all threads, CPU time) until
    it stops (SIGTERM), then write OUT (pstats, for ``python -m pstats`` or snakeviz) and
    OUT.txt (the functions by total and by own time). yappi is a development tool, not a
    dependency of the product: ``pip install yappi`` first."""
    import yappi  # type: ignore[import-not-found, unused-ignore]

    from controller.cli.main import app

    yappi.set_clock_type("cpu")
    yappi.start(builtins=False, profile_threads=True)
    try:
        app(list(argv), standalone_mode=False)
    finally:
        yappi.stop()
        stats = yappi.get_func_stats()
        stats.save(str(out), type="pstat")
        import io
        import pstats

        text = io.StringIO()
        p = pstats.Stats(str(out), stream=text)
        p.sort_stats("cumulative").print_stats(70)
        p.sort_stats("tottime").print_stats(50)
        Path(f"{out}.txt").write_text(text.getvalue())


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "profile":
        sys.exit("usage: python -m tests.harness.scale_world profile OUT run ARGS...")
    profiled_run(Path(sys.argv[2]), sys.argv[3:])
