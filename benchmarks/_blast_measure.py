"""What users saw in one rollout of the blast-radius benchmark, from the load generator's records.

The load generator counts answers per whole second by the time each request was due, with the
version and status of each answer (`canary.localmesh.loadgen`). From those:

- a bad request is a canary answer that is a 5xx or, in the latency case, any canary answer
  (the slow canary answers every request slower than the bound, see `_blast_policies`);
- the exposure runs from the start of the first second holding a bad request to the end of the
  last second holding any canary answer: until the data plane served 0% canary (1 s resolution);
  in A/A, where nothing is bad, the times are from the canary's first answer;
- failed requests are the bad requests up to the terminal phase and a short tail after it;
  stable's own 5xx (it fails 1% in the error cases), Envoy's (no version in the body) and
  requests with no answer at all are counted apart.

The terminal transition, on the same clock, is kept beside it as a cross-check, and so is what
happened when (events and judged checks, in seconds from the start of the first bad second).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import _blast_policies
import _mesh_runs

from canary.api.status import Phase
from canary.localmesh import loadgen

ENVOY = "envoy"


@dataclass(frozen=True, slots=True)
class Blast:
    phase: str
    message: str
    bad: int
    canary_answers: int
    stable_failed: int
    envoy_failed: int
    no_response: int
    # Requests the load generator skipped, more than a second late: the load it did not offer.
    missed: int
    first_bad_s: int | None
    last_canary_s: int | None
    # The terminal transition, in seconds from the start of the first bad second.
    ended_at_s: float | None
    timed_out: bool
    timeline: str

    @property
    def rolled_back(self) -> bool:
        return self.phase == Phase.FAILED

    @property
    def seconds(self) -> int | None:
        """From the first bad answer to 0% canary; None unless the canary was rolled back."""
        if not self.rolled_back or self.first_bad_s is None or self.last_canary_s is None:
            return None
        return self.last_canary_s + 1 - self.first_bad_s

    def outcome(self) -> str:
        """`9 s` for a rollback, `no rollback in 40 s` (up to the terminal phase) otherwise."""
        if self.seconds is not None:
            return f"{self.seconds} s"
        if self.rolled_back:
            return "rolled back, no bad answer seen"
        ended = "" if self.ended_at_s is None else f" in {self.ended_at_s:.0f} s"
        return f"no rollback{ended}" + (" (timed out)" if self.timed_out else f" ({self.phase})")


def measure(rollout: _mesh_runs.Rollout, case: _blast_policies.Case, canary_version: str) -> Blast:
    per_second = rollout.snapshot.per_second
    canary_bad = 0
    canary_answers = 0
    others: Counter[str] = Counter()
    no_response = 0
    first_bad: int | None = None
    first_canary: int | None = None
    last_canary: int | None = None
    for second in sorted(per_second):
        for outcome, count in per_second[second].items():
            if outcome.status == loadgen.NO_RESPONSE:
                no_response += count
                continue
            if outcome.version != canary_version:
                if outcome.status >= 500:
                    version = ENVOY if outcome.version == loadgen.UNKNOWN_VERSION else "stable"
                    others[version] += count
                continue
            canary_answers += count
            first_canary = second if first_canary is None else first_canary
            last_canary = second
            if case.slow or outcome.status >= 500:
                canary_bad += count
                first_bad = second if first_bad is None else first_bad
    # A/A's 5xx are no regression: its clock starts at the canary's first answer, as does that
    # of a run without a single bad answer.
    start = first_canary if case.healthy or first_bad is None else first_bad
    origin = float(start or 0)
    ended_at = None
    if rollout.status.last_transition_time is not None and not rollout.timed_out:
        ended_at = rollout.load_second(rollout.status.last_transition_time) - origin
    return Blast(
        phase=rollout.phase,
        message=rollout.status.message or "",
        bad=canary_bad,
        canary_answers=canary_answers,
        stable_failed=others["stable"],
        envoy_failed=others[ENVOY],
        no_response=no_response,
        missed=rollout.snapshot.missed,
        first_bad_s=first_bad,
        last_canary_s=last_canary,
        ended_at_s=ended_at,
        timed_out=rollout.timed_out,
        timeline=_timeline(rollout, origin),
    )


def _timeline(rollout: _mesh_runs.Rollout, origin: float) -> str:
    """Events and judged checks, in seconds since the start of the first bad second."""
    moments: list[tuple[float, str]] = []
    for event in rollout.events:
        at = rollout.load_second(datetime.fromisoformat(event["time"])) - origin
        moments.append((at, event["reason"]))
    for check in rollout.status.history:
        value = "" if check.value is None else f" {check.value:.4g}"
        samples = "" if check.samples is None else f" ({check.samples} req)"
        detail = f"{check.name} {check.verdict}{value}{samples}"
        moments.append((rollout.load_second(check.at) - origin, detail))
    return "; ".join(f"{at:+.1f}s {what}" for at, what in sorted(moments))
