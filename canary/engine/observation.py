"""What the controller saw in one tick, in the engine's terms.

A `Measurement` is a value or one of the ways of not having one. No-data, NaN and errors are
kinds of their own and are never coerced to 0: that coercion is how Flagger once promoted on NaN
(flagger PR#1095).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from canary.api.chaos import ChaosRequest
from canary.api.commands import Command
from canary.api.status import MeasurementKind
from canary.api.traces import SpanEvidence
from canary.engine.preflight import PreflightItem


@dataclass(frozen=True, slots=True)
class Traffic:
    """The live split of the managed route, as the router read it back: subset -> its share
    of the route's traffic in percent, whatever total the weights were written in."""

    weights: Mapping[str, int]
    # True once the data plane serves this split (Envoy acknowledged the config), not merely
    # once the object was written: a step's clock must not start before traffic really moved.
    applied: bool
    # Who else last wrote the route's weights (a field manager, e.g. "argocd"), when the router
    # can tell and it was not this controller: a split that moved away from a live step with
    # another writer named is drift, not a write of ours still on its way.
    writer: str | None = None
    # What is wrong around a route the router could still read (a DestinationRule that does
    # not define a subset as the Canary says): each makes the Canary Invalid, but its weights
    # are known and can still be sent back to stable.
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TargetState:
    """A Deployment as the rollout sees it: ready or not, and its pod template's revision."""

    ready: bool
    # A digest of spec.template: a new image, env or anything else in the pod template is a
    # new revision of what is rolled out.
    template_revision: str = ""


@dataclass(frozen=True, slots=True)
class Measurement:
    kind: MeasurementKind
    value: float | None = None
    query: str = ""
    # Requests in the query window, when the provider can tell; None means unknown.
    samples: int | None = None
    message: str = ""
    # A trace check's spans behind the value (or behind no data: too few of them).
    spans: SpanEvidence | None = None

    @classmethod
    def of(
        cls,
        value: float,
        *,
        query: str = "",
        samples: int | None = None,
        spans: SpanEvidence | None = None,
    ) -> Measurement:
        if math.isnan(value):
            return cls(
                MeasurementKind.NAN, query=query, samples=samples, message="NaN", spans=spans
            )
        return cls(MeasurementKind.VALUE, value=value, query=query, samples=samples, spans=spans)

    @classmethod
    def no_data(
        cls, *, query: str = "", message: str = "no series", spans: SpanEvidence | None = None
    ) -> Measurement:
        return cls(MeasurementKind.NO_DATA, query=query, message=message, spans=spans)

    @classmethod
    def error(cls, message: str, *, query: str = "") -> Measurement:
        return cls(MeasurementKind.ERROR, query=query, message=message)


@dataclass(frozen=True, slots=True)
class GateResult:
    """The answer of a webhook: passed or not, and why."""

    passed: bool
    message: str = ""


@dataclass(frozen=True, slots=True)
class ActiveFault:
    """A fault the router found in place for the Canary's service."""

    experiment: str
    subset: str
    # None when the holder of the fault carries no readable expiry: treated as expired.
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class ChaosReading:
    """What the callers saw during one experiment's fault window, each value or why not."""

    requests: Measurement
    errors: Measurement
    ejections: Measurement
    overflow: Measurement
    success_rate: Measurement


@dataclass(frozen=True, slots=True)
class CountsReading:
    """A comparing check's evidence at one tick: each side's requests and bad events counted
    from `since` (engine/comparing.window_start) to the tick, read over that exact window.

    Each count is a Measurement so an error or no data keeps its kind: the comparison never
    takes an unknown count for zero.
    """

    since: datetime
    canary_requests: Measurement
    canary_bad: Measurement
    stable_requests: Measurement
    stable_bad: Measurement


@dataclass(frozen=True, slots=True)
class Observation:
    # The revision of what is being rolled out (see revision.of): a measurement counts only for
    # the revision it judged.
    revision: str
    # None when the managed route could not be read (missing, or the API is down).
    traffic: Traffic | None
    # None when the Canary has no targetRef.
    target_ready: bool | None = None
    # The canary targetRef's pod template revision (part of `revision`); "" without one.
    target_revision: str = ""
    # The Canary's metadata.generation this observation was made for.
    generation: int = 0
    measurements: Mapping[str, Measurement] = field(default_factory=dict)
    # The comparing checks' counts (engine/comparing.py), by check name, when they are due.
    comparisons: Mapping[str, CountsReading] = field(default_factory=dict)
    gates: Mapping[str, GateResult] = field(default_factory=dict)
    # The faults in place for the Canary's service; None when they could not be read.
    faults: tuple[ActiveFault, ...] | None = ()
    # The callers' view of a finished experiment's window, by experiment name, when one is due.
    chaos: Mapping[str, ChaosReading] = field(default_factory=dict)
    # A one-off experiment asked for on the Canary (`canary chaos`), if any.
    chaos_request: ChaosRequest | None = None
    # A command asked for on the Canary (`canary promote|abort|retry`), if any.
    command: Command | None = None
    # When the Canary was deleted (its deletionTimestamp); None while it is not being deleted.
    # A deleted Canary is decided by engine/deletion.py alone.
    deleting_since: datetime | None = None
    # Cross-object problems found while observing (a missing VirtualService, a route name that
    # does not exist): each makes the Canary Invalid until it is fixed.
    problems: tuple[str, ...] = ()
    # Why the Canary's chat notifications are not getting through (a provider missing, Slack
    # refusing the token or the channel, messages dropped), one line each; () when they are.
    # Shown as the Notified condition; never a reason to hold or fail the rollout.
    chat_problems: tuple[str, ...] = ()
    # What preflight saw (engine/preflight.py), gathered only while a rollout is about to
    # start and its items have not all passed yet; None when not gathered.
    preflight: tuple[PreflightItem, ...] | None = None
