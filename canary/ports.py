"""The Protocols the controller loop needs, each sized for its caller (fakes: canary/fakes.py).

An adapter implements one of these and translates its library's errors into canary.errors, so
the loop handles an API server, a local state directory, Prometheus or a test fake the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from canary.api.chaos import ChaosRequest
from canary.api.chat_provider import ChatProvider
from canary.api.commands import Command
from canary.api.istio import IstioObject
from canary.api.metric_template import MetricTemplate
from canary.api.secrets import SecretKeyRef
from canary.api.spec import CanarySpec, TargetRef
from canary.api.status import CanaryStatus, Condition
from canary.engine.actions import InjectFault, Notify, SetWeights
from canary.engine.observation import ActiveFault, GateResult, Measurement, TargetState, Traffic
from canary.engine.spans import Span


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


# The finalizer the controller puts on every Canary before it writes anything for it, and
# removes once a deletion has been dealt with (engine/deletion.py).
FINALIZER = "canary.dev/finalizer"


@dataclass(frozen=True, slots=True)
class Owner:
    """The Canary a fault belongs to; its uid tells it from a later Canary of the same name."""

    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class RouteRef:
    """The one http route of one VirtualService that a Canary manages."""

    # The Canary's namespace: the service's, where a short `host` resolves and faults go.
    namespace: str
    virtual_service: str
    host: str
    # The http route's name; None means the first route whose destinations all point at host.
    route: str | None
    destination_rule: str | None = None
    # Stable first, then canary (observe.route_of builds them so): a router that must never
    # touch the stable subset, as fault injection must not, reads it from here.
    subsets: tuple[SubsetRef, ...] = ()
    # The Canary whose route this is: a fault injected for it names it as its owner.
    owner: Owner | None = None
    # Where the VirtualService and the DestinationRule live when not in `namespace` (an
    # ingress route in the gateway's namespace, a rule in the mesh's root namespace).
    virtual_service_namespace: str | None = None
    destination_rule_namespace: str | None = None

    @property
    def virtual_service_key(self) -> tuple[str, str]:
        return (self.virtual_service_namespace or self.namespace, self.virtual_service)

    @property
    def destination_rule_key(self) -> tuple[str, str | None]:
        return (self.destination_rule_namespace or self.namespace, self.destination_rule)


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
    # Why the stored status could not be read ("" when it could); `status` is then empty and
    # must not be taken for a Canary that never started.
    status_error: str = ""
    uid: str = ""
    # Set once the Canary is deleted (its deletionTimestamp): it stays until FINALIZER goes.
    deleting_since: datetime | None = None
    finalizers: tuple[str, ...] = ()


class Clock(Protocol):
    def now(self) -> datetime: ...


class Store(Protocol):
    """Where Canaries, their templates and their status live: a cluster, or a state directory."""

    def canaries(self) -> Sequence[StoredCanary]: ...

    def canary(self, key: CanaryKey) -> StoredCanary | None: ...

    def metric_template(self, namespace: str, name: str) -> MetricTemplate | None: ...

    def write_status(self, key: CanaryKey, status: CanaryStatus) -> None: ...

    def write_conditions(self, key: CanaryKey, conditions: tuple[Condition, ...]) -> None:
        """Replace the status's conditions alone, leaving every other field as stored: how a
        status that cannot be read is marked without being overwritten."""
        ...

    def add_finalizer(self, key: CanaryKey) -> None:
        """Put FINALIZER on the Canary (a no-op when it is there)."""
        ...

    def remove_finalizer(self, key: CanaryKey) -> None:
        """Take FINALIZER off the Canary, which then goes if it was deleted and no other
        finalizer holds it (a no-op when it is not there or the Canary is gone)."""
        ...

    def chat_provider(self, namespace: str, name: str) -> ChatProvider | None: ...

    def ask(self, key: CanaryKey, command: Command) -> str:
        """Put `command` in the Canary's command annotation unless an unanswered one is there
        (a click racing another click or a CLI decision); "" when written, else why not."""
        ...


class Workloads(Protocol):
    """The Deployments a Canary names: how ready they are, and scaling a retired one down."""

    def target(self, namespace: str, target: TargetRef) -> TargetState:
        """Raises InvalidSpec when the Deployment does not exist."""
        ...

    def scale_to_zero(self, namespace: str, name: str) -> None: ...


@dataclass(frozen=True, slots=True)
class PodView:
    """One pod of a subset as preflight sees it: ready or not, and whether it has the sidecar
    (Istio's `istio-proxy` container, or its native-sidecar init container)."""

    name: str
    ready: bool
    sidecar: bool


@dataclass(frozen=True, slots=True)
class SubsetPods:
    # The labels the pods were selected by (the Canary's, or the DestinationRule's subset's).
    labels: tuple[tuple[str, str], ...]
    pods: tuple[PodView, ...]


class Pods(Protocol):
    """The pods behind the subsets of a managed route, read once per preflight (not watched)."""

    def subset_pods(self, ref: RouteRef, subset: SubsetRef) -> SubsetPods:
        """The pods of `subset` in ref's namespace, by the subset's labels (or, without any,
        the DestinationRule's). Unavailable when they cannot be listed (RBAC refuses, the API
        server is down) or the subset's labels cannot be known."""
        ...


class Proxies(Protocol):
    """The callers' proxies the controller can see (Envoy admin addresses); none in most
    clusters. Each question raises Unavailable when that proxy cannot be read."""

    def addresses(self) -> tuple[str, ...]: ...

    def splits(
        self, address: str, namespace: str, host: str, route: str | None
    ) -> tuple[Mapping[str, int], ...]:
        """The split (subset -> weight) of every Envoy route of the managed route that this
        proxy serves; () when it has none."""
        ...

    def stat_names(self, address: str, pattern: str) -> frozenset[str]:
        """The names of the stats this proxy exports that match the regular expression."""
        ...


@dataclass(frozen=True, slots=True)
class TlsObjects:
    """The objects that decide mTLS between a host's callers and its workloads, as stored."""

    peer_authentications: tuple[IstioObject, ...]
    destination_rules: tuple[IstioObject, ...]


class TlsPolicies(Protocol):
    """The mesh's TLS policy objects, for preflight's mTLS item (judged by `api/mtls.py`)."""

    def tls_objects(self, namespace: str, host: str) -> TlsObjects:
        """The PeerAuthentications of the mesh's root namespace and of `namespace` (the
        workload's), and the DestinationRules for `host` (a full name) from every namespace.
        Unavailable when either kind cannot be read (its CRD missing, RBAC refusing): an
        answer without them would read as PERMISSIVE, which it may not be."""
        ...


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

    def clear_faults_of(self, key: CanaryKey) -> None:
        """Remove every fault that names the Canary `key` as its owner, without its route (a
        Canary whose spec does not parse); a no-op when there is none."""
        ...

    def sweep_faults(self, now: datetime) -> tuple[str, ...]:
        """Remove every injected fault whose expiry has passed, whichever Canary put it there
        (it may be gone); says what was removed. The controller runs this as it starts and
        periodically; with a `now` past every expiry, a stopping leader clears them all."""
        ...


class MetricsProvider(Protocol):
    """One metrics backend (Prometheus now): a rendered query in, a Measurement out, never an
    exception (a backend down is a Measurement of kind error)."""

    def measure(self, query: str, *, requests_query: str | None = None) -> Measurement: ...


@dataclass(frozen=True, slots=True)
class SpanQuery:
    """The spans of one operation of one service carrying `tags`, started in [start, end)."""

    service: str
    operation: str
    tags: Mapping[str, str]
    start: datetime
    end: datetime
    # At most this many traces (the backend's own bound, Jaeger's `limit`).
    limit: int
    # Seconds one request may take; slower is Unavailable.
    timeout: float


@dataclass(frozen=True, slots=True)
class SpanSample:
    spans: tuple[Span, ...]
    # The traces the answer held; `limit` of them means the window may hold more (a sample).
    traces: int
    truncated: bool


class TraceSource(Protocol):
    """A tracing backend (Jaeger's query API) asked for one operation's spans.

    Only spans that match the query themselves are returned, not every span of the traces
    they belong to. Raises Unavailable when the backend is down, slower than the query's
    timeout, or answers what is not its API; an answer with no trace is an empty sample.
    """

    def spans(self, query: SpanQuery) -> SpanSample: ...


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


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """A message as every chat backend can take it: plain text, and Slack's blocks beside it
    (a backend without blocks sends the text)."""

    text: str
    blocks: tuple[Mapping[str, Any], ...] = ()
    # The same facts as data (canary, namespace, event, phase, weight, revision...), for a
    # backend that sends JSON rather than a text (the generic JSON webhook).
    fields: Mapping[str, Any] = field(default_factory=dict)


class Chat(Protocol):
    """One ChatProvider's way to talk (Slack's bot API, an incoming webhook, a JSON webhook).

    Raises ChatError: `retry_after` when the backend asked to wait (429), `permanent` when
    trying again cannot help (invalid_auth, channel_not_found). The caller queues and retries
    in the background; a rollout never waits on a chat backend.
    """

    # Whether a posted message can be updated and replied to in its thread (Slack's bot API).
    threads: bool

    def post(self, channel: str, message: ChatMessage, *, thread: str = "") -> str:
        """Post; the message's reference (Slack's ts) or "" when the backend has none."""
        ...

    def update(self, channel: str, ref: str, message: ChatMessage) -> None: ...

    def ephemeral(self, channel: str, user: str, text: str) -> None:
        """A message only `user` sees (a refused click)."""
        ...

    def group_members(self, group: str) -> frozenset[str]:
        """The user IDs of a user group (Slack's usergroups.users.list)."""
        ...
