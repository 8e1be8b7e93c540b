"""The subtle and noisy scenarios' objects, and how the demo tells a comparing check's story.

The records the view and the closing lines read are made here as the engine makes them: each
tick's `comparison` comes from the real sequential test (engine/sequential.py) fed the counts a
3%-vs-1% or a 2%-vs-2% world gives, so the text is tested on the test's own numbers.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console

from canary.api import builtins
from canary.api.comparison import Comparison, ComparisonRecord, ComparisonVerdict
from canary.api.metric_template import MetricTemplate
from canary.api.metrics import MetricMode
from canary.api.resources import Canary
from canary.api.status import CanaryStatus, CheckResult, MeasurementKind, Verdict
from canary.cli import main
from canary.cli.demo import demo
from canary.demo import comparing, report, run, scenario, timeline, verdicts, view
from canary.engine import sequential
from canary.validation import report as validation

T0 = datetime(2026, 12, 4, 5, 0, tzinfo=UTC)
SUBTLE, NOISY = scenario.Scenario.SUBTLE, scenario.Scenario.NOISY


def _canary(chosen: scenario.Scenario) -> Canary:
    bodies = scenario.complete(scenario.objects(chosen))
    return next(Canary.model_validate(b) for b in bodies if b["kind"] == "Canary")


@pytest.mark.parametrize("chosen", [SUBTLE, NOISY])
def test_the_success_rate_check_compares_with_stable_beside_a_line_it_never_crosses(
    chosen: scenario.Scenario,
) -> None:
    metrics = {m.name: m for m in _canary(chosen).spec.analysis.metrics}
    checked = metrics[builtins.SUCCESS_RATE]
    assert checked.compare == Comparison(alpha=0.01, min_effect=1.5)
    assert checked.threshold_range is not None
    assert checked.threshold_range.min == 95
    # The line judges a step's worth of v2's requests, never the first few dozen.
    assert checked.min_requests == comparing.LINE_MIN_REQUESTS >= 500
    world = comparing.WORLDS[chosen]
    # Both versions' success rates lie well above the line: only the comparison can judge them.
    for error_rate in (world.stable_error_rate, world.canary_error_rate):
        assert 100 * (1 - error_rate) >= checked.threshold_range.min + 1
    assert scenario.expected(chosen, CanaryStatus()).regression is (chosen is SUBTLE)


def test_noisy_judges_a_min_99_line_beside_it_as_a_dry_run_of_the_builtin_query() -> None:
    bodies = scenario.complete(scenario.objects(NOISY))
    metrics = {m.name: m for m in _canary(NOISY).spec.analysis.metrics}
    line = metrics[comparing.POLICY_CHECK]
    assert line.mode is MetricMode.OBSERVE
    assert line.threshold_range is not None
    assert line.threshold_range.min == 99
    assert line.compare is None
    assert line.template_ref is not None
    (template,) = [
        MetricTemplate.model_validate(b) for b in bodies if b["kind"] == "MetricTemplate"
    ]
    assert template.metadata.name == line.template_ref.name
    builtin = builtins.QUERIES[builtins.QuerySet.ENVOY][builtins.SUCCESS_RATE]
    assert (template.spec.query, template.spec.requests_query) == (
        builtin.query,
        builtin.requests,
    )
    # 2% errors is below the line: the dry run fails while the comparison has nothing to say.
    assert 100 * (1 - comparing.NOISY.canary_error_rate) < line.threshold_range.min
    assert comparing.POLICY_CHECK not in {m.name for m in _canary(SUBTLE).spec.analysis.metrics}
    ledger = verdicts.Ledger.of(bodies)
    assert ledger.threshold == 2
    assert ledger.ranges == {
        builtins.SUCCESS_RATE: ">= 95",
        builtins.DURATION: "<= 500",
        comparing.POLICY_CHECK: ">= 99",
    }


@pytest.mark.parametrize("chosen", [SUBTLE, NOISY])
def test_canary_validate_accepts_the_scenario_objects(
    chosen: scenario.Scenario, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump_all(scenario.complete(scenario.objects(chosen))))
    findings = validation.validate_paths([policy])
    assert not findings.failed, findings.lines()


@pytest.mark.parametrize("chosen", [SUBTLE, NOISY])
def test_outlier_detection_cannot_hide_a_few_percent_of_errors(chosen: scenario.Scenario) -> None:
    bodies = scenario.objects(chosen)
    (rule,) = [b for b in bodies if b["kind"] == "DestinationRule"]
    run_of = rule["spec"]["trafficPolicy"]["outlierDetection"]["consecutive5xxErrors"]
    worst = max(comparing.WORLDS[chosen].canary_error_rate, 0.03)
    # The odds that any of ~10,000 requests a host serves starts a run of 5xx long enough to
    # eject it: under one in a thousand.
    assert 10_000 * worst**run_of < 1e-3


def _records(
    *, canary_rate: float, stable_rate: float, ticks: int, rps: float = 200, weight: int = 10
) -> list[CheckResult]:
    """One request-success-rate record a tick (every 2 s), its comparison from the real test
    fed the expected counts of each side (whole numbers, as Prometheus's counters give)."""
    state = sequential.start("request-success-rate", revision="r1", comparison=Comparison())
    found: list[CheckResult] = []
    share = weight / 100
    for tick in range(1, ticks + 1):
        canary = rps * share * 2 * tick
        stable = rps * (1 - share) * 2 * tick
        counts = sequential.Counts(
            canary, round(canary * canary_rate), stable, round(stable * stable_rate)
        )
        outcome = sequential.observe(state, step=0, since=T0, counts=counts)
        state = outcome.state
        found.append(_record("request-success-rate", 100 * (1 - canary_rate), outcome.record, tick))
    return found


def _record(
    name: str,
    value: float,
    comparison: ComparisonRecord | None,
    tick: int,
    *,
    threshold: str = ">= 95; vs stable (alpha 0.01, minEffect 1.5)",
    counted: bool = True,
    failed: bool | None = None,
    step: int = 0,
    weight: int = 10,
) -> CheckResult:
    regression = comparison is not None and comparison.verdict is ComparisonVerdict.REGRESSION
    fails = regression if failed is None else failed
    return CheckResult(
        name=name,
        kind=MeasurementKind.VALUE,
        value=value,
        threshold=threshold,
        verdict=Verdict.FAIL if fails else Verdict.PASS,
        passed=not fails,
        counted=counted,
        comparison=comparison,
        revision="r1",
        step=step,
        weight=weight,
        at=T0 + timedelta(seconds=2 * tick),
    )


def _fed(records: list[CheckResult], threshold: int = 2) -> verdicts.Ledger:
    """A ledger fed as the demo feeds it: once a second, the status's latest and last 50."""
    ranges = {"request-success-rate": ">= 95", comparing.POLICY_CHECK: ">= 99"}
    ledger = verdicts.Ledger(threshold, ranges, {"request-success-rate": 1.5})
    for index, record in enumerate(records):
        status = CanaryStatus(checks=(record,), history=tuple(records[max(0, index - 49) : index]))
        ledger.add(status, t=2.0 * index)
    return ledger


def test_a_subtle_regression_is_told_with_its_estimates_and_the_requests_it_needed() -> None:
    records = _records(canary_rate=0.03, stable_rate=0.01, ticks=40)
    proven = [r for r in records if r.comparison and r.comparison.verdict == "regression"]
    assert proven, "the world's counts prove a 3x regression within 40 ticks"
    first = proven[0].comparison
    assert first is not None
    assert first.decided_after is not None
    status = CanaryStatus(checks=(proven[0],))
    assert verdicts.proven(status) is True
    lines = verdicts.closing(
        _fed(records[: records.index(proven[0]) + 1]), stable="v1", canary="v2"
    )
    assert lines[0] == (
        f"request-success-rate compared with stable: v2 proven worse after "
        f"{first.decided_after:,.0f} of its requests (regression e-value reached 1/alpha = 100): "
        "rolled back at once"
    )
    assert re.search(r"v2 3\.\d% \[\d+\.\d, \d+\.\d\] of [\d,]+ requests vs v1 1\.0% ", lines[1])
    assert "regression e-value" in lines[1]
    assert "regression after" in lines[1]
    # The line beside the comparison never failed: 97% is above 95.
    assert lines[2].startswith("  its >= 95 line never failed (v2's value 97.00..97.00 over ")
    narrowing = [line for line in lines if line.startswith("    t=")]
    assert 2 <= len(narrowing) <= verdicts.NARROWING_ROWS
    widths = [_width(line) for line in narrowing]
    assert widths[-1] < widths[0] / 2, "the canary's interval narrows as requests come"


def _width(line: str) -> float:
    low, high = re.search(r"v2 [\d.]+% \[([\d.]+), ([\d.]+)\]", line).groups()  # type: ignore[union-attr]
    return float(high) - float(low)


def test_a_noisy_world_proves_nothing_and_the_dry_run_says_where_it_would_have_rolled_back() -> (
    None
):
    compared = _records(canary_rate=0.02, stable_rate=0.02, ticks=20)
    line = [
        _record(
            comparing.POLICY_CHECK,
            98.0,
            None,
            tick,
            threshold=">= 99",
            counted=False,
            failed=tick >= 3,
            step=0 if tick < 10 else 1,
            weight=10 if tick < 10 else 25,
        )
        for tick in range(1, 21)
    ]
    merged = [r for pair in zip(compared, line, strict=True) for r in pair]
    ledger = _fed(merged)
    noisy = CanaryStatus(checks=tuple(merged[-2:]), history=tuple(merged))
    assert verdicts.proven(noisy) is False
    # A rollout that never compared proves nothing either way: not the noisy scenario's reason.
    assert verdicts.proven(CanaryStatus(checks=tuple(line))) is None
    lines = verdicts.closing(ledger, stable="v1", canary="v2")
    assert lines[0].startswith("request-success-rate compared with stable: no regression proven")
    assert lines[-1] == (
        "threshold-policy (>= 99) is a dry run: it failed 18 of 20 judged ticks; counted, it "
        "would have rolled v2 back at step 1 (weight 10%, t=14s), where its 98.00 brought the "
        "rollout's failed checks to the threshold, 2"
    )
    assert ledger.dry_run("v2") == (lines[-1],)


def test_an_equivalence_shown_is_told_with_the_min_effect_it_was_shown_within() -> None:
    records = _records(canary_rate=0.02, stable_rate=0.02, ticks=60, weight=50)
    shown = [r for r in records if r.comparison and r.comparison.verdict == "equivalent"]
    assert shown, "a large A/A rollout shows equivalence"
    first = shown[0].comparison
    assert first is not None
    assert first.decided_after is not None
    (said, *_) = verdicts.closing(_fed(records), stable="v1", canary="v2")
    assert said == (
        "request-success-rate compared with stable: v2 shown less than 1.5x stable's rate after "
        f"{first.decided_after:,.0f} of its requests (equivalence e-value reached 1/alpha = "
        "100): no regression"
    )
    assert verdicts.proven(CanaryStatus(checks=(records[-1],))) is False


def test_a_dry_run_counts_beside_the_counted_failures_as_the_engine_would() -> None:
    counted = _record("request-duration", 900.0, None, 1, threshold="<= 500", failed=True)
    dry = [
        _record(
            "threshold-policy",
            98.0,
            None,
            tick,
            threshold=">= 99",
            counted=False,
            failed=tick == 5,
            step=1,
            weight=25,
        )
        for tick in range(2, 8)
    ]
    # One counted failure before: the dry run's first failure is the rollout's second.
    assert (
        _fed([counted, *dry])
        .dry_run("v2")[0]
        .endswith(
            "at step 2 (weight 25%, t=8s), where its 98.00 brought the rollout's failed "
            "checks to the threshold, 2"
        )
    )
    assert _fed(dry).dry_run("v2") == (
        "threshold-policy (>= 99) is a dry run: it failed 1 of 6 judged ticks; counted, it would "
        "not have rolled v2 back",
    )
    assert _fed([counted]).dry_run("v2") == ()


def test_the_live_view_shows_the_estimates_the_evidence_and_the_dry_run() -> None:
    records = _records(canary_rate=0.03, stable_rate=0.01, ticks=5)
    dry = _record("threshold-policy", 97.0, None, 5, threshold=">= 99", counted=False, failed=True)
    ledger = _fed([*records, dry])
    status = CanaryStatus(checks=(records[-1], dry))
    sample = timeline.Sample(
        t=10.0,
        phase="Progressing",
        message="",
        canary_weight=10,
        step=0,
        failed_checks=0,
        checks=tuple(
            timeline.CheckView(
                c.name,
                str(c.verdict),
                c.value,
                c.message,
                at=c.at.isoformat(),
                counted=c.counted,
                comparison=None
                if c.comparison is None
                else timeline.ComparisonView.of(c.comparison),
            )
            for c in status.checks
        ),
        dry_run=ledger.dry_run("v2"),
    )
    console = Console(width=200, record=True)
    console.print(view.render(sample, scenario="subtle", elapsed_limit=180))
    text = console.export_text()
    assert re.search(
        r"request-success-rate vs stable v2 3\.\d% \[[\d.]+, [\d.]+\] of 200 requests", text
    )
    assert "regression e-value" in text
    assert " of 100 " in text
    assert "fail (dry run)" in text
    assert "threshold-policy (>= 99) is a dry run: it failed 1 of 1 judged ticks" in text
    # The sample's JSON (the report) keeps the comparison.
    assert sample.to_json()["checks"][0]["comparison"]["threshold"] == 100.0


@pytest.mark.parametrize(
    ("chosen", "given", "wanted"),
    [
        ("subtle", [], (0.03, 0.01, 200.0)),
        ("noisy", [], (0.02, 0.02, 200.0)),
        ("bad", [], (0.2, 0.0, 40.0)),
        ("subtle", ["--error-rate", "0.05", "--rate", "150"], (0.05, 0.01, 150.0)),
    ],
)
def test_subtle_and_noisy_bring_their_world_and_load_unless_told_otherwise(
    chosen: str,
    given: list[str],
    wanted: tuple[float, float, float],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    seen: list[run.DemoOptions] = []

    def fake(options: run.DemoOptions, console: Any) -> run.Outcome:
        seen.append(options)
        expected = scenario.expected(options.scenario, CanaryStatus())
        return run.Outcome(expected=expected, status=CanaryStatus(), seconds=0.0)

    monkeypatch.setattr(run, "run", fake)
    result = CliRunner().invoke(
        main,
        ["demo", "--scenario", chosen, "--report-dir", str(tmp_path), *given],
    )
    (options,) = seen
    assert (options.error_rate, options.stable_error_rate, options.rate) == wanted
    # An empty status is not what either scenario ends in: the demo exits 1.
    assert result.exit_code == 1, result.output


def test_the_picture_draws_each_side_s_estimate_and_where_the_test_decided() -> None:
    records = _records(canary_rate=0.03, stable_rate=0.01, ticks=30)
    samples = [
        timeline.Sample(
            t=2.0 * index,
            phase="Progressing",
            message="",
            canary_weight=10,
            step=0,
            failed_checks=0,
            checks=(
                timeline.CheckView(
                    r.name,
                    str(r.verdict),
                    r.value,
                    r.message,
                    comparison=None
                    if r.comparison is None
                    else timeline.ComparisonView.of(r.comparison),
                ),
            ),
        )
        for index, r in enumerate(records)
    ]
    picture = report.svg(samples, title="canary demo (subtle)")
    assert "request-success-rate compared with stable" in picture
    # A band for each side, and the mark of the verdict.
    assert picture.count("<polygon") == 2
    assert "regression (e-value" in picture
    assert "compared with stable" not in report.svg(
        [
            timeline.Sample(
                t=0, phase="Progressing", message="", canary_weight=0, step=0, failed_checks=0
            )
        ],
        title="good",
    )


def test_the_command_offers_every_scenario() -> None:
    (option,) = [p for p in demo.params if p.name == "scenario"]
    assert set(option.type.choices) == {str(s) for s in scenario.Scenario}  # type: ignore[attr-defined]
