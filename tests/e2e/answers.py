"""Which version answered real requests: the evidence the end-to-end tests decide traffic by.

The controller's own readers (`envoy_admin` on Envoy's config_dump, `istio.live_weights` on the
VirtualService) say what the product believes; these count what the load generator's users got,
by the version each answer's body names, so a reader that is wrong cannot vouch for itself. The
load generator buckets answers by the second their request was due, counted from its start.

Shares are judged with a binomial bound: Envoy picks a cluster per request at random, so n
requests at p land within a few standard deviations of n * p; 0 and 100 are exact.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from canary.localmesh import loadgen

# Standard deviations a share may stray from its weight, plus a floor for small samples.
SIGMAS = 4.5
SLACK = 0.02


def second(load: loadgen.LoadGenerator) -> int:
    """The load generator's current second."""
    return int(load.snapshot().elapsed_s)


def answered(load: loadgen.LoadGenerator, since: int, until: int | None = None) -> Counter[str]:
    """Requests answered per version (any status; `?` for no version) due in [since, until)."""
    counts: Counter[str] = Counter()
    for at, outcomes in load.snapshot().per_second.items():
        if at >= since and (until is None or at < until):
            for outcome, count in outcomes.items():
                counts[outcome.version] += count
    return counts


def wait_answered(
    load: loadgen.LoadGenerator, since: int, *, at_least: int, timeout: float
) -> Counter[str]:
    """The answers from second `since` on, once `at_least` have come in whole seconds (the
    current second is still filling); fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    counts: Counter[str] = Counter()
    while time.monotonic() < deadline:
        counts = answered(load, since, second(load))
        if sum(counts.values()) >= at_least:
            return counts
        time.sleep(0.2)
    raise AssertionError(
        f"fewer than {at_least} answers from load second {since} within {timeout:g}s: {counts}"
    )


def check_share(counts: Counter[str], version: str, percent: int, *, versions: set[str]) -> str:
    """Why `version`'s share of the answers from `versions` is not `percent`, or '' when it is."""
    total = sum(counts[v] for v in versions)
    got = counts[version]
    others = {v: n for v, n in counts.items() if v not in versions and n}
    if others:
        return f"answers from outside {sorted(versions)}: {others}"
    if total == 0:
        return "no answers"
    if percent in (0, 100):
        ok = got == total * percent // 100
        return "" if ok else f"{version} answered {got} of {total}, wanted {percent}%"
    p = percent / 100
    bound = SIGMAS * math.sqrt(p * (1 - p) / total) + SLACK
    share = got / total
    if abs(share - p) > bound:
        return (
            f"{version} answered {got} of {total} ({share:.0%}), wanted {percent}% +- {bound:.0%}"
        )
    return ""


@dataclass
class Steps:
    """The load seconds each step's split was live, from the Canary's status as it is polled:
    from the second after its clock started (Envoy serves it by then) to the second before the
    status named another weight (whose write comes right after the status)."""

    load: loadgen.LoadGenerator
    windows: dict[int, tuple[int, int | None]] = field(default_factory=dict)
    _current: int | None = None

    def record(self, status: dict[str, Any]) -> None:
        weight = int(status.get("canaryWeight") or 0)
        now = second(self.load)
        if self._current is not None and weight != self._current:
            start, end = self.windows[self._current]
            if end is None:
                self.windows[self._current] = (start, now - 1)
            self._current = None
        started = status.get("phase") == "Progressing" and status.get("stepStartedAt")
        if started and weight not in self.windows:
            self.windows[weight] = (now + 1, None)
            self._current = weight

    def counts(self, weight: int) -> Counter[str]:
        start, end = self.windows[weight]
        return answered(self.load, start, end)
