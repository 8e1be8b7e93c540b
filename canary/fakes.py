"""Fakes of the ports in `canary/ports.py`, for unit tests of the loop; they change together
with the Protocols there."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from canary.api.chat_provider import ChatProvider
from canary.api.commands import Command
from canary.api.istio import IstioObject
from canary.api.metric_template import MetricTemplate
from canary.api.secrets import SecretKeyRef
from canary.api.spec import TargetRef
from canary.api.status import CanaryStatus, Condition
from canary.engine.actions import InjectFault, Notify, SetWeights
from canary.engine.observation import ActiveFault, GateResult, Measurement, TargetState, Traffic
from canary.errors import InvalidSpec, Unavailable
from canary.ports import (
    FINALIZER,
    CanaryKey,
    PodView,
    RouteRef,
    StoredCanary,
    SubsetPods,
    SubsetRef,
    TlsObjects,
    WebhookRequest,
)


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

    def clear_faults_of(self, key: CanaryKey) -> None:
        for ref in [
            ref for ref in self.faults_in_place if ref.owner and ref.owner.name == key.name
        ]:
            if ref.namespace == key.namespace:
                self.clear_faults(ref)

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
    condition_writes: list[tuple[CanaryKey, tuple[Condition, ...]]] = field(default_factory=list)
    chat_providers: dict[tuple[str, str], ChatProvider] = field(default_factory=dict)

    def canaries(self) -> Sequence[StoredCanary]:
        return list(self.stored.values())

    def chat_provider(self, namespace: str, name: str) -> ChatProvider | None:
        return self.chat_providers.get((namespace, name))

    def ask(self, key: CanaryKey, command: Command) -> str:
        current = self.stored.get(key)
        if current is None:
            return f"no Canary {key}"
        answered = current.status.last_command
        if current.command is not None and (answered is None or answered.id != current.command.id):
            return "another decision is waiting to be carried out"
        self.stored[key] = replace(current, command=command)
        return ""

    def canary(self, key: CanaryKey) -> StoredCanary | None:
        return self.stored.get(key)

    def metric_template(self, namespace: str, name: str) -> MetricTemplate | None:
        return self.templates.get((namespace, name))

    def write_conditions(self, key: CanaryKey, conditions: tuple[Condition, ...]) -> None:
        self.condition_writes.append((key, conditions))

    def write_status(self, key: CanaryKey, status: CanaryStatus) -> None:
        self.status_writes.append((key, status))
        current = self.stored[key]
        self.stored[key] = replace(current, status=status)

    def add_finalizer(self, key: CanaryKey) -> None:
        current = self.stored[key]
        if FINALIZER not in current.finalizers:
            self.stored[key] = replace(current, finalizers=(*current.finalizers, FINALIZER))

    def remove_finalizer(self, key: CanaryKey) -> None:
        current = self.stored.get(key)
        if current is None:
            return
        left = tuple(name for name in current.finalizers if name != FINALIZER)
        if current.deleting_since is not None and not left:
            del self.stored[key]
        else:
            self.stored[key] = replace(current, finalizers=left)


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


@dataclass
class FakePods:
    """Pods by subset name; a subset named in `unlistable` raises Unavailable as RBAC would."""

    by_subset: dict[str, tuple[PodView, ...]] = field(default_factory=dict)
    unlistable: str = ""
    asked: list[str] = field(default_factory=list)

    def subset_pods(self, ref: RouteRef, subset: SubsetRef) -> SubsetPods:
        self.asked.append(subset.name)
        if self.unlistable:
            raise Unavailable(self.unlistable)
        return SubsetPods(subset.labels, self.by_subset.get(subset.name, ()))


@dataclass
class FakeProxies:
    """Proxies by address: the splits each serves and the stat names it exports; an address
    missing from both answers Unavailable, as an Envoy that cannot be reached."""

    served: dict[str, tuple[Mapping[str, int], ...]] = field(default_factory=dict)
    stats: dict[str, frozenset[str]] = field(default_factory=dict)

    def addresses(self) -> tuple[str, ...]:
        return tuple(sorted({*self.served, *self.stats}))

    def splits(
        self, address: str, namespace: str, host: str, route: str | None
    ) -> tuple[Mapping[str, int], ...]:
        if address not in self.served:
            raise Unavailable(f"{address}: connection refused")
        return self.served[address]

    def stat_names(self, address: str, pattern: str) -> frozenset[str]:
        if address not in self.stats:
            raise Unavailable(f"{address}: connection refused")
        matcher = re.compile(pattern)
        return frozenset(name for name in self.stats[address] if matcher.search(name))


@dataclass
class FakeTlsPolicies:
    """Every object given, whatever the namespace and host (the judging filters them);
    `unreadable` raises Unavailable, as a cluster without the security.istio.io CRD would."""

    peer_authentications: list[IstioObject] = field(default_factory=list)
    destination_rules: list[IstioObject] = field(default_factory=list)
    unreadable: str = ""

    def tls_objects(self, namespace: str, host: str) -> TlsObjects:
        if self.unreadable:
            raise Unavailable(self.unreadable)
        return TlsObjects(tuple(self.peer_authentications), tuple(self.destination_rules))
