import math

import pytest

from canary.api.traces import Comparison, SpanCompute
from canary.engine.spans import Span, compared, value_of, worst


def spans(*durations: float, errors: tuple[int, ...] = ()) -> list[Span]:
    return [
        Span(trace_id=f"t{index}", duration_ms=duration, error=index in errors)
        for index, duration in enumerate(durations)
    ]


def test_the_error_ratio_is_the_percentage_of_error_spans() -> None:
    assert value_of(spans(1, 2, 3, 4, errors=(1,)), SpanCompute.ERROR_RATIO, None) == 25.0
    assert value_of(spans(1, 2), SpanCompute.ERROR_RATIO, None) == 0.0


@pytest.mark.parametrize(
    ("percentile", "expected"),
    [(50, 50.0), (90, 90.0), (99, 99.0), (100, 100.0), (0.5, 1.0), (99.5, 100.0)],
)
def test_a_percentile_is_a_real_span_duration_by_nearest_rank(
    percentile: float, expected: float
) -> None:
    shuffled = [float(value) for value in range(100, 0, -1)]
    assert value_of(spans(*shuffled), SpanCompute.LATENCY, percentile) == expected


def test_one_slow_span_in_a_hundred_is_the_p100_but_not_the_p99() -> None:
    sample = spans(*([10.0] * 99 + [900.0]))
    assert value_of(sample, SpanCompute.LATENCY, 99) == 10.0
    assert value_of(sample, SpanCompute.LATENCY, 100) == 900.0


def test_no_spans_is_refused_rather_than_a_value() -> None:
    with pytest.raises(ValueError, match="no spans"):
        value_of([], SpanCompute.ERROR_RATIO, None)


def test_the_worst_are_the_slowest_or_the_errors_each_trace_once() -> None:
    sample = spans(5, 50, 500, 40, errors=(0, 3))
    assert worst(sample, SpanCompute.LATENCY) == ["t2", "t1", "t3"]
    assert worst(sample, SpanCompute.ERROR_RATIO) == ["t3", "t0"]
    assert worst(spans(1, 2), SpanCompute.ERROR_RATIO) == []
    same_trace = [Span("a", 9, False), Span("a", 8, False), Span("b", 7, False)]
    assert worst(same_trace, SpanCompute.LATENCY) == ["a", "b"]


def test_a_comparison_is_a_difference_or_a_ratio_and_x_over_zero_is_infinite() -> None:
    assert compared(3.0, 1.0, Comparison.DIFFERENCE) == 2.0
    assert compared(300.0, 100.0, Comparison.RATIO) == 3.0
    assert compared(0.0, 0.0, Comparison.RATIO) == 0.0
    assert math.isinf(compared(1.0, 0.0, Comparison.RATIO))
