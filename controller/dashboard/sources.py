"""The dashboard's connections: the user's cluster session and Prometheus clients per URL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from controller.adapters.kube.namespaces import namespace_names
from controller.adapters.metrics.prometheus import PrometheusSource
from controller.adapters.metrics.series import SeriesReader
from controller.api.policy import SLOPolicy
from controller.dashboard.server import Sources
from controller.dashboard.snapshot import Memo, Snapshot, SnapshotCache, read_snapshot
from controller.engine.measurements import MeasurementStatus
from controller.ports import QueryContext

BURN_WINDOWS = {"1h": 3600, "6h": 6 * 3600, "24h": 24 * 3600, "7d": 7 * 86400}


class Clients:
    """One client per Prometheus URL, kept for the server's life."""

    def __init__(self, timeout_seconds: float = 5.0) -> None:
        self.timeout_seconds = timeout_seconds
        self._lock = threading.Lock()
        self._series: dict[str, SeriesReader] = {}
        self._sources: dict[str, PrometheusSource] = {}

    def series(self, url: str) -> SeriesReader:
        with self._lock:
            if url not in self._series:
                self._series[url] = SeriesReader(url, self.timeout_seconds)
            return self._series[url]

    def source(self, url: str) -> PrometheusSource:
        with self._lock:
            if url not in self._sources:
                self._sources[url] = PrometheusSource(url, timeout_seconds=self.timeout_seconds)
            return self._sources[url]

    def burns(self, policy: SLOPolicy, url: str) -> dict[str, dict[str, str]]:
        """Burn rate of each SLO with a budget over 1h/6h/24h/7d: the bad ratio over the
        window divided by the error budget (canary and stable together)."""
        source = self.source(url)
        ctx = QueryContext(service=policy.spec.service_for(policy.metadata.name),
                           namespace=policy.metadata.namespace, revision="none",
                           at=datetime.now(UTC))
        out: dict[str, dict[str, str]] = {}
        for slo in policy.spec.slos:
            if slo.is_threshold or slo.objective is None:
                continue
            row: dict[str, str] = {}
            for label, seconds in BURN_WINDOWS.items():
                m = source.measure_budget(slo, ctx, seconds)
                if m.status == MeasurementStatus.OK and m.value is not None:
                    row[label] = f"{m.value / slo.budget:.2f}x"
                elif m.status == MeasurementStatus.NO_DATA:
                    row[label] = "no data"
                else:
                    row[label] = f"{m.status.value}"
            out[slo.name] = row
        return out


def sources(clients: Clients, prometheus_url: str | None) -> Sources:
    return Sources(for_url=clients.series, burns=clients.burns, url=prometheus_url)


def snapshot_cache(session: Any, namespaces: list[str], max_age: float = 1.0) -> SnapshotCache:
    """A cache reading SESSION's cluster (a ``controller.cli.session.Session``)."""

    memo: Memo = {}

    def read() -> Snapshot:
        return read_snapshot(session.store.list, lambda: namespace_names(session.api),
                             namespaces, time.time(), fallback=session.namespace, memo=memo)

    return SnapshotCache(read, max_age)
