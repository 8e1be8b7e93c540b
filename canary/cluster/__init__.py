"""Wiring for `canary run`: the controller in a cluster, on the Kubernetes adapters."""
