"""Shared pytest setup: the real control plane and Prometheus fixtures live in the package."""

pytest_plugins = ["controller.testing.fixtures"]
