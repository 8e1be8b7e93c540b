"""The Protocols the controller loop needs, each sized for its caller, with fakes beside them.

An adapter implements one of these and translates its library's errors into canary.errors, so
the loop handles an API server, a local state directory, Prometheus or a test fake the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from canary.api.chaos import ChaosRequest
from canary.api.commands import Command
from canary.api.metric_template import MetricTemplate
from canary.api.secrets import SecretKeyRef
from canary.api.spec import CanarySpec, TargetRef
from canary.api.status import CanaryStatus
from canary.engine.actions import InjectFault, Notify, SetWeights
from canary.engine.observation import ActiveFault, GateResult, Measurement, TargetState, Traffic
from canary.errors import InvalidSpec


@dataclass(frozen=True, slots=True, order=True)
class CanaryKey:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class SubsetRef:
    """A subset the managed route sends traffic to; with labels, the router makes sure the
    DestinationRule defines it, without them it must already be there."""

    name: str
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class RouteRef:
    """The one http route of one VirtualService that a Canary manages."""

    namespace: str
    virtual_service: str
    host: str
    # The http route's name; None means the first route whose destinations all point at host.
    route: str | None
    destination_rule: str | None = None
    # Stable first, then canary (observe.route_of builds them so): a router that must never
    # touch the stable subset, as fault injection must not, reads it from here.
    subsets: tuple[SubsetRef, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredCanary:
    key: CanaryKey
    # None when the stored object does not validate; `problems` then says why.
    spec: CanarySpec | None
    status: CanaryStatus
    generation: int = 0
    problems: tuple[str, ...] = ()
    # A one-off experiment asked for in the Canary's annotations (`canary chaos`).
    chaos_request: ChaosRequest | None = None
    # A command asked for in the Canary's annotations (`canary promote|abort|retry`).
    command: Command | None = None


class Clock(Protocol):
    def now(self) -> datetime: ...


class Store(Protocol):
    """Where Canaries, their templates and their status live: a cluster, or a state directory."""

    def canaries(self) -> Sequence[StoredCanary]: ...

    def canary(self, key: CanaryKey) -> StoredCanary | None: ...

    def metric_template(self, namespace: str, name: str) -> MetricTemplate | None: ...

    def write_status(self, key: CanaryKey, status: CanaryStatus) -> None: ...


class Workloads(Protocol):
    """The Deployments a Canary names: how ready they are, and scaling a retired one down."""

    def target(self, namespace: str, target: TargetRef) -> TargetState:
        """Raises InvalidSpec when the Deployment does not exist."""
        ...

    def scale_to_zero(self, namespace: str, name: str) -> None: ...


class Secrets(Protocol):
    def value(self, namespace: str, ref: SecretKeyRef) -> str:
        """The Secret key's value as text. InvalidSpec when the Secret or the key is missing
        (the user must fix it), Unavailable when it cannot be read now."""
        ...


class Router(Protocol):
    """Reads and sets the split of a managed route; says when the data plane serves it.

    It also puts faults on the server side of the canary subset's workloads and takes them off
    again: a fault on the client-side route would be answered by the caller's own proxy and
    never reach its outlier detection.
    """

    def read(self, ref: RouteRef) -> Traffic: ...

    def set_weights(self, ref: RouteRef, weights: SetWeights) -> None: ...

    def inject(self, ref: RouteRef, fault: InjectFault) -> None:
        """Put `fault` in front of the `fault.subset` workloads of ref's host, replacing any
        fault already there; only a subset of ref's DestinationRule can be targeted."""
        ...

    def clear_faults(self, ref: RouteRef) -> None:
        """Remove every fault injected for ref's host; a no-op when there is none."""
        ...

    def faults(self, ref: RouteRef) -> tuple[ActiveFault, ...]:
        """The faults injected for ref's host, as they stand now."""
        ...

    def sweep_faults(self, now: datetime) -> tuple[str, ...]:
        """Remove every injected fault whose expiry has passed, whichever Canary put it there
        (it may be gone); says what was removed. A starting controller runs this first."""
        ...


class MetricsProvider(Protocol):
    """One metrics backend (Prometheus now): a rendered query in, a Measurement out, never an
    exception (a backend down is a Measurement of kind error)."""

    def measure(self, query: str, *, requests_query: str | None = None) -> Measurement: ...


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One webhook call, ready to send: the payload built, the headers' Secrets read."""

    url: str
    payload: Mapping[str, Any]
    timeout: float
    retries: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)


class WebhookCaller(Protocol):
    """Webhooks as gates: any 2xx is yes; no answer, a non-2xx, or a redirect to another host
    is no, with why. Never raises."""

    def call(self, request: WebhookRequest) -> GateResult: ...


