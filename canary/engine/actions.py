"""What a Decision asks the controller to do; the controller owns how."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from canary.api.spec import Webhook
from canary.api.status import CanaryStatus


@dataclass(frozen=True, slots=True)
class SetWeights:
    """Make the managed route send `canary_weight` to the canary subset and the rest to stable."""

    stable_subset: str
    canary_subset: str
    canary_weight: int

    @property
    def stable_weight(self) -> int:
        return 100 - self.canary_weight


@dataclass(frozen=True, slots=True)
class Notify:
    """Tell people: a Kubernetes Event, a log line, and a reply in the rollout's chat thread."""

    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True, slots=True)
class CallWebhook:
    """Call a webhook that gates nothing: a post-rollout hook when the rollout ends, or an
    event hook with one of the rollout's events. Its answer is logged, never judged."""

    hook: Webhook
    # The phase sent in the payload (the rollout's phase as this decision leaves it).
    phase: str
    # For an event hook: the event it is told of.
    event: Notify | None = None


@dataclass(frozen=True, slots=True)
class ScaleToZero:
    """Scale the Deployment of a subset that a promotion retired to zero replicas."""

    target: str


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault for the canary's server side, in the router's terms (seconds, percentages)."""

    abort_status: int | None = None
    abort_percent: float = 0.0
    delay_seconds: float | None = None
    delay_percent: float = 0.0

    def describe(self) -> str:
        parts = []
        if self.abort_status is not None:
            parts.append(f"abort {self.abort_status} to {self.abort_percent:g}%")
        if self.delay_seconds is not None:
            parts.append(f"delay {self.delay_seconds:g}s to {self.delay_percent:g}%")
        return ", ".join(parts) or "no fault"


@dataclass(frozen=True, slots=True)
class InjectFault:
    """Make the canary subset's own proxies answer with `fault` until `expires_at`.

    The expiry travels with the fault (in the object or file that holds it), so a controller that
    starts after it passed removes the fault without knowing which Canary put it there.
    """

    experiment: str
    subset: str
    fault: Fault
    expires_at: datetime
    # How many of the subset's workloads get it, the first by name; None: all of them.
    pods: int | None = None


@dataclass(frozen=True, slots=True)
class ClearFaults:
    """Remove every fault this controller injected for the Canary's service."""

    why: str


@dataclass(frozen=True, slots=True)
class Finalize:
    """The deleted Canary has been dealt with (its faults gone, its route as onDelete says):
    let the Canary go. Only ever the last action of a decision, and only done when every
    action before it succeeded."""

    message: str


Action = SetWeights | Notify | CallWebhook | InjectFault | ClearFaults | ScaleToZero | Finalize


# Not frozen, unlike the actions: one is built (sometimes two) on every tick of every Canary, and
# a frozen dataclass pays an object.__setattr__ per field. Nothing assigns to one once made.
@dataclass(slots=True)
class Decision:
    status: CanaryStatus
    actions: tuple[Action, ...] = ()
    # Ask for the next tick sooner than the check interval, e.g. while weights propagate.
    wake_after: float | None = None
