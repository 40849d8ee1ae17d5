"""A name is quoted into the API path: it can never reach another resource or add a query."""

from __future__ import annotations

from controller.api.types import object_path


def test_names_are_quoted_into_the_path() -> None:
    assert object_path("RolloutPlan", "shop", "checkout") == (
        "/apis/rolloutctl.dev/v1alpha1/namespaces/shop/rolloutplans/checkout")
    assert object_path("SLOPolicy", "shop", "a/../b?c") == (
        "/apis/rolloutctl.dev/v1alpha1/namespaces/shop/slopolicies/a%2F..%2Fb%3Fc")
