"""A real Prometheus (Debian's ``/usr/bin/prometheus``) on loopback, in two modes.

* **Backfilled**: series are written as OpenMetrics text, turned into TSDB blocks with
  ``promtool tsdb create-blocks-from openmetrics``, and Prometheus starts on that data
  directory. Deterministic history for gates, budgets and ``rolloutctl simulate``.
* **Live**: Prometheus scrapes the given ``host:port`` targets (every second by default);
  ``set_targets`` rewrites the config and reloads it (``POST /-/reload``).

Gotchas (checked against Prometheus/promtool 2.42):

* OpenMetrics counters: ``# TYPE foo counter`` names the family *without* ``_total``; each
  sample is named ``foo_total``. ``Series(name="foo_total", type="counter")`` is accepted
  and normalised.
* Timestamps are Unix time in **seconds** (fractions allowed), not milliseconds.
* The file must end with ``# EOF``.
* Blocks older than the retention are deleted on start-up, so the retention is 100y here.
* An instant query at time T sees the newest sample in ``(T - lookback, T]``, where the
  lookback (``--query.lookback-delta``) is 5m by default: a series with samples further
  apart than that has gaps in instant queries.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from tests.harness.cluster import free_port, log_tail, pid_alive

MetricType = Literal["counter", "gauge", "untyped"]


class PrometheusError(RuntimeError):
    """Prometheus or promtool failed (or is not installed)."""


class PrometheusMissing(PrometheusError):
    """The prometheus or promtool binary is not installed."""


def find_tool(name: str) -> Path:
    """``$ROLLOUTCTL_PROMETHEUS`` / ``$ROLLOUTCTL_PROMTOOL``, else PATH, else /usr/bin."""
    override = os.environ.get(f"ROLLOUTCTL_{name.upper()}")
    candidates = [override] if override else [shutil.which(name), f"/usr/bin/{name}"]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return Path(c)
    raise PrometheusMissing(f"{name} is not installed: apt-get install -y prometheus")


# --------------------------------------------------------------------------- OpenMetrics


@dataclass(frozen=True)
class Series:
    """One time series: a metric name, labels and (unix seconds, value) samples."""

    name: str
    samples: Sequence[tuple[float, float]]
    labels: Mapping[str, str] = field(default_factory=dict)
    type: MetricType = "gauge"
    help: str = ""

    @property
    def family(self) -> str:
        if self.type == "counter" and self.name.endswith("_total"):
            return self.name[: -len("_total")]
        return self.name

    @property
    def sample_name(self) -> str:
        return self.family + "_total" if self.type == "counter" else self.name


def counter(name: str, labels: Mapping[str, str], samples: Sequence[tuple[float, float]]) -> Series:
    return Series(name=name, labels=dict(labels), samples=samples, type="counter")


def gauge(name: str, labels: Mapping[str, str], samples: Sequence[tuple[float, float]]) -> Series:
    return Series(name=name, labels=dict(labels), samples=samples, type="gauge")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


def _timestamp(ts: float) -> str:
    return str(int(ts)) if float(ts).is_integer() else f"{ts:.3f}"


def write_openmetrics(series: Iterable[Series], path: str | os.PathLike[str] | None = None) -> str:
    """Render SERIES as OpenMetrics text (families grouped, samples in time order).

    Returns the text; also writes it to PATH when given.
    """
    families: dict[str, list[Series]] = {}
    kinds: dict[str, tuple[MetricType, str]] = {}
    for s in series:
        family = s.family
        previous = kinds.setdefault(family, (s.type, s.help))
        if previous[0] != s.type:
            raise ValueError(f"metric family {family!r} declared as {previous[0]} and {s.type}")
        families.setdefault(family, []).append(s)
    lines: list[str] = []
    for family, members in families.items():
        kind, help_text = kinds[family]
        lines.append(f"# TYPE {family} {kind}")
        if help_text:
            lines.append(f"# HELP {family} {_escape(help_text)}")
        for s in members:
            labels = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(s.labels.items()))
            name = s.sample_name + (f"{{{labels}}}" if labels else "")
            for ts, value in sorted(s.samples):
                lines.append(f"{name} {_number(value)} {_timestamp(ts)}")
    lines.append("# EOF")
    text = "\n".join(lines) + "\n"
    if path is not None:
        Path(path).write_text(text)
    return text


def backfill(
    series: Iterable[Series],
    data_dir: str | os.PathLike[str],
    openmetrics_file: str | os.PathLike[str] | None = None,
    max_block_duration: str | None = None,
) -> Path:
    """Write SERIES into TSDB blocks under DATA_DIR with promtool; returns DATA_DIR."""
    promtool = find_tool("promtool")
    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    om = Path(openmetrics_file) if openmetrics_file else data.parent / "backfill.om.txt"
    write_openmetrics(series, om)
    argv = [str(promtool), "tsdb", "create-blocks-from", "openmetrics"]
    if max_block_duration:
        argv.append(f"--max-block-duration={max_block_duration}")
    argv += [str(om), str(data)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise PrometheusError(
            f"promtool failed ({result.returncode}): {result.stderr.strip() or result.stdout}"
        )
    return data


# --------------------------------------------------------------------------- server


class PrometheusServer:
    """One Prometheus process in its own directory; start, query, stop (by PID)."""

    def __init__(
        self,
        workdir: str | os.PathLike[str] | None = None,
        *,
        targets: Sequence[str] = (),
        scrape_interval: str = "1s",
        lookback_delta: str = "5m",
        extra_args: Sequence[str] = (),
    ) -> None:
        self._own_dir = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="rolloutctl-prom-")).resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.dir / "data"
        self.config_file = self.dir / "prometheus.yml"
        self.log_file = self.dir / "prometheus.log"
        self.targets: list[str] = list(targets)
        self.scrape_interval = scrape_interval
        self.lookback_delta = lookback_delta
        self.extra_args = list(extra_args)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def _write_config(self) -> None:
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
            },
            "scrape_configs": [],
        }
        if self.targets:
            config["scrape_configs"].append(
                {
                    "job_name": "targets",
                    "scrape_interval": self.scrape_interval,
                    "scrape_timeout": self.scrape_interval,
                    "static_configs": [{"targets": list(self.targets)}],
                }
            )
        tmp = self.config_file.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(config, sort_keys=False))
        tmp.replace(self.config_file)

    def start(self, timeout: float = 60.0) -> PrometheusServer:
        if self.proc is not None:
            return self
        binary = find_tool("prometheus")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self.port = free_port()
        argv = [
            str(binary),
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.data_dir}",
            "--storage.tsdb.retention.time=100y",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            f"--query.lookback-delta={self.lookback_delta}",
            "--log.level=info",
            *self.extra_args,
        ]
        with open(self.log_file, "ab") as log:
            log.write(f"# {' '.join(argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,
            )
        (self.dir / "pid").write_text(f"{self.proc.pid}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise PrometheusError(
                    f"prometheus exited with code {code}; log {self.log_file}:\n"
                    + log_tail(self.log_file)
                )
            if self._ready():
                return self
            time.sleep(0.2)
        self.stop()
        raise PrometheusError(
            f"prometheus not ready after {timeout:.0f} s; log {self.log_file}:\n"
            + log_tail(self.log_file)
        )

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process we started, wait, then SIGKILL."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.proc = None
        (self.dir / "pid").unlink(missing_ok=True)
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def is_running(self) -> bool:
        return self.proc is not None and pid_alive(self.proc.pid)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ live mode

    def set_targets(self, targets: Sequence[str], timeout: float = 10.0) -> None:
        """Replace the scrape targets and reload the configuration."""
        self.targets = list(targets)
        self._write_config()
        if self.proc is None:
            return
        req = urllib.request.Request(self.url + "/-/reload", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=timeout) as r:
            if r.status != 200:
                raise PrometheusError(f"reload failed: HTTP {r.status}")

    def wait_for_targets_up(self, timeout: float = 30.0) -> None:
        """Wait until every configured target has been scraped successfully."""
        deadline = time.monotonic() + timeout
        health: dict[str, str] = {}
        while time.monotonic() < deadline:
            data = self.api("/api/v1/targets", {"state": "active"})
            health = {t["scrapeUrl"]: t["health"] for t in data["activeTargets"]}
            wanted = {f"http://{t}/metrics" for t in self.targets}
            if wanted <= {u for u, h in health.items() if h == "up"}:
                return
            time.sleep(0.25)
        raise PrometheusError(f"targets not up after {timeout:.0f} s: {health}")

    # ------------------------------------------------------------------ queries

    def api(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET an HTTP API path and return its ``data`` (raises on ``status: error``)."""
        query = "?" + urllib.parse.urlencode(params) if params else ""
        try:
            with urllib.request.urlopen(self.url + path + query, timeout=10) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as e:
            body = json.loads(e.read() or b"{}")
        if body.get("status") != "success":
            raise PrometheusError(f"{path}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query (optionally at unix time AT); returns the ``result`` list."""
        params = {"query": expr}
        if at is not None:
            params["time"] = _timestamp(at)
        return list(self.api("/api/v1/query", params)["result"])

    def query_value(self, expr: str, at: float | None = None) -> float | None:
        """The single value of an instant query, or None when it returns nothing."""
        result = self.query(expr, at)
        if not result:
            return None
        if len(result) > 1:
            raise PrometheusError(f"{expr!r} returned {len(result)} series, expected one")
        return float(result[0]["value"][1])


def start_backfilled(
    series: Iterable[Series],
    workdir: str | os.PathLike[str] | None = None,
    *,
    lookback_delta: str = "5m",
    timeout: float = 60.0,
) -> PrometheusServer:
    """Backfill SERIES with promtool and start Prometheus on the blocks."""
    server = PrometheusServer(workdir, lookback_delta=lookback_delta)
    try:
        backfill(series, server.data_dir, server.dir / "backfill.om.txt")
        return server.start(timeout=timeout)
    except BaseException:
        server.stop()
        raise


def start_live(
    targets: Sequence[str],
    workdir: str | os.PathLike[str] | None = None,
    *,
    scrape_interval: str = "1s",
    timeout: float = 60.0,
) -> PrometheusServer:
    """Start Prometheus scraping TARGETS (``host:port``, path ``/metrics``)."""
    server = PrometheusServer(workdir, targets=targets, scrape_interval=scrape_interval)
    try:
        return server.start(timeout=timeout)
    except BaseException:
        server.stop()
        raise


@contextlib.contextmanager
def backfilled_prometheus(
    series: Iterable[Series], workdir: str | os.PathLike[str] | None = None
) -> Iterator[PrometheusServer]:
    server = start_backfilled(series, workdir)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def live_prometheus(
    targets: Sequence[str],
    workdir: str | os.PathLike[str] | None = None,
    scrape_interval: str = "1s",
) -> Iterator[PrometheusServer]:
    server = start_live(targets, workdir, scrape_interval=scrape_interval)
    try:
        yield server
    finally:
        server.stop()
