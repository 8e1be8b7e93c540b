"""canary: a progressive delivery controller for Kubernetes and Istio."""

__version__ = "0.1.0"
