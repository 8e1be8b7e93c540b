"""How the commands say what a Canary is doing: one wording for status, wait, explain and the
commands that refuse, so a person reads the same words wherever they look."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from canary.api.commands import CommandResult
from canary.api.people import ApprovalRecord
from canary.api.status import CanaryStatus, CheckResult, Phase
from canary.engine import revision
from canary.ports import StoredCanary

if TYPE_CHECKING:
    # Only for its type: the commands import this module, and `canary --help` must not load
    # the Kubernetes client.
    from canary.api.status import Condition
    from canary.cluster.client import Client, Event

IN_PROGRESS = frozenset(
    {Phase.INITIALIZING, Phase.PROGRESSING, Phase.PROMOTING, Phase.ROLLING_BACK}
)
ENDED = frozenset({Phase.SUCCEEDED, Phase.FAILED})


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a command ends: its exit code and what it says (on stderr when `err`)."""

    code: int
    message: str
    err: bool = False


def subset(stored: StoredCanary) -> str:
    """The subset the rollout in the status is about (the spec's before the controller saw it)."""
    if stored.status.canary_subset:
        return stored.status.canary_subset
    return stored.spec.canary.subset if stored.spec is not None else "?"


def phase(status: CanaryStatus) -> str:
    return str(status.phase) if status.phase is not None else "NotStarted"


def shown_phase(stored: StoredCanary) -> str:
    """The phase to show, which is no phase at all when the status cannot be read."""
    return "StatusUnreadable" if stored.status_error else phase(stored.status)


def step(stored: StoredCanary) -> str:
    """The step as `n/N`; 0/N before the first, N/N once past the last."""
    if stored.spec is None:
        return "-"
    steps = len(stored.spec.analysis.weights)
    status = stored.status
    if status.phase is None or status.phase is Phase.INITIALIZING:
        return f"0/{steps}"
    return f"{min(status.step + 1, steps)}/{steps}"


def waiting(status: CanaryStatus) -> str:
    """What the rollout waits on, else its message."""
    if status.waiting_for:
        return f"waiting for {status.waiting_for}"
    return status.message


# The engine's messages about one step start "step n/N: " or "step n: " (phases.py).
_STEP_PREFIX = re.compile(r"step (\d+)(?:/(\d+))?: ")


def step_message(stored: StoredCanary) -> tuple[str, bool]:
    """The status message without what a line that shows `step(stored)` and the gate already
    says: a leading "step n/N: " about the step shown is cut (True then), and a message that
    only repeats `waiting_for` is dropped."""
    status = stored.status
    message = status.message
    if status.waiting_for and status.waiting_for in message:
        return "", False
    found = _STEP_PREFIX.match(message)
    if found is None or stored.spec is None:
        return message, False
    shown = f"{found.group(1)}/{found.group(2) or len(stored.spec.analysis.weights)}"
    if shown != step(stored):
        return message, False
    return message[found.end() :], True


def condition(status: CanaryStatus, type: str) -> Condition | None:
    return next((c for c in status.conditions if c.type == type), None)


def approval(record: ApprovalRecord) -> str:
    """One approval gate of a rollout, asked and perhaps decided, on one line."""
    asked = f"{record.gate}: asked {clock(record.requested_at)}"
    if record.decision is None:
        return f"{asked}, waiting"
    if record.decided_at is None or not record.by:
        return f"{asked}, {record.decision}"
    return f"{asked}, {record.decision} by {record.by} via {record.via} {clock(record.decided_at)}"


def gate(status: CanaryStatus) -> str:
    """The gate that holds the rollout, with since when (the Waiting condition's time); "" when
    none does."""
    if not status.waiting_for:
        return ""
    held = condition(status, "Waiting")
    if held is None or held.status != "True":
        return status.waiting_for
    return f"{status.waiting_for} (since {clock(held.last_transition_time)})"


def unseen_generation(stored: StoredCanary) -> str:
    """Says that the controller has not acted on the Canary's latest generation (a spec change,
    a pause) yet; "" when it has, or when the status does not say: no status yet (the phase
    says NotStarted) or one from a controller older than observedGeneration."""
    generation, observed = stored.generation, stored.status.observed_generation
    if observed == 0 or generation <= observed:
        return ""
    return f"the controller has not seen generation {generation} yet (it acted on {observed})"


