"""A status time the controller's clock could not have written is refused by the model.

Before, a hand-edited `suspendedAt: 0001-01-01T00:00:00Z` with a far `deadlineAt` made the
resume shift overflow, and a time without a zone made every comparison with `now` raise: each
a crashed tick, every tick. Now such a status does not validate, so the controller's store
treats it as a status it cannot read; tests/unit/engine/test_bounds.py drives decide from every
status the model still admits.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from canary.api import problems
from canary.api.status import CanaryStatus

CHECK = {
    "name": "request-success-rate",
    "kind": "value",
    "verdict": "pass",
    "counted": True,
    "revision": "r",
    "step": 0,
    "weight": 10,
}


@pytest.mark.parametrize(
    ("status", "line"),
    [
        (
            {"stepStartedAt": "2026-01-01T00:00:00"},
            "stepStartedAt: 2026-01-01T00:00:00 has no time zone",
        ),
        (
            {"suspendedAt": "0001-01-01T00:00:00Z", "deadlineAt": "2026-12-31T00:00:00Z"},
            "suspendedAt: 0001-01-01T00:00:00+00:00 is outside the years 1970..2999",
        ),
        (
            {"checks": [{**CHECK, "at": "3000-01-01T00:00:00Z"}]},
            "checks[0].at: 3000-01-01T00:00:00+00:00 is outside the years 1970..2999",
        ),
    ],
)
def test_a_time_no_clock_wrote_is_refused_with_its_path(
    status: dict[str, object], line: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        CanaryStatus.model_validate(status)
    assert problems.lines(caught.value, CanaryStatus) == [line]


def test_the_edges_of_the_years_are_admitted() -> None:
    status = CanaryStatus.model_validate(
        {"stepStartedAt": "1970-01-01T00:00:00Z", "deadlineAt": "2999-12-31T23:59:59+02:00"}
    )
    assert status.deadline_at is not None
