"""Rendering the Helm chart for the chart's unit tests (no tests here).

``render(values)`` runs the real ``helm template`` (``.k8s-bin/helm``) and returns the
documents it prints, parsed; ``helm(...)`` runs any helm command. A missing helm binary
skips the tests locally and fails them in CI, as the cluster fixtures do.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.harness.fixtures import unavailable

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "rolloutctl"
KUBE_VERSION = "1.34.4"
RELEASE = "rolloutctl"
RELEASE_NAMESPACE = "rolloutctl-system"


def helm_binary() -> Path:
    override = os.environ.get("ROLLOUTCTL_BIN_DIR")
    path = (Path(override) if override else REPO / ".k8s-bin") / "helm"
    if not (path.is_file() and os.access(path, os.X_OK)):
        unavailable(f"{path} is missing: run tools/build-control-plane.sh")
    return path


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(helm_binary()), *args], capture_output=True, text=True,
                            timeout=120, cwd=REPO)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


def values_file(values: dict[str, Any], directory: Path) -> Path:
    path = directory / "values.json"  # JSON is YAML: no --set quoting rules to get wrong
    path.write_text(json.dumps(values))
    return path


def template_args(values_path: Path | None = None, *, namespace: str = RELEASE_NAMESPACE,
                  release: str = RELEASE, kube_version: str = KUBE_VERSION,
                  extra: Sequence[str] = ()) -> list[str]:
    args = ["template", release, str(CHART), "--namespace", namespace,
            "--kube-version", kube_version, *extra]
    if values_path is not None:
        args += ["--values", str(values_path)]
    return args


def render(tmp_path: Path, values: dict[str, Any] | None = None, **kwargs: Any
           ) -> list[dict[str, Any]]:
    """The chart's objects for VALUES (on top of values.yaml), in helm's order."""
    path = values_file(values, tmp_path) if values else None
    out = helm(*template_args(path, **kwargs)).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def render_error(tmp_path: Path, values: dict[str, Any], **kwargs: Any) -> str:
    """What helm says when it refuses to render VALUES (fails if it renders them)."""
    result = helm(*template_args(values_file(values, tmp_path), **kwargs), check=False)
    assert result.returncode != 0, f"helm rendered {values} without complaint"
    return result.stderr


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"{len(found)} {kind} objects: {[d['metadata'] for d in found]}"
    return found[0]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (c,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(c)


def env(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(docs)["env"]}
