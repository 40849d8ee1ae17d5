"""Query templates with ``{{service}}``, ``{{namespace}}``, ``{{track}}``, ``{{revision}}``
and ``{{window}}``.

Values are substituted only after they are checked: label-value safe (so a value can never
close a matcher and inject PromQL), and ``window`` a Prometheus duration.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

ALLOWED_VARIABLES = frozenset({"service", "namespace", "track", "revision", "window"})

_VARIABLE_RE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_LABEL_SAFE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_PROM_DURATION_RE = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


class TemplateError(ValueError):
    """A template names an unknown variable, or a value is not safe to substitute."""


def variables(template: str) -> list[str]:
    """The variable names a template uses, in order of appearance."""
    return [m.group(1) for m in _VARIABLE_RE.finditer(template)]


def unknown_variables(template: str) -> list[str]:
    return [v for v in variables(template) if v not in ALLOWED_VARIABLES]


def is_label_safe(value: str) -> bool:
    return len(value) <= 63 and bool(_LABEL_SAFE_RE.fullmatch(value))


def render(template: str, values: Mapping[str, str]) -> str:
    """The template with every variable replaced; raises TemplateError on anything unsafe."""
    for name, value in values.items():
        if name not in ALLOWED_VARIABLES:
            raise TemplateError(f"unknown template variable {name!r}")
        if name == "window":
            if not _PROM_DURATION_RE.fullmatch(value):
                raise TemplateError(f"window {value!r} is not a Prometheus duration")
        elif not is_label_safe(value):
            raise TemplateError(
                f"refusing to substitute {name}={value!r}: only letters, digits, '-', '_' "
                "and '.' (at most 63) are allowed in template values"
            )

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in ALLOWED_VARIABLES:
            raise TemplateError(
                f"unknown template variable {{{{{name}}}}}; allowed: "
                + ", ".join(sorted(ALLOWED_VARIABLES))
            )
        if name not in values:
            raise TemplateError(f"no value for template variable {{{{{name}}}}}")
        return values[name]

    return _VARIABLE_RE.sub(substitute, template)
