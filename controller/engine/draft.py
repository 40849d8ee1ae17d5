"""The next status under construction: a typed, slotted copy of ``RolloutPlanStatus``.

A pass assigns fields on a ``StatusDraft`` (``draft.canary_weight = 10``); mypy checks every
name and type, and a misspelt field (``draft.canary_wieght``) is an error for mypy and an
``AttributeError`` at run time (slots), never a value that silently vanishes. Lists are
never mutated in place, only replaced, so an unchanged draft shares every list with the
old status and ``unchanged`` is a few identity checks. A unit test keeps the fields equal
to the model's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from operator import attrgetter
from typing import Any

from controller.api.conditions import Condition
from controller.api.notifications import NotificationState
from controller.api.plan import (
    DecisionRecord,
    DrillReport,
    FreezeInfo,
    GateStatus,
    Handled,
    Phase,
    PromotionStage,
    RolloutPlanStatus,
    RunRecord,
)


@dataclass(slots=True)
class StatusDraft:
    """``RolloutPlanStatus``'s fields, assignable and checked (see the module docstring)."""

    observed_generation: int
    phase: Phase
    reason: str
    message: str
    run: int
    seq: int
    revision: str | None
    steps_hash: str | None
    current_step: int | None
    canary_weight: int
    canary_mirror: int | None
    route_pending_since: datetime | None
    run_started_at: datetime | None
    step_started_at: datetime | None
    last_analysis_at: datetime | None
    pause_reason: str | None
    waiting_since: datetime | None
    promotion_stage: PromotionStage | None
    promoted_full: bool
    rollback_reason: str | None
    freeze: FreezeInfo | None
    gates: list[GateStatus]
    conditions: list[Condition]
    history: list[RunRecord]
    drills: list[DrillReport]
    decisions: list[DecisionRecord]
    handled: Handled
    notifications: NotificationState

    @classmethod
    def of(cls, status: RolloutPlanStatus) -> StatusDraft:
        # positional: the fields are the model's, in its order (checked at import)
        return cls(*status.__dict__.values())

    def values(self) -> dict[str, Any]:
        """Field name -> value (no copies), for ``model_copy(update=...)``."""
        return dict(zip(FIELDS, _values(self), strict=True))

    def unchanged(self, old: RolloutPlanStatus) -> bool:
        """Is this draft the same status as OLD? Lists compare by their items' identity
        (every list of the draft is either OLD's or a new one)."""
        for value, other in zip(old.__dict__.values(), _values(self), strict=True):
            if other is value:
                continue
            if isinstance(value, list):
                if not (isinstance(other, list) and len(other) == len(value)
                        and all(a is b for a, b in zip(other, value, strict=True))):
                    return False
            elif other != value:
                return False
        return True

    def build(self, old: RolloutPlanStatus) -> RolloutPlanStatus:
        """The next status: OLD itself when nothing changed (the common case for idle and
        holding plans), else a copy without re-validation (every value came from
        validated models or typed code)."""
        return old if self.unchanged(old) else old.model_copy(update=self.values())


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(StatusDraft))
if tuple(RolloutPlanStatus.model_fields) != FIELDS:
    raise TypeError("StatusDraft's fields must be RolloutPlanStatus's, in the same order: "
                    f"{FIELDS} != {tuple(RolloutPlanStatus.model_fields)}")
_values: Callable[[StatusDraft], tuple[Any, ...]] = attrgetter(*FIELDS)
