"""Header and cookie matches as regular expressions, for routers that have no prefix or
cookie match of their own (Gateway API, Istio). RE2 (Envoy) and PCRE accept both."""

from __future__ import annotations

from controller.api.plan import RouteMatch

_SPECIAL = set("\\.+*?()|[]{}^$")


def escape(text: str) -> str:
    """TEXT as a literal in RE2 and PCRE (only the metacharacters escaped)."""
    return "".join("\\" + c if c in _SPECIAL else c for c in text)


def prefix_regex(prefix: str) -> str:
    return f"^{escape(prefix)}.*"


def cookie_regex(match: RouteMatch) -> str:
    """An expression on the Cookie header that holds when cookie NAME has the value."""
    assert match.cookie is not None
    if match.exact is not None:
        value = escape(match.exact)
    elif match.prefix is not None:
        value = escape(match.prefix) + "[^;]*"
    else:
        value = f"(?:{match.regex})"
    return f"^(?:.*;\\s*)?{escape(match.cookie)}={value}(?:;.*)?$"
