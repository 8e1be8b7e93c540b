"""What the blast-radius benchmark runs: the policies that judge a canary, and the canaries.

Every policy is the demo's Canary (`canary.demo.scenario`: steps 10/25/50% of 12 s each,
threshold 2, a success-rate and a latency check over a 12 s window) with one thing changed, so
the figures differ by the judge alone:

- `plain`: checkInterval equal to interval, so a check runs once per interval and `threshold`
  failed checks take threshold x interval, as Flagger counts (the plain Flagger variant);
- `fast`: the demo's Canary as it is: a check every checkInterval (2 s) within each step, the
  success rate against `min: 99` and the p99 against `max: 500` (ms);
- `fast-95`: the same with the success-rate line at `min: 95`, the "typical" line the issue's
  subtle case names, which stable's own 1% noise does not cross (`fast`'s 99 sits on it);
- `sequential`: no threshold line: request-success-rate compared with stable
  (`compare: {against: stable}`, alpha 0.01, minEffect 1.5) and request-duration compared as the
  share of requests slower than `SLOWER_THAN` (a bucket bound of Envoy's default histogram).

A case is what the two versions do. Stable fails 1% of requests in the error cases and in A/A,
so a threshold line near 99% sees stable's own noise on the canary; in the latency case neither
version fails, so a rollback there is for latency alone, and every canary answer is slower than
`SLOWER_THAN` (the canary answers in 30 +- 3 ms where stable takes 5), so every one it served is
a bad request.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from canary.api.resources import Canary
from canary.api.spec import Analysis
from canary.demo import scenario

# Envoy's default histogram has a bucket bound at 25 ms (0.5, 1, 5, 10, 25, 50, 100, ...).
SLOWER_THAN = "25ms"
SLOWER_THAN_MS = 25.0
STABLE_ERROR_RATE = 0.01
SLOW_CANARY_MS = 30.0
SLOW_CANARY_JITTER_MS = 3.0


@dataclass(frozen=True, slots=True)
class Case:
    """What each version does: its share of 503s, and the canary's latency if it is slower."""

    name: str
    canary_error_rate: float
    stable_error_rate: float = STABLE_ERROR_RATE
    canary_latency_ms: float | None = None
    canary_jitter_ms: float = 0.0

    @property
    def healthy(self) -> bool:
        """A/A: the canary does what stable does, so any rollback is a false one."""
        return self.canary_error_rate == self.stable_error_rate and self.canary_latency_ms is None

    @property
    def slow(self) -> bool:
        return self.canary_latency_ms is not None

    def describe(self) -> str:
        if self.slow:
            return (
                f"canary {self.canary_latency_ms:g} +- {self.canary_jitter_ms:g} ms (stable "
                f"5 ms; every canary answer over {SLOWER_THAN}), errors: canary "
                f"{self.canary_error_rate:.0%}, stable {self.stable_error_rate:.0%}"
            )
        return f"canary fails {self.canary_error_rate:.0%}, stable {self.stable_error_rate:.0%}" + (
            " (A/A)" if self.healthy else ""
        )


CASES: dict[str, Case] = {
    "errors-20": Case("errors-20", canary_error_rate=0.20),
    "errors-5": Case("errors-5", canary_error_rate=0.05),
    "errors-2": Case("errors-2", canary_error_rate=0.02),
    "latency": Case(
        "latency",
        canary_error_rate=0.0,
        stable_error_rate=0.0,
        canary_latency_ms=SLOW_CANARY_MS,
        canary_jitter_ms=SLOW_CANARY_JITTER_MS,
    ),
    "aa": Case("aa", canary_error_rate=STABLE_ERROR_RATE),
}


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    objects: list[dict[str, Any]]

    @property
    def analysis(self) -> Analysis:
        body = next(body for body in self.objects if body["kind"] == "Canary")
        return Canary.model_validate(body).spec.analysis

    @property
    def nominal_s(self) -> float:
        """threshold x interval: how long a Flagger-style policy takes to roll back."""
        return self.analysis.threshold * self.analysis.interval_seconds

    def describe(self) -> str:
        analysis = self.analysis
        checks = "; ".join(_describe_check(metric) for metric in analysis.metrics)
        return (
            f"interval {analysis.interval_seconds:g}s, checkInterval "
            f"{analysis.check_interval_seconds:g}s, threshold {analysis.threshold}: {checks}"
        )


def _describe_check(metric: Any) -> str:
    parts = [metric.name]
    if metric.threshold_range is not None:
        bounds = metric.threshold_range
        parts += [f"min {bounds.min:g}"] if bounds.min is not None else []
        parts += [f"max {bounds.max:g}"] if bounds.max is not None else []
    if metric.compare is not None:
        compare = metric.compare
        slower = f", slower than {compare.slower_than}" if compare.slower_than else ""
        parts.append(
            f"compared with stable (alpha {compare.alpha:g}, minEffect {compare.min_effect:g}"
            f"{slower})"
        )
    return " ".join(parts)


POLICY_NAMES = ("plain", "fast", "fast-95", "sequential")


def policies(names: tuple[str, ...] = POLICY_NAMES) -> list[Policy]:
    """The named policies, in the order given."""
    build = {"plain": _plain, "fast": _fast, "fast-95": _fast_95, "sequential": _sequential}
    return [Policy(name, build[name]()) for name in names]


def _fast() -> list[dict[str, Any]]:
    return scenario.objects()


def _fast_95() -> list[dict[str, Any]]:
    objects = copy.deepcopy(scenario.objects())
    for metric in _canary(objects)["spec"]["analysis"]["metrics"]:
        if metric["name"] == "request-success-rate":
            metric["thresholdRange"] = {"min": 95}
    return objects


def _plain() -> list[dict[str, Any]]:
    objects = copy.deepcopy(scenario.objects())
    analysis = _canary(objects)["spec"]["analysis"]
    analysis["checkInterval"] = analysis["interval"]
    return objects


def _sequential() -> list[dict[str, Any]]:
    objects = copy.deepcopy(scenario.objects())
    analysis = _canary(objects)["spec"]["analysis"]
    for metric in analysis["metrics"]:
        del metric["thresholdRange"]
        metric.pop("minRequests", None)
        if metric["name"] == "request-duration":
            metric["compare"] = {"against": "stable", "slowerThan": SLOWER_THAN}
        else:
            metric["compare"] = {"against": "stable"}
    return objects


def _canary(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return next(body for body in objects if body["kind"] == "Canary")
