"""Test support shipped with the package: the local control plane, Prometheus, fakes."""
