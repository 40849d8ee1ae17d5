"""CustomResourceDefinitions generated from the pydantic models: one source of truth.

The models' JSON Schema is turned into a structural OpenAPI v3 schema: references inlined,
optional-null unions collapsed, numeric exclusive bounds in the OpenAPI 3.0 form, CEL rules
(``x-kubernetes-validations``) carried over from the models, and free-form maps marked
``x-kubernetes-preserve-unknown-fields``.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from controller.api.plan import RolloutPlan
from controller.api.policy import SLOPolicy
from controller.api.types import GROUP, VERSION

_DROP = {"title", "default", "examples", "x-rolloutctl-duration", "x-rolloutctl-percent"}


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].split("/")[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(options) == 1:
            return _structural({**options[0], **rest}, defs)
        raise ValueError(f"cannot express a union in a structural schema: {node}")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "properties":
            out[key] = {k: _structural(v, defs) for k, v in value.items()}
        elif key == "additionalProperties":
            if value is False:
                continue  # unknown fields: the API server prunes, kubectl rejects (Strict)
            if value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
            else:
                out[key] = _structural(value, defs)
        elif key == "items":
            out[key] = _structural(value, defs)
        elif key == "anyOf":
            out[key] = value  # int-or-string
        else:
            out[key] = value
    free_form = "properties" not in out and "additionalProperties" not in out
    if out.get("type") == "object" and free_form:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a kind (apiVersion, kind, metadata, spec, status)."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    defs = schema.pop("$defs", {})
    root: dict[str, Any] = _structural(schema, defs)
    root.pop("description", None)
    props = root["properties"]
    props["apiVersion"] = {"type": "string"}
    props["kind"] = {"type": "string"}
    props["metadata"] = {"type": "object"}
    root["required"] = ["spec"]
    return root


def _crd(model: type[BaseModel], plural: str, singular: str, kind: str, short: str,
         columns: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "rolloutctl"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": [short],
                "categories": ["rolloutctl"],
            },
            "scope": "Namespaced",
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": columns,
                "schema": {"openAPIV3Schema": openapi_schema(model)},
            }],
        },
    }


def rolloutplan_crd() -> dict[str, Any]:
    return _crd(RolloutPlan, "rolloutplans", "rolloutplan", "RolloutPlan", "rp", [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Step", "type": "integer", "jsonPath": ".status.currentStep"},
        {"name": "Weight", "type": "integer", "jsonPath": ".status.canaryWeight"},
        {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ])


def slopolicy_crd() -> dict[str, Any]:
    return _crd(SLOPolicy, "slopolicies", "slopolicy", "SLOPolicy", "slop", [
        {"name": "Frozen", "type": "boolean", "jsonPath": ".status.frozen"},
        {"name": "Budget", "type": "number", "jsonPath": ".status.budgetRemaining",
         "description": "Error budget remaining of the freeze SLO, in percent"},
        {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ])


def all_crds() -> dict[str, dict[str, Any]]:
    """File name in ``manifests/crds/`` → CRD object."""
    return {
        f"rolloutplans.{GROUP}.yaml": rolloutplan_crd(),
        f"slopolicies.{GROUP}.yaml": slopolicy_crd(),
    }


class _NoAliasDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(crd: dict[str, Any]) -> str:
    header = "# Generated by `rolloutctl crds` from controller/api; do not edit by hand.\n"
    return header + yaml.dump(crd, Dumper=_NoAliasDumper, sort_keys=False, width=100)
