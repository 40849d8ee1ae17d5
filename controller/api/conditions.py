"""Conditions shaped exactly like ``metav1.Condition``.

``lastTransitionTime`` moves only when ``status`` flips; reasons are CamelCase; every
condition carries the ``observedGeneration`` it was computed for.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Annotated

from pydantic import Field

from controller.api.types import Wire

REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
_REASON_RE = re.compile(REASON_PATTERN)


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class ConditionType(StrEnum):
    READY = "Ready"
    PROGRESSING = "Progressing"
    FROZEN = "Frozen"
    DEGRADED = "Degraded"


class Condition(Wire):
    """One entry of ``status.conditions``, field for field ``metav1.Condition``."""

    type: Annotated[str, Field(min_length=1, max_length=316)]
    status: ConditionStatus
    observed_generation: Annotated[int, Field(ge=0)] = 0
    last_transition_time: datetime
    reason: Annotated[str, Field(min_length=1, max_length=1024, pattern=REASON_PATTERN)]
    message: Annotated[str, Field(max_length=32768)] = ""


@lru_cache(maxsize=512)
def _is_reason(reason: str) -> bool:
    return bool(_REASON_RE.fullmatch(reason))


def set_condition(
    conditions: tuple[Condition, ...] | list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> tuple[Condition, ...]:
    """Conditions with ``type_`` set; keeps ``lastTransitionTime`` unless ``status`` flips."""
    if not _is_reason(reason):
        raise ValueError(f"condition reason {reason!r} must be CamelCase")
    out: list[Condition] = []
    found = False
    for c in conditions:
        if c.type != type_:
            out.append(c)
            continue
        found = True
        if (c.status, c.reason, c.message, c.observed_generation) == (
            status, reason, message, generation
        ):
            out.append(c)  # unchanged: keep the object (and its lastTransitionTime)
            continue
        since = c.last_transition_time if c.status == status else now
        out.append(
            Condition(
                type=type_,
                status=status,
                observed_generation=generation,
                last_transition_time=since,
                reason=reason,
                message=message,
            )
        )
    if not found:
        out.append(
            Condition(
                type=type_,
                status=status,
                observed_generation=generation,
                last_transition_time=now,
                reason=reason,
                message=message,
            )
        )
    return tuple(out)


def find_condition(
    conditions: tuple[Condition, ...] | list[Condition], type_: str
) -> Condition | None:
    for c in conditions:
        if c.type == type_:
            return c
    return None
