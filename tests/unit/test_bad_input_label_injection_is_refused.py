"""Label values that try to break out of a PromQL matcher (quotes, braces, newlines,
operators, template markers) are refused: as a plan's or a policy's ``service`` by
validation (naming ``spec.service``), and by the template renderer itself, so no query can
carry them. The reliability suite also sends them through the API server and checks
Prometheus's query log.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from controller.api import templates
from controller.api.validation import check_plan, check_policy
from tests.harness.chaos import INJECTIONS, injection_documents, injections

TEMPLATE = 'sum(rate(http_requests_total{service="{{service}}",track="{{track}}"}[{{window}}]))'


@pytest.mark.parametrize("value", INJECTIONS)
def test_the_renderer_refuses_a_known_payload(value: str) -> None:
    with pytest.raises(templates.TemplateError, match="refusing to substitute service"):
        templates.render(TEMPLATE, {"service": value, "track": "canary", "window": "5m"})


@settings(max_examples=300, deadline=None)
@given(injections())
def test_the_renderer_refuses_any_unsafe_value(value: str) -> None:
    for name in ("service", "namespace", "track", "revision"):
        with pytest.raises(templates.TemplateError):
            templates.render(TEMPLATE, {name: value})


def test_validation_refuses_every_payload_as_a_service() -> None:
    for bad in injection_documents():
        check = check_plan if bad.kind == "RolloutPlan" else check_policy
        problems = check(bad.doc)[1]
        assert [p.path for p in problems] == ["spec.service"], (bad.injection, problems)
        assert "safe as a Prometheus label value" in problems[0].message


def test_a_safe_value_is_rendered_as_is() -> None:
    assert templates.render(TEMPLATE, {"service": "checkout-v2.eu_1", "track": "canary",
                                       "window": "5m"}) == (
        'sum(rate(http_requests_total{service="checkout-v2.eu_1",track="canary"}[5m]))')
