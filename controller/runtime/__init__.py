"""The controller's runtime: work queues, leader election, the manager and its endpoints.

Wires the adapters (informers, the Lease) to the reconcilers; never imported by adapters.
"""
