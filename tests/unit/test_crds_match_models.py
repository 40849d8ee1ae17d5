"""The CRDs are generated from the models; the checked-in copies must match."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from controller.api.crd import all_crds, render
from controller.cli.main import app

REPO = Path(__file__).resolve().parents[2]


def test_checked_in_crds_equal_the_generated_ones() -> None:
    for name, crd in all_crds().items():
        path = REPO / "manifests" / "crds" / name
        assert path.exists(), f"missing {path}: run `rolloutctl crds --output-dir manifests/crds`"
        assert path.read_text(encoding="utf-8") == render(crd), (
            f"{path} is stale: run `rolloutctl crds --output-dir manifests/crds`")


def test_rolloutctl_crds_prints_the_manifests() -> None:
    result = CliRunner().invoke(app, ["crds"])
    assert result.exit_code == 0
    printed = [d for d in yaml.safe_load_all(result.output) if d]
    on_disk = [yaml.safe_load((REPO / "manifests" / "crds" / n).read_text())
               for n in sorted(all_crds())]
    assert printed == on_disk


def test_crds_have_status_subresource_printer_columns_and_short_names() -> None:
    plans = all_crds()["rolloutplans.rolloutctl.dev.yaml"]
    policies = all_crds()["slopolicies.rolloutctl.dev.yaml"]
    for crd, short, columns in ((plans, "rp", ["Phase", "Step", "Weight", "Age"]),
                                (policies, "slop", ["Frozen", "Budget", "Age"])):
        version = crd["spec"]["versions"][0]
        assert crd["spec"]["group"] == "rolloutctl.dev" and version["name"] == "v1alpha1"
        assert version["subresources"] == {"status": {}}
        assert crd["spec"]["names"]["shortNames"] == [short]
        names = [c["name"] for c in version["additionalPrinterColumns"]]
        assert all(c in names for c in columns)


def test_schema_is_structural_and_carries_the_checks() -> None:
    schema = all_crds()["rolloutplans.rolloutctl.dev.yaml"]["spec"]["versions"][0][
        "schema"]["openAPIV3Schema"]
    text = yaml.safe_dump(schema)
    assert "$ref" not in text and "anyOf: null" not in text
    spec = schema["properties"]["spec"]["properties"]
    step = spec["steps"]["items"]["properties"]
    assert step["weight"]["minimum"] == 0  # 0 only in a mirror step (the step's own rule)
    assert step["mirror"]["minimum"] == 0 and step["mirror"]["exclusiveMinimum"] is True
    step_rules = [r["rule"] for r in spec["steps"]["items"]["x-kubernetes-validations"]]
    assert any("mirror" in r for r in step_rules)
    assert step["weight"]["maximum"] == 100
    assert spec["analysis"]["properties"]["onNoData"]["enum"] == ["hold", "pause", "rollback"]
    rules = [r["rule"] for r in spec["traffic"]["x-kubernetes-validations"]]
    assert any("gatewayAPI" in r for r in rules)
    assert spec["steps"]["x-kubernetes-validations"]
    assert schema["properties"]["spec"]["required"] == ["target", "traffic"]
