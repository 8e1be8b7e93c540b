"""The selectors preflight reads out of a PromQL query, by table."""

from __future__ import annotations

import pytest

from canary.controller.series import Unreadable, selectors


@pytest.mark.parametrize(
    ("query", "asked"),
    [
        ("up", ["up"]),
        ('up{job="x"}', ['up{job="x"}']),
        (
            'sum(rate(istio_requests_total{a="1",response_code!~"5.."}[1m])) / '
            'sum(rate(istio_requests_total{a="1"}[1m]))',
            ['istio_requests_total{a="1"}'],
        ),
        (
            'histogram_quantile(0.99, sum by (le) (rate(x_bucket{a="b", code=~"5.."}[5m])))',
            ['x_bucket{a="b"}'],
        ),
        (
            "sum without (pod) (a) / on (pod) group_left (node) b offset 5m > bool 0.5 and c @ 1.5",
            ["a", "b", "c"],
        ),
        ('{__name__="up", job="x"}', ['{__name__="up",job="x"}']),
        ('label_replace(up{a="}{"}, "dst", "$1", "src", "(.*)")', ['up{a="}{"}']),
        ('x{a=~"v[12]", b!="c"}', ['x{a=~"v[12]"}']),
        ("rate(x[5m:1m])", ["x"]),
        ("1 + 2e3 * inf - nan", []),
        ('max_over_time(x{a="b"}[1h] @ end())', ['x{a="b"}']),
    ],
)
def test_selectors(query: str, asked: list[str]) -> None:
    assert list(dict.fromkeys(s.asked() for s in selectors(query))) == asked


@pytest.mark.parametrize("query", ['up{job="x}', "sum(rate(x[5m)", 'x{a~"b"}'])
def test_a_query_it_cannot_read_is_said_so(query: str) -> None:
    with pytest.raises(Unreadable):
        selectors(query)
