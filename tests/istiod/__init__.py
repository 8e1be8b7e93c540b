"""Test support for running a real istiod (pilot-discovery) against the test API server."""
