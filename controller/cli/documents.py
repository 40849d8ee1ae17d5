"""Reading RolloutPlan and SLOPolicy documents from YAML files, and checking them together."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controller.api.plan import RolloutPlan
from controller.api.policy import SLOPolicy
from controller.api.types import API_VERSION
from controller.api.validation import (
    Problem,
    check_plan,
    check_plan_against_policy,
    check_policy,
)


@dataclass
class FileReport:
    """Problems found in one file, each tagged with the document it came from."""

    path: str
    problems: list[tuple[str, Problem]] = field(default_factory=list)
    plans: list[RolloutPlan] = field(default_factory=list)
    policies: list[SLOPolicy] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [f"{where}: {problem}" for where, problem in self.problems]


def load_documents(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def check_files(paths: list[Path]) -> list[FileReport]:
    """Every problem in every file; plans are also checked against policies among the files."""
    reports: list[FileReport] = []
    for path in paths:
        report = FileReport(str(path))
        reports.append(report)
        try:
            docs = load_documents(path)
        except OSError as exc:
            report.problems.append((str(path), Problem("", f"cannot read: {exc.strerror}")))
            continue
        except yaml.YAMLError as exc:
            report.problems.append((str(path), Problem("", f"not valid YAML: {exc}")))
            continue
        if not docs:
            report.problems.append((str(path), Problem("", "no documents in the file")))
        for i, doc in enumerate(docs):
            where = str(path) if len(docs) == 1 else f"{path}#{i + 1}"
            if not isinstance(doc, dict):
                report.problems.append((where, Problem("", "a document must be a mapping")))
                continue
            kind = doc.get("kind")
            if doc.get("apiVersion") != API_VERSION:
                report.problems.append((where, Problem(
                    "apiVersion", f"must be {API_VERSION} (it is {doc.get('apiVersion')!r})"
                )))
                continue
            if kind == "RolloutPlan":
                plan, problems = check_plan(doc)
                if plan is not None and not problems:
                    report.plans.append(plan)
            elif kind == "SLOPolicy":
                policy, problems = check_policy(doc)
                if policy is not None and not problems:
                    report.policies.append(policy)
            else:
                problems = [Problem("kind", f"must be RolloutPlan or SLOPolicy (it is {kind!r})")]
            report.problems.extend((where, p) for p in problems)
    policies = {
        (p.metadata.namespace, p.metadata.name): p for r in reports for p in r.policies
    }
    for report in reports:
        for plan in report.plans:
            ref = plan.spec.slo_policy_ref
            if ref is None:
                continue
            policy = policies.get((plan.metadata.namespace, ref.name))
            if policy is not None:
                report.problems.extend(
                    (report.path, p) for p in check_plan_against_policy(plan, policy)
                )
    return reports
