"""The embedded data plane: a small Pilot, Envoy and Prometheus processes, a demo app and load."""
