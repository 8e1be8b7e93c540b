"""What a Decision asks the controller to do; the controller owns how."""

from __future__ import annotations

from dataclasses import dataclass

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
    """Tell people: a Kubernetes Event, a log line, and later a chat message."""

    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True, slots=True)
class CallWebhook:
    """Fire a post-rollout webhook once, when the rollout ends."""

    hook: Webhook
    outcome: str


Action = SetWeights | Notify | CallWebhook


# Not frozen, unlike the actions: one is built (sometimes two) on every tick of every Canary, and
# a frozen dataclass pays an object.__setattr__ per field. Nothing assigns to one once made.
@dataclass(slots=True)
class Decision:
    status: CanaryStatus
    actions: tuple[Action, ...] = ()
    # Ask for the next tick sooner than the check interval, e.g. while weights propagate.
    wake_after: float | None = None
