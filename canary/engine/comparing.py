"""Judging the checks that compare the canary with stable: the sequential test on each judged
tick, its state carried in the status, its verdict in the check's record.

The statistics are engine/sequential.py's; this module decides which window a reading counts
(so no request is counted twice, across restarts and suspensions too) and what a reading that
cannot be counted means (no data, never a pass).
"""

from __future__ import annotations

from datetime import datetime

from canary.api.comparison import SequentialState
from canary.api.status import CanaryStatus


def state_of(status: CanaryStatus, name: str) -> SequentialState | None:
    """The check's test in this rollout: the stored one for the status's revision, if any."""
    for state in status.sequential:
        if state.name == name and state.revision == status.revision:
            return state
    return None


def window_start(status: CanaryStatus, name: str) -> datetime | None:
    """Where the counts of check `name`'s next reading must start; None while no step is live.

    The step's clock start, or the window the test already counts in this step. When the step's
    clock started again after that window began (drift, or a suspension lifted: resuming shifts
    every stored time forward by the time spent frozen, so the shifted start may lie before the
    last reading), the new window starts at the last judged tick, so time already counted is
    never counted again (the test's bound assumes each request is seen once).
    """
    started = status.step_started_at
    if started is None:
        return None
    state = state_of(status, name)
    if state is None or state.step != status.step or state.since is None:
        return started
    if state.since >= started:
        return state.since
    last = status.last_check_at
    return started if last is None or last < started else last
