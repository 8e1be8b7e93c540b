"""The live view: one table that redraws each second while the rollout runs.

With a trace check, the versions' table has a column for the judged operation's spans (e.g.
`POST /checkout p99 ms`, and how many spans), and the trace check's row names the operation and
its slowest traces. A check that compares with stable gets a line of its own below the table:
each side's rate with its confidence sequence and the regression e-value against 1/alpha, so the
estimate is seen narrowing tick by tick; an observe-mode check's verdicts are marked as a dry
run, with a line saying what it would have done had it counted.
"""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from canary.demo import verdicts
from canary.demo.timeline import CheckView, Sample

_PHASE_STYLE = {
    "Succeeded": "bold green",
    "Failed": "bold red",
    "RollingBack": "red",
    "Promoting": "green",
    "Invalid": "bold red",
}


def render(latest: Sample, *, scenario: str, elapsed_limit: float, decide: str = "") -> Group:
    header = Text.assemble(
        ("canary demo ", "bold"),
        (f"({scenario}) ", "dim"),
        (latest.phase, _PHASE_STYLE.get(latest.phase, "yellow")),
        f"  t={latest.t:5.1f}s / {elapsed_limit:.0f}s",
    )
    weights = Table.grid(padding=(0, 2))
    weights.add_row(
        "weight",
        _bar(100 - latest.canary_weight, latest.stable),
        _bar(latest.canary_weight, latest.canary),
    )
    versions = Table(box=None, padding=(0, 2))
    versions.add_column("version")
    versions.add_column("success rate", justify="right")
    versions.add_column("p99", justify="right")
    if latest.span_operation:
        versions.add_column(f"{latest.span_operation} {latest.span_label}", justify="right")
    for version in (latest.stable, latest.canary):
        row = [
            version,
            _number(latest.success_rate.get(version), "%", 2),
            _number(latest.p99_ms.get(version), " ms", 0),
        ]
        if latest.span_operation:
            count = latest.span_count.get(version)
            row.append(
                f"{_number(latest.span_value.get(version), '', 0)}"
                f"  ({'—' if count is None else count} spans)"
            )
        versions.add_row(*row)
    checks = Table(box=None, padding=(0, 2))
    checks.add_column("check")
    checks.add_column("value", justify="right")
    checks.add_column("verdict")
    checks.add_column("")
    for check in latest.checks:
        style = {"pass": "green", "fail": "red"}.get(check.verdict, "yellow")
        # A dry run's failure is shown, never in red: it does not count.
        verdict = check.verdict if check.counted else f"{check.verdict} (dry run)"
        checks.add_row(
            check.name,
            _number(check.value, "", 2),
            Text(verdict, style=style if check.counted else "dim"),
            Text(_evidence(check), style="dim"),
        )
    # Each comparing check's test as of its latest tick: the estimates narrowing, the evidence.
    compared = [
        Text.assemble(
            (f"{check.name} vs stable ", "bold"),
            verdicts.line(check.comparison, stable=latest.stable, canary=latest.canary),
        )
        for check in latest.checks
        if check.comparison is not None
    ]
    callers = Text.assemble(
        ("all callers ", "bold"),
        _number(latest.callers_success_rate, "% success", 2),
        f"   {latest.canary} hosts ejected ",
        _number(latest.ejected, "", 0),
    )
    experiments = Table(box=None, padding=(0, 2))
    experiments.add_column("chaos")
    experiments.add_column("fault")
    experiments.add_column("phase")
    experiments.add_column("observed")
    for chaos in latest.chaos:
        style = {"Passed": "green", "Failed": "red"}.get(chaos.phase, "yellow")
        experiments.add_row(
            chaos.name, chaos.fault, Text(chaos.phase, style=style), Text(chaos.message)
        )
    footer = Text(
        f"step {latest.step + 1}  failed checks {latest.failed_checks}  {latest.message}",
        style="dim",
    )
    parts: list[Text | Table] = [header, weights, versions, callers]
    if latest.gateway:
        parts.append(_gateway(latest.gateway))
    parts.append(checks)
    parts.extend(compared)
    parts.extend(Text(line, style="dim") for line in latest.dry_run)
    if latest.chaos:
        parts.append(experiments)
    parts.append(footer)
    if latest.waiting_for:
        parts.append(Text(f"waiting for {latest.waiting_for}", style="bold yellow"))
        if decide:
            parts.append(Text(decide, style="bold"))
    return Group(*parts)


def _gateway(stats: dict[str, int]) -> Text:
    """The ingress gateway's counters: the users' requests really went through it."""
    return Text.assemble(
        ("ingress gateway ", "bold"),
        " ".join(f"{name} {value}" for name, value in stats.items()),
    )


def _evidence(check: CheckView) -> str:
    """A trace check's operation, spans judged and slowest traces; nothing for other checks."""
    if not check.operation:
        return ""
    spans = "" if check.spans is None else f" {check.spans} spans"
    # One trace ID fits a terminal's row; the closing lines and the report list them all.
    more = f" (+{len(check.examples) - 1})" if len(check.examples) > 1 else ""
    worst = f"  worst: {check.examples[0]}{more}" if check.examples else ""
    return f"{check.operation}{spans}{worst}"


def _bar(weight: int, label: str) -> Text:
    filled = weight // 5
    return Text.assemble(
        (f"{label} {weight:3d}% ", "bold"), ("█" * filled, "cyan"), ("·" * (20 - filled), "dim")
    )


def _number(value: float | None, unit: str, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}{unit}"
