"""Flagger's load tester, a real gate service for the webhook end-to-end tests.

`build` builds it from the wrapper Go module here (Flagger's `pkg/loadtester`, served on a
loopback address by `main.go`); `assets` finds the build; `run` starts it on a free port.
"""
