"""How the commands say what a Canary is doing: one wording for status, wait, explain and the
commands that refuse, so a person reads the same words wherever they look."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from canary.api.commands import CommandResult
from canary.api.status import CanaryStatus, CheckResult, Phase
from canary.engine import revision
from canary.ports import StoredCanary

if TYPE_CHECKING:
    # Only for its type: the commands import this module, and `canary --help` must not load
    # the Kubernetes client.
    from canary.cluster.client import Client

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
