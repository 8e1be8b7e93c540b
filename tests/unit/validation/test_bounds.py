"""Every bound of a Canary, at its edge: the bound itself validates, one step beyond is one line
from `canary validate` that names the field and the allowed range (the same line the
controller's store puts in the Invalid condition). The bounds are also in the CRD descriptions.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from canary.api import crd
from canary.validation import report
from tests.unit.validation.documents import canary

METRIC = {"name": "request-success-rate", "thresholdRange": {"min": 99}}
HOOK = {"name": "h", "url": "http://hooks.test/"}
EXPERIMENT = {
    "name": "bad-pod",
    "atWeight": 10,
    "duration": "10s",
    "fault": {"abort": {"httpStatus": 503, "percentage": 100}},
    "expect": {"ejection": True},
}

# (where, the bound, one step beyond it, the words of the line); `where` is a path under spec,
# with [0] for the first metric, webhook or experiment, which the base document has.
EDGES = [
    ("analysis.interval", "24h", "24h1s", "is longer than 24h (allowed: 1s..24h)"),
    ("analysis.interval", "10s", "999ms", "is shorter than 1s (allowed: 1s..24h)"),
    ("analysis.checkInterval", "1s", "0.5s", "is shorter than 1s"),
    ("analysis.metrics[0].interval", "24h", "25h", "is longer than 24h"),
    ("analysis.metrics[0].noDataTimeout", "24h", "1441m", "is longer than 24h"),
    ("analysis.webhooks[0].timeout", "10m", "601s", "is longer than 10m (allowed: 100ms..10m)"),
    ("analysis.webhooks[0].timeout", "100ms", "99ms", "is shorter than 100ms"),
    ("progressDeadline", "72h", "73h", "is longer than 72h (allowed: 1s..72h)"),
    ("scaleDownAfter", "168h", "169h", "is longer than 168h (allowed: 1s..168h)"),
    ("chaos[0].duration", "1s", "0.5s", "is shorter than 1s"),
    ("chaos[0].fault.delay", {"fixedDelay": "1h", "percentage": 1}, None, None),
    ("analysis.threshold", 10_000, 10_001, "less than or equal to 10000"),
    ("analysis.metrics[0].minRequests", 1_000_000_000, 1_000_000_001, "less than or equal to"),
    ("analysis.stepWeights", [1, 100], [0, 100], "weight 0 gives the canary no traffic"),
    ("analysis.stepWeights", [100], [101], "101 is outside 1..100"),
    ("chaos[0].pods", 1000, 1001, "less than or equal to 1000"),
    ("analysis.metrics[0].thresholdRange.min", -1.7e308, float("-inf"), "must be a finite"),
    ("analysis.metrics[0].thresholdRange.min", 1.7e308, float("nan"), "must be a finite"),
    ("chaos[0].expect.successRate", 100, float("nan"), "must be a finite"),
]


def _document(where: str, value: Any) -> dict[str, Any]:
    body = canary(
        analysis={
            "stepWeights": [10, 50],
            "interval": "24h",
            "metrics": [METRIC],
            "webhooks": [HOOK],
        },
        chaos=[EXPERIMENT],
    )
    body = copy.deepcopy(body)
    node: Any = body["spec"]
    *parents, last = where.split(".")
    for part in parents:
        name, _, index = part.partition("[")
        node = node[name][0] if index else node[name]
    if where == "analysis.stepWeights":
        # The experiment must run at one of the steps.
        body["spec"]["chaos"][0]["atWeight"] = value[-1] if value[-1] <= 100 else 100
    node[last] = value
    return body


def _lines(tmp_path: Path, body: dict[str, Any]) -> list[str]:
    path = tmp_path / "canary.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return [line.split(": ", 1)[1] for line in report.validate_paths([path]).lines()]


@pytest.mark.parametrize(("where", "bound", "beyond", "words"), EDGES)
def test_the_bound_validates_and_one_step_beyond_is_one_clear_line(
    tmp_path: Path, where: str, bound: Any, beyond: Any, words: str | None
) -> None:
    assert _lines(tmp_path, _document(where, bound)) == []
    if beyond is None:
        return
    [line] = _lines(tmp_path, _document(where, beyond))
    assert line.startswith(f"spec.{where}"), line
    assert words in line, line


def test_every_bound_is_said_in_the_crd() -> None:
    text = "".join(crd.render_files().values())
    for said in ("1s..24h", "1s..72h", "1s..168h", "100ms..10m", "1ms..1h", "1..10000", "1..100"):
        assert said in text, said
    assert "+Inf or -Inf" in text
