"""Every Protocol of the product is in controller/ports.py: a newcomer finds each seam (and
its one definition) in one file, and no module keeps a private copy with ``Any``."""

from __future__ import annotations

import ast
from pathlib import Path

import controller

PACKAGE = Path(controller.__file__).parent


def protocols(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    return [node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
            and any((isinstance(b, ast.Name) and b.id == "Protocol")
                    or (isinstance(b, ast.Attribute) and b.attr == "Protocol")
                    or (isinstance(b, ast.Subscript) and isinstance(b.value, ast.Name)
                        and b.value.id == "Protocol") for b in node.bases)]


def test_no_protocol_is_defined_outside_ports() -> None:
    elsewhere = {str(p.relative_to(PACKAGE)): protocols(p) for p in PACKAGE.rglob("*.py")
                 if p.name != "ports.py" and "testing" not in p.relative_to(PACKAGE).parts}
    assert {k: v for k, v in elsewhere.items() if v} == {}


def test_ports_holds_the_seams_the_reconcilers_runtime_and_adapters_use() -> None:
    found = set(protocols(PACKAGE / "ports.py"))
    assert {"Clock", "MetricsSource", "BudgetSource", "TrafficRouter", "PlanStore",
            "WorkloadControl", "EventSink", "NotificationStore", "LeaseStore",
            "Reconciler"} <= found
