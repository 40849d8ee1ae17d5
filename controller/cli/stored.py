"""Stored RolloutPlans and SLOPolicies as models, for the commands that show them.

A document the API server holds passed its CRD's schema; when it still does not parse,
the CRDs are newer (or older) than this rolloutctl, and the message says so.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from controller.api.plan import RolloutPlan
from controller.api.policy import SLOPolicy
from controller.cli.errors import CliError


def parse_plan(raw: dict[str, Any]) -> RolloutPlan:
    try:
        return RolloutPlan.model_validate(raw)
    except ValidationError as exc:
        raise CliError(_unreadable(raw, exc)) from None


def parse_policy(raw: dict[str, Any]) -> SLOPolicy:
    try:
        return SLOPolicy.model_validate(raw)
    except ValidationError as exc:
        raise CliError(_unreadable(raw, exc)) from None


def _unreadable(raw: dict[str, Any], exc: ValidationError) -> str:
    meta = raw.get("metadata", {})
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return (f"{raw.get('kind')} {meta.get('namespace')}/{meta.get('name')} cannot be read "
            f"({where}: {first['msg']}); is this rolloutctl as new as the CRDs? "
            "(`rolloutctl version`)")
