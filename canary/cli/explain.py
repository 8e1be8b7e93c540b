"""`canary explain NAME`: the decision trail of the current release, for the person who must
know why a rollout failed (or is stuck) without reading the controller's log.

Everything comes from the object itself and its Events: the status keeps every judged
measurement (bounded) with its resolved query, value, threshold and verdict, each experiment,
the conditions and the last command, which is what makes this possible.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from canary.cli.connection import Connection, connected
from canary.cli.root import main

if TYPE_CHECKING:
    from canary.api.comparison import ComparisonRecord
    from canary.api.status import ChaosResult, CheckResult
    from canary.api.traces import SpanEvidence
    from canary.cluster.client import Event
    from canary.ports import StoredCanary


@main.command()
@click.argument("name")
@connected()
def explain(*, connection: Connection, name: str) -> None:
    """Why NAME's rollout is where it is: each step with each measurement (query, value,
    threshold, verdict), each experiment, the conditions, the last command and the Events.

    Exits 0, or 1 when the Canary does not exist.
    """
    from canary.cli import describe
    from canary.cli.connection import fail, reported

    with reported(connection):
        client, key = connection.client, connection.key(name)
        stored = client.stored(key)
        if stored is None:
            fail(f"Canary {key} not found ({client.where})", 1)
        expected = describe.expected_revision(client, stored)
        events = client.events(key)
    for line in trail(stored, expected, events):
        click.echo(line)


def trail(stored: StoredCanary, expected: str, events: Sequence[Event]) -> list[str]:
    """The whole explanation, line by line."""
    from canary.cli import describe

    status = stored.status
    lines = [
        f"Canary {stored.key}: {describe.shown_phase(stored)}, revision "
        f"{status.revision or '-'} (generation {stored.generation})"
    ]
    if stored.status_error:
        lines.append(f"  the status cannot be read: {stored.status_error}")
    if stored.spec is None:
        lines.append(f"  the spec does not parse: {describe.problems(stored)}")
    if status.message and not (status.waiting_for and status.waiting_for in status.message):
        lines.append(f"  {status.message}")
    if status.waiting_for.startswith("approval for"):
        lines.append(
            f"  waiting for {describe.gate(status)}: canary approve|reject {stored.key.name} "
            f"-n {stored.key.namespace}, or the buttons in chat"
        )
    elif status.waiting_for:
        lines.append(f"  waiting for {describe.gate(status)} to say yes")
    unseen = describe.unseen_generation(stored)
    if unseen:
        lines.append(f"  {unseen}")
    if describe.template(stored):
        lines.append(f"  judging {describe.template(stored)}")
    if status.promote_requested:
        lines.append(f"  {describe.promotion(status)}")
    if describe.retired(stored):
        lines.append(f"  retired {describe.retired(stored)}")
    if expected and status.revision and expected != status.revision:
        lines.append(
            f"  the spec or the target changed since: revision {expected} starts at the "
            "controller's next tick; what follows is about the earlier one"
        )
    lines += ["", *_steps(stored, events), "", *_experiments(status.chaos), ""]
    if status.approvals:
        lines += ["Approvals:", *(f"  {describe.approval(a)}" for a in status.approvals), ""]
    lines.append("Conditions:")
    for condition in status.conditions or ():
        text = f"  {condition.type}={condition.status} {condition.reason}"
        text += f" ({describe.clock(condition.last_transition_time)})"
        lines.append(f"{text}: {condition.message}" if condition.message else text)
    if not status.conditions:
        lines.append("  none")
    lines += ["", f"Last command: {describe.command(status.last_command)}", "", "Events:"]
    for event in events:
        count = f" (x{event.count})" if event.count > 1 else ""
        lines.append(
            f"  {describe.clock(event.time)} {event.type:<7} {event.reason}{count}: {event.message}"
        )
    if not events:
        lines.append("  none")
    return lines


def _steps(stored: StoredCanary, events: Sequence[Event]) -> list[str]:
    from canary.api.status import HISTORY_LIMIT
    from canary.cli import describe

    status = stored.status
    weights = stored.spec.analysis.weights if stored.spec is not None else ()
    records = [record for record in status.history if record.revision == status.revision]
    older = len(status.history) - len(records)
    head = f"Steps of {status.canary_subset or '-'}"
    replaced = describe.replaced(stored, events)
    if replaced:
        head += f" in place of {replaced}"
    elif status.canary_subset and status.stable_subset == status.canary_subset:
        # Promoted, and no Event left says what it replaced (Events expire).
        head += ", promoted"
    else:
        head += " in place of -"
    lines = [f"{head}, revision {status.revision or '-'}:"]
    if len(status.history) >= HISTORY_LIMIT:
        lines.append(
            f"  (the status keeps the last {HISTORY_LIMIT} measurements; older ones dropped)"
        )
    groups: dict[tuple[int, int], list[CheckResult]] = {}
    for record in records:
        groups.setdefault((record.step, record.weight), []).append(record)
    for (step, weight), judged in groups.items():
        if weight == 0:
            lines.append("  before the first step (weight 0%):")
        else:
            lines.append(f"  step {step + 1}/{len(weights) or '?'}, weight {weight}%:")
        lines += [line for record in judged for line in _measurement(record)]
    reached = max((step for step, _ in groups), default=-1)
    reached = max(reached, status.step if status.phase is not None else -1)
    for index in range(len(weights)):
        if (index, weights[index]) in groups:
            continue
        where = "no measurement" if index <= reached else "not reached"
        lines.append(f"  step {index + 1}/{len(weights)}, weight {weights[index]}%: {where}")
    if older:
        lines.append(f"  ({older} measurement(s) of earlier revisions not shown)")
    return lines


def _measurement(record: CheckResult) -> list[str]:
    from canary.cli import describe

    lines = [f"    {describe.clock(record.at)}  {describe.check(record)}"]
    if record.query and record.threshold != "passed":
        lines.append(f"      query: {record.query}")
    if record.spans is not None:
        lines.append(f"      spans: {_spans(record.spans)}")
        if record.spans.examples:
            lines.append(f"      example traces: {', '.join(record.spans.examples)}")
    if record.comparison is not None:
        lines += _comparison(record.comparison)
    return lines


def _comparison(record: ComparisonRecord) -> list[str]:
    from canary.engine import comparing

    canary, stable = record.canary, record.stable
    lines = [
        f"      vs stable: {comparing.describe(record)}",
        f"      evidence of a regression {record.regression_evidence:.3g}, of equivalence "
        f"{record.equivalence_evidence:.3g} ({record.threshold:g} proves either); counted "
        f"canary {canary.bad:,.0f} bad of {canary.requests:,.0f}, stable {stable.bad:,.0f} "
        f"bad of {stable.requests:,.0f}",
    ]
    if record.message:
        lines.append(f"      reading refused: {record.message}")
    return lines


def _spans(evidence: SpanEvidence) -> str:
    sample = " (a sample: the newest traces up to the template's limit)" if evidence.sampled else ""
    text = f"{evidence.spans} of {evidence.operation!r} judged{sample}"
    if evidence.stable_value is not None and evidence.canary_value is not None:
        text += (
            f"; canary {evidence.canary_value:g} vs stable {evidence.stable_value:g} "
            f"({evidence.stable_spans} stable spans)"
        )
    return text


def _experiments(results: Sequence[ChaosResult]) -> list[str]:
    from canary.cli import describe

    lines = ["Experiments:"]
    for result in results:
        lines.append(
            f"  {result.name} at {result.weight}% on {result.subset}: {result.phase} "
            f"({describe.clock(result.started_at)} to {describe.clock(result.ended_at)})"
        )
        lines.append(f"    injected {result.fault}; expected {result.expect}")
        seen = [
            f"{label} {value:g}"
            for label, value in (
                ("requests", result.requests),
                ("5xx", result.errors),
                ("ejections", result.ejections),
                ("overflow", result.overflow),
            )
            if value is not None
        ]
        if result.success_rate is not None:
            seen.append(f"callers' success rate {result.success_rate:g}%")
        if seen:
            lines.append(f"    observed {', '.join(seen)}")
        if result.message:
            lines.append(f"    {result.message}")
    if not results:
        lines.append("  none")
    return lines
