"""Field readers: Go durations as Istio's YAML writes them, and type problems named by field."""

from __future__ import annotations

import pytest

from canary.localmesh.pilot import fields


@pytest.mark.parametrize(
    ("text", "envoy"),
    [
        ("7s", "7s"),
        ("0.5s", "0.5s"),
        ("250ms", "0.25s"),
        ("1m30s", "90s"),
        ("1h", "3600s"),
        ("1.5m", "90s"),
        ("10us", "0.00001s"),
        ("0", "0s"),
    ],
)
def test_go_durations_become_envoy_durations(text: str, envoy: str) -> None:
    nanos = fields.parse_duration(text)
    assert nanos is not None
    assert fields.envoy_duration(nanos) == envoy


@pytest.mark.parametrize("text", ["", "7", "s", "-1s", "1 s", "1d", "1s2"])
def test_what_is_not_a_duration_is_refused(text: str) -> None:
    assert fields.parse_duration(text) is None


def test_wrong_types_are_problems_at_the_field_and_read_as_absent() -> None:
    report = fields.Report("VirtualService default/demo")
    parent = {"n": True, "s": 5, "m": [], "d": "soon", "p": {"value": 101}}
    assert fields.get_int(report, parent, "n", "spec") is None
    assert fields.get_str(report, parent, "s", "spec") is None
    assert fields.get_map(report, parent, "m", "spec") is None
    assert fields.get_duration(report, parent, "d", "spec") is None
    assert fields.get_percent(report, parent, "p", "spec") is None
    assert report.problems == [
        "VirtualService default/demo spec.n: expected an integer, got a boolean",
        "VirtualService default/demo spec.s: expected a string, got an integer",
        "VirtualService default/demo spec.m: expected an object, got a list",
        "VirtualService default/demo spec.d: 'soon' is not a duration (e.g. 10s, 1.5s, 250ms, 1m)",
        "VirtualService default/demo spec.p.value: 101 is outside 0..100",
    ]


def test_percentages_are_written_per_million_as_istiod_does() -> None:
    report = fields.Report("x")
    found = fields.get_percent(report, {"p": {"value": 0.1}}, "p", "spec")
    assert found == {"numerator": 1000, "denominator": "MILLION"}
    assert report.problems == []
