"""Kubernetes: clients, plans, workloads, watches, leases and events."""
