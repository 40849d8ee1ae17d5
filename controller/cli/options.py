"""kubectl's conventions, once: the options every cluster command takes.

``--kubeconfig``, ``--context``, ``-n/--namespace`` (default: the kubeconfig context's
namespace, else ``default``), ``-A/--all-namespaces`` and ``-o/--output``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

import typer

Kubeconfig = Annotated[str | None, typer.Option(
    "--kubeconfig", metavar="FILE",
    help="Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).")]
Context = Annotated[str | None, typer.Option(
    "--context", metavar="NAME", help="The kubeconfig context to use.")]
Namespace = Annotated[str | None, typer.Option(
    "-n", "--namespace", metavar="NS",
    help="Namespace (default: the context's namespace, else 'default').")]
AllNamespaces = Annotated[bool, typer.Option(
    "-A", "--all-namespaces", help="Across all namespaces.")]


class Output(StrEnum):
    TABLE = "table"
    WIDE = "wide"
    JSON = "json"
    YAML = "yaml"


class Document(StrEnum):
    JSON = "json"
    YAML = "yaml"


class ReportFormat(StrEnum):
    MD = "md"
    HTML = "html"
    JSON = "json"


@dataclass(frozen=True)
class ClusterOptions:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    all_namespaces: bool = False
