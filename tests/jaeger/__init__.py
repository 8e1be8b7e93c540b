"""Jaeger v2, a real trace backend for the trace tests.

`build` builds it from the wrapper Go module here (github.com/jaegertracing/jaeger v1.75.0,
cmd/jaeger as a tool); `canary.localmesh.jaeger` runs it, `spans` sends it spans over OTLP/HTTP
and `fixtures` gives tests a running one.
"""
