"""Wire conventions shared by every kind: camelCase names, durations, percents, names.

Durations look like ``90s``, ``5m``, ``24h``, ``30d`` (or a sum such as ``1h30m``);
they keep their text on the wire and expose seconds to the code. Percents accept ``10``,
``12.5`` or ``"10%"``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar
from urllib.parse import quote

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, GetCoreSchemaHandler
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError, core_schema

GROUP = "rolloutctl.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURALS = {"RolloutPlan": "rolloutplans", "SLOPolicy": "slopolicies"}


def object_path(kind: str, namespace: str, name: str) -> str:
    """The API path of one of rolloutctl's objects (names quoted: a name with a ``/`` is
    not found rather than another path)."""
    ns, obj = quote(namespace, safe=""), quote(name, safe="")
    return f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURALS[kind]}/{obj}"


DURATION_PATTERN = r"^([0-9]+(ms|s|m|h|d))+$"
_DURATION_RE = re.compile(DURATION_PATTERN)
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
#: the longest duration any field accepts (a 400-day window is beyond every real use;
#: beyond it Python's timedelta overflows)
MAX_DURATION_SECONDS = 400 * 86400.0
#: the longest text of a duration on the wire (the CRD's maxLength)
DURATION_MAX_LENGTH = 32

# A Kubernetes object name (DNS-1123 subdomain, simplified to the label form most kinds use).
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
# A value that may be substituted into a PromQL label matcher without escaping.
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
# An SLO name: also a Prometheus-safe identifier, used in metric labels and gate names.
SLO_NAME_PATTERN = r"^[a-z][a-z0-9_]*$"

Name = Annotated[str, Field(min_length=1, max_length=253, pattern=NAME_PATTERN)]
LabelValue = Annotated[str, Field(min_length=1, max_length=63, pattern=LABEL_VALUE_PATTERN)]
SloName = Annotated[str, Field(min_length=1, max_length=63, pattern=SLO_NAME_PATTERN)]


class Wire(BaseModel):
    """Base of every wire model: camelCase on the wire, unknown fields rejected, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=False,
        defer_build=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase keys, no nulls."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Duration:
    """A duration such as ``90s``, ``5m``, ``24h`` or ``30d``; ``seconds`` is its length."""

    __slots__ = ("seconds", "text")
    pattern: ClassVar[str] = DURATION_PATTERN

    def __init__(self, text: str) -> None:
        text = text.strip()
        if not _DURATION_RE.fullmatch(text):
            raise ValueError(
                f"invalid duration {text!r}: write a number and a unit (ms, s, m, h, d), "
                "for example 90s, 5m, 24h or 30d"
            )
        if len(text) > DURATION_MAX_LENGTH:
            raise ValueError(f"invalid duration: longer than {DURATION_MAX_LENGTH} characters")
        self.text = text
        self.seconds = sum(
            int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text)
        )
        if self.seconds > MAX_DURATION_SECONDS:
            raise ValueError(f"duration {text!r} is too long: at most 400d")

    @classmethod
    def of_seconds(cls, seconds: float) -> Duration:
        """The shortest exact text for a whole number of seconds (milliseconds otherwise)."""
        if seconds != int(seconds):
            return cls(f"{round(seconds * 1000)}ms")
        s = int(seconds)
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if s and s % size == 0:
                return cls(f"{s // size}{unit}")
        return cls(f"{s}s")

    @property
    def timedelta(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Duration({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Duration) and other.seconds == self.seconds

    def __hash__(self) -> int:
        return hash(self.seconds)

    @classmethod
    def _validate(cls, value: Any) -> Duration:
        if isinstance(value, Duration):
            return value
        if not isinstance(value, str):
            raise PydanticCustomError(
                "duration_type",
                "must be a duration string such as 90s, 5m, 24h or 30d, not {value!r}",
                {"value": value},
            )
        try:
            return cls(value)
        except ValueError as exc:
            raise PydanticCustomError("duration_format", str(exc)) from None

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            json_schema_input_schema=core_schema.str_schema(pattern=DURATION_PATTERN),
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda d: d.text, when_used="always"
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        return {"type": "string", "pattern": DURATION_PATTERN, "maxLength": DURATION_MAX_LENGTH,
                "x-rolloutctl-duration": True}


def duration_between(low: float | None = None, high: float | None = None) -> Any:
    """An annotation bounding a :class:`Duration` field: ``Annotated[Duration,
    duration_between(1)]`` refuses ``500ms`` with a message giving the bound."""

    def check(value: Duration) -> Duration:
        if low is not None and value.seconds < low:
            raise PydanticCustomError(
                "duration_too_short", "{text} is too short: at least {low}",
                {"text": value.text, "low": Duration.of_seconds(low).text})
        if high is not None and value.seconds > high:
            raise PydanticCustomError(
                "duration_too_long", "{text} is too long: at most {high}",
                {"text": value.text, "high": Duration.of_seconds(high).text})
        return value

    return AfterValidator(check)


#: The 1 s minimum as the API server checks it (CEL, before the controller sees the object):
#: CEL's duration() reads Go durations (``1m30s``, ``500ms``), not days, so a value with a
#: day part only needs one non-zero number.
MIN_ONE_SECOND_RULE = {
    "rule": "self.contains('d') ? !self.matches('^(0+(ms|s|m|h|d))+$')"
            " : duration(self) >= duration('1s')",
    "message": "must be at least 1s (e.g. 10s, 1m)",
}

#: an interval or hold: 1 s at least (the engine asks to be requeued after it)
AtLeastOneSecond = Annotated[
    Duration, duration_between(1.0),
    Field(json_schema_extra={"x-kubernetes-validations": [MIN_ONE_SECOND_RULE]})]


_PERCENT_RE = re.compile(r"^\s*([0-9]+(\.[0-9]+)?)\s*%?\s*$")


class Percent:
    """A percentage in [0, 100], written ``10``, ``12.5`` or ``"10%"``."""

    __slots__ = ("value",)

    def __init__(self, value: float) -> None:
        if not 0 <= value <= 100:
            raise ValueError(f"must be a percentage between 0 and 100, not {value}")
        self.value = float(value)

    def __float__(self) -> float:
        return self.value

    def __repr__(self) -> str:
        return f"Percent({self.value})"

    def __str__(self) -> str:
        return f"{self.value:g}%"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Percent) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)

    @classmethod
    def _validate(cls, value: Any) -> Percent:
        if isinstance(value, Percent):
            return value
        if isinstance(value, bool):
            raise PydanticCustomError("percent_type", "must be a percentage such as 10 or '10%'")
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str) and (m := _PERCENT_RE.match(value)):
            number = float(m.group(1))
        else:
            raise PydanticCustomError(
                "percent_type", "must be a percentage such as 10 or '10%', not {value!r}",
                {"value": value},
            )
        try:
            return cls(number)
        except ValueError as exc:
            raise PydanticCustomError("percent_range", str(exc)) from None

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda p: f"{p.value:g}%", when_used="always"
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        return {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "maxLength": 16,  # applies to the string form
            "x-kubernetes-int-or-string": True,
            "x-rolloutctl-percent": True,
        }


class ObjectMeta(Wire):
    """The parts of ``metadata`` the controller reads; everything else is kept as is."""

    model_config = ConfigDict(extra="allow")

    name: Name
    namespace: str = "default"
    uid: str | None = None
    generation: int = 0
    resource_version: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    creation_timestamp: datetime | None = None



def parse_duration(text: str) -> float:
    """Seconds in a duration text; raises ValueError with the fix in the message."""
    return Duration(text).seconds
