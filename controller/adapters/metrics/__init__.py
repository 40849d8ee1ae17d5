"""Metrics: SLIs measured on Prometheus (``prometheus``), PromQL construction (``queries``),
HTTP probes (``probe``) and one analysis pass over a plan's gates (``analysis``)."""

from controller.adapters.metrics.analysis import measure_gates, probe_specs
from controller.adapters.metrics.probe import Prober, ProbeRegistry, ProbeSpec
from controller.adapters.metrics.prometheus import PrometheusSource
from controller.adapters.metrics.queries import (
    QueryError,
    SLIQueries,
    budget_queries,
    sli_queries,
)

__all__ = [
    "ProbeRegistry",
    "ProbeSpec",
    "Prober",
    "PrometheusSource",
    "QueryError",
    "SLIQueries",
    "budget_queries",
    "measure_gates",
    "probe_specs",
    "sli_queries",
]