def promotion(status: CanaryStatus) -> str:
    """What `canary promote` asked that the controller has not done yet; "" when nothing."""
    if status.promote_requested == "force":
        return "promotion asked, at once (--force)"
    if status.promote_requested == "checks":
        return "promotion asked, once this step's checks pass"
    return ""


def template(stored: StoredCanary) -> str:
    """The canary Deployment's pod template revision the rollout judges; "" when none."""
    revision = stored.status.target_revision
    if not revision:
        return ""
    spec = stored.spec
    ref = spec.canary.target_ref if spec is not None else None
    return f"pod template {revision}" + (f" of Deployment {ref.name}" if ref else "")


def retired(stored: StoredCanary) -> str:
    """What became of the Deployment the last promotion retired; "" when none."""
    status = stored.status
    if not status.retired_target:
        return ""
    name = f"Deployment {status.retired_target}"
    if status.scaled_down_at is not None:
        return f"{name}, scaled to zero at {clock(status.scaled_down_at)}"
    after = stored.spec.scale_down_after if stored.spec is not None else None
    if after is None:
        return f"{name}, left as it is (no scaleDownAfter)"
    return f"{name}, to be scaled to zero once the promotion has held {after}"


_ROLLING_OUT = re.compile(r"rolling out (\S+) in place of ([^\s(]+)")
_STARTS = frozenset({"RolloutStarted", "RolloutRestarted", "RolloutRetried"})


def replaced(stored: StoredCanary, events: Sequence[Event]) -> str:
    """The subset the rollout in the status started from; "" when nothing says.

    Until a promotion the status's stable subset is it; a promotion makes the canary the stable
    subset and the status keeps no trace of the one before, so then it is read from the Event
    that started the rollout (the latest, since every start writes one): "rolling out X in
    place of Y".
    """
    status = stored.status
    if status.stable_subset and status.stable_subset != status.canary_subset:
        return status.stable_subset
    for event in reversed(events):
        found = _ROLLING_OUT.match(event.message) if event.reason in _STARTS else None
        if found is not None:
            return found.group(2) if found.group(1) == status.canary_subset else ""
    return ""


def expected_revision(client: Client, stored: StoredCanary) -> str:
    """The revision the controller will judge for this spec and the target's pod template now,
    computed as the controller does (observe.py); "" when the spec does not parse."""
    spec = stored.spec
    if spec is None:
        return ""
    target = ""
    if spec.canary.target_ref is not None:
        state = client.deployment(stored.key.namespace, spec.canary.target_ref.name)
        target = "" if state is None else state.template_revision
    return revision.of(spec, target_revision=target)


def is_current(stored: StoredCanary, expected: str) -> bool:
    """Whether the status is about this release (and not an earlier one that ended)."""
    return bool(expected) and stored.status.revision == expected


def check(result: CheckResult) -> str:
    """One judged check on a line: name, verdict, value (or why none), threshold."""
    if result.threshold == "passed":
        # A webhook gate: its query is the URL, its answer yes or no.
        detail = f"webhook {result.query}" if result.query else "webhook"
    elif result.value is not None:
        detail = f"{result.value:g}"
        if result.threshold:
            detail += f" (wanted {result.threshold})"
        if result.samples is not None:
            detail += f" from {result.samples} requests"
    else:
        detail = str(result.kind)
        if result.threshold:
            detail += f" (wanted {result.threshold})"
    mode = "" if result.counted else " [observe only]"
    line = f"{result.name}: {result.verdict} {detail}{mode}"
    return f"{line}: {result.message}" if result.message else line


def command(result: CommandResult | None) -> str:
    if result is None:
        return "none"
    outcome = "accepted" if result.accepted else "not accepted"
    text = f"{result.verb} {outcome} at {clock(result.at)}"
    return f"{text}: {result.message}" if result.message else text


def clock(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def problems(stored: StoredCanary) -> str:
    """Why a Canary cannot be acted on: its parse problems, else the Invalid message."""
    if stored.problems:
        return "; ".join(stored.problems)
    return stored.status.message or "see its InvalidSpec condition"