class Notifier(Protocol):
    def notify(self, key: CanaryKey, notice: Notify) -> None: ...


# Fakes for unit tests of the loop; they change together with the Protocols above.


@dataclass
class FakeClock:
    current: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@dataclass
class FakeRouter:
    weights: dict[RouteRef, dict[str, int]] = field(default_factory=dict)
    applied: bool = True
    writes: list[tuple[RouteRef, SetWeights]] = field(default_factory=list)
    faults_in_place: dict[RouteRef, ActiveFault] = field(default_factory=dict)
    fault_writes: list[tuple[RouteRef, InjectFault | None]] = field(default_factory=list)

    def read(self, ref: RouteRef) -> Traffic:
        return Traffic(weights=dict(self.weights.get(ref, {})), applied=self.applied)

    def inject(self, ref: RouteRef, fault: InjectFault) -> None:
        self.fault_writes.append((ref, fault))
        self.faults_in_place[ref] = ActiveFault(fault.experiment, fault.subset, fault.expires_at)

    def clear_faults(self, ref: RouteRef) -> None:
        self.fault_writes.append((ref, None))
        self.faults_in_place.pop(ref, None)

    def faults(self, ref: RouteRef) -> tuple[ActiveFault, ...]:
        found = self.faults_in_place.get(ref)
        return () if found is None else (found,)

    def sweep_faults(self, now: datetime) -> tuple[str, ...]:
        expired = [
            ref
            for ref, fault in self.faults_in_place.items()
            if fault.expires_at is None or fault.expires_at <= now
        ]
        for ref in expired:
            self.clear_faults(ref)
        return tuple(f"{ref.namespace}/{ref.host}" for ref in expired)

    def set_weights(self, ref: RouteRef, weights: SetWeights) -> None:
        self.writes.append((ref, weights))
        split = dict.fromkeys(self.weights.get(ref, {}), 0)
        split[weights.stable_subset] = weights.stable_weight
        split[weights.canary_subset] = weights.canary_weight
        self.weights[ref] = split


@dataclass
class FakeMetrics:
    answers: Mapping[str, Measurement] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def measure(self, query: str, *, requests_query: str | None = None) -> Measurement:
        self.asked.append(query)
        return self.answers.get(query, Measurement.no_data(query=query))


@dataclass
class FakeStore:
    stored: dict[CanaryKey, StoredCanary] = field(default_factory=dict)
    templates: dict[tuple[str, str], MetricTemplate] = field(default_factory=dict)
    status_writes: list[tuple[CanaryKey, CanaryStatus]] = field(default_factory=list)

    def canaries(self) -> Sequence[StoredCanary]:
        return list(self.stored.values())

    def canary(self, key: CanaryKey) -> StoredCanary | None:
        return self.stored.get(key)

    def metric_template(self, namespace: str, name: str) -> MetricTemplate | None:
        return self.templates.get((namespace, name))

    def write_status(self, key: CanaryKey, status: CanaryStatus) -> None:
        self.status_writes.append((key, status))
        current = self.stored[key]
        self.stored[key] = StoredCanary(
            key, current.spec, status, current.generation, current.problems
        )


@dataclass
class FakeWorkloads:
    ready: dict[tuple[str, str], bool] = field(default_factory=dict)
    templates: dict[tuple[str, str], str] = field(default_factory=dict)
    scaled_down: list[tuple[str, str]] = field(default_factory=list)

    def target(self, namespace: str, target: TargetRef) -> TargetState:
        return TargetState(
            ready=self.ready.get((namespace, target.name), False),
            template_revision=self.templates.get((namespace, target.name), ""),
        )

    def scale_to_zero(self, namespace: str, name: str) -> None:
        self.scaled_down.append((namespace, name))


@dataclass
class FakeSecrets:
    values: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def value(self, namespace: str, ref: SecretKeyRef) -> str:
        found = self.values.get((namespace, ref.name, ref.key))
        if found is None:
            raise InvalidSpec(f"Secret {namespace}/{ref.name} has no key {ref.key!r}")
        return found


@dataclass
class FakeWebhooks:
    answers: dict[str, GateResult] = field(default_factory=dict)
    calls: list[WebhookRequest] = field(default_factory=list)

    def call(self, request: WebhookRequest) -> GateResult:
        self.calls.append(request)
        return self.answers.get(request.url, GateResult(passed=True, message="HTTP 200"))


@dataclass
class FakeNotifier:
    sent: list[tuple[CanaryKey, Notify]] = field(default_factory=list)

    def notify(self, key: CanaryKey, notice: Notify) -> None:
        self.sent.append((key, notice))
